"""Hessian spectra as a job: extreme eigenpairs, trace, spectral density and an overparameterization report.

::

    job = HessianJob(HessianRequest(checkpoint="m.pt", data="train.npz", top_k=5, trace=True, out="s.h5"))
    for progress in job.run():   # one step per Hessian-vector product
        ...

All of it is computed from Hessian-vector products of the mean loss over the whole data
(:meth:`engine.numerics.problem.Problem.hessian`), at the checkpoint's weights or at a
point θ0 + x·dx + y·dy of a surface file (``at``, ``point``). Work comes in this order:
eigenpairs (Lanczos or power iteration), the trace (Hutch++ or Hutchinson), the density
(stochastic Lanczos quadrature), then the report. Every Lanczos iteration, trace sample
and density probe is saved (every ``flush_seconds``), and running the same request again
resumes from there.

The unit of work is the Hessian-vector product. Adaptive stages (eigenpairs, trace) count
their largest budget until they converge, then what they used.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from engine.errors import LandscapeError
from engine.io.data import load_data
from engine.io.store import WriterLock, create_file, read_axes, read_directions, read_log, settings_of
from engine.io.store.spectra import (
    Spectrum, basis_fits_file, read_lanczos, read_spectrum, reset_lanczos, save_density, save_eigenpairs,
    save_lanczos, save_probe, save_results, save_trace, save_trace_samples, spectrum_layout,
)
from engine.jobs.base import COMPUTING, Job, Progress, RateMeter, Summary, json_safe
from engine.jobs.spec import LoadedProblem, ProblemSpec, absolute_data_reference, absolute_path, load_problem
from engine.numerics.density import (
    DEFAULT_ALPHAS, DEFAULT_GRID, DEFAULT_PROBES, DEFAULT_STEPS, ZERO_TOLERANCE, default_sigma, density_grid,
    effective_dimensionality, gaussian_density, negative_mass,
)
from engine.numerics.evaluate import keep_freed_memory
from engine.numerics.flat import FlatOperator
from engine.numerics.lanczos import (
    Lanczos, PowerIteration, check_counts, converged, split_eigenpairs,
)
from engine.numerics.problem import HVP_METHODS, Problem, resolve_device
from engine.numerics.threads import intra_op_threads
from engine.numerics.trace import MIN_SAMPLES, TRACE_METHODS, TraceEstimator

EIGENPAIRS, TRACE, DENSITY = "eigenpairs", "trace", "density"
EIGEN_METHODS = ("lanczos", "power")
FLUSH_SECONDS = 0.5
INTERPOLATION_R2 = 0.999  # regression "interpolates" when the fit explains this much of the targets' variance
SETTINGS_KEYS = (
    "checkpoint_sha256", "model", "model_kwargs", "data_sha256", "test_data_sha256", "loss", "mode", "max_samples",
    "top_k", "bottom_k", "method", "tol", "max_iter", "eigenvectors", "trace", "trace_method", "trace_tol",
    "trace_sketch", "trace_max_probes", "density", "density_probes", "density_steps", "report", "alphas", "seed",
    "at_sha256", "point",
)

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class HessianRequest:
    """Everything that defines a spectrum file (see ``landscape hessian --help``).

    With none of ``top_k``, ``bottom_k``, ``trace``, ``density`` and ``report`` the top
    eigenvalue is computed; ``report`` adds the top and bottom eigenvalue, the trace and the density.
    """

    checkpoint: str
    data: str
    out: str
    test_data: str | None = None
    model: str | None = None
    model_kwargs: Mapping[str, Any] | None = None
    loss: str = "auto"
    top_k: int = 0
    bottom_k: int = 0
    method: str = "lanczos"  # lanczos | power (largest magnitude, as PyHessian; for comparison)
    tol: float = 1e-5  # Ritz residual, relative to the largest |eigenvalue|
    max_iter: int = 100  # products for the eigenpairs (per eigenpair with power iteration)
    eigenvectors: bool = False  # store the eigenvectors, keyed by parameter name
    trace: bool = False
    trace_method: str = "hutch++"
    trace_tol: float = 0.01  # stop at this relative standard error
    trace_sketch: int = 10  # Hutch++: sketch vectors (2x this many products)
    trace_max_probes: int = 1000
    density: bool = False
    density_probes: int = DEFAULT_PROBES
    density_steps: int = DEFAULT_STEPS
    sigma: float | None = None  # Gaussian width of the drawn density (None: 1% of the spectrum's spread)
    report: bool = False
    alphas: tuple[float, ...] = DEFAULT_ALPHAS  # N_eff(alpha)
    at: str | None = None  # a surface file: the Hessian at one of its points
    point: tuple[float, ...] | None = None  # (x,) or (x, y) in that surface's coordinates
    seed: int = 0
    max_samples: int | None = None
    device: str | None = None
    batch_size: int | None = None
    mode: str = "eval"
    memory_budget: int | None = None
    hvp_method: str = "auto"
    trust_pickle: bool = False
    overwrite: bool = False
    flush_seconds: float = FLUSH_SECONDS

    def wants(self) -> tuple[int, int, bool, bool]:
        """(top_k, bottom_k, trace, density) to compute, after the defaults and what --report needs."""
        top, bottom, trace, density = int(self.top_k), int(self.bottom_k), bool(self.trace), bool(self.density)
        if self.report:
            top, bottom, trace, density = max(top, 1), max(bottom, 1), True, True
        if not (top or bottom or trace or density):
            top = 1
        return top, bottom, trace, density

    def problem_spec(self) -> ProblemSpec:
        return ProblemSpec(checkpoint=self.checkpoint, data=self.data, model=self.model, model_kwargs=self.model_kwargs,
                           loss=self.loss, max_samples=self.max_samples, device=self.device,
                           batch_size=self.batch_size, mode=self.mode, memory_budget=self.memory_budget,
                           trust_pickle=self.trust_pickle).resolved()


@dataclass(frozen=True)
class HessianProgress(Progress):
    """One Hessian-vector product: its ``stage`` and the stage's current ``estimate``."""

    stage: str = ""
    # top/bottom Ritz values (eigenpairs); trace and stderr (trace); probe, probes, and when a probe
    # finishes its quadrature nodes and weights (density)
    estimate: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Stage:
    """Products done and budgeted for one stage; a finished adaptive stage's budget is what it used."""

    done: int = 0
    budget: int = 0
    finished: bool = False


