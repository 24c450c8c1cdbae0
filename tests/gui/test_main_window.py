"""The main window with real widgets and real files: open, drag, export, compute, cancel, resume."""

from __future__ import annotations

import csv
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtWidgets import QApplication

from engine.display.levels import display_values
from landscape_gui.figure_export import export_figure
from engine.io.store import read_surface
from engine.jobs.surface import SurfaceJob, SurfaceRequest
from tests.conftest import ROOT, run_cli_env, run_until, writer_lock_held_elsewhere
from tests.gui.conftest import affine


# -- helpers ---------------------------------------------------------------------------------------
def _mouse(widget, kind: QEvent.Type, pos: QPoint, button=Qt.LeftButton, buttons=Qt.LeftButton) -> None:
    """Send one mouse event to a graphics view's viewport (where pyqtgraph listens)."""
    viewport = widget.viewport()
    event = QMouseEvent(kind, QPointF(pos), QPointF(viewport.mapToGlobal(pos)), button, buttons, Qt.NoModifier)
    QApplication.sendEvent(viewport, event)


def _view_to_widget(heatmap, x: float, y: float) -> QPoint:
    scene = heatmap.map_to_scene(x, y)
    return heatmap.mapFromScene(scene)


def _distinct_colors(image: QImage, step: int = 7) -> int:
    colors = {image.pixel(i, j) for i in range(0, image.width(), step) for j in range(0, image.height(), step)}
    return len(colors)


def _compute(case: dict[str, str], out: Path, **extra) -> Path:
    request = SurfaceRequest(checkpoint=case["checkpoint"], model=case.get("model"), data=case["data"],
                             x="-1:1:11", y="-1:1:9", out=str(out), **extra)
    list(SurfaceJob(request).run())
    return out


# -- opening ---------------------------------------------------------------------------------------
def test_open_grid_puts_file_values_on_their_coordinates(window, affine_surface):
    landscape = window.open_grid(affine_surface)
    assert window.state.current is landscape
    surface = read_surface(affine_surface)
    heatmap = window.heatmap
    expected = display_values(surface.values["train_loss"], surface.done, window.state.view.scale)
    np.testing.assert_array_equal(heatmap.image.image, expected)
    # Each grid node (x[i], y[j]) falls inside image pixel (i, j).
    for i, j in ((0, 0), (40, 32), (7, 25), (20, 16)):
        pixel = heatmap.image.mapFromParent(QPointF(surface.x[i], surface.y[j]))
        assert (int(np.floor(pixel.x())), int(np.floor(pixel.y()))) == (i, j)
    expected_levels = landscape.grid("train_loss").levels(window.state.view.scale)
    assert tuple(heatmap.image.getLevels()) == pytest.approx(expected_levels)  # explicit levels, not auto
    assert str(Path(affine_surface).resolve()) in window.settings.recent_files()


def test_open_li_file_shows_its_grid_with_the_missing_point(window, li_surface):
    landscape = window.open_grid(li_surface)
    assert landscape.surface.format == "li2018"
    assert landscape.surface.done.sum() == landscape.surface.done.size - 1
    status = window.heatmap.status_image.image
    missing = ~landscape.surface.done
    assert (status[missing] == 1).all()  # the point Li et al.'s run never computed is shown as pending
    assert (status == 1).sum() <= 5  # veiled with its neighbours at most (engine.display.levels.veil_codes)
    assert not window.errors


def test_corrupt_file_shows_a_one_line_error_and_keeps_what_is_open(window, affine_surface, tmp_path):
    window.open_grid(affine_surface)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 50)
    assert window.open_grid(corrupt) is None
    message, details = window.errors[-1]
    assert "corrupt" in message and "\n" not in message and details
    assert window.error_box is not None and window.error_box.isVisible()
    assert [l.path for l in window.state.landscapes] == [affine_surface]
    window.open_paths([tmp_path / "missing.pt"])
    assert "no such checkpoint" in window.errors[-1][0]


