"""Profiles of a 2D grid along a line, and the grid node under a point.

The GUI's slice line asks for these on every mouse move, so they are vectorized
numpy over the few hundred samples of one line (tens of microseconds on a
201x201 grid; benchmarks/gui_speed.py measures it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class LineProfile:
    """Values along the segment start -> end: ``values[name][k]`` at (``xs[k]``, ``ys[k]``)."""

    t: np.ndarray  # 0..1 along the segment
    distance: np.ndarray  # t * segment length, in the plane's coordinates
    xs: np.ndarray
    ys: np.ndarray
    values: dict[str, np.ndarray]


def fractional_index(coordinates: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Where ``points`` fall between the (increasing) grid ``coordinates``; NaN outside the grid."""
    coordinates = np.asarray(coordinates, dtype=np.float64)
    index = np.interp(points, coordinates, np.arange(len(coordinates), dtype=np.float64))
    outside = (points < coordinates[0] - 1e-12 * max(1.0, abs(coordinates[0]))) | (
        points > coordinates[-1] + 1e-12 * max(1.0, abs(coordinates[-1]))
    )
    index[outside] = np.nan
    # Snap to nodes within rounding error, so a sample on a node never leans on its neighbours.
    nearest = np.round(index)
    return np.where(np.abs(index - nearest) < 1e-9, nearest, index)


