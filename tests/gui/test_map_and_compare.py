"""The map, the Compare tab and the side panels, built from an AppState with real widgets and real files.

What a user's first hour on a real display asked for: a status in the map while nothing is
drawn, a preview that looks like the final picture, plain unitless axes, no stale picture
for a 1D surface, explicit color limits, equal compare panels with a hover readout, and
side panels that fit a small window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from engine.display.levels import coarse_preview, color_levels
from engine.io.store import Surface, write_surface
from landscape_gui.state import AppState, Landscape


def surface_file(folder: Path, name: str, x: np.ndarray, y: np.ndarray | None, loss: np.ndarray,
                 done: np.ndarray | None = None, attrs: dict | None = None) -> Path:
    done = np.ones(loss.shape, bool) if done is None else done
    surface = Surface(path=folder / "src.h5", format="landscape", x=x, y=y, values={"train_loss": loss}, done=done,
                      attrs=attrs or {})
    return write_surface(folder / name, surface)


def provenance(folder: Path) -> dict:
    """The attributes of a surface with a long story: the Info panel needs many lines for it."""
    meta = {"recipe": "mlp-sine", "width": 500, "seed": 3, "epoch": 1000, "train_loss": 2.8e-15, "test_loss": 1.02}
    return {"model": "engine.builtin.models:mlp_with_a_rather_long_factory_name", "n_params": 261_501,
            "data": str(folder / "some" / "deeply" / "nested" / "folder" / "of" / "runs" / "train.npz"),
            "data_samples": 100, "loss": "mse", "directions": "pca", "explained_variance_ratio": [0.968, 0.032],
            "checkpoint_metadata": __import__("json").dumps(meta)}


def bowl_file(folder: Path, name: str = "bowl.h5", half_width: float = 0.5, done: np.ndarray | None = None) -> Path:
    x = np.linspace(-half_width, half_width, 33)
    y = np.linspace(-half_width, half_width, 25)
    loss = 0.01 + (x[None, :] / half_width) ** 2 + 2 * (y[:, None] / half_width) ** 2
    if done is not None:
        loss = np.where(done, loss, np.nan)
    return surface_file(folder, name, x, y, loss, done)


@pytest.fixture
def no_mouse_rate_limit(request):
    """pyqtgraph's scene drops mouse moves closer together than its rate limit; a test sends them at once."""
    import pyqtgraph as pg

    rate = pg.getConfigOption("mouseRateLimit")
    pg.setConfigOption("mouseRateLimit", -1)
    request.addfinalizer(lambda: pg.setConfigOption("mouseRateLimit", rate))


def shown(qtbot, widget, size=(800, 560)):
    qtbot.addWidget(widget)
    widget.resize(*size)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def hover(view, scene_pos: QPointF) -> None:
    viewport = view.viewport()
    pos = view.mapFromScene(scene_pos)
    event = QMouseEvent(QEvent.MouseMove, QPointF(pos), QPointF(viewport.mapToGlobal(pos)), Qt.NoButton, Qt.NoButton,
                        Qt.NoModifier)
    QApplication.sendEvent(viewport, event)


# -- the map's status while nothing is drawn ---------------------------------------------------------
def test_status_is_centred_in_the_empty_map_with_a_bar_as_wide_as_its_text(qtbot, tmp_path):
    from landscape_gui.views.heatmap import NO_SURFACE, HeatmapView

    state = AppState()
    heatmap = shown(qtbot, HeatmapView(state))
    notice = heatmap.notice
    assert notice.text() == NO_SURFACE and not notice.bar.isVisibleTo(notice)
    heatmap.set_status("Training the sample model… then computing its surface", 12, 100)
    assert notice.text() == "Training the sample model… then computing its surface"
    assert notice.bar.isVisibleTo(notice) and (notice.bar.value(), notice.bar.maximum()) == (12, 100)
    assert notice.bar.width() == notice.label.width()  # the bar fits its text
    assert notice.label.width() < heatmap.width() / 2
    centre = notice.geometry().center()
    assert abs(centre.x() - heatmap.width() / 2) <= 1 and abs(centre.y() - heatmap.height() / 2) <= 1
    heatmap.resize(500, 400)  # stays centred when the map is resized
    assert abs(notice.geometry().center().x() - 250) <= 1
    heatmap.set_status("computing its surface")  # no count yet: a busy bar
    assert notice.bar.maximum() == 0
    heatmap.set_status(None)
    assert notice.text() == NO_SURFACE and not notice.bar.isVisibleTo(notice)


