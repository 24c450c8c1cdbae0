"""How fast does Landscape compute a filter-normalized 2D surface, compared with the usual tools?

Every case computes the same N x N grid (default 21 x 21 = 441 points) of the same
briefly trained model on the same data with:

* ``landscape``       Landscape's engine: ``SurfaceJob`` end to end (load checkpoint and
                      data from disk, make directions, write the .h5 file) with strategy
                      ``auto``; the fixed strategies ``inplace`` and ``vmap`` are timed too;
* ``loss-landscapes`` the PyPI package (3.0.6): ``random_plane(model, metrics.Loss(loss, x, y),
                      steps=N, normalization='filter')``, all data as one batch;
* ``li-et-al``        a faithful re-implementation of the per-point loop of Li et al.'s
                      loss-landscape code: ``net_plotter.set_weights`` (``p.data = w + d0*x + d1*y``)
                      then ``evaluation.eval_loss`` (``model.eval()``, ``torch.no_grad()``, a
                      DataLoader with batch size 128, summing ``loss.item() * batch_size``).

Fairness: every timed run happens in a fresh Python process (so no tool inherits
another's heap, threads or kernel caches), after a warm-up on a 3 x 3 grid in that
process, with the same torch thread count; runs are interleaved across tools, and the
best and the median are reported (5 runs when a run takes under 3 s, 3 up to 20 s, else
1). Start-up and imports are not timed; each tool's own set-up (directions, model
copies) is. Each run also records its minor page faults per point and how much CPU other
processes took meanwhile (``--wait-quiet`` waits for an idle machine before each run).

It prints each tool's time, points/s, the ratios to Landscape, Landscape's achieved
GFLOP/s against a 2048^3 float32 matmul, and checks that the three tools give the same
loss at the origin (and that Li et al.'s loop, fed Landscape's directions, reproduces
Landscape's surface).

Run (from the repository root)::

    python benchmarks/surface_speed.py               # 21 x 21 grid, all cases (about 7 minutes)
    python benchmarks/surface_speed.py --quick       # 11 x 11, one repetition, a smoke test
    python benchmarks/surface_speed.py --points 31 --cases cnn-digits --wait-quiet --json out.json
    python benchmarks/surface_speed.py --engine-root /tmp/patched   # time another checkout's engine
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# --engine-root DIR: time another checkout's engine (e.g. one with a proposed patch applied).
ENGINE_ROOT = None
if "--engine-root" in sys.argv[1:-1]:
    ENGINE_ROOT = str(Path(sys.argv[sys.argv.index("--engine-root") + 1]).resolve())
    sys.path.insert(0, ENGINE_ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from machine import (  # noqa: E402 - benchmarks/machine.py, beside this script
    QUIET_BUSY, cpu_jiffies, minor_faults, own_cpu_jiffies, wait_quiet,
)

REPEAT_BUDGET = 20.0  # seconds: a tool whose run takes longer than this is timed once
SHORT_RUN = 3.0  # seconds: a tool whose first run is shorter than this gets 5 runs instead of 3
TOOLS = ("landscape", "loss-landscapes", "li-et-al")
FIXED = ("landscape[inplace]", "landscape[vmap]")
# glibc settings for the --malloc-tuned experiment (see README): keep freed activations in the
# heap instead of returning them to the OS, so the next forward does not page-fault them back.
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


# --------------------------------------------------------------------------------------
# Models and data: the samples package's, so every tool sees the recipes' models.
# --------------------------------------------------------------------------------------
from engine.builtin.datasets import digits as _samples_digits  # noqa: E402
from engine.builtin.datasets import sine as _samples_sine  # noqa: E402
from engine.builtin.models import mlp as _mlp  # noqa: E402
from engine.builtin.models import small_cnn as _small_cnn  # noqa: E402

MODEL_SOURCE = "engine.builtin.models / engine.builtin.datasets"
MLP_REF, CNN_REF = "engine.builtin.models:mlp", "engine.builtin.models:small_cnn"


def _sine(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    data = _samples_sine(n, seed=seed)
    return data[0], data[1]


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    data = _samples_digits("train")
    return data[0], data[1]


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    factory: Callable[..., nn.Module]
    reference: str
    kwargs: dict[str, Any]
    data: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    classification: bool
    train_steps: int
    train_batch: int  # 0: full batch


CASES = [
    Case("mlp-sine-w50", "MLP 20-50-50-1 on 100 sine samples", _mlp, MLP_REF, {"width": 50},
         lambda: _sine(100), False, 40, 0),
    Case("mlp-sine-w500", "MLP 20-500-500-1 on 100 sine samples", _mlp, MLP_REF, {"width": 500},
         lambda: _sine(100), False, 40, 0),
    Case("mlp-sine2000-w200", "MLP 20-200-200-1 on 2000 sine samples", _mlp, MLP_REF, {"width": 200},
         lambda: _sine(2000), False, 40, 0),
    Case("cnn-digits", "Conv-BN-ReLU x2 CNN (16 ch) on 1437 8x8 digits", _small_cnn, CNN_REF,
         {"channels": 16, "num_classes": 10}, _digits, True, 150, 64),
]
CASE_BY_NAME = {case.name: case for case in CASES}


def _paths(case: Case, workdir: Path) -> dict[str, Path]:
    return {"checkpoint": workdir / f"{case.name}.pt", "data": workdir / f"{case.name}.npz"}


def setup(case: Case, workdir: Path) -> None:
    """Train the model briefly (seeded, so the loss is not ~0), store checkpoint and data."""
    from engine.io.checkpoints import save_checkpoint

    torch.manual_seed(0)
    model = case.factory(**case.kwargs)
    x, y = case.data()
    loss_fn = nn.CrossEntropyLoss() if case.classification else nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(case.train_steps):
        if case.train_batch:
            index = torch.randint(0, len(x), (case.train_batch,), generator=generator)
            xb, yb = x[index], y[index]
        else:
            xb, yb = x, y
        optimizer.zero_grad()
        loss_fn(model(xb), yb).backward()
        optimizer.step()
    paths = _paths(case, workdir)
    save_checkpoint(paths["checkpoint"], model_factory=case.reference, model_kwargs=case.kwargs,
                    state_dict=model.state_dict())
    np.savez(paths["data"], x=x.numpy(), y=y.numpy())


def load(case: Case, workdir: Path) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The stored model (eval mode, no grads) and data: what every tool starts from."""
    from engine.io.checkpoints import load_checkpoint

    paths = _paths(case, workdir)
    model = case.factory(**case.kwargs)
    model.load_state_dict(load_checkpoint(paths["checkpoint"]).state_dict)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    with np.load(paths["data"]) as archive:
        x, y = torch.from_numpy(archive["x"]), torch.from_numpy(archive["y"])
    return model, x, y


