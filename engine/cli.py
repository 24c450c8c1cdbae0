"""The ``landscape`` command (also ``python -m engine``): the engine, headless.

Every error a user can cause ends in one line on stderr and a non-zero exit;
``--debug`` shows the traceback of unexpected failures.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any, Callable, Sequence

from engine import __version__
from engine.errors import LandscapeError
from engine.jobs.base import Job
from engine.jobs.console import run_with_progress

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a C tool reports


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors are one line like every other Landscape error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise LandscapeError(f"{message} (see '{self.prog} --help')")


def _add_surface(sub: Any) -> None:
    p = sub.add_parser(
        "surface",
        help="compute a filter-normalized 1D or 2D loss surface into an HDF5 file",
        description="Evaluate the loss at theta0 + x*dx + y*dy on a grid and store it, point by point, in FILE.h5. "
        "Re-running the same command on an unfinished file continues it.",
    )
    p.add_argument("checkpoint", help="checkpoint file (.pt/.pth/.bin/.ckpt/.safetensors/TorchScript)")
    p.add_argument("--model", help="architecture: module.path:callable or path/to/file.py:callable")
    p.add_argument("--model-kwargs", help="JSON keyword arguments for --model, e.g. '{\"width\": 200}'")
    p.add_argument("--data", required=True, help="FILE (.npz/.pt/.h5 with x and y), sample:NAME, or module:callable")
    p.add_argument("--loss", default="auto", help="auto (default), mse or cross_entropy")
    p.add_argument("--x", metavar="MIN:MAX:N", help="x axis: N values from MIN to MAX, ends included "
                   "(required, except for --directions plane, which frames its path by default: auto or auto:N)")
    p.add_argument("--y", metavar="MIN:MAX:N", help="y axis; omit for a 1D slice")
    p.add_argument("--directions", default="random",
                   help="random (default), interpolate, pca, hessian (the top Hessian eigenvectors, unit length), "
                        "plane (through a path's endpoints and bend: --path), or FILE.h5 to reuse its directions")
    p.add_argument("--to", help="second checkpoint for --directions interpolate (x=0 first, x=1 second)")
    p.add_argument("--path", help="path file (from landscape path) for --directions plane; its first endpoint must be "
                   "CHECKPOINT")
    p.add_argument("--trajectory", help="folder or glob of training checkpoints for --directions pca")
    p.add_argument("--line", metavar="X0,Y0:X1,Y1",
                   help="evaluate along this segment of the plane of --directions FILE.h5 (a 2D surface); "
                        "--x is then the fraction along it, e.g. --x=0:1:101")
    p.add_argument("--norm", default="filter", help="filter (default), layer, weight or none")
    p.add_argument("--ignore", default="biasbn", help="biasbn (default: no movement of 1-D tensors) or none")
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions (default 0)")
    p.add_argument("--metrics", default="loss,acc", help="loss,acc (default; acc only for classification) or loss")
    p.add_argument("--max-samples", type=int, help="evaluate on a fixed, seeded subset of this many samples")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--batch-size", type=int, help="samples per forward pass (default: all, up to 4096, "
                   "fewer when one batch's activations would not fit the memory budget)")
    p.add_argument("--memory-budget", metavar="SIZE",
                   help="memory for data kept on the device, a batch's activations and batched points, e.g. 8GiB "
                        "(default 2GiB; larger data is streamed from its file)")
    p.add_argument("--mode", default="eval", choices=("eval", "train"),
                   help="eval (default: BatchNorm uses its running statistics) or train (batch statistics)")
    p.add_argument("--strategy", default="auto", help="auto (default: measured), inplace or vmap")
    p.add_argument("--trust-pickle", action="store_true", help="allow checkpoints that need arbitrary unpickling (runs code from the file)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file made with other settings")
    p.add_argument("--flush-seconds", type=float, default=0.5,
                   help="seconds of work between writes to the file: the most a killed run loses (default 0.5)")
    p.add_argument("--out", required=True, help="output surface file (.h5)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object summarizing the result on stdout (progress stays on stderr)")
    p.set_defaults(run=_run_surface)


def _add_path(sub: Any) -> None:
    p = sub.add_parser(
        "path",
        help="loss along the straight line or a fitted Bezier/polychain curve between two checkpoints (mode connectivity)",
        description="Evaluate the loss and accuracy at N values of t along a path from checkpoint A (t=0) to B (t=1): "
        "the straight line, or a curve whose bends are trained between the fixed endpoints as Garipov et al. do. "
        "Barriers are reported for every path. Re-running the same command on an unfinished file continues it "
        "from its last saved epoch and point.",
    )
    p.add_argument("a", help="first endpoint checkpoint (t = 0)")
    p.add_argument("b", help="second endpoint checkpoint (t = 1), the same architecture")
    p.add_argument("--model", help="architecture: module.path:callable or path/to/file.py:callable")
    p.add_argument("--model-kwargs", help="JSON keyword arguments for --model")
    p.add_argument("--data", required=True, help="training data: FILE (.npz/.pt/.h5), sample:NAME, or module:callable")
    p.add_argument("--test-data", help="test data, evaluated at every point too (test_loss, test_acc)")
    p.add_argument("--loss", default="auto", help="auto (default), mse or cross_entropy")
    p.add_argument("--curve", default="linear", choices=("linear", "bezier", "polychain"),
                   help="linear (default: the straight line), bezier or polychain (bends trained between A and B)")
    p.add_argument("--bends", type=int, help="bends of a curve (default 1: a quadratic Bezier, a two-segment polychain)")
    p.add_argument("--epochs", type=int, default=20, help="epochs of curve training (default 20)")
    p.add_argument("--lr", type=float, default=0.015, help="learning rate of curve training (default 0.015)")
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adam"), help="sgd (default, with --momentum) or adam")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="L2 penalty wd/2 |w(t)|^2 on the sampled point, as Garipov et al. (default 0)")
    p.add_argument("--schedule", default="garipov", choices=("garipov", "constant", "cosine"),
                   help="learning-rate schedule: garipov (default: constant to 50%%, down to 1%% by 90%%), constant, cosine")
    p.add_argument("--batch-size", type=int, default=128, help="training minibatch size (default 128)")
    p.add_argument("--points", type=int, default=61, help="values of t from A to B, both included (default 61)")
    p.add_argument("--t-range", default="0:1", metavar="MIN:MAX",
                   help="look past the endpoints with the same spacing, e.g. --t-range=-0.2:1.2 (default 0:1)")
    p.add_argument("--align", default="none", choices=("none", "weight-matching"),
                   help="match B's hidden units to A's first (Git Re-Basin weight matching; MLPs and conv nets)")
    p.add_argument("--save-aligned", metavar="FILE.pt", help="also write the aligned B as a checkpoint")
    p.add_argument("--bn-recompute", default="auto", choices=("auto", "on", "off"),
                   help="re-estimate BatchNorm statistics at every point on the training data (auto: when the model "
                        "has BatchNorm); off interpolates A's and B's")
    p.add_argument("--bn-samples", type=int, help="re-estimate BatchNorm statistics on a seeded subset of this many samples")
    p.add_argument("--seed", type=int, default=0, help="seed of curve training, BatchNorm subsets and alignment (default 0)")
    p.add_argument("--max-samples", type=int, help="use a fixed, seeded subset of this many training samples")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--eval-batch-size", type=int, help="samples per forward pass when evaluating points")
    p.add_argument("--memory-budget", metavar="SIZE", help="memory for data kept on the device etc., e.g. 8GiB (default 2GiB)")
    p.add_argument("--trust-pickle", action="store_true", help="allow checkpoints that need arbitrary unpickling")
    p.add_argument("--no-baselines", dest="baselines", action="store_false",
                   help="only the requested path: not also the straight line (before and after --align) for comparison")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file made with other settings")
    p.add_argument("--flush-seconds", type=float, default=0.5,
                   help="seconds of work between writes to the file: the most a killed run loses (default 0.5)")
    p.add_argument("--out", required=True, help="output path file (.h5)")
    p.add_argument("--json", action="store_true", help="print one JSON object summarizing the result on stdout")
    p.set_defaults(run=_run_path)


def _run_path(args: argparse.Namespace) -> int:
    from engine.io.models import parse_kwargs
    from engine.jobs.path import PathJob, PathRequest
    from engine.jobs.spec import parse_size

    request = PathRequest(
        a=args.a, b=args.b, data=args.data, out=args.out, test_data=args.test_data, model=args.model,
        model_kwargs=parse_kwargs(args.model_kwargs) if args.model_kwargs else None, loss=args.loss,
        curve=args.curve, bends=args.bends, epochs=args.epochs, lr=args.lr, optimizer=args.optimizer,
        momentum=args.momentum, weight_decay=args.weight_decay, schedule=args.schedule, batch_size=args.batch_size,
        points=args.points, t_range=parse_range(args.t_range), align=args.align, save_aligned=args.save_aligned,
        bn_recompute=args.bn_recompute, bn_samples=args.bn_samples, seed=args.seed, max_samples=args.max_samples,
        device=args.device, eval_batch_size=args.eval_batch_size,
        memory_budget=parse_size(args.memory_budget) if args.memory_budget else None,
        trust_pickle=args.trust_pickle, overwrite=args.overwrite, baselines=args.baselines,
        flush_seconds=args.flush_seconds,
    )
    return run_job(PathJob(request), as_json=args.json)


def parse_range(text: str) -> tuple[float, float]:
    """``'-0.2:1.2'`` -> (-0.2, 1.2), or a one-line LandscapeError."""
    try:
        low, high = (float(v) for v in text.split(":"))
    except ValueError:
        raise LandscapeError(f"--t-range {text}: write it as MIN:MAX, for example --t-range=-0.2:1.2") from None
    return low, high


def _add_hessian(sub: Any) -> None:
    p = sub.add_parser(
        "hessian",
        help="Hessian spectrum: top/bottom eigenpairs, trace, spectral density, overparameterization report",
        description="Hessian-vector products of the mean loss over all of --data give the extreme eigenvalues "
        "(Lanczos), the trace (Hutch++) and the spectral density (stochastic Lanczos quadrature) at CHECKPOINT, "
        "or at a point of a surface (--at S.h5 --point X,Y). With no choice, the top eigenvalue. Re-running the "
        "same command on an unfinished file continues it.",
    )
    p.add_argument("checkpoint", help="checkpoint file (.pt/.pth/.bin/.ckpt/.safetensors/TorchScript)")
    p.add_argument("--model", help="architecture: module.path:callable or path/to/file.py:callable")
    p.add_argument("--model-kwargs", help="JSON keyword arguments for --model, e.g. '{\"width\": 200}'")
    p.add_argument("--data", required=True, help="FILE (.npz/.pt/.h5 with x and y), sample:NAME, or module:callable")
    p.add_argument("--test-data", help="held-out data for the report's test loss and accuracy")
    p.add_argument("--loss", default="auto", help="auto (default), mse or cross_entropy")
    p.add_argument("--top-k", type=int, default=0, help="the K largest eigenvalues (algebraic)")
    p.add_argument("--bottom-k", type=int, default=0, help="the K smallest eigenvalues (most negative first)")
    p.add_argument("--eigenvectors", action="store_true", help="also store the eigenvectors, keyed by parameter name")
    p.add_argument("--method", default="lanczos", choices=("lanczos", "power"),
                   help="lanczos (default; full reorthogonalization) or power iteration with deflation (largest "
                        "magnitude, as PyHessian; for comparison)")
    p.add_argument("--tol", type=float, default=1e-5,
                   help="stop when every wanted Ritz residual |Hu - λu| is below TOL x the largest |λ| (default 1e-5)")
    p.add_argument("--max-iter", type=int, default=100, help="most products for the eigenpairs (default 100)")
    p.add_argument("--trace", action="store_true", help="the trace, by Hutch++ (or --trace-method hutchinson)")
    p.add_argument("--trace-method", default="hutch++", choices=("hutch++", "hutchinson"))
    p.add_argument("--trace-tol", type=float, default=0.01,
                   help="stop at this relative standard error of the trace (default 0.01)")
    p.add_argument("--trace-sketch", type=int, default=10, help="Hutch++ sketch size (default 10: 20 products)")
    p.add_argument("--trace-max-probes", type=int, default=1000, help="most trace samples (default 1000)")
    p.add_argument("--density", action="store_true", help="the spectral density by stochastic Lanczos quadrature")
    p.add_argument("--density-probes", type=int, default=5, help="random probes n_v (default 5)")
    p.add_argument("--density-steps", type=int, default=80, help="Lanczos steps per probe m (default 80)")
    p.add_argument("--sigma", type=float, help="Gaussian width of the stored density (default: 1%% of the spread)")
    p.add_argument("--report", action="store_true",
                   help="the overparameterization report: p, n, p/n, train/test loss and accuracy, interpolation, "
                        "top and bottom eigenvalue, trace, negative spectral mass, N_eff(alpha)")
    p.add_argument("--alpha", default="0.001,0.01,0.1,1", help="alphas of N_eff(alpha) in the report (default "
                   "0.001,0.01,0.1,1)")
    p.add_argument("--at", metavar="SURFACE.h5", help="take the Hessian at a point of this surface (made around "
                   "CHECKPOINT) ...")
    p.add_argument("--point", metavar="X,Y", help="... at theta0 + X*dx + Y*dy (X alone for a 1D surface)")
    p.add_argument("--mode", default="eval", choices=("eval", "train"),
                   help="eval: BatchNorm uses running statistics (default); train: batch statistics")
    p.add_argument("--hvp-method", default="auto", choices=("auto", "double_backward", "forward_over_reverse"),
                   help="how Hessian-vector products are computed (auto: the faster, measured on the first products)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random vector (default 0)")
    p.add_argument("--max-samples", type=int, help="use a seeded subset of this many samples")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--batch-size", type=int, help="samples per forward pass")
    p.add_argument("--memory-budget", metavar="SIZE", help="memory for data and graphs kept on the device, e.g. 8GiB")
    p.add_argument("--trust-pickle", action="store_true", help="allow checkpoints that need arbitrary unpickling")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file made with other settings")
    p.add_argument("--flush-seconds", type=float, default=0.5,
                   help="seconds of work between writes to the file: the most a killed run loses (default 0.5)")
    p.add_argument("--out", required=True, help="output spectrum file (.h5)")
    p.add_argument("--json", action="store_true", help="print one JSON object summarizing the result on stdout")
    p.set_defaults(run=_run_hessian)


def _run_hessian(args: argparse.Namespace) -> int:
    from engine.io.models import parse_kwargs
    from engine.jobs.hessian import HessianJob, HessianRequest
    from engine.jobs.spec import parse_size

    request = HessianRequest(
        checkpoint=args.checkpoint, data=args.data, out=args.out, test_data=args.test_data, model=args.model,
        model_kwargs=parse_kwargs(args.model_kwargs) if args.model_kwargs else None, loss=args.loss,
        top_k=args.top_k, bottom_k=args.bottom_k, method=args.method, tol=args.tol, max_iter=args.max_iter,
        eigenvectors=args.eigenvectors, trace=args.trace, trace_method=args.trace_method, trace_tol=args.trace_tol,
        trace_sketch=args.trace_sketch, trace_max_probes=args.trace_max_probes, density=args.density,
        density_probes=args.density_probes, density_steps=args.density_steps, sigma=args.sigma, report=args.report,
        alphas=parse_numbers(args.alpha, "--alpha"), at=args.at,
        point=parse_numbers(args.point, "--point") if args.point else None, seed=args.seed,
        max_samples=args.max_samples, device=args.device, batch_size=args.batch_size, mode=args.mode,
        memory_budget=parse_size(args.memory_budget) if args.memory_budget else None, hvp_method=args.hvp_method,
        trust_pickle=args.trust_pickle, overwrite=args.overwrite, flush_seconds=args.flush_seconds,
    )
    return run_job(HessianJob(request), as_json=args.json)


def parse_numbers(text: str, flag: str) -> tuple[float, ...]:
    """``'0.1,-2'`` -> (0.1, -2.0), or a one-line LandscapeError."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values:
        raise LandscapeError(f"{flag} {text}: write numbers separated by commas, for example {flag}=0.1,-0.2")
    return values