def test_a_long_status_wraps_inside_a_narrow_map(qtbot):
    from landscape_gui.views.heatmap import HeatmapView

    heatmap = shown(qtbot, HeatmapView(AppState()), size=(320, 300))
    heatmap.set_status("Training the sample model (a width-50 MLP on a 20-D sine task)… then computing its surface",
                       3, 10)
    geometry = heatmap.notice.geometry()
    assert geometry.left() >= 0 and geometry.right() <= heatmap.width()
    assert heatmap.notice.bar.width() == heatmap.notice.label.width()


def test_status_shows_until_the_first_points_arrive_then_the_picture_does(qtbot, tmp_path):
    from landscape_gui.views.heatmap import HeatmapView

    state = AppState()
    heatmap = shown(qtbot, HeatmapView(state))
    heatmap.set_status("computing its surface", 0, 825)
    landscape = state.add(Landscape.open(bowl_file(tmp_path, done=np.zeros((25, 33), bool))))
    assert heatmap.notice.text() == "computing its surface"  # a file with no point yet: still waiting
    assert not heatmap.colorbar.isVisible()  # no color range to show yet
    landscape.add_values(np.array([0, 32, 24 * 33, 24 * 33 + 32]), {"train_loss": np.array([3.0, 3.0, 3.0, 3.0])})
    state.updated.emit(landscape)
    assert heatmap.notice.text() == "" and heatmap.plot.isVisible() and heatmap.colorbar.isVisible()
    assert np.isfinite(heatmap.image.image).all()  # four corners already make a (flat) picture


# -- the preview and plain axes ------------------------------------------------------------------------
def test_the_map_draws_the_lattice_preview_with_levels_from_computed_points(qtbot, tmp_path):
    from engine.numerics.grid import refinement_levels
    from landscape_gui.views.heatmap import HeatmapView

    done = np.maximum(refinement_levels(25)[:, None], refinement_levels(33)[None, :]) <= 2
    state = AppState()
    heatmap = shown(qtbot, HeatmapView(state))
    landscape = state.add(Landscape.open(bowl_file(tmp_path, done=done)))
    grid = landscape.grid("train_loss")
    drawn = heatmap.image.image
    computed = grid.image("log")[done]
    levels = tuple(heatmap.image.getLevels())
    assert levels == pytest.approx(color_levels(computed, "log")) and levels[1] == pytest.approx(computed.max())
    np.testing.assert_array_equal(drawn, coarse_preview(grid.image("log"), done, levels))
    assert np.isfinite(drawn).all()


def test_axes_of_the_map_and_the_compare_panels_carry_no_si_multiplier(qtbot, tmp_path):
    from landscape_gui.views.compare import CompareView
    from landscape_gui.views.heatmap import HeatmapView

    state = AppState()
    heatmap = shown(qtbot, HeatmapView(state))
    compare = shown(qtbot, CompareView(state))
    x = np.linspace(-0.005, 0.005, 21)  # pyqtgraph would label these -5..5 with "(x0.001)"
    state.add(Landscape.open(surface_file(tmp_path, "tiny.h5", x, x, 1e-4 + x[None, :] ** 2 + x[:, None] ** 2)))
    state.view.scale = "linear"  # color bar values around 1e-4: an SI multiplier there too
    axes = [heatmap.plot.getAxis("bottom"), heatmap.plot.getAxis("left"), heatmap.colorbar.axis,
            compare.panels[0].plot.getAxis("bottom"), compare.panels[0].plot.getAxis("left"), compare.colorbar.axis]
    for axis in axes:
        assert (axis.autoSIPrefixScale, axis.labelUnitPrefix) == (1.0, "")
    assert "-0.004" in heatmap.plot.getAxis("bottom").tickStrings([-0.004], 1.0, 0.001)


