"""Export Figure and Export Grid: the whole interaction, from the menu item to the file on disk.

``ask_export_figure(window)`` shows :class:`ExportFigureDialog` (which views, title, size in
inches or pixels, DPI, PNG or SVG, file) and saves the figure with
:func:`landscape_gui.figure_export.save_figure`. ``ask_export_grid(window)`` asks for a file
with :class:`SaveChooser` and hands it to ``window.export_grid``. Both start in the folder the
last file of their kind went to. File names follow the chosen format: choosing another format
changes the suffix, and a name typed without one gets the format's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.errors import LandscapeError
from engine.io.references import one_line
from landscape_gui.dialogs.model_dialog import ErrorLabel, browse_button, row
from landscape_gui.figure_export import MAX_DPI, MAX_SIDE, MIN_DPI, Figure, Panel, Target, save_figure
from landscape_gui.settings import AppSettings

GRID_FORMATS = (("Landscape HDF5", ".h5"), ("CSV table", ".csv"), ("ParaView PolyData", ".vtp"))
FIGURE_FORMATS = (("PNG image", ".png"), ("SVG drawing", ".svg"))
UNITS = (("inches", "in"), ("pixels", "px"))
DEFAULTS = {"unit": "in", "width": 7.0, "height": 5.0, "dpi": 300, "format": ".png"}  # a two-column paper figure
KEY_FIGURE = "export_figure/"  # + unit, width, height, dpi, format
KEY_GRID_FORMAT = "export_grid/format"
PROFILE_SHARE = 0.8  # the profile row's height relative to the row of maps above it (room for its legend)


def _chosen(box: QCheckBox) -> bool:
    return box.isChecked() and box.isEnabled()


# -- file names that follow the format ------------------------------------------------------------
def _filter(label: str, suffix: str) -> str:
    return f"{label} (*{suffix})"


def with_suffix(path: str | Path, suffix: str, known: Sequence[str]) -> Path:
    """``path`` in another format: a known format's suffix is replaced, any other name gets ``suffix`` added."""
    path = Path(path)
    if path.suffix.lower() in known:
        return path.with_suffix(suffix)
    return path.with_name(path.name + suffix)


def typed_path(path: str | Path, suffix: str, known: Sequence[str]) -> Path:
    """A typed name as the user meant it: one ending in a known format's suffix stays, others get ``suffix``."""
    path = Path(path)
    return path if path.suffix.lower() in known else path.with_name(path.name + suffix)


class SaveChooser(QFileDialog):
    """A save-file dialog whose name follows the chosen format.

    Qt's own dialog (not the desktop's) is used: it renames the suffix when the filter changes,
    where desktop dialogs differ; a name typed without a suffix gets the chosen filter's.
    """

    def __init__(self, parent: QWidget | None, caption: str, formats: Sequence[tuple[str, str]], folder: str | Path,
                 stem: str, suffix: str) -> None:
        super().__init__(parent, caption, str(folder))
        self._formats = tuple(formats)
        self.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        self.setFileMode(QFileDialog.FileMode.AnyFile)
        self.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        self.setNameFilters([_filter(label, s) for label, s in self._formats])
        self.selectNameFilter(_filter(*self._format_of(suffix)))
        self.setDefaultSuffix(suffix.lstrip("."))
        self.selectFile(stem + suffix)

    def _format_of(self, suffix: str) -> tuple[str, str]:
        return next((f for f in self._formats if f[1] == suffix), self._formats[0])

    def suffix(self) -> str:
        """The suffix of the chosen filter."""
        chosen = self.selectedNameFilter()
        return next((s for label, s in self._formats if _filter(label, s) == chosen), self._formats[0][1])

    def accept(self) -> None:  # noqa: D102 - the filter chosen last decides the suffix a bare name gets
        self.setDefaultSuffix(self.suffix().lstrip("."))
        super().accept()

    def chosen_path(self) -> Path:
        """The file to write after ``exec()`` accepted: a name without a known suffix gets the filter's."""
        return typed_path(self.selectedFiles()[0], self.suffix(), [s for _label, s in self._formats])


