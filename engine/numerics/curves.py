"""Curves in weight space between two fixed endpoints: the straight line, Bezier curves and polychains.

A curve is a list of control points ``P_0 = A, P_1..P_k (the bends), P_{k+1} = B``
and a rule for the weights of each point at ``t``: ``w(t) = sum_i c_i(t) P_i``.

* ``linear``: no bends, ``c = (1 - t, t)``;
* ``bezier``: the Bernstein polynomials of degree k + 1 (one bend gives Garipov et
  al.'s quadratic curve ``(1-t)^2 A + 2t(1-t) theta + t^2 B``);
* ``polychain``: straight segments through the bends at ``t = i / (k + 1)``.

Control points are parameter dicts keyed by name, so a curve works for any model
whose parameters the engine can read (``torch.func.functional_call`` evaluates it).
Outside [0, 1] the same formulas extrapolate (the polychain along its end segments),
which lets a path look past its endpoints.

Geometry (curve length, coordinates in a plane) needs only the inner products of the
control points with each other: :func:`gram` computes them once, in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Mapping, Sequence

import numpy as np
import torch

from engine.errors import LandscapeError

CURVES = ("linear", "bezier", "polychain")
LENGTH_NODES = 64  # Gauss-Legendre nodes per segment for a curve's length: exact to ~1e-12 for these smooth speeds

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class CurveShape:
    """A curve kind and its number of bends: the coefficients of each control point at ``t``."""

    kind: str
    bends: int

    def __post_init__(self) -> None:
        if self.kind not in CURVES:
            raise LandscapeError(f"unknown curve '{self.kind}'; choose one of {', '.join(CURVES)}")
        if self.kind == "linear" and self.bends != 0:
            raise LandscapeError("a linear path has no bends; use --curve bezier or polychain for --bends")
        if self.kind != "linear" and not 1 <= self.bends <= 16:
            raise LandscapeError(f"--bends {self.bends}: a {self.kind} curve takes 1 to 16 bends")

    @property
    def points(self) -> int:
        """Control points including both endpoints."""
        return self.bends + 2

    def coefficients(self, t: float) -> np.ndarray:
        """float64 weights of the control points at ``t`` (they sum to one)."""
        if self.kind == "polychain":
            return self._polychain(t, derivative=False)
        return _bernstein(self.points - 1, t)

    def derivative(self, t: float) -> np.ndarray:
        """d/dt of :meth:`coefficients` (for the curve's speed, hence its length)."""
        n = self.points - 1
        if self.kind == "polychain":
            return self._polychain(t, derivative=True)
        lower = _bernstein(n - 1, t)
        result = np.zeros(n + 1)
        for i in range(n):  # B'_{i,n} = n (B_{i-1,n-1} - B_{i,n-1})
            result[i] -= n * lower[i]
            result[i + 1] += n * lower[i]
        return result

    def _polychain(self, t: float, derivative: bool) -> np.ndarray:
        segments = self.points - 1
        position = t * segments
        knot = round(position)
        at_knot = abs(position - knot) <= 1e-9 * max(1.0, abs(position))
        index = int(np.clip(np.floor(position), 0, segments - 1)) if not at_knot else int(np.clip(knot, 0, segments - 1))
        result = np.zeros(self.points)
        if derivative:
            result[index], result[index + 1] = -segments, segments
        elif at_knot and 0 <= knot <= segments:
            result[knot] = 1.0  # exactly the bend (or endpoint) at its knot, not 1 - eps of it
        else:
            local = position - index
            result[index], result[index + 1] = 1.0 - local, local
        return result


def _bernstein(n: int, t: float) -> np.ndarray:
    """The Bernstein polynomials of degree n at t."""
    return np.array([comb(n, i) * (1.0 - t) ** (n - i) * t ** i for i in range(n + 1)])


def straight_bends(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor], shape: CurveShape) -> list[Tensors]:
    """Bends placed on the straight line, evenly (Garipov et al.'s initialisation)."""
    return [{name: torch.lerp(a[name], b[name], i / (shape.bends + 1)) for name in a}
            for i in range(1, shape.bends + 1)]


