"""Mode connectivity in the app, with real checkpoints and real path jobs: the dialog, the Path tab while a
job trains and evaluates, the barrier table, opening and exporting a path file, a cancelled job, and the
overlay a mode-connectivity plane draws on the map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication

import engine
from engine.display.paths import (
    BARRIER_COLUMNS,
    error_values,
    format_number,
    series_label,
)
from engine.io.store import Overlay, Surface, read_surface, write_surface
from engine.io.store.paths import read_path
from engine.jobs.path import PathRequest
from landscape_gui.dialogs.path_dialog import PathDialog
from landscape_gui.figure_export import export_figure, render_image
from landscape_gui.views.heatmap import PATH_RESULT

POINTS = 11


# -- files made by the real engine, once per module ------------------------------------------------------
@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, Path]:
    """Two mlp-sine models trained from two seeds (the mlp-sine-pair recipe): A, B and their data."""
    from samples.registry import train

    out = tmp_path_factory.mktemp("pair")
    train("mlp-sine-pair", out)
    files = {"a": out / "a" / "model.pt", "b": out / "b" / "model.pt", "train": out / "a" / "train.npz",
             "test": out / "a" / "test.npz", "dir": out}
    assert all(p.exists() for p in files.values())
    return files


@pytest.fixture(scope="module")
def written_path(pair, tmp_path_factory) -> Path:
    """A finished path file with all three series (straight, aligned straight, a trained Bezier curve) and test data."""
    out = tmp_path_factory.mktemp("written") / "bezier.h5"
    engine.path(pair["a"], pair["b"], pair["train"], test_data=str(pair["test"]), curve="bezier", epochs=2,
                points=POINTS, align="weight-matching", out=out, progress=False)
    return out


def _drawn(view, series: str, value: str) -> tuple[np.ndarray, np.ndarray]:
    return _data(view.curves[(series, value)])


def _data(item) -> tuple[np.ndarray, np.ndarray]:
    """An item's data as given (getData() would give it log-transformed on a log axis)."""
    x, y = item.xData, item.yData
    return (np.zeros(0), np.zeros(0)) if x is None else (np.asarray(x), np.asarray(y))


def _assert_view_shows(view, path: Path) -> None:
    """Every series and value of the file is drawn at exactly its computed points."""
    result = read_path(path)
    assert {s for s, _v in view.curves} == set(result.series)
    for series, data in result.series.items():
        for value in data.values:
            drawn = value if value.endswith("_loss") else value[: -len("acc")] + "error"
            expected = data.values[value] if value.endswith("_loss") else error_values(data.values[value])
            x, y = _drawn(view, series, drawn)
            np.testing.assert_array_equal(x, result.t[data.done])
            np.testing.assert_allclose(y, expected[data.done], rtol=0, atol=0)


def _uniform(image: QImage) -> bool:
    first = image.pixel(0, 0)
    return all(image.pixel(i, j) == first for i in range(0, image.width(), 5) for j in range(0, image.height(), 5))


