"""The plane through a path's endpoints and a bend (Garipov et al., Fig. 1): its basis and what to draw on it.

Origin A; ``x`` along B - A, ``y`` towards the bend, both unit vectors (Gram-Schmidt
over all parameters), so plane coordinates are distances in weight space. The
endpoints, the bends, the straight segment and the curve are projected into these
coordinates (a curve with one bend lies in the plane exactly; with more, its
projection is drawn, and the plane passes through the bend farthest from the line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from engine.errors import LandscapeError
from engine.numerics.curves import CurveShape, gram, plane_basis, plane_coordinates
from engine.numerics.directions import Basis

MARGIN = 0.2  # of the drawn points' extent, on every side (Garipov et al.'s default margins)
CURVE_SAMPLES = 101
AUTO_POINTS = 21


@dataclass(frozen=True)
class PathPlane:
    """The directions of the plane, the overlay in its coordinates, and axes that frame them."""

    basis: Basis
    points: dict[str, tuple[float, float]]
    lines: dict[str, np.ndarray]

    def auto_axes(self, points: int = AUTO_POINTS) -> tuple[str, str]:
        """``MIN:MAX:N`` for x and y: the overlay with :data:`MARGIN` around it."""
        xy = np.concatenate([np.array(list(self.points.values())), *self.lines.values()])
        axes = []
        for k in range(2):
            low, high = float(xy[:, k].min()), float(xy[:, k].max())
            pad = MARGIN * (high - low)
            axes.append(f"{low - pad!r}:{high + pad!r}:{int(points)}")
        return axes[0], axes[1]


def path_plane(shape: CurveShape, a: Mapping[str, torch.Tensor], bends: Sequence[Mapping[str, torch.Tensor]],
               b: Mapping[str, torch.Tensor]) -> PathPlane:
    """The plane through A, B and the bend farthest from the straight line."""
    if not bends:
        raise LandscapeError("a straight path has no bend, so no plane through it: compute the path with "
                             "--curve bezier or polychain")
    names = list(a)
    controls = [dict(a), *(dict(bend) for bend in bends), dict(b)]
    g = gram(controls)
    bend = _farthest_bend(g)
    coefficients = plane_basis(g, bend)  # (2, points): u and v as combinations of the control points
    directions = []
    for row in coefficients:
        directions.append({n: sum(float(c) * controls[i][n].double().cpu() for i, c in enumerate(row)).float()
                           for n in names})
    identity = np.eye(len(controls))
    points = {"A": _xy(g, coefficients, identity[0]), "B": _xy(g, coefficients, identity[-1])}
    for i in range(1, len(controls) - 1):
        points[f"bend {i}" if len(bends) > 1 else "bend"] = _xy(g, coefficients, identity[i])
    ts = np.linspace(0.0, 1.0, CURVE_SAMPLES)
    curve = plane_coordinates(g, coefficients, np.array([shape.coefficients(t) for t in ts]))
    straight = np.array([points["A"], points["B"]])
    basis = Basis(kind="plane", directions=directions, norm="none", ignore="none")
    return PathPlane(basis, points, {"straight": straight, "curve": curve})


def _xy(g: np.ndarray, coefficients: np.ndarray, point: np.ndarray) -> tuple[float, float]:
    x, y = plane_coordinates(g, coefficients, point)[0]
    return float(x), float(y)


def _farthest_bend(g: np.ndarray) -> int:
    """Index (in the control points) of the bend with the largest distance from the line A-B."""
    n = g.shape[0]
    e = np.eye(n)
    along = e[-1] - e[0]
    best, index = -1.0, 1
    for i in range(1, n - 1):
        off = e[i] - e[0]
        scale = (off @ g @ along) / max(along @ g @ along, 1e-300)
        residual = off - scale * along
        distance = float(residual @ g @ residual)
        if distance > best:
            best, index = distance, i
    return index


__all__ = ["PathPlane", "path_plane"]