# -- the slice line ----------------------------------------------------------------------------------
def test_dragging_the_slice_end_updates_the_profile_live(window, affine_surface, request):
    import pyqtgraph as pg

    # pyqtgraph's scene drops mouse moves closer together than its rate limit; a test sends them at once.
    rate = pg.getConfigOption("mouseRateLimit")
    pg.setConfigOption("mouseRateLimit", -1)
    request.addfinalizer(lambda: pg.setConfigOption("mouseRateLimit", rate))
    window.open_grid(affine_surface)
    heatmap = window.heatmap
    surface = read_surface(affine_surface)
    start, end = window.state.view.slice
    assert start == (-1.0, surface.y[16]) and end == (1.0, surface.y[16])
    # At grid nodes (a horizontal slice through row 16) the profile is the grid row itself.
    np.testing.assert_allclose(window.profile.last_profile.values["train_loss"][::5], surface.values["train_loss"][16],
                               rtol=1e-12)

    press = _view_to_widget(heatmap, *end)
    _mouse(heatmap, QEvent.MouseButtonPress, press)
    target = (0.6, 0.5)
    halfway = _view_to_widget(heatmap, 0.8, 0.25)
    _mouse(heatmap, QEvent.MouseMove, halfway, button=Qt.NoButton)
    moving = window.state.view.slice[1]
    assert moving[0] == pytest.approx(0.8, abs=0.02) and moving[1] == pytest.approx(0.25, abs=0.02)
    live = window.profile.last_profile  # already redrawn while the button is still down
    assert live.xs[-1] == pytest.approx(moving[0])
    _mouse(heatmap, QEvent.MouseMove, _view_to_widget(heatmap, *target), button=Qt.NoButton)
    _mouse(heatmap, QEvent.MouseButtonRelease, _view_to_widget(heatmap, *target), buttons=Qt.NoButton)

    new_start, new_end = window.state.view.slice
    assert new_start == pytest.approx(start)
    assert new_end[0] == pytest.approx(target[0], abs=0.02) and new_end[1] == pytest.approx(target[1], abs=0.02)
    profile = window.profile.last_profile
    assert (profile.xs[-1], profile.ys[-1]) == pytest.approx(new_end)
    # The profile is the grid's own values along the dragged line (exact for an affine loss).
    expected = 3.0 + 1.5 * profile.xs - 0.75 * profile.ys  # affine(), point by point
    np.testing.assert_allclose(profile.values["train_loss"], expected, rtol=1e-12)
    drawn = window.profile.items["live"][0]
    np.testing.assert_allclose(drawn.yData, profile.values["train_loss"])


def test_state_driven_slice_moves_the_handles_and_the_profile(window, affine_surface):
    window.open_grid(affine_surface)
    surface = read_surface(affine_surface)
    window.state.view.slice = ((surface.x[10], surface.y[0]), (surface.x[10], surface.y[-1]))
    profile = window.profile.last_profile
    np.testing.assert_allclose(profile.values["train_loss"], affine(np.array([surface.x[10]]), profile.ys)[:, 0],
                               rtol=1e-12)
    np.testing.assert_allclose(profile.values["train_loss"][[0, -1]], surface.values["train_loss"][[0, -1], 10])
    handle_ends = window.heatmap.slice_endpoints()
    assert handle_ends[0] == pytest.approx((surface.x[10], surface.y[0]))
    assert handle_ends[1] == pytest.approx((surface.x[10], surface.y[-1]))


def test_hover_reports_the_nearest_grid_point(window, affine_surface):
    window.open_grid(affine_surface)
    surface = read_surface(affine_surface)
    window.show_hover(surface.x[5] + 0.001, surface.y[3] - 0.002)
    text = window.hover_label.text()
    assert f"train_loss {surface.values['train_loss'][3, 5]:.6g}" in text
    assert "train_acc" in text