@dataclass
class _Prepared:
    loaded: LoadedProblem
    test: Problem | None
    params: Tensors
    operator: FlatOperator
    wants: tuple[int, int, bool, bool]
    stages: dict[str, _Stage]
    lanczos: Lanczos | None
    saved_steps: int  # Lanczos iterations in the file
    keep_basis: bool
    trace: TraceEstimator | None
    trace_saved: int
    probes_done: np.ndarray
    resumed_from: int
    details: dict[str, Any]


class HessianJob(Job):
    """Computes one spectrum file; see the module docstring."""

    kind = "spectrum"
    unit = "product"
    noun = "Hessian-vector products"

    def __init__(self, request: HessianRequest) -> None:
        super().__init__(request)
        self._lock = WriterLock(request.out)
        self._state: _Prepared | None = None
        self.computed = 0
        self._compute_seconds = 0.0
        self._compute_started: float | None = None
        self._pending_lanczos: list[list[float]] = []
        self._pending_trace: list[list[float]] = []
        self._last_flush = time.perf_counter()
        self._report_cache: dict[str, Any] | None = None

    def _ready(self) -> _Prepared:
        if self._state is None:
            raise RuntimeError("the job is not prepared yet")
        return self._state

    @property
    def total(self) -> int:
        return sum(s.budget for s in self._ready().stages.values())

    @property
    def resumed_from(self) -> int:
        return self._ready().resumed_from

    def _done_count(self) -> int:
        return sum(s.done for s in self._ready().stages.values())

    # -- prepare ----------------------------------------------------------------------------------
    def _prepare(self) -> None:
        r = self.request
        self._check_request()
        out = Path(r.out)
        resolve_device(r.device)
        self._lock.acquire()
        keep_freed_memory()  # a product's activations are reused, not returned to the OS and faulted in again
        existing = out.exists() and not r.overwrite
        recorded = self.recorded_settings(out) if existing else {}
        spec = r.problem_spec()
        for key in ("batch_size", "memory_budget"):  # what the file was computed with: the same bits as before
            if existing and getattr(r, key) is None and recorded.get(key):
                spec = replace(spec, **{key: int(recorded[key])})
        loaded = load_problem(spec)
        problem = loaded.problem
        test = self._test_problem(loaded)
        params, at_settings = self._point_params(loaded)
        wants = r.wants()
        top_k, bottom_k, trace, density = wants
        trainable = problem.trainable
        if not trainable:
            raise LandscapeError("no parameter of the model requires grad, so there is nothing to take the Hessian "
                                 "with respect to; unfreeze the parameters to study (requires_grad=True)")
        dim = int(sum(params[name].numel() for name in trainable))
        check_counts(top_k, bottom_k, dim)
        method = str(recorded.get("hvp_method_used") or "") or r.hvp_method
        if existing and r.hvp_method not in ("auto", method):
            raise LandscapeError(f"{out} was computed with --hvp-method {method}; resume it with the same method "
                                 "(one file never mixes methods) or pass --overwrite")
        operator = FlatOperator(problem.hessian(params, method=method, wrt=trainable))
        settings = {
            **loaded.provenance(), **at_settings,
            "test_data": absolute_data_reference(r.test_data) if r.test_data else "",
            "test_data_sha256": test.data.sha256 if test else "", "top_k": top_k, "bottom_k": bottom_k,
            "method": r.method, "tol": float(r.tol), "max_iter": int(r.max_iter), "eigenvectors": int(r.eigenvectors),
            "trace": int(trace), "trace_method": r.trace_method if trace else "", "trace_tol": float(r.trace_tol),
            "trace_sketch": int(r.trace_sketch) if trace and r.trace_method == "hutch++" else 0,
            "trace_max_probes": int(r.trace_max_probes) if trace else 0, "density": int(density),
            "density_probes": int(r.density_probes) if density else 0,
            "density_steps": int(r.density_steps) if density else 0, "report": int(r.report),
            "alphas": ",".join(repr(float(a)) for a in r.alphas), "seed": int(r.seed), "hvp_method": r.hvp_method,
            "hessian_params": dim,
        }
        eigen = bool(top_k or bottom_k)
        lanczos_capacity = min(int(r.max_iter), dim) if eigen and r.method == "lanczos" else 0
        keep_basis = bool(lanczos_capacity) and basis_fits_file(lanczos_capacity, dim, operator.dtype.itemsize)
        probes, steps = settings["density_probes"], min(settings["density_steps"], dim)
        if existing:
            self.refuse_other_settings(out, recorded, settings, SETTINGS_KEYS)
        else:
            create_file(out, spectrum_layout(
                top_k=top_k, bottom_k=bottom_k,
                eigenvector_like={n: params[n] for n in trainable} if r.eigenvectors and eigen else None,
                basis_shape=(lanczos_capacity, dim) if keep_basis else None,
                basis_dtype=np.dtype(str(operator.dtype).replace("torch.", "")), lanczos_capacity=lanczos_capacity,
                trace_capacity=settings["trace_max_probes"], probes=probes, steps=steps, grid_points=DEFAULT_GRID,
                attrs={**settings, "sigma": float("nan")}))
        stored = read_spectrum(out)
        stages = self._stages(stored, wants, lanczos_capacity, probes, steps)
        state = _Prepared(loaded, test, params, operator, wants, stages, None, 0, keep_basis, None, 0,
                          stored.density_done.copy(), 0, {"method": r.method})
        self._state = state
        if eigen and r.method == "lanczos" and not stored.eigen_done:
            self._restore_lanczos(out, operator, lanczos_capacity)
        if trace and stored.trace is None:
            state.trace = TraceEstimator(operator, r.trace_method, r.trace_sketch, r.seed)
            state.trace.samples = [float(v) for v in stored.trace_samples]
            state.trace_saved = len(state.trace.samples)
            stages[TRACE].done = len(state.trace.samples)
        state.resumed_from = self._done_count()
        if state.resumed_from:
            self.messages.append(f"resuming {out}: {state.resumed_from} {self.noun} already done")

    def _check_request(self) -> None:
        r = self.request
        if r.method not in EIGEN_METHODS:
            raise LandscapeError(f"unknown --method '{r.method}'; choose lanczos or power")
        if r.trace_method not in TRACE_METHODS:
            raise LandscapeError(f"unknown --trace-method '{r.trace_method}'; choose hutch++ or hutchinson")
        if r.hvp_method not in HVP_METHODS:
            raise LandscapeError(f"unknown --hvp-method '{r.hvp_method}'; choose one of {', '.join(HVP_METHODS)}")
        if not r.tol > 0 or not r.trace_tol > 0:
            raise LandscapeError("--tol and --trace-tol must be positive")
        checks = (("--max-iter", r.max_iter, 1), ("--trace-max-probes", r.trace_max_probes, 2),
                  ("--trace-sketch", r.trace_sketch, 1), ("--density-probes", r.density_probes, 1),
                  ("--density-steps", r.density_steps, 2))
        for flag, value, low in checks:
            if int(value) < low:
                raise LandscapeError(f"{flag} must be at least {low}")
        if r.sigma is not None and not r.sigma > 0:
            raise LandscapeError("--sigma must be positive")
        if any(not a > 0 for a in r.alphas) or not r.alphas:
            raise LandscapeError("--alpha takes positive numbers, e.g. --alpha 0.01,0.1,1")
        if (r.at is None) != (r.point is None):
            raise LandscapeError("--at SURFACE.h5 and --point X,Y go together: the Hessian at that point of the surface")
        if Path(r.out).is_dir():
            raise LandscapeError(f"--out {r.out} is a folder; name a .h5 file")
        if not r.flush_seconds > 0:
            raise LandscapeError("--flush-seconds must be positive")
        if not Path(r.checkpoint).is_file():
            raise LandscapeError(f"no such checkpoint: {r.checkpoint}")

    def _test_problem(self, loaded: LoadedProblem) -> Problem | None:
        r = self.request
        if not r.test_data:
            return None
        problem = loaded.problem
        test = Problem(problem.model, load_data(absolute_data_reference(r.test_data)), problem.loss_name,
                       problem.device, r.batch_size, copy_model=False, mode=problem.mode,
                       memory_budget=problem.memory_budget)
        test.check_output()
        return test

    def _point_params(self, loaded: LoadedProblem) -> tuple[Tensors, dict[str, Any]]:
        """The weights the Hessian is taken at: the checkpoint's, or θ0 + x·dx + y·dy of a surface file."""
        r = self.request
        params = loaded.problem.params()
        if r.at is None:
            return params, {"at": "", "at_sha256": "", "point": ""}
        at = Path(r.at)
        attrs = settings_of(at)
        if attrs.get("format") != "landscape" or attrs.get("kind", "surface") != "surface":
            raise LandscapeError(f"--at {at} is not a Landscape surface file")
        if str(attrs.get("checkpoint_sha256", "")) != loaded.checkpoint.sha256:
            raise LandscapeError(f"--at {at} was computed around another checkpoint; pass the checkpoint it was made "
                                 f"from ({attrs.get('checkpoint', '?')})")
        point = tuple(float(v) for v in r.point or ())
        x, y = read_axes(at)
        axes = [x] if y is None else [x, y]
        if len(point) != len(axes):
            raise LandscapeError(f"--point takes {len(axes)} coordinate(s) for this {len(axes)}D surface, "
                                 f"got {len(point)}")
        for name, value, axis in zip("xy", point, axes):
            low, high = float(np.min(axis)), float(np.max(axis))
            slack = 1e-9 * max(1.0, high - low)
            if not (math.isfinite(value) and low - slack <= value <= high + slack):
                raise LandscapeError(f"--point {name}={value:g} is outside the surface's {name} range "
                                     f"[{low:g}, {high:g}]; pick a point on its grid")
        directions = read_directions(at)
        moved = {}
        for name, origin in params.items():
            value = origin.clone()
            for coordinate, direction in zip(point, directions):
                if name in direction:
                    value += coordinate * direction[name].to(dtype=origin.dtype, device=origin.device)
            moved[name] = value
        from engine.io.store.tensors import tensor_group_digests

        digest = ",".join(tensor_group_digests(at, "directions")[a] for a in ("x", "y")[:len(point)])
        return moved, {"at": absolute_path(str(at)), "at_sha256": digest, "point": ",".join(repr(v) for v in point)}

    def _stages(self, stored: Spectrum, wants: tuple[int, int, bool, bool], capacity: int, probes: int,
                steps: int) -> dict[str, _Stage]:
        r = self.request
        top_k, bottom_k, trace, density = wants
        stages = {}
        if top_k or bottom_k:
            if r.method == "lanczos":
                budget = capacity
            else:
                budget = int(r.max_iter) * (max(top_k, 1 if bottom_k else 0) + bottom_k)
            stages[EIGENPAIRS] = _Stage(0, budget, stored.eigen_done)
            if stored.eigen_done:  # what it used, as far as the file says (power iteration logs no steps)
                used = len(read_log(self.request.out, "lanczos").rows) if r.method == "lanczos" else 0
                stages[EIGENPAIRS].done = stages[EIGENPAIRS].budget = used
        if trace:
            sketch = 2 * int(r.trace_sketch) if r.trace_method == "hutch++" else 0
            stages[TRACE] = _Stage(0, sketch + int(r.trace_max_probes), stored.trace is not None)
            if stored.trace is not None:
                stages[TRACE].done = stages[TRACE].budget = sketch + len(stored.trace_samples)
        if density:
            done = int(stored.density_done.sum())
            drawn = stored.density.size > 0 and bool(np.isfinite(stored.density).all())
            stages[DENSITY] = _Stage(done * steps, probes * steps, bool(stored.density_done.all()) and drawn)
        return stages

    def _restore_lanczos(self, out: Path, operator: FlatOperator, capacity: int) -> None:
        state = self._ready()
        lanczos = Lanczos(operator, capacity, self.request.seed)
        basis, alpha, beta = read_lanczos(out)
        if len(alpha):
            if basis is None:
                reset_lanczos(out)
                self.messages.append("note: this model's Lanczos vectors are too large to keep in the file; the "
                                     "eigenvalue iterations start over")
            else:
                lanczos.restore(torch.from_numpy(basis), alpha, beta)
        state.lanczos = lanczos
        state.saved_steps = lanczos.steps
        state.stages[EIGENPAIRS].done = lanczos.steps

    # -- run --------------------------------------------------------------------------------------
    def _steps(self) -> Iterator[HessianProgress]:
        state = self._ready()
        meter = RateMeter()
        self._compute_started = time.perf_counter()
        self._last_flush = time.perf_counter()
        stages = ((EIGENPAIRS, self._eigenpairs), (TRACE, self._trace), (DENSITY, self._density))
        # The estimators' own vector operations are as small as the products' ops: the same threads for both.
        with intra_op_threads(state.operator.threads):
            for name, run in stages:
                if name in state.stages and not state.stages[name].finished:
                    yield from run(meter)
                    if self._stop.is_set():
                        return

    def _progress(self, stage: str, meter: RateMeter, **estimate: Any) -> HessianProgress:
        now = time.perf_counter()
        return HessianProgress(kind=self.kind, path=Path(self.request.out), phase=COMPUTING, done=self._done_count(),
                               total=self.total, computed=self.computed, elapsed=self.seconds,
                               eta=meter.eta(now, self.computed, self.total - self._done_count()), stage=stage,
                               estimate=estimate)

    def _due(self) -> bool:
        now = time.perf_counter()
        if now - self._last_flush >= self.request.flush_seconds:
            self._last_flush = now
            return True
        return False

    def _eigenpairs(self, meter: RateMeter) -> Iterator[HessianProgress]:
        if self.request.method == "power":
            yield from self._power(meter)
            return
        state = self._ready()
        lanczos = state.lanczos
        assert lanczos is not None
        top_k, bottom_k, _, _ = state.wants
        stage = state.stages[EIGENPAIRS]
        ritz = lanczos.ritz() if lanczos.steps else None
        while ritz is None or not (converged(lanczos, ritz, top_k, bottom_k, self.request.tol) or lanczos.exhausted):
            lanczos.step()
            self._pending_lanczos.append([lanczos.steps, lanczos.alpha[-1], lanczos.beta[-1]])
            self.computed += 1
            stage.done = lanczos.steps
            ritz = lanczos.ritz()
            if self._due():
                self._save_lanczos()
            yield self._progress(EIGENPAIRS, meter, top=ritz.values[ritz.top(top_k)].tolist(),
                                 bottom=ritz.values[ritz.bottom(bottom_k)].tolist())
            if self._stop.is_set():
                return
        self._save_lanczos()
        top, bottom = split_eigenpairs(lanczos, ritz, top_k, bottom_k, self.request.eigenvectors)
        self._save_eigenpairs(top.values, top.residuals, top.vectors, bottom.values, bottom.residuals, bottom.vectors)

    def _power(self, meter: RateMeter) -> Iterator[HessianProgress]:
        """Power iteration: top-k by magnitude, then bottom-k of the operator shifted by the top eigenvalue.
        Not resumable mid-way (it is there for comparison): an interrupted run starts it over."""
        state = self._ready()
        r = self.request
        top_k, bottom_k, _, _ = state.wants
        stage = state.stages[EIGENPAIRS]
        stage.done = 0
        first = PowerIteration(state.operator, max(top_k, 1 if bottom_k else 0), r.tol, r.max_iter, r.seed)
        runs = [first]
        while True:
            power = runs[-1]
            while not power.done:
                power.step()
                self.computed += 1
                stage.done += 1
                yield self._progress(EIGENPAIRS, meter, values=list(power.values))
                if self._stop.is_set():
                    return
            if len(runs) == 1 and bottom_k:
                shift = max(first.values)
                runs.append(PowerIteration(state.operator, bottom_k, r.tol, r.max_iter, r.seed + 1, shift=shift))
                continue
            break
        top = first.result()
        order = np.argsort(-top.values)[:top_k]
        bottom = runs[-1].result() if bottom_k else None
        b_order = np.argsort(bottom.values) if bottom is not None else np.zeros(0, int)
        self._save_eigenpairs(
            top.values[order], top.residuals[order], top.vectors[order] if top.vectors is not None and top_k else None,
            bottom.values[b_order] if bottom else np.zeros(0), bottom.residuals[b_order] if bottom else np.zeros(0),
            bottom.vectors[b_order] if bottom is not None and bottom.vectors is not None else None)

    def _save_eigenpairs(self, top: np.ndarray, top_res: np.ndarray, top_vectors: torch.Tensor | None,
                         bottom: np.ndarray, bottom_res: np.ndarray, bottom_vectors: torch.Tensor | None) -> None:
        state = self._ready()
        vectors = None
        if self.request.eigenvectors:
            operator = state.operator
            vectors = {}
            for prefix, rows in (("top", top_vectors), ("bottom", bottom_vectors)):
                for i, row in enumerate(rows if rows is not None else []):
                    vectors[f"{prefix}_{i + 1}"] = {n: t.detach().cpu() for n, t in operator.unflatten(row).items()}
        save_eigenpairs(self.request.out, (top, top_res), (bottom, bottom_res), vectors)
        stage = state.stages[EIGENPAIRS]
        stage.finished, stage.budget = True, stage.done

    def _save_lanczos(self) -> None:
        state = self._ready()
        lanczos = state.lanczos
        if lanczos is None or lanczos.steps == state.saved_steps:
            return
        first = state.saved_steps + 1 if state.saved_steps else 0  # row 0 is the start vector
        last = min(lanczos.steps + 1, lanczos.capacity)
        basis = lanczos.basis[first:last] if state.keep_basis else None
        save_lanczos(self.request.out, basis, first, np.array(self._pending_lanczos), len(self._pending_lanczos))
        self._pending_lanczos.clear()
        state.saved_steps = lanczos.steps

    def _trace(self, meter: RateMeter) -> Iterator[HessianProgress]:
        state = self._ready()
        estimator = state.trace
        assert estimator is not None
        stage = state.stages[TRACE]
        r = self.request
        if not estimator.sketched:
            estimator.make_sketch()
            self.computed += estimator.sketch_products
            stage.done += estimator.sketch_products
            self._flush_trace(estimator.sketch_products)
            yield self._progress(TRACE, meter, exact=estimator.exact)
            if self._stop.is_set():
                return
        while not estimator.converged(r.trace_tol) and len(estimator.samples) < r.trace_max_probes:
            value = estimator.step()
            self._pending_trace.append([len(estimator.samples) - 1, value])
            self.computed += 1
            stage.done += 1
            if self._due():
                self._flush_trace(0)
            estimate = estimator.estimate()
            stage.budget = self._trace_budget(estimator, stage)
            yield self._progress(TRACE, meter, trace=estimate.value, stderr=estimate.stderr)
            if self._stop.is_set():
                return
        self._flush_trace(0)
        estimate = estimator.estimate()
        save_trace(r.out, estimate.value, estimate.stderr)
        stage.finished, stage.budget = True, stage.done

    def _trace_budget(self, estimator: TraceEstimator, stage: _Stage) -> int:
        """Products the trace will take in all, predicted from its standard error so far (the error falls as
        1/sqrt(samples)), so the ETA is not the worst case; at most the budget of --trace-max-probes."""
        r = self.request
        ceiling = stage.done - len(estimator.samples) + int(r.trace_max_probes)
        estimate = estimator.estimate()
        n = len(estimator.samples)
        if n < 3 or not math.isfinite(estimate.stderr) or estimate.value == 0:
            return ceiling
        needed = max(math.ceil(n * (estimate.stderr / (r.trace_tol * abs(estimate.value))) ** 2), MIN_SAMPLES)
        return int(min(ceiling, stage.done + max(1, needed - n)))

    def _flush_trace(self, extra_products: int) -> None:
        rows = np.array(self._pending_trace) if self._pending_trace else np.zeros((0, 2))
        save_trace_samples(self.request.out, rows, len(self._pending_trace) + extra_products)
        self._pending_trace.clear()

    def _density(self, meter: RateMeter) -> Iterator[HessianProgress]:
        from engine.numerics.probes import DENSITY_PROBE, random_vector

        state = self._ready()
        r = self.request
        stage = state.stages[DENSITY]
        operator = state.operator
        steps = min(int(r.density_steps), operator.dim)
        for index in np.flatnonzero(~state.probes_done):
            start = random_vector(operator.dim, r.seed, DENSITY_PROBE, int(index), operator.dtype, operator.device,
                                  unit=True)
            lanczos = Lanczos(operator, steps, seed=r.seed, start=start)
            base = stage.done
            while not lanczos.exhausted:
                lanczos.step()
                self.computed += 1
                stage.done = base + lanczos.steps
                yield self._progress(DENSITY, meter, probe=int(index), probes=len(state.probes_done))
                if self._stop.is_set():
                    stage.done = base  # a probe cut short is computed again
                    return
                if lanczos.beta[-1] == 0.0:  # an invariant Krylov space: the quadrature is exact already
                    break
            values, weights = lanczos.quadrature()
            save_probe(r.out, int(index), values, weights, lanczos.steps)
            state.probes_done[index] = True
            stage.done = base + steps
            # the finished probe's quadrature, so a front end can draw the density as it forms
            yield self._progress(DENSITY, meter, probe=int(index), probes=len(state.probes_done),
                                 nodes=values.tolist(), weights=weights.tolist())
        spectrum = read_spectrum(r.out)
        values, weights = spectrum.probes
        sigma = float(r.sigma) if r.sigma is not None else default_sigma(values)
        grid = density_grid(values, sigma, DEFAULT_GRID)
        save_density(r.out, grid, gaussian_density(values, weights, grid, sigma), sigma)
        stage.finished = True

    # -- end --------------------------------------------------------------------------------------
    def _complete(self) -> bool:
        return all(stage.finished for stage in self._ready().stages.values())

    def _finish(self) -> None:
        if self._state is None:
            return
        if self._compute_started is not None:
            self._compute_seconds = time.perf_counter() - self._compute_started
        self._save_lanczos()
        if self._state.trace is not None and self._pending_trace:
            self._flush_trace(0)
        save_results(self.request.out, self._results(), self._state.operator.hessian.method)

    def close(self) -> None:
        self._lock.release()

    def _results(self) -> dict[str, Any]:
        """Every scalar and list --json prints (and the file's ``results`` attribute), with the report."""
        state = self._ready()
        spectrum = read_spectrum(self.request.out)
        results: dict[str, Any] = {
            "top_eigenvalues": _listed(spectrum.top_eigenvalues), "bottom_eigenvalues": _listed(spectrum.bottom_eigenvalues),
            "top_residuals": _listed(spectrum.top_residuals), "bottom_residuals": _listed(spectrum.bottom_residuals),
            "trace": spectrum.trace, "trace_stderr": spectrum.trace_stderr,
            "trace_samples": int(len(spectrum.trace_samples)),
            "density_probes_done": int(spectrum.density_done.sum()),
            "sigma": spectrum.sigma if math.isfinite(spectrum.sigma) else None,
            "n_params": state.operator.dim,  # the parameters the Hessian is taken with respect to
        }
        if self.request.report and self._complete():
            if self._report_cache is None:
                self._report_cache = self._report(spectrum)
            results["report"] = self._report_cache
        return results

    def _report(self, spectrum: Spectrum) -> dict[str, Any]:
        """Is this model overparameterized, and by which measure: the numbers people cite, side by side."""
        state = self._ready()
        problem = state.loaded.problem
        p, n = state.operator.dim, problem.n
        with torch.inference_mode():
            train = problem.metrics_at(state.params)
            test = state.test.metrics_at(state.params) if state.test is not None else None
        values, weights = spectrum.probes
        top = float(spectrum.top_eigenvalues[0]) if spectrum.top_eigenvalues.size else None
        bottom = float(spectrum.bottom_eigenvalues[0]) if spectrum.bottom_eigenvalues.size else None
        neg = negative_mass(values, weights)
        n_eff = {repr(float(a)): effective_dimensionality(values, weights, p, float(a)) for a in self.request.alphas}
        report = {
            "n_params": p, "n_samples": n, "params_per_sample": p / n,
            "train_loss": train.loss, "train_acc": train.acc,
            "test_loss": test.loss if test else None, "test_acc": test.acc if test else None,
            "interpolates": self._interpolates(train.loss, train.acc),
            "top_eigenvalue": top, "bottom_eigenvalue": bottom,
            "min_max_ratio": abs(bottom / top) if top and bottom is not None else None,
            "trace": spectrum.trace, "trace_stderr": spectrum.trace_stderr,
            "trace_per_param": spectrum.trace / p if spectrum.trace is not None else None,
            "negative_mass": neg.value, "negative_mass_stderr": neg.stderr, "zero_tolerance": ZERO_TOLERANCE,
            "n_eff": {a: s.value for a, s in n_eff.items()}, "n_eff_stderr": {a: s.stderr for a, s in n_eff.items()},
            "n_eff_fraction": {a: s.value / p for a, s in n_eff.items()},
        }
        return report

    def _interpolates(self, loss: float, acc: float | None) -> bool:
        """Classification: every training sample right. Regression: R² of at least INTERPOLATION_R2."""
        if acc is not None:
            return acc >= 100.0
        problem = self._ready().loaded.problem
        total, count = None, 0
        for _, y in problem.batches():
            total = y.sum(0, dtype=torch.float64) if total is None else total + y.sum(0, dtype=torch.float64)
            count += len(y)
        mean = (total / count).to(problem.dtype)
        baseline = sum(float(problem.batch_sums(mean.expand_as(y), y)[0]) for _, y in problem.batches()) / count
        return baseline > 0 and 1.0 - loss / baseline >= INTERPOLATION_R2

    def _summary(self) -> Summary:
        state = self._ready()
        results = self._results()
        report = results.pop("report", None) or {}
        details = {**state.details, **results, **report, "hvp_count": int(state.operator.products),
                   "hvp_method": state.operator.hessian.method, "seconds": round(self._compute_seconds, 6),
                   "stages": {k: {"done": s.done, "finished": s.finished} for k, s in state.stages.items()}}
        return HessianSummary(
            kind=self.kind, path=Path(self.request.out).resolve(), shape=(), done=self._done_count(),
            total=self.total, computed=self.computed, resumed_from=state.resumed_from, seconds=self.seconds,
            cancelled=not self._complete(), details=json_safe(details),
        )