# -- the dialog ---------------------------------------------------------------------------------------------
def test_dialog_builds_the_path_request_of_its_widgets(qtbot, pair, tmp_path):
    dialog = PathDialog(pair["a"])
    qtbot.addWidget(dialog)
    # prefilled as File ▸ Open Checkpoint prefills: B beside A, A's factory, kwargs, training and test data
    assert Path(dialog.b_edit.text()) == pair["b"]
    assert dialog.model_edit.text() == "engine.builtin.models:mlp"
    assert json.loads(dialog.kwargs_edit.text())["width"] == 50
    assert dialog.data_edit.text() == "sample:sine" and dialog.test_edit.text() == "sample:sine-test"
    assert Path(dialog.out_edit.text()).parent == pair["dir"]
    # the user's choices, through the widgets themselves
    dialog.curve.setCurrentIndex(dialog.curve.findData("polychain"))
    dialog.bends.setValue(2)
    dialog.epochs.setValue(3)
    dialog.lr.setValue(0.05)
    dialog.optimizer.setCurrentText("adam")
    dialog.batch_size.setValue(16)
    dialog.points.setValue(POINTS)
    dialog.t_min.setValue(-0.2)
    dialog.align.setCurrentIndex(dialog.align.findData("weight-matching"))
    dialog.bn.setCurrentIndex(dialog.bn.findData("off"))
    dialog.seed.setValue(7)
    dialog.data_edit.setText(str(pair["train"]))
    dialog.test_edit.setText("")
    out = tmp_path / "chosen.h5"
    dialog.out_edit.selectAll()
    qtbot.keyClicks(dialog.out_edit, str(out))  # typed: the name no longer follows the settings
    dialog.curve.setCurrentIndex(dialog.curve.findData("bezier"))
    dialog.curve.setCurrentIndex(dialog.curve.findData("polychain"))
    assert dialog.error_text() == "" and dialog.ok_button().isEnabled()
    request = dialog.request()
    assert request == PathRequest(
        a=str(pair["a"]), b=str(pair["b"]), data=str(pair["train"]), out=str(out), test_data=None,
        model="engine.builtin.models:mlp", model_kwargs=request.model_kwargs, curve="polychain", bends=2, epochs=3,
        lr=0.05, optimizer="adam", batch_size=16, points=POINTS, t_range=(-0.2, 1.0), align="weight-matching",
        bn_recompute="off", seed=7)
    assert request.model_kwargs == {"in_dim": 20, "width": 50, "depth": 2, "out_dim": 1}
    # a straight line trains nothing: its training fields are disabled and it has no bends
    dialog.curve.setCurrentIndex(dialog.curve.findData("linear"))
    assert not dialog.epochs.isEnabled() and not dialog.bends.isEnabled()
    assert dialog.request().curve == "linear" and dialog.request().bends is None
    # what cannot make a path is said inline and blocks Compute
    dialog.b_edit.setText(str(pair["a"]))
    assert "same checkpoint" in dialog.error_text() and not dialog.ok_button().isEnabled()
    dialog.b_edit.setText(str(pair["b"]))
    dialog.t_min.setValue(0.0)
    dialog.points.setValue(2)
    dialog.out_edit.setText(str(tmp_path / "chosen.txt"))
    assert ".h5" in dialog.error_text()


def test_check_model_builds_the_model_of_a(qtbot, pair):
    dialog = PathDialog(pair["a"], pair["b"])
    qtbot.addWidget(dialog)
    assert dialog.check() and "3,651 parameters" in dialog.model_note.text()
    dialog.kwargs_edit.setText("width=7")
    assert not dialog.check() and dialog.model_note.kind == "error"


# -- computing --------------------------------------------------------------------------------------------
def test_mode_connectivity_menu_runs_the_job_and_fills_the_path_tab_live(window, pair, qtbot, tmp_path, monkeypatch):
    out = tmp_path / "live.h5"

    def fill_and_accept(dialog: PathDialog) -> int:
        assert dialog.a_edit.text() == ""  # nothing open: the user chooses A (B follows it)
        dialog.set_values(a=pair["a"], data=str(pair["train"]), test_data=str(pair["test"]), curve="bezier", epochs=4,
                          batch_size=10, points=POINTS, align="weight-matching", out=out)
        return 1

    monkeypatch.setattr(PathDialog, "exec", fill_and_accept)
    statuses, training_points, training_shown, evaluated, drawn = [], [], [], {}, []

    def look(_request, progress) -> None:  # what the window shows at a redraw after this step
        window.redraw_stale()
        statuses.append(window.eta_label.text())
        if progress.phase == "evaluating":  # the series' points computed so far are drawn, no more
            evaluated[progress.series] = evaluated.get(progress.series, 0) + len(progress.indices)
            drawn.append((len(_drawn(window.path_view, progress.series, "train_loss")[0]),
                          evaluated[progress.series]))
        training_points.append(len(_data(window.path_view.training_live)[0]))
        training_shown.append(window.tabs.currentWidget() is window.path_view
                              and window.path_view.training_plot.isVisible())

    done = []
    window.runner.progressed.connect(look)
    window.runner.finished.connect(lambda request, _s: done.append(request))
    action = next(a for a in window.findChildren(QAction) if a.text() == "&Mode Connectivity…")
    action.trigger()
    qtbot.waitUntil(lambda: bool(done) or bool(window.errors), timeout=60000)
    assert not window.errors and Path(done[0].out) == out

    # while it ran: the status line said the phase, the Path tab showed the training loss as it came
    assert any(s.startswith("live.h5: training the curve, epoch ") for s in statuses)
    assert any("evaluating the straight line, B aligned" in s for s in statuses)
    assert any("evaluating the bezier curve, 1 bend" in s for s in statuses)
    assert max(training_points) > 0 and all(training_shown)
    assert len(drawn) == 3 * POINTS and all(shown == computed for shown, computed in drawn)
    # at the end: every series of the file with every point computed, as the file holds them
    landscape = window.state.current
    assert landscape.kind == "path" and landscape.path == out and not landscape.computing
    result = read_path(out)
    assert list(result.series) == ["curve", "linear", "linear_aligned"]
    assert all(s.done.sum() == POINTS for s in result.series.values())
    _assert_view_shows(window.path_view, out)
    labels = [item[1].text for item in window.path_view.legend.items]
    assert labels == [series_label(s, result.attrs) for s in ("linear", "linear_aligned", "curve")]
    # the file's epoch means are drawn in the training plot, and the job is over
    ex, ey = _data(window.path_view.training_epochs)
    np.testing.assert_allclose(ey, result.training.column("loss"))
    assert list(ex) == [1.0, 2.0, 3.0, 4.0]
    assert not window.progress_bar.isVisible()


