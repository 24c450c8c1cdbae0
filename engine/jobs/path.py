"""Mode connectivity as a job: the loss along a straight line or a trained curve between checkpoints A and B.

::

    job = PathJob(PathRequest(a="a.pt", b="b.pt", data="train.npz", curve="bezier", epochs=20, out="p.h5"))
    for progress in job.run():   # epochs while the bends train, then points along t
        ...

Work comes in this order, so the first numbers arrive first: the straight lines drawn
for comparison (``linear``, and ``linear_aligned`` after ``--align``), the curve's
training (epochs, each saved), then the requested path. Running the same request
again resumes the file from its last saved epoch and point.

At every evaluated point of a model with BatchNorm, the running statistics are
re-estimated at that point's weights over the training data (``bn_recompute``), as
Garipov et al. do; without it they are interpolated between A's and B's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch.func import functional_call

from engine.errors import LandscapeError
from engine.io.checkpoints import load_checkpoint, pickle_import_folders, save_checkpoint
from engine.io.data import load_data
from engine.io.store import GridWriter, WriterLock, create_file, settings_of
from engine.io.store.paths import (
    LOG_COLUMNS, path_layout, read_endpoint_b, read_path, read_training_state, series_prefix, set_log_count,
    value_names, write_barriers, write_training_state,
)
from engine.io.store.logs import append_log, read_log
from engine.io.store.files import open_h5
from engine.jobs.base import Job, Progress, RateMeter, Summary, json_safe
from engine.jobs.spec import LoadedProblem, ProblemSpec, absolute_data_reference, absolute_path, load_problem
from engine.numerics.curve_training import CurveTrainer, TrainingSettings, has_batchnorm
from engine.numerics.curves import CURVES, CurveShape, curve_length, curve_point, gram, straight_bends, t_grid
from engine.numerics.evaluate import keep_freed_memory
from engine.numerics.problem import Problem, resolve_device
from engine.numerics.threads import forward_flops, intra_op_threads, threads_for

TRAINING, EVALUATING = "training", "evaluating"
ALIGNMENTS = ("none", "weight-matching")
BN_CHOICES = ("auto", "on", "off")
FLUSH_SECONDS = 0.5
PROGRESS_SECONDS = 0.2  # a training progress step at most this often (live loss without flooding)
ALIGNMENT_TOLERANCE = 1e-4  # largest output change of the aligned B, relative to its outputs' scale
SETTINGS_KEYS = (
    "checkpoint_sha256", "b_checkpoint_sha256", "model", "model_kwargs", "data_sha256", "test_data_sha256", "loss",
    "curve", "bends", "align", "bn_recompute", "bn_samples", "seed", "epochs", "lr", "optimizer", "momentum",
    "weight_decay", "schedule", "train_batch_size", "series",
)

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class PathRequest:
    """Everything that defines a path between two checkpoints (see ``landscape path --help``)."""

    a: str
    b: str
    data: str
    out: str
    test_data: str | None = None
    model: str | None = None
    model_kwargs: Mapping[str, Any] | None = None
    loss: str = "auto"
    curve: str = "linear"  # linear | bezier | polychain
    bends: int | None = None  # bends of a curve (default 1); none for linear
    epochs: int = 20
    lr: float = 0.015
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "garipov"
    batch_size: int = 128  # training minibatch
    points: int = 61  # values of t from A (0) to B (1)
    t_range: tuple[float, float] = (0.0, 1.0)
    align: str = "none"  # none | weight-matching
    bn_recompute: str = "auto"  # auto: when the model has BatchNorm
    bn_samples: int | None = None  # re-estimate BatchNorm statistics on a seeded subset of this many samples
    seed: int = 0
    max_samples: int | None = None
    device: str | None = None
    eval_batch_size: int | None = None
    memory_budget: int | None = None
    save_aligned: str | None = None  # write the aligned B here (a Landscape checkpoint)
    baselines: bool = True  # also the straight line(s) drawn for comparison (before and after alignment)
    trust_pickle: bool = False
    overwrite: bool = False
    flush_seconds: float = FLUSH_SECONDS

    @property
    def shape(self) -> CurveShape:
        bends = 0 if self.curve == "linear" and self.bends is None else (1 if self.bends is None else int(self.bends))
        return CurveShape(self.curve, bends)

    def training(self) -> TrainingSettings:
        return TrainingSettings(epochs=int(self.epochs), lr=float(self.lr), optimizer=self.optimizer,
                                momentum=float(self.momentum), weight_decay=float(self.weight_decay),
                                schedule=self.schedule, batch_size=int(self.batch_size), seed=int(self.seed))

    def problem_spec(self) -> ProblemSpec:
        return ProblemSpec(checkpoint=self.a, data=self.data, model=self.model, model_kwargs=self.model_kwargs,
                           loss=self.loss, max_samples=self.max_samples, device=self.device,
                           batch_size=self.eval_batch_size, mode="eval", memory_budget=self.memory_budget,
                           trust_pickle=self.trust_pickle).resolved()


@dataclass(frozen=True)
class PathProgress(Progress):
    """A step: points of one series (``series``, ``indices``, ``values``) or a training minibatch (``epoch``, ``loss``)."""

    series: str = ""
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    values: Mapping[str, np.ndarray] = field(default_factory=dict)
    epoch: int = 0  # epochs finished
    epochs: int = 0
    loss: float | None = None  # training: mean minibatch loss since the last step
    epoch_loss: float | None = None  # training: the mean loss of the epoch just finished


@dataclass
class _Series:
    """One path to evaluate: its control points, curve shape, B's buffers, and its place in the file."""

    name: str
    shape: CurveShape
    b_state: Tensors  # B's parameters and buffers as this series uses them (aligned or not)
    done: np.ndarray
    writer: GridWriter