@dataclass(frozen=True)
class HessianSummary(Summary):
    """A spectrum job's summary; :meth:`describe` says the numbers."""

    def describe(self) -> str:
        d = self.details
        lines = [f"wrote {self.path}: {d.get('hvp_count', 0)} Hessian-vector products in {d.get('seconds', 0):.2f} s"
                 + ("" if not self.cancelled else " (not complete: run the same command again to continue)")]
        if d.get("top_eigenvalues"):
            lines.append("  top eigenvalues:    " + ", ".join(_number(v) for v in d["top_eigenvalues"]))
        if d.get("bottom_eigenvalues"):
            lines.append("  bottom eigenvalues: " + ", ".join(_number(v) for v in d["bottom_eigenvalues"]))
        if d.get("trace") is not None:
            lines.append(f"  trace: {_number(d['trace'])} ± {_number(d.get('trace_stderr'))} "
                         f"({d.get('trace_samples', 0)} samples)")
        if d.get("density_probes_done"):
            lines.append(f"  density: {d['density_probes_done']} probes, sigma {_number(d.get('sigma'))}")
        if "interpolates" in d:
            lines.append(f"  p = {d['n_params']:,} parameters, n = {d['n_samples']:,} samples (p/n = "
                         f"{d['params_per_sample']:.3g}); interpolates the training data: "
                         f"{'yes' if d['interpolates'] else 'no'}")
            lines.append(f"  train loss {_number(d['train_loss'])}" +
                         (f", acc {d['train_acc']:.2f}%" if d.get("train_acc") is not None else "") +
                         (f"; test loss {_number(d['test_loss'])}" if d.get("test_loss") is not None else "") +
                         (f", acc {d['test_acc']:.2f}%" if d.get("test_acc") is not None else ""))
            lines.append(f"  negative spectral mass {_number(d.get('negative_mass'))}; trace/p "
                         f"{_number(d.get('trace_per_param'))}")
            lines.append("  N_eff(alpha): " + ", ".join(f"{a}: {_number(v)}" for a, v in (d.get("n_eff") or {}).items()))
        return "\n".join(lines)


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.6g}"


