"""Hessian spectra: Landscape's numerics against PyHessian 0.1 (Yao et al. 2020), side by side.

Both tools get the same briefly trained float32 model (seeded init, then ``--train-steps``
full-batch Adam steps, lr 1e-3, seed 0; cached in ``--workdir``) and the same data as one
batch (PyHessian's ``hessian(model, criterion, data=(x, y), cuda=False)``; Landscape's
``Problem(model, data)``), on the CPU with the same ``torch.set_num_threads`` (default 2).

Cases: ``mlp-w200`` (``engine.builtin.models:mlp(width=200)`` on ``sample:sine-2000``,
44,601 parameters, MSE) and ``cnn-digits`` (``engine.builtin.models:small_cnn`` on
``sample:digits``, 5,082 parameters, eval-mode BatchNorm, cross entropy).

Reference (computed once per case and cached in ``--workdir``): Landscape's Lanczos on a
float64 copy of the model and data, top-5 and bottom-5 to ``tol=1e-8``, each pair's true
residual ``|Hu - λu| / |λ|`` checked with one more float64 product; and the trace from
Hutch++ (sketch 100, float32 products, residual samples until the standard error is
0.1%; ``--exact-trace`` also sums the diagonal from p unit-vector products where p <= 10,000).

Tasks (each tool's time includes building its operator: PyHessian's ``hessian(...)``
constructor, Landscape's ``Problem(...)`` + ``problem.hessian(params)`` with the default
``method="auto"``):

* ``top-1``, ``top-5``: PyHessian ``eigenvalues(top_n=k)`` with its defaults (power
  iteration + deflation, stops on a 1e-3 relative change of the estimate, 100 products
  per eigenvalue at most) against ``extreme_eigenpairs(op, k)`` (Lanczos, stops on Ritz
  residuals <= 1e-5 x |λ_max|). Accuracy: the largest relative error against the reference.
  PyHessian's default tol leaves close eigenvalues (λ4, λ5) off by more than 1e-3, so top-5 is
  also run with ``eigenvalues(top_n=5, tol=1e-5)``, which brings them within 1e-3.
* ``trace``: at EQUAL ACCURACY, not equal iterations. The target is a standard error of 1%
  of the trace (within 2% with ~95% probability). Landscape: Hutch++ (sketch 10) stepped
  ``while not converged(0.01)`` over ``--seeds`` seeds (median time, and how many seeds
  landed within 2% of the reference). PyHessian's ``trace()`` is plain Hutchinson with
  a stop rule on the change of the mean, so the number of samples n it needs for a 1%
  standard error is computed from the per-sample spread (pooled Rademacher samples), and
  its time is its build time plus n times its measured per-sample time over a 100-sample
  ``trace(maxIter=100, tol=0)`` (``--full-trace`` runs it for real). Landscape's own
  Hutchinson at the same n is timed the same way. PyHessian's ``trace()`` with its
  defaults is also run over the seeds to show the accuracy its stop rule gives.
* ``density``: PyHessian ``density(iter=100, n_v=1)`` against Landscape's ``slq_probe``
  with 1 probe x 100 steps (the same work); Landscape's default 5 probes x 80 steps is
  reported on its own row. Accuracy: the largest node against the reference λ_max.

PyHessian 0.1's ``density()`` calls ``torch.eig``, removed in torch 2.x: this script
installs a shim, ``torch.eig(A, eigenvectors=True)`` -> ``torch.linalg.eigh(A)`` in the old
layout (values as an (n, 2) real/imaginary tensor, vectors as columns); T is symmetric
tridiagonal, so eigh gives what torch.eig gave. Hessian-vector products are counted by
wrapping ``pyhessian.hessian.hessian_vector_product`` and by Landscape's ``op.products``.

Fairness: one fresh process per case; in it both tools are warmed up (imports, oneDNN
kernels, autograd and torch.func first-use costs) before anything is timed; the tools
alternate run by run (run r of every tool uses seed r); best of ``--repeats`` (3; a tool
whose first run takes over 20 s on a quiet machine is timed once) and the median are kept; every timed run
records the share of the CPUs other processes used (``--wait-quiet`` waits for an idle
machine before each). PyHessian gets a fresh copy of the model per run (made untimed) so
no ``.grad`` graph leaks from one run into the next; Landscape copies the model itself,
inside its timing.

Run (from the repository root)::

    python benchmarks/hessian_speed.py                      # both cases, about 5 minutes (+ references once)
    python benchmarks/hessian_speed.py --quick              # one run each, 3 trace seeds
    python benchmarks/hessian_speed.py --cases cnn-digits --wait-quiet --json out.json
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np
import torch
from machine import (  # benchmarks/machine.py, beside this script
    QUIET_BUSY,
    cpu_jiffies,
    own_cpu_jiffies,
    wait_quiet,
)
from torch import nn

from engine.builtin.models import mlp, small_cnn
from engine.io.data import DataSet, load_data
from engine.numerics.density import (
    DEFAULT_PROBES,
    DEFAULT_STEPS,
    probe_matrix,
    slq_probe,
)
from engine.numerics.evaluate import keep_freed_memory
from engine.numerics.flat import FlatOperator
from engine.numerics.lanczos import extreme_eigenpairs
from engine.numerics.problem import Problem
from engine.numerics.trace import TraceEstimator

REPEAT_BUDGET = 20.0  # seconds: a tool whose first run takes longer is timed once
TRACE_REL = 0.02  # the trace's accuracy target: within 2% of the reference ...
TRACE_STDERR = 0.01  # ... reached by a standard error of 1% of the trace (~95% of runs within 2%)
TRACE_POOL = 100  # samples per timed Hutchinson run: per-sample time and spread
REF_TOL, REF_K, REF_MAX_ITER = 1e-8, 5, 800
REF_SKETCH, REF_STDERR, REF_MAX_SAMPLES = 100, 1e-3, 3000
EXACT_TRACE_MAX_DIM = 10_000
PH_TIGHT_TOL = 1e-5  # PyHessian eigenvalues(tol=...) that brings its top-5 within 1e-3 on both cases
DEFAULT_WORKDIR = Path(os.environ.get("TMPDIR", "/tmp")) / "landscape-hessian-bench"


# --------------------------------------------------------------------------------------
# PyHessian 0.1, with the torch.eig shim and a product counter
# --------------------------------------------------------------------------------------
def _eig_shim(matrix: torch.Tensor, eigenvectors: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.eig (removed in torch 2.x) for a symmetric matrix, in its old layout: values (n, 2) as
    (real, imaginary) and eigenvectors as columns. PyHessian's density() only uses it on its
    symmetric tridiagonal T, taking ``values[:, 0]`` as nodes and ``vectors[0, :] ** 2`` as weights."""
    values, vectors = torch.linalg.eigh(matrix)
    return torch.stack([values, torch.zeros_like(values)], dim=1), vectors if eigenvectors else matrix.new_empty(0)