@dataclass
class _Prepared:
    loaded: LoadedProblem
    test: Problem | None
    t: np.ndarray
    names: list[str]
    series: list[_Series]  # evaluation order: baselines first, the main path last
    main: str
    bn: bool
    trainer: CurveTrainer | None
    epoch: int  # epochs finished (saved in the file)
    resumed_from: int
    details: dict[str, Any]
    threads: int  # intra-op threads for evaluating a point (one for small models: engine.numerics.threads)


class PathJob(Job):
    """Computes one path file; see the module docstring."""

    kind = "path"
    unit = "step"
    noun = "steps (points and epochs)"

    def __init__(self, request: PathRequest) -> None:
        super().__init__(request)
        self._lock = WriterLock(request.out)
        self._state: _Prepared | None = None
        self.computed = 0
        self._unsaved: list[list[float]] = []  # training log rows of epochs not saved yet
        self._between_epochs = True  # no minibatch has run since the last finished epoch

    def _ready(self) -> _Prepared:
        if self._state is None:
            raise RuntimeError("the job is not prepared yet")
        return self._state

    @property
    def total(self) -> int:
        state = self._ready()
        return len(state.t) * len(state.series) + (self.request.epochs if state.trainer else 0)

    @property
    def resumed_from(self) -> int:
        return self._ready().resumed_from

    def _done_count(self) -> int:
        state = self._ready()
        return int(sum(s.done.sum() for s in state.series)) + (state.epoch if state.trainer else 0)

    # -- prepare ----------------------------------------------------------------------------------
    def _prepare(self) -> None:
        r = self.request
        shape, t = self._check_request()
        out = Path(r.out)
        resolve_device(r.device)  # a device this machine lacks is said before any file is locked
        self._lock.acquire()
        keep_freed_memory()  # a point's activations are reused, not returned to the OS and faulted in again
        existing = out.exists() and not r.overwrite
        recorded = self.recorded_settings(out) if existing else {}
        spec = r.problem_spec()
        if existing and r.eval_batch_size is None and recorded.get("batch_size"):
            spec = replace(spec, batch_size=int(recorded["batch_size"]))
        loaded = load_problem(spec)
        problem = loaded.problem
        b_checkpoint = load_checkpoint(r.b, trust_pickle=r.trust_pickle, import_from=pickle_import_folders(r.model))
        _check_same_architecture(loaded, b_checkpoint)
        a_state = dict(problem.origin())
        b_state = _laid_out_like(a_state, loaded.state_of(b_checkpoint))
        test = self._test_problem(loaded)
        bn = self._batchnorm_choice(problem)
        settings = {
            **loaded.provenance(), "b_checkpoint": absolute_path(r.b), "b_checkpoint_sha256": b_checkpoint.sha256,
            "test_data": absolute_data_reference(r.test_data) if r.test_data else "",
            "test_data_sha256": test.data.sha256 if test else "", "curve": shape.kind, "bends": shape.bends,
            "align": r.align, "bn_recompute": "on" if bn else "off",
            "bn_samples": -1 if r.bn_samples is None else int(r.bn_samples), "seed": int(r.seed),
            **self._training_settings(shape),
        }
        details: dict[str, Any] = {"curve": shape.kind, "bends": shape.bends, "bn_recompute": settings["bn_recompute"],
                                   "align": r.align}
        aligned: Tensors | None = None
        permutations: dict[str, np.ndarray] | None = None
        if r.align == "weight-matching":
            stored = read_endpoint_b(out) if existing else None
            if stored is not None:  # resuming: the aligned B as the file recorded it (same bits, no matching)
                aligned = {**b_state, **_laid_out_like(a_state, stored)}
                details["alignment"] = {k[len("alignment_"):]: v for k, v in recorded.items()
                                        if k.startswith("alignment_")}
            else:
                aligned, permutations, facts = self._align(loaded, a_state, b_state)
                details["alignment"] = facts
                settings.update({f"alignment_{k}": v for k, v in facts.items()})
        main = "curve" if shape.kind != "linear" else ("linear_aligned" if aligned is not None else "linear")
        names = value_names(["loss"] + (["acc"] if problem.classification else []), test is not None)
        order = ["linear"] + (["linear_aligned"] if aligned is not None else []) + (["curve"] if main == "curve" else [])
        if not r.baselines:
            order = [main]
        settings["series"] = ",".join(order)
        b_used = aligned if aligned is not None else b_state
        params = list(problem.params())
        trainer = None
        if shape.kind != "linear":
            bends = straight_bends({n: a_state[n] for n in params}, {n: b_used[n] for n in params}, shape)
            trainer = CurveTrainer(problem, shape, {n: a_state[n] for n in params}, {n: b_used[n] for n in params},
                                   bends, r.training())
        if existing:
            self._check_resumable(out, recorded, settings, t)
        else:
            create_file(out, path_layout(
                t=t, main=main, series=order, names=names,
                bends=trainer.bends_now() if trainer else [],
                optimizer_state=trainer.optimizer_state() if trainer else {},
                epochs=r.epochs if trainer else 0,
                endpoint_b={k: v.detach().cpu() for k, v in b_used.items() if v.is_floating_point()}
                if aligned is not None else None,
                permutations=permutations, attrs={**settings, "points": int(r.points), "t_min": float(t[0]),
                                                  "t_max": float(t[-1]), "mode": "eval"}))
        epoch = 0
        if trainer is not None:
            epoch, bends, optimizer = read_training_state(out)
            trainer.load(bends, optimizer, epoch)
            if len(read_log(out, "training").rows) > epoch:  # an epoch logged but not saved: it is trained again
                set_log_count(out, "training", epoch)
        series = []
        with open_h5(out) as handle:
            for name in order:
                prefix = series_prefix(name, main)
                done = np.asarray(handle[prefix + "done"][()]).astype(bool)
                series_shape = shape if name == "curve" else CurveShape("linear", 0)
                state = b_state if name == "linear" else b_used
                series.append(_Series(name, series_shape, state, done,
                                      GridWriter(out, [prefix + v for v in names], done=prefix + "done")))
        threads = threads_for(forward_flops(problem.model, next(iter(problem.batches()))[0]))
        self._state = _Prepared(loaded, test, t, names, series, main, bn, trainer, epoch, 0, details, threads)
        self._state.resumed_from = self._done_count()
        if self._state.resumed_from:
            self.messages.append(f"resuming {out}: {self._state.resumed_from} of {self.total} {self.noun} already done")

    def _check_request(self) -> tuple[CurveShape, np.ndarray]:
        r = self.request
        if r.curve not in CURVES:
            raise LandscapeError(f"unknown curve '{r.curve}'; choose one of {', '.join(CURVES)}")
        shape = r.shape
        if shape.kind != "linear":
            r.training().check()
        if r.align not in ALIGNMENTS:
            raise LandscapeError(f"unknown --align '{r.align}'; choose none or weight-matching")
        if r.bn_recompute not in BN_CHOICES:
            raise LandscapeError(f"unknown --bn-recompute '{r.bn_recompute}'; choose auto, on or off")
        if r.bn_samples is not None and r.bn_samples < 1:
            raise LandscapeError("--bn-samples must be at least 1")
        if Path(r.out).is_dir():
            raise LandscapeError(f"--out {r.out} is a folder; name a .h5 file")
        if not r.flush_seconds > 0:
            raise LandscapeError("--flush-seconds must be positive")
        for name, value in (("first", r.a), ("second", r.b)):
            if not Path(value).is_file():
                raise LandscapeError(f"no such checkpoint ({name} endpoint): {value}")
        return shape, t_grid(int(r.points), *r.t_range)

    def _training_settings(self, shape: CurveShape) -> dict[str, Any]:
        if shape.kind == "linear":
            return {"epochs": 0, "lr": 0.0, "optimizer": "", "momentum": 0.0, "weight_decay": 0.0, "schedule": "",
                    "train_batch_size": 0}
        s = self.request.training()
        return {"epochs": s.epochs, "lr": s.lr, "optimizer": s.optimizer, "momentum": s.momentum,
                "weight_decay": s.weight_decay, "schedule": s.schedule, "train_batch_size": s.batch_size}

    def _test_problem(self, loaded: LoadedProblem) -> Problem | None:
        r = self.request
        if not r.test_data:
            return None
        data = load_data(absolute_data_reference(r.test_data))
        problem = loaded.problem
        test = Problem(problem.model, data, problem.loss_name, problem.device, r.eval_batch_size, copy_model=False,
                       mode="eval", memory_budget=problem.memory_budget)
        test.check_output()
        return test

    def _batchnorm_choice(self, problem: Problem) -> bool:
        has = has_batchnorm(problem.model)
        if self.request.bn_recompute == "on" and not has:
            self.messages.append("note: the model has no BatchNorm running statistics; --bn-recompute on does nothing")
        return has and self.request.bn_recompute != "off"

    def _align(self, loaded: LoadedProblem, a_state: Tensors,
               b_state: Tensors) -> tuple[Tensors, dict[str, np.ndarray], dict[str, Any]]:
        """Weight matching of B's hidden units to A's; checks that the aligned B computes what B does."""
        from engine.numerics.alignment import align, max_output_difference

        problem = loaded.problem
        example = next(iter(problem.batches()))[0][:2]
        result = align(problem.model, a_state, b_state, example, seed=self.request.seed)
        inputs = [x for x, _ in problem.batches()]
        difference = max_output_difference(problem.model, b_state, result.state, inputs)
        with torch.inference_mode():
            scale = max(float(functional_call(problem.model, b_state, (x,)).abs().max()) for x in inputs)
        if not difference <= ALIGNMENT_TOLERANCE * max(scale, 1.0):
            raise LandscapeError(
                f"weight matching changed what B computes (largest output difference {difference:.3g}); the "
                "permutation groups of this model are not derived correctly: use --align none and report the model")
        facts = {"max_output_difference": float(difference), "iterations": int(result.iterations),
                 "similarity_before": float(result.similarity_before),
                 "similarity_after": float(result.similarity_after), "groups": len(result.perms)}
        self.messages.append(f"aligned B to A by weight matching ({len(result.perms)} groups of hidden units, "
                             f"{result.iterations} sweeps); largest output difference {difference:.2g}")
        aligned = _laid_out_like(a_state, result.state)
        if self.request.save_aligned:
            self._save_aligned(loaded, aligned)
        return aligned, result.perms, facts

    def _save_aligned(self, loaded: LoadedProblem, aligned: Tensors) -> None:
        r = self.request
        metadata = {"aligned_from": absolute_path(r.b), "aligned_to": absolute_path(r.a), "alignment": r.align}
        target = Path(r.save_aligned or "")
        if target.suffix.lower() not in (".pt", ".pth"):
            raise LandscapeError(f"--save-aligned {target}: name a .pt file")
        if loaded.model_ref:
            save_checkpoint(target, model_factory=loaded.model_ref, model_kwargs=loaded.model_kwargs,
                            state_dict=aligned, metadata=metadata)
        else:
            torch.save({k: v.detach().cpu() for k, v in aligned.items()}, target)
        self.messages.append(f"wrote the aligned B to {target}")

    def _check_resumable(self, out: Path, recorded: dict[str, Any], settings: dict[str, Any], t: np.ndarray) -> None:
        self.refuse_other_settings(out, recorded, settings, SETTINGS_KEYS)
        with open_h5(out) as handle:
            stored = np.asarray(handle["t"][()]) if "t" in handle else np.zeros(0)
        if stored.shape != t.shape or not np.allclose(stored, t):
            raise LandscapeError(f"{out} has other values of t (--points/--t-range); pass --overwrite to replace it "
                                 "or choose another --out")

    # -- run --------------------------------------------------------------------------------------
    def _steps(self) -> Iterator[PathProgress]:
        state = self._ready()
        meter = RateMeter()
        for series in state.series[:-1] if state.trainer else state.series:  # the main path is last
            yield from self._evaluate(series, meter)
            if self._stop.is_set():
                return
        if state.trainer is not None:
            yield from self._train(meter)
            if self._stop.is_set() or state.epoch < self.request.epochs:
                return
            yield from self._evaluate(state.series[-1], meter)

    def _evaluate(self, series: _Series, meter: RateMeter) -> Iterator[PathProgress]:
        state = self._ready()
        controls = self._controls(series)
        last_flush = time.perf_counter()
        for index in _coarse_to_fine(len(state.t)):
            if series.done[index]:
                continue
            values = self._point(series, controls, float(state.t[index]))
            series.writer.put(np.array([index]), {f"{series_prefix(series.name, state.main)}{k}": np.array([v])
                                                  for k, v in values.items()})
            series.done[index] = True
            self.computed += 1
            now = time.perf_counter()
            if now - last_flush >= self.request.flush_seconds or series.done.all():
                series.writer.flush()
                last_flush = now
            yield self._progress(EVALUATING, meter.eta(now, self.computed, self.total - self._done_count()),
                                 series=series.name, indices=np.array([index]),
                                 values={k: np.array([v]) for k, v in values.items()})
            if self._stop.is_set():
                break
        series.writer.flush()

    def _controls(self, series: _Series) -> list[Tensors]:
        state = self._ready()
        params = state.loaded.problem.params()
        a = {n: state.loaded.problem.origin()[n] for n in params}
        if series.name == "curve":
            assert state.trainer is not None
            return state.trainer.controls()
        return [a, {n: series.b_state[n] for n in params}]

    def _point(self, series: _Series, controls: list[Tensors], t: float) -> dict[str, float]:
        """Loss and accuracy (train, test) at w(t), with this point's BatchNorm statistics."""
        state = self._ready()
        problem = state.loaded.problem
        with torch.inference_mode(), intra_op_threads(state.threads):
            params = curve_point(series.shape, controls, t)
            buffers = self._buffers(series, params, t)
            result = {}
            for split, target in (("train", problem), ("test", state.test)):
                if target is None:
                    continue
                metrics = target.metrics_at(params, buffers)
                result[f"{split}_loss"] = metrics.loss
                if metrics.acc is not None:
                    result[f"{split}_acc"] = metrics.acc
        return {k: v for k, v in result.items() if k in state.names}

    def _buffers(self, series: _Series, params: Tensors, t: float) -> Tensors | None:
        state = self._ready()
        problem = state.loaded.problem
        if state.bn:
            return problem.bn_statistics(params, self.request.bn_samples, self.request.seed)
        a = problem.origin()
        buffers = {k: v for k, v in a.items() if k not in params}
        if not buffers or t == 0.0:
            return None
        if t == 1.0:
            return {k: series.b_state[k] for k in buffers}
        w = min(max(t, 0.0), 1.0)  # statistics are not extrapolated (a variance must stay positive)
        return {k: torch.lerp(v, series.b_state[k].to(v.dtype), w) if v.is_floating_point() else v
                for k, v in buffers.items()}

    def _train(self, meter: RateMeter) -> Iterator[PathProgress]:
        """Train epoch after epoch; save (log rows, bends, optimizer state) every ``flush_seconds`` and at the end.

        A kill loses at most the epochs since the last save; a cancel between two epochs saves
        them (in :meth:`_finish`: the bends are still the last finished epoch's).
        """
        state = self._ready()
        trainer = state.trainer
        assert trainer is not None
        last_save = time.perf_counter()
        while state.epoch < self.request.epochs:
            started = time.perf_counter()
            losses: list[float] = []
            pending: list[float] = []
            last = started
            finished = False
            for report in trainer.epoch(state.epoch, self._stop.is_set):
                self._between_epochs = False
                finished = report.step == report.steps
                losses.append(report.loss)
                pending.append(report.loss)
                now = time.perf_counter()
                if now - last >= PROGRESS_SECONDS:
                    fraction = report.step / report.steps
                    yield self._progress(TRAINING, meter.eta(now, self.computed + fraction, self.total - self._done_count()
                                                             - fraction), epoch=state.epoch, loss=float(np.mean(pending)))
                    pending, last = [], now
            if not finished:
                return  # stopped within an epoch: it is lost, and a resume trains it again from the saved bends
            mean = float(np.mean(losses)) if losses else float("nan")
            self._unsaved.append([state.epoch + 1, mean, trainer.settings.learning_rate(state.epoch),
                                  time.perf_counter() - started])
            state.epoch += 1
            self.computed += 1
            self._between_epochs = True
            now = time.perf_counter()
            if now - last_save >= self.request.flush_seconds or state.epoch == self.request.epochs:
                self._save_training()
                last_save = now
            yield self._progress(TRAINING, meter.eta(now, self.computed, self.total - self._done_count()),
                                 epoch=state.epoch, loss=float(np.mean(pending)) if pending else mean, epoch_loss=mean)

    def _save_training(self) -> None:
        """The log rows of the epochs since the last save, then the state after the last of them."""
        state = self._ready()
        if state.trainer is None or not self._unsaved:
            return
        out = Path(self.request.out)
        with open_h5(out, "r+") as handle:
            append_log(handle, "training", np.array(self._unsaved))
        write_training_state(out, state.epoch, state.trainer.bends_now(), state.trainer.optimizer_state())
        self._unsaved.clear()

    def _progress(self, phase: str, eta: float | None, **fields: Any) -> PathProgress:
        state = self._ready()
        fields.setdefault("epoch", state.epoch)
        return PathProgress(kind=self.kind, path=Path(self.request.out), phase=phase, done=self._done_count(),
                            total=self.total, computed=self.computed, elapsed=self.seconds, eta=eta,
                            epochs=self.request.epochs if state.trainer else 0, **fields)

    def _complete(self) -> bool:
        state = self._ready()
        return all(s.done.all() for s in state.series) and (state.trainer is None or state.epoch >= self.request.epochs)

    def _finish(self) -> None:
        if self._state is None:
            return
        if self._between_epochs:  # stopped between epochs: the bends are a finished epoch's, keep them
            self._save_training()
        for series in self._state.series:
            series.writer.flush()
        write_barriers(self.request.out, self._barriers())

    def close(self) -> None:
        self._lock.release()

    def _barriers(self) -> dict[str, Any]:
        """series -> {"length": ..., value -> barrier numbers}: what the file records and --json prints."""
        state = self._ready()
        result = read_path(self.request.out)
        barriers: dict[str, Any] = {}
        for series in state.series:
            controls = self._controls(series)
            g = gram(controls)
            entry: dict[str, Any] = {"length": float(curve_length(series.shape, g))}
            entry.update(result.series[series.name].barriers(result.t))
            barriers[series.name] = entry
        return barriers

    def _summary(self) -> Summary:
        state = self._ready()
        result = read_path(self.request.out)
        barriers = self._barriers()
        metrics = {}
        for name, array in result.values.items():
            picked = array[result.done]
            finite = picked[np.isfinite(picked)]
            metrics[name] = {"min": float(finite.min()) if finite.size else None,
                             "max": float(finite.max()) if finite.size else None,
                             "nonfinite": int(picked.size - finite.size)}
        return PathSummary(
            kind=self.kind, path=Path(self.request.out).resolve(), shape=(len(state.t),), done=self._done_count(),
            total=self.total, computed=self.computed, resumed_from=state.resumed_from, seconds=self.seconds,
            cancelled=not self._complete(), metrics=metrics,
            details={**state.details, "main": state.main, "series": [s.name for s in state.series],
                     "epochs_done": state.epoch if state.trainer else 0, "barriers": json_safe(barriers)},
        )


