"""Side panels: the list of open landscapes (and which are compared), display controls, file info.

Each panel is given the AppState and writes only to it; it listens to the state's
events to stay in sync when something else (a test, a menu) changes it. The Display
panel is exactly as tall as its controls and the Info panel scrolls, so both stay
usable in a small window (1024 x 700).
"""

from __future__ import annotations

import json
import math

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit, QListWidget,
    QListWidgetItem, QPushButton, QScrollArea, QSpinBox, QVBoxLayout, QWidget,
)

from engine.display.levels import AUTO_LIMITS_TEXT, LIMIT_MODES, LOG_LEVEL_DECADES, SCALES, to_metric_units
from engine.display.paths import series_label
from engine.display.spectra import format_number, point_text
from landscape_gui.state import AppState, Landscape, PathLandscape, SpectrumLandscape
from landscape_gui.views.colors import COLORMAPS


LIMIT_LABELS = {"auto": "Automatic", "percentiles": "Percentiles", "values": "Values"}
LIMIT_NOTES = {  # one short line each; the mode's tooltip says it in full
    "auto": "min to max; log: isolated lowest points clipped",
    "percentiles": "between two percentiles of the values",
    "values": "in the metric's units; empty = auto",
}


def scrolling(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area: a short dock scrolls it instead of clipping it."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
    return area


def list_text(landscape: Landscape | PathLandscape | SpectrumLandscape) -> str:
    """A list entry: the name, a 1D, path or spectrum tag (none is compared) and the progress of a partial file."""
    done, total = landscape.progress
    if landscape.kind in ("path", "spectrum"):
        tag = f"  · {landscape.kind}"
    else:
        tag = "" if landscape.surface.dimensions == 2 else ("  · 1D line" if landscape.is_line else "  · 1D")
    suffix = "" if done == total else f"  [{100 * done // max(total, 1)}%]"
    return f"{landscape.name}{tag}{suffix}"


def list_tooltip(landscape: Landscape | PathLandscape | SpectrumLandscape) -> str:
    if landscape.kind == "path":
        note = "A path between two checkpoints: shown in the Path tab"
    elif landscape.kind == "spectrum":
        note = "A Hessian spectrum: shown in the Spectrum tab, its report beside the other open spectra's"
    else:
        note = ("Tick to include in the Compare tab" if landscape.surface.dimensions == 2
                else "1D: drawn in the profile view (Compare shows 2D surfaces only)")
    return f"{landscape.name}\n{landscape.path}\n{note}"


class LandscapeList(QWidget):
    """Open landscapes; a click makes one current, its check box puts it in the comparison."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.list = QListWidget()
        self.list.setTextElideMode(Qt.ElideMiddle)  # long names keep their end (width, seed) in sight...
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # ...which needs entries no wider than the list
        self.list.setToolTip("Click to show; tick to include in the Compare tab")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        self._syncing = False
        self.list.currentRowChanged.connect(self._row_changed)
        self.list.itemChanged.connect(self._item_changed)
        for event in (state.opened, state.closed, state.compared_changed, state.updated):
            event.connect(lambda *_: self.rebuild())
        state.current_changed.connect(lambda _l: self._select_current())
        self.rebuild()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt naming
        """A few rows: the docks below (Display, Info) need the height more than a short list does."""
        return QSize(super().sizeHint().width(), 6 * self.list.sizeHintForRow(0) + 8 if self.list.count() else 120)

    def rebuild(self) -> None:
        self._syncing = True
        try:
            self.list.clear()
            for landscape in self.state.landscapes:
                item = QListWidgetItem(list_text(landscape))
                item.setToolTip(list_tooltip(landscape))
                if landscape.surface.dimensions == 2:
                    item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
                    item.setCheckState(Qt.Checked if landscape in self.state.compared else Qt.Unchecked)
                else:
                    item.setFlags(item.flags() & ~Qt.ItemIsUserCheckable)
                self.list.addItem(item)
            self._select_current()
        finally:
            self._syncing = False

    def _select_current(self) -> None:
        if self.state.current in self.state.landscapes:
            was = self._syncing
            self._syncing = True
            self.list.setCurrentRow(self.state.landscapes.index(self.state.current))
            self._syncing = was

    def _row_changed(self, row: int) -> None:
        if not self._syncing and 0 <= row < len(self.state.landscapes):
            self.state.set_current(self.state.landscapes[row])

    def _item_changed(self, _item: QListWidgetItem) -> None:
        if self._syncing:
            return
        chosen = [l for k, l in enumerate(self.state.landscapes)
                  if self.list.item(k).flags() & Qt.ItemIsUserCheckable and self.list.item(k).checkState() == Qt.Checked]
        self.state.set_compared(chosen)


def parse_limit(text: str) -> float | None:
    """A typed color limit: '' is automatic (None); anything else must be a finite number."""
    text = text.strip()
    if not text:
        return None
    value = float(text)  # ValueError for text that is no number
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def format_limit(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


class ColorLimitsEditor(QWidget):
    """The color range: automatic, two percentiles, or two typed values; the range in use is shown below."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        view = state.view
        self.mode = QComboBox()
        for mode in LIMIT_MODES:
            self.mode.addItem(LIMIT_LABELS[mode], mode)
        self.mode.setToolTip(AUTO_LIMITS_TEXT + " Percentiles and typed values replace this.")
        self.low_percentile, self.high_percentile = self._percentile_box(), self._percentile_box()
        self.low_value, self.high_value = QLineEdit(), QLineEdit()
        for edit, end in ((self.low_value, "min"), (self.high_value, "max")):
            edit.setPlaceholderText("auto")
            edit.setToolTip(f"Color range {end} in the metric's own units (1e-3, not log10); empty: automatic. "
                            "On a log scale a value <= 0 stays automatic.")
        self.percentiles = self._pair(self.low_percentile, self.high_percentile)
        self.values = self._pair(self.low_value, self.high_value)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setToolTip(AUTO_LIMITS_TEXT)
        self.note.setStyleSheet("color: #646464;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.mode, self.percentiles, self.values, self.note):
            layout.addWidget(widget)
        self.mode.currentIndexChanged.connect(lambda _i: self._mode_chosen(self.mode.currentData()))
        self.low_percentile.valueChanged.connect(lambda v: view.set("percentile_low", v))
        self.high_percentile.valueChanged.connect(lambda v: view.set("percentile_high", v))
        self.low_value.editingFinished.connect(lambda: self._typed(self.low_value, "value_min"))
        self.high_value.editingFinished.connect(lambda: self._typed(self.high_value, "value_max"))

    @staticmethod
    def _percentile_box() -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(0.0, 100.0)
        box.setDecimals(1)
        box.setSingleStep(0.5)
        box.setSuffix(" %")
        box.setKeyboardTracking(False)
        return box

    @staticmethod
    def _pair(low: QWidget, high: QWidget) -> QWidget:
        pair = QWidget()
        row = QHBoxLayout(pair)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(low, 1)
        row.addWidget(QLabel("to"))
        row.addWidget(high, 1)
        return pair

    def current_range(self) -> tuple[float, float] | None:
        """The color range in use for the current surface, in the metric's units (None without a 2D surface)."""
        current = self.state.current
        if current is None or current.surface.dimensions != 2:
            return None
        view = self.state.view
        low, high = current.grid(view.metric).levels(view.scale, view.limits())
        return to_metric_units(low, view.scale), to_metric_units(high, view.scale)

    def _mode_chosen(self, mode: str) -> None:
        """Typed values start from the range in use, so switching mode changes nothing until edited."""
        view = self.state.view
        shown = self.current_range()
        if mode == "values" and view.value_min is None and view.value_max is None and shown is not None:
            view.value_min, view.value_max = shown
        view.color_limits = mode

    def _typed(self, edit: QLineEdit, key: str) -> None:
        try:
            value = parse_limit(edit.text())
        except ValueError:
            edit.setStyleSheet("color: #c81e1e;")
            edit.setToolTip(f"'{edit.text()}' is not a number: type one (1e-3, 0.5) or leave empty for automatic")
            return
        edit.setStyleSheet("")
        self.state.view.set(key, value)

    def sync(self) -> None:
        """Show the state's limits and the range in use, without echoing them back."""
        view = self.state.view
        widgets = (self.mode, self.low_percentile, self.high_percentile, self.low_value, self.high_value)
        for widget in widgets:
            widget.blockSignals(True)
        try:
            self.mode.setCurrentIndex(LIMIT_MODES.index(view.color_limits))
            self.low_percentile.setValue(view.percentile_low)
            self.high_percentile.setValue(view.percentile_high)
            for edit, value in ((self.low_value, view.value_min), (self.high_value, view.value_max)):
                if not edit.hasFocus():
                    edit.setText(format_limit(value))
                    edit.setCursorPosition(0)  # a narrow box shows the number's start
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self.percentiles.setVisible(view.color_limits == "percentiles")
        self.values.setVisible(view.color_limits == "values")
        shown = self.current_range()
        in_use = "" if shown is None else f"<br>now {shown[0]:.4g} … {shown[1]:.4g}"
        self.note.setText(f"<small>{LIMIT_NOTES[view.color_limits]}{in_use}</small>")


class DisplayPanel(QWidget):
    """Metric, scale, color limits, colormap, contours, trajectory: all stored in ``state.view``."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        view = state.view
        self.metric_box = QComboBox()  # not self.metric: that would override QWidget.metric()
        self.scale = QComboBox()
        self.scale.addItems(list(SCALES))
        self.limits = ColorLimitsEditor(state)
        self.colormap = QComboBox()
        self.colormap.addItems(list(COLORMAPS))
        self.contours = QSpinBox()
        self.contours.setRange(0, 40)
        self.log_contours = QCheckBox("Log-spaced levels")
        self.log_contours.setToolTip(
            "Contour levels evenly spaced in log(value − minimum), crowding towards the minimum as in Garipov "
            f"et al.'s mode-connectivity planes (the lowest {LOG_LEVEL_DECADES:g} decades of the range above "
            "the minimum); unticked: evenly spaced on the colour scale")
        self.trajectory = QCheckBox("Show training trajectory")
        form = QFormLayout(self)
        form.addRow("Metric", self.metric_box)
        form.addRow("Scale", self.scale)
        form.addRow("Colors", self.limits)
        form.addRow("Colormap", self.colormap)
        form.addRow("Contours", self._contour_row())
        form.addRow(self.trajectory)
        self.metric_box.currentTextChanged.connect(lambda t: t and view.set("metric", t))
        self.scale.currentTextChanged.connect(lambda t: view.set("scale", t))
        self.colormap.currentTextChanged.connect(lambda t: view.set("colormap", t))
        self.contours.valueChanged.connect(lambda v: view.set("contours", v))
        self.log_contours.toggled.connect(lambda on: view.set("contour_spacing", "log" if on else "even"))
        self.trajectory.toggled.connect(lambda on: view.set("show_trajectory", on))
        view.changed.connect(lambda name: name != "slice" and self.sync())  # not on every drag step
        state.current_changed.connect(lambda _l: self.sync())
        state.updated.connect(lambda l: self.limits.sync() if l is state.current else None)
        self.sync()

    def _contour_row(self) -> QWidget:
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.contours)
        row.addWidget(self.log_contours, 1)
        return holder

    def sync(self) -> None:
        """Show the state's values without echoing them back."""
        view = self.state.view
        widgets = (self.metric_box, self.scale, self.colormap, self.contours, self.log_contours, self.trajectory)
        for widget in widgets:
            widget.blockSignals(True)
        try:
            current = self.state.current
            metrics = (current.metrics if current is not None else None) or ["train_loss"]  # a spectrum has none
            if [self.metric_box.itemText(k) for k in range(self.metric_box.count())] != metrics:
                self.metric_box.clear()
                self.metric_box.addItems(metrics)
            self.metric_box.setCurrentText(view.metric if view.metric in metrics else metrics[0])
            self.scale.setCurrentText(view.scale)
            self.colormap.setCurrentText(view.colormap)
            self.contours.setValue(view.contours)
            self.log_contours.setChecked(view.contour_spacing == "log")
            self.trajectory.setChecked(view.show_trajectory)
            has_trajectory = current is not None and current.surface.trajectory is not None
            self.trajectory.setEnabled(has_trajectory)
        finally:
            for widget in widgets:
                widget.blockSignals(False)
        self.limits.sync()
        # Exactly as tall as its controls, so none is ever cut or scrolled away; the dock's spare height
        # goes to the list and the (scrolling) Info panel. The layouts are activated first: the
        # color-limit rows just shown or hidden count now.
        self.limits.layout().activate()
        self.layout().activate()
        self.setFixedHeight(self.layout().sizeHint().height())


class InfoPanel(QWidget):
    """Where the current surface came from: model, data, directions, size, progress (scrolls when short)."""

    resume_requested = Signal()

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.label.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        self.resume = QPushButton("Resume computing")
        self.resume.setToolTip("Compute the points this file is missing (the engine resumes it)")
        self.resume.clicked.connect(self.resume_requested)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scrolling(self.label), 1)
        layout.addWidget(self.resume)
        state.current_changed.connect(lambda _l: self.refresh())
        state.updated.connect(lambda l: self.refresh() if l is state.current else None)
        self.refresh()

    def refresh(self) -> None:
        landscape = self.state.current
        if landscape is None:
            self.label.setText("No surface or path open.")
            self.resume.setVisible(False)
            return
        self.label.setText(describe(landscape))
        self.resume.setVisible(landscape.surface.format == "landscape" and not landscape.complete
                               and not landscape.computing)


def describe(landscape: Landscape | PathLandscape | SpectrumLandscape) -> str:
    """A few lines of provenance for the info panel (what a reader of the figure asks first)."""
    if landscape.kind == "path":
        return describe_path(landscape)
    if landscape.kind == "spectrum":
        return describe_spectrum(landscape)
    surface = landscape.surface
    a = surface.attrs
    done, total = landscape.progress
    shape = " × ".join(str(n) for n in reversed(surface.shape))
    lines = [f"<b>{landscape.name}</b>", f"{surface.dimensions}D, {shape} points, {done}/{total} computed"]
    if surface.format == "li2018":
        lines.append("Li et al. loss-landscape file")
    else:
        try:
            meta = json.loads(a.get("checkpoint_metadata") or "{}")
        except ValueError:
            meta = {}
        lines.append(f"model {a.get('model', '?')}, {int(a.get('n_params', 0)):,} parameters")
        lines.append(f"data {a.get('data', '?')} ({a.get('data_samples', '?')} samples), loss {a.get('loss', '?')}")
        directions = a.get("directions", "?")
        if directions == "random":
            directions += f", {a.get('norm')} norm, ignore {a.get('ignore')}, seed {a.get('seed')}"
        lines.append(f"directions: {directions}")
        if "explained_variance_ratio" in a:
            ratios = ", ".join(f"{100 * float(r):.1f}%" for r in a["explained_variance_ratio"])
            lines.append(f"PCA explained variance: {ratios}")
        if meta:
            shown = {k: meta[k] for k in ("recipe", "width", "seed", "epoch", "train_loss", "test_loss") if k in meta}
            lines.append("checkpoint: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                   for k, v in shown.items()))
    return "<br>".join(lines)


def describe_path(landscape: PathLandscape) -> str:
    """Provenance of a path file: its endpoints, model and data, how the path was made, what is computed."""
    result = landscape.result
    a = result.attrs
    done, total = landscape.progress
    lines = [f"<b>{landscape.name}</b>",
             f"path of {len(result.t)} points along t ∈ [{result.t[0]:.3g}, {result.t[-1]:.3g}], "
             f"{done}/{total} steps done",
             f"A: {a.get('checkpoint', '?')}", f"B: {a.get('b_checkpoint', '?')}",
             f"model {a.get('model', '?')}, {int(a.get('n_params', 0)):,} parameters",
             f"data {a.get('data', '?')} ({a.get('data_samples', '?')} samples), loss {a.get('loss', '?')}"]
    if a.get("test_data"):
        lines.append(f"test data {a['test_data']}")
    if landscape.has_training:
        lines.append(f"{a.get('curve')} curve, {a.get('bends')} bend(s): {landscape.epochs} epochs, "
                     f"{a.get('optimizer')} lr {a.get('lr')}, batch {a.get('train_batch_size')}, "
                     f"schedule {a.get('schedule')}; {min(result.bends_epoch, landscape.epochs)} trained")
    lines.append("series: " + "; ".join(series_label(s, a) for s in result.series))
    lines.append(f"alignment of B: {a.get('align', 'none')}")
    if a.get("bn_recompute") == "on":
        lines.append("BatchNorm statistics re-estimated at every point")
    return "<br>".join(lines)


def describe_spectrum(landscape: SpectrumLandscape) -> str:
    """Provenance of a spectrum file: where the Hessian is taken, model and data, what was computed and how."""
    result = landscape.result
    a = result.attrs
    done, total = landscape.progress
    where = point_text(a)
    lines = [f"<b>{landscape.name}</b>",
             f"Hessian spectrum, {done}/{total} {'products' if landscape.computing else 'parts'} done",
             f"checkpoint {a.get('checkpoint', '?')}"]
    if where != "checkpoint":
        lines.append(f"at {where} of the surface {a.get('at', '?')}")
    lines.append(f"model {a.get('model', '?')}, {int(a.get('n_params', 0) or 0):,} parameters")
    lines.append(f"data {a.get('data', '?')} ({a.get('data_samples', '?')} samples), loss {a.get('loss', '?')}, "
                 f"mode {a.get('mode', '?')}")
    if a.get("test_data"):
        lines.append(f"test data {a['test_data']}")
    wanted = []
    if int(a.get("top_k", 0) or 0) or int(a.get("bottom_k", 0) or 0):
        wanted.append(f"top {a.get('top_k')} and bottom {a.get('bottom_k')} eigenvalues ({a.get('method')})")
    if int(a.get("trace", 0) or 0):
        wanted.append(f"trace ({a.get('trace_method')}, to {100 * float(a.get('trace_tol', 0)):.3g}%)")
    if int(a.get("density", 0) or 0):
        wanted.append(f"density ({a.get('density_probes')} probes x {a.get('density_steps')} steps)")
    if int(a.get("report", 0) or 0):
        wanted.append("report")
    lines.append("computed: " + "; ".join(wanted))
    lines.append(f"{result.hvp_count:,} Hessian-vector products ({a.get('hvp_method_used') or a.get('hvp_method')}), "
                 f"seed {a.get('seed')}")
    if result.trace is not None:
        lines.append(f"trace {format_number(result.trace)} ± {format_number(result.trace_stderr, 2)}")
    return "<br>".join(lines)