def curve_point(shape: CurveShape, controls: Sequence[Mapping[str, torch.Tensor]], t: float) -> Tensors:
    """w(t) = sum_i c_i(t) P_i for every parameter; differentiable in the control points.

    Terms with a zero coefficient are left out, so w(0) is A and w(1) is B exactly.
    """
    coefficients = shape.coefficients(float(t))
    terms = [(float(c), point) for c, point in zip(coefficients, controls) if c != 0.0]
    result: Tensors = {}
    for name in controls[0]:
        total = None
        for c, point in terms:
            term = point[name] if c == 1.0 else c * point[name]
            total = term if total is None else total + term
        result[name] = total if total is not None else torch.zeros_like(controls[0][name])
    return result


def gram(controls: Sequence[Mapping[str, torch.Tensor]]) -> np.ndarray:
    """G[i, j] = <P_i, P_j> over all parameters, in float64."""
    names = list(controls[0])
    flat = [torch.cat([p[n].detach().reshape(-1).double().cpu() for n in names]) for p in controls]
    stacked = torch.stack(flat)
    return (stacked @ stacked.T).numpy()


def curve_length(shape: CurveShape, g: np.ndarray) -> float:
    """Arc length of w on [0, 1]: the integral of |w'(t)| = sqrt(c'(t)^T G c'(t)), by Gauss-Legendre per segment."""
    nodes, weights = np.polynomial.legendre.leggauss(LENGTH_NODES)
    segments = shape.points - 1 if shape.kind == "polychain" else 1
    total = 0.0
    for s in range(segments):
        low, high = s / segments, (s + 1) / segments
        for node, weight in zip(nodes, weights):
            t = low + (high - low) * (node + 1) / 2
            d = shape.derivative(t)
            total += weight * (high - low) / 2 * float(np.sqrt(max(d @ g @ d, 0.0)))
    return total


def t_grid(points: int, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """``points`` values from 0 to 1, extended with the same spacing down to ``low`` and up to ``high``.

    The endpoints t = 0 and t = 1 are always on the grid, exactly, so barriers compare
    the path with its endpoints' own losses.
    """
    if points < 2:
        raise LandscapeError("--points must be at least 2 (t = 0 and t = 1)")
    if not (np.isfinite(low) and np.isfinite(high)) or low > 0 or high < 1:
        raise LandscapeError(f"--t-range {low:g}:{high:g} must contain 0..1, e.g. --t-range=-0.2:1.2")
    step = 1.0 / (points - 1)
    before = int(np.floor(-low / step + 1e-9))
    after = int(np.floor((high - 1) / step + 1e-9))
    if before + after + points > 100_000:
        raise LandscapeError(f"--t-range {low:g}:{high:g} with --points {points} makes over 100,000 points; narrow it")
    inner = np.linspace(0.0, 1.0, points)
    return np.concatenate([-step * np.arange(before, 0, -1), inner, 1.0 + step * np.arange(1, after + 1)])


def plane_basis(g: np.ndarray, bend: int) -> np.ndarray:
    """Coefficients of an orthonormal basis (u, v) of the plane through A, B and control point ``bend``.

    Gram-Schmidt in terms of control points: ``u = sum_i U[0, i] P_i``, ``v = sum_i U[1, i] P_i``,
    with ``u`` along B - A and ``v`` towards the bend. Returns U, shape (2, points).
    """
    points = g.shape[0]
    e = np.eye(points)
    along = e[-1] - e[0]
    norm_u = np.sqrt(along @ g @ along)
    if not norm_u > 0:
        raise LandscapeError("the two endpoints are the same weights; there is no path between them")
    u = along / norm_u
    off = e[bend] - e[0]
    off = off - (off @ g @ u) * u
    norm_v = np.sqrt(max(off @ g @ off, 0.0))
    if not norm_v > 1e-12 * norm_u:
        raise LandscapeError("the bend lies on the straight line between the endpoints: there is no plane through them")
    return np.stack([u, off / norm_v])


def plane_coordinates(g: np.ndarray, basis: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """(x, y) of points ``sum_i coefficients[k, i] P_i`` projected on the plane, origin at A."""
    coefficients = np.atleast_2d(coefficients)
    relative = coefficients.copy()
    relative[:, 0] -= 1.0  # minus A: each row's coefficients sum to one
    return relative @ g @ basis.T


__all__ = ["CURVES", "CurveShape", "curve_length", "curve_point", "gram", "plane_basis", "plane_coordinates",
           "straight_bends", "t_grid"]