# -- display choices never recompute data ---------------------------------------------------------
def test_colormap_scale_and_color_limit_changes_never_recompute_the_data(window, affine_surface, monkeypatch):
    import engine.display.levels

    calls = []
    original = engine.display.levels.display_values
    monkeypatch.setattr(engine.display.levels, "display_values", lambda *a: calls.append(a[2]) or original(*a))
    landscape = window.open_grid(affine_surface)
    assert calls == ["log"]
    lut_before = window.heatmap.image.lut
    window.state.view.colormap = "plasma"
    assert window.heatmap.image.lut is not lut_before
    window.state.view.color_limits = "percentiles"
    window.state.view.percentile_high = 90
    low, high = window.heatmap.image.getLevels()
    assert high == pytest.approx(np.percentile(landscape.grid("train_loss").image("log"), 90), rel=1e-6)
    window.state.view.scale = "linear"
    window.state.view.scale = "log"
    window.state.view.scale = "linear"
    assert calls == ["log", "linear"]  # each scale computed once, then swapped in from the cache
    assert window.heatmap.image.image.dtype == np.float32 and window.heatmap.image.image.flags.c_contiguous


# -- export ---------------------------------------------------------------------------------------
def test_export_png_svg_hdf5_csv_vtp(window, affine_surface, tmp_path):
    window.open_grid(affine_surface)
    png = export_figure(window.heatmap, tmp_path / "fig.png", 1200, 800)
    image = QImage(str(png))
    assert (image.width(), image.height()) == (1200, 800)
    assert _distinct_colors(image) > 30
    svg = export_figure(window.heatmap, tmp_path / "fig.svg")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and any(el.tag.endswith("image") for el in root.iter())
    h5 = window.export_grid(tmp_path / "copy.h5")
    again = read_surface(h5)
    original = read_surface(affine_surface)
    np.testing.assert_array_equal(again.values["train_loss"], original.values["train_loss"])
    np.testing.assert_array_equal(again.x, original.x)
    rows = list(csv.DictReader(open(window.export_grid(tmp_path / "grid.csv"))))
    assert len(rows) == 41 * 33
    row = rows[3 * 41 + 5]
    assert float(row["x"]) == original.x[5] and float(row["y"]) == original.y[3]
    assert float(row["train_loss"]) == original.values["train_loss"][3, 5]
    vtp = ET.parse(window.export_grid(tmp_path / "grid.vtp")).getroot()
    piece = next(el for el in vtp.iter() if el.tag == "Piece")
    assert int(piece.get("NumberOfPoints")) == 41 * 33 and int(piece.get("NumberOfPolys")) == 40 * 32
    assert not window.errors
    assert window.export_grid(tmp_path / "grid.xyz") is None and "ending in .h5" in window.errors[-1][0]


# -- computing in the window ------------------------------------------------------------------------
def test_job_progress_cancel_then_reopen_resumes_to_completion(window, regression_case, tmp_path, qtbot):
    out = tmp_path / "job.h5"
    request = SurfaceRequest(checkpoint=regression_case["checkpoint"], model=regression_case["model"],
                             data=regression_case["data"], x="-1:1:31", y="-1:1:31", out=str(out),
                             flush_seconds=1e-5)
    steps = []
    window.runner.progressed.connect(lambda _r, p: steps.append(p.done) or (len(steps) == 3 and window.runner.cancel_current()))
    with qtbot.waitSignal(window.runner.cancelled, timeout=30000):
        window.submit(request)
    assert not window.errors
    assert window.state.find(out) is not None and len(steps) >= 3
    first = read_surface(out)
    saved = int(first.done.sum())
    assert 0 < saved < 31 * 31
    # The window kept every point it was shown: the open landscape agrees with the file.
    landscape = window.state.find(out)
    assert int(landscape.surface.done.sum()) == saved
    window.close_current()
    assert window.state.find(out) is None

    with qtbot.waitSignal(window.runner.finished, timeout=60000):
        window.open_grid(out)  # a partial file this window wrote resumes at once
    final = read_surface(out)
    assert final.done.all()
    fresh = tmp_path / "fresh.h5"
    list(SurfaceJob(SurfaceRequest(checkpoint=regression_case["checkpoint"], model=regression_case["model"],
                                   data=regression_case["data"], x="-1:1:31", y="-1:1:31", out=str(fresh))).run())
    np.testing.assert_allclose(final.values["train_loss"], read_surface(fresh).values["train_loss"], rtol=1e-6)
    qtbot.waitUntil(lambda: window.state.find(out).complete, timeout=5000)
    assert not window.errors