# -- Export Grid ----------------------------------------------------------------------------------
def ask_export_grid(window: Any) -> Path | None:
    """Ask where and in which format to save the current surface, then ``window.export_grid`` it."""
    current = window.state.current
    if current is None:
        window.show_error("open a surface before exporting it")
        return None
    settings: AppSettings = window.settings
    suffixes = [s for _label, s in GRID_FORMATS]
    remembered = str(settings.q.value(KEY_GRID_FORMAT, suffixes[0]))
    chooser = SaveChooser(window, "Export grid", GRID_FORMATS, settings.last_folder("exports"), current.path.stem,
                          remembered if remembered in suffixes else suffixes[0])
    if not chooser.exec():
        return None
    out = window.export_grid(chooser.chosen_path())
    if out is not None:
        settings.q.setValue(KEY_GRID_FORMAT, out.suffix.lower())
    return out


# -- Export Figure --------------------------------------------------------------------------------
@dataclass(frozen=True)
class FigureViews:
    """The window's views a figure can hold, and what is on screen now."""

    heatmap: Target
    profile: Target
    surface3d: Any  # Surface3DView: ``available``, ``reason``, ``grab_image``
    compare: Target
    compare_shown: bool
    two_d: bool  # the current surface is a 2D map
    title: str  # the current surface's name
    stem: str  # its file name, for the figure's
    path: Target | None = None  # the Path tab's plot (loss along t, barriers, legend)
    training: Target | None = None  # the Path tab's plot of the curve's training loss
    path_shown: bool = False  # the Path tab is showing a path
    has_training: bool = False  # the path shown trains a curve
    spectrum: Target | None = None  # the Spectrum tab's plot (density, eigenvalue sticks, legend)
    spectrum_shown: bool = False  # the Spectrum tab is showing a spectrum


def figure_views(window: Any) -> FigureViews:
    """The views of the main window (its public ``heatmap``, ``profile``, ``surface3d``, ``compare``,
    ``path_view``, ``spectrum_view``, ``tabs``)."""
    current = window.state.current
    path_view = getattr(window, "path_view", None)
    shown_path = path_view.shown if path_view is not None else None
    path_shown = shown_path is not None and window.tabs.currentWidget() is path_view
    spectrum_view = getattr(window, "spectrum_view", None)
    shown_spectrum = spectrum_view.shown if spectrum_view is not None else None
    spectrum_shown = shown_spectrum is not None and window.tabs.currentWidget() is spectrum_view
    if path_shown:  # the figure is of the path on screen, whatever the current result
        current = shown_path
    elif spectrum_shown:
        current = shown_spectrum
    return FigureViews(window.heatmap, window.profile, window.surface3d, window.compare,
                       compare_shown=window.tabs.currentWidget() is window.compare,
                       two_d=current is not None and current.surface.dimensions == 2,
                       title=current.name if current is not None else "",
                       stem=current.path.stem if current is not None else "figure",
                       path=path_view.figure_target() if path_view is not None else None,
                       training=path_view.training_plot if path_view is not None else None,
                       path_shown=path_shown,
                       has_training=path_shown and shown_path.has_training,
                       spectrum=spectrum_view.figure_target() if spectrum_view is not None else None,
                       spectrum_shown=spectrum_shown)


def ask_export_figure(window: Any) -> Path | None:
    """Show the Export Figure dialog for ``window``; the saved file, or None when cancelled."""
    dialog = ExportFigureDialog(figure_views(window), window.settings, parent=window)
    return dialog.saved if dialog.exec() else None


