"""The 1D profile view and the 3D view, each built from an AppState over real surface files made by real jobs.

The numerics behind them (engine.display.profile: log-axis ticks, the slice line on the drawn
triangles) are tested first, without Qt. The 3D view's OpenGL drawing runs in a subprocess under
``xvfb-run`` (skipped where that is missing), so a GL crash can never take pytest down with it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.display.profile import linear_ticks, log_tick_labels, log_ticks, surface_path

pytest.importorskip("PySide6")
pg = pytest.importorskip("pyqtgraph")

from PySide6.QtGui import QFontMetrics, QImage  # noqa: E402

from engine.jobs.surface import SurfaceJob, SurfaceRequest, line_request  # noqa: E402
from landscape_gui.state import AppState, Curve, Landscape  # noqa: E402
from landscape_gui.views import surface3d  # noqa: E402
from tests.gui.conftest import run_under_xvfb  # noqa: E402
from landscape_gui.views.profile import PALETTE, ProfileView, curve_from_profile  # noqa: E402
from landscape_gui.views.surface3d import Surface3DView  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


# -- log-axis ticks (no Qt) -------------------------------------------------------------------------


def test_log_ticks_label_decades_and_never_crowd_the_mantissas() -> None:
    major, minor = log_ticks(-2.0, 1.0, max_labels=6)
    assert log_tick_labels(major) == ["0.01", "0.1", "1", "10"]
    np.testing.assert_allclose(10 ** minor[:3], [0.02, 0.03, 0.04])  # unlabelled minor ticks
    # A tall axis has room for 1-2-5 labels; a short one labels every 5th decade of 15.
    assert log_tick_labels(log_ticks(-2.0, 1.0, max_labels=21)[0]) == [
        "0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1", "2", "5", "10"]
    assert log_tick_labels(log_ticks(-15.0, 0.1, max_labels=5)[0]) == ["10⁻¹⁵", "10⁻¹⁰", "10⁻⁵", "10⁰"]
    # The case: less than a decade (0.04 .. 0.1) on a short axis; pyqtgraph labels all seven.
    major, minor = log_ticks(np.log10(0.04), -1.0, max_labels=4)
    assert log_tick_labels(major) == ["0.05", "0.1"]
    np.testing.assert_allclose(10**minor, [0.04, 0.06, 0.07, 0.08, 0.09])
    for low, high, count in [(-1.4, -1.0, 3), (-3.0, 2.0, 4), (-0.3, 0.7, 6), (-40.0, 0.0, 4), (-7.3, -7.2, 5)]:
        major, _ = log_ticks(low, high, count)
        assert 2 <= len(major) <= count, (low, high, count, major)
        assert np.diff(major).min() >= (high - low) / count * 0.999  # labels never closer than their share
        assert np.all((major >= low - 1e-9) & (major <= high + 1e-9))


def test_log_ticks_within_one_mantissa_fall_back_to_round_linear_values() -> None:
    major, minor = log_ticks(np.log10(0.061), np.log10(0.069), max_labels=4)
    assert log_tick_labels(major) == ["0.062", "0.064", "0.066", "0.068"]
    assert minor.size == 0
    np.testing.assert_array_equal(linear_ticks(0.0, 100.0, 6), [0, 20, 40, 60, 80, 100])
    assert [str(v) for v in linear_ticks(-1.0, 1.0, 3)] == ["-1.0", "0.0", "1.0"]  # no "-0.0"
    assert log_ticks(1.0, 1.0)[0].size == 0 and log_ticks(np.nan, 1.0)[0].size == 0


def test_log_tick_labels_use_one_style_per_axis() -> None:
    assert log_tick_labels(np.log10([0.001, 0.01, 1000.0])) == ["0.001", "0.01", "1000"]
    assert log_tick_labels(np.log10([2e-5, 1e-4, 1.0])) == ["2×10⁻⁵", "10⁻⁴", "10⁰"]
    assert log_tick_labels(np.log10([1e4, 5e4])) == ["10⁴", "5×10⁴"]


# -- the slice line on the drawn surface (no Qt) -------------------------------------------------------


def _on_pyqtgraph_triangles(x: np.ndarray, y: np.ndarray, grid: np.ndarray, px: float, py: float) -> float:
    """The height at (px, py) of the mesh pyqtgraph's GLSurfacePlotItem builds over grid[j, i] (its own faces)."""
    gl = pytest.importorskip("pyqtgraph.opengl")
    mesh = gl.GLSurfacePlotItem(x=x, y=y, z=np.ascontiguousarray(grid.T)).opts["meshdata"]
    vertexes = mesh.vertexes()
    for face in mesh.faces():
        (x0, y0, z0), (x1, y1, z1), (x2, y2, z2) = vertexes[face]
        det = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
        a = ((y1 - y2) * (px - x2) + (x2 - x1) * (py - y2)) / det
        b = ((y2 - y0) * (px - x2) + (x0 - x2) * (py - y2)) / det
        if min(a, b, 1 - a - b) >= -1e-9:
            return a * z0 + b * z1 + (1 - a - b) * z2
    raise AssertionError(f"({px}, {py}) is on no face")