def _torch_eig_missing() -> bool:
    try:
        torch.eig(torch.eye(2), eigenvectors=True)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return True
    return False


EIG_SHIMMED = _torch_eig_missing()
if EIG_SHIMMED:
    torch.eig = _eig_shim  # type: ignore[attr-defined]

import pyhessian.hessian  # noqa: F401 - the module (the package exports the class under the same name)

PH = sys.modules["pyhessian.hessian"]
_PH_PRODUCT = PH.hessian_vector_product
PH_PRODUCTS = [0]


def _counted_product(grads_h, params, v):
    PH_PRODUCTS[0] += 1
    return _PH_PRODUCT(grads_h, params, v)


PH.hessian_vector_product = _counted_product  # eigenvalues/trace/density call it through the module's globals


# --------------------------------------------------------------------------------------
# Cases: the same trained float32 model and data for both tools
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    description: str
    factory: Callable[[], nn.Module]
    data: str
    criterion: Callable[[], nn.Module]


CASES = {
    "mlp-w200": Case("mlp-w200", "MLP 20-200-200-1 on sine-2000 (MSE)", lambda: mlp(width=200),
                     "sample:sine-2000", nn.MSELoss),
    "cnn-digits": Case("cnn-digits", "small_cnn(16), Conv-BN-ReLU x2, on digits (cross entropy, eval BN)",
                       small_cnn, "sample:digits", nn.CrossEntropyLoss),
}


def trained_model(case: Case, data: DataSet, steps: int, workdir: Path) -> nn.Module:
    """The case's model at seed 0, after ``steps`` full-batch Adam steps (seed 0), in eval mode; cached."""
    torch.manual_seed(0)
    model = case.factory()
    path = workdir / f"{case.name}-adam{steps}.pt"
    if path.exists():
        model.load_state_dict(torch.load(path))
    else:
        x, y = data.x, data.y
        criterion = case.criterion()
        torch.manual_seed(0)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        for _ in range(steps):
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        workdir.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    model.eval()
    for p in model.parameters():
        p.grad = None
    return model