# --------------------------------------------------------------------------------------
# (a) Landscape
# --------------------------------------------------------------------------------------
def run_landscape(case: Case, workdir: Path, side: int, strategy: str = "auto", tag: str = "") -> dict[str, Any]:
    from engine.io.store import read_surface
    from engine.jobs.surface import SurfaceJob, SurfaceRequest

    paths = _paths(case, workdir)
    out = workdir / f"{case.name}-{strategy}-{side}{tag}-{os.getpid()}.h5"
    local = not case.reference.startswith("samples.")
    axis = f"-1:1:{side}" if side > 1 else "0:0:1"
    request = SurfaceRequest(
        checkpoint=str(paths["checkpoint"]), data=str(paths["data"]), out=str(out), x=axis, y=axis,
        strategy=strategy, device="cpu", overwrite=True,
        model=case.reference if local else None, model_kwargs=case.kwargs if local else None,
    )
    start = time.perf_counter()
    job = SurfaceJob(request)
    for _ in job.run():
        pass
    total = time.perf_counter() - start
    surface = read_surface(out)
    evaluator = job.evaluator
    return {
        "time": total,
        "run_time": float(getattr(job, "elapsed", total)),  # job.run() only (calibration included)
        "strategy": str(getattr(evaluator, "strategy", strategy)),
        "calibration": {k: float(v) for k, v in (getattr(evaluator, "timings", None) or {}).items()},
        "loss": surface.values["train_loss"].tolist(),
        "path": str(out),
    }


# --------------------------------------------------------------------------------------
# (b) loss-landscapes 3.0.6
# --------------------------------------------------------------------------------------
def import_loss_landscapes():
    """loss-landscapes 3.0.6 (2019) imports and runs unchanged with numpy 2.x and torch 2.x here.

    No shim is needed; should a future release of either break it, this is where a
    minimal runtime shim would go (e.g. restoring a removed numpy alias before the import).
    """
    import loss_landscapes
    import loss_landscapes.metrics

    return loss_landscapes, loss_landscapes.metrics


