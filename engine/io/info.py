"""``landscape info``: what a result file (surface, path, spectrum) holds, in a few lines or as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.io.store import read_surface, settings_of, writer_of
from engine.io.store.paths import read_path

PROVENANCE_KEYS = (
    "created", "engine_version", "checkpoint", "checkpoint_sha256", "checkpoint_metadata", "model", "model_kwargs", "n_params",
    "data", "data_sha256", "data_samples", "loss", "mode", "batch_size", "memory_budget", "norm", "ignore", "seed",
    "directions", "directions_source", "directions_source_sha256", "line", "device", "dtype", "evaluation_strategy",
    "explained_variance_ratio", "hessian_eigenvalues",
)
PATH_PROVENANCE_KEYS = (
    "created", "engine_version", "checkpoint", "checkpoint_sha256", "b_checkpoint", "b_checkpoint_sha256", "model",
    "model_kwargs", "n_params", "data", "data_sha256", "test_data", "test_data_sha256", "loss", "curve", "bends", "align",
    "alignment_max_output_difference", "bn_recompute", "bn_samples", "epochs", "lr", "optimizer", "momentum",
    "weight_decay", "schedule", "train_batch_size", "seed", "device", "dtype",
)
SPECTRUM_PROVENANCE_KEYS = (
    "created", "engine_version", "checkpoint", "checkpoint_sha256", "model", "model_kwargs", "n_params", "data",
    "data_sha256", "data_samples", "test_data", "loss", "mode", "at", "point", "top_k", "bottom_k", "method", "tol",
    "max_iter", "trace_method", "trace_tol", "density_probes", "density_steps", "sigma", "seed", "hvp_method_used",
    "device", "dtype",
)


def _range(values: np.ndarray, done: np.ndarray) -> dict[str, Any]:
    picked = values[done]
    finite = picked[np.isfinite(picked)]
    return {
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "nonfinite": int((~np.isfinite(picked)).sum()),
    }


def describe(path: str | Path) -> dict[str, Any]:
    """A JSON-ready summary: kind, shape, coordinate and value ranges, done fraction, provenance."""
    kind = settings_of(path).get("kind")
    if kind == "path":
        return describe_path(path)
    if kind == "spectrum":
        return describe_spectrum(path)
    surface = read_surface(path)
    summary: dict[str, Any] = {
        "file": str(surface.path),
        "format": surface.format,
        "kind": surface.attrs.get("kind", "surface"),
        "dimensions": surface.dimensions,
        "shape": list(surface.shape),
        "x": [float(surface.x[0]), float(surface.x[-1]), len(surface.x)],
        "done": int(surface.done.sum()),
        "total": int(surface.done.size),
        "done_fraction": float(surface.done.mean()),
        "values": {name: _range(array, surface.done) for name, array in surface.values.items()},
    }
    if surface.y is not None:
        summary["y"] = [float(surface.y[0]), float(surface.y[-1]), len(surface.y)]
    if surface.trajectory is not None:
        summary["trajectory_points"] = len(surface.trajectory["x"])
    if surface.overlay is not None:
        summary["overlay"] = {"points": {k: list(v) for k, v in surface.overlay.points.items()},
                              "lines": sorted(surface.overlay.lines)}
    summary["provenance"] = {k: surface.attrs[k] for k in PROVENANCE_KEYS if k in surface.attrs}
    writer = writer_of(path)
    if writer is not None:
        summary["being_written_by"] = writer
    return summary


def describe_path(path: str | Path) -> dict[str, Any]:
    """A path file's summary: t, each series' progress, values and barriers, the training, provenance."""
    result = read_path(path)
    summary: dict[str, Any] = {
        "file": str(result.path), "format": "landscape", "kind": "path", "main": result.main,
        "t": [float(result.t[0]), float(result.t[-1]), len(result.t)],
        "series": {name: {"done": int(s.done.sum()), "total": int(s.done.size),
                          "values": {v: _range(a, s.done) for v, a in s.values.items()},
                          "barriers": s.barriers(result.t)}
                   for name, s in result.series.items()},
    }
    if result.training is not None:
        summary["training"] = {"epochs_done": result.bends_epoch, "epochs": int(result.attrs.get("epochs", 0)),
                               "last_loss": float(result.training.column("loss")[-1]) if len(result.training.rows)
                               else None}
    summary["provenance"] = {k: result.attrs[k] for k in PATH_PROVENANCE_KEYS if k in result.attrs}
    writer = writer_of(path)
    if writer is not None:
        summary["being_written_by"] = writer
    return summary


def describe_spectrum(path: str | Path) -> dict[str, Any]:
    """A spectrum file's summary: the numbers it holds (as --json printed them) and its provenance."""
    from engine.io.store.spectra import read_spectrum

    spectrum = read_spectrum(path)
    summary: dict[str, Any] = {
        "file": str(spectrum.path), "format": "landscape", "kind": "spectrum",
        "top_eigenvalues": [float(v) if np.isfinite(v) else None for v in spectrum.top_eigenvalues],
        "bottom_eigenvalues": [float(v) if np.isfinite(v) else None for v in spectrum.bottom_eigenvalues],
        "trace": spectrum.trace, "trace_stderr": spectrum.trace_stderr,
        "density_probes": [int(spectrum.density_done.sum()), int(spectrum.density_done.size)],
        "hvp_count": spectrum.hvp_count, "report": spectrum.report,
    }
    summary["provenance"] = {k: spectrum.attrs[k] for k in SPECTRUM_PROVENANCE_KEYS if k in spectrum.attrs}
    writer = writer_of(path)
    if writer is not None:
        summary["being_written_by"] = writer
    return summary


