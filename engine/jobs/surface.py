"""Surfaces (and slice lines) as a job: 1D/2D grids of the loss around a checkpoint.

The CLI, the Python API (:func:`engine.surface`) and the app drive the same object::

    job = SurfaceJob(SurfaceRequest(checkpoint="model.pt", data="train.npz", x="-1:1:51", y="-1:1:51", out="s.h5"))
    for progress in job.run():      # a generator; job.cancel() (or stop iterating) to stop
        print(progress.done, "/", progress.total)

Each progress step carries the values it just computed; when run() ends, the file
holds everything computed. Running the same request again resumes the file.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from engine.errors import LandscapeError
from engine.io.checkpoints import file_sha256, load_checkpoint, pickle_import_folders
from engine.io.references import absolute_reference
from engine.io.store import (
    GridWriter, Overlay, WriterLock, check_space, create_file, grid_layout, grid_nbytes, read_axes, read_directions, read_done,
    settings_of, tensor_group_digests, value_ranges,
)
from engine.jobs.base import CALIBRATING, COMPUTING, Job, Progress, RateMeter, Summary
from engine.jobs.spec import LoadedProblem, ProblemSpec, absolute_path, load_problem
from engine.jobs.tiles import GridPlan, SurfaceTask, TileFunction
from engine.numerics.directions import (
    IGNORES, NORMS, Basis, check_choice, hessian_basis, interpolation_basis, pca_basis, random_basis,
)
from engine.numerics.evaluate import STRATEGIES
from engine.numerics.grid import parse_axis
from engine.numerics.problem import resolve_device
from engine.numerics.path_plane import AUTO_POINTS, PathPlane

METRICS = ("loss", "acc")
FLUSH_SECONDS = 0.5  # default amount of work between two writes to the file
TILE_SECONDS = 0.25  # a tile aims at this much work: prompt progress and cancel
MAX_TILE = 4096
# Attributes that decide the numbers: a file is resumed only if all of them match.
SETTINGS_KEYS = (
    "checkpoint_sha256", "model", "model_kwargs", "data_sha256", "loss", "metrics", "mode",
    "norm", "ignore", "seed", "directions", "directions_source_sha256", "line",
)
# What files written before a setting was recorded used.
LEGACY_SETTINGS = {"mode": "eval"}


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
    directions: str = "random"  # random | interpolate | pca | plane | path to an earlier surface file
    to: str | None = None  # second checkpoint for interpolate
    path: str | None = None  # a path file (landscape path) for plane: the plane through its endpoints and bend
    trajectory: str | None = None  # folder or glob of checkpoints for pca
    # Evaluate along the segment (x0, y0) -> (x1, y1) in the plane of the 2D surface file named by
    # ``directions``; ``x`` is then the fraction t in [0, 1] along it (the app's slice line).
    line: tuple[float, float, float, float] | None = None
    max_samples: int | None = None
    device: str | None = None
    batch_size: int | None = None
    mode: str = "eval"  # eval: BatchNorm running statistics; train: batch statistics (recorded)
    memory_budget: int | None = None  # bytes for data, a batch's activations, a vmap stack (recorded)
    strategy: str = "auto"
    trust_pickle: bool = False
    overwrite: bool = False
    flush_seconds: float = FLUSH_SECONDS  # work between writes: what a killed run can lose at most

    def problem_spec(self) -> ProblemSpec:
        return ProblemSpec(checkpoint=self.checkpoint, data=self.data, model=self.model,
                           model_kwargs=self.model_kwargs, loss=self.loss, max_samples=self.max_samples,
                           device=self.device, batch_size=self.batch_size, mode=self.mode,
                           memory_budget=self.memory_budget, trust_pickle=self.trust_pickle).resolved()


@dataclass(frozen=True)
class SurfaceProgress(Progress):
    """A progress step with the grid points it computed: flat indices (j * nx + i) and their values."""

    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    values: Mapping[str, np.ndarray] = field(default_factory=dict)  # "train_loss", "train_acc"

    @property
    def loss(self) -> np.ndarray:
        """0.1's name for ``values["train_loss"]`` (scripts written against 0.1 read it)."""
        return self.values.get("train_loss", np.zeros(0))

    @property
    def acc(self) -> np.ndarray | None:
        """0.1's name for ``values["train_acc"]``."""
        return self.values.get("train_acc")