def test_close_surface_stops_only_its_own_job_and_the_queue_goes_on(window, regression_case, tmp_path, qtbot):
    outs = [tmp_path / f"w{k}.h5" for k in range(3)]
    requests = [SurfaceRequest(checkpoint=regression_case["checkpoint"], model=regression_case["model"],
                               data=regression_case["data"], x="-1:1:41", y="-1:1:41", out=str(out), seed=k,
                               flush_seconds=1e-5 if k == 0 else 0.5) for k, out in enumerate(outs)]
    with qtbot.waitSignal(window.runner.started, timeout=30000):
        for request in requests:
            window.submit(request)
    window.state.set_current(window.state.find(outs[0]))
    window.close_current()  # the first surface of the sweep, while it computes
    qtbot.waitUntil(lambda: not window.busy, timeout=120000)
    assert window.state.find(outs[0]) is None
    for out in outs[1:]:
        assert read_surface(out).done.all(), out  # the rest of the sweep was not dropped
    assert not window.errors


def test_a_partial_file_another_process_is_writing_is_shown_not_resumed(window, regression_case, tmp_path, qtbot):
    out = tmp_path / "partial.h5"
    run_until(SurfaceRequest(checkpoint=regression_case["checkpoint"], model=regression_case["model"],
                             data=regression_case["data"], x="-1:1:9", y="-1:1:9", out=str(out),
                             flush_seconds=1e-6), 10)
    with writer_lock_held_elsewhere(out) as pid:
        landscape = window.open_grid(out)
        assert landscape is not None and not landscape.complete
        assert not window.runner.busy and not window.runner.queue
        assert f"process {pid}" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.runner.finished, timeout=60000):
        window.resume_current()  # free now: resuming works
    assert read_surface(out).done.all()


def test_compute_slice_line_at_full_resolution_matches_the_grid_at_nodes(window, classification_case, tmp_path,
                                                                          qtbot):
    grid_path = _compute(classification_case, tmp_path / "grid.h5")
    window.open_grid(grid_path)
    grid = read_surface(grid_path)
    window.state.view.slice = ((-1.0, grid.y[4]), (1.0, grid.y[4]))
    with qtbot.waitSignal(window.runner.finished, timeout=60000):
        window.compute_slice_line()
    lines = [l for l in window.state.landscapes if l.is_line]
    assert len(lines) == 1
    loss_item, acc_item = window.profile.items[f"file:{lines[0].path}"]
    # 101 points from x=-1 to 1: every 10th is a grid node of row 4; x is the distance along the slice.
    np.testing.assert_allclose(loss_item.yData[::10], grid.values["train_loss"][4], rtol=1e-5)
    np.testing.assert_allclose(loss_item.xData[-1], 2.0)
    assert window.state.current.path == grid_path  # the 2D map stays in front
    np.testing.assert_allclose(acc_item.yData[::10], grid.values["train_acc"][4], rtol=1e-5)  # the right-hand axis
    assert window.profile.plot.getAxis("right").isVisible()


def test_a_finished_slice_line_file_opened_later_is_drawn(window, classification_case, tmp_path, qtbot):
    from engine.jobs.surface import line_request

    grid_path = _compute(classification_case, tmp_path / "grid.h5")
    request = line_request(grid_path, (-1.0, 0.0), (1.0, 0.0), points=21)
    list(SurfaceJob(request).run())
    window.open_grid(request.out)
    opened = window.state.find(request.out)
    assert opened is not None and opened.is_line and not window.runner.busy
    loss_item, _acc = window.profile.items[f"file:{opened.path}"]
    np.testing.assert_array_equal(loss_item.yData, read_surface(request.out).values["train_loss"])
    np.testing.assert_allclose(loss_item.xData, np.linspace(0, 2, 21))