def test_barrier_table_shows_the_files_barrier_numbers(window, written_path):
    window.open_grid(written_path)
    table = window.path_view.table
    result = read_path(written_path)
    barriers = result.barriers
    lengths = {k: v["length"] for k, v in json.loads(result.attrs["barriers"]).items()}
    rows = {table.verticalHeaderItem(r).text(): r for r in range(table.rowCount())}
    assert set(rows) == {"straight line", "aligned line", "bezier curve", "straight line (test)",
                         "aligned line (test)", "bezier curve (test)"}
    assert [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())] == \
        [h for h, _tip in BARRIER_COLUMNS]
    for label, series in (("straight line", "linear"), ("aligned line", "linear_aligned"), ("bezier curve", "curve")):
        for split in ("train", "test"):
            r = rows[label + ("" if split == "train" else " (test)")]
            loss, error = barriers[series][f"{split}_loss"], barriers[series].get(f"{split}_error", {})
            expected = [loss["interpolated"], loss["midpoint"], loss["interpolated_t"], error.get("interpolated"),
                        loss["mean"], lengths[series] if split == "train" else None]
            cells = [table.item(r, c).text() for c in range(table.columnCount())]
            assert cells == [format_number(v) for v in expected]
            for text, value in zip(cells, expected):  # the text is the number, not just a formatting of it
                if value is None:
                    assert text == ""
                else:
                    assert float(text) == pytest.approx(value, rel=1e-3, abs=1e-12)
    # a regression model: no error barrier, no error axis
    assert table.item(rows["bezier curve"], 3).text() == "" and table.isColumnHidden(3)
    assert not window.path_view.plot.getAxis("right").isVisible()


def test_barriers_are_marked_on_each_series(window, written_path):
    window.open_grid(written_path)
    view = window.path_view
    result = read_path(written_path)
    for series, data in result.series.items():
        numbers = result.barriers[series]["train_loss"]
        top = data.values["train_loss"][result.t == numbers["interpolated_t"]][0]
        px, py = _data(view.barrier_points[series])
        assert list(px) == [numbers["interpolated_t"]] and py[0] == pytest.approx(top)
        lx, ly = _data(view.barrier_lines[series])
        assert list(lx) == [numbers["interpolated_t"]] * 2
        t_max, loss = numbers["interpolated_t"], data.values["train_loss"]
        chord = (1 - t_max) * loss[result.t == 0.0][0] + t_max * loss[result.t == 1.0][0]
        assert ly[0] == pytest.approx(chord, rel=1e-9, abs=0)  # from the chord (1 - t) L(A) + t L(B) ...
        assert ly[1] == pytest.approx(top, rel=1e-12)  # ... up to the top
        assert ly[1] - ly[0] == pytest.approx(numbers["interpolated"])