# --------------------------------------------------------------------------------------
# The reference: float64 Lanczos to 1e-8, Hutch++ trace to a 0.1% standard error
# --------------------------------------------------------------------------------------
def landscape_operator(model: nn.Module, data: DataSet, method: str = "auto") -> FlatOperator:
    problem = Problem(model, data, device="cpu")
    return FlatOperator(problem.hessian(problem.params(), method=method))


def compute_reference(model: nn.Module, data: DataSet, exact_trace: bool) -> dict[str, Any]:
    start = time.perf_counter()
    op64 = landscape_operator(copy.deepcopy(model).double(), data)
    top, bottom = extreme_eigenpairs(op64, REF_K, REF_K, tol=REF_TOL, max_iter=min(REF_MAX_ITER, op64.dim), seed=12345)
    lanczos_products = op64.products
    true_residuals: dict[str, list[float]] = {"top": [], "bottom": []}
    for side, pairs in (("top", top), ("bottom", bottom)):
        for value, u in zip(pairs.values, pairs.vectors):
            true_residuals[side].append(float((op64.matvec(u) - value * u).norm()) / abs(float(value)))
    eig_seconds = time.perf_counter() - start
    del op64
    gc.collect()

    start = time.perf_counter()
    op32 = landscape_operator(model, data)
    est = TraceEstimator(op32, "hutch++", sketch=REF_SKETCH, seed=4242)
    while not est.converged(REF_STDERR) and len(est.samples) < REF_MAX_SAMPLES:
        est.step()
    trace = est.estimate()
    result = {
        "top": top.values.tolist(), "bottom": bottom.values.tolist(),
        "lanczos_residual_bound": float(max(top.residuals.max(), bottom.residuals.max()) / abs(top.values[0])),
        "true_residual_top": max(true_residuals["top"]),
        "true_residual_bottom": max(true_residuals["bottom"]), "lanczos_products": lanczos_products,
        "eig_seconds": eig_seconds,
        "trace": trace.value, "trace_stderr": trace.stderr, "trace_products": trace.products,
        "trace_seconds": time.perf_counter() - start, "trace_source": f"Hutch++ sketch {REF_SKETCH}, float32",
    }
    if exact_trace and op32.dim <= EXACT_TRACE_MAX_DIM:
        result.update(exact_diagonal_trace(model, data))
    return result


def exact_diagonal_trace(model: nn.Module, data: DataSet) -> dict[str, Any]:
    """tr H = sum_i (H e_i)_i from p unit-vector products (float32, double backward on kept graphs)."""
    start = time.perf_counter()
    op = landscape_operator(model, data, method="double_backward")
    total = 0.0
    e = torch.zeros(op.dim, dtype=op.dtype)
    for i in range(op.dim):
        e[i] = 1.0
        total += float(op.matvec(e)[i])
        e[i] = 0.0
        if i % 500 == 499:
            print(f"    exact trace: {i + 1}/{op.dim} columns", file=sys.stderr, flush=True)
    return {"exact_trace": total, "exact_trace_products": op.products, "exact_trace_seconds": time.perf_counter() - start}


def reference(case: Case, model: nn.Module, data: DataSet, steps: int, workdir: Path, exact_trace: bool) -> dict[str, Any]:
    path = workdir / f"{case.name}-adam{steps}-reference.json"
    if path.exists():
        ref = json.loads(path.read_text())
        if not exact_trace or "exact_trace" in ref or sum(p.numel() for p in model.parameters()) > EXACT_TRACE_MAX_DIM:
            ref["cached"] = True
            return ref
        ref.update(exact_diagonal_trace(model, data))
    else:
        print(f"  {case.name}: computing the reference (cached in {path})", file=sys.stderr, flush=True)
        ref = compute_reference(model, data, exact_trace)
    path.write_text(json.dumps(ref, indent=1) + "\n")
    ref["cached"] = False
    return ref