def test_a_1d_surface_leaves_no_stale_map(qtbot, tmp_path):
    from landscape_gui.views.heatmap import ONE_D_SURFACE, HeatmapView

    state = AppState()
    heatmap = shown(qtbot, HeatmapView(state))
    state.add(Landscape.open(bowl_file(tmp_path)))
    assert heatmap.plot.isVisible() and heatmap.colorbar.isVisible() and heatmap.image.image is not None
    x = np.linspace(-1, 1, 11)
    state.add(Landscape.open(surface_file(tmp_path, "line.h5", x, None, 1 + x**2)))
    assert heatmap.notice.text() == ONE_D_SURFACE
    assert not heatmap.plot.isVisible() and not heatmap.colorbar.isVisible()
    assert heatmap.image.image is None and len(heatmap.contours.xData or []) == 0


# -- color limits ---------------------------------------------------------------------------------------
def test_display_panel_sets_percentile_and_typed_limits_that_map_and_compare_follow(qtbot, tmp_path):
    from landscape_gui.panels import DisplayPanel
    from landscape_gui.views.compare import CompareView
    from landscape_gui.views.heatmap import HeatmapView

    state = AppState()
    panel = shown(qtbot, DisplayPanel(state), size=(300, 500))
    heatmap = shown(qtbot, HeatmapView(state))
    compare = shown(qtbot, CompareView(state))
    landscape = state.add(Landscape.open(bowl_file(tmp_path)))
    log = landscape.grid("train_loss").image("log")
    limits = panel.limits
    assert "0.01 … 3.01" in limits.note.text()  # the automatic range in use, in the metric's units
    assert "log scale" in limits.mode.toolTip()  # and what the automatic range does

    limits.mode.setCurrentIndex(limits.mode.findData("percentiles"))
    limits.high_percentile.setValue(90.0)
    assert state.view.limits().mode == "percentiles" and state.view.percentile_high == 90.0
    assert heatmap.image.getLevels()[1] == pytest.approx(np.percentile(log, 90), rel=1e-6)
    assert limits.percentiles.isVisibleTo(panel) and not limits.values.isVisibleTo(panel)

    limits.mode.setCurrentIndex(limits.mode.findData("values"))
    assert (state.view.value_min, state.view.value_max) == pytest.approx((10 ** np.percentile(log, 1),
                                                                          10 ** np.percentile(log, 90)), rel=1e-5)
    limits.low_value.setText("1e-15")
    limits.low_value.editingFinished.emit()
    limits.high_value.setText("")
    limits.high_value.editingFinished.emit()
    assert (state.view.value_min, state.view.value_max) == (1e-15, None)
    expected = (pytest.approx(-15.0), pytest.approx(float(log.max())))
    assert tuple(heatmap.image.getLevels()) == expected
    assert tuple(compare.panels[0].image.getLevels()) == expected and compare.levels == expected

    limits.low_value.setText("ten")
    limits.low_value.editingFinished.emit()
    assert state.view.value_min == 1e-15 and "not a number" in limits.low_value.toolTip()


# -- compare ---------------------------------------------------------------------------------------------
def test_compare_panels_are_equally_wide_whatever_their_names_and_ticks(qtbot, tmp_path):
    from landscape_gui.views.compare import CompareView

    state = AppState()
    compare = shown(qtbot, CompareView(state), size=(900, 420))
    state.add(Landscape.open(bowl_file(tmp_path, "a.h5", half_width=0.5)))
    long_name = "a_very_long_surface_name_for_the_width_sweep_w500_seed3.h5"
    state.add(Landscape.open(bowl_file(tmp_path, long_name, half_width=2000.0)))
    qtbot.waitUntil(lambda: compare.panels[0].plot.vb.width() > 100)
    widths = [panel.plot.vb.sceneBoundingRect().width() for panel in compare.panels]
    assert widths[0] == pytest.approx(widths[1], abs=1)
    title = compare.panels[1].plot.titleLabel
    assert title.toolTip() == long_name.removesuffix(".h5") and "…" in title.text