# -- opening ---------------------------------------------------------------------------------------------
def test_opening_a_path_file_shows_the_path_tab(window, written_path, affine_surface, qtbot, tmp_path):
    window.open_grid(affine_surface)
    assert window.tabs.currentWidget() is window.explore
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(written_path))])
    enter = QDragEnterEvent(QPoint(20, 20), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window, QDropEvent(QPointF(20, 20), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    current = window.state.current
    assert current.kind == "path" and current.path == written_path and not window.errors
    assert window.tabs.currentWidget() is window.path_view
    assert not window.tabs.isTabEnabled(window.tabs.indexOf(window.explore))
    assert window.heatmap.notice.text() == PATH_RESULT  # the map says why it shows nothing
    _assert_view_shows(window.path_view, written_path)
    entries = [window.landscape_list.list.item(k).text() for k in range(window.landscape_list.list.count())]
    assert entries == ["affine", "bezier  · path"]
    assert "bezier curve" in window.info_panel.label.text()
    assert str(written_path.resolve()) in window.settings.recent_files()
    # selecting the surface in the list goes back to the map; selecting the path shows it again
    window.landscape_list.list.setCurrentRow(0)
    assert window.tabs.currentWidget() is window.explore and window.tabs.isTabEnabled(0)
    assert window.path_view.shown.path == written_path  # still there on its tab
    window.landscape_list.list.setCurrentRow(1)
    assert window.tabs.currentWidget() is window.path_view
    # Export Grid has nothing to write for a path: it says so
    assert window.export_grid(tmp_path / "x.csv") is None and "no grid" in window.errors[-1][0]

    # the next start reopens it (session restore)
    from PySide6.QtCore import QSettings

    from landscape_gui.main_window import MainWindow
    from landscape_gui.settings import AppSettings

    window.close()
    again = MainWindow(settings=AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)))
    qtbot.addWidget(again)
    assert again.restore_session()
    assert again.state.current.kind == "path" and again.tabs.currentWidget() is again.path_view
    _assert_view_shows(again.path_view, written_path)


def test_export_figure_of_the_path_view(window, written_path, tmp_path):
    from landscape_gui.dialogs.export_dialogs import ExportFigureDialog, figure_views

    window.open_grid(written_path)
    png = export_figure(window.path_view.figure_target(), tmp_path / "path.png", 900, 600)
    image = QImage(str(png))
    assert png.stat().st_size > 0 and (image.width(), image.height()) == (900, 600) and not _uniform(image)
    # File ▸ Export Figure… offers the path (and its training) when the Path tab shows one
    dialog = ExportFigureDialog(figure_views(window), window.settings, parent=window)
    assert dialog.include_path.isChecked() and dialog.include_path.isEnabled()
    assert dialog.include_training.isEnabled() and not dialog.include_map.isEnabled()
    dialog.include_training.setChecked(True)
    assert dialog.figure().rows == ((window.path_view.graphics, window.path_view.training_plot),)
    dialog.set_size(1200, 500, "px")
    for suffix in (".png", ".svg"):
        dialog.set_path(tmp_path / f"figure{suffix}")
        out = dialog.export()
        assert out is not None and out.stat().st_size > 0
    assert b"<svg" in (tmp_path / "figure.svg").read_bytes()[:400]
    figure = QImage(str(tmp_path / "figure.png"))
    assert (figure.width(), figure.height()) == (1200, 500) and not _uniform(figure)