def _format_spectrum(summary: dict[str, Any]) -> str:
    def numbers(values: list[float | None]) -> str:
        return ", ".join("n/a" if v is None else f"{v:.6g}" for v in values)

    lines = [f"{summary['file']}: Hessian spectrum, {summary['hvp_count']} Hessian-vector products"
             + (f", being written by {summary['being_written_by']}" if "being_written_by" in summary else "")]
    if summary["top_eigenvalues"]:
        lines.append(f"  top eigenvalues: {numbers(summary['top_eigenvalues'])}")
    if summary["bottom_eigenvalues"]:
        lines.append(f"  bottom eigenvalues: {numbers(summary['bottom_eigenvalues'])}")
    if summary["trace"] is not None:
        lines.append(f"  trace: {summary['trace']:.6g} ± {summary['trace_stderr']:.3g}")
    done, total = summary["density_probes"]
    if total:
        lines.append(f"  density: {done}/{total} probes")
    for key, value in summary["report"].items():
        lines.append(f"  {key}: {value}")
    for key, value in summary["provenance"].items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def _format_path(summary: dict[str, Any]) -> str:
    t = summary["t"]
    lines = [f"{summary['file']}: path ({summary['provenance'].get('curve', '')}), {t[2]} values of t "
             f"from {t[0]:g} to {t[1]:g}" + (f", being written by {summary['being_written_by']}"
                                              if "being_written_by" in summary else "")]
    if "training" in summary:
        tr = summary["training"]
        last = "" if tr["last_loss"] is None else f", last epoch's loss {tr['last_loss']:.4g}"
        lines.append(f"  training: {tr['epochs_done']}/{tr['epochs']} epochs{last}")
    for name, entry in summary["series"].items():
        lines.append(f"  {name}: {entry['done']}/{entry['total']} points")
        for value, barrier in entry["barriers"].items():
            if barrier["interpolated"] is None:
                continue
            lines.append(f"    {value} barrier {barrier['interpolated']:.6g} at t={barrier['interpolated_t']:.3g} "
                         f"(midpoint definition {barrier['midpoint']:.6g}), max {barrier['max']:.6g}, "
                         f"mean {barrier['mean']:.6g}")
    for key, value in summary["provenance"].items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few aligned lines for a terminal."""
    if summary.get("kind") == "path":
        return _format_path(summary)
    if summary.get("kind") == "spectrum":
        return _format_spectrum(summary)
    shape = " x ".join(str(n) for n in reversed(summary["shape"]))
    axes = f"x {summary['x'][0]:g}..{summary['x'][1]:g}"
    if "y" in summary:
        axes += f", y {summary['y'][0]:g}..{summary['y'][1]:g}"
    source = "Landscape" if summary["format"] == "landscape" else "Li et al. loss-landscape"
    lines = [
        f"{summary['file']}: {summary['dimensions']}D {summary['kind']} ({source} format), {shape} points, {axes}",
        f"  done: {summary['done']}/{summary['total']} ({100 * summary['done_fraction']:.1f}%)"
        + (f", being written by {summary['being_written_by']}" if "being_written_by" in summary else ""),
    ]
    for name, r in summary["values"].items():
        span = "no finite values" if r["min"] is None else f"{r['min']:.6g} .. {r['max']:.6g}"
        bad = f", {r['nonfinite']} non-finite" if r["nonfinite"] else ""
        lines.append(f"  {name}: {span}{bad}")
    if "trajectory_points" in summary:
        lines.append(f"  trajectory: {summary['trajectory_points']} checkpoints projected")
    for key, value in summary["provenance"].items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)