def test_compare_tab_uses_one_color_scale(window, regression_case, tmp_path):
    a = _compute(regression_case, tmp_path / "a.h5")
    b = _compute(regression_case, tmp_path / "b.h5", seed=3)
    window.open_grid(a)
    window.open_grid(b)
    window.tabs.setCurrentWidget(window.compare)  # the Compare tab is built when shown
    panels = window.compare.panels
    assert len(panels) == 2
    levels = {tuple(np.round(panel.image.getLevels(), 12)) for panel in panels}
    assert len(levels) == 1
    low, high = levels.pop()
    both = np.concatenate([read_surface(p).values["train_loss"].ravel() for p in (a, b)])
    assert low == pytest.approx(np.log10(both.min()), rel=1e-5)  # smooth surfaces: nothing clipped
    assert high == pytest.approx(np.log10(both.max()), rel=1e-5)
    figure = QImage(str(export_figure(window.compare, tmp_path / "compare.png", 900, 400)))
    assert (figure.width(), figure.height()) == (900, 400) and _distinct_colors(figure) > 30


def test_settings_persist_between_windows(window, affine_surface, qtbot, tmp_path):
    from landscape_gui.main_window import MainWindow

    window.open_grid(affine_surface)
    window.state.view.colormap = "magma"
    window.state.view.color_limits = "percentiles"
    window.state.view.percentile_high = 95.0
    window.state.view.value_min = 1e-3
    window.close()
    again = MainWindow(settings=window.settings)
    qtbot.addWidget(again)
    view = again.state.view
    assert view.colormap == "magma" and view.color_limits == "percentiles" and view.percentile_high == 95.0
    assert view.value_min == 1e-3
    assert again.settings.recent_files()[0] == str(Path(affine_surface).resolve())


# -- first launch and the screenshot command ---------------------------------------------------------
def test_first_launch_trains_the_sample_and_fills_in_its_surface(window, qtbot, tmp_path, monkeypatch):
    from landscape_gui.first_launch import start_sample
    from landscape_gui.first_run import FirstRun

    run = FirstRun(folder=tmp_path / "cache" / "mlp-sine", options={"width": 10, "epochs": 100})
    seen = []
    window.runner.progressed.connect(lambda _r, p: seen.append(p.done))
    finished = []
    window.runner.finished.connect(lambda *_: finished.append(True))
    said = []  # what the map was told to say, in order (however fast each step is)
    set_status = window.heatmap.set_status
    busy_bars = []  # a busy (animated) bar repaints the GL window every frame: never shown
    monkeypatch.setattr(window.heatmap, "set_status", lambda text, *a: said.append(text) or busy_bars.append(
        text is not None and (len(a) < 2 or a[1] is None)) or set_status(text, *a))
    start_sample(window, run)
    assert window.heatmap.notice.text() == "Training the sample model… then computing its surface"
    qtbot.waitUntil(lambda: bool(finished or window.errors), timeout=120000)
    assert not window.errors
    assert window.heatmap.notice.text() == ""  # the picture is there: no message over it
    steps = [text for k, text in enumerate(said) if k == 0 or text != said[k - 1]]
    assert steps == ["Training the sample model… then computing its surface",
                     "Computing the sample's loss surface…", None]
    assert not any(busy_bars)
    assert not run.needs_training()
    landscape = window.state.current
    assert landscape is not None and landscape.path == run.surface and landscape.complete
    assert seen and seen[-1] == landscape.surface.done.size
    centre = landscape.surface.values["train_loss"][50, 50]
    recorded = __import__("json").loads(landscape.surface.attrs["checkpoint_metadata"])["train_loss"]
    assert centre == pytest.approx(recorded, rel=1e-4)
    # Second launch: nothing is trained or computed again, the finished file just opens.
    window.close_current()
    start_sample(window, run)
    assert window.state.current.path == run.surface and not window.runner.busy