def test_a_cancelled_path_job_leaves_the_view_consistent(window, pair, qtbot, tmp_path):
    out = tmp_path / "cancelled.h5"
    request = PathRequest(a=str(pair["a"]), b=str(pair["b"]), data=str(pair["train"]), out=str(out),
                          curve="bezier", epochs=500, batch_size=10, points=POINTS)  # cannot finish before the cancel lands

    def cancel_while_training(_request, progress) -> None:
        if progress.phase == "training":
            window.cancel_running()

    window.runner.progressed.connect(cancel_while_training)
    cancelled = []
    window.runner.cancelled.connect(lambda r, _s: cancelled.append(r))
    window.submit(request)
    qtbot.waitUntil(lambda: bool(cancelled) or bool(window.errors), timeout=60000)
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=10000)
    assert not window.errors
    landscape = window.state.current
    assert landscape.path == out and not landscape.computing and not landscape.complete
    # what the view draws is what the file holds: the straight line whole, no curve point yet
    _assert_view_shows(window.path_view, out)
    result = read_path(out)
    assert result.series["linear"].done.all() and not result.series["curve"].done.any()
    assert len(_drawn(window.path_view, "curve", "train_loss")[0]) == 0
    table = window.path_view.table
    rows = {table.verticalHeaderItem(r).text(): r for r in range(table.rowCount())}
    assert table.item(rows["straight line"], 0).text() != ""  # the straight line's barrier is known
    assert all(table.item(rows["bezier curve"], c).text() == "" for c in range(5))  # the curve's is not
    assert len(_data(window.path_view.training_live)[0]) >= 1  # the loss it reported before the cancel stays drawn
    assert "cancelled" in window.statusBar().currentMessage()
    assert not window.progress_bar.isVisible() and window.info_panel.resume.isVisible()

    # opened again, it is resumed from its last saved epoch and point, and the view ends complete
    window.runner.progressed.disconnect(cancel_while_training)
    finished = []
    window.runner.finished.connect(lambda r, _s: finished.append(r))
    window.close_current()
    window.open_grid(out)
    qtbot.waitUntil(lambda: bool(finished) or bool(window.errors), timeout=60000)
    assert not window.errors and window.state.current.complete
    _assert_view_shows(window.path_view, out)
    assert all(table.item(rows["bezier curve"], c).text() != "" for c in (0, 1, 2, 4, 5))


# -- the plane's overlay ----------------------------------------------------------------------------------
@pytest.fixture
def plane_file(tmp_path) -> tuple[Path, Overlay]:
    """A surface in the plane of A, B and a bend, with the overlay a mode-connectivity plane carries."""
    x = np.linspace(-0.5, 1.5, 41)
    y = np.linspace(-0.5, 1.0, 31)
    loss = 0.01 + np.minimum((x[None, :] ** 2 + y[:, None] ** 2), ((x[None, :] - 1) ** 2 + y[:, None] ** 2))
    t = np.linspace(0, 1, 25)
    overlay = Overlay(points={"A": (0.0, 0.0), "B": (1.0, 0.0), "bend 1": (0.5, 0.7)},
                      lines={"straight": np.array([[0.0, 0.0], [1.0, 0.0]]),
                             "curve": np.stack([t, 2 * t * (1 - t) * 0.7], axis=1)})
    surface = Surface(path=tmp_path / "src.h5", format="landscape", x=x, y=y, values={"train_loss": loss},
                      done=np.ones(loss.shape, bool), attrs={"kind": "surface", "dimensions": 2}, overlay=overlay)
    return write_surface(tmp_path / "plane.h5", surface), overlay


def test_a_surface_with_an_overlay_draws_its_points_and_lines(window, plane_file):
    path, overlay = plane_file
    window.open_grid(path)
    heatmap = window.heatmap
    assert read_surface(path).overlay is not None
    assert set(heatmap.overlay_lines) == {"straight", "curve"}
    for name, line in overlay.lines.items():
        x, y = heatmap.overlay_lines[name].getData()
        np.testing.assert_array_equal(x, line[:, 0])
        np.testing.assert_array_equal(y, line[:, 1])
    assert heatmap.overlay_lines["straight"].opts["pen"].style() == heatmap.overlay_lines["straight"].opts["pen"] \
        .style().DashLine
    assert heatmap.overlay_lines["curve"].opts["pen"].style() == heatmap.overlay_lines["curve"].opts["pen"] \
        .style().SolidLine
    spots = heatmap.overlay_points.data
    assert {name: (float(x), float(y)) for name, x, y in zip(spots["data"], spots["x"], spots["y"])} == overlay.points
    for name, (x, y) in overlay.points.items():
        label = heatmap.overlay_labels[name]
        assert label.toPlainText() == name and (label.pos().x(), label.pos().y()) == (x, y)
    # the exported map has it too: the bend's marker is drawn in white where the colours are dark
    image = render_image(heatmap)
    bend = heatmap.mapFromScene(heatmap.map_to_scene(*overlay.points["bend 1"]))
    color = image.pixelColor(bend.x(), bend.y())
    assert min(color.red(), color.green(), color.blue()) > 200
    # a surface without an overlay draws none
    window.close_current()
    assert heatmap.overlay_lines == {} and len(heatmap.overlay_points.data) == 0