def _add_info(sub: Any) -> None:
    p = sub.add_parser("info", help="summarize a result file: surface (Landscape's or Li et al.'s), path or spectrum")
    p.add_argument("file", help="result file (.h5)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=_run_info)


def _add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="write a surface file's grid as HDF5 (Landscape's format), CSV, or ParaView .vtp",
        description="The format follows OUT's suffix: .h5/.hdf5 (a Landscape surface file, also from Li et al.'s), "
        ".csv (one row per point: x,y,values...,done; empty fields where not computed), or .vtp (ParaView "
        "PolyData like Li et al.'s h52vtp.py: z = --metric; points not computed or non-finite are left out).",
    )
    p.add_argument("grid", metavar="GRID", help="surface file (.h5, Landscape's or Li et al.'s)")
    p.add_argument("out", metavar="OUT", help="output file: .h5, .hdf5, .csv or .vtp")
    p.add_argument("--metric", default="train_loss", help=".vtp height: train_loss (default), train_acc, test_loss, test_acc")
    p.add_argument("--log", action="store_true", help=".vtp only: height is log10 of the metric")
    p.add_argument("--zmax", type=float, help=".vtp only: clip the metric at this value (before --log)")
    p.set_defaults(run=_run_export)


# A subcommand adds its parser to the subparsers and sets ``run`` on it; front ends that
# compose the engine with other packages (``landscape_cli`` adds ``train``) pass more.
Subcommand = Callable[[Any], None]


