"""Barrier numbers of a path: how much higher than its endpoints the loss (or error) rises.

Two definitions are in use and both are reported:

* ``interpolated`` (Frankle et al. 2020): max_t L(t) - ((1 - t) L(A) + t L(B));
* ``midpoint`` (Garipov et al., Draxler et al.): max_t L(t) - (L(A) + L(B)) / 2.

Both are taken over t in [0, 1]; points outside (a widened ``--t-range``) are drawn
but never count. Non-finite values are masked: the barrier is over the finite
points, and how many were left out is reported with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def barrier_numbers(t: np.ndarray, values: np.ndarray) -> dict[str, Any]:
    """Both barriers with the t of their maximum, the mean along the curve, and the masked count.

    ``t`` must hold 0 and 1 (see :func:`engine.numerics.curves.t_grid`); missing or
    non-finite endpoint values make the barriers None.
    """
    t = np.asarray(t, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    inside = (t >= 0.0) & (t <= 1.0)
    t_in, v_in = t[inside], values[inside]
    finite = np.isfinite(v_in)
    result: dict[str, Any] = {"interpolated": None, "interpolated_t": None, "midpoint": None, "midpoint_t": None,
                              "mean": None, "max": None, "nonfinite": int((~finite).sum())}
    if finite.any():
        result["max"] = float(v_in[finite].max())
        # mean over t in [0, 1] by the trapezoid rule on the finite points (uniform in t)
        result["mean"] = float(np.trapezoid(v_in[finite], t_in[finite]) / max(t_in[finite][-1] - t_in[finite][0], 1e-300)) \
            if finite.sum() > 1 else float(v_in[finite][0])
    start, end = _at(t_in, v_in, 0.0), _at(t_in, v_in, 1.0)
    if start is None or end is None or not finite.any():
        return result
    interpolated = v_in - ((1.0 - t_in) * start + t_in * end)
    midpoint = v_in - 0.5 * (start + end)
    for name, excess in (("interpolated", interpolated), ("midpoint", midpoint)):
        masked = np.where(np.isfinite(excess), excess, -np.inf)
        k = int(np.argmax(masked))
        result[name], result[f"{name}_t"] = float(masked[k]), float(t_in[k])
    return result


def _at(t: np.ndarray, values: np.ndarray, where: float) -> float | None:
    hits = np.flatnonzero(t == where)
    if not hits.size or not np.isfinite(values[hits[0]]):
        return None
    return float(values[hits[0]])


def path_barriers(t: np.ndarray, values: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Barriers of every loss, and of every accuracy as an error (100 - acc, in percent)."""
    result: dict[str, dict[str, Any]] = {}
    for name, array in values.items():
        if name.endswith("_loss"):
            result[name] = barrier_numbers(t, array)
        elif name.endswith("_acc"):
            result[name[:-len("acc")] + "error"] = barrier_numbers(t, 100.0 - np.asarray(array, dtype=np.float64))
    return result


__all__ = ["barrier_numbers", "path_barriers"]
