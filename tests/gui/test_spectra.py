"""Hessian spectra in the app, with real checkpoints, real spectrum files and real hessian jobs: opening a file
in the Spectrum tab, σ redrawn live, the report of several files side by side, the Compute ▸ Hessian Spectrum
dialog, the map's right-click "Hessian here", and exporting the figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication

import engine
from engine.display.spectra import format_number, log_safe, x_range
from engine.io.store import read_surface
from engine.io.store.spectra import read_spectrum
from engine.jobs.hessian import HessianRequest
from landscape_gui.dialogs.hessian_dialog import HessianDialog, store_options, stored_options
from landscape_gui.figure_export import export_figure
from landscape_gui.views.heatmap import SPECTRUM_RESULT

# What to compute, small enough for a second or two per job on these tiny models
FAST = {"density_probes": 2, "density_steps": 20, "trace_max_probes": 20, "trace_tol": 0.2, "max_iter": 30}


# -- files made by the real engine, once per module ------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Path]:
    """Two trained mlp-sine models (self-describing checkpoints, their train.npz and test.npz), widths 4 and 12."""
    from samples.registry import train

    folders = {}
    for width in (4, 12):
        out = tmp_path_factory.mktemp(f"w{width}")
        train("mlp-sine", out, seed=0, width=width, epochs=10)
        folders[width] = out
    return folders


@pytest.fixture(scope="module")
def spectra(runs) -> dict[int, Path]:
    """A spectrum file with the report for each run (folder/spectrum.h5, as the dialog names it)."""
    files = {}
    for width, folder in runs.items():
        files[width] = folder / "spectrum.h5"
        engine.hessian(folder / "model.pt", folder / "train.npz", out=files[width], test_data=str(folder / "test.npz"),
                       report=True, trace_sketch=2, progress=False, **FAST)
    return files


@pytest.fixture(scope="module")
def surface(runs) -> Path:
    """A 2D surface around the width-4 model: 5 x 5 points on [-1, 1]²."""
    out = runs[4] / "surface.h5"
    engine.surface(runs[4] / "model.pt", "sample:sine", x="-1:1:5", y="-1:1:5", out=out, progress=False)
    return out


def _data(item) -> tuple[np.ndarray, np.ndarray]:
    """An item's data as given (getData() would give it log-transformed on a log axis)."""
    x, y = item.xData, item.yData
    return (np.zeros(0), np.zeros(0)) if x is None else (np.asarray(x), np.asarray(y))


def _uniform(image: QImage) -> bool:
    first = image.pixel(0, 0)
    return all(image.pixel(i, j) == first for i in range(0, image.width(), 5) for j in range(0, image.height(), 5))


def _assert_draws(view, path: Path, sigma: float | None = None) -> None:
    """The density at ``sigma`` (the file's by default) on the drawn grid, as the engine computes it, clipped
    for the log axis; and one stick per extreme eigenvalue from the floor to the curve's peak."""
    spectrum = read_spectrum(path)
    sigma = spectrum.sigma if sigma is None else sigma
    x, y = _data(view.density_item)
    assert len(x) >= 1000 and np.all(y > 0)
    _, expected = spectrum.density_at(sigma, x)
    np.testing.assert_allclose(y, log_safe(expected)[0], rtol=1e-12, atol=0)
    floor, peak = y.min(), y.max()
    for item, values in ((view.top_item, spectrum.top_eigenvalues), (view.bottom_item, spectrum.bottom_eigenvalues)):
        sx, sy = _data(item)
        np.testing.assert_array_equal(sx, np.repeat(values, 2))
        np.testing.assert_allclose(sy, np.tile([floor, peak], len(values)), rtol=1e-12)
    labels = [label.toPlainText() for label in view.stick_labels]
    assert labels == [f"λmax = {format_number(spectrum.top_eigenvalues[0])}",
                      f"λmin = {format_number(spectrum.bottom_eigenvalues[0])}"]