@dataclass(frozen=True)
class SurfaceSummary(Summary):
    """A surface job's summary; ``loss_*`` and ``strategy`` read what the generic fields hold."""

    @property
    def elapsed(self) -> float:
        """0.1's name for ``seconds``."""
        return self.seconds

    @property
    def strategy(self) -> str:
        return str(self.details.get("strategy", "auto"))

    @property
    def loss_min(self) -> float | None:
        return self.metrics.get("train_loss", {}).get("min")

    @property
    def loss_max(self) -> float | None:
        return self.metrics.get("train_loss", {}).get("max")

    @property
    def nonfinite(self) -> int:
        return int(self.metrics.get("train_loss", {}).get("nonfinite", 0))

    def describe(self) -> str:
        grid = " x ".join(str(n) for n in reversed(self.shape))
        span = "no finite loss" if self.loss_min is None else f"train_loss {self.loss_min:.4g} .. {self.loss_max:.4g}"
        extra = f"; {self.nonfinite} points have a non-finite loss (stored as NaN/inf)" if self.nonfinite else ""
        return (f"wrote {self.path}: {self.done}/{self.total} points ({grid}), {span}; computed {self.computed} "
                f"in {self.seconds:.1f} s ({self.strategy}){extra}")


@dataclass
class _Prepared:
    """What prepare() established; run() and summary() read it."""

    loaded: LoadedProblem
    spec: ProblemSpec  # as loaded: with the batch size and memory budget the values depend on
    x: np.ndarray
    y: np.ndarray | None
    metrics: list[str]  # "loss"[, "acc"]
    done: np.ndarray  # flat bool mask, kept in step with the file
    tile: TileFunction
    writer: GridWriter
    resumed_from: int
    strategy_in_file: str  # what the file records ("" until auto has decided)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.x),) if self.y is None else (len(self.y), len(self.x))

    @property
    def datasets(self) -> list[str]:
        return [f"train_{m}" for m in self.metrics]