def test_screenshot_command_writes_a_png_of_the_requested_size(affine_surface, tmp_path):
    out = tmp_path / "shot.png"
    result = subprocess.run(
        [sys.executable, "-m", "landscape_gui", "--screenshot", str(out), "--size", "1000x700",
         "--settings", str(tmp_path / "s.ini"), str(affine_surface)],
        cwd=ROOT, env={**run_cli_env(), "QT_QPA_PLATFORM": "offscreen"}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1000, 700)
    assert _distinct_colors(image, step=5) > 50


def test_screenshot_of_a_corrupt_file_exits_nonzero_with_one_line(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5")
    result = subprocess.run(
        [sys.executable, "-m", "landscape_gui", "--screenshot", str(tmp_path / "x.png"), "--settings",
         str(tmp_path / "s.ini"), str(bad)],
        cwd=ROOT, env={**run_cli_env(), "QT_QPA_PLATFORM": "offscreen"}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("landscape-gui: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr


def test_open_several_checkpoints_queues_one_surface_each_with_the_same_settings(window, qtbot, tmp_path,
                                                                                monkeypatch):
    """The width sweep: two self-describing checkpoints, one Compute dialog, two surfaces compared."""
    from landscape_gui.dialogs.compute_dialog import ComputeDialog
    from samples.registry import train

    runs = [train("mlp-sine", tmp_path / f"w{w}", seed=0, width=w, epochs=20) for w in (10, 30)]
    shown = []

    def fill_and_accept(dialog: ComputeDialog) -> int:
        shown.append(dialog)
        dialog.set_values(x="-1:1:7", y="-1:1:5", seed=2)
        return 1

    monkeypatch.setattr(ComputeDialog, "exec", fill_and_accept)
    done = []
    window.runner.finished.connect(lambda request, _s: done.append(request))
    window.open_checkpoints([runs[0].checkpoints[0], runs[1].checkpoints[0]])
    qtbot.waitUntil(lambda: len(done) == 2 or bool(window.errors), timeout=60000)
    assert not window.errors and len(shown) == 1
    outs = {Path(r.out) for r in done}
    assert len(outs) == 2 and all(out.parent in (tmp_path / "w10", tmp_path / "w30") for out in outs)
    widths = set()
    for out in outs:
        surface = read_surface(out)
        assert surface.shape == (5, 7) and surface.done.all() and surface.attrs["seed"] == 2
        widths.add(__import__("json").loads(surface.attrs["checkpoint_metadata"])["width"])
    assert widths == {10, 30}
    window.tabs.setCurrentWidget(window.compare)
    assert len(window.compare.panels) == 2


def test_open_1d_surfaces_are_overlaid_in_the_profile_view(window, regression_case, tmp_path):
    outs = []
    for seed in (0, 1):
        out = tmp_path / f"line{seed}.h5"
        list(SurfaceJob(SurfaceRequest(checkpoint=regression_case["checkpoint"], model=regression_case["model"],
                                       data=regression_case["data"], x="-1:1:21", out=str(out), seed=seed)).run())
        outs.append(out)
        window.open_grid(out)
    keys = [k for k in window.profile.items if k.startswith("file:")]
    assert sorted(keys) == sorted(f"file:{p}" for p in outs)
    for path in outs:
        drawn = window.profile.items[f"file:{path}"][0]
        np.testing.assert_allclose(drawn.yData, read_surface(path).values["train_loss"])
    assert window.heatmap.notice.text() == "1D surface: see the profile below"
    assert not window.heatmap.plot.isVisible()  # no stale image, contours or color bar of an earlier 2D map


def test_closing_the_window_mid_job_keeps_every_computed_point(qtbot, regression_case, tmp_path):
    from PySide6.QtCore import QSettings

    from landscape_gui.main_window import MainWindow
    from landscape_gui.settings import AppSettings

    win = MainWindow(settings=AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)))
    qtbot.addWidget(win)
    out = tmp_path / "closing.h5"
    request = SurfaceRequest(checkpoint=regression_case["checkpoint"], model=regression_case["model"],
                             data=regression_case["data"], x="-1:1:41", y="-1:1:41", out=str(out), flush_seconds=1e-5)
    shown = []
    win.runner.progressed.connect(lambda _r, p: shown.append(p.done))
    win.submit(request)
    qtbot.waitUntil(lambda: len(shown) >= 3, timeout=30000)
    win.close()  # cancels the job and waits for it
    assert not win.runner.busy or not win.runner.worker.isRunning()
    saved = read_surface(out)
    assert shown[-1] <= saved.done.sum() < 41 * 41
    fresh = tmp_path / "fresh.h5"
    list(SurfaceJob(SurfaceRequest(checkpoint=regression_case["checkpoint"], model=regression_case["model"],
                                   data=regression_case["data"], x="-1:1:41", y="-1:1:41", out=str(fresh))).run())
    np.testing.assert_allclose(saved.values["train_loss"][saved.done], read_surface(fresh).values["train_loss"][saved.done],
                               rtol=1e-6)
    assert np.isnan(saved.values["train_loss"][~saved.done]).all()


def test_closing_the_window_while_a_job_loads_its_data_stops_the_loading(qtbot, regression_case, tmp_path):
    """Cancel reaches a job's set-up: a slow load that checks for it ends at once, nothing is written."""
    from PySide6.QtCore import QSettings

    from landscape_gui.main_window import MainWindow
    from landscape_gui.settings import AppSettings

    marker = tmp_path / "loading"
    slow = tmp_path / "slow_data.py"
    slow.write_text(
        "import pathlib, time\nimport numpy as np\nfrom engine.cancel import raise_if_cancelled\n"
        f"def load():\n    pathlib.Path({str(marker)!r}).write_text('started')\n"
        "    for _ in range(6000):  # a minute of 'reading', checking for cancel as real loading does\n"
        "        raise_if_cancelled()\n        time.sleep(0.01)\n"
        f"    pathlib.Path({str(marker)!r}).write_text('finished')\n"
        f"    d = np.load({regression_case['data']!r})\n    return d['x'], d['y']\n")
    win = MainWindow(settings=AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat)))
    qtbot.addWidget(win)
    out = tmp_path / "never.h5"
    win.submit(SurfaceRequest(checkpoint=regression_case["checkpoint"], model=regression_case["model"],
                              data=f"{slow}:load", x="-1:1:5", out=str(out)))
    qtbot.waitUntil(lambda: marker.exists(), timeout=30000)
    win.close()  # cancels the job during its set-up and waits for its thread
    assert marker.read_text() == "started"  # the loading stopped instead of running to its end
    assert not out.exists() and not win.errors


