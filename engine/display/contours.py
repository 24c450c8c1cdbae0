"""Contour lines of a grid as joined polylines in the grid's coordinates, traced by contourpy.

contourpy is the C++ engine matplotlib contours with: ten levels on a 201x201 grid
take about 1-2 ms (the numpy marching squares this replaced took 9-14 ms, and
pyqtgraph's IsocurveItem about 120 ms), fast enough to redraw while a job fills the
grid in. It masks NaN points itself and returns whole lines, so the map draws
smooth polylines instead of loose segments.
"""

from __future__ import annotations

import contourpy
import numpy as np

_BREAK = np.full((1, 2), np.nan)


def contour_paths(x: np.ndarray, y: np.ndarray, grid: np.ndarray, levels: np.ndarray) -> list[list[np.ndarray]]:
    """For each level, its polylines (arrays of shape (m, 2) in (x, y)) where ``grid`` crosses it.

    ``grid`` has shape (ny, nx), ``grid[j, i]`` at (x[i], y[j]). Crossings are linearly
    interpolated along cell edges; cells touching a NaN or inf point produce no line. A
    closed line ends where it starts.
    """
    z = np.asarray(grid, dtype=np.float64)
    if z.ndim != 2 or min(z.shape) < 2 or len(levels) == 0:
        return [[] for _ in levels]
    generator = contourpy.contour_generator(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), z,
                                            name="serial", line_type="Separate", corner_mask=False)
    return [list(generator.lines(float(level))) for level in levels]


def contour_lines(x: np.ndarray, y: np.ndarray, grid: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """All levels' polylines stacked into one (n, 2) array, each line followed by a NaN row.

    Ready for one pyqtgraph item drawn with ``connect="finite"`` (the NaN rows break the lines).
    """
    pieces = [part for lines in contour_paths(x, y, grid, levels) for line in lines for part in (line, _BREAK)]
    return np.concatenate(pieces) if pieces else np.zeros((0, 2))