def bilinear(grid: np.ndarray, fi: np.ndarray, fj: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of ``grid[j, i]`` at fractional (i, j); exact at nodes, NaN-propagating.

    A NaN node (not computed, or a non-finite loss) makes every sample that leans
    on it NaN, so a profile never invents values where the grid has none. At a node
    the neighbours get weight 0 and are not read, so NaN next to a node stays out.
    """
    ny, nx = grid.shape
    ok = np.isfinite(fi) & np.isfinite(fj)
    i0 = np.clip(np.floor(np.where(ok, fi, 0)).astype(np.int64), 0, max(nx - 2, 0))
    j0 = np.clip(np.floor(np.where(ok, fj, 0)).astype(np.int64), 0, max(ny - 2, 0))
    wi = np.where(ok, fi, 0) - i0
    wj = np.where(ok, fj, 0) - j0
    i1 = np.minimum(i0 + 1, nx - 1)
    j1 = np.minimum(j0 + 1, ny - 1)
    out = np.zeros(fi.shape, dtype=np.float64)
    for jj, ii, w in ((j0, i0, (1 - wi) * (1 - wj)), (j0, i1, wi * (1 - wj)), (j1, i0, (1 - wi) * wj), (j1, i1, wi * wj)):
        with np.errstate(invalid="ignore"):
            out += np.where(w > 0, w * grid[jj, ii], 0.0)  # NaN/inf corners carry through
    out[~ok] = np.nan
    return out


def line_profile(
    x: np.ndarray,
    y: np.ndarray,
    grids: Mapping[str, np.ndarray],
    start: tuple[float, float],
    end: tuple[float, float],
    samples: int = 201,
) -> LineProfile:
    """Sample each (ny, nx) grid at ``samples`` evenly spaced points from ``start`` to ``end``."""
    if samples < 2:
        raise ValueError("a line profile needs at least 2 samples")
    t = np.linspace(0.0, 1.0, samples)
    xs = start[0] + t * (end[0] - start[0])
    ys = start[1] + t * (end[1] - start[1])
    fi = fractional_index(x, xs)
    fj = fractional_index(y, ys)
    values = {name: bilinear(np.asarray(grid, dtype=np.float64), fi, fj) for name, grid in grids.items()}
    length = float(np.hypot(end[0] - start[0], end[1] - start[1]))
    return LineProfile(t=t, distance=t * length, xs=xs, ys=ys, values=values)


def surface_path(
    x: np.ndarray,
    y: np.ndarray,
    grids: Mapping[str, np.ndarray],
    start: tuple[float, float],
    end: tuple[float, float],
) -> LineProfile:
    """The part of the segment start -> end over the grid, as a polyline lying exactly on its triangulated surface.

    A 3D view draws each cell (i..i+1, j..j+1) as two flat triangles split along the
    diagonal from node (i, j+1) to node (i+1, j) (pyqtgraph's GLSurfacePlotItem does),
    not as a bilinear patch. Vertices are put at every crossing of a cell edge or of
    that diagonal, and values there are linear on the triangle: between two vertices
    the straight line stays on one triangle, so a slice line drawn from them neither
    floats above the surface nor sinks into it. ``grids`` hold finite (ny, nx) values
    (what the view draws); parts of the segment outside the grid are left out.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)

    def at(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Clipped: a point computed on the grid's edge must not fall a rounding error outside it.
        return (np.clip(start[0] + t * (end[0] - start[0]), x[0], x[-1]),
                np.clip(start[1] + t * (end[1] - start[1]), y[0], y[-1]))

    t = _breakpoints(x, y, start, end)
    xs, ys = at(t)
    t = np.union1d(t, _diagonal_crossings(t, fractional_index(x, xs) + fractional_index(y, ys)))
    t = t[np.concatenate([[True], np.diff(t) > 1e-12])] if len(t) else t  # a crossing at a node: once
    xs, ys = at(t)
    fi, fj = fractional_index(x, xs), fractional_index(y, ys)
    values = {name: _on_triangles(np.asarray(grid, dtype=np.float64), fi, fj) for name, grid in grids.items()}
    length = float(np.hypot(end[0] - start[0], end[1] - start[1]))
    return LineProfile(t=t, distance=t * length, xs=xs, ys=ys, values=values)


def _breakpoints(x: np.ndarray, y: np.ndarray, start: tuple[float, float], end: tuple[float, float]) -> np.ndarray:
    """Where (t in [0, 1]) the segment enters and leaves the grid and crosses its node lines; empty if it misses it."""
    if len(x) < 2 or len(y) < 2:
        return np.zeros(0)
    t_in, t_out, crossings = 0.0, 1.0, []
    for p0, p1, nodes in ((start[0], end[0], x), (start[1], end[1], y)):
        delta = p1 - p0
        if delta == 0:
            if not nodes[0] <= p0 <= nodes[-1]:
                return np.zeros(0)
            continue
        enter, leave = sorted(((nodes[0] - p0) / delta, (nodes[-1] - p0) / delta))
        t_in, t_out = max(t_in, enter), min(t_out, leave)
        crossings.append((nodes - p0) / delta)
    if not t_out >= t_in:
        return np.zeros(0)
    t = np.concatenate([[t_in, t_out], *crossings])
    return np.unique(t[(t >= t_in) & (t <= t_out)])


def _diagonal_crossings(t: np.ndarray, diagonal: np.ndarray) -> np.ndarray:
    """t where fi + fj passes an integer between consecutive breakpoints: a cell's diagonal.

    Between two breakpoints the segment stays in one cell (i, j), where fi + fj is linear
    and within [i + j, i + j + 2]: only the diagonal i + j + 1 can be crossed.
    """
    da, db = diagonal[:-1], diagonal[1:]
    k = np.floor(np.minimum(da, db)) + 1.0
    hit = (k < np.maximum(da, db) - 1e-12) & (k > np.minimum(da, db) + 1e-12)
    return t[:-1][hit] + (k[hit] - da[hit]) / (db[hit] - da[hit]) * (t[1:][hit] - t[:-1][hit])


def _on_triangles(grid: np.ndarray, fi: np.ndarray, fj: np.ndarray) -> np.ndarray:
    """Values at fractional (i, j) on the triangles of :func:`surface_path` (exact at nodes, continuous across edges)."""
    ny, nx = grid.shape
    i0 = np.clip(np.floor(fi).astype(np.int64), 0, nx - 2)
    j0 = np.clip(np.floor(fj).astype(np.int64), 0, ny - 2)
    u, v = fi - i0, fj - j0
    z00, z10, z01, z11 = grid[j0, i0], grid[j0, i0 + 1], grid[j0 + 1, i0], grid[j0 + 1, i0 + 1]
    lower = z00 + u * (z10 - z00) + v * (z01 - z00)  # triangle (i, j), (i+1, j), (i, j+1)
    upper = z11 + (1 - u) * (z01 - z11) + (1 - v) * (z10 - z11)  # triangle (i+1, j+1), (i, j+1), (i+1, j)
    return np.where(u + v <= 1.0, lower, upper)


def line_distance(t: np.ndarray, line: str | Sequence[float]) -> np.ndarray:
    """Distance along a computed slice line (t in [0, 1] from its start), on the axis of :func:`line_profile`.

    ``line`` is the segment (x0, y0, x1, y1), or its JSON as a line file records it.
    """
    x0, y0, x1, y1 = json.loads(line) if isinstance(line, str) else line
    return np.asarray(t, dtype=np.float64) * float(np.hypot(x1 - x0, y1 - y0))


def nearest_node(x: np.ndarray, y: np.ndarray | None, px: float, py: float | None = None) -> tuple[int, int] | None:
    """(i, j) of the grid node nearest to (px, py), or None outside the grid's extent (j is 0 in 1D)."""
    fi = fractional_index(x, np.array([px], dtype=np.float64))[0]
    if not np.isfinite(fi):
        return None
    if y is None:
        return int(round(fi)), 0
    fj = fractional_index(y, np.array([py], dtype=np.float64))[0]
    if not np.isfinite(fj):
        return None
    return int(round(fi)), int(round(fj))


# -- axes of the 1D view ---------------------------------------------------------------------------

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_MANTISSA_LABELS = ((1, 5), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9))  # sparse to dense
_DECADE_STEPS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)  # labelled decades: every k-th, k round
MINOR_TICK_DECADES = 6  # beyond this many decades the 2..9 minor ticks would be a grey smear