def test_log_spaced_contour_levels_crowd_towards_the_minimum(window, plane_file):
    from engine.display.levels import contour_levels

    path, _overlay = plane_file
    window.open_grid(path)
    window.state.view.scale = "linear"
    window.state.view.contours = 6
    even, _ = window.heatmap.contours.getData()
    window.display_panel.log_contours.setChecked(True)  # the Display panel's box
    assert window.state.view.contour_spacing == "log"
    logged, _ = window.heatmap.contours.getData()
    assert len(logged) and not np.array_equal(np.nan_to_num(even), np.nan_to_num(logged))
    low, high = window.state.current.grid("train_loss").levels("linear")
    levels = contour_levels(low, high, 6, "log", "linear")
    assert np.all(np.diff(levels) > 0) and levels[1] - levels[0] < levels[-1] - levels[-2]
    window.display_panel.log_contours.setChecked(False)
    assert window.state.view.contour_spacing == "even"


def test_a_classifier_path_draws_the_error_on_the_right_axis(window, classification_case, tmp_path):
    """A BatchNorm classifier: error = 100 - accuracy along t on a second axis, and its barrier in the table."""
    import torch

    state = torch.load(classification_case["checkpoint"])["state_dict"]
    generator = torch.Generator().manual_seed(3)
    moved = {k: v + 0.5 * torch.randn(v.shape, generator=generator) if v.is_floating_point() and "running" not in k
             else v for k, v in state.items()}
    b = tmp_path / "b.pt"
    torch.save({"state_dict": moved}, b)
    out = tmp_path / "classifier.h5"
    engine.path(classification_case["checkpoint"], b, classification_case["data"], model=classification_case["model"],
                test_data=classification_case["data"], curve="polychain", epochs=1, batch_size=16, points=POINTS,
                out=out, progress=False)
    window.open_grid(out)
    view = window.path_view
    assert view.plot.getAxis("right").isVisible()
    _assert_view_shows(view, out)  # the errors among the rest
    result = read_path(out)
    _x, y = _drawn(view, "curve", "train_error")
    np.testing.assert_allclose(y, 100.0 - result.series["curve"].values["train_acc"])
    assert view.curves[("curve", "train_error")] in view.error_box.addedItems  # on the right axis, not the loss's
    table = view.table
    assert not table.isColumnHidden(3)
    rows = {table.verticalHeaderItem(r).text(): r for r in range(table.rowCount())}
    expected = result.barriers["curve"]["train_error"]["interpolated"]
    assert table.item(rows["polychain curve"], 3).text() == format_number(expected)
    assert "BatchNorm statistics re-estimated" in view.header.text()


def test_plane_through_path_computes_the_plane_surface_and_draws_the_path_on_it(window, written_path, qtbot, tmp_path):
    import shutil

    path = Path(shutil.copy(written_path, tmp_path / "bezier.h5"))  # the plane file is written beside the path
    window.open_grid(path)
    finished = []
    window.runner.finished.connect(lambda request, _summary: finished.append(request))
    window.compute_path_plane()
    qtbot.waitUntil(lambda: bool(finished) or bool(window.errors), timeout=120000)
    assert not window.errors
    plane = tmp_path / "bezier_plane.h5"
    assert finished[0].out == str(plane) and window.state.current.path == plane
    surface = read_surface(plane)
    assert surface.attrs["directions"] == "plane" and surface.done.all()
    assert surface.overlay.points["A"] == (0.0, 0.0)
    assert set(window.heatmap.overlay_lines) == {"straight", "curve"}
    x, y = window.heatmap.overlay_lines["curve"].getData()
    np.testing.assert_array_equal(x, surface.overlay.lines["curve"][:, 0])
    # the straight path of the aligned pair has no bend: a one-line error, nothing computed
    window.open_grid(path)
    straight = tmp_path / "straight.h5"
    engine.path(window.state.current.result.attrs["checkpoint"], window.state.current.result.attrs["b_checkpoint"],
                window.state.current.result.attrs["data"], points=3, out=straight, progress=False)
    window.open_grid(straight)
    window.compute_path_plane()
    assert "no bend" in window.errors[-1][0] and not (tmp_path / "straight_plane.h5").exists()