@dataclass(frozen=True)
class PathSummary(Summary):
    """A path job's summary; :meth:`describe` says the barriers."""

    def describe(self) -> str:
        lines = [f"wrote {self.path}: {self.done}/{self.total} steps, computed {self.computed} in {self.seconds:.1f} s"]
        for series, entry in self.details.get("barriers", {}).items():
            loss = entry.get("train_loss", {})
            if loss.get("interpolated") is None:
                lines.append(f"  {series}: not complete")
                continue
            text = (f"  {series}: train loss barrier {loss['interpolated']:.4g} at t={loss['interpolated_t']:.3g} "
                    f"(over the endpoints' mean: {loss['midpoint']:.4g}), max {loss['max']:.4g}, "
                    f"mean {loss['mean']:.4g}, length {entry['length']:.4g}")
            error = entry.get("train_error", {})
            if error.get("interpolated") is not None:
                text += f"; error barrier {error['interpolated']:.3g} points"
            lines.append(text)
        return "\n".join(lines)


def _coarse_to_fine(n: int) -> list[int]:
    """0, n-1, the middle, the quarters, ...: a path's shape shows after a few points."""
    order, seen = [], set()
    step = 1 << max(0, (n - 1).bit_length())
    while step >= 1:
        for index in range(0, n, step):
            if index not in seen:
                seen.add(index)
                order.append(index)
        if n - 1 not in seen:
            seen.add(n - 1)
            order.append(n - 1)
        step //= 2
    return order


