"""``landscape info``: what a surface file holds, in a few lines or as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.io.store import read_surface, writer_of

PROVENANCE_KEYS = (
    "created", "engine_version", "checkpoint", "checkpoint_sha256", "checkpoint_metadata", "model", "model_kwargs", "n_params",
    "data", "data_sha256", "data_samples", "loss", "mode", "batch_size", "memory_budget", "norm", "ignore", "seed",
    "directions", "directions_source", "directions_source_sha256", "line", "device", "dtype", "evaluation_strategy",
    "explained_variance_ratio",
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
    summary["provenance"] = {k: surface.attrs[k] for k in PROVENANCE_KEYS if k in surface.attrs}
    writer = writer_of(path)
    if writer is not None:
        summary["being_written_by"] = writer
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few aligned lines for a terminal."""
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