def run_loss_landscapes(case: Case, workdir: Path, side: int) -> dict[str, Any]:
    ll, metrics = import_loss_landscapes()
    model, x, y = load(case, workdir)  # eval mode: random_plane never calls eval(), BN would use batch stats
    loss_fn = nn.CrossEntropyLoss() if case.classification else nn.MSELoss()
    metric = metrics.Loss(loss_fn, x, y)
    torch.manual_seed(1)
    start = time.perf_counter()
    grid = ll.random_plane(model, metric, distance=1, steps=side, normalization="filter", deepcopy_model=True)
    total = time.perf_counter() - start
    return {"time": total, "loss": np.asarray(grid).tolist(), "origin": float(ll.point(model, metric))}


# --------------------------------------------------------------------------------------
# (c) Li et al. (2018), github.com/tomgoldstein/loss-landscape, re-implemented:
#     net_plotter.{get_weights, get_random_weights, normalize_directions_for_weights,
#     create_random_direction, set_weights}, evaluation.eval_loss, plot_surface.crunch
# --------------------------------------------------------------------------------------
def li_get_weights(net: nn.Module) -> list[torch.Tensor]:
    return [p.data for p in net.parameters()]


def li_get_random_weights(weights: list[torch.Tensor]) -> list[torch.Tensor]:
    return [torch.randn(w.size()) for w in weights]


def li_normalize_direction(direction: torch.Tensor, weights: torch.Tensor, norm: str = "filter") -> None:
    if norm != "filter":
        raise ValueError(norm)
    for d, w in zip(direction, weights):
        d.mul_(w.norm() / (d.norm() + 1e-10))


def li_normalize_directions_for_weights(direction, weights, norm="filter", ignore="biasbn") -> None:
    assert len(direction) == len(weights)
    for d, w in zip(direction, weights):
        if d.dim() <= 1:
            if ignore == "biasbn":
                d.fill_(0)  # ignore directions for weights with 1 dimension
            else:
                d.copy_(w)
        else:
            li_normalize_direction(d, w, norm)


def li_create_random_direction(net: nn.Module) -> list[torch.Tensor]:
    weights = li_get_weights(net)
    direction = li_get_random_weights(weights)
    li_normalize_directions_for_weights(direction, weights, "filter", "biasbn")
    return direction


def li_set_weights(net: nn.Module, weights, directions=None, step=None) -> None:
    if directions is None:
        for p, w in zip(net.parameters(), weights):
            p.data.copy_(w.type(type(p.data)))
    else:
        assert step is not None, "If a direction is specified then step must be specified as well"
        if len(directions) == 2:
            dx, dy = directions[0], directions[1]
            changes = [d0 * step[0] + d1 * step[1] for (d0, d1) in zip(dx, dy)]
        else:
            changes = [d * step for d in directions[0]]
        for p, w, d in zip(net.parameters(), weights, changes):
            p.data = w + torch.Tensor(d).type(type(w))


def li_eval_loss(net: nn.Module, criterion: nn.Module, loader) -> tuple[float, float]:
    """evaluation.eval_loss; its MSE branch one-hot encodes class labels, ours takes regression targets."""
    correct = 0
    total_loss = 0.0
    total = 0
    net.eval()
    with torch.no_grad():
        if isinstance(criterion, nn.CrossEntropyLoss):
            for inputs, targets in loader:
                batch_size = inputs.size(0)
                total += batch_size
                outputs = net(inputs)
                loss = criterion(outputs, targets)
                total_loss += loss.item() * batch_size
                _, predicted = torch.max(outputs.data, 1)
                correct += predicted.eq(targets).sum().item()
        elif isinstance(criterion, nn.MSELoss):
            for inputs, targets in loader:
                batch_size = inputs.size(0)
                total += batch_size
                outputs = net(inputs)
                loss = criterion(outputs, targets)
                total_loss += loss.item() * batch_size
    return total_loss / total, 100.0 * correct / total


