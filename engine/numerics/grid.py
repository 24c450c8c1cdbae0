"""Grid axes (``MIN:MAX:N``) and the order in which grid points are computed.

Points are visited coarse to fine: the ends and the middle of each axis first,
then the midpoints between those, and so on, so a partial surface already shows
the whole shape at low resolution.

The order is produced lazily (:func:`iter_coarse_to_fine`), in chunks of flat
indices, so that a huge grid costs about one byte per point (its refinement
level) and never a full array of indices: ``--x=-1:1:100000000`` starts computing
after a second or two, with about 100 MB of bookkeeping.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from engine.errors import LandscapeError

# Intervals bisected per vectorized step of refinement_levels, and flat indices
# scanned per vectorized step of iter_coarse_to_fine: bounds the temporaries
# (a few MB) whatever the grid size.
_INTERVAL_BLOCK = 1 << 18
_SCAN_BLOCK = 1 << 20


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


def refinement_levels(n: int) -> np.ndarray:
    """Level (uint8) of each index 0..n-1 under repeated bisection (0 = both ends, coarsest).

    ``[0, n-1]`` is split at ``(lo + hi) // 2``, which gets level 1, and each half is
    split the same way (level 2, 3, ...) until no interval has an index strictly
    inside. Every index gets a level; the deepest is about ``log2(n)``.

    Vectorized by depth: a block holds the bounds of up to ``_INTERVAL_BLOCK``
    intervals of one depth as numpy arrays, and bisecting it gives the (at most twice
    as many) intervals of the next depth. Blocks are processed depth-first from a
    stack, so memory stays at the ``n`` bytes of the result plus a few blocks.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"refinement_levels: n must be >= 0, not {n}")
    level = np.zeros(n, dtype=np.uint8)
    if n <= 2:
        return level
    dtype = np.int32 if n < 2**31 else np.int64
    stack = [(np.array([0], dtype=dtype), np.array([n - 1], dtype=dtype), 1)]
    while stack:
        lo, hi, depth = stack.pop()
        split = hi - lo >= 2
        if not split.all():
            lo, hi = lo[split], hi[split]
        if lo.size == 0:
            continue
        mid = lo + (hi - lo) // 2  # == (lo + hi) // 2, without overflow
        level[mid] = depth
        # Children [lo, mid] and [mid, hi]: one block while it fits, else two.
        if 2 * lo.size <= _INTERVAL_BLOCK:
            stack.append((np.concatenate((lo, mid)), np.concatenate((mid, hi)), depth + 1))
        else:
            stack.append((mid, hi, depth + 1))
            stack.append((lo, mid, depth + 1))
    return level


def _point_levels(nx: int, ny: int) -> np.ndarray:
    """Flat (ny * nx) uint8 level of each point: the finer of its row's and column's levels."""
    lx = refinement_levels(nx)
    if ny == 1:
        return lx
    ly = refinement_levels(ny)
    if nx == 1:
        return ly
    return np.maximum(ly[:, None], lx[None, :]).ravel()


def iter_coarse_to_fine(
    nx: int, ny: int = 1, done: np.ndarray | None = None, chunk: int = 65536
) -> Iterator[np.ndarray]:
    """Flat indices ``j * nx + i`` of the points of an (ny, nx) grid not yet ``done``, coarsest first.

    A point's level is the larger of its column's and its row's
    :func:`refinement_levels`. Points come level by level (0 first) and, within a level,
    by increasing flat index. They are yielded as int64 arrays of at most ``chunk``
    indices (every array but the last holds exactly ``chunk``), never empty.

    ``done``: optional mask of ``ny * nx`` points (any shape, e.g. the file's (ny, nx)
    ``done``) to leave out. A bool array is not copied but read as the iteration goes:
    marking points done that were already yielded is harmless, marking others done
    may or may not skip them.

    Lazy: the levels are cached as one uint8 per point (none for a 1D grid beyond the
    axis' own) and scanned in blocks of flat indices per level, so memory stays at
    about a byte or two per point plus a few MB, and the first chunk of a
    10**8-point axis arrives after a second or two.
    """
    nx, ny, chunk = int(nx), int(ny), int(chunk)
    if nx < 0 or ny < 0:
        raise ValueError(f"iter_coarse_to_fine: grid sizes must be >= 0, not {nx} x {ny}")
    if chunk < 1:
        raise ValueError(f"iter_coarse_to_fine: chunk must be >= 1, not {chunk}")
    mask = None
    if done is not None:
        mask = np.asarray(done, dtype=bool).reshape(-1)
        if mask.size != nx * ny:
            raise ValueError(f"iter_coarse_to_fine: done has {mask.size} points, the grid {nx * ny}")
    return _coarse_to_fine_chunks(nx, ny, mask, chunk)


def _coarse_to_fine_chunks(nx: int, ny: int, done: np.ndarray | None, chunk: int) -> Iterator[np.ndarray]:
    total = nx * ny
    if total == 0:
        return
    level = _point_levels(nx, ny)
    levels = int(level.max()) + 1
    starts = range(0, total, _SCAN_BLOCK)
    # How many points (not done) of each level each block holds, to skip empty blocks.
    counts = np.zeros((len(starts), levels), dtype=np.int64)
    for b, start in enumerate(starts):
        block = level[start:start + _SCAN_BLOCK]
        if done is not None:
            block = block[~done[start:start + _SCAN_BLOCK]]
        counts[b] = np.bincount(block, minlength=levels)

    pending: list[np.ndarray] = []
    size = 0
    for current in range(levels):
        for b in np.flatnonzero(counts[:, current]):
            start = starts[b]
            hits = level[start:start + _SCAN_BLOCK] == current
            if done is not None:
                hits &= ~done[start:start + _SCAN_BLOCK]
            found = np.flatnonzero(hits).astype(np.int64, copy=False)
            found += start
            while found.size:
                take = min(chunk - size, found.size)
                pending.append(found[:take])
                size += take
                found = found[take:]
                if size == chunk:
                    yield pending[0].copy() if len(pending) == 1 else np.concatenate(pending)
                    pending, size = [], 0
    if size:
        yield np.concatenate(pending)