class SurfaceJob(Job):
    """Computes one surface file; see the module docstring."""

    kind = "surface"
    unit = "pt"
    noun = "points"

    def __init__(self, request: SurfaceRequest) -> None:
        super().__init__(request)
        self._lock = WriterLock(request.out)
        self._state: _Prepared | None = None
        self._plane: PathPlane | None = None
        self.computed = 0

    # -- convenience views of the prepared state (the app and tests read these) ------------------
    @property
    def total(self) -> int:
        return int(self._ready().done.size)

    @property
    def resumed_from(self) -> int:
        return self._ready().resumed_from

    @property
    def shape(self) -> tuple[int, ...]:
        return self._ready().shape

    @property
    def evaluator(self):
        return self._ready().tile.evaluator

    def task(self) -> SurfaceTask:
        """What another process needs to compute tiles of this surface to the same bits."""
        state = self._ready()
        recorded = tensor_group_digests(self.request.out, "directions")
        digests = tuple(recorded[axis] for axis in ("x", "y")[:self._axes()])
        return SurfaceTask(state.spec, str(Path(self.request.out).resolve()), digests, state.tile.strategy)

    def _ready(self) -> _Prepared:
        if self._state is None:
            raise RuntimeError("the job is not prepared yet")
        return self._state

    # -- prepare ----------------------------------------------------------------------------------
    def _prepare(self) -> None:
        r = self.request
        x, y = self._check_request()
        out = Path(r.out)
        points = len(x) * (1 if y is None else len(y))
        check_space(out, grid_nbytes(points, len(r.metrics)), f"a grid of {points:,} points")
        resolve_device(r.device)  # a device this machine lacks is said before any file is locked
        self._lock.acquire()
        existing = out.exists() and not r.overwrite
        recorded = self.recorded_settings(out) if existing else {}
        spec = self.request.problem_spec()
        for key in ("batch_size", "memory_budget"):  # what the file was computed with: the same bits as before
            if existing and getattr(r, key) is None and recorded.get(key):
                spec = replace(spec, **{key: int(recorded[key])})
        loaded = load_problem(spec)
        self._plane = self._path_plane(loaded) if r.directions == "plane" else None
        if self._plane is not None:
            x = parse_axis(self._plane.auto_axes(_auto_points(r.x))[0] if _is_auto(r.x) else r.x, "--x")
            y = parse_axis(self._plane.auto_axes(_auto_points(r.y))[1] if _is_auto(r.y) else r.y, "--y")
        metrics = ["loss"] + (["acc"] if "acc" in r.metrics and loaded.problem.classification else [])
        settings = {**loaded.provenance(), **self._direction_settings(), "metrics": ",".join(metrics),
                    "seed": int(r.seed)}
        if r.line is not None:
            settings["line"] = json.dumps([float(v) for v in r.line])
        if existing:
            self._check_resumable(out, recorded, settings, x, y)
            in_file = str(recorded.get("evaluation_strategy") or "")
            if in_file and r.strategy not in ("auto", in_file):
                raise LandscapeError(f"{out} was computed with --strategy {in_file}; resume it with the same "
                                     "strategy (one file never mixes strategies) or pass --overwrite")
            strategy = in_file or r.strategy
            directions = read_directions(out)
        else:
            in_file = "" if r.strategy == "auto" else r.strategy
            strategy = r.strategy
            basis = self._make_basis(loaded, settings)
            attrs = {**settings, "norm": basis.norm, "ignore": basis.ignore, "directions": basis.kind,
                     "directions_source": basis.source or "", "evaluation_strategy": in_file}
            if basis.explained_variance_ratio is not None:
                attrs["explained_variance_ratio"] = list(basis.explained_variance_ratio)
            if basis.eigenvalues is not None:
                attrs["hessian_eigenvalues"] = list(basis.eigenvalues)
            overlay = Overlay(self._plane.points, self._plane.lines) if self._plane is not None else None
            create_file(out, grid_layout(x=x, y=y, metrics=metrics, directions=basis.directions, attrs=attrs,
                                         trajectory=basis.trajectory, trajectory_names=basis.trajectory_names,
                                         overlay=overlay))
            directions = read_directions(out)  # exactly what a resume will use
        done = read_done(out)
        tile = TileFunction(loaded.problem, directions[:self._axes()], strategy)
        spec = replace(spec, batch_size=loaded.problem.batch_size, memory_budget=loaded.problem.memory_budget)
        self._state = _Prepared(loaded, spec, x, y, metrics, done, tile,
                                GridWriter(out, [f"train_{m}" for m in metrics]), int(done.sum()), in_file)
        if self._state.resumed_from:
            self.messages.append(f"resuming {out}: {self._state.resumed_from} of {done.size} points already computed")

    def _axes(self) -> int:
        return 1 if self.request.y is None and self.request.line is None else 2

    def _check_request(self) -> tuple[np.ndarray, np.ndarray | None]:
        r = self.request
        check_choice(r.norm, NORMS, "--norm")
        check_choice(r.ignore, IGNORES, "--ignore")
        if Path(r.out).is_dir():
            raise LandscapeError(f"--out {r.out} is a folder; name a .h5 file")
        if not r.flush_seconds > 0:
            raise LandscapeError("--flush-seconds must be positive")
        if r.strategy not in STRATEGIES:
            raise LandscapeError(f"unknown strategy '{r.strategy}'; choose one of {', '.join(STRATEGIES)}")
        unknown = [m for m in r.metrics if m not in METRICS]
        if unknown or not r.metrics:
            raise LandscapeError(f"unknown metric '{','.join(unknown)}'; use --metrics loss or loss,acc")
        if r.directions == "plane":
            if not r.path:
                raise LandscapeError("--directions plane needs --path PATH.h5 (a file written by landscape path)")
            if r.line is not None:
                raise LandscapeError("--line draws in the plane of an earlier surface file; compute the plane first")
            # "auto" axes are resolved once the plane is known; until then they size the file
            x = np.zeros(_auto_points(r.x)) if _is_auto(r.x) else parse_axis(r.x, "--x")
            y = np.zeros(_auto_points(r.y)) if _is_auto(r.y) else parse_axis(r.y or "", "--y")
            return x, y
        if _is_auto(r.x):
            raise LandscapeError("--x is required (MIN:MAX:N); only --directions plane chooses its own axes")
        x = parse_axis(r.x, "--x")
        y = parse_axis(r.y, "--y") if r.y is not None else None
        if r.line is not None and (y is not None or r.directions in ("random", "interpolate", "pca", "hessian")):
            raise LandscapeError("a line is evaluated in the plane of an earlier 2D surface: pass its .h5 file "
                                 "as --directions and no --y")
        if r.directions == "interpolate" and y is not None:
            raise LandscapeError("--directions interpolate makes a 1D line; drop --y")
        if r.directions == "pca" and y is None:
            raise LandscapeError("--directions pca makes a plane; add --y MIN:MAX:N")
        return x, y

    def _direction_settings(self) -> dict[str, str]:
        """kind, norm, ignore and the digest of where the directions come from, before any tensor is made.

        Only random directions are normalized; interpolation, PCA and file directions
        are used as they are (a file's norm/ignore are carried over). A file source is
        identified by the digest of the direction tensors used, so it may gain points.
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
            digest = hashlib.sha256("".join(file_sha256(p) for p in _trajectory_files(r.trajectory)).encode())
            return {"directions": "pca", "norm": "none", "ignore": r.ignore, "directions_source_sha256": digest.hexdigest()}
        if r.directions == "hessian":
            return {"directions": "hessian", "norm": "none", "ignore": "none", "directions_source_sha256": ""}
        if r.directions == "plane":
            return {"directions": "plane", "norm": "none", "ignore": "none",
                    "directions_source_sha256": path_plane_digest(_existing(r.path or "", "--path file"))}
        source = Path(r.directions)
        if source.suffix.lower() not in (".h5", ".hdf5"):
            raise LandscapeError(
                f"unknown --directions '{r.directions}'; use random, interpolate, pca, hessian, plane or an earlier "
                "surface .h5 file"
            )
        attrs = settings_of(source)
        digests = tensor_group_digests(source, "directions")
        used = [digests[axis] for axis in ("x", "y")[:self._axes()] if axis in digests]
        if len(used) < self._axes():
            raise LandscapeError(f"{source} has {len(used)} direction(s) but a {self._axes()}D surface needs "
                                 f"{self._axes()}")
        return {"directions": "file", "norm": str(attrs.get("norm", "none")), "ignore": str(attrs.get("ignore", "none")),
                "directions_source_sha256": _combined(used)}

    def _make_basis(self, loaded: LoadedProblem, settings: dict[str, Any]) -> Basis:
        r = self.request
        kind = settings["directions"]
        params = loaded.problem.params()
        if kind == "random":
            return random_basis(params, self._axes(), r.seed, r.norm, r.ignore)
        if r.norm != "filter" or r.ignore != "biasbn":
            self.messages.append(f"note: --norm/--ignore do not apply to {kind} directions; they are used as they are")
        origin = {name: t.detach().clone() for name, t in loaded.problem.model.state_dict().items()}
        if kind == "interpolate":
            end = loaded.state_of(load_checkpoint(r.to, trust_pickle=r.trust_pickle,
                                                  import_from=pickle_import_folders(r.model)))
            basis = interpolation_basis(origin, end)
            basis.source = absolute_path(r.to)
            return basis
        if kind == "pca":
            paths = _trajectory_files(r.trajectory)
            states = [loaded.state_of(load_checkpoint(p, trust_pickle=r.trust_pickle,
                                                      import_from=pickle_import_folders(r.model))) for p in paths]
            trajectory = [{k: s[k] for k in params} for s in states]
            basis = pca_basis(params, trajectory, [p.name for p in paths], r.ignore)
            basis.source = absolute_path(r.trajectory or "")
            return basis
        if kind == "hessian":
            return hessian_basis(loaded.problem, self._axes(), r.seed)
        if kind == "plane":
            assert self._plane is not None
            basis = self._plane.basis
            basis.source = absolute_path(r.path or "")
            return basis
        source = Path(r.directions)
        directions = read_directions(source)
        return Basis(kind="file", directions=directions[:self._axes()], norm=settings["norm"],
                     ignore=settings["ignore"], source=absolute_path(str(source)))

    def _path_plane(self, loaded: LoadedProblem) -> PathPlane:
        """The plane through the path file's endpoints and bend; its A must be this surface's checkpoint."""
        from engine.io.store.paths import read_endpoint_b, read_path
        from engine.numerics.curves import CurveShape
        from engine.numerics.path_plane import path_plane

        r = self.request
        source = _existing(r.path or "", "--path file")
        result = read_path(source)
        if result.attrs.get("checkpoint_sha256") != loaded.checkpoint.sha256:
            raise LandscapeError(f"{source} is a path from another checkpoint ({result.attrs.get('checkpoint')}); "
                                 f"the plane is drawn around its first endpoint: pass that checkpoint")
        params = loaded.problem.params()
        b = read_endpoint_b(source)
        if b is None:
            b = loaded.state_of(load_checkpoint(str(result.attrs.get("b_checkpoint", "")), trust_pickle=r.trust_pickle,
                                                import_from=pickle_import_folders(r.model)))
        bends = result.bends
        if set(params) != set(b) & set(params) or any(set(bend) != set(params) for bend in bends):
            raise LandscapeError(f"the bends in {source} do not fit this model's parameters; was the path made "
                                 "for another architecture?")
        shape = CurveShape(str(result.attrs.get("curve", "linear")), int(result.attrs.get("bends", 0)))
        return path_plane(shape, {n: t.cpu() for n, t in params.items()}, bends,
                          {n: b[n].to(params[n].dtype).cpu() for n in params})

    def _check_resumable(self, out: Path, recorded: dict[str, Any], settings: dict[str, Any],
                         x: np.ndarray, y: np.ndarray | None) -> None:
        """Refuse a file made with other settings or another grid."""
        recorded = {**LEGACY_SETTINGS, **recorded}
        if recorded.get("model"):
            recorded["model"] = _canonical_model(str(recorded["model"]))
        if recorded.get("directions") == "file":
            # Files before 0.2 recorded the source *file's* hash; what matters is the tensors.
            own = tensor_group_digests(out, "directions")
            recorded["directions_source_sha256"] = _combined([own[a] for a in ("x", "y")[:self._axes()] if a in own])
        self.refuse_other_settings(out, recorded, settings, SETTINGS_KEYS)
        file_x, file_y = read_axes(out)
        same_y = (y is None and file_y is None) or (
            y is not None and file_y is not None and file_y.shape == y.shape and np.allclose(file_y, y))
        if file_x.shape != x.shape or not np.allclose(file_x, x) or not same_y:
            raise LandscapeError(f"{out} has a different grid; pass --overwrite to replace it or choose another --out")

    # -- run --------------------------------------------------------------------------------------
    def _steps(self) -> Iterator[SurfaceProgress]:
        state = self._ready()
        plan = GridPlan(state.x, state.y, state.done, self.request.line)
        meter = RateMeter()
        size, last_flush = 1, time.perf_counter()
        if state.tile.strategy == "auto" and plan.remaining:
            yield self._progress(CALIBRATING, None)
        while plan.remaining:
            indices = plan.take(size)
            started = time.perf_counter()
            values = state.tile(plan.coordinates(indices))
            seconds = time.perf_counter() - started
            if state.tile.strategy != state.strategy_in_file:  # auto has decided: the file says how, once
                state.writer.set_strategy(state.tile.strategy)
                state.strategy_in_file = state.tile.strategy
            state.writer.put(indices, values)
            state.done[indices] = True
            self.computed += len(indices)
            now = time.perf_counter()
            if now - last_flush >= self.request.flush_seconds or not plan.remaining:
                state.writer.flush()
                last_flush = now
            # The next tile aims at TILE_SECONDS of work at the rate just measured, and never at more than
            # the flush interval: that is the most a killed run may lose.
            target = min(TILE_SECONDS, self.request.flush_seconds)
            size = int(np.clip(target * len(indices) / max(seconds, 1e-6), 1, MAX_TILE))
            eta = meter.eta(now, self.computed, plan.remaining)
            yield self._progress(COMPUTING, eta, indices, {k: v for k, v in values.items() if k in state.datasets})

    def _progress(self, phase: str, eta: float | None, indices: np.ndarray | None = None,
                  values: Mapping[str, np.ndarray] | None = None) -> SurfaceProgress:
        state = self._ready()
        return SurfaceProgress(
            kind=self.kind, path=Path(self.request.out), phase=phase, done=state.resumed_from + self.computed,
            total=int(state.done.size), computed=self.computed, elapsed=self.seconds, eta=eta,
            indices=np.zeros(0, np.int64) if indices is None else np.asarray(indices).copy(),
            values={k: np.asarray(v).copy() for k, v in (values or {}).items()},
        )

    def _complete(self) -> bool:
        return bool(self._ready().done.all())

    def _finish(self) -> None:
        if self._state is not None:
            self._state.writer.flush()

    def close(self) -> None:
        self._lock.release()

    def _summary(self) -> SurfaceSummary:
        state = self._ready()
        return SurfaceSummary(
            kind=self.kind, path=Path(self.request.out).resolve(), shape=state.shape,
            done=state.resumed_from + self.computed,
            total=int(state.done.size), computed=self.computed, resumed_from=state.resumed_from,
            seconds=self.seconds, cancelled=not state.done.all(),
            metrics=value_ranges(self.request.out, state.datasets),
            details={"strategy": state.tile.strategy},
        )


# -- helpers ----------------------------------------------------------------------------------------
def _is_auto(axis: str | None) -> bool:
    """``auto`` or ``auto:N`` (and a plane's missing --y): the axis frames the path's points."""
    return axis is None or axis == "auto" or axis.startswith("auto:")


def _auto_points(axis: str | None) -> int:
    if axis is None or ":" not in axis:
        return AUTO_POINTS
    try:
        points = int(axis.split(":", 1)[1])
    except ValueError:
        points = 0
    if not 2 <= points <= 100_000:
        raise LandscapeError(f"'{axis}': write auto:N with N from 2 to 100000 points")
    return points


def path_plane_digest(path: Path) -> str:
    """What a plane depends on in a path file: its endpoints and its committed bends, not its points."""
    from engine.io.store.paths import bends_digests

    attrs = settings_of(path)
    parts = [str(attrs.get("checkpoint_sha256", "")), str(attrs.get("b_checkpoint_sha256", "")), *bends_digests(path)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()



def _combined(digests: list[str]) -> str:
    return digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()


def _canonical_model(reference: str) -> str:
    if reference.startswith("<"):
        return reference
    try:
        return absolute_reference(reference)
    except LandscapeError:
        return reference


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


def resume_request(path: str | Path, *, trust_pickle: bool = False, device: str | None = None) -> SurfaceRequest:
    """The request that made a Landscape surface file, rebuilt from its attributes, to finish it.

    Running it resumes the file: directions are read back from the file itself, and
    the job checks that checkpoint, data and settings still hash the same.
    """
    path = Path(path)
    a = settings_of(path)
    if a.get("format") != "landscape":
        raise LandscapeError(f"{path} is not a Landscape surface file (Li et al.'s files cannot be resumed)")
    file_x, file_y = read_axes(path)
    kind = str(a.get("directions", "random"))
    source = str(a.get("directions_source", "")) or None
    model = str(a.get("model", ""))
    max_samples = int(a.get("max_samples", -1))
    batch_size = int(a.get("batch_size", 0) or 0)
    memory_budget = int(a.get("memory_budget", 0) or 0)

    def axis(values: np.ndarray) -> str:
        return f"{float(values[0])!r}:{float(values[-1])!r}:{len(values)}"

    plane = kind == "plane"
    if kind not in ("random", "hessian") and not source:
        raise LandscapeError(f"{path} does not record where its {kind} directions came from; it cannot be resumed")
    return SurfaceRequest(
        checkpoint=str(a.get("checkpoint", "")),
        data=str(a.get("data", "")),
        x=axis(file_x),
        y=None if file_y is None else axis(file_y),
        out=str(path),
        model=None if not model or model.startswith("<") else model,
        model_kwargs=json.loads(a.get("model_kwargs") or "{}"),
        loss=str(a.get("loss", "auto")),
        metrics=tuple(str(a.get("metrics", "loss")).split(",")),
        norm=str(a.get("norm", "filter")),
        ignore=str(a.get("ignore", "biasbn")),
        seed=int(a.get("seed", 0)),
        directions=kind if kind in ("random", "interpolate", "pca", "plane", "hessian") else str(source),
        to=source if kind == "interpolate" else None,
        path=source if plane else None,
        trajectory=source if kind == "pca" else None,
        max_samples=None if max_samples < 0 else max_samples,
        line=tuple(json.loads(a["line"])) if a.get("line") else None,
        batch_size=batch_size or None,
        memory_budget=memory_budget or None,
        mode=str(a.get("mode", "eval")),
        device=device,
        trust_pickle=trust_pickle,
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
    """Evaluate the model exactly along a segment of a 2D surface's plane (the app's slice line).

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