def test_surface_path_lies_on_the_triangles_gl_draws() -> None:
    x = np.array([-1.0, -0.2, 0.5, 1.0])  # uneven spacing
    y = np.array([0.0, 0.3, 1.0])
    grid = np.random.default_rng(3).random((3, 4)) * 5
    path = surface_path(x, y, {"z": grid}, (-1.7, 0.9), (1.4, -0.5))
    # The part over the grid only: it enters at x = -1 and leaves at y = 0.
    assert path.xs[0] == pytest.approx(-1.0) and path.ys[-1] == pytest.approx(0.0)
    assert np.all(np.diff(path.t) > 0)
    values = path.values["z"]
    for k in range(len(path.t)):
        assert values[k] == pytest.approx(_on_pyqtgraph_triangles(x, y, grid, path.xs[k], path.ys[k]), abs=1e-5)
    # Between two vertices the straight line stays on one triangle: its midpoint is on the mesh too.
    for k in range(len(path.t) - 1):
        mx, my = (path.xs[k] + path.xs[k + 1]) / 2, (path.ys[k] + path.ys[k + 1]) / 2
        assert (values[k] + values[k + 1]) / 2 == pytest.approx(_on_pyqtgraph_triangles(x, y, grid, mx, my), abs=1e-5)


def test_surface_path_is_exact_at_nodes_and_empty_off_the_grid() -> None:
    x = np.linspace(-1, 1, 5)
    y = np.linspace(-1, 1, 5)
    grid = np.random.default_rng(0).random((5, 5))
    row = surface_path(x, y, {"z": grid}, (-1.0, y[3]), (1.0, y[3]))
    np.testing.assert_allclose(row.values["z"][np.isin(row.xs, x)], grid[3])
    assert surface_path(x, y, {"z": grid}, (-3.0, 2.0), (3.0, 2.5)).t.size == 0
    wide = np.linspace(-20.0, 20.0, 41)  # PCA planes span tens of units: edges must not round outside
    big = np.random.default_rng(1).random((41, 41))
    for start, end in [((-25.0, -13.3), (25.0, 17.1)), ((-20.0, -20.0), (20.0, 20.0)), ((3.0, -30.0), (3.0, 30.0))]:
        assert np.isfinite(surface_path(wide, wide, {"z": big}, start, end).values["z"]).all()
    assert surface_path(x, y, {"z": grid}, (2.0, -3.0), (2.0, 3.0)).t.size == 0


# -- real surface files, made by real jobs ------------------------------------------------------------


@pytest.fixture
def files(classification_case, tmp_path: Path) -> dict[str, Path]:
    """Two 2D surfaces (loss and accuracy), a slice line computed in the first one's plane, two 1D surfaces."""
    case = {name: classification_case[name] for name in ("checkpoint", "model", "data")}
    out = {"a": tmp_path / "a.h5", "b": tmp_path / "b.h5", "one_d": tmp_path / "one_d.h5",
           "one_d_b": tmp_path / "one_d_b.h5"}
    for name, seed, y in (("a", 0, "-1:1:9"), ("b", 3, "-1:1:9"), ("one_d", 0, None), ("one_d_b", 1, None)):
        list(SurfaceJob(SurfaceRequest(**case, x="-1:1:11", y=y, seed=seed, out=str(out[name]))).run())
    line = line_request(out["a"], (-1.0, 0.0), (1.0, 0.0), points=21)
    list(SurfaceJob(line).run())
    out["line"] = Path(line.out)
    return out


