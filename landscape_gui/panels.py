"""Side panels: the list of open landscapes (and which are compared), display controls, file info.

Each panel is given the AppState and writes only to it; it listens to the state's
events to stay in sync when something else (a test, a menu) changes it.
"""

from __future__ import annotations

import json

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QListWidget, QListWidgetItem, QPushButton,
    QSpinBox, QVBoxLayout, QWidget,
)

from engine.display.levels import SCALES
from landscape_gui.state import AppState, Landscape
from landscape_gui.views.colors import COLORMAPS


class LandscapeList(QWidget):
    """Open landscapes; a click makes one current, its check box puts it in the comparison."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.list = QListWidget()
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

    def rebuild(self) -> None:
        self._syncing = True
        try:
            self.list.clear()
            for landscape in self.state.landscapes:
                done, total = landscape.progress
                suffix = "" if done == total else f"  [{100 * done // max(total, 1)}%]"
                item = QListWidgetItem(f"{landscape.name}{suffix}")
                item.setToolTip(str(landscape.path))
                if landscape.surface.dimensions == 2:
                    item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
                    item.setCheckState(Qt.Checked if landscape in self.state.compared else Qt.Unchecked)
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


class DisplayPanel(QWidget):
    """Metric, scale, clip, colormap, contours, trajectory: all stored in ``state.view``."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        view = state.view
        self.metric = QComboBox()
        self.scale = QComboBox()
        self.scale.addItems(list(SCALES))
        self.clip = QDoubleSpinBox()
        self.clip.setRange(50.0, 100.0)
        self.clip.setDecimals(1)
        self.clip.setSingleStep(1.0)
        self.clip.setSuffix(" %")
        self.clip.setToolTip("Color range tops out at this percentile of the values: loss surfaces span "
                             "orders of magnitude, clipping spends the colors on the basin")
        self.colormap = QComboBox()
        self.colormap.addItems(list(COLORMAPS))
        self.contours = QSpinBox()
        self.contours.setRange(0, 40)
        self.trajectory = QCheckBox("Show training trajectory")
        form = QFormLayout(self)
        form.addRow("Metric", self.metric)
        form.addRow("Scale", self.scale)
        form.addRow("Clip top at", self.clip)
        form.addRow("Colormap", self.colormap)
        form.addRow("Contours", self.contours)
        form.addRow(self.trajectory)
        self.metric.currentTextChanged.connect(lambda t: t and view.set("metric", t))
        self.scale.currentTextChanged.connect(lambda t: view.set("scale", t))
        self.clip.valueChanged.connect(lambda v: view.set("clip_percentile", v))
        self.colormap.currentTextChanged.connect(lambda t: view.set("colormap", t))
        self.contours.valueChanged.connect(lambda v: view.set("contours", v))
        self.trajectory.toggled.connect(lambda on: view.set("show_trajectory", on))
        view.changed.connect(lambda _n: self.sync())
        state.current_changed.connect(lambda _l: self.sync())
        self.sync()

    def sync(self) -> None:
        """Show the state's values without echoing them back."""
        view = self.state.view
        widgets = (self.metric, self.scale, self.clip, self.colormap, self.contours, self.trajectory)
        for widget in widgets:
            widget.blockSignals(True)
        try:
            current = self.state.current
            metrics = current.metrics if current is not None else ["train_loss"]
            if [self.metric.itemText(k) for k in range(self.metric.count())] != metrics:
                self.metric.clear()
                self.metric.addItems(metrics)
            self.metric.setCurrentText(view.metric if view.metric in metrics else metrics[0])
            self.scale.setCurrentText(view.scale)
            self.clip.setValue(view.clip_percentile)
            self.colormap.setCurrentText(view.colormap)
            self.contours.setValue(view.contours)
            self.trajectory.setChecked(view.show_trajectory)
            has_trajectory = current is not None and current.surface.trajectory is not None
            self.trajectory.setEnabled(has_trajectory)
        finally:
            for widget in widgets:
                widget.blockSignals(False)


class InfoPanel(QWidget):
    """Where the current surface came from: model, data, directions, size, progress."""

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
        layout.addWidget(self.label)
        layout.addWidget(self.resume)
        layout.addStretch(1)
        state.current_changed.connect(lambda _l: self.refresh())
        state.updated.connect(lambda l: self.refresh() if l is state.current else None)
        self.refresh()

    def refresh(self) -> None:
        landscape = self.state.current
        if landscape is None:
            self.label.setText("No surface open.")
            self.resume.setVisible(False)
            return
        self.label.setText(describe(landscape))
        self.resume.setVisible(landscape.surface.format == "landscape" and not landscape.complete
                               and not landscape.computing)


def describe(landscape: Landscape) -> str:
    """A few lines of provenance for the info panel (what a reader of the figure asks first)."""
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