# --------------------------------------------------------------------------------------
# One run of one tool
# --------------------------------------------------------------------------------------
class Runner:
    """Timed runs of both tools on one case."""

    def __init__(self, model: nn.Module, data: DataSet, criterion: nn.Module, quiet: bool) -> None:
        self.model, self.data, self.criterion, self.quiet = model, data, criterion, quiet
        self.x, self.y = data.x, data.y

    def _timed(self, body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        gc.collect()
        if self.quiet:
            wait_quiet()
        start, own = cpu_jiffies(), own_cpu_jiffies()
        t0 = time.perf_counter()
        result = body()
        result["time"] = time.perf_counter() - t0
        end, own_end = cpu_jiffies(), own_cpu_jiffies()
        result["others"] = 0.0 if start is None or end is None else \
            max(0.0, (end[0] - start[0] - (own_end - own)) / max(1, end[1] - start[1]))
        return result

    def pyhessian(self, seed: int, task: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        model = copy.deepcopy(self.model)  # untimed: a clean .grad for PyHessian's backward(create_graph=True)
        for p in model.parameters():
            p.requires_grad_(True)
            p.grad = None

        def body() -> dict[str, Any]:
            torch.manual_seed(seed)  # PyHessian draws its vectors from the global generator
            PH_PRODUCTS[0] = 0
            t0 = time.perf_counter()
            h = PH.hessian(model, self.criterion, data=(self.x, self.y), cuda=False)
            build = time.perf_counter() - t0
            out = task(h)
            out.update(products=PH_PRODUCTS[0], build=build)
            return out

        return self._timed(body)

    def landscape(self, task: Callable[[FlatOperator], dict[str, Any]]) -> dict[str, Any]:
        def body() -> dict[str, Any]:
            t0 = time.perf_counter()
            op = landscape_operator(self.model, self.data)
            build = time.perf_counter() - t0
            out = task(op)
            out.update(products=op.products, build=build, method=op.hessian.method)
            return out

        return self._timed(body)


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def interleaved(tools: dict[str, Callable[[int], dict[str, Any]]], repeats: int, label: str) -> dict[str, list]:
    """Run r of every tool, then run r + 1, ...; a tool whose first run exceeds REPEAT_BUDGET on a quiet
    machine runs once (a first run slowed by other processes is repeated)."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in tools}
    for rep in range(repeats):
        for name, run in tools.items():
            quiet_times = [r["time"] for r in runs[name] if r["others"] <= QUIET_BUSY]
            if rep and quiet_times and min(quiet_times) > REPEAT_BUDGET:
                continue
            print(f"    {label}: {name} run {rep + 1}", file=sys.stderr, flush=True)
            runs[name].append(run(rep))
    return runs


def summary(runs: list[dict[str, Any]], key: str = "error") -> dict[str, Any]:
    best = min(runs, key=lambda r: r["time"])
    return {"best": best["time"], "median": statistics.median(r["time"] for r in runs), "runs": len(runs),
            "products": best["products"], "products_all": [r["products"] for r in runs],
            key: max(r[key] for r in runs), "others": max(r["others"] for r in runs),
            **({"method": best["method"], "methods": [r["method"] for r in runs]} if "method" in best else {})}


# --------------------------------------------------------------------------------------
# The tasks
# --------------------------------------------------------------------------------------
def task_top(runner: Runner, ref: dict[str, Any], k: int, repeats: int) -> dict[str, Any]:
    by_magnitude = sorted(ref["top"] + ref["bottom"], key=abs, reverse=True)[:k]  # what PyHessian looks for

    def ph(tol: float) -> Callable[[Any], dict[str, Any]]:
        def run(h) -> dict[str, Any]:
            values, _ = h.eigenvalues(top_n=k, tol=tol)
            got = sorted(values, key=abs, reverse=True)
            return {"values": got, "error": max(rel(v, r) for v, r in zip(got, by_magnitude))}
        return run

    def ls(tol: float) -> Callable[[Any], dict[str, Any]]:
        def run(op) -> dict[str, Any]:
            top, _ = extreme_eigenpairs(op, k, tol=tol)
            return {"values": top.values.tolist(), "error": max(rel(v, r) for v, r in zip(top.values, ref["top"]))}
        return run

    tools = {"pyhessian": lambda r: runner.pyhessian(r, ph(1e-3)), "landscape": lambda r: runner.landscape(ls(1e-5)),
             # the same number PyHessian is given: its tol bounds the change of the estimate, Landscape's the residual
             "landscape-tol1e-3": lambda r: runner.landscape(ls(1e-3))}
    if k == 1:  # a residual of 1% of λ already gives an eigenvalue more accurate than PyHessian's: equal accuracy
        tools["landscape-tol1e-2"] = lambda r: runner.landscape(ls(1e-2))
    if k > 1:  # PyHessian's default tol misses 1e-3 on close eigenvalues: also at a tol that reaches it
        tools["pyhessian-tight"] = lambda r: runner.pyhessian(r, ph(PH_TIGHT_TOL))
    runs = interleaved(tools, repeats, f"top-{k}")
    return {name: summary(rs) | {"values": rs[0]["values"]} for name, rs in runs.items()}


def task_trace(runner: Runner, ref: dict[str, Any], repeats: int, seeds: int, pool: int, full: bool) -> dict[str, Any]:
    truth = ref.get("exact_trace", ref["trace"])

    def ph_fixed(n: int) -> Callable[[Any], dict[str, Any]]:
        def run(h) -> dict[str, Any]:
            samples = h.trace(maxIter=n, tol=0.0)  # tol 0: never stops early, n samples
            return {"samples": samples, "value": float(np.mean(samples)), "error": rel(float(np.mean(samples)), truth)}
        return run

    def ph_stock(h) -> dict[str, Any]:
        samples = h.trace()
        return {"samples": samples, "value": float(np.mean(samples)), "error": rel(float(np.mean(samples)), truth)}

    def ls_fixed(method: str, seed: int, n: int | None) -> Callable[[FlatOperator], dict[str, Any]]:
        def run(op) -> dict[str, Any]:
            est = TraceEstimator(op, method, seed=seed)
            if n is None:
                while not est.converged(TRACE_STDERR):
                    est.step()
            else:
                for _ in range(n):
                    est.step()
            e = est.estimate()
            return {"samples": list(est.samples), "value": e.value, "stderr": e.stderr, "error": rel(e.value, truth)}
        return run

    # Per-sample time and spread of plain Hutchinson: 100-sample runs of both tools.
    hutch = interleaved({"pyhessian": lambda r: runner.pyhessian(r, ph_fixed(pool)),
                         "landscape-hutchinson": lambda r: runner.landscape(ls_fixed("hutchinson", r, pool))},
                        repeats, "trace, Hutchinson per-sample")
    samples = np.concatenate([r["samples"] for rs in hutch.values() for r in rs])
    spread = float(np.std(samples, ddof=1))
    n_equal = max(1, math.ceil((spread / (TRACE_STDERR * abs(truth))) ** 2))

    def extrapolate(rs: list[dict[str, Any]]) -> dict[str, Any]:
        best = min(rs, key=lambda r: r["time"])
        per_sample = (best["time"] - best["build"]) / pool
        return {"best": best["build"] + n_equal * per_sample, "per_sample": per_sample, "products": n_equal,
                "measured": False, "others": max(r["others"] for r in rs), "methods": [r.get("method") for r in rs]}

    out: dict[str, Any] = {"truth": truth, "truth_source": "exact diagonal" if "exact_trace" in ref else ref["trace_source"],
                           "spread_rel": spread / abs(truth), "pooled_samples": int(samples.size), "n_equal": n_equal,
                           "pyhessian": extrapolate(hutch["pyhessian"]),
                           "landscape-hutchinson": extrapolate(hutch["landscape-hutchinson"])}

    # Landscape Hutch++ to a 1% standard error, and PyHessian's trace() with its defaults, over the seeds.
    by_seed = interleaved({"landscape-hutch++": lambda r: runner.landscape(ls_fixed("hutch++", r, None)),
                           "pyhessian-defaults": lambda r: runner.pyhessian(r, ph_stock)}, seeds, "trace, seeds")
    for name, rs in by_seed.items():
        errors = [r["error"] for r in rs]
        out[name] = {"best": min(r["time"] for r in rs), "median": statistics.median(r["time"] for r in rs),
                     "products": statistics.median(r["products"] for r in rs), "products_all": [r["products"] for r in rs],
                     "errors": errors, "within": sum(e <= TRACE_REL for e in errors), "seeds": len(rs),
                     "others": max(r["others"] for r in rs), "methods": [r.get("method") for r in rs]}
    if full:  # run PyHessian's and Landscape's Hutchinson at n_equal for real (seed 0)
        ph_run = runner.pyhessian(0, ph_fixed(n_equal))
        ls_run = runner.landscape(ls_fixed("hutchinson", 0, None))
        out["pyhessian-full"] = {"time": ph_run["time"], "products": ph_run["products"], "error": ph_run["error"]}
        out["landscape-hutchinson-full"] = {"time": ls_run["time"], "products": ls_run["products"], "error": ls_run["error"]}
    return out


def task_density(runner: Runner, ref: dict[str, Any], repeats: int) -> dict[str, Any]:
    lam = ref["top"][0]

    def ph(h) -> dict[str, Any]:
        nodes, weights = h.density(iter=100, n_v=1)
        return {"error": rel(max(max(n) for n in nodes), lam), "mass": float(np.sum(weights))}

    def ls(probes: int, steps: int, seed: int) -> Callable[[FlatOperator], dict[str, Any]]:
        def run(op) -> dict[str, Any]:
            values, weights = probe_matrix([slq_probe(op, steps, seed, i) for i in range(probes)], steps)
            return {"error": rel(float(np.nanmax(values)), lam), "mass": float(np.nansum(weights)) / probes}
        return run

    runs = interleaved({"pyhessian": lambda r: runner.pyhessian(r, ph),
                        "landscape": lambda r: runner.landscape(ls(1, 100, r)),
                        "landscape-default": lambda r: runner.landscape(ls(DEFAULT_PROBES, DEFAULT_STEPS, r))},
                       repeats, "density")
    return {name: summary(rs) for name, rs in runs.items()}


# --------------------------------------------------------------------------------------
# One case, in its own process
# --------------------------------------------------------------------------------------
def run_case(name: str, args: argparse.Namespace) -> dict[str, Any]:
    case = CASES[name]
    workdir = Path(args.workdir)
    data = load_data(case.data)
    model = trained_model(case, data, args.train_steps, workdir)
    criterion = case.criterion()
    n_params = sum(p.numel() for p in model.parameters())
    ref = reference(case, model, data, args.train_steps, workdir, args.exact_trace)
    runner = Runner(model, data, criterion, args.wait_quiet)

    # Agreement: the same loss and the same Hessian-vector product from both tools.
    with torch.no_grad():
        ph_loss = float(criterion(model(data.x), data.y))
    problem = Problem(model, data, device="cpu")
    op = FlatOperator(problem.hessian(problem.params(), method="double_backward"))
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(7))
    h = PH.hessian(copy.deepcopy(model).requires_grad_(True), criterion, data=(data.x, data.y), cuda=False)
    ph_hv = torch.cat([t.reshape(-1) for t in PH.hessian_vector_product(h.gradsH, h.params, list(op.unflatten(v).values()))])
    hv_diff = float((op.matvec(v) - ph_hv).abs().max() / ph_hv.abs().max())
    loss_diff = rel(problem.metrics().loss, ph_loss)
    del h, op, problem

    # Warm-up, untimed: both tools' first uses (autograd, oneDNN, torch.func's jvp, scipy, the eig shim).
    runner.pyhessian(0, lambda h: {"e": h.eigenvalues(maxIter=3), "d": h.density(iter=5), "t": h.trace(maxIter=3)})
    runner.landscape(lambda op: {"e": extreme_eigenpairs(op, 1, max_iter=8), "d": slq_probe(op, 5, 0, 0),
                                 "t": TraceEstimator(op, "hutch++", sketch=2).step()})

    result: dict[str, Any] = {
        "case": name, "description": case.description, "n_params": n_params, "samples": len(data),
        "threads": torch.get_num_threads(), "reference": ref, "loss": ph_loss, "loss_rel_diff": loss_diff,
        "hvp_rel_diff": hv_diff,
    }
    result["top-1"] = task_top(runner, ref, 1, args.repeats)
    result["top-5"] = task_top(runner, ref, 5, args.repeats)
    result["trace"] = task_trace(runner, ref, args.repeats, args.seeds, args.trace_pool, args.full_trace)
    result["density"] = task_density(runner, ref, args.repeats)
    return result


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------
def _products(value: Any) -> str:
    return f"{value:.0f}" if isinstance(value, (int, float)) else str(value)


def rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    out = []
    for task in ("top-1", "top-5"):
        ph, ls = result[task]["pyhessian"], result[task]["landscape"]
        out.append((task, f"{ph['best']:.3f}", f"{ls['best']:.3f}", f"{ph['best'] / ls['best']:.1f}x",
                    f"{ph['products']} / {ls['products']}", f"{ph['error']:.1e} / {ls['error']:.1e}"))
    ph, ls = result["top-1"]["pyhessian"], result["top-1"]["landscape-tol1e-2"]
    out.append(("top-1, Landscape tol 1e-2", f"{ph['best']:.3f}", f"{ls['best']:.3f}", f"{ph['best'] / ls['best']:.1f}x",
                f"{ph['products']} / {ls['products']}", f"{ph['error']:.1e} / {ls['error']:.1e}"))
    for task in ("top-1", "top-5"):
        ph, ls = result[task]["pyhessian"], result[task]["landscape-tol1e-3"]
        out.append((f"{task}, both tol 1e-3", f"{ph['best']:.3f}", f"{ls['best']:.3f}", f"{ph['best'] / ls['best']:.1f}x",
                    f"{ph['products']} / {ls['products']}", f"{ph['error']:.1e} / {ls['error']:.1e}"))
    ph, ls = result["top-5"]["pyhessian-tight"], result["top-5"]["landscape"]
    out.append((f"top-5, PyHessian tol {PH_TIGHT_TOL:g}", f"{ph['best']:.3f}", f"{ls['best']:.3f}", f"{ph['best'] / ls['best']:.1f}x",
                f"{ph['products']} / {ls['products']}", f"{ph['error']:.1e} / {ls['error']:.1e}"))
    tr = result["trace"]
    ph, hpp, hut, stock = tr["pyhessian"], tr["landscape-hutch++"], tr["landscape-hutchinson"], tr["pyhessian-defaults"]
    out.append(("trace 1% s.e., Hutch++", f"{ph['best']:.2f}*", f"{hpp['median']:.3f}", f"{ph['best'] / hpp['median']:.1f}x",
                f"{ph['products']}* / {hpp['products']:.0f}",
                f"s.e. 1%* / {hpp['within']}/{hpp['seeds']} within 2%"))
    out.append(("trace 1% s.e., Hutchinson", f"{ph['best']:.2f}*", f"{hut['best']:.2f}*", f"{ph['best'] / hut['best']:.2f}x",
                f"{ph['products']}* / {hut['products']}*", "same estimator, same n"))
    out.append(("trace, PyHessian defaults", f"{stock['median']:.3f}", "-", "-",
                f"{stock['products']:.0f} / -", f"{stock['within']}/{stock['seeds']} within 2% / -"))
    d = result["density"]
    ph, ls, dflt = d["pyhessian"], d["landscape"], d["landscape-default"]
    out.append(("density 1 x 100", f"{ph['best']:.3f}", f"{ls['best']:.3f}", f"{ph['best'] / ls['best']:.2f}x",
                f"{ph['products']} / {ls['products']}", f"{ph['error']:.1e} / {ls['error']:.1e}"))
    out.append((f"density {DEFAULT_PROBES} x {DEFAULT_STEPS} (default)", "-", f"{dflt['best']:.3f}", "-",
                f"- / {dflt['products']}", f"- / {dflt['error']:.1e}"))
    return out


def report(results: list[dict[str, Any]]) -> str:
    lines = []
    header = ("task", "PyHessian s", "Landscape s", "speed-up", "products PH / LS", "accuracy PH / LS")
    for r in results:
        ref = r["reference"]
        lines.append(f"\n{r['case']}: {r['description']}; {r['n_params']:,} parameters, {r['samples']} samples, "
                     f"{r['threads']} threads")
        lines.append(f"  reference: top-5 {', '.join(f'{v:.5g}' for v in ref['top'])}; bottom {ref['bottom'][0]:.4g}; "
                     f"|Hu - λu|/|λ| <= {ref['true_residual_top']:.0e} (top), {ref['true_residual_bottom']:.0e} (bottom), {ref['lanczos_products']} float64 products; "
                     f"trace {r['trace']['truth']:.5g} ({r['trace']['truth_source']}"
                     + (f"; Hutch++ gave {ref['trace']:.5g} +- {ref['trace_stderr']:.2g}" if "exact_trace" in ref else
                        f", s.e. {ref['trace_stderr']:.2g}") + ")" + (" [cached]" if ref.get("cached") else ""))
        lines.append(f"  agreement: loss {r['loss_rel_diff']:.1e}, one Hessian-vector product {r['hvp_rel_diff']:.1e} "
                     "(max relative difference)")
        table = [header] + rows(r)
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        tr = r["trace"]
        lines.append(f"  * trace: Rademacher samples spread {100 * tr['spread_rel']:.0f}% of the trace "
                     f"({tr['pooled_samples']} pooled), so plain Hutchinson needs n = {tr['n_equal']} for a 1% standard "
                     f"error; times are build + n x per-sample time of {TRACE_POOL}-sample runs "
                     f"(PyHessian {1e3 * tr['pyhessian']['per_sample']:.1f} ms, Landscape "
                     f"{1e3 * tr['landscape-hutchinson']['per_sample']:.1f} ms). Hutch++ errors: "
                     + ", ".join(f"{100 * e:.2f}%" for e in tr["landscape-hutch++"]["errors"])
                     + "; PyHessian defaults: " + ", ".join(f"{100 * e:.2f}%" for e in tr["pyhessian-defaults"]["errors"]))
        if "pyhessian-full" in tr:
            full, lsf = tr["pyhessian-full"], tr["landscape-hutchinson-full"]
            lines.append(f"    measured at full length: PyHessian {full['time']:.2f} s ({full['products']} products, error "
                         f"{100 * full['error']:.2f}%), Landscape Hutchinson converged(0.01) {lsf['time']:.2f} s "
                         f"({lsf['products']} products, error {100 * lsf['error']:.2f}%)")
        methods = [m for t in ("top-1", "top-5", "density") for tool in r[t].values() if isinstance(tool, dict)
                   for m in tool.get("methods", [])]
        methods += [m for tool in r["trace"].values() if isinstance(tool, dict) for m in tool.get("methods", []) if m]
        busy = max(max(v.get("others", 0.0) for v in r[t].values() if isinstance(v, dict)) for t in
                   ("top-1", "top-5", "trace", "density"))
        lines.append(f"  Landscape's method='auto' kept forward_over_reverse in {methods.count('forward_over_reverse')} of "
                     f"{len(methods)} timed runs (double_backward in the others); other processes used up to "
                     f"{100 * busy:.0f}% of the CPUs during timed runs")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """numpy scalars and arrays as JSON numbers and lists."""
    return value.tolist() if hasattr(value, "tolist") else float(value)


def main(argv: list[str] | None = None) -> int:
    global TRACE_POOL
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run per tool, 3 trace seeds, 50-sample pools")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per tool (best reported; default 3)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds for the trace estimators (default 5)")
    parser.add_argument("--trace-pool", type=int, default=None, help=f"samples per Hutchinson run (default {TRACE_POOL})")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--train-steps", type=int, default=300, help="Adam steps before measuring (default 300)")
    parser.add_argument("--workdir", default=str(DEFAULT_WORKDIR), help="trained models and references are cached here")
    parser.add_argument("--exact-trace", action="store_true",
                        help=f"reference trace from p unit-vector products where p <= {EXACT_TRACE_MAX_DIM:,} (CNN: ~5 min)")
    parser.add_argument("--full-trace", action="store_true",
                        help="also run PyHessian's and Landscape's Hutchinson to a 1%% standard error for real")
    parser.add_argument("--wait-quiet", action="store_true", help="wait for an idle machine before every timed run")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.seeds = args.seeds or (3 if args.quick else 5)
    TRACE_POOL = args.trace_pool = args.trace_pool or (50 if args.quick else TRACE_POOL)
    torch.set_num_threads(args.threads)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")

    if args.worker:  # one case in this (fresh) process; the result as JSON on the last line
        # what `landscape hessian` does at start: glibc keeps freed memory (both tools run faster for it)
        keep_freed_memory()
        print(json.dumps(run_case(args.worker, args), default=_plain))
        return 0

    print(f"torch {torch.__version__}, torch.set_num_threads({args.threads}) -> {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, numpy {np.__version__}")
    print(f"PyHessian 0.1: {'torch.eig is missing in this torch; shimmed with torch.linalg.eigh (old layout) for density()' if EIG_SHIMMED else 'torch.eig present, no shim'}")
    print(f"best of {args.repeats} run(s); trace: {args.seeds} seeds, {TRACE_POOL}-sample Hutchinson runs; "
          f"models after {args.train_steps} Adam steps; cache {args.workdir}")
    results = []
    started = time.perf_counter()
    for name in cases:
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", name] + [
            a for a in (argv if argv is not None else sys.argv[1:])]
        print(f"\n[{name}] running in a fresh process ...", file=sys.stderr, flush=True)
        done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            print(f"{name}: the worker failed (exit {done.returncode})", file=sys.stderr)
            return 1
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(report(results))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if args.json:
        payload = {"torch": torch.__version__, "threads": args.threads, "repeats": args.repeats, "seeds": args.seeds,
                   "eig_shimmed": EIG_SHIMMED, "cases": results}
        Path(args.json).write_text(json.dumps(payload, indent=1, default=_plain) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