def plane_request(path: str | Path, points: int = 21) -> SurfaceRequest:
    """The surface in the plane through a path file's endpoints and bend (the app's Plane Through Path).

    Model, data and loss are the path's own; the axes frame the endpoints, bend and curve
    with margins; the output is a file next to the path, so asking again resumes or reopens it.
    """
    path = Path(path)
    a = settings_of(path)
    if a.get("kind") != "path":
        raise LandscapeError(f"{path} is not a path file; the plane is drawn through a path's endpoints and bend")
    if a.get("curve", "linear") == "linear":
        raise LandscapeError(f"{path} is a straight path: it has no bend, so no plane through it; compute a "
                             "Bezier or polychain curve first")
    model = str(a.get("model", ""))
    max_samples = int(a.get("max_samples", -1))
    return SurfaceRequest(
        checkpoint=str(a.get("checkpoint", "")), data=str(a.get("data", "")), x=f"auto:{int(points)}",
        y=f"auto:{int(points)}", out=str(path.with_name(f"{path.stem}_plane.h5")),
        model=None if not model or model.startswith("<") else model, model_kwargs=json.loads(a.get("model_kwargs") or "{}"),
        loss=str(a.get("loss", "auto")), directions="plane", path=str(path.resolve()),
        max_samples=None if max_samples < 0 else max_samples,
    )


__all__ = [
    "METRICS", "SETTINGS_KEYS", "SurfaceJob", "SurfaceProgress", "SurfaceRequest", "SurfaceSummary",
    "line_request", "parse_line", "plane_request", "resume_request",
]