class ExportFigureDialog(QDialog):
    """Which views, title, size, DPI, format and file; Export saves and closes, an error stays inline."""

    def __init__(self, views: FigureViews, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export figure")
        self._views = views
        self._settings = settings
        self.saved: Path | None = None

        self.include_map = QCheckBox("2D map")
        self.include_profile = QCheckBox("1D profile")
        self.include_3d = QCheckBox("3D view")
        self.include_compare = QCheckBox("Compare panels")
        self.include_path = QCheckBox("Path (loss along t)")
        self.include_training = QCheckBox("Curve training loss")
        self.include_spectrum = QCheckBox("Spectrum (density, eigenvalues)")
        include_box = QGroupBox("Include")
        include_grid = QGridLayout(include_box)
        for k, box in enumerate(self._include_boxes()):
            include_grid.addWidget(box, k // 2, k % 2)

        self.title_edit = QLineEdit(views.title)
        self.title_edit.setPlaceholderText("no title")
        self.title_edit.setClearButtonEnabled(True)
        self.width_box, self.height_box = QDoubleSpinBox(), QDoubleSpinBox()
        for box in (self.width_box, self.height_box):
            box.setKeyboardTracking(False)
            box.setMinimumWidth(90)
        self.unit = QComboBox()
        for label, key in UNITS:
            self.unit.addItem(label, key)
        self.dpi = QSpinBox()
        self.dpi.setRange(int(MIN_DPI), int(MAX_DPI))
        self.dpi.setSuffix(" dpi")
        self.dpi.setKeyboardTracking(False)
        self.dpi.setToolTip("Resolution: text and lines get their size in points at this resolution; "
                            "it is recorded in the PNG")
        self.size_note = QLabel()
        self.size_note.setStyleSheet(f"color: {ErrorLabel.COLORS['info']};")
        self.format = QComboBox()
        for label, suffix in FIGURE_FORMATS:
            self.format.addItem(label, suffix)
        self.path_edit = QLineEdit()
        self.path_browse = browse_button()

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        form.addRow("Title:", self.title_edit)
        form.addRow("Size:", row(self.width_box, QLabel("×"), self.height_box, self.unit, QWidget(),
                                 stretch_first=False))
        form.addRow("Resolution:", row(self.dpi, QWidget(), stretch_first=False))
        form.addRow("", self.size_note)
        form.addRow("Format:", row(self.format, QWidget(), stretch_first=False))
        form.addRow("File:", row(self.path_edit, self.path_browse))

        self.note = ErrorLabel()
        self.error = ErrorLabel()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.export_button().setText("Export")
        self.buttons.accepted.connect(self.export)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(include_box)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addWidget(self.error)
        layout.addStretch(1)
        layout.addWidget(self.buttons)

        self._offer_views()
        self._restore()
        self.path_edit.setText(str(Path(settings.last_folder("figures")) / (views.stem + self.suffix())))
        self.unit.currentIndexChanged.connect(self._unit_changed)
        for signal in (self.width_box.valueChanged, self.height_box.valueChanged, self.dpi.valueChanged):
            signal.connect(self._update)
        for box in self._include_boxes():
            box.toggled.connect(self._update)
        self.format.currentIndexChanged.connect(self._format_changed)
        self.path_edit.editingFinished.connect(self._path_edited)
        self.path_browse.clicked.connect(self._browse)
        self._update()
        self.resize(max(self.sizeHint().width(), 560), self.sizeHint().height())

    # -- public -----------------------------------------------------------------------------
    def export_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def suffix(self) -> str:
        """.png or .svg, as the format box says."""
        return self.format.currentData()

    def pixel_size(self) -> tuple[int, int]:
        """The figure's size in pixels (inches times DPI in inches)."""
        if self.unit.currentData() == "px":
            return round(self.width_box.value()), round(self.height_box.value())
        return round(self.width_box.value() * self.dpi.value()), round(self.height_box.value() * self.dpi.value())

    def set_size(self, width: float, height: float, unit: str, dpi: int | None = None) -> None:
        """Set the size fields (tests, presets); ``unit`` is "in" or "px"."""
        if dpi is not None:
            self.dpi.setValue(dpi)
        self.unit.setCurrentIndex(self.unit.findData(unit))
        self.width_box.setValue(width)
        self.height_box.setValue(height)

    def set_path(self, path: str | Path) -> None:
        """Set the file as if typed (the format follows a known suffix; a bare name gets the format's)."""
        self.path_edit.setText(str(path))
        self._path_edited()

    def path(self) -> Path:
        """The file the figure goes to, in the chosen format."""
        text = self.path_edit.text().strip()
        if not text:
            raise LandscapeError("choose the file to save the figure to")
        return typed_path(Path(text).expanduser(), self.suffix(), [s for _label, s in FIGURE_FORMATS])

    def figure(self) -> Figure:
        """The figure the fields describe: maps side by side above the profile, under the title; a path's
        plot with its training loss beside it."""
        views = self._views
        top: list[Panel] = [view for view, box in ((views.compare, self.include_compare),
                                                    (views.heatmap, self.include_map),
                                                    (views.surface3d, self.include_3d)) if _chosen(box)]
        top += [view for view, box in ((views.path, self.include_path), (views.training, self.include_training),
                                       (views.spectrum, self.include_spectrum))
                if view is not None and _chosen(box)]
        bottom: list[Panel] = [views.profile] if _chosen(self.include_profile) else []
        rows = tuple(tuple(r) for r in (top, bottom) if r)
        width, height = self.pixel_size()
        return Figure(rows=rows, width=width, height=height, dpi=float(self.dpi.value()),
                      title=self.title_edit.text().strip(),
                      row_weights=(1.0, PROFILE_SHARE) if top and bottom else ())

    def export(self) -> Path | None:
        """Save the figure; close on success, else show the one-line error and stay open."""
        QGuiApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            out = save_figure(self.figure(), self.path())
        except LandscapeError as exc:
            self.error.show_message(one_line(exc), "error")
            return None
        finally:
            QGuiApplication.restoreOverrideCursor()
        self.saved = out
        self._settings.set_last_folder("figures", out)
        self._remember()
        self.accept()
        return out

    # -- internals --------------------------------------------------------------------------
    def _include_boxes(self) -> tuple[QCheckBox, ...]:
        return (self.include_map, self.include_profile, self.include_3d, self.include_compare, self.include_path,
                self.include_training, self.include_spectrum)

    def _offer_views(self) -> None:
        """Enable what can be drawn now; tick what the user is looking at."""
        views = self._views
        self.include_path.setEnabled(views.path_shown)
        self.include_path.setToolTip("" if views.path_shown else "Show a path in the Path tab to include it")
        self.include_training.setEnabled(views.path_shown and views.has_training)
        self.include_training.setToolTip("" if views.has_training else "Only a trained curve has a training loss")
        self.include_path.setChecked(views.path_shown)
        self.include_training.setChecked(False)
        self.include_spectrum.setEnabled(views.spectrum_shown)
        self.include_spectrum.setToolTip("" if views.spectrum_shown else "Show a spectrum in the Spectrum tab to "
                                         "include it")
        self.include_spectrum.setChecked(views.spectrum_shown)
        if views.path_shown or views.spectrum_shown:  # the Path or Spectrum tab is on screen: the figure is of it
            for box in (self.include_map, self.include_profile, self.include_3d, self.include_compare):
                box.setChecked(False)
                box.setEnabled(False)
                box.setToolTip("Show the Explore or Compare tab to include it")
            return
        self.include_compare.setEnabled(views.compare_shown)
        self.include_compare.setToolTip("" if views.compare_shown else "Show the Compare tab to include its panels")
        has_3d = views.surface3d.available and views.two_d and not views.compare_shown
        self.include_3d.setEnabled(has_3d)
        if not views.surface3d.available:
            self.include_3d.setToolTip(views.surface3d.reason)
        elif not has_3d:
            self.include_3d.setToolTip("The 3D view shows a 2D surface on the Explore tab")
        self.include_compare.setChecked(views.compare_shown)
        self.include_map.setChecked(views.two_d and not views.compare_shown)
        self.include_profile.setChecked(not views.compare_shown)
        self.include_3d.setChecked(has_3d)

    def _update(self, *_args: Any) -> None:
        width, height = self.pixel_size()
        dpi = self.dpi.value()
        self.size_note.setText(f"{width} × {height} pixels = {width / dpi:.2f} × {height / dpi:.2f} in "
                               f"({width / dpi * 2.54:.1f} × {height / dpi * 2.54:.1f} cm) at {dpi} dpi")
        if self.suffix() == ".svg" and _chosen(self.include_3d):
            self.note.show_message("OpenGL draws the 3D view as pixels: in the SVG it is a picture at the "
                                   "figure's resolution; the other views stay vector drawings.", "info")
        else:
            self.note.clear_message()
        problem = self._problem(width, height)
        self.error.show_message(problem, "error")
        self.export_button().setEnabled(not problem)

    def _problem(self, width: int, height: int) -> str:
        """What keeps the fields from making a figure ('' when nothing)."""
        if not self.figure().rows:
            return "choose at least one view to include"
        if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
            return f"a figure is at most {MAX_SIDE} pixels on a side; this one is {width} × {height}"
        return ""

    def _unit_changed(self, *_args: Any) -> None:
        """Keep the figure's size when switching between inches and pixels."""
        to_pixels = self.unit.currentData() == "px"
        factor = self.dpi.value() if to_pixels else 1 / self.dpi.value()
        values = [box.value() * factor for box in (self.width_box, self.height_box)]
        self._set_unit_range(to_pixels)
        for box, value in zip((self.width_box, self.height_box), values):
            box.setValue(value)
        self._update()

    def _set_unit_range(self, pixels: bool) -> None:
        for box in (self.width_box, self.height_box):
            box.blockSignals(True)
            box.setDecimals(0 if pixels else 2)
            if pixels:
                box.setRange(1, MAX_SIDE)
            else:
                box.setRange(0.1, MAX_SIDE / MIN_DPI)
            box.setSingleStep(100 if pixels else 0.5)
            box.setSuffix(" px" if pixels else " in")
            box.blockSignals(False)

    def _format_changed(self, *_args: Any) -> None:
        text = self.path_edit.text().strip()
        if text:
            self.path_edit.setText(str(with_suffix(text, self.suffix(), [s for _label, s in FIGURE_FORMATS])))
        self._update()

    def _path_edited(self) -> None:
        """A typed .png or .svg picks the format; a name without either gets the format's suffix."""
        text = self.path_edit.text().strip()
        if not text:
            return
        index = self.format.findData(Path(text).suffix.lower())
        if index >= 0:
            self.format.setCurrentIndex(index)
        self.path_edit.setText(str(typed_path(text, self.suffix(), [s for _label, s in FIGURE_FORMATS])))

    def _browse(self) -> None:
        current = Path(self.path_edit.text().strip() or self._settings.last_folder("figures"))
        chooser = SaveChooser(self, "Export figure", FIGURE_FORMATS, current.parent, current.stem, self.suffix())
        if chooser.exec():
            self.set_path(chooser.chosen_path())

    def _restore(self) -> None:
        """Last time's size, resolution and format (a paper figure, 7 × 5 in at 300 dpi, the first time)."""
        stored = {key: self._settings.q.value(KEY_FIGURE + key, default) for key, default in DEFAULTS.items()}
        try:
            unit, dpi = str(stored["unit"]), int(stored["dpi"])
            width, height = float(stored["width"]), float(stored["height"])
        except (TypeError, ValueError):  # a hand-edited settings file
            unit, dpi, width, height = DEFAULTS["unit"], DEFAULTS["dpi"], DEFAULTS["width"], DEFAULTS["height"]
        self._set_unit_range(unit == "px")
        self.set_size(width, height, unit if unit in ("in", "px") else "in", dpi)
        self.format.setCurrentIndex(max(0, self.format.findData(str(stored["format"]))))

    def _remember(self) -> None:
        values = {"unit": self.unit.currentData(), "width": self.width_box.value(), "height": self.height_box.value(),
                  "dpi": self.dpi.value(), "format": self.suffix()}
        for key, value in values.items():
            self._settings.q.setValue(KEY_FIGURE + key, value)