def _listed(array: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(array, dtype=np.float64)]


def resume_request(path: str | Path, *, trust_pickle: bool = False, device: str | None = None) -> HessianRequest:
    """The request that made a spectrum file, rebuilt from its attributes, to finish it."""
    a = settings_of(path)
    model = str(a.get("model", ""))
    max_samples = int(a.get("max_samples", -1))
    point = str(a.get("point", ""))
    sigma = float(a.get("sigma", float("nan")))
    return HessianRequest(
        checkpoint=str(a.get("checkpoint", "")), data=str(a.get("data", "")), out=str(path),
        test_data=str(a.get("test_data") or "") or None, model=None if not model or model.startswith("<") else model,
        model_kwargs=json.loads(a.get("model_kwargs") or "{}"), loss=str(a.get("loss", "auto")),
        top_k=int(a.get("top_k", 0)), bottom_k=int(a.get("bottom_k", 0)), method=str(a.get("method", "lanczos")),
        tol=float(a.get("tol", 1e-5)), max_iter=int(a.get("max_iter", 100)),
        eigenvectors=bool(int(a.get("eigenvectors", 0))), trace=bool(int(a.get("trace", 0))),
        trace_method=str(a.get("trace_method") or "hutch++"), trace_tol=float(a.get("trace_tol", 0.01)),
        trace_sketch=int(a.get("trace_sketch") or 10), trace_max_probes=int(a.get("trace_max_probes") or 1000),
        density=bool(int(a.get("density", 0))), density_probes=int(a.get("density_probes") or DEFAULT_PROBES),
        density_steps=int(a.get("density_steps") or DEFAULT_STEPS), sigma=sigma if math.isfinite(sigma) else None,
        report=bool(int(a.get("report", 0))), alphas=tuple(float(v) for v in str(a.get("alphas", "")).split(",") if v)
        or DEFAULT_ALPHAS, at=str(a.get("at") or "") or None,
        point=tuple(float(v) for v in point.split(",")) if point else None, seed=int(a.get("seed", 0)),
        max_samples=None if max_samples < 0 else max_samples, device=device,
        batch_size=int(a.get("batch_size", 0)) or None, mode=str(a.get("mode", "eval")),
        memory_budget=int(a.get("memory_budget", 0)) or None, hvp_method=str(a.get("hvp_method_used") or "auto"),
        trust_pickle=trust_pickle,
    )


__all__ = ["EIGEN_METHODS", "HessianJob", "HessianProgress", "HessianRequest", "HessianSummary", "resume_request"]