def _laid_out_like(a: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor]) -> Tensors:
    """B's tensors on A's device, in A's dtype and memory layout (channels_last on the CPU), so that every
    point of a path runs the same kernels: a path from A to a copy of A is then exactly flat."""
    return {k: torch.empty_like(a[k]).copy_(v) if k in a else v for k, v in tensors.items()}


def _check_same_architecture(loaded: LoadedProblem, b: Any) -> None:
    """B must be the same architecture as A: the same factory and kwargs when both checkpoints name one."""
    a = loaded.checkpoint
    if a.model_factory and b.model_factory and (a.model_factory != b.model_factory or
                                                 dict(a.model_kwargs) != dict(b.model_kwargs)):
        raise LandscapeError(
            f"the endpoints are different architectures: {a.path.name} is {a.model_factory}"
            f"({json.dumps(a.model_kwargs, sort_keys=True)}), {b.path.name} is {b.model_factory}"
            f"({json.dumps(b.model_kwargs, sort_keys=True)}); a path joins two networks of one architecture")


def resume_request(path: str | Path, *, trust_pickle: bool = False, device: str | None = None) -> PathRequest:
    """The request that made a path file, rebuilt from its attributes, to finish it."""
    a = settings_of(path)
    model = str(a.get("model", ""))
    bn_samples = int(a.get("bn_samples", -1))
    max_samples = int(a.get("max_samples", -1))
    curve = str(a.get("curve", "linear"))
    train = {} if curve == "linear" else {
        "epochs": int(a["epochs"]), "lr": float(a["lr"]), "optimizer": str(a["optimizer"]),
        "momentum": float(a["momentum"]), "weight_decay": float(a["weight_decay"]), "schedule": str(a["schedule"]),
        "batch_size": int(a["train_batch_size"]),
    }
    return PathRequest(
        a=str(a.get("checkpoint", "")), b=str(a.get("b_checkpoint", "")), data=str(a.get("data", "")), out=str(path),
        test_data=str(a.get("test_data") or "") or None,
        model=None if not model or model.startswith("<") else model,
        model_kwargs=json.loads(a.get("model_kwargs") or "{}"), loss=str(a.get("loss", "auto")),
        curve=curve, bends=int(a.get("bends", 0)) if curve != "linear" else None, **train,
        points=int(a.get("points", 61)), t_range=(float(a.get("t_min", 0.0)), float(a.get("t_max", 1.0))),
        align=str(a.get("align", "none")), bn_recompute=str(a.get("bn_recompute", "auto")),
        baselines=str(a.get("series", "")) != str(a.get("main", "")),
        bn_samples=None if bn_samples < 0 else bn_samples, seed=int(a.get("seed", 0)),
        max_samples=None if max_samples < 0 else max_samples, eval_batch_size=int(a.get("batch_size", 0)) or None,
        memory_budget=int(a.get("memory_budget", 0)) or None, device=device, trust_pickle=trust_pickle,
    )


__all__ = ["ALIGNMENTS", "BN_CHOICES", "LOG_COLUMNS", "PathJob", "PathProgress", "PathRequest", "PathSummary",
           "resume_request"]