def test_hovering_a_compare_panel_reads_out_its_point(qtbot, tmp_path, no_mouse_rate_limit):
    from landscape_gui.views.compare import HOVER_HINT, CompareView

    state = AppState()
    compare = shown(qtbot, CompareView(state), size=(900, 420))
    paths = [bowl_file(tmp_path, "a.h5"), bowl_file(tmp_path, "b.h5", half_width=1.0)]
    landscapes = [state.add(Landscape.open(path)) for path in paths]
    qtbot.waitUntil(lambda: compare.panels[1].plot.vb.width() > 100)
    surface = landscapes[1].surface
    hover(compare, compare.map_to_scene(1, surface.x[20], surface.y[5]))
    qtbot.waitUntil(lambda: compare.readout.text.startswith("b:"))
    text = compare.readout.text
    assert f"x {surface.x[20]:.4g}, y {surface.y[5]:.4g}" in text  # the grid point under the mouse
    assert text.startswith("b:") and f"train_loss {surface.values['train_loss'][5, 20]:.6g}" in text
    hover(compare, QPointF(2, 2))  # off every panel: the readout goes back to its hint
    assert compare.readout.text == HOVER_HINT
    QApplication.sendEvent(compare, QEvent(QEvent.Type.Leave))  # the mouse leaves the view: no hint
    assert compare.readout.text == ""  # (so an exported figure never shows it)


# -- the side panels --------------------------------------------------------------------------------------
def test_list_entries_show_1d_tags_and_full_names(qtbot, tmp_path):
    from landscape_gui.panels import LandscapeList

    state = AppState()
    panel = shown(qtbot, LandscapeList(state), size=(180, 200))
    long_name = "mlp_sine_width_sweep_surface_number_seven_of_twelve"
    state.add(Landscape.open(bowl_file(tmp_path, f"{long_name}.h5")))
    x = np.linspace(-1, 1, 11)
    state.add(Landscape.open(surface_file(tmp_path, "line.h5", x, None, 1 + x**2)))
    two_d, one_d = panel.list.item(0), panel.list.item(1)
    assert two_d.flags() & Qt.ItemIsUserCheckable and not one_d.flags() & Qt.ItemIsUserCheckable
    assert one_d.text().endswith("1D") and "profile view" in one_d.toolTip()
    assert two_d.toolTip().splitlines()[0] == long_name
    assert panel.list.textElideMode() == Qt.ElideMiddle
    assert panel.list.horizontalScrollBarPolicy() == Qt.ScrollBarAlwaysOff  # so names are cut, not scrolled off


def test_display_and_info_panels_fit_a_1024_by_700_window(window, tmp_path, qtbot):
    window.resize(1024, 700)
    x = np.linspace(-1, 1, 9)
    window.open_grid(surface_file(tmp_path, "told.h5", x, x, 1 + x[None, :] ** 2 + x[:, None] ** 2,
                                  attrs=provenance(tmp_path)))
    panel = window.display_panel
    panel.limits.mode.setCurrentIndex(panel.limits.mode.findData("values"))  # the tallest the panel gets
    qtbot.wait(50)
    assert window.height() <= 700
    controls = (panel.metric_box, panel.scale, panel.limits.mode, panel.limits.low_value, panel.limits.high_value,
                panel.colormap, panel.contours, panel.trajectory)
    for control in controls:  # every control whole inside the panel, none squashed
        top_left = control.mapTo(panel, QPoint(0, 0))
        assert top_left.y() >= 0 and top_left.y() + control.height() <= panel.height(), control
        assert control.height() >= control.minimumSizeHint().height(), control
    info = window.info_panel.label
    assert info.height() >= info.heightForWidth(info.width())  # every line there: scrolled, never cut
    assert window.info_panel.minimumSizeHint().height() < 120
