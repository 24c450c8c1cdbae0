"""The main window: menus, docks and views around one AppState, and the jobs that fill it.

Every action goes through a method that tests call directly (``open_paths``,
``export_grid``, ``submit`` ...); menu items only add a file dialog in front.
Errors from the engine arrive as one-line LandscapeErrors and are shown in a
non-blocking dialog with details; whatever was open stays open.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QImage, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QApplication, QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar, QPushButton,
    QSplitter, QTabWidget,
)

from engine.errors import LandscapeError
from engine.io.export import export_grid
from engine.io.references import one_line
from engine.io.store import writer_of
from engine.display.paths import path_status
from engine.display.profile import nearest_node
from engine.display.spectra import LiveSpectrum, spectrum_status
from engine.jobs.base import COMPUTING, Progress
from engine.jobs.hessian import HessianProgress
from engine.jobs.path import PathProgress
from engine.jobs.registry import resume_request
from engine.jobs.surface import SurfaceRequest, line_request, plane_request
from landscape_gui.help import about_dialog, shortcuts_dialog, tour_dialog
from landscape_gui.jobs import JobRunner, Started
from landscape_gui.panels import DisplayPanel, InfoPanel, LandscapeList
from landscape_gui.settings import AppSettings
from landscape_gui.state import RESULT_STATES, AppState, Landscape, default_slice, open_result, point_readout
from landscape_gui.views.compare import CompareView
from landscape_gui.views.heatmap import HeatmapView
from landscape_gui.views.path_view import PathView
from landscape_gui.views.profile import ProfileView, curve_from_profile
from landscape_gui.views.spectrum_view import SpectrumView
from landscape_gui.views.surface3d import Surface3DView

GRID_FILTER = "Landscape files: surfaces, paths and spectra (*.h5 *.hdf5);;All files (*)"
CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.ckpt *.bin *.safetensors);;All files (*)"
LINE_POINTS = 101
REDRAW_MS = 150  # newest values reach the views this often while a job runs
PREFERRED_SIZE = (1400, 900)  # the window's size at its first start, if the screen has room


class MainWindow(QMainWindow):
    """Landscape's window. ``state`` is the model; the views only draw it."""

    def __init__(self, settings: AppSettings | None = None, state: AppState | None = None) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.state = state or AppState()
        self.runner = JobRunner(self)
        self.errors: list[tuple[str, str]] = []  # every error shown, for tests and the log
        self.error_box: QMessageBox | None = None
        self.setWindowTitle("Landscape")
        self._apply_display_settings()

        self.heatmap = HeatmapView(self.state)
        self.profile = ProfileView(self.state)
        self.surface3d = Surface3DView(self.state)
        self.compare = CompareView(self.state)
        self.path_view = PathView(self.state)
        self.spectrum_view = SpectrumView(self.state)
        left = QSplitter(Qt.Vertical)
        left.addWidget(self.heatmap)
        left.addWidget(self.profile)
        left.setSizes([620, 300])
        self.explore = QSplitter(Qt.Horizontal)
        self.explore.addWidget(left)
        self.explore.addWidget(self.surface3d)
        self.explore.setSizes([700, 500])
        self.tabs = QTabWidget()
        self.tabs.addTab(self.explore, "Explore")
        self.tabs.addTab(self.compare, "Compare")
        self.tabs.addTab(self.path_view, "Path")
        self.tabs.addTab(self.spectrum_view, "Spectrum")
        self.setCentralWidget(self.tabs)

        self.landscape_list = LandscapeList(self.state)
        self.display_panel = DisplayPanel(self.state)
        self.info_panel = InfoPanel(self.state)
        self.info_panel.resume_requested.connect(self.resume_current)
        self.docks: list[QDockWidget] = []
        for title, widget, name in (("Landscapes", self.landscape_list, "landscapes"),
                                    ("Display", self.display_panel, "display"),
                                    ("Info", self.info_panel, "info")):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{name}")
            dock.setWidget(widget)
            self.addDockWidget(Qt.LeftDockWidgetArea, dock)
            self.docks.append(dock)

        self.hover_label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(160)
        self.progress_bar.setVisible(False)
        self.eta_label = QLabel("")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_running)
        self.task = None  # a background task other than a job (the first launch's training)
        self._map_text: str | None = None  # what the map says while it has no picture (first launch)
        self._job_name = ""  # the file the running job writes, for the status bar
        bar = self.statusBar()
        bar.addWidget(self.hover_label, 1)
        bar.addPermanentWidget(self.eta_label)
        bar.addPermanentWidget(self.progress_bar)
        bar.addPermanentWidget(self.cancel_button)

        self.heatmap.hovered.connect(self.show_hover)
        self.heatmap.hessian_requested.connect(self.hessian_here)
        self.tabs.currentChanged.connect(lambda _i: self.hover_label.setText(""))  # no stale readout
        self.runner.started.connect(self._job_started)
        self.runner.progressed.connect(self._job_progressed)
        self.runner.finished.connect(self._job_finished)
        self.runner.cancelled.connect(self._job_cancelled)
        self.runner.failed.connect(self._job_failed)
        self.runner.idle.connect(self._jobs_idle)
        self._stale: set[Landscape] = set()  # landscapes with values not drawn yet
        self._pending_status: tuple[int, int, str] | None = None  # progress to show at the next tick
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(REDRAW_MS)
        self._redraw_timer.timeout.connect(self.redraw_stale)
        self.state.view.changed.connect(self._view_changed)
        self.state.current_changed.connect(lambda _l: self._update_title())
        self.state.current_changed.connect(lambda _l: self._follow_current_kind())
        self._build_menus()
        self._restore_window()
        self.setAcceptDrops(True)  # files dropped on the window open as File ▸ Open would open them

    # -- menus -------------------------------------------------------------------------------
    def _action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "Open &Checkpoint…", self.open_checkpoint_dialog, QKeySequence.Open,
                     "Open one or several checkpoints and compute a surface around them")
        self._action(file_menu, "Open &Grid…", self.open_grid_dialog, "Ctrl+G",
                     "Open result files: surfaces (Landscape's or Li et al.'s loss-landscape .h5), paths and "
                     "spectra")
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        self._action(file_menu, "Export &Figure…", self.export_figure_dialog, "Ctrl+E",
                     "Save the current view as PNG (any size) or SVG")
        self._action(file_menu, "Export Gri&d…", self.export_grid_dialog, "Ctrl+Shift+E",
                     "Save the current surface as Landscape HDF5, CSV or ParaView .vtp")
        file_menu.addSeparator()
        self._action(file_menu, "&Close Result", self.close_current, QKeySequence.Close,
                     "Close the current surface, path or spectrum (a job computing it stops; its file keeps all)")
        self._action(file_menu, "&Quit", self.close, QKeySequence.Quit)

        compute = bar.addMenu("&Compute")
        self._action(compute, "&New Surface…", self.new_surface_dialog, "Ctrl+N",
                     "Compute a surface around the checkpoint of the current surface")
        self._action(compute, "Compute Slice &Line", self.compute_slice_line, "Ctrl+L",
                     "Evaluate the model along the slice line at full resolution")
        self._action(compute, "&Mode Connectivity…", self.mode_connectivity_dialog, "Ctrl+M",
                     "The loss along a path between two checkpoints: the straight line or a trained curve")
        self._action(compute, "&Plane Through Path", self.compute_path_plane, "Ctrl+Shift+M",
                     "The surface in the plane through the current path's endpoints and bend, with them drawn on it")
        self._action(compute, "&Hessian Spectrum…", self.hessian_dialog, "Ctrl+H",
                     "Eigenvalues, trace and spectral density of the Hessian at a checkpoint, with the "
                     "overparameterization report (right-click the map for the Hessian at a point)")
        self._action(compute, "&Resume Computing", self.resume_current, None,
                     "Compute the points the current file is missing")
        self._action(compute, "&Cancel Job", self.cancel_running, "Esc")
        compute.addSeparator()
        self._action(compute, "&Pin Slice Profile", self.pin_slice_profile, "Ctrl+P",
                     "Keep the current slice profile in the 1D view for comparison")
        self._action(compute, "Clear Pinned &Curves", self.state.unpin_all)

        samples = bar.addMenu("&Samples")
        self._action(samples, "&Train Sample…", self.train_sample_dialog, "Ctrl+T",
                     "Train a built-in recipe with a live loss curve, then compute its surface")

        view = bar.addMenu("&View")
        self._action(view, "&Explore", lambda: self.tabs.setCurrentIndex(0), "Ctrl+1")
        self._action(view, "&Compare", lambda: self.tabs.setCurrentIndex(1), "Ctrl+2")
        self._action(view, "&Path", lambda: self.tabs.setCurrentWidget(self.path_view), "Ctrl+3")
        self._action(view, "&Spectrum", lambda: self.tabs.setCurrentWidget(self.spectrum_view), "Ctrl+4")
        self._action(view, "&Reset Slice Line", self.reset_slice)
        self._action(view, "Reset &3D View", self.surface3d.reset_camera, "Ctrl+0")
        view.addSeparator()
        panels = view.addMenu("&Panels")
        for dock in self.docks:
            panels.addAction(dock.toggleViewAction())  # a closed panel comes back from here
        view.addSeparator()
        self.restore_action = QAction("Reopen Files at Start", self, checkable=True)
        self.restore_action.setChecked(self.settings.restore_session_enabled())
        self.restore_action.setStatusTip("Open the files that were open when Landscape last closed")
        self.restore_action.toggled.connect(self.settings.set_restore_session)
        view.addAction(self.restore_action)

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Tour", lambda: self._show_help(tour_dialog(self)), QKeySequence.HelpContents,
                     "The README: what Landscape computes and how to use it")
        self._action(help_menu, "&Keyboard Shortcuts", lambda: self._show_help(shortcuts_dialog(self.menuBar(), self)))
        self._action(help_menu, "&About Landscape", lambda: self._show_help(about_dialog(self)),
                     tip="Versions of Landscape, Python, torch, Qt and pyqtgraph")
        for menu in (file_menu, compute, samples, view, help_menu):
            menu.setToolTipsVisible(True)

    def _show_help(self, dialog) -> None:
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        self.help_dialog = dialog  # the one shown last (tests read it)
        dialog.show()

    def _fill_recent(self) -> None:
        """Recent files, newest first; a file that is gone is shown greyed out."""
        self.recent_menu.clear()
        files = self.settings.recent_files()
        if not files:
            self.recent_menu.addAction("(none)").setEnabled(False)
            return
        for path in files:
            present = Path(path).exists()
            action = self.recent_menu.addAction(path if present else f"{path} (missing)")
            action.setEnabled(present)
            action.triggered.connect(lambda _c=False, p=path: self.open_paths([p]))
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear", self.settings.clear_recent)

    # -- errors ----------------------------------------------------------------------------
    def show_error(self, message: str, details: str = "") -> None:
        """A one-line message with details on request; never blocks, never closes anything."""
        self.errors.append((message, details))
        box = QMessageBox(QMessageBox.Critical, "Landscape", message, QMessageBox.Ok, self)
        if details:
            box.setDetailedText(details)
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()
        self.error_box = box
        self.statusBar().showMessage(message, 10000)

    def _guard(self, what, *args):
        """Run ``what(*args)``; a LandscapeError or a bug becomes an error dialog, not a crash."""
        try:
            return what(*args)
        except LandscapeError as exc:
            self.show_error(one_line(exc), traceback.format_exc())
        except Exception as exc:  # a library error or a bug: report it, keep the window alive
            self.show_error(f"{type(exc).__name__}: {one_line(exc)}", traceback.format_exc())
        return None

    # -- opening -------------------------------------------------------------------------------
    def open_paths(self, paths: list[str | Path]) -> None:
        """Open files by what they are: surface files as grids, anything else as checkpoints."""
        grids, checkpoints = [], []
        for path in map(Path, paths):
            if path.suffix.lower() in (".h5", ".hdf5"):
                grids.append(path)
            else:
                checkpoints.append(path)
        for path in grids:
            self.open_grid(path)
        if checkpoints:
            self.open_checkpoints(checkpoints)

    def open_grid(self, path: str | Path, resume: bool = True) -> Landscape | None:
        """Read a result file (a surface or a path) and show it; a partial Landscape file is resumed unless
        another process writes it."""
        running = self.state.find(path)
        if running is not None and self._is_running(path):
            self.state.set_current(running)  # our job is writing it; what it shows is current already
            return running
        landscape = self._guard(open_result, path)
        if landscape is None:
            self.settings.remove_recent(path)  # what cannot be opened is not offered again
            return None
        landscape = self.state.add(landscape, make_current=not landscape.is_line)
        self.settings.add_recent(path)
        self.settings.set_last_folder("grids", path)
        if resume and landscape.surface.format == "landscape" and not landscape.complete:
            self.resume(landscape)
        return landscape

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt naming
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt naming
        """Dropped files open by what they are: surface and path files as results, others as checkpoints."""
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def open_grid_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open surface, path and spectrum files",
                                                self.settings.last_folder("grids"),
                                                GRID_FILTER)
        for path in paths:
            self.open_grid(path)

    def open_checkpoint_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open checkpoints", self.settings.last_folder("checkpoints"),
                                                CHECKPOINT_FILTER)
        if paths:
            self.open_checkpoints([Path(p) for p in paths])

    def open_checkpoints(self, paths: list[Path]) -> None:
        """Ask model/data where needed, then surface settings once, and queue one job per checkpoint."""
        from landscape_gui.dialogs.compute_dialog import ComputeDialog
        from landscape_gui.dialogs.model_dialog import ModelDialog, automatic_choice

        choices = []
        for path in paths:
            self.settings.set_last_folder("checkpoints", path)
            if not path.is_file():
                self.show_error(f"no such checkpoint: {path}")
                continue
            choice = self._guard(automatic_choice, path)
            if choice is None:
                dialog = ModelDialog(path, settings=self.settings.q, parent=self)
                if not dialog.exec():
                    continue
                choice = dialog.choice()
            choices.append((path, choice))
        if not choices:
            return
        first_path, first_choice = choices[0]
        dialog = ComputeDialog(first_path, first_choice, settings=self.settings.q, parent=self)
        if len(choices) > 1:
            dialog.setWindowTitle(f"New surface for {len(choices)} checkpoints (same settings)")
        if not dialog.exec():
            return
        template = dialog.request()
        for path, choice in choices:
            request = template if path == first_path else same_settings_for(template, path, choice)
            self.submit(request)

    # -- computing -----------------------------------------------------------------------------
    def submit(self, request) -> None:
        """Queue a job (a SurfaceRequest or a PathRequest); its file opens as soon as the job has created it."""
        self.runner.submit(request)
        self._show_progress(True)

    def _is_running(self, path: str | Path) -> bool:
        return self.runner.is_running(path)

    def resume_current(self) -> None:
        if self.state.current is not None:
            self.resume(self.state.current)

    def resume(self, landscape: Landscape) -> None:
        """Compute what a partial file misses, unless it is being computed already (here or elsewhere)."""
        if landscape.complete or landscape.surface.format != "landscape":
            return
        if self.runner.is_running(landscape.path) or self.runner.is_queued(landscape.path):
            return
        writer = writer_of(landscape.path)
        if writer is not None:
            self.statusBar().showMessage(f"{landscape.path.name} is being computed by {writer}; "
                                         "open it again when that has finished", 10000)
            return
        request = self._guard(resume_request, landscape.path)
        if request is not None:
            self.statusBar().showMessage(f"resuming {landscape.path.name}", 5000)
            self.submit(request)

    def new_surface_dialog(self) -> None:
        landscape = self.state.current
        checkpoint = landscape.surface.attrs.get("checkpoint") if landscape is not None else None
        if checkpoint and Path(checkpoint).is_file():
            self.open_checkpoints([Path(checkpoint)])
        else:
            self.open_checkpoint_dialog()

    def mode_connectivity_dialog(self) -> None:
        """Compute ▸ Mode Connectivity…: two checkpoints and a path; the job fills the Path tab as it runs."""
        from landscape_gui.dialogs.path_dialog import PathDialog

        a, b = self._endpoints_at_hand()
        dialog = PathDialog(a, b, settings=self.settings.q, parent=self)
        self.path_dialog = dialog  # the one shown last (tests drive it)
        if dialog.exec():
            request = self._guard(dialog.request)
            if request is not None:
                self.submit(request)

    def hessian_dialog(self) -> None:
        """Compute ▸ Hessian Spectrum…: a checkpoint and what to compute; the Spectrum tab shows the job running."""
        from landscape_gui.dialogs.hessian_dialog import HessianDialog

        a, _b = self._endpoints_at_hand()
        dialog = HessianDialog(a, settings=self.settings.q, parent=self)
        self.hessian_dialog_shown = dialog  # the one shown last (tests drive it)
        if dialog.exec():
            request = self._guard(dialog.request)
            if request is not None:
                self.submit(request)
                self.tabs.setCurrentWidget(self.spectrum_view)

    def hessian_here(self, x: float, y: float) -> None:
        """The map's right-click "Hessian here": the Hessian at the grid point nearest (x, y) of the current
        surface, with the last Hessian dialog's choices and the report, into a file beside the surface."""
        from landscape_gui.dialogs.hessian_dialog import hessian_here_request, stored_options

        landscape = self.state.current
        if landscape is None or landscape.kind != "surface" or landscape.surface.dimensions != 2:
            self.show_error("show a 2D surface to take the Hessian at one of its points")
            return
        surface = landscape.surface
        node = nearest_node(surface.x, surface.y, x, y)
        if node is None:
            self.show_error(f"({x:.4g}, {y:.4g}) is outside the surface's grid")
            return
        point = (float(surface.x[node[0]]), float(surface.y[node[1]]))
        request = self._guard(hessian_here_request, landscape.path, surface.attrs, point,
                              stored_options(self.settings.q))
        if request is not None:
            self.statusBar().showMessage(f"the Hessian at x {point[0]:.4g}, y {point[1]:.4g}: "
                                         f"{Path(request.out).name}", 5000)
            self.submit(request)
            self.tabs.setCurrentWidget(self.spectrum_view)

    def _endpoints_at_hand(self) -> tuple[str | None, str | None]:
        """Checkpoints A and B to start the dialog with: the current path's, or the current surface's checkpoint."""
        current = self.state.current
        if current is None:
            return None, None
        attrs = current.surface.attrs
        a = attrs.get("checkpoint") if attrs.get("checkpoint") and Path(attrs["checkpoint"]).is_file() else None
        b = attrs.get("b_checkpoint") if current.kind == "path" else None  # else the dialog looks beside A
        return a, (b if b and Path(b).is_file() else None)

    def compute_path_plane(self) -> None:
        """The plane through the current path's endpoints and bend (Garipov et al.'s figure), as a surface."""
        landscape = self.state.current
        if landscape is None or landscape.kind != "path":
            self.show_error("open or compute a path with a trained curve first (Compute ▸ Mode Connectivity…)")
            return
        request = self._guard(plane_request, landscape.path)
        if request is not None:
            self.submit(request)

    def compute_slice_line(self) -> None:
        """Evaluate the model along the slice line at full resolution (a 1D file next to the surface)."""
        landscape = self.state.current
        segment = self.state.view.slice
        if landscape is None or segment is None or landscape.surface.dimensions != 2:
            self.show_error("draw a slice line on a 2D Landscape surface first")
            return
        request = self._guard(line_request, landscape.path, segment[0], segment[1], LINE_POINTS)
        if request is not None:
            self.submit(request)

    @property
    def busy(self) -> bool:
        """A job runs or waits, or a background task runs."""
        return self.runner.busy or bool(self.runner.queue) or self.task is not None

    def cancel_running(self) -> None:
        """What the Cancel button and Esc stop: the background task if there is one, else the running job."""
        if self.task is not None:
            self.task.cancel()
        else:
            self.runner.cancel_current()

    def begin_task(self, worker, text: str) -> None:
        """Run a background task (the first launch's training): ``text`` says in the map what is happening,
        the status bar shows its progress; Cancel stops it, closing the window waits for it."""
        self.task = worker
        self.progress_bar.setFormat("%p%")
        self.say_in_map(text)
        self._show_progress(True)

    def say_in_map(self, text: str | None) -> None:
        """What the map says until it has a picture, with the running task's or job's progress under it.

        The bar is determinate from the start (0 of 1 until the first report): a busy bar
        animates, and every frame of it recomposes the whole GL window.
        """
        self._map_text = text
        self.heatmap.set_status(text, 0 if text else None, 1 if text else None)

    def task_progressed(self, value: int, maximum: int, note: str = "") -> None:
        """Show a task's progress at the next redraw tick (see :meth:`_job_progressed` for why)."""
        self._pending_status = (value, maximum, note)
        self._schedule_redraw()

    def end_task(self, message: str = "", next_step: str | None = None) -> None:
        """The task has ended; ``next_step`` says in the map what comes now (until a picture shows)."""
        self.task = None
        self.say_in_map(next_step)
        if not self.runner.busy:
            self._show_progress(False)
        if message:
            self.statusBar().showMessage(message, 10000)

    def _show_progress(self, busy: bool) -> None:
        self.progress_bar.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.eta_label.setVisible(busy)

    def _job_started(self, started: Started) -> None:
        out = started.path
        landscape = RESULT_STATES[started.kind](started.result)
        landscape = self.state.add(landscape, make_current=not landscape.is_line)  # a line joins the 1D view
        landscape.computing = True
        self.settings.add_recent(out)
        self.progress_bar.setRange(0, started.total)
        self.progress_bar.setValue(started.resumed_from)
        self.progress_bar.setFormat("%p%")
        self._job_name = out.name
        for message in started.messages:
            self.statusBar().showMessage(message, 5000)
        self._show_progress(True)

    def _job_progressed(self, request, progress: Progress) -> None:
        """Fold new results in at once; show them (views and status bar) at most every REDRAW_MS.

        Any repaint, even of the status bar, recomposes the whole window, which with the 3D
        view's OpenGL (software rendering on most servers) costs tens of milliseconds of CPU
        that the job's thread then lacks: a job reports far more often than that.
        """
        landscape = self.state.find(progress.path)
        if landscape is not None:
            landscape.apply(progress)
            self._stale.add(landscape)
        if isinstance(progress, PathProgress):
            status = self._path_status(landscape, progress)
        elif isinstance(progress, HessianProgress):
            live = landscape.live if landscape is not None else LiveSpectrum()
            status = (spectrum_status(progress.stage, live) + f", {progress.done}/{progress.total} products"
                      + ("" if progress.eta is None else f"  ETA {format_seconds(progress.eta)}"))
        elif progress.phase != COMPUTING:
            status = f"{progress.phase}…"
        else:
            status = f"{progress.done}/{progress.total}" + ("" if progress.eta is None else
                                                            f"  ETA {format_seconds(progress.eta)}")
        self._pending_status = (progress.done, progress.total, f"{self._job_name}: {status}")
        self._schedule_redraw()

    @staticmethod
    def _path_status(landscape, progress: PathProgress) -> str:
        """Training epoch k/E (with the live loss), or the series being evaluated and its points."""
        series = landscape.result.series.get(progress.series) if landscape is not None else None
        text = path_status(progress.phase, epoch=progress.epoch, epochs=progress.epochs, loss=progress.loss,
                           series=progress.series, attrs=landscape.result.attrs if landscape is not None else None,
                           series_done=int(series.done.sum()) if series is not None else 0,
                           points=int(series.done.size) if series is not None else 0)
        return text + ("" if progress.eta is None else f"  ETA {format_seconds(progress.eta)}")

    def _schedule_redraw(self) -> None:
        if not self._redraw_timer.isActive():
            self._redraw_timer.start()

    def redraw_stale(self) -> None:
        """Show what arrived since the last tick: new values in the views, progress in the status bar."""
        stale, self._stale = [l for l in self._stale if l in self.state.landscapes], set()
        for landscape in stale:
            self.state.updated.emit(landscape)
        if self._pending_status is not None:
            value, maximum, note = self._pending_status
            self._pending_status = None
            self.progress_bar.setRange(0, maximum)
            self.progress_bar.setValue(value)
            self.eta_label.setText(note)
            if self._map_text is not None:
                self.heatmap.set_status(self._map_text, value, maximum)

    def _job_ended(self, request, reread: bool = False) -> Landscape | None:
        """Whatever the ending: stop pending redraws and show the landscape as it now is."""
        self._redraw_timer.stop()
        self._stale.clear()
        self._pending_status = None
        self.say_in_map(None)
        landscape = self.state.find(request.out) if request is not None else None
        if landscape is not None:
            landscape.computing = False
            # the finished file: its attributes are final now too; a spectrum's steps carry estimates only,
            # so what a cancelled run saved (eigenvalues, trace, probes) is read from its file
            if reread or landscape.kind == "spectrum":
                self._guard(landscape.reload)
            self.state.updated.emit(landscape)
        return landscape

    def _job_finished(self, request, summary) -> None:
        self._job_ended(request, reread=True)
        if summary is not None and summary.kind == "spectrum":
            products = summary.details.get("hvp_count", summary.done)
            self.statusBar().showMessage(f"{Path(request.out).name}: {products} Hessian-vector products in "
                                         f"{summary.seconds:.1f} s", 10000)
        elif summary is not None:
            note = f"{Path(request.out).name}: {summary.done}/{summary.total} done in {summary.seconds:.1f} s"
            nonfinite = sum(int(m.get("nonfinite", 0)) for name, m in summary.metrics.items() if "loss" in name)
            if nonfinite:
                note += f", {nonfinite} non-finite (shown in magenta)"
            self.statusBar().showMessage(note, 10000)

    def _job_cancelled(self, request, summary) -> None:
        self._job_ended(request)
        unit = "products" if summary is not None and summary.kind == "spectrum" else "points"
        done = f"{summary.done}/{summary.total} {unit}" if summary is not None else f"the {unit} computed"
        self.statusBar().showMessage(f"cancelled: {done} are saved in {request.out}; open it again to resume",
                                     10000)

    def _job_failed(self, request, message: str, details: str) -> None:
        self._job_ended(request)
        self.show_error(message, details)

    def _jobs_idle(self) -> None:
        self._show_progress(False)
        self.eta_label.setText("")

    # -- the slice line ----------------------------------------------------------------------
    def reset_slice(self) -> None:
        if self.state.current is not None and self.state.current.surface.dimensions == 2:
            self.state.view.slice = default_slice(self.state.current.surface)

    def pin_slice_profile(self) -> None:
        profile = self.profile.last_profile
        current = self.state.current
        if profile is None or current is None:
            return
        (x0, y0), (x1, y1) = self.state.view.slice
        label = f"{current.name}: ({x0:.2f}, {y0:.2f})→({x1:.2f}, {y1:.2f})"
        self.state.pin(curve_from_profile(f"pin:{label}", label, profile, owner=current.path))

    # -- hover -------------------------------------------------------------------------------
    def show_hover(self, x: float, y: float) -> None:
        landscape = self.state.current
        if landscape is None or landscape.surface.dimensions != 2:
            return
        self.hover_label.setText(point_readout(landscape, x, y, named=False) or f"x {x:.4g}, y {y:.4g}")

    # -- 3D --------------------------------------------------------------------------------------
    def _view_changed(self, name: str) -> None:
        if name != "slice":  # how surfaces are shown persists; where the slice line is does not
            self.settings.set_display(self.state.view.as_dict())

    # -- export -----------------------------------------------------------------------------------
    def export_grid(self, path: str | Path) -> Path | None:
        landscape = self.state.current
        if landscape is None:
            self.show_error("open a surface before exporting it")
            return None
        if landscape.kind != "surface":
            self.show_error(f"a {landscape.kind} has no grid to export: its file is the data; use File ▸ Export "
                            "Figure… for a picture")
            return None
        out = self._guard(export_grid, landscape.surface, path, self.state.view.metric)
        if out is not None:
            self.settings.set_last_folder("exports", out)
            self.statusBar().showMessage(f"exported {out}", 5000)
        return out

    def export_grid_dialog(self) -> None:
        """A file chooser whose suggested name follows the chosen format; writes through :meth:`export_grid`."""
        from landscape_gui.dialogs.export_dialogs import ask_export_grid

        self._guard(ask_export_grid, self)

    def export_figure_dialog(self) -> None:
        """The figure dialog: which views, title, size and DPI, PNG or SVG."""
        from landscape_gui.dialogs.export_dialogs import ask_export_figure

        out = self._guard(ask_export_figure, self)
        if out is not None:
            self.statusBar().showMessage(f"saved {out}", 5000)

    def screenshot(self, path: str | Path, size: QSize | None = None) -> Path:
        """Render the whole window (the 3D view's GL content included) to a PNG."""
        if size is not None:
            self.resize(size)
        image = self.grab().toImage().convertToFormat(QImage.Format_ARGB32)
        if self.surface3d.available and self.surface3d.isVisible():
            painter = QPainter(image)
            origin = self.surface3d.mapTo(self, self.surface3d.rect().topLeft())
            scale = image.width() / max(1, self.width())
            gl = self.surface3d.grab_image(int(self.surface3d.width() * scale), int(self.surface3d.height() * scale))
            painter.drawImage(int(origin.x() * scale), int(origin.y() * scale), gl)
            painter.end()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(path)):
            raise LandscapeError(f"could not write {path}; check the folder exists and is writable")
        return path

    # -- samples ------------------------------------------------------------------------------------
    def train_sample_dialog(self) -> None:
        from landscape_gui.dialogs.train_dialog import TrainSampleDialog

        dialog = TrainSampleDialog(settings=self.settings.q, parent=self)
        if dialog.exec() and dialog.result_value() is not None:
            self.open_checkpoints([Path(p) for p in dialog.result_value().checkpoints])

    # -- closing --------------------------------------------------------------------------------------
    def close_current(self) -> None:
        """Close the current result; its own job stops (points computed stay in the file), the others go on."""
        landscape = self.state.current
        if landscape is not None:
            self.runner.cancel(landscape.path)
            self.state.remove(landscape)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt naming
        """Cancel jobs cleanly (every computed point is on disk already) and save the layout."""
        self.runner.cancel_all(wait=True)
        if self.task is not None:
            try:
                self.task.stop_and_wait()  # the sample keeps the epoch it reached; retrained next launch
            except RuntimeError:  # already finished and deleted
                pass
        self.settings.set_window(self.saveGeometry(), self.saveState())
        self.settings.set_display(self.state.view.as_dict())
        self.settings.set_session(self.session())
        self.settings.sync()
        super().closeEvent(event)

    # -- the session: reopen what was open ----------------------------------------------------------------
    def session(self) -> dict:
        """What is open now, to reopen at the next start: files in order, the current one, tab, slice line."""
        current = self.state.current
        return {
            "files": [str(l.path.resolve()) for l in self.state.landscapes],
            "current": str(current.path.resolve()) if current is not None else None,
            "tab": self.tabs.currentIndex(),
            "slice": self.state.view.slice,
        }

    def restore_session(self) -> bool:
        """Reopen the files of the last session (those still on disk); False if there was nothing to reopen."""
        if not self.settings.restore_session_enabled():
            return False
        session = self.settings.session()
        files = [f for f in session.get("files") or [] if Path(f).is_file()]
        if not files:
            return False
        for path in files:
            self.open_grid(path)
        current = self.state.find(session["current"]) if session.get("current") else None
        if current is not None:
            self.state.set_current(current)
            if session.get("slice") and current.surface.dimensions == 2:
                self.state.view.slice = session["slice"]
        self.tabs.setCurrentIndex(int(session.get("tab") or 0))
        self._follow_current_kind()
        return True

    def _restore_window(self) -> None:
        geometry, state = self.settings.window()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(self.first_size())
        if state is not None:
            self.restoreState(state)

    def first_size(self) -> QSize:
        """1400 x 900, or what the screen has room for (a 1024 x 768 laptop gets its whole screen)."""
        screen = self.screen() or QApplication.primaryScreen()
        if screen is None:
            return QSize(*PREFERRED_SIZE)
        room = screen.availableGeometry()
        return QSize(min(PREFERRED_SIZE[0], room.width()), min(PREFERRED_SIZE[1], room.height()))

    def _apply_display_settings(self) -> None:
        """Show surfaces as last time; a choice this version no longer has (or cannot read) is skipped."""
        for key, value in self.settings.display().items():
            try:
                self.state.view.set(key, value)
            except (ValueError, AttributeError, TypeError):
                pass

    def _follow_current_kind(self) -> None:
        """A path shows in the Path tab, a spectrum in the Spectrum tab and a surface in Explore: the tab follows
        the current result's kind.

        While a path or a spectrum is current the Explore tab is disabled (its map, profile and 3D view draw
        surfaces); Compare keeps showing the surfaces ticked in the list.
        """
        current = self.state.current
        kind = current.kind if current is not None else None
        own_tabs = {"path": self.path_view, "spectrum": self.spectrum_view}
        explore = self.tabs.indexOf(self.explore)
        self.tabs.setTabEnabled(explore, kind not in own_tabs)
        tip = f"The current result is a {kind}: see the {kind.capitalize()} tab" if kind in own_tabs else ""
        self.tabs.setTabToolTip(explore, tip)
        if kind in own_tabs:
            self.tabs.setCurrentWidget(own_tabs[kind])
        elif current is not None and self.tabs.currentWidget() in own_tabs.values():
            self.tabs.setCurrentWidget(self.explore)

    def _update_title(self) -> None:
        current = self.state.current
        self.setWindowTitle(f"Landscape — {current.name}" if current is not None else "Landscape")


def same_settings_for(template: SurfaceRequest, checkpoint: Path, choice) -> SurfaceRequest:
    """The template request for another checkpoint: its own model/data, output named after it."""
    from dataclasses import replace

    out = Path(template.out)
    stem = checkpoint.stem if checkpoint.stem not in ("model", "checkpoint") else checkpoint.parent.name
    return replace(template, checkpoint=str(checkpoint), model=choice.model, model_kwargs=choice.model_kwargs,
                   data=choice.data, trust_pickle=choice.trust_pickle,
                   out=str(checkpoint.parent / f"{stem}_{out.name.split('_', 1)[-1]}"))


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {(seconds % 3600) // 60:.0f} min"

