"""The window around the views: panels in the View menu, the Help menu, recent files, the session, folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import QSettings

from engine.io.store import Surface, read_surface, write_surface
from engine.jobs.surface import SurfaceRequest
from landscape_gui.settings import AppSettings


def make_window(qtbot, ini: Path):
    from landscape_gui.main_window import MainWindow

    window = MainWindow(settings=AppSettings(QSettings(str(ini), QSettings.IniFormat)))
    qtbot.addWidget(window)
    window.resize(1200, 800)
    window.show()
    return window


def surface_file(folder: Path, name: str, dims: int = 2) -> Path:
    x = np.linspace(-1, 1, 9)
    y = np.linspace(-1, 1, 7) if dims == 2 else None
    shape = (7, 9) if dims == 2 else (9,)
    values = np.arange(np.prod(shape), dtype=float).reshape(shape) + 1.0
    return write_surface(folder / name, Surface(path=folder / "src.h5", format="landscape", x=x, y=y,
                                                values={"train_loss": values}, done=np.ones(shape, bool),
                                                attrs={"kind": "surface"}))


def menu(window, title: str):
    return next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == title)


def test_a_closed_panel_comes_back_from_the_view_menu(window) -> None:
    panels = next(a.menu() for a in menu(window, "View").actions() if a.menu() and "Panels" in a.text())
    names = [a.text() for a in panels.actions()]
    assert names == ["Landscapes", "Display", "Info"]
    info = next(d for d in window.docks if d.windowTitle() == "Info")
    info.close()
    assert not info.isVisible()
    next(a for a in panels.actions() if a.text() == "Info").trigger()
    assert info.isVisible()


def test_help_menu_tour_shortcuts_and_about(window) -> None:
    import PySide6
    import pyqtgraph

    actions = {a.text().replace("&", ""): a for a in menu(window, "Help").actions()}
    actions["Tour"].trigger()
    tour = window.help_dialog.body
    assert "Landscape" in tour.toPlainText() and "landscape surface" in tour.toPlainText()
    assert "<img" not in tour.toHtml()  # the README's screenshot would overflow the window
    actions["Keyboard Shortcuts"].trigger()
    table = window.help_dialog.body
    rows = {(table.item(r, 0).text(), table.item(r, 1).text()): table.item(r, 2).text() for r in range(table.rowCount())}
    assert rows[("File", "Open Grid")] == "Ctrl+G" and rows[("Compute", "Compute Slice Line")] == "Ctrl+L"
    actions["About Landscape"].trigger()
    about = window.help_dialog.body.toPlainText()
    for version in (torch.__version__, PySide6.__version__, pyqtgraph.__version__):
        assert version in about


def test_recent_files_grey_out_missing_ones_and_a_failed_open_drops_its_entry(window, tmp_path) -> None:
    kept, gone, broken = (surface_file(tmp_path, f"{n}.h5") for n in ("kept", "gone", "broken"))
    for path in (kept, gone, broken):
        window.open_grid(path)
    gone.unlink()
    broken.write_bytes(b"no longer HDF5")
    window.state.remove(window.state.find(broken))
    assert window.open_grid(broken) is None  # the error dialog; and the entry goes
    window.recent_menu.aboutToShow.emit()  # what opening the menu does
    entries = {a.text(): a.isEnabled() for a in window.recent_menu.actions() if a.text() and a.text() != "Clear"}
    assert entries == {str(kept.resolve()): True, f"{gone.resolve()} (missing)": False}


def test_the_next_start_reopens_what_was_open_with_the_current_surface_tab_and_slice(qtbot, tmp_path) -> None:
    ini = tmp_path / "settings.ini"
    first = make_window(qtbot, ini)
    paths = [surface_file(tmp_path, "a.h5"), surface_file(tmp_path, "b.h5"), surface_file(tmp_path, "line.h5", 1)]
    for path in paths:
        first.open_grid(path)
    first.state.set_current(first.state.find(paths[0]))
    first.state.view.slice = ((-0.5, -0.25), (0.75, 0.5))
    first.tabs.setCurrentIndex(1)
    first.close()

    second = make_window(qtbot, ini)
    assert second.restore_session()
    assert [l.path.resolve() for l in second.state.landscapes] == [p.resolve() for p in paths]
    assert second.state.current.path.resolve() == paths[0].resolve()
    assert second.state.view.slice == ((-0.5, -0.25), (0.75, 0.5))
    assert second.tabs.currentIndex() == 1
    second.restore_action.setChecked(False)  # the option turns it off
    second.close()
    third = make_window(qtbot, ini)
    assert not third.restore_session() and third.state.landscapes == []


def test_a_session_whose_files_are_gone_opens_nothing(qtbot, tmp_path) -> None:
    ini = tmp_path / "settings.ini"
    first = make_window(qtbot, ini)
    path = surface_file(tmp_path, "a.h5")
    first.open_grid(path)
    first.close()
    path.unlink()
    second = make_window(qtbot, ini)
    assert not second.restore_session() and not second.errors


def test_file_dialogs_start_where_the_last_file_of_their_kind_was(tmp_path) -> None:
    settings = AppSettings(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    assert settings.last_folder("grids") == str(Path.home())
    runs = tmp_path / "runs"
    runs.mkdir()
    settings.add_recent(surface_file(runs, "s.h5"))
    assert settings.last_folder("checkpoints") == str(runs.resolve())  # no checkpoint yet: the last file's folder
    other = tmp_path / "other"
    other.mkdir()
    settings.set_last_folder("checkpoints", other / "model.pt")
    assert settings.last_folder("checkpoints") == str(other)


@pytest.mark.parametrize("size", [(1024, 700)])
def test_the_window_fits_a_small_screen(qtbot, tmp_path, size) -> None:
    window = make_window(qtbot, tmp_path / "s.ini")
    window.resize(*size)
    qtbot.waitExposed(window)
    assert window.width() <= size[0] and window.height() <= size[1]
    assert window.minimumSizeHint().width() <= size[0] and window.minimumSizeHint().height() <= size[1]


def test_the_status_bar_names_the_calibration_phase_and_shows_no_eta_before_it_means_something(window, tmp_path):
    from engine.jobs.base import CALIBRATING, COMPUTING
    from engine.jobs.surface import SurfaceProgress

    from landscape_gui.jobs import Started

    path = surface_file(tmp_path, "s.h5")
    request = SurfaceRequest(checkpoint="m.pt", data="d.npz", x="-1:1:101", y="-1:1:101", out=str(path))
    window.runner.started.emit(Started(request, "surface", (), 10201, 0, read_surface(path)))
    step = dict(kind="surface", path=path, done=13, total=10201, computed=13, elapsed=0.1)
    for phase, eta, shown in ((CALIBRATING, None, "s.h5: calibrating…"),
                              (COMPUTING, None, "s.h5: 13/10201"),  # no ETA until the rate means something
                              (COMPUTING, 95.0, "s.h5: 13/10201  ETA 1 min 35 s")):
        window.runner.progressed.emit(request, SurfaceProgress(phase=phase, eta=eta, **step))
        window.redraw_stale()  # the next redraw tick, now
        assert window.eta_label.text() == shown and window.progress_bar.value() == 13