def profile_view(qtbot, state: AppState, width: int = 700, height: int = 320) -> ProfileView:
    view = ProfileView(state)
    qtbot.addWidget(view)
    view.resize(width, height)
    view.show()
    qtbot.waitExposed(view)
    return view


def open_all(state: AppState, files: dict[str, Path], *names: str) -> dict[str, Landscape]:
    return {name: state.add(Landscape.open(files[name]), make_current=False) for name in names}


def rgb(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    array = np.frombuffer(image.constBits(), dtype=np.uint8)
    return array.reshape(image.height(), image.bytesPerLine() // 4, 4)[:, : image.width(), :3].astype(int)


def near(pixels: np.ndarray, color, tolerance: int = 40) -> int:
    return int((np.abs(pixels - np.asarray(color)).max(axis=2) <= tolerance).sum())


# -- the profile view ------------------------------------------------------------------------------------


def test_accuracy_axis_stays_linear_0_to_100_on_a_log_scale(qtbot, files) -> None:
    state = AppState()
    state.view.scale = "log"
    a = open_all(state, files, "a")["a"]
    state.set_current(a)
    view = profile_view(qtbot, state)
    left, right = view.plot.getAxis("left"), view.plot.getAxis("right")
    assert left.logMode and not right.logMode
    low, high = view.acc_box.viewRange()[1]
    assert low <= 0.0 and 100.0 <= high < 110.0  # percent, not log10 of percent
    _loss, acc = view.items["live"]
    assert acc.getViewBox() is view.acc_box
    np.testing.assert_allclose(acc.yData, view.last_profile.values["train_acc"])
    levels = [right.tickStrings(values, 1.0, spacing) for spacing, values in right.tickValues(low, high, right.height())]
    assert levels[0] == ["0", "20", "40", "60", "80", "100"]
    assert all(low <= float(s) <= high for level in levels for s in level), levels  # plain numbers in range
    assert "x1e" not in right.labelString() and "accuracy (%)" in right.labelString()
    state.view.scale = "linear"
    assert not left.logMode and not right.logMode
    state.view.scale = "log"
    assert left.logMode and not right.logMode


def test_no_axis_gets_an_si_multiplier(qtbot) -> None:
    state = AppState()
    state.view.scale = "linear"
    x = np.linspace(0.0, 40000.0, 50)
    state.pin(Curve(key="big", label="far and small", x=x, values={"train_loss": 1e-7 * (1.0 + x / 40000.0)}))
    view = profile_view(qtbot, state)
    view.grab()  # lay out and paint: pyqtgraph picks its SI prefix on the way
    for name in ("left", "bottom"):
        axis = view.plot.getAxis(name)
        assert axis.autoSIPrefixScale == 1.0, name
        assert "(x" not in axis.labelString() and "µ" not in axis.labelString(), axis.labelString()
    bottom = view.plot.getAxis("bottom")
    assert bottom.tickStrings([20000.0, 40000.0], 1.0, 20000.0) == ["20000", "40000"]


def test_log_tick_labels_do_not_overlap_on_a_short_axis(qtbot) -> None:
    state = AppState()
    x = np.linspace(0.0, 1.0, 101)
    state.pin(Curve(key="narrow", label="0.04 .. 0.1", x=x, values={"train_loss": 0.04 + 0.06 * x}))
    view = profile_view(qtbot, state, height=220)
    view.grab()
    left = view.plot.getAxis("left")
    low, high = view.plot.vb.viewRange()[1]
    levels = left.tickValues(low, high, left.height())
    labelled = [(v, s) for spacing, values in levels for v, s in zip(values, left.tickStrings(values, 1.0, spacing))
                if s]
    assert 2 <= len(labelled) <= 4, labelled
    pixels_per_unit = view.plot.vb.height() / (high - low)
    text_height = QFontMetrics(left.style["tickFont"] or left.font()).height()
    gaps = np.diff(sorted(v for v, _s in labelled)) * pixels_per_unit
    assert gaps.min() >= 1.5 * text_height, (labelled, gaps, text_height)


def test_the_legend_sits_outside_the_plot_and_names_every_curve(qtbot, files) -> None:
    state = AppState()
    loaded = open_all(state, files, "a", "line")
    state.set_current(loaded["a"])
    view = profile_view(qtbot, state)
    plot_area = view.plot.vb.sceneBoundingRect()
    assert not view.legend.sceneBoundingRect().intersects(plot_area)
    assert view.legend.isVisible() and view.legend.sceneBoundingRect().bottom() <= view.height() + 1
    names = [label.text for _sample, label in view.legend.items]
    assert len(names) == 2 and any("interpolated" in n for n in names) and any("computed" in n for n in names)


def test_a_computed_line_is_drawn_over_its_interpolated_profile_and_both_show(qtbot, files) -> None:
    state = AppState()
    loaded = open_all(state, files, "a", "line")
    state.set_current(loaded["a"])
    state.view.slice = ((-1.0, 0.0), (1.0, 0.0))  # the very segment the line was computed along
    view = profile_view(qtbot, state)
    live, _ = view.items["live"]
    computed, _ = view.items[f"file:{files['line']}"]
    line = loaded["line"].surface
    np.testing.assert_array_equal(computed.yData, line.values["train_loss"])
    np.testing.assert_allclose(computed.xData, np.linspace(0.0, 2.0, 21))  # distance along the slice
    assert computed.zValue() > live.zValue()  # on top
    assert computed.opts["symbol"] == "o" and live.opts["symbol"] is None  # its points marked
    assert live.opts["pen"].widthF() > 2 * computed.opts["pen"].widthF()  # a band around it
    pixels = rgb(view.grab().toImage())
    band = np.array(PALETTE[0]) * 90 / 255 + 255 * (1 - 90 / 255)  # the band's translucent blue on white
    computed_color = computed.opts["pen"].color().getRgb()[:3]
    assert near(pixels, band, 25) > 300, "the interpolated band is hidden"
    assert near(pixels, computed_color, 40) > 150, "the computed curve is hidden"


def test_pinned_and_computed_curves_go_with_their_surface(qtbot, files) -> None:
    state = AppState()
    loaded = open_all(state, files, "a", "line", "b")
    state.set_current(loaded["a"])
    view = profile_view(qtbot, state)
    state.pin(curve_from_profile("pin:a", "pinned from a", view.last_profile, owner=loaded["a"].path))
    mine = {"live", "pin:a", f"file:{files['line']}"}
    assert set(view.items) == mine
    state.set_current(loaded["b"])
    assert set(view.items) == {"live"}
    np.testing.assert_allclose(view.items["live"][0].yData, view.last_profile.values["train_loss"])
    state.set_current(loaded["a"])
    assert set(view.items) == mine


def test_a_1d_surface_is_drawn_on_its_own_alpha_axis_and_clears_the_3d_view(qtbot, files) -> None:
    state = AppState()
    loaded = open_all(state, files, "a", "line", "one_d", "one_d_b")
    state.set_current(loaded["a"])
    view = profile_view(qtbot, state)
    view3d = Surface3DView(state)
    qtbot.addWidget(view3d)
    state.pin(curve_from_profile("pin:a", "pinned from a", view.last_profile, owner=loaded["a"].path))
    assert view3d.shown is loaded["a"] and view3d.message == ""

    state.set_current(loaded["one_d"])
    assert set(view.items) == {f"file:{files['one_d']}", f"file:{files['one_d_b']}"}  # no slice distances
    assert "α" in view.plot.getAxis("bottom").labelString()
    assert view.last_profile is None
    current, other = view.items[f"file:{files['one_d']}"][0], view.items[f"file:{files['one_d_b']}"][0]
    np.testing.assert_array_equal(current.xData, loaded["one_d"].surface.x)
    assert current.opts["pen"].widthF() > other.opts["pen"].widthF()  # the current one stands out
    assert view3d.shown is None and "1D" in view3d.message  # the 2D surface does not linger

    state.set_current(loaded["line"])  # a computed line: its own distance axis, alone
    assert set(view.items) == {f"file:{files['line']}"}
    assert "distance" in view.plot.getAxis("bottom").labelString()
    assert view3d.shown is None and "1D" in view3d.message

    state.set_current(loaded["a"])
    assert set(view.items) == {"live", "pin:a", f"file:{files['line']}"}
    assert view3d.shown is loaded["a"] and view3d.message == ""
    state.set_current(None)
    assert view3d.shown is None and view3d.message.startswith("Open a 2D surface")


def test_3d_view_without_a_state_is_driven_by_its_methods(qtbot) -> None:
    view = Surface3DView()
    qtbot.addWidget(view)
    assert view.state is None and view.shown is None
    x, y = np.linspace(-1, 1, 5), np.linspace(-1, 1, 4)
    view.set_surface(x, y, np.add.outer(y, x), (0.0, 1.0), pg.colormap.get("viridis"))
    view.set_slice(((-1.0, 0.0), (1.0, 0.0)))
    assert view.message == ""
    view.clear("nothing here")
    assert view.message == "nothing here"
    view.reset_camera()  # no camera without OpenGL: nothing to do, nothing raised


# -- the 3D view on real OpenGL, under Xvfb ------------------------------------------------------------

GL_SCRIPT = textwrap.dedent(
    r"""
    import json, sys, time
    import numpy as np
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QImage, QMouseEvent
    from PySide6.QtOpenGLWidgets import QOpenGLWidget
    from PySide6.QtWidgets import QApplication
    from landscape_gui.state import AppState, Landscape
    from landscape_gui.views.surface3d import Surface3DView

    grid_path, one_d_path, out = sys.argv[1:4]
    app = QApplication(sys.argv)
    state = AppState()
    view = Surface3DView(state)
    report = {"available": view.available, "empty_message": view.message}

    def settle():
        for _ in range(6):
            app.processEvents()
            time.sleep(0.02)

    def save(name):
        settle()
        view.grab_image().save(f"{out}/{name}.png")

    view.resize(360, 640)  # a tall panel, as the main window's right-hand side
    view.show()
    settle()
    state.add(Landscape.open(grid_path))
    state.view.slice = ((-1.0, -0.6), (1.0, 0.6))
    save("tall")
    gl = view.findChild(QOpenGLWidget)
    fitted = gl.cameraParams()
    view.resize(800, 360)  # the panel changes shape: the untouched camera fits it again
    save("wide")
    report["refit_on_resize"] = gl.cameraParams()["distance"] != fitted["distance"]
    fitted = gl.cameraParams()
    state.view.slice = None
    save("no_slice")
    state.view.slice = ((-1.0, 0.6), (1.0, -0.6))
    save("other_slice")
    state.view.slice = ((-1.0, -0.6), (1.0, 0.6))

    # the user rotates by dragging: the camera stays where they put it, even when the panel resizes
    def mouse(kind, x, y, buttons):
        event = QMouseEvent(kind, QPointF(x, y), QPointF(x, y), Qt.MouseButton.LeftButton, buttons,
                            Qt.KeyboardModifier.NoModifier)
        app.sendEvent(gl, event)

    mouse(QEvent.Type.MouseButtonPress, 300, 200, Qt.MouseButton.LeftButton)
    mouse(QEvent.Type.MouseMove, 420, 240, Qt.MouseButton.LeftButton)
    mouse(QEvent.Type.MouseButtonRelease, 420, 240, Qt.MouseButton.NoButton)
    rotated = gl.cameraParams()
    report["rotated"] = rotated != fitted
    view.resize(800, 380)
    settle()
    report["kept_after_resize"] = gl.cameraParams() == rotated
    save("rotated")
    view.resize(800, 360)
    report["reset_button"] = [view.reset_button.isVisible(), view.reset_button.text()]
    report["button_in_corner"] = view.reset_button.geometry().right() > gl.width() - 40 and view.reset_button.y() < 40
    view.reset_button.click()
    report["reset"] = gl.cameraParams() == fitted
    save("reset")

    state.view.colormap = "plasma"
    save("plasma")
    state.view.colormap = "viridis"
    state.view.metric = "train_acc"
    save("other_metric")
    state.view.metric = "train_loss"

    state.add(Landscape.open(one_d_path))  # a 1D surface becomes current
    save("one_d")
    report["one_d_message"] = view.message
    print(json.dumps(report))
    sys.stdout.flush()
    """
)


def _image(path: Path) -> np.ndarray:
    image = QImage(str(path))
    assert not image.isNull(), f"{path} is not an image"
    return rgb(image)


def _lit(pixels: np.ndarray) -> np.ndarray:
    """Pixels that are not the black background (floor, grid, surface, text)."""
    return pixels.max(axis=2) > 20


def _white(pixels: np.ndarray) -> np.ndarray:
    return pixels.min(axis=2) > 215


def _colormap_pixels(pixels: np.ndarray, name: str) -> int:
    lut = surface3d.colormap_lut(pg.colormap.get(name))[::4, :3] * 255.0
    sample = pixels[::2, ::2].reshape(-1, 3).astype(np.float32)
    distance = np.linalg.norm(sample[:, None, :] - lut[None, :, :], axis=2).min(axis=1)
    return int((distance < 10).sum())


def test_3d_view_follows_the_state_on_real_opengl(files, tmp_path: Path) -> None:
    report = run_under_xvfb(GL_SCRIPT, tmp_path, str(files["a"]), str(files["one_d"]), str(tmp_path))
    assert report["available"] is True
    assert report["empty_message"].startswith("Open a 2D surface")

    # Fitted to the panel, tall or wide: the box spans most of the limiting side and nothing is cut off.
    for name, side in (("tall", 1), ("wide", 0)):
        pixels = _image(tmp_path / f"{name}.png")
        rows, cols = np.nonzero(_lit(pixels))
        extent = (np.ptp(rows) + 1, np.ptp(cols) + 1)
        size = pixels.shape[:2]
        assert extent[side] >= 0.8 * size[side], (name, extent, size)
        assert rows.min() > 0 and cols.min() > 0 and rows.max() < size[0] - 1 and cols.max() < size[1] - 1, name
    assert report["refit_on_resize"] is True

    # The slice line is drawn on the surface (white) and moves with the state's slice.
    wide, bare, other = (_image(tmp_path / f"{n}.png") for n in ("wide", "no_slice", "other_slice"))
    line = _white(wide) & ~_white(bare)
    moved = _white(other) & ~_white(bare)
    assert line.sum() > 150, f"slice line: {line.sum()} white pixels"
    assert moved.sum() > 150 and (line & moved).sum() < 0.3 * line.sum()

    # Reset view: a visible button brings back the fitted camera the user had rotated away from.
    assert report["rotated"] is True and report["kept_after_resize"] is True
    assert report["reset_button"] == [True, "Reset view"] and report["button_in_corner"] is True
    assert report["reset"] is True
    rotated, reset = _image(tmp_path / "rotated.png"), _image(tmp_path / "reset.png")
    assert np.abs(reset - wide).mean() < 1.0 and np.abs(rotated[:360] - wide).mean() > 3.0

    # Colormap and metric come from the state.
    assert _colormap_pixels(_image(tmp_path / "plasma.png"), "plasma") > 3 * _colormap_pixels(
        _image(tmp_path / "plasma.png"), "viridis")
    assert np.abs(_image(tmp_path / "other_metric.png") - wide).mean() > 3.0

    # A 1D surface current: the 2D surface is gone, and the view says why.
    one_d = _image(tmp_path / "one_d.png")
    assert _colormap_pixels(one_d, "viridis") < 20 and _colormap_pixels(wide, "viridis") > 500
    assert "1D" in report["one_d_message"] and _lit(one_d).sum() > 50  # the message is drawn