def run_li(case: Case, workdir: Path, side: int, directions=None, points: np.ndarray | None = None) -> dict[str, Any]:
    """plot_surface.crunch on one process: set_weights then eval_loss, point by point (no MPI, no file writes)."""
    net, x, y = load(case, workdir)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=128, shuffle=False)
    criterion = nn.CrossEntropyLoss() if case.classification else nn.MSELoss()
    start = time.perf_counter()
    w = li_get_weights(net)
    if directions is None:
        torch.manual_seed(2)
        directions = [li_create_random_direction(net), li_create_random_direction(net)]
    if points is None:
        xcoordinates = np.linspace(-1, 1, side)
        ycoordinates = np.linspace(-1, 1, side)
        xcoord_mesh, ycoord_mesh = np.meshgrid(xcoordinates, ycoordinates)
        points = np.c_[xcoord_mesh.ravel(), ycoord_mesh.ravel()]
    losses = np.full(len(points), -1.0)
    for count, coord in enumerate(points):
        li_set_weights(net, w, directions, coord)
        losses[count], _ = li_eval_loss(net, criterion, loader)
    total = time.perf_counter() - start
    origin = [i for i, p in enumerate(points) if p[0] == 0 and p[1] == 0]
    return {"time": total, "loss": losses.tolist(), "origin": float(losses[origin[0]]) if origin else None}


# --------------------------------------------------------------------------------------
# Worker: one timed run of one tool, in its own process
# --------------------------------------------------------------------------------------
def worker(tool: str, case: Case, workdir: Path, side: int, quiet: bool) -> dict[str, Any]:
    runners: dict[str, Callable[[int], dict[str, Any]]] = {
        "landscape": lambda n: run_landscape(case, workdir, n, "auto"),
        "landscape[inplace]": lambda n: run_landscape(case, workdir, n, "inplace"),
        "landscape[vmap]": lambda n: run_landscape(case, workdir, n, "vmap"),
        "loss-landscapes": lambda n: run_loss_landscapes(case, workdir, n),
        "li-et-al": lambda n: run_li(case, workdir, n),
    }
    run = runners[tool]
    run(3)  # warm-up: imports, oneDNN kernels, thread pool
    if quiet:
        wait_quiet()
    start, own = cpu_jiffies(), own_cpu_jiffies()
    faults = minor_faults()
    result = run(side)
    result["faults_per_point"] = (minor_faults() - faults) / (side * side)
    end, own_end = cpu_jiffies(), own_cpu_jiffies()
    result["others"] = 0.0 if start is None or end is None else \
        max(0.0, (end[0] - start[0] - (own_end - own)) / max(1, end[1] - start[1]))
    result["threads"] = torch.get_num_threads()
    return result


def spawn(tool: str, case: Case, workdir: Path, side: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, "--cases", case.name,
               "--workdir", str(workdir), "--points", str(side)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if ENGINE_ROOT:
        command += ["--engine-root", ENGINE_ROOT]
    if args.wait_quiet:
        command.append("--wait-quiet")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ENGINE_ROOT, str(ROOT), os.environ.get("PYTHONPATH")])))
    if args.malloc_tuned:
        env.update(TUNED_MALLOC)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} on {case.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------
# FLOPs and the matmul yardstick
# --------------------------------------------------------------------------------------
def forward_flops(model: nn.Module, x: torch.Tensor) -> int:
    """2 x multiply-accumulates of the Linear and Conv layers for one forward over ``x``."""
    macs = 0

    def hook(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.Linear):
            macs += output.numel() * module.in_features
        else:  # convolution
            macs += output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)

    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return 2 * macs


def matmul_gflops(n: int = 2048, repeats: int = 7) -> float:
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)
    torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