# -- opening ---------------------------------------------------------------------------------------------
def test_opening_a_spectrum_file_shows_the_tab_with_the_density_and_sticks(window, spectra, affine_surface, qtbot,
                                                                            tmp_path):
    window.open_grid(affine_surface)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(spectra[12]))])
    enter = QDragEnterEvent(QPoint(20, 20), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(window, QDropEvent(QPointF(20, 20), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    current = window.state.current
    assert current.kind == "spectrum" and current.path == spectra[12] and not window.errors
    view = window.spectrum_view
    assert window.tabs.currentWidget() is view and view.shown is current
    assert not window.tabs.isTabEnabled(window.tabs.indexOf(window.explore))
    assert window.heatmap.notice.text() == SPECTRUM_RESULT  # the map says why it shows nothing
    _assert_draws(view, spectra[12])
    assert view.plot.getAxis("left").logMode  # the density on a log scale
    assert current.name in view.header.text() and "Hessian-vector products" in view.header.text()
    entries = [window.landscape_list.list.item(k).text() for k in range(window.landscape_list.list.count())]
    assert entries == ["affine", f"{current.name}  · spectrum"]
    assert "Hessian spectrum" in window.info_panel.label.text()
    assert str(spectra[12].resolve()) in window.settings.recent_files()
    assert window.export_grid(tmp_path / "x.csv") is None and "no grid" in window.errors[-1][0]
    # the surface in the list goes back to the map; the spectrum again to its tab
    window.landscape_list.list.setCurrentRow(0)
    assert window.tabs.currentWidget() is window.explore
    window.landscape_list.list.setCurrentRow(1)
    assert window.tabs.currentWidget() is view

    # the next start reopens it (session restore)
    from landscape_gui.main_window import MainWindow
    from landscape_gui.settings import AppSettings

    window.close()
    again = MainWindow(settings=AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)))
    qtbot.addWidget(again)
    assert again.restore_session()
    assert again.state.current.kind == "spectrum" and again.tabs.currentWidget() is again.spectrum_view
    _assert_draws(again.spectrum_view, spectra[12])


def test_changing_sigma_redraws_without_a_job(window, spectra):
    before = spectra[12].stat().st_mtime_ns, read_spectrum(spectra[12]).hvp_count
    started = []
    window.runner.started.connect(started.append)
    window.open_grid(spectra[12])
    view = window.spectrum_view
    landscape = window.state.current
    file_sigma = read_spectrum(spectra[12]).sigma
    _, first = _data(view.density_item)
    # the slider, a few steps narrower: the density sharpens, redrawn from the file's nodes
    view.sigma_slider.setValue(view.sigma_slider.value() - 80)
    sigma = view.scale.sigma(view.sigma_slider.value())
    assert landscape.sigma == pytest.approx(sigma) and sigma < file_sigma / 2
    _assert_draws(view, spectra[12], sigma)
    assert _data(view.density_item)[1].max() > first.max()
    assert view.sigma_edit.text() == f"{sigma:.3g}" and f"σ = {sigma:.3g}" in view.header.text()
    # typed
    view.sigma_edit.setText("0.05")
    view.sigma_edit.editingFinished.emit()
    assert landscape.shown_sigma == 0.05
    _assert_draws(view, spectra[12], 0.05)
    view.sigma_edit.setText("wide")
    view.sigma_edit.editingFinished.emit()
    assert landscape.shown_sigma == 0.05 and "not a positive number" in view.sigma_edit.toolTip()
    # back to the file's
    view.sigma_reset.click()
    assert landscape.sigma is None and landscape.shown_sigma == file_sigma
    _assert_draws(view, spectra[12])
    # the x range: the bulk is a part of all eigenvalues
    all_range = view.plot.vb.viewRange()[0]
    view.range_box.setCurrentIndex(view.range_box.findData("bulk"))
    assert window.state.view.spectrum_range == "bulk"
    bulk_range = view.plot.vb.viewRange()[0]
    values, weights = landscape.result.probes
    lo, hi = x_range("bulk", values, weights, file_sigma)
    assert bulk_range[0] <= lo and bulk_range[1] >= hi and bulk_range[1] - bulk_range[0] < 1.1 * (hi - lo)
    assert bulk_range[1] - bulk_range[0] <= all_range[1] - all_range[0]
    _assert_draws(view, spectra[12])  # drawn finer in the bulk, the same density
    # none of it ran a job or touched the file
    assert started == [] and not window.runner.busy
    assert (spectra[12].stat().st_mtime_ns, read_spectrum(spectra[12]).hvp_count) == before


def test_report_table_shows_the_numbers_of_two_files_side_by_side(window, spectra):
    large = window.open_grid(spectra[12])
    small = window.open_grid(spectra[4])
    view = window.spectrum_view
    table = view.table
    assert view.columns == [small, large]  # the smaller model first, whatever the order they were opened in
    assert [table.horizontalHeaderItem(c).text() for c in range(2)] == [
        small.name.replace(" (", "\n("), large.name.replace(" (", "\n(")]
    assert table.horizontalHeaderItem(0).font().bold() and not table.horizontalHeaderItem(1).font().bold()
    labels = [table.verticalHeaderItem(r).text() for r in range(table.rowCount())]
    for label in ("parameters p", "samples n", "p / n", "interpolates", "train loss", "test loss", "λmax", "λmin",
                  "trace", "trace / p", "negative mass", "N_eff / p (α 0.01)"):
        assert label in labels
    for landscape in (small, large):
        report = read_spectrum(landscape.path).report
        assert view.cell("n_params", landscape) == f"{report['n_params']:,}"
        assert view.cell("interpolates", landscape) == ("yes" if report["interpolates"] else "no")
        for key in ("params_per_sample", "train_loss", "test_loss", "top_eigenvalue", "bottom_eigenvalue",
                    "trace_per_param"):
            assert float(view.cell(key, landscape)) == pytest.approx(report[key], rel=1e-3), key
        assert float(view.cell("n_eff_fraction:0.01", landscape)) == pytest.approx(report["n_eff_fraction"]["0.01"],
                                                                                   rel=1e-3)
        trace, error = view.cell("trace", landscape).split(" ± ")
        assert float(trace) == pytest.approx(report["trace"], rel=1e-3)
        assert float(error) == pytest.approx(report["trace_stderr"], rel=0.05)
    assert read_spectrum(small.path).report["n_params"] < read_spectrum(large.path).report["n_params"]
    # a click on a column's header shows that file
    table.horizontalHeader().sectionClicked.emit(1)
    assert window.state.current is large and view.shown is large
    assert table.horizontalHeaderItem(1).font().bold()
    # closing one takes its column away
    window.close_current()
    assert view.columns == [small] and table.columnCount() == 1


# -- computing ---------------------------------------------------------------------------------------------
def test_dialog_builds_the_hessian_request_of_its_widgets(qtbot, runs, tmp_path):
    folder = runs[4]
    settings = QSettings(str(tmp_path / "dialog.ini"), QSettings.IniFormat)
    dialog = HessianDialog(folder / "model.pt", settings=settings)
    qtbot.addWidget(dialog)
    # prefilled as File ▸ Open Checkpoint prefills: the checkpoint's factory, kwargs, training and test data
    assert dialog.model_edit.text() == "engine.builtin.models:mlp"
    assert json.loads(dialog.kwargs_edit.text())["width"] == 4
    assert dialog.data_edit.text() == "sample:sine" and dialog.test_edit.text() == "sample:sine-test"
    assert Path(dialog.out_edit.text()) == folder / "spectrum.h5"
    # the report is on by default: it needs the trace and the density, shown ticked and fixed
    assert dialog.report.isChecked() and dialog.trace.isChecked() and dialog.density.isChecked()
    assert not dialog.trace.isEnabled() and not dialog.density.isEnabled() and dialog.top_k.minimum() == 1
    dialog.top_k.setValue(3)
    dialog.bottom_k.setValue(2)
    dialog.density_probes.setValue(2)
    dialog.density_steps.setValue(20)
    dialog.trace_tol.setValue(5.0)
    dialog.trace_max_probes.setValue(50)
    dialog.max_iter.setValue(40)
    dialog.eigenvectors.setChecked(True)
    dialog.seed.setValue(7)
    dialog.mode.setCurrentIndex(dialog.mode.findData("train"))
    dialog.max_samples.setValue(50)
    dialog.data_edit.setText(str(folder / "train.npz"))
    out = tmp_path / "chosen.h5"
    dialog.out_edit.selectAll()
    qtbot.keyClicks(dialog.out_edit, str(out))  # typed: the name no longer follows the checkpoint
    assert dialog.error_text() == "" and dialog.ok_button().isEnabled()
    request = dialog.request()
    assert request == HessianRequest(
        checkpoint=str(folder / "model.pt"), data=str(folder / "train.npz"), out=str(out), test_data="sample:sine-test",
        model="engine.builtin.models:mlp", model_kwargs=request.model_kwargs, top_k=3, bottom_k=2, eigenvectors=True,
        max_iter=40, trace=True, trace_tol=0.05, trace_max_probes=50, density=True, density_probes=2,
        density_steps=20, report=True, seed=7, mode="train", max_samples=50)
    assert request.model_kwargs["width"] == 4
    # without the report each part is a choice; nothing at all is not
    dialog.report.setChecked(False)
    assert dialog.trace.isEnabled() and dialog.top_k.minimum() == 0
    for box in (dialog.trace, dialog.density):
        box.setChecked(False)
    dialog.top_k.setValue(0)
    dialog.bottom_k.setValue(0)
    assert "choose something to compute" in dialog.error_text() and not dialog.ok_button().isEnabled()
    dialog.top_k.setValue(1)
    assert dialog.request().wants() == (1, 0, False, False)
    dialog.out_edit.setText(str(tmp_path / "chosen.txt"))
    assert ".h5" in dialog.error_text()
    dialog.out_edit.setText(str(out))
    dialog.accept()  # remembers what to compute: the next dialog, and Hessian here, start from it
    assert stored_options(settings)["top_k"] == 1 and stored_options(settings)["density_steps"] == 20
    again = HessianDialog(folder / "model.pt", settings=settings)
    qtbot.addWidget(again)
    assert not again.report.isChecked() and again.top_k.value() == 1 and again.mode.currentData() == "train"


def test_the_dialog_runs_a_real_job_and_the_spectrum_tab_shows_it_live(window, runs, spectra, qtbot, tmp_path,
                                                                        monkeypatch):
    folder = runs[4]
    out = tmp_path / "live.h5"

    def fill_and_accept(dialog: HessianDialog) -> int:
        assert Path(dialog.checkpoint_edit.text()) == folder / "model.pt"  # the current result's checkpoint
        dialog.set_values(data=str(folder / "train.npz"), test_data=str(folder / "test.npz"), out=out, **FAST)
        dialog.accept()  # Compute
        return dialog.result()

    monkeypatch.setattr(HessianDialog, "exec", fill_and_accept)
    window.open_grid(spectra[4])  # the dialog starts from the current result's checkpoint
    statuses, live_labels, headers = [], [], []

    def look(_request, progress) -> None:  # what the window shows at a redraw after this step
        window.redraw_stale()
        statuses.append(window.eta_label.text())
        headers.append(window.spectrum_view.header.text())
        live_labels.append([label.toPlainText() for label in window.spectrum_view.stick_labels])

    done = []
    window.runner.progressed.connect(look)
    window.runner.finished.connect(lambda request, _s: done.append(request))
    action = next(a for a in window.findChildren(QAction) if a.text() == "&Hessian Spectrum…")
    assert action.shortcut().toString() == "Ctrl+H"
    action.trigger()
    qtbot.waitUntil(lambda: bool(done) or bool(window.errors), timeout=120000)
    assert not window.errors and Path(done[0].out) == out

    # while it ran: the status line and the header said the stage and its estimates, dashed sticks at the estimates
    assert any(s.startswith("live.h5: eigenvalues: λmax ≈ ") for s in statuses)
    assert any(s.startswith("live.h5: trace ≈ ") for s in statuses)
    assert any(s.startswith("live.h5: density: probe 2/2") for s in statuses)
    assert any("computing: eigenvalues: λmax ≈" in h for h in headers)
    assert any(labels and all(text.endswith("(estimate)") for text in labels) for labels in live_labels)
    # at the end: the file's density and eigenvalues, the report in the table
    landscape = window.state.current
    assert landscape.kind == "spectrum" and landscape.path == out and not landscape.computing and landscape.complete
    assert window.tabs.currentWidget() is window.spectrum_view
    _assert_draws(window.spectrum_view, out)
    assert landscape in window.spectrum_view.columns
    report = read_spectrum(out).report
    assert float(window.spectrum_view.cell("top_eigenvalue", landscape)) == pytest.approx(report["top_eigenvalue"],
                                                                                         rel=1e-3)
    assert "Hessian-vector products" in window.statusBar().currentMessage()
    assert not window.progress_bar.isVisible()
    assert stored_options(window.settings.q)["density_probes"] == 2


def test_hessian_here_on_a_surface_runs_a_job_at_the_clicked_point(window, runs, surface, qtbot):
    store_options(window.settings.q, {**FAST, "trace_max_probes": 20})
    window.open_grid(surface)
    heatmap = window.heatmap
    clicked = (0.4, -0.55)
    pos = heatmap.mapFromScene(heatmap.map_to_scene(*clicked))
    qtbot.mouseClick(heatmap.viewport(), Qt.RightButton, pos=pos)  # the map's right-click menu
    menu = heatmap.view_box.menu
    action = heatmap.view_box.hessian_action
    assert menu.actions()[0] is action and action.isEnabled() and action.text() == "Hessian here (x 0.5, y -0.5)"
    done = []
    window.runner.finished.connect(lambda request, _s: done.append(request))
    action.trigger()
    menu.hide()
    qtbot.waitUntil(lambda: bool(done) or bool(window.errors), timeout=120000)
    assert not window.errors
    out = Path(done[0].out)
    assert out == surface.parent / "surface-hessian-x0.5-y-0.5.h5"
    spectrum = read_spectrum(out)
    a = spectrum.attrs
    grid = read_surface(surface)
    point = [float(v) for v in a["point"].split(",")]
    steps = (grid.x[1] - grid.x[0], grid.y[1] - grid.y[0])
    assert all(abs(p - c) <= s / 2 + 1e-12 for p, c, s in zip(point, clicked, steps))  # the nearest grid point
    assert a["at"] == str(surface.resolve()) and a["checkpoint"] == grid.attrs["checkpoint"]
    assert a["data"] == grid.attrs["data"] and a["mode"] == grid.attrs["mode"] and int(a["report"]) == 1
    assert int(a["density_probes"]) == 2 and int(a["density_steps"]) == 20  # the remembered choices
    # the report's training loss is the map's at that point: the same weights, data and loss
    i, j = int(np.argmin(np.abs(grid.x - point[0]))), int(np.argmin(np.abs(grid.y - point[1])))
    assert spectrum.report["train_loss"] == pytest.approx(float(grid.values["train_loss"][j, i]), rel=1e-4)
    # shown in the Spectrum tab, its report says where
    landscape = window.state.current
    assert landscape.kind == "spectrum" and landscape.path == out
    assert window.tabs.currentWidget() is window.spectrum_view
    assert window.spectrum_view.cell("where", landscape) == "x 0.5, y -0.5"
    assert landscape.name == f"{surface.parent.name}/surface-hessian-x0.5-y-0.5 (width 4, seed 0)"
    assert "x 0.5, y -0.5 of" in window.spectrum_view.header.text()


def test_a_cancelled_hessian_job_shows_what_it_saved_and_resumes(window, runs, qtbot, tmp_path):
    folder = runs[4]
    out = tmp_path / "cancelled.h5"
    request = HessianRequest(checkpoint=str(folder / "model.pt"), data=str(folder / "train.npz"), out=str(out),
                             report=True, trace_sketch=2, **{**FAST, "density_probes": 50})

    def cancel_in_the_density(_request, progress) -> None:
        if progress.stage == "density":
            window.cancel_running()

    window.runner.progressed.connect(cancel_in_the_density)
    cancelled = []
    window.runner.cancelled.connect(lambda r, _s: cancelled.append(r))
    window.submit(request)
    qtbot.waitUntil(lambda: bool(cancelled) or bool(window.errors), timeout=120000)
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=10000)
    assert not window.errors
    landscape = window.state.current
    view = window.spectrum_view
    assert landscape.path == out and not landscape.computing and not landscape.complete
    # what the file holds is shown: the eigenvalues as solid sticks, the probes done (if the cancel came after
    # the first), the way to go on
    spectrum = read_spectrum(out)
    assert spectrum.eigen_done and spectrum.trace is not None and not spectrum.density_done.all()
    if spectrum.density_done.any():
        _assert_draws(view, out, landscape.shown_sigma)
    else:
        sx, _ = _data(view.top_item)
        np.testing.assert_array_equal(sx, np.repeat(spectrum.top_eigenvalues, 2))
        assert view.notice.text() == "The density is not computed yet"
    assert not any(label.toPlainText().endswith("(estimate)") for label in view.stick_labels)
    assert "Resume Computing" in view.header.text()
    assert "cancelled" in window.statusBar().currentMessage() and "products" in window.statusBar().currentMessage()
    assert window.info_panel.resume.isVisible()
    # opened again, it is resumed where it stopped and ends complete, the density drawn
    window.runner.progressed.disconnect(cancel_in_the_density)
    finished = []
    window.runner.finished.connect(lambda r, _s: finished.append(r))
    window.close_current()
    window.open_grid(out)
    qtbot.waitUntil(lambda: bool(finished) or bool(window.errors), timeout=120000)
    assert not window.errors and window.state.current.complete
    _assert_draws(view, out)
    assert read_spectrum(out).density_done.all()