def test_plain_state_dict_asks_for_the_model_then_computes(window, regression_case, tmp_path, qtbot, monkeypatch):
    """Open Checkpoint on a file that does not say its architecture: the model dialog comes first."""
    from landscape_gui.dialogs.compute_dialog import ComputeDialog
    from landscape_gui.dialogs.model_dialog import ModelDialog

    asked = []

    def answer_model(dialog: ModelDialog) -> int:
        asked.append(dialog)
        dialog.set_values(model=regression_case["model"], data=regression_case["data"])
        return 1 if dialog.check() else 0

    monkeypatch.setattr(ModelDialog, "exec", answer_model)
    monkeypatch.setattr(ComputeDialog, "exec", lambda d: d.set_values(x="-1:1:5", y="-1:1:5") or 1)
    with qtbot.waitSignal(window.runner.finished, timeout=60000) as finished:
        window.open_checkpoints([Path(regression_case["checkpoint"])])
    assert len(asked) == 1 and not window.errors
    out = Path(finished.args[0].out)
    assert out.parent == Path(regression_case["checkpoint"]).parent
    assert read_surface(out).done.all() and window.state.current.path == out


def test_train_sample_menu_trains_then_opens_the_checkpoint_for_a_surface(window, tmp_path, qtbot, monkeypatch):
    from landscape_gui.dialogs.compute_dialog import ComputeDialog
    from landscape_gui.dialogs.train_dialog import TrainSampleDialog

    def train_now(dialog: TrainSampleDialog) -> int:
        dialog.set_values(recipe="mlp-sine", seed=1, out=str(tmp_path / "trained"), width=10, epochs=30)
        assert dialog.start()
        qtbot.waitUntil(lambda: not dialog.is_training(), timeout=60000)
        return 1

    monkeypatch.setattr(TrainSampleDialog, "exec", train_now)
    monkeypatch.setattr(ComputeDialog, "exec", lambda d: d.set_values(x="-1:1:5", y="-1:1:5") or 1)
    with qtbot.waitSignal(window.runner.finished, timeout=60000) as finished:
        window.train_sample_dialog()
    surface = read_surface(finished.args[0].out)
    assert surface.done.all() and not window.errors
    assert __import__("json").loads(surface.attrs["checkpoint_metadata"])["width"] == 10
    assert window.settings.last_folder("samples") == str(tmp_path)


