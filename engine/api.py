"""The Python API: the CLI's jobs for notebooks and scripts.

>>> import engine
>>> s = engine.surface(checkpoint="model.pt", data="train.npz", x="-1:1:51", y="-1:1:51", out="s.h5")  # doctest: +SKIP
>>> s.values["train_loss"].shape, s.x.shape, s.attrs["seed"]                                            # doctest: +SKIP
((51, 51), (51,), 0)

Each function runs the same job as its CLI subcommand (``engine.surface`` is
``landscape surface``), shows progress with tqdm (a widget in Jupyter), resumes its
file when called again after an interruption, and returns what :func:`open` reads
from the finished file. Errors are :class:`engine.LandscapeError` with one line.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from engine.io.store import Surface, read_surface, settings_of
from engine.io.store.paths import PathResult, read_path
from engine.io.store.spectra import Spectrum, read_spectrum
from engine.jobs.hessian import HessianJob, HessianRequest
from engine.jobs.base import Job, Summary
from engine.jobs.console import run_with_progress
from engine.jobs.path import PathJob, PathRequest
from engine.jobs.surface import SurfaceJob, SurfaceRequest

Axis = str | Sequence[float]


def surface(
    checkpoint: str | Path,
    data: str | Path,
    x: Axis,
    y: Axis | None = None,
    *,
    out: str | Path | None = None,
    model: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    progress: bool = True,
    **options: Any,
) -> Surface:
    """Compute a 1D (no ``y``) or 2D loss surface around ``checkpoint`` and return it.

    ``x`` and ``y`` are ``"MIN:MAX:N"`` or ``(MIN, MAX, N)``. ``out`` is the HDF5 file
    to write (a new temporary file when omitted; ``s.path`` says where). Every other
    keyword is a :class:`SurfaceRequest` field, named as the CLI flag without dashes:
    ``seed``, ``norm``, ``ignore``, ``directions``, ``to``, ``trajectory``, ``loss``,
    ``metrics``, ``max_samples``, ``device``, ``batch_size``, ``mode``, ``strategy``,
    ``trust_pickle``, ``overwrite``.
    """
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="landscape-")) / "surface.h5"
    request = SurfaceRequest(checkpoint=str(checkpoint), data=str(data), x=_axis(x), y=None if y is None else _axis(y),
                             out=str(out), model=model, model_kwargs=model_kwargs, **options)
    run(SurfaceJob(request), progress=progress)
    return read_surface(out)


def path(
    a: str | Path,
    b: str | Path,
    data: str | Path,
    *,
    curve: str = "linear",
    out: str | Path | None = None,
    model: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    t_range: tuple[float, float] = (0.0, 1.0),
    progress: bool = True,
    **options: Any,
) -> PathResult:
    """The loss along a path from checkpoint ``a`` (t = 0) to ``b`` (t = 1), and its barriers.

    ``curve`` is ``linear``, ``bezier`` or ``polychain`` (bends trained between the
    endpoints). Every other keyword is a :class:`PathRequest` field, named as the
    ``landscape path`` flag without dashes: ``test_data``, ``bends``, ``epochs``, ``lr``,
    ``optimizer``, ``momentum``, ``weight_decay``, ``schedule``, ``batch_size``,
    ``points``, ``align``, ``save_aligned``, ``bn_recompute``, ``bn_samples``, ``seed``,
    ``max_samples``, ``device``, ``eval_batch_size``, ``trust_pickle``, ``overwrite``.
    Returns what :func:`open` reads: ``p.t``, ``p.values["train_loss"]``,
    ``p.barriers["curve"]["train_loss"]["interpolated"]``, ``p.bends``.
    """
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="landscape-")) / "path.h5"
    request = PathRequest(a=str(a), b=str(b), data=str(data), out=str(out), curve=curve, model=model,
                          model_kwargs=model_kwargs, t_range=(float(t_range[0]), float(t_range[1])), **options)
    run(PathJob(request), progress=progress)
    return read_path(out)


def hessian(
    checkpoint: str | Path,
    data: str | Path,
    *,
    out: str | Path | None = None,
    model: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    progress: bool = True,
    **options: Any,
) -> Spectrum:
    """The Hessian spectrum of the mean loss over ``data`` at ``checkpoint`` (or at a point of a surface).

    Every keyword is a :class:`HessianRequest` field, named as the ``landscape hessian``
    flag without dashes: ``top_k``, ``bottom_k``, ``eigenvectors``, ``method``, ``tol``,
    ``max_iter``, ``trace``, ``trace_method``, ``trace_tol``, ``density``, ``density_probes``,
    ``density_steps``, ``sigma``, ``report``, ``alphas`` (a tuple), ``test_data``, ``at`` and
    ``point`` (a tuple), ``mode``, ``hvp_method``, ``seed``, ``max_samples``, ``device``, ...
    Returns what :func:`open` reads: ``s.top_eigenvalues``, ``s.trace``, ``s.density_at(sigma)``,
    ``s.report["n_eff"]``, ``s.eigenvectors()``.
    """
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="landscape-")) / "spectrum.h5"
    for key in ("alphas", "point"):
        if key in options and options[key] is not None:
            options[key] = tuple(float(v) for v in options[key])
    request = HessianRequest(checkpoint=str(checkpoint), data=str(data), out=str(out), model=model,
                             model_kwargs=model_kwargs, **options)
    run(HessianJob(request), progress=progress)
    return read_spectrum(out)


def run(job: Job, progress: bool = True) -> Summary:
    """Run any job to its end with a tqdm bar; on KeyboardInterrupt say what was saved and re-raise."""
    from tqdm.auto import tqdm

    if run_with_progress(job, tqdm, show=progress, again="run the same call again"):
        raise KeyboardInterrupt
    return job.summary()


def open(path: str | Path) -> Surface | PathResult | Spectrum:  # noqa: A001 - reads like the builtin, on purpose
    """Read any result file Landscape writes (and Li et al.'s surface files)."""
    kind = str(settings_of(path).get("kind", "surface"))
    if kind == "surface":
        return read_surface(path)
    if kind == "path":
        return read_path(path)
    if kind == "spectrum":
        return read_spectrum(path)
    from engine.errors import LandscapeError

    raise LandscapeError(f"{path} holds a '{kind}' result, which this Landscape cannot read: upgrade")


def _axis(axis: Axis) -> str:
    if isinstance(axis, str):
        return axis
    low, high, count = axis
    return f"{float(low)!r}:{float(high)!r}:{int(count)}"
