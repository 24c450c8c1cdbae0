"""The numerics behind the views (engine.display.profile, engine.display.contours, engine.display.levels) against closed forms.

The coarse preview and the color limits have their own file, tests/test_display_preview.py."""

from __future__ import annotations

import numpy as np
import pytest

from engine.display.contours import contour_lines, contour_paths
from engine.display.levels import (
    COMPUTED, NONFINITE, PENDING, DisplayGrid, color_levels, contour_levels, display_values, shared_levels,
    status_codes,
)
from engine.display.profile import line_profile, nearest_node


@pytest.fixture
def plane():
    """A non-square, non-uniform-range grid holding an affine function (bilinear interpolation is exact)."""
    x = np.linspace(-1.0, 2.0, 31)
    y = np.linspace(-0.5, 0.5, 11)
    grid = 2.0 + 3.0 * x[None, :] - 5.0 * y[:, None]
    return x, y, grid


def test_profile_of_affine_function_is_exact_anywhere(plane):
    x, y, grid = plane
    profile = line_profile(x, y, {"loss": grid}, (-0.93, -0.41), (1.77, 0.33), samples=57)
    expected = 2.0 + 3.0 * profile.xs - 5.0 * profile.ys
    np.testing.assert_allclose(profile.values["loss"], expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(profile.distance[-1], np.hypot(1.77 + 0.93, 0.33 + 0.41))


def test_profile_along_a_grid_row_returns_the_row_at_nodes():
    x = np.linspace(-1, 1, 21)
    y = np.linspace(-1, 1, 21)
    grid = np.random.default_rng(0).random((21, 21))
    profile = line_profile(x, y, {"loss": grid}, (-1.0, y[7]), (1.0, y[7]), samples=21)
    np.testing.assert_array_equal(profile.values["loss"], grid[7])
    column = line_profile(x, y, {"loss": grid}, (x[3], -1.0), (x[3], 1.0), samples=21)
    np.testing.assert_array_equal(column.values["loss"], grid[:, 3])


def test_profile_is_nan_next_to_missing_points_and_outside_the_grid():
    x = np.linspace(0, 4, 5)
    y = np.linspace(0, 4, 5)
    grid = np.add.outer(y, x)
    grid[2, 3] = np.nan  # a point not computed yet
    profile = line_profile(x, y, {"loss": grid}, (-1.0, 2.0), (4.0, 2.0), samples=11)
    values = profile.values["loss"]
    assert np.isnan(values[0]) and np.isnan(values[1])  # x = -1, -0.5: outside the grid
    np.testing.assert_allclose(values[2:7], [2.0, 2.5, 3.0, 3.5, 4.0])  # up to the node before the hole
    assert np.isnan(values[7:10]).all()  # leaning on the hole at x = 3
    assert values[10] == 6.0  # the node at x = 4 does not lean on x = 3


def test_nearest_node_and_outside():
    x = np.linspace(-1, 1, 5)
    y = np.linspace(0, 2, 3)
    assert nearest_node(x, y, 0.1, 1.6) == (2, 2)
    assert nearest_node(x, y, -1.2, 1.0) is None
    assert nearest_node(x, None, 0.6) == (3, 0)


def test_contours_of_a_paraboloid_lie_on_circles():
    x = np.linspace(-1, 1, 81)
    y = np.linspace(-1.2, 1.2, 97)
    grid = x[None, :] ** 2 + y[:, None] ** 2
    levels = (0.1, 0.5, 0.9)
    for level, lines in zip(levels, contour_paths(x, y, grid, np.array(levels))):
        assert len(lines) == 1  # one joined, closed line per circle, not loose segments
        line = lines[0]
        np.testing.assert_array_equal(line[0], line[-1])
        # Linear interpolation of r^2 along a cell edge: error below h^2 / (8 r) with h = 0.025.
        np.testing.assert_allclose(np.hypot(line[:, 0], line[:, 1]), np.sqrt(level), atol=1e-3)
        # The closed curve is traced all round: its polygon length approaches 2 pi r.
        length = np.linalg.norm(np.diff(line, axis=0), axis=1).sum()
        assert length == pytest.approx(2 * np.pi * np.sqrt(level), rel=2e-3)


def test_contours_of_an_affine_function_are_its_exact_level_lines(plane):
    x, y, grid = plane  # 2 + 3x - 5y
    for level, lines in zip((1.0, 4.5), contour_paths(x, y, grid, np.array([1.0, 4.5]))):
        points = np.concatenate(lines)
        np.testing.assert_allclose(2.0 + 3.0 * points[:, 0] - 5.0 * points[:, 1], level, atol=1e-9)
        assert len(lines) == 1  # one straight line from edge to edge of the grid
        for end in lines[0][[0, -1]]:
            assert np.isclose(end[0], [-1.0, 2.0]).any() or np.isclose(end[1], [-0.5, 0.5]).any()


def test_contours_skip_cells_touching_nan_and_saddles_give_two_lines():
    x = np.array([0.0, 1.0])
    y = np.array([0.0, 1.0])
    saddle = np.array([[1.0, -1.0], [-1.0, 1.0]])
    assert [len(line) for line in contour_paths(x, y, saddle, np.array([0.1]))[0]] == [2, 2]
    assert contour_paths(x, y, np.array([[1.0, np.nan], [-1.0, 1.0]]), np.array([0.0])) == [[]]
    xs = np.linspace(-1, 1, 41)
    bowl = xs[None, :] ** 2 + xs[:, None] ** 2
    holed = bowl.copy()
    holed[18:23, 30:35] = np.nan  # pending points where the circle r = 0.6 passes
    points = np.concatenate(contour_paths(xs, xs, holed, np.array([0.36]))[0])
    near_hole = (points[:, 0] > xs[29]) & (points[:, 0] < xs[35]) & (points[:, 1] > xs[17]) & (points[:, 1] < xs[23])
    assert not near_hole.any() and len(contour_paths(xs, xs, holed, np.array([0.36]))[0]) == 1  # opened, not closed


def test_contour_lines_stack_every_line_with_a_break_after_each():
    x = np.linspace(0, 1, 11)
    grid = np.random.default_rng(1).random((11, 11))
    levels = contour_levels(0.0, 1.0, 3)
    paths = contour_paths(x, x, grid, levels)
    stacked = contour_lines(x, x, grid, levels)
    n_lines = sum(len(lines) for lines in paths)
    assert stacked.shape == (sum(len(line) for lines in paths for line in lines) + n_lines, 2)
    assert np.isnan(stacked[:, 0]).sum() == n_lines and np.isnan(stacked[-1]).all()
    assert contour_lines(x, x, grid, np.zeros(0)).shape == (0, 2)


def test_display_values_mask_pending_nonfinite_and_nonpositive_on_log():
    values = np.array([[1.0, 100.0], [np.inf, 0.0]])
    done = np.array([[True, False], [True, True]])
    linear = display_values(values, done, "linear")
    assert linear.dtype == np.float32 and linear.flags.c_contiguous
    assert linear[0, 0] == 1.0 and np.isnan(linear[0, 1]) and np.isnan(linear[1, 0]) and linear[1, 1] == 0.0
    log = display_values(values, done, "log")
    assert log[0, 0] == 0.0 and np.isnan(log[1, 1])
    codes = status_codes(values, done)
    assert codes.tolist() == [[COMPUTED, PENDING], [NONFINITE, COMPUTED]]


def test_color_levels_auto_span_the_values_and_survive_empty_and_flat_grids():
    data = np.arange(101, dtype=np.float32) - 50
    assert color_levels(data) == (-50.0, 50.0)  # linear: min..max, nothing clipped at either end
    assert color_levels(np.full(4, np.nan, dtype=np.float32)) == (0.0, 1.0)
    low, high = color_levels(np.full(4, 3.0, dtype=np.float32))
    assert low == 3.0 and high > low
    np.testing.assert_allclose(contour_levels(0.0, 1.0, 4), [0.2, 0.4, 0.6, 0.8])


def test_display_grid_caches_per_scale_and_shared_levels_span_all_surfaces():
    a = DisplayGrid(np.full((3, 3), 10.0), np.ones((3, 3), bool))
    b = DisplayGrid(np.full((3, 3), 1000.0), np.ones((3, 3), bool))
    assert a.image("log") is a.image("log")  # switching back costs nothing
    low, high = shared_levels([a, b], "log")
    assert (low, high) == (pytest.approx(1.0), pytest.approx(3.0))
