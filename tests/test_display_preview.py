"""The map's preview of a partial grid and its color limits (engine.display.levels), without Qt.

A preview must look like a low-resolution version of the final picture: one extreme
point colours at most its lattice cell, pending pixels are interpolated from computed
neighbours, and the color range comes from computed points only.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.display.levels import (
    AUTO, COMPUTED, NONFINITE, PENDING, ColorLimits, DisplayGrid, coarse_preview, color_levels, display_values,
    shared_levels, veil_codes,
)
from engine.numerics.grid import iter_coarse_to_fine, refinement_levels


def lattice_mask(nx: int, ny: int, level: int) -> np.ndarray:
    """The points a job has computed once every point of refinement ``level`` is in."""
    return np.maximum(refinement_levels(ny)[:, None], refinement_levels(nx)[None, :]) <= level


def first_points(nx: int, ny: int, count: int) -> np.ndarray:
    """The ``count`` points a job computes first (its real coarse-to-fine order), as a (ny, nx) mask."""
    order = np.concatenate(list(iter_coarse_to_fine(nx, ny)))[:count]
    done = np.zeros(ny * nx, dtype=bool)
    done[order] = True
    return done.reshape(ny, nx)


def bowl(nx: int = 65, ny: int = 49) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = np.linspace(-1, 1, nx), np.linspace(-1, 1, ny)
    return x, y, (0.05 + (x[None, :] - 0.2) ** 2 + 2 * (y[:, None] + 0.1) ** 2).astype(np.float32)


# -- the preview ------------------------------------------------------------------------------
def test_a_minimum_at_one_computed_point_colours_at_most_its_lattice_cell():
    n = 33
    final = np.ones((n, n), dtype=np.float32)
    done = lattice_mask(n, n, 3)  # a 9 x 9 lattice: cells of 4 x 4 pixels
    final[12, 20] = -10.0  # the minimum, on a lattice node (rows and columns 0, 4, 8, ...)
    image = np.where(done, final, np.nan).astype(np.float32)
    preview = coarse_preview(image, done)
    coloured = preview < (-10.0 + 1.0) / 2  # closer to the minimum's colour than to the rest
    assert coloured.sum() <= 4 * 4
    around = coloured[8:17, 16:25]  # the point's neighbourhood, the point in the middle
    np.testing.assert_array_equal(around, around[::-1, ::-1])  # centred on the point, not shifted by ties
    assert coloured[12, 20] and not coloured[12, 16] and not coloured[8, 20]  # its lattice neighbours keep theirs
    assert np.isnan(image[12, 13])  # the display data itself is untouched


def test_an_extreme_point_of_a_partly_computed_level_does_not_flood_the_map():
    n = 33
    done = first_points(n, n, int(lattice_mask(n, n, 3).sum()) + 40)  # level 3 complete, level 4 begun
    newest = np.flatnonzero(done & ~lattice_mask(n, n, 3))[-1]
    j, i = divmod(newest, n)
    image = np.where(done, 1.0, np.nan).astype(np.float32)
    image[j, i] = -10.0
    preview = coarse_preview(image, done)
    assert (preview < -4.5).sum() <= 2 * 2  # at most its own cell of the finer lattice


def test_a_point_below_the_color_range_tints_its_neighbours_like_the_range_s_end():
    x, y, final = bowl()
    done = lattice_mask(len(x), len(y), 3)
    values = final.astype(np.float64)
    values[24, 32] = 1e-15  # an interpolating minimum on the lattice, left below the colormap
    grid = DisplayGrid(np.where(done, values, np.nan), done)
    low, high = float(np.log10(final[done].min())), float(np.log10(final[done].max()))  # the outlier is below
    preview = grid.preview("log", (low, high))
    assert (preview < low).sum() == 1  # only its own pixel is drawn in the colormap's bottom colour
    assert np.array_equal(preview[done], grid.image("log")[done])  # computed points keep their values
    unclamped = grid.preview("log")
    assert (unclamped < low).sum() > 20  # blended as -15, it would darken its whole neighbourhood


def test_pending_points_are_never_nan_where_computed_points_exist():
    x, y, final = bowl()
    for count in (1, 2, 3, 4, 7, 30, 200, 1000, 3000):
        done = first_points(len(x), len(y), count)
        preview = coarse_preview(display_values(final, done, "linear"), done)
        assert np.isfinite(preview).all(), count


def test_non_finite_computed_points_stay_out_of_their_neighbours_blend():
    x, y, final = bowl()
    done = lattice_mask(len(x), len(y), 4)
    values = final.astype(np.float64)
    values[24, 32] = np.inf  # a diverged point on the lattice (shown in magenta under the veil)
    preview = coarse_preview(display_values(values, done, "linear"), done)
    assert np.isnan(preview[24, 32])
    assert np.isfinite(np.delete(preview.ravel(), 24 * len(x) + 32)).all()
    assert np.nanmax(preview) <= final[done].max()


def test_a_smooth_bowl_preview_approaches_the_final_picture_as_levels_fill_in():
    x, y, final = bowl()
    errors = []
    for level in range(1, 8):
        done = lattice_mask(len(x), len(y), level)
        preview = coarse_preview(display_values(final, done, "linear"), done)
        errors.append(np.abs(preview - final).max())
    assert all(later < earlier for earlier, later in zip(errors, errors[1:-1]))
    assert errors[-1] == 0.0  # level 7 is every point of a 65 x 49 grid
    # Bilinear on the lattice: the error shrinks like h^2 (a quarter per level), not like h (a half).
    assert errors[4] < errors[2] / 10


def test_the_preview_stays_within_the_computed_values_and_the_levels_come_from_them():
    x, y, final = bowl()
    done = first_points(len(x), len(y), 300)
    grid = DisplayGrid(np.where(done, final, np.nan), done)
    preview = grid.preview("log")
    computed = grid.image("log")[done]
    assert computed.min() <= preview.min() and preview.max() <= computed.max()
    assert grid.levels("log") == color_levels(computed, "log")
    assert grid.levels("log")[0] > np.log10(final.min())  # the pending true minimum is not guessed


def test_a_complete_or_empty_grid_is_its_own_preview():
    full = np.ones((2, 2), dtype=np.float32)
    assert coarse_preview(full, np.ones((2, 2), bool)) is full
    empty = np.full((3, 3), np.nan, dtype=np.float32)
    assert coarse_preview(empty, np.zeros((3, 3), bool)) is empty


def test_a_1d_grid_is_interpolated_along_its_axis():
    line = np.linspace(0.0, 8.0, 9).astype(np.float32)
    done = refinement_levels(9) <= 1  # the ends and the middle
    preview = coarse_preview(np.where(done, line, np.nan).astype(np.float32), done)
    np.testing.assert_allclose(preview, line)  # a linear function is exact


def test_the_veil_covers_scattered_computed_points_and_lifts_where_the_picture_is_complete():
    status = np.full((7, 9), PENDING, dtype=np.uint8)
    status[::3, ::4] = COMPUTED  # a coarse lattice in a pending grid
    status[4:, :] = COMPUTED  # the bottom three rows complete
    status[5, 2] = NONFINITE
    veil = veil_codes(status)
    assert (veil[:4] == PENDING).all()  # the scattered lattice points do not speckle the preview
    assert (veil[6] == COMPUTED).all() and veil[5, 2] == NONFINITE
    assert (np.delete(veil[5], 2) == COMPUTED).all()
    assert veil_codes(np.full((2, 2), COMPUTED, dtype=np.uint8)).tolist() == [[COMPUTED] * 2] * 2


# -- color limits -------------------------------------------------------------------------------
def test_auto_log_limits_keep_a_smooth_basin_whole():
    x, y, final = bowl()
    image = display_values(final, np.ones(final.shape, bool), "log")
    assert color_levels(image, "log") == (pytest.approx(image.min()), pytest.approx(image.max()))


def test_auto_log_limits_leave_an_isolated_interpolating_minimum_below_the_colormap():
    x, y, final = bowl()
    values = final.astype(np.float64)
    values[24, 39] = 1e-15  # the checkpoint itself interpolates its data: twelve decades below its neighbours
    image = display_values(values, np.ones(final.shape, bool), "log")
    low, high = color_levels(image, "log")
    assert low == pytest.approx(np.log10(final.min()), rel=1e-6) and high == pytest.approx(image.max())
    linear = display_values(values, np.ones(final.shape, bool), "linear")
    assert color_levels(linear, "linear") == (pytest.approx(1e-15), pytest.approx(float(final.max())))


def test_percentile_and_typed_limits():
    data = np.arange(1, 101, dtype=np.float32)
    assert color_levels(data, "linear", ColorLimits("percentiles", 10, 90)) == pytest.approx((10.9, 90.1))
    assert color_levels(data, "linear", ColorLimits("percentiles", 90, 10)) == pytest.approx((10.9, 90.1))
    assert color_levels(data, "linear", ColorLimits("values", 5.0, 50.0)) == (5.0, 50.0)
    assert color_levels(data, "linear", ColorLimits("values", None, 50.0)) == (1.0, 50.0)  # None: that end auto
    log = np.log10(data)
    assert color_levels(log, "log", ColorLimits("values", 1e-15, 10.0)) == pytest.approx((-15.0, 1.0))
    assert color_levels(log, "log", ColorLimits("values", 0.0, 10.0)) == pytest.approx((0.0, 1.0))  # <= 0: auto
    low, high = color_levels(data, "linear", ColorLimits("values", 80.0, 20.0))
    assert low == 80.0 and high > low  # an inverted range is drawn, not refused
    with pytest.raises(ValueError):
        ColorLimits("clip")


def test_shared_levels_follow_the_limits_over_every_surface():
    a = DisplayGrid(np.full((3, 3), 10.0), np.ones((3, 3), bool))
    b = DisplayGrid(np.full((3, 3), 1000.0), np.ones((3, 3), bool))
    assert shared_levels([a, b], "log", AUTO) == (pytest.approx(1.0), pytest.approx(3.0))
    assert shared_levels([a, b], "log", ColorLimits("values", 100.0, None)) == (pytest.approx(2.0), pytest.approx(3.0))
    assert a.levels("linear", ColorLimits("values", 0.0, 20.0)) == (0.0, 20.0)


def test_view_state_limits_are_plain_values_and_validated():
    from landscape_gui.state import ViewState

    view = ViewState()
    seen = []
    view.changed.connect(seen.append)
    assert view.limits() == AUTO
    view.color_limits = "percentiles"
    view.percentile_high = 120  # clamped to 100
    assert view.limits() == ColorLimits("percentiles", 1.0, 100.0)
    view.color_limits = "values"
    view.value_min = 1e-15
    assert view.limits() == ColorLimits("values", 1e-15, None)
    assert seen == ["color_limits", "percentile_high", "color_limits", "value_min"]
    assert set(ViewState.LIMIT_KEYS) <= set(view.as_dict())
    for name, bad in (("color_limits", "clip"), ("value_max", float("nan")), ("value_min", "x")):
        with pytest.raises(ValueError):
            view.set(name, bad)
    import json

    assert json.loads(json.dumps(view.as_dict()))["value_min"] == 1e-15
