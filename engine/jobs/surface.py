"""A surface computation as a job: progress as it goes, cancel between steps, resume from its file.

The CLI and the GUI drive the same object::

    job = SurfaceJob(SurfaceRequest(checkpoint="model.pt", data="train.npz", x="-1:1:51", y="-1:1:51", out="s.h5"))
    for progress in job.run():      # a generator; stop iterating (or job.cancel()) to cancel
        print(progress.done, "/", progress.total)

Each progress step carries the values it just computed; the file on disk always
holds everything computed so far.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from engine.io.checkpoints import Checkpoint, file_sha256, load_checkpoint
from engine.io.data import load_data
from engine.numerics.directions import IGNORES, NORMS, Basis, check_choice, interpolation_basis, pca_basis, random_basis
from engine.errors import LandscapeError
from engine.numerics.evaluate import STRATEGIES, PointEvaluator
from engine.numerics.grid import coarse_to_fine_order, parse_axis
from engine.io.models import build_model, load_weights
from engine.numerics.problem import Problem, resolve_device
from engine.io.references import absolute_reference
from engine.io.store import SETTINGS_KEYS, SurfaceFile, read_directions, read_surface, settings_of

METRICS = ("loss", "acc")
FLUSH_SECONDS = 0.5  # default amount of work between two writes to the file


@dataclass(frozen=True)
class SurfaceRequest:
    """Everything that defines a surface: an immutable request that can cross threads."""

    checkpoint: str
    data: str
    x: str
    out: str
    y: str | None = None
    model: str | None = None
    model_kwargs: Mapping[str, Any] | None = None
    loss: str = "auto"
    metrics: tuple[str, ...] = ("loss", "acc")
    norm: str = "filter"
    ignore: str = "biasbn"
    seed: int = 0
    directions: str = "random"  # random | interpolate | pca | path to an earlier surface file
    to: str | None = None  # second checkpoint for interpolate
    trajectory: str | None = None  # folder or glob of checkpoints for pca
    # Evaluate along the segment (x0, y0) -> (x1, y1) in the plane of the 2D surface file named by
    # ``directions``; ``x`` is then the fraction t in [0, 1] along it (the GUI's slice line).
    line: tuple[float, float, float, float] | None = None
    max_samples: int | None = None
    device: str | None = None
    batch_size: int | None = None
    strategy: str = "auto"
    trust_pickle: bool = False
    overwrite: bool = False
    flush_seconds: float = FLUSH_SECONDS  # work between writes: what a killed run can lose at most


@dataclass(frozen=True)
class SurfaceProgress:
    """One step of a running surface: counts, timing, and the values just computed."""

    done: int
    total: int
    computed: int  # points computed by this run (not counting a resumed file's)
    elapsed: float
    eta: float | None
    indices: np.ndarray  # flat indices (j * nx + i) computed in this step
    loss: np.ndarray
    acc: np.ndarray | None


@dataclass
class SurfaceSummary:
    path: Path
    shape: tuple[int, ...]
    done: int
    total: int
    computed: int
    resumed_from: int
    nonfinite: int
    loss_min: float | None
    loss_max: float | None
    elapsed: float
    strategy: str
    cancelled: bool


class SurfaceJob:
    """Computes one surface file; see the module docstring."""

    def __init__(self, request: SurfaceRequest) -> None:
        self.request = request
        self._cancelled = False
        self.prepared = False
        self.messages: list[str] = []  # notes for the user (resuming, dropped metrics, ...)

    def cancel(self) -> None:
        """Ask the job to stop after the current step; everything computed stays on disk."""
        self._cancelled = True

    # -- setup ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Load checkpoint, model and data; create the file or reopen it to resume."""
        r = self.request
        check_choice(r.norm, NORMS, "--norm")
        check_choice(r.ignore, IGNORES, "--ignore")
        if not r.flush_seconds > 0:
            raise LandscapeError("--flush-seconds must be positive")
        if r.strategy not in STRATEGIES:
            raise LandscapeError(f"unknown strategy '{r.strategy}'; choose one of {', '.join(STRATEGIES)}")
        unknown = [m for m in r.metrics if m not in METRICS]
        if unknown or not r.metrics:
            raise LandscapeError(f"unknown metric '{','.join(unknown)}'; use --metrics loss or loss,acc")
        self.x = parse_axis(r.x, "--x")
        self.y = parse_axis(r.y, "--y") if r.y is not None else None
        if r.line is not None and (self.y is not None or r.directions in ("random", "interpolate", "pca")):
            raise LandscapeError("a line is evaluated in the plane of an earlier 2D surface: pass its .h5 file "
                                 "as --directions and no --y")
        if r.directions == "interpolate" and self.y is not None:
            raise LandscapeError("--directions interpolate makes a 1D line; drop --y")
        self.device = resolve_device(r.device)
        self.checkpoint = load_checkpoint(r.checkpoint, trust_pickle=r.trust_pickle)
        model, self.model_ref, self.model_kwargs = build_model(self.checkpoint, r.model, r.model_kwargs)
        self.data = load_data(r.data, r.max_samples)
        self.problem = Problem(model, self.data, r.loss, self.device, r.batch_size, copy_model=False)
        self.problem.check_output()
        self.metrics = ["loss"] + (["acc"] if "acc" in r.metrics and self.problem.classification else [])
        self.shape = (len(self.x),) if self.y is None else (len(self.y), len(self.x))
        self.total = int(np.prod(self.shape))
        self.params = {name: p.detach().clone() for name, p in self.problem.model.named_parameters()}
        self.origin = {name: t.detach().clone() for name, t in self.problem.model.state_dict().items()}
        settings = self._direction_settings()
        attrs = {**self._provenance(), **settings}
        if r.line is not None:
            attrs["line"] = json.dumps([float(v) for v in r.line])
        out = Path(r.out)
        self.resumed_from = 0
        if out.exists() and not r.overwrite:
            self._reopen(out, attrs)
        else:
            basis = self._make_basis(settings)
            self.values = {m: np.full(self.total, np.nan) for m in self.metrics}
            self.done_mask = np.zeros(self.total, dtype=bool)
            self.file = SurfaceFile.create(out, x=self.x, y=self.y, metrics=self.metrics, basis=basis, attrs=attrs)
            self.directions = basis.directions
        self.evaluator = PointEvaluator(self.problem, self.origin, self.directions, strategy=r.strategy)
        self.prepared = True

    def _provenance(self) -> dict[str, Any]:
        r = self.request
        return {
            "checkpoint": str(Path(r.checkpoint).resolve()),
            "checkpoint_sha256": self.checkpoint.sha256,
            "checkpoint_kind": self.checkpoint.kind,
            # What the trainer recorded (epoch, seed, width, losses): lets studies group surfaces.
            "checkpoint_metadata": json.dumps(self.checkpoint.metadata, sort_keys=True, default=str),
            "model": self.model_ref or f"<{self.checkpoint.kind} module>",
            "model_kwargs": json.dumps(self.model_kwargs, sort_keys=True),
            "n_params": int(sum(p.numel() for p in self.problem.model.parameters())),
            "data": _absolute_data_reference(r.data),
            "data_sha256": self.data.sha256,
            "data_samples": len(self.data),
            "data_total_samples": self.data.total_samples,
            "max_samples": -1 if r.max_samples is None else int(r.max_samples),
            "loss": self.problem.loss_name,
            "seed": int(r.seed),
            "device": str(self.device),
            "dtype": str(self.problem.dtype).replace("torch.", ""),
            "metrics": ",".join(self.metrics),
        }

    def _direction_settings(self) -> dict[str, str]:
        """kind, norm, ignore and source hash of the requested directions, before any tensor is made.

        Only random directions are normalized; interpolation, PCA and file directions
        are used as they are (their file's norm/ignore are carried over).
        """
        r = self.request
        if r.directions == "random":
            return {"directions": "random", "norm": r.norm, "ignore": r.ignore, "directions_source_sha256": ""}
        if r.directions == "interpolate":
            if not r.to:
                raise LandscapeError("--directions interpolate needs --to SECOND_CHECKPOINT")
            return {"directions": "interpolate", "norm": "none", "ignore": "none",
                    "directions_source_sha256": file_sha256(_existing(r.to, "--to checkpoint"))}
        if r.directions == "pca":
            if self.y is None:
                raise LandscapeError("--directions pca makes a plane; add --y MIN:MAX:N")
            digest = hashlib.sha256("".join(file_sha256(p) for p in _trajectory_files(r.trajectory)).encode())
            return {"directions": "pca", "norm": "none", "ignore": r.ignore,
                    "directions_source_sha256": digest.hexdigest()}
        source = Path(r.directions)
        if source.suffix.lower() not in (".h5", ".hdf5"):
            raise LandscapeError(
                f"unknown --directions '{r.directions}'; use random, interpolate, pca or an earlier surface .h5 file"
            )
        attrs = settings_of(source)
        return {"directions": "file", "norm": str(attrs.get("norm", "none")), "ignore": str(attrs.get("ignore", "none")),
                "directions_source_sha256": file_sha256(source)}

    def _make_basis(self, settings: dict[str, str]) -> Basis:
        r = self.request
        axes = 1 if self.y is None and r.line is None else 2
        kind = settings["directions"]
        if kind == "random":
            return random_basis(self.params, axes, r.seed, r.norm, r.ignore)
        if r.norm != "filter" or r.ignore != "biasbn":
            self.messages.append(f"note: --norm/--ignore do not apply to {kind} directions; they are used as they are")
        if kind == "interpolate":
            end = self._state_of(load_checkpoint(r.to, trust_pickle=r.trust_pickle))
            basis = interpolation_basis(self.origin, end)
            basis.source = str(Path(r.to).resolve())
            return basis
        if kind == "pca":
            paths = _trajectory_files(r.trajectory)
            states = [self._state_of(load_checkpoint(p, trust_pickle=r.trust_pickle)) for p in paths]
            trajectory = [{k: s[k] for k in self.params} for s in states]
            basis = pca_basis(self.params, trajectory, [p.name for p in paths], r.ignore)
            basis.source = r.trajectory
            return basis
        source = Path(r.directions)
        directions = read_directions(source)
        if len(directions) < axes:
            raise LandscapeError(f"{source} has {len(directions)} direction(s) but a {axes}D surface needs {axes}")
        return Basis(kind="file", directions=directions[:axes], norm=settings["norm"], ignore=settings["ignore"],
                     source=str(source.resolve()))

    def _state_of(self, checkpoint: Checkpoint) -> dict[str, torch.Tensor]:
        """A checkpoint's full state, aligned to this model (prefixes stripped, shapes checked)."""
        twin = copy.deepcopy(self.problem.model).cpu()
        load_weights(twin, checkpoint.state_dict, source=str(checkpoint.path))
        return {k: v.detach().clone() for k, v in twin.state_dict().items()}

    def _reopen(self, out: Path, attrs: dict[str, Any]) -> None:
        existing = settings_of(out)
        if existing.get("format") != "landscape" or existing.get("kind") != "surface":
            raise LandscapeError(f"{out} exists and is not a Landscape surface file; choose another --out or pass --overwrite")
        surface = read_surface(out)
        for key in SETTINGS_KEYS:
            theirs, ours = existing.get(key, ""), attrs.get(key, "")
            if str(theirs) != str(ours):
                raise LandscapeError(
                    f"{out} was made with different settings ({key}: {_short(theirs)} there, {_short(ours)} now); "
                    "pass --overwrite to replace it or choose another --out"
                )
        same_y = (self.y is None and surface.y is None) or (
            self.y is not None and surface.y is not None and surface.y.shape == self.y.shape and np.allclose(surface.y, self.y)
        )
        if surface.x.shape != self.x.shape or not np.allclose(surface.x, self.x) or not same_y:
            raise LandscapeError(f"{out} has a different grid; pass --overwrite to replace it or choose another --out")
        self.values = {m: surface.values[f"train_{m}"].reshape(-1).copy() for m in self.metrics}
        self.done_mask = surface.done.reshape(-1).copy()
        self.resumed_from = int(self.done_mask.sum())
        self.directions = read_directions(out)
        self.file = SurfaceFile(out)
        if self.resumed_from:
            self.messages.append(f"resuming {out}: {self.resumed_from} of {self.total} points already computed")

    # -- the work ---------------------------------------------------------------------------
    def run(self) -> Iterator[SurfaceProgress]:
        """Compute the missing points, coarse to fine, writing each step to the file."""
        if not self.prepared:
            self.prepare()
        order = coarse_to_fine_order(len(self.x), 1 if self.y is None else len(self.y))
        todo = order[~self.done_mask[order]]
        nx = len(self.x)

        def coords_of(indices: np.ndarray) -> np.ndarray:
            """Plane coordinates of flat grid indices, vectorized (no Python loop per point)."""
            if self.request.line is not None:
                x0, y0, x1, y1 = self.request.line
                t = self.x[indices]
                return np.stack([x0 + t * (x1 - x0), y0 + t * (y1 - y0)], axis=1)
            if self.y is None:
                return self.x[indices % nx][:, None]
            return np.stack([self.x[indices % nx], self.y[indices // nx]], axis=1)

        start = time.perf_counter()
        self.computed = 0
        self.cancelled = False
        chunk = 1
        position = 0
        strategy_recorded = False
        try:
            while position < len(todo):
                if self._cancelled:
                    self.cancelled = True
                    break
                indices = todo[position:position + chunk]
                coords = coords_of(np.asarray(indices, dtype=np.int64)).astype(np.float64)
                step_start = time.perf_counter()
                loss, acc = self.evaluator(coords)
                step_time = time.perf_counter() - step_start
                self.values["loss"][indices] = loss
                if "acc" in self.values and acc is not None:
                    self.values["acc"][indices] = acc
                self.done_mask[indices] = True
                attrs = None
                if not strategy_recorded and self.evaluator.strategy != "auto":
                    attrs = {"evaluation_strategy": self.evaluator.strategy}
                    strategy_recorded = True
                self.file.write_values(self.values, self.done_mask, attrs)
                position += len(indices)
                self.computed += len(indices)
                elapsed = time.perf_counter() - start
                rate = self.computed / elapsed if elapsed > 0 else None
                remaining = len(todo) - position
                # Aim each step at flush_seconds of work: few writes, yet fresh progress.
                per_point = step_time / max(1, len(indices))
                chunk = int(np.clip(self.request.flush_seconds / max(per_point, 1e-6), 1, 4096))
                yield SurfaceProgress(
                    done=int(self.done_mask.sum()),
                    total=self.total,
                    computed=self.computed,
                    elapsed=elapsed,
                    eta=remaining / rate if rate else None,
                    indices=np.asarray(indices).copy(),
                    loss=np.asarray(loss).copy(),
                    acc=None if acc is None else np.asarray(acc).copy(),
                )
        finally:
            self.elapsed = time.perf_counter() - start
        if position < len(todo):
            self.cancelled = True

    def summary(self) -> SurfaceSummary:
        loss = self.values["loss"][self.done_mask]
        finite = loss[np.isfinite(loss)]
        return SurfaceSummary(
            path=Path(self.request.out),
            shape=self.shape,
            done=int(self.done_mask.sum()),
            total=self.total,
            computed=getattr(self, "computed", 0),
            resumed_from=self.resumed_from,
            nonfinite=int((~np.isfinite(loss)).sum()),
            loss_min=float(finite.min()) if finite.size else None,
            loss_max=float(finite.max()) if finite.size else None,
            elapsed=getattr(self, "elapsed", 0.0),
            strategy=self.evaluator.strategy,
            cancelled=getattr(self, "cancelled", False),
        )

    def grid_values(self) -> dict[str, np.ndarray]:
        """The current values as grids of the surface's shape (NaN where not yet computed)."""
        return {m: v.reshape(self.shape).copy() for m, v in self.values.items()}


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else text[:12] + "..."


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _trajectory_files(spec: str | None) -> list[Path]:
    """Checkpoint files of a training trajectory, in natural order (epoch_2 before epoch_10)."""
    if not spec:
        raise LandscapeError("--directions pca needs --trajectory DIR_OR_GLOB (the checkpoints saved during training)")
    path = Path(spec)
    if path.is_dir():
        files = [p for p in path.iterdir() if p.suffix in (".pt", ".pth", ".ckpt", ".bin", ".safetensors")]
    else:
        files = [Path(p) for p in glob.glob(spec)]
    files = sorted((p for p in files if p.is_file()), key=_natural_key)
    if not files:
        raise LandscapeError(f"no checkpoints found at --trajectory {spec}")
    return files


def _existing(path: str, what: str) -> Path:
    if not Path(path).is_file():
        raise LandscapeError(f"no such {what}: {path}")
    return Path(path)


def _absolute_data_reference(reference: str) -> str:
    path = Path(reference)
    if path.suffix.lower() in (".npz", ".pt", ".pth", ".h5", ".hdf5") and path.exists():
        return str(path.resolve())
    if ":" in reference and reference.split(":")[0].endswith(".py"):
        return absolute_reference(reference)
    return reference


def request_as_dict(request: SurfaceRequest) -> dict[str, Any]:
    return asdict(request)


def resume_request(path: str | Path, *, trust_pickle: bool = False, device: str | None = None) -> SurfaceRequest:
    """The request that made a Landscape surface file, rebuilt from its attributes, to finish it.

    Running it resumes the file: directions are read back from the file itself, and
    the job checks that checkpoint, data and settings still hash the same.
    """
    path = Path(path)
    surface = read_surface(path)
    if surface.format != "landscape":
        raise LandscapeError(f"{path} is a Li et al. file; only Landscape surface files can be resumed")
    a = surface.attrs
    kind = str(a.get("directions", "random"))
    source = str(a.get("directions_source", "")) or None
    model = str(a.get("model", ""))
    max_samples = int(a.get("max_samples", -1))

    def axis(values: np.ndarray) -> str:
        return f"{float(values[0])!r}:{float(values[-1])!r}:{len(values)}"

    options: dict[str, Any] = {}
    if kind == "interpolate":
        options["to"] = source
    elif kind == "pca":
        options["trajectory"] = source
    elif kind == "file":
        options["directions"] = source
    if kind != "random" and not source:
        raise LandscapeError(f"{path} does not record where its {kind} directions came from; it cannot be resumed")
    return SurfaceRequest(
        checkpoint=str(a.get("checkpoint", "")),
        data=str(a.get("data", "")),
        x=axis(surface.x),
        y=None if surface.y is None else axis(surface.y),
        out=str(path),
        model=None if not model or model.startswith("<") else model,
        model_kwargs=json.loads(a.get("model_kwargs") or "{}"),
        loss=str(a.get("loss", "auto")),
        metrics=tuple(str(a.get("metrics", "loss")).split(",")),
        norm=str(a.get("norm", "filter")),
        ignore=str(a.get("ignore", "biasbn")),
        seed=int(a.get("seed", 0)),
        directions=options.pop("directions", kind if kind in ("random", "interpolate", "pca") else source),
        max_samples=None if max_samples < 0 else max_samples,
        line=tuple(json.loads(a["line"])) if a.get("line") else None,
        device=device,
        trust_pickle=trust_pickle,
        **options,
    )


def parse_line(text: str) -> tuple[float, float, float, float]:
    """``'X0,Y0:X1,Y1'`` -> (x0, y0, x1, y1), or a one-line LandscapeError."""
    try:
        start, end = text.split(":")
        (x0, y0), (x1, y1) = (tuple(float(v) for v in part.split(",")) for part in (start, end))
    except ValueError:
        raise LandscapeError(f"--line {text}: write it as X0,Y0:X1,Y1, for example --line=-1,0:1,0.5") from None
    values = (x0, y0, x1, y1)
    if not all(np.isfinite(values)):
        raise LandscapeError(f"--line {text}: the coordinates must be finite")
    return values


def line_request(surface: str | Path, start: tuple[float, float], end: tuple[float, float],
                 points: int = 101) -> SurfaceRequest:
    """Evaluate the model exactly along a segment of a 2D surface's plane (the GUI's slice line).

    Model, data and settings are the surface's own; the output is a 1D file next to
    it, named after the segment, so asking for the same line again resumes or reopens it.
    """
    surface = Path(surface)
    base = resume_request(surface)
    if base.y is None:
        raise LandscapeError(f"{surface} is a 1D surface; a line is drawn in the plane of a 2D surface")
    line = (float(start[0]), float(start[1]), float(end[0]), float(end[1]))
    tag = hashlib.sha256(json.dumps([round(v, 9) for v in line] + [points]).encode()).hexdigest()[:8]
    out = surface.with_name(f"{surface.stem}_line_{tag}.h5")
    return replace(base, directions=str(surface.resolve()), to=None, trajectory=None, x=f"0:1:{int(points)}", y=None,
                   line=line, out=str(out))
