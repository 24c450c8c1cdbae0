"""Contour lines of a grid by vectorized marching squares, as segments in the grid's coordinates.

pyqtgraph's IsocurveItem traces in Python (about 120 ms for ten levels on a
201x201 grid, measured), too slow to redraw while a job fills the grid in twice a
second. Segments drawn with ``connect="pairs"`` need no tracing: every cell is
handled at once by numpy, a few milliseconds per level.
"""

from __future__ import annotations

import numpy as np

# Cell edges in a fixed order: bottom (j), right (i+1), top (j+1), left (i).
_BOTTOM, _RIGHT, _TOP, _LEFT = range(4)


def contour_segments(x: np.ndarray, y: np.ndarray, grid: np.ndarray, level: float) -> np.ndarray:
    """Segments where ``grid`` (shape (ny, nx), ``grid[j, i]`` at (x[i], y[j])) crosses ``level``.

    Returns an array of shape (2 * n_segments, 2): rows 2k and 2k+1 are the ends of
    segment k, in (x, y) coordinates, linearly interpolated along cell edges. Cells
    touching a NaN produce no segment. Saddle cells are split by the cell's mean.
    """
    z = np.asarray(grid, dtype=np.float64)
    ny, nx = z.shape
    if nx < 2 or ny < 2:
        return np.zeros((0, 2))
    v00, v10, v01, v11 = z[:-1, :-1], z[:-1, 1:], z[1:, :-1], z[1:, 1:]
    a00, a10, a01, a11 = (v > level for v in (v00, v10, v01, v11))
    crossed = np.stack([a00 != a10, a10 != a11, a01 != a11, a00 != a01], axis=-1)
    finite = np.isfinite(v00) & np.isfinite(v10) & np.isfinite(v01) & np.isfinite(v11)
    crossed &= finite[..., None]
    count = crossed.sum(axis=-1)

    # Only cells the level passes through get crossing points (a small fraction of the grid).
    jj, ii = np.nonzero(count >= 2)
    if jj.size == 0:
        return np.zeros((0, 2))
    a, b, c, d = v00[jj, ii], v10[jj, ii], v01[jj, ii], v11[jj, ii]
    cells_crossed = crossed[jj, ii]
    cells_count = count[jj, ii]
    fi, fj = ii.astype(np.float64), jj.astype(np.float64)

    def fraction(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.clip(np.where(hi != lo, (level - lo) / (hi - lo), 0.5), 0.0, 1.0)

    # Crossing point on each edge, in fractional index coordinates (i, j).
    points = np.empty((jj.size, 4, 2))
    points[:, _BOTTOM, 0], points[:, _BOTTOM, 1] = fi + fraction(a, b), fj
    points[:, _RIGHT, 0], points[:, _RIGHT, 1] = fi + 1, fj + fraction(b, d)
    points[:, _TOP, 0], points[:, _TOP, 1] = fi + fraction(c, d), fj + 1
    points[:, _LEFT, 0], points[:, _LEFT, 1] = fi, fj + fraction(a, c)

    pieces = []
    two = cells_count == 2
    if two.any():
        order = np.argsort(~cells_crossed[two], axis=-1, kind="stable")[:, :2]
        ends = np.take_along_axis(points[two], order[..., None], axis=1)  # (m, 2, 2)
        pieces.append(ends.reshape(-1, 2))
    four = cells_count == 4
    if four.any():
        p = points[four]
        center_above = ((a + b + c + d)[four] / 4.0) > level
        corner_above = (a > level)[four]
        # If the centre sides with the (0,0) corner, the (1,0) and (0,1) corners are cut off.
        join = center_above == corner_above
        first = np.where(join[:, None, None], p[:, [_BOTTOM, _RIGHT]], p[:, [_BOTTOM, _LEFT]])
        second = np.where(join[:, None, None], p[:, [_TOP, _LEFT]], p[:, [_TOP, _RIGHT]])
        pieces.append(np.concatenate([first, second], axis=1).reshape(-1, 2))
    if not pieces:
        return np.zeros((0, 2))
    segments = np.concatenate(pieces)
    out = np.empty_like(segments)
    out[:, 0] = np.interp(segments[:, 0], np.arange(nx), np.asarray(x, dtype=np.float64))
    out[:, 1] = np.interp(segments[:, 1], np.arange(ny), np.asarray(y, dtype=np.float64))
    return out


def contour_lines(x: np.ndarray, y: np.ndarray, grid: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """All levels' segments stacked (shape (2 * n, 2)), ready for one ``connect="pairs"`` plot item."""
    parts = [contour_segments(x, y, grid, float(level)) for level in levels]
    return np.concatenate(parts) if parts else np.zeros((0, 2))
