"""Grid axes (``MIN:MAX:N``) and the order in which grid points are computed.

Points are visited coarse to fine: the ends and the middle of each axis first,
then the midpoints between those, and so on, so a partial surface already shows
the whole shape at low resolution.
"""

from __future__ import annotations

import numpy as np

from engine.errors import LandscapeError


def parse_axis(text: str, flag: str = "--x") -> np.ndarray:
    """``'MIN:MAX:N'`` -> N evenly spaced values including both ends (N = 1: just MIN)."""
    parts = str(text).split(":")
    if len(parts) != 3:
        raise LandscapeError(f"{flag}={text} is not MIN:MAX:N (for example {flag}=-1:1:51)")
    try:
        low, high = float(parts[0]), float(parts[1])
        count = int(parts[2])
    except ValueError as exc:
        raise LandscapeError(f"{flag}={text}: MIN and MAX must be numbers and N a whole number") from exc
    if not (np.isfinite(low) and np.isfinite(high)):
        raise LandscapeError(f"{flag}={text}: MIN and MAX must be finite")
    if count < 1:
        raise LandscapeError(f"{flag}={text}: N must be at least 1")
    if count > 1 and high <= low:
        raise LandscapeError(f"{flag}={text}: MAX must be greater than MIN")
    if count == 1:
        return np.array([low])
    return np.linspace(low, high, count)


def format_axis(values: np.ndarray) -> str:
    values = np.asarray(values)
    return f"{values[0]:g}:{values[-1]:g}:{len(values)}"


def refinement_levels(n: int) -> np.ndarray:
    """Level of each index 0..n-1 under repeated bisection (0 = both ends, coarsest)."""
    level = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return level
    level[0] = 0
    level[n - 1] = 0
    intervals = [(0, n - 1)]
    depth = 0
    while intervals:
        depth += 1
        next_intervals = []
        for lo, hi in intervals:
            if hi - lo < 2:
                continue
            mid = (lo + hi) // 2
            level[mid] = depth
            next_intervals += [(lo, mid), (mid, hi)]
        intervals = next_intervals
    return level


def coarse_to_fine_order(nx: int, ny: int = 1) -> np.ndarray:
    """Flat indices ``j * nx + i`` of an (ny, nx) grid, coarsest sub-grid first."""
    lx, ly = refinement_levels(nx), refinement_levels(ny)
    level = np.maximum(ly[:, None], lx[None, :]).ravel()
    return np.argsort(level, kind="stable")