def build_parser(extensions: Sequence[Subcommand] = ()) -> argparse.ArgumentParser:
    parser = _Parser(prog="landscape", description="Loss landscapes of PyTorch checkpoints, headless.")
    parser.add_argument("--version", action="version", version=f"landscape {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (_add_surface, _add_path, _add_hessian, _add_info, _add_export, *extensions):
        add(sub)
    return parser


def _join_negative_values(argv: list[str]) -> list[str]:
    """Accept ``--x -1:1:51`` and ``--point -0.5,0.2`` as well as ``--x=-1:1:51`` (argparse takes '-1:...' for a flag)."""
    joined: list[str] = []
    i = 0
    while i < len(argv):
        value = argv[i + 1] if i + 1 < len(argv) else ""
        if value.startswith("-") and ((argv[i] in ("--x", "--y", "--t-range") and ":" in value) or
                                      (argv[i] == "--point" and (value[1:2].isdigit() or value[1:2] == "."))):
            joined.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        joined.append(argv[i])
        i += 1
    return joined


def _run_surface(args: argparse.Namespace) -> int:
    from engine.io.models import parse_kwargs
    from engine.jobs.spec import parse_size
    from engine.jobs.surface import SurfaceJob, SurfaceRequest, parse_line

    request = SurfaceRequest(
        checkpoint=args.checkpoint,
        data=args.data,
        x=args.x or ("auto" if args.directions == "plane" else _required("--x")),
        y=args.y or ("auto" if args.directions == "plane" else None),
        out=args.out,
        model=args.model,
        model_kwargs=parse_kwargs(args.model_kwargs) if args.model_kwargs else None,
        loss=args.loss,
        metrics=tuple(m.strip() for m in args.metrics.split(",") if m.strip()),
        norm=args.norm,
        ignore=args.ignore,
        seed=args.seed,
        directions=args.directions,
        to=args.to,
        path=args.path,
        trajectory=args.trajectory,
        line=parse_line(args.line) if args.line else None,
        max_samples=args.max_samples,
        device=args.device,
        batch_size=args.batch_size,
        memory_budget=parse_size(args.memory_budget) if args.memory_budget else None,
        mode=args.mode,
        strategy=args.strategy,
        trust_pickle=args.trust_pickle,
        overwrite=args.overwrite,
        flush_seconds=args.flush_seconds,
    )
    return run_job(SurfaceJob(request), as_json=args.json)


def _required(flag: str) -> str:
    raise LandscapeError(f"the following arguments are required: {flag} (see 'landscape surface --help')")


def run_job(job: Job, *, as_json: bool = False) -> int:
    """Run any job: progress on stderr, Ctrl-C or SIGTERM stop it with its work saved, the summary on stdout.

    With ``as_json`` stdout carries exactly one JSON object (:meth:`Summary.as_json`),
    also when the run was interrupted (then the exit status is 130).
    """
    from tqdm import tqdm

    _stop_on_sigterm()
    interrupted = run_with_progress(job, tqdm, again="run the same command again")
    if not job.has_summary:
        return EXIT_INTERRUPTED
    summary = job.summary()
    if as_json:
        print(json.dumps(summary.as_json(), sort_keys=True))
    elif not interrupted:
        print(summary.describe())
    return EXIT_INTERRUPTED if interrupted else 0


def _stop_on_sigterm() -> None:
    """A batch scheduler's SIGTERM ends the run like Ctrl-C: a message, and a file to resume."""

    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (e.g. called from a GUI worker)
        pass


def _run_info(args: argparse.Namespace) -> int:
    from engine.io.info import describe, format_summary

    summary = describe(args.file)
    print(json.dumps(summary, indent=2, sort_keys=True) if args.json else format_summary(summary))
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from engine.io.export import export_grid
    from engine.io.store import read_surface

    surface = read_surface(args.grid)
    out = export_grid(surface, args.out, args.metric, log=args.log, zmax=args.zmax)
    grid = " x ".join(str(n) for n in reversed(surface.shape))
    print(f"wrote {out}: {grid} grid, {int(surface.done.sum())}/{surface.done.size} points computed")
    return 0


def main(argv: Sequence[str] | None = None, extensions: Sequence[Subcommand] = ()) -> int:
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in argv
    try:
        parser = build_parser(extensions)
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return EXIT_ERROR
        return int(args.run(args) or 0)
    except LandscapeError as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"landscape: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("landscape: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`landscape info F | head`): not an error, and nothing more to say.
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"landscape: unexpected error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1