def test_hovering_the_map_shows_the_point_under_the_mouse(window, affine_surface, request):
    import pyqtgraph as pg

    rate = pg.getConfigOption("mouseRateLimit")
    pg.setConfigOption("mouseRateLimit", -1)
    request.addfinalizer(lambda: pg.setConfigOption("mouseRateLimit", rate))
    window.open_grid(affine_surface)
    surface = read_surface(affine_surface)
    pos = _view_to_widget(window.heatmap, surface.x[12], surface.y[20])
    _mouse(window.heatmap, QEvent.MouseMove, pos, button=Qt.NoButton, buttons=Qt.NoButton)
    text = window.hover_label.text()
    assert f"x {surface.x[12]:.4g}, y {surface.y[20]:.4g}" in text
    assert f"train_loss {surface.values['train_loss'][20, 12]:.6g}" in text


def test_nonfinite_points_are_masked_and_reported(window, tmp_path):
    from engine.display.levels import NONFINITE, PENDING
    from engine.io.store import Surface, write_surface

    x = np.linspace(-1, 1, 9)
    y = np.linspace(-1, 1, 7)
    loss = 1.0 + x[None, :] ** 2 + y[:, None] ** 2
    loss[2, 3] = np.inf
    loss[4, 4] = np.nan
    done = np.ones(loss.shape, bool)
    done[6, 8] = False
    loss[6, 8] = np.nan
    path = write_surface(tmp_path / "diverged.h5", Surface(path=tmp_path / "src.h5", format="landscape", x=x, y=y,
                                                          values={"train_loss": loss}, done=done, attrs={}))
    window.open_grid(path, resume=False)
    status = window.heatmap.status_image.image
    assert status[2, 3] == NONFINITE and status[4, 4] == NONFINITE and status[6, 8] == PENDING
    shown = window.heatmap.image.image
    assert np.isnan(shown[2, 3]) and np.isnan(shown[4, 4]) and np.isfinite(shown[0, 0])
    low, high = window.heatmap.image.getLevels()
    assert np.isfinite(low) and np.isfinite(high)
    window.show_hover(x[3], y[2])
    assert "train_loss inf" in window.hover_label.text()
    window.show_hover(x[8], y[6])
    assert "not computed yet" in window.hover_label.text()


def test_a_bug_in_a_slot_becomes_an_error_dialog(window):
    from landscape_gui.app import install_error_hook

    previous = sys.excepthook
    try:
        install_error_hook(window)
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            sys.excepthook(*sys.exc_info())
    finally:
        sys.excepthook = previous
    message, details = window.errors[-1]
    assert message == "ValueError: boom second line" and "Traceback" in details
