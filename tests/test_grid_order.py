"""The coarse-to-fine order of grid points: exactly the order of the original (eager)
implementation, produced lazily in bounded chunks and bounded memory."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import engine.numerics.grid as grid
from engine.numerics.grid import iter_coarse_to_fine, refinement_levels
from tests.conftest import PEAK_MEMORY_SOURCE, ROOT, needs_proc_status, run_cli_env


# -- the original implementation, kept here as the reference ---------------------------------
def old_refinement_levels(n: int) -> np.ndarray:
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


def old_coarse_to_fine_order(nx: int, ny: int = 1) -> np.ndarray:
    lx, ly = old_refinement_levels(nx), old_refinement_levels(ny)
    level = np.maximum(ly[:, None], lx[None, :]).ravel()
    return np.argsort(level, kind="stable")


SHAPES = [(1, 1), (2, 1), (3, 1), (1, 2), (1, 7), (2, 2), (2, 5), (5, 2), (9, 9), (17, 5),
          (6, 31), (64, 3), (100, 1), (1, 129), (33, 65)]


def collect(chunks, chunk: int) -> np.ndarray:
    chunks = list(chunks)
    for c in chunks:
        assert c.dtype == np.int64 and c.ndim == 1 and 0 < c.size <= chunk
    assert all(c.size == chunk for c in chunks[:-1])  # only the last chunk is short
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)


# -- refinement_levels ----------------------------------------------------------------------
def test_levels_equal_the_original_for_every_n_up_to_300_and_some_larger() -> None:
    for n in [*range(0, 301), 511, 512, 513, 1000, 1023, 1025, 4097, 65535, 65537, 100_003, 300_001, 600_001]:
        new = refinement_levels(n)
        assert new.dtype == np.uint8 and new.shape == (n,)
        np.testing.assert_array_equal(new, old_refinement_levels(n), err_msg=f"n={n}")


def test_levels_equal_the_original_when_the_interval_blocks_are_split(monkeypatch) -> None:
    monkeypatch.setattr(grid, "_INTERVAL_BLOCK", 4)  # every depth past the 2nd spans several blocks
    for n in [*range(0, 200), 1000, 4097]:
        np.testing.assert_array_equal(refinement_levels(n), old_refinement_levels(n), err_msg=f"n={n}")


def test_levels_of_a_power_of_two_plus_one_are_the_dyadic_levels() -> None:
    levels = refinement_levels(17)
    assert levels.tolist() == [0, 4, 3, 4, 2, 4, 3, 4, 1, 4, 3, 4, 2, 4, 3, 4, 0]


# -- iter_coarse_to_fine --------------------------------------------------------------------
@pytest.mark.parametrize("nx,ny", SHAPES)
def test_order_equals_the_original_without_done(nx: int, ny: int) -> None:
    expected = old_coarse_to_fine_order(nx, ny)
    for chunk in (1, 2, 7, 65536):
        np.testing.assert_array_equal(collect(iter_coarse_to_fine(nx, ny, chunk=chunk), chunk), expected)


@pytest.mark.parametrize("nx,ny", SHAPES)
def test_order_skips_done_points_and_keeps_the_original_order_of_the_rest(nx: int, ny: int) -> None:
    rng = np.random.default_rng(nx * 1000 + ny)
    expected = old_coarse_to_fine_order(nx, ny)
    for share in (0.0, 0.1, 0.5, 0.9, 1.0):
        done = rng.random(nx * ny) < share
        for chunk in (1, 5, 64):
            for mask in (done, done.reshape(ny, nx), done.astype(np.uint8).reshape(ny, nx)):
                got = collect(iter_coarse_to_fine(nx, ny, done=mask, chunk=chunk), chunk)
                np.testing.assert_array_equal(got, expected[~done[expected]])


def test_order_is_the_same_when_scanned_in_many_small_blocks(monkeypatch) -> None:
    monkeypatch.setattr(grid, "_SCAN_BLOCK", 7)
    monkeypatch.setattr(grid, "_INTERVAL_BLOCK", 4)
    rng = np.random.default_rng(5)
    for nx, ny in [(50, 1), (1, 37), (13, 11), (40, 25)]:
        expected = old_coarse_to_fine_order(nx, ny)
        done = rng.random(nx * ny) < 0.3
        np.testing.assert_array_equal(collect(iter_coarse_to_fine(nx, ny, chunk=9), 9), expected)
        np.testing.assert_array_equal(collect(iter_coarse_to_fine(nx, ny, done, chunk=9), 9), expected[~done[expected]])


def test_coarse_points_form_the_coarse_sub_grids_first() -> None:
    order = np.concatenate(list(iter_coarse_to_fine(17, 17, chunk=10)))
    for stride, count in ((16, 4), (8, 9), (4, 25), (2, 81)):
        j, i = np.divmod(order[:count], 17)
        assert set(zip(j.tolist(), i.tolist())) == {(b, a) for a in range(0, 17, stride) for b in range(0, 17, stride)}
    assert sorted(order.tolist()) == list(range(17 * 17))


def test_empty_grids_and_bad_arguments() -> None:
    assert list(iter_coarse_to_fine(0, 5)) == []
    assert list(iter_coarse_to_fine(3, 3, done=np.ones(9, dtype=bool))) == []
    with pytest.raises(ValueError, match="done has 8 points"):
        iter_coarse_to_fine(3, 3, done=np.zeros(8, dtype=bool))
    with pytest.raises(ValueError, match="chunk"):
        iter_coarse_to_fine(3, 3, chunk=0)
    with pytest.raises(ValueError):
        refinement_levels(-1)


@needs_proc_status
def test_first_chunk_of_a_hundred_million_point_axis_needs_little_memory() -> None:
    """The eager order grew to ~12 GB for --x=-1:1:100000000 before the first point."""
    code = PEAK_MEMORY_SOURCE + (
        "from engine.numerics.grid import iter_coarse_to_fine\n"
        "first = next(iter_coarse_to_fine(10**8))\n"
        "peak = peak_bytes()\n"
        "print(peak, first.dtype, first.size, *first[:5].tolist(), len(set(first.tolist())), first.min(), first.max())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=run_cli_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    peak, dtype, size, *head, distinct, low, high = result.stdout.split()
    assert int(peak) < 1.5 * 2**30, f"peak memory {int(peak) / 2**20:.0f} MiB"
    assert dtype == "int64" and int(size) == int(distinct) == 65536
    assert [int(v) for v in head] == [0, 10**8 - 1, (10**8 - 1) // 2, (10**8 - 1) // 4, (10**8 - 1) * 3 // 4]
    assert int(low) == 0 and int(high) == 10**8 - 1
