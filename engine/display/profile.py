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