# --------------------------------------------------------------------------------------
# One case
# --------------------------------------------------------------------------------------
def run_case(case: Case, side: int, repeats: int, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    setup(case, workdir)
    model, x, y = load(case, workdir)
    flops = forward_flops(model, x)
    tools = TOOLS + (FIXED if not args.no_fixed else ())
    runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}

    def wanted_runs(tool: str) -> int:
        if not runs[tool]:
            return 1
        first = runs[tool][0]["time"]
        return 1 if first > REPEAT_BUDGET else repeats if first < SHORT_RUN else min(repeats, 3)

    for rep in range(repeats):  # interleaved: run 1 of every tool, then run 2, ...
        for tool in tools:
            if rep >= wanted_runs(tool):
                continue
            print(f"  {case.name}: {tool} run {rep + 1}", file=sys.stderr, flush=True)
            runs[tool].append(spawn(tool, case, workdir, side, args))
    best = {tool: min(rs, key=lambda r: r["time"]) for tool, rs in runs.items()}

    # Agreement 1: the loss at the origin from each tool (Landscape's from a 1-point surface
    # when the grid has no 0, loss-landscapes' from loss_landscapes.point).
    ours = best["landscape"]
    grid = np.asarray(ours["loss"])
    if side % 2 == 1:
        origin_ours = float(grid[side // 2, side // 2])
    else:
        origin_ours = float(np.asarray(run_landscape(case, workdir, 1, "inplace", "-origin")["loss"]).ravel()[0])
    origin_li = best["li-et-al"]["origin"]
    if origin_li is None:
        origin_li = run_li(case, workdir, side, points=np.zeros((1, 2)))["loss"][0]
    origin = {"landscape": origin_ours, "loss-landscapes": best["loss-landscapes"]["origin"], "li-et-al": origin_li}

    # Agreement 2: Li et al.'s loop fed Landscape's own directions reproduces Landscape's surface.
    from engine.io.store import read_directions, read_surface

    surface = read_surface(ours["path"])
    directions = read_directions(ours["path"])
    names = [name for name, _ in model.named_parameters()]
    li_directions = [[d[name].float() if name in d else torch.zeros_like(p) for name, p in zip(names, model.parameters())]
                     for d in directions]
    picks = [(0, 0), (side - 1, 0), (0, side - 1), (side - 1, side - 1), (side // 2, side // 2), (side // 3, 2 * side // 3)]
    points = np.array([[surface.x[i], surface.y[j]] for i, j in picks])
    li_same = np.asarray(run_li(case, workdir, side, directions=li_directions, points=points)["loss"])
    ours_same = np.array([grid[j, i] for i, j in picks])
    surface_rel = float(np.max(np.abs(li_same - ours_same) / np.maximum(np.abs(ours_same), 1e-12)))

    return {
        "case": case.name,
        "description": case.description,
        "n_params": sum(p.numel() for p in model.parameters()),
        "n_samples": int(x.shape[0]),
        "points": side * side,
        "flops_per_point": flops,
        "times": {tool: r["time"] for tool, r in best.items()},
        "medians": {tool: float(np.median([r["time"] for r in rs])) for tool, rs in runs.items()},
        "all_times": {tool: [r["time"] for r in rs] for tool, rs in runs.items()},
        "others_busy": {tool: max(r["others"] for r in rs) for tool, rs in runs.items()},
        "faults_per_point": {tool: float(np.median([r["faults_per_point"] for r in rs])) for tool, rs in runs.items()},
        "threads": sorted({r["threads"] for rs in runs.values() for r in rs}),
        "landscape_run_time": ours["run_time"],
        "strategy": ours["strategy"],
        "strategies_picked": [r["strategy"] for r in runs["landscape"]],
        "calibration": ours["calibration"],
        "origin": origin,
        "surface_check_rel": surface_rel,
    }


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------
def report(results: list[dict[str, Any]], peak: float) -> str:
    lines = []
    for r in results:
        lines.append("")
        lines.append(f"{r['case']}: {r['description']}; {r['n_params']:,} params, {r['points']} points, "
                     f"{r['flops_per_point'] / 1e6:.2f} MFLOP/point; threads {r['threads']}")
        lines.append(f"  {'tool':<28}{'best s':>8}{'median s':>10}{'points/s':>10}{'best/L':>8}{'median/L':>10}"
                     f"  faults/pt  others' CPU  runs (s)")
        base, base_median = r["times"]["landscape"], r["medians"]["landscape"]
        for tool, t in r["times"].items():
            label = f"landscape (auto -> {r['strategy']})" if tool == "landscape" else tool
            reps = "/".join(f"{v:.3g}" for v in r["all_times"][tool])
            median = r["medians"][tool]
            lines.append(f"  {label:<28}{t:>8.3f}{median:>10.3f}{r['points'] / t:>10.0f}{t / base:>7.2f}x"
                         f"{median / base_median:>9.2f}x  {r['faults_per_point'][tool]:>9.0f}"
                         f"  {100 * r['others_busy'][tool]:>10.0f}%   {reps}")
        gflops = r["flops_per_point"] * r["points"] / base / 1e9
        loop = r["flops_per_point"] * r["points"] / r["landscape_run_time"] / 1e9
        others = {k: v for k, v in r["times"].items() if k in ("loss-landscapes", "li-et-al")}
        fastest = min(others, key=others.get)
        lines.append(f"  landscape: {gflops:.1f} GFLOP/s end to end = {100 * gflops / peak:.0f}% of the matmul "
                     f"({loop:.1f} GFLOP/s inside job.run(), {r['landscape_run_time']:.3f} s); the fastest other "
                     f"tool ({fastest}) takes {others[fastest] / base:.2f}x as long (best), "
                     f"{r['medians'][fastest] / base_median:.2f}x (median)")
        if r["calibration"]:
            cal = ", ".join(f"{k} {1e3 * v:.3g} ms/point" for k, v in r["calibration"].items())
            lines.append(f"  auto calibration in the best run: {cal}; picked {', '.join(r['strategies_picked'])}")
        o = r["origin"]
        rel = (max(o.values()) - min(o.values())) / max(abs(o["landscape"]), 1e-12)
        lines.append("  loss at the origin: " + ", ".join(f"{k} {v:.8g}" for k, v in o.items())
                     + f"; max rel diff {rel:.1e} {'OK' if rel < 1e-5 else 'MISMATCH'}")
        lines.append(f"  li-et-al loop with Landscape's directions at 6 grid points: max rel diff "
                     f"{r['surface_check_rel']:.1e} {'OK' if r['surface_check_rel'] < 1e-4 else 'MISMATCH'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="11 x 11 grid, one repetition, no fixed-strategy runs")
    parser.add_argument("--points", type=int, default=None, help="grid side N: N x N points (default 21; 11 with --quick)")
    parser.add_argument("--repeats", type=int, default=None,
                        help=f"timed runs per tool for runs under {SHORT_RUN:g} s (default 5; 1 with --quick); "
                             f"at most 3 for runs up to {REPEAT_BUDGET:g} s, 1 above")
    parser.add_argument("--cases", default=",".join(c.name for c in CASES), help="comma-separated subset of cases")
    parser.add_argument("--no-fixed", action="store_true", help="do not time the fixed strategies inplace and vmap")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in every process")
    parser.add_argument("--wait-quiet", action="store_true",
                        help=f"before each timed run, wait until other processes use < {100 * QUIET_BUSY:.0f}%% of the CPUs")
    parser.add_argument("--malloc-tuned", action="store_true",
                        help="run every tool with glibc malloc told to keep freed memory (see README)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--engine-root", default=None,
                        help="time the engine of another checkout (e.g. with a proposed patch applied)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    side = args.points or (11 if args.quick else 21)
    if side < 2:
        parser.error("--points must be at least 2")
    repeats = args.repeats or (1 if args.quick else 5)
    args.no_fixed = args.no_fixed or args.quick
    if args.threads:
        torch.set_num_threads(args.threads)
    wanted = args.cases.split(",")
    unknown = [c for c in wanted if c not in CASE_BY_NAME]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASE_BY_NAME)}")
    warnings.filterwarnings("ignore", category=UserWarning)

    if args.worker:
        result = worker(args.worker, CASE_BY_NAME[wanted[0]], Path(args.workdir), side, args.wait_quiet)
        print(json.dumps(result))
        return 0

    import_loss_landscapes()  # fail before any timing if it is missing
    peak = matmul_gflops()
    print(f"torch {torch.__version__} on {platform.machine()} ({os.cpu_count()} CPUs), "
          f"torch.get_num_threads()={torch.get_num_threads()}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}, malloc tuned: {args.malloc_tuned}")
    import engine

    print(f"engine: {Path(engine.__file__).resolve().parent}; models: {MODEL_SOURCE}")
    print(f"grid {side} x {side} = {side * side} points; best of up to {repeats} runs, "
          f"each timed run in a fresh process after a 3 x 3 warm-up")
    print(f"float32 matmul 2048^3: {peak:.1f} GFLOP/s", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="landscape-bench-") as tmp:
        for name in wanted:
            results.append(run_case(CASE_BY_NAME[name], side, repeats, Path(tmp), args))
    print(report(results, peak))
    if args.json:
        payload = {"torch": torch.__version__, "threads": torch.get_num_threads(), "side": side, "repeats": repeats,
                   "engine_root": ENGINE_ROOT or str(ROOT),
                   "malloc_tuned": args.malloc_tuned, "matmul_gflops": peak, "results": results}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