def log_ticks(low: float, high: float, max_labels: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Labelled and unlabelled ticks (log10 units) of a log axis from 10**low to 10**high.

    Labels go on the densest of: every k-th whole decade (k as small as ``max_labels``
    allows), 1-5, 1-2-5 or 1..9 times each decade, that keeps labels at least
    ``(high - low) / max_labels`` apart; when that leaves fewer than two in range (a
    span within one decade), on round values of a linear scale. So never all nine
    mantissas crammed together, whose labels overlap. Unlabelled minor ticks mark
    1..9 times each decade over a few decades, the decades over more.
    """
    low, high = sorted((float(low), float(high)))
    if not (np.isfinite(low) and np.isfinite(high) and high - low > 1e-12):
        return np.zeros(0), np.zeros(0)
    max_labels = max(2, int(max_labels))
    min_gap = (high - low) / max_labels
    decades = np.arange(np.ceil(low - 1e-9), np.floor(high + 1e-9) + 1)
    step = next((s for s in _DECADE_STEPS if len(decades) <= max_labels * s), _DECADE_STEPS[-1])
    major = decades[np.mod(decades, step) == 0]
    major = major if len(major) >= 2 else decades[::step]
    for mantissas in _MANTISSA_LABELS if step == 1 else ():
        ticks = _mantissa_ticks(low, high, mantissas)
        if len(ticks) >= 2 and np.diff(ticks).min() >= min_gap * 0.999:
            major = ticks
    if len(major) < 2:
        major = np.log10(linear_ticks(10.0**low, 10.0**high, max_labels))
    if high - low <= MINOR_TICK_DECADES:
        minor = _mantissa_ticks(low, high, range(1, 10))
    else:  # the decades between labels, while they are not a smear either
        minor = decades if step <= 5 else np.zeros(0)
    return major, minor[~np.isclose(minor[:, None], major[None, :], rtol=0, atol=1e-9).any(axis=1)]


def _mantissa_ticks(low: float, high: float, mantissas) -> np.ndarray:
    """log10(m * 10**k) for each m of ``mantissas`` and every decade k, within [low, high]."""
    decades = np.arange(np.floor(low), np.ceil(high) + 1)
    ticks = (decades[:, None] + np.log10(np.asarray(list(mantissas), dtype=np.float64))[None, :]).ravel()
    return np.sort(ticks[(ticks >= low - 1e-9) & (ticks <= high + 1e-9)])


def linear_ticks(low: float, high: float, max_labels: int = 6) -> np.ndarray:
    """At most ``max_labels`` (and at least two) round values (1, 2 or 5 times a power of ten apart) in [low, high]."""
    low, high = sorted((float(low), float(high)))
    span = high - low
    if not (np.isfinite(span) and span > 0):
        return np.array([low])
    max_labels = max(2, int(max_labels))
    power = 10.0 ** np.floor(np.log10(span / max_labels))
    for factor in (1, 2, 5, 10, 20, 50):
        step = factor * power
        ticks = np.arange(np.ceil(low / step - 1e-9), np.floor(high / step + 1e-9) + 1) * step + 0.0  # no -0
        if len(ticks) <= max_labels:
            break
    return ticks if len(ticks) >= 2 else np.array([low, high])


def log_tick_labels(ticks: np.ndarray) -> list[str]:
    """Labels of log-axis ticks (log10 units): plain numbers between 0.001 and 1000, else all as m×10ⁿ.

    One style per axis: "10⁻⁸, 0.0001, 1" would read as three different kinds of number.
    """
    values = 10.0 ** np.asarray(ticks, dtype=np.float64)
    if np.all((values >= 1e-3 * (1 - 1e-9)) & (values < 1e4)):
        return [f"{v:.4g}" for v in values]
    labels = []
    for value in values:
        exponent = int(np.floor(np.log10(value) + 1e-9))
        mantissa = float(f"{value / 10.0**exponent:.3g}")
        power = "10" + str(exponent).translate(_SUPERSCRIPT)
        labels.append(power if mantissa == 1 else f"{mantissa:g}×{power}")
    return labels