# -- exporting ------------------------------------------------------------------------------------------------
def test_export_figure_of_the_spectrum_view(window, spectra, tmp_path):
    from landscape_gui.dialogs.export_dialogs import ExportFigureDialog, figure_views

    window.open_grid(spectra[12])
    view = window.spectrum_view
    png = export_figure(view.figure_target(), tmp_path / "spectrum.png", 900, 600)
    image = QImage(str(png))
    assert png.stat().st_size > 0 and (image.width(), image.height()) == (900, 600) and not _uniform(image)
    # File ▸ Export Figure… offers the spectrum when the Spectrum tab shows one, and nothing of the map
    dialog = ExportFigureDialog(figure_views(window), window.settings, parent=window)
    assert dialog.include_spectrum.isChecked() and dialog.include_spectrum.isEnabled()
    assert not dialog.include_map.isEnabled() and not dialog.include_path.isEnabled()
    assert dialog.figure().rows == ((view.graphics,),)
    dialog.set_size(1200, 500, "px")
    for suffix in (".png", ".svg"):
        dialog.set_path(tmp_path / f"figure{suffix}")
        saved = dialog.export()
        assert saved is not None and saved.stat().st_size > 0
    assert b"<svg" in (tmp_path / "figure.svg").read_bytes()[:400]
    top = format_number(read_spectrum(spectra[12]).top_eigenvalues[0])
    assert f"max = {top}</text>" in (tmp_path / "figure.svg").read_text(encoding="utf-8")  # the stick's label, as text
    figure = QImage(str(tmp_path / "figure.png"))
    assert (figure.width(), figure.height()) == (1200, 500) and not _uniform(figure)
