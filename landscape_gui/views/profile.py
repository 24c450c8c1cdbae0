"""The 1D view: loss (left axis) and accuracy (right axis) along a line, several curves overlaid.

It shows, from the state: the live profile under the slice line of the current 2D
surface (interpolated by engine.display.profile as the line is dragged), the current 1D
surface, and every pinned curve (computed lines, earlier profiles, other 1D files).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from engine.display.profile import line_distance, line_profile
from landscape_gui.state import AppState, Curve

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
LIVE_KEY = "live"
PROFILE_SAMPLES = 201


def acc_metric(metric: str) -> str:
    """The accuracy that goes with a loss (train_loss -> train_acc)."""
    return metric.replace("_loss", "_acc")


class ProfileView(pg.GraphicsLayoutWidget):
    """Curves of ``state``: live slice profile, current 1D surface, pinned curves."""

    def __init__(self, state: AppState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self.setBackground("w")
        self.plot: pg.PlotItem = self.addPlot(row=0, col=0)
        self.plot.setLabel("bottom", "distance along the slice")
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.legend = self.plot.addLegend(offset=(-10, 10), labelTextColor=(40, 40, 40))
        # Accuracy on a second y axis: a ViewBox linked in x (pyqtgraph's MultiplePlotAxes example).
        self.acc_box = pg.ViewBox()
        self.plot.showAxis("right")
        self.plot.scene().addItem(self.acc_box)
        self.plot.getAxis("right").linkToView(self.acc_box)
        self.acc_box.setXLink(self.plot)
        self.plot.getAxis("right").setLabel("accuracy (%)")
        self.plot.vb.sigResized.connect(self._sync_boxes)
        self.items: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem | None]] = {}
        self.last_profile = None  # the live profile drawn last (tests compare it with the grid)
        state.view.changed.connect(self._view_changed)
        state.current_changed.connect(lambda _l: self.refresh())
        state.updated.connect(lambda l: self.refresh() if l is state.current or l.surface.dimensions == 1 else None)
        state.curves_changed.connect(self.refresh)
        state.opened.connect(lambda _l: self.refresh())
        state.closed.connect(lambda _l: self.refresh())
        self.refresh()

    def _sync_boxes(self) -> None:
        self.acc_box.setGeometry(self.plot.vb.sceneBoundingRect())
        self.acc_box.linkedViewChanged(self.plot.vb, self.acc_box.XAxis)

    def _view_changed(self, name: str) -> None:
        if name == "slice":
            self.update_live()
        elif name in ("metric", "scale"):
            self.refresh()

    # -- drawing -------------------------------------------------------------------------
    def _draw(self, key: str, label: str, x: np.ndarray, values: dict[str, np.ndarray], color, width: float = 2,
              symbol: str | None = None) -> None:
        metric = self.state.view.metric
        loss = values.get(metric, values.get("train_loss"))
        acc = values.get(acc_metric(metric))
        if key not in self.items:
            loss_item = pg.PlotDataItem(name=label)
            self.plot.addItem(loss_item)
            acc_item = pg.PlotDataItem()
            self.acc_box.addItem(acc_item)
            self.items[key] = (loss_item, acc_item)
        loss_item, acc_item = self.items[key]
        pen = pg.mkPen(color, width=width)
        loss_item.setData(x, loss if loss is not None else np.full(len(x), np.nan), pen=pen, connect="finite",
                          symbol=symbol, symbolSize=5, symbolBrush=color, symbolPen=None)
        if acc is not None:
            acc_item.setData(x, acc, pen=pg.mkPen(color, width=max(1.0, width - 1), style=pg.QtCore.Qt.DashLine),
                             connect="finite")
        else:
            acc_item.setData([], [])

    def _remove(self, key: str) -> None:
        loss_item, acc_item = self.items.pop(key)
        self.plot.removeItem(loss_item)
        self.acc_box.removeItem(acc_item)

    def refresh(self) -> None:
        """Redraw every curve (a metric/scale change, a new current surface, pinned curves)."""
        for key in list(self.items):
            self._remove(key)
        view = self.state.view
        log = view.scale == "log" and "loss" in view.metric
        self.plot.setLogMode(y=log)
        self.plot.setLabel("left", view.metric + (" (log scale)" if log else ""))
        for k, curve in enumerate(self.state.curves):
            self._draw(curve.key, curve.label, curve.x, curve.values, PALETTE[(k + 1) % len(PALETTE)], width=2,
                       symbol="o" if len(curve.x) <= 60 else None)
        current = self.state.current
        # Every open 1D file is overlaid (the current one thicker); a computed slice line is drawn
        # on the slice's distance axis, where the live profile of its plane is drawn too.
        one_d = [l for l in self.state.landscapes if l.surface.dimensions == 1]
        for k, landscape in enumerate(one_d):
            surface = landscape.surface
            values = surface.values  # NaN where not computed (state.Landscape guarantees it)
            is_current = landscape is current
            x = line_distance(surface.x, surface.attrs["line"]) if landscape.is_line else surface.x
            label = f"{landscape.name} (computed)" if landscape.is_line else landscape.name
            self._draw(f"file:{landscape.path}", label, x, values,
                       PALETTE[(len(self.state.curves) + k + 1) % len(PALETTE)] if not is_current else PALETTE[0],
                       width=3 if is_current else 1.5, symbol="o" if landscape.is_line and len(x) <= 60 else None)
        if current is not None and current.surface.dimensions == 1:
            self.plot.setLabel("bottom", "distance along the slice" if current.is_line else "α (direction x)")
            if LIVE_KEY in self.items:
                self._remove(LIVE_KEY)
        else:
            self.plot.setLabel("bottom", "distance along the slice")
            self.update_live()
        has_acc = any(item.yData is not None and len(item.yData) for _l, item in self.items.values())
        self.plot.showAxis("right", has_acc)
        self.plot.enableAutoRange()
        self.acc_box.enableAutoRange()

    def update_live(self) -> None:
        """The profile under the slice line, interpolated from the grid (called while dragging)."""
        current = self.state.current
        segment = self.state.view.slice
        if current is None or current.surface.dimensions != 2 or segment is None:
            if LIVE_KEY in self.items:
                self._remove(LIVE_KEY)
            self.last_profile = None
            return
        surface = current.surface
        # Values are NaN where not computed (state.Landscape guarantees it): no copy per mouse move.
        profile = line_profile(surface.x, surface.y, surface.values, segment[0], segment[1], PROFILE_SAMPLES)
        self.last_profile = profile
        self._draw(LIVE_KEY, f"{current.name}: slice", profile.distance, profile.values, PALETTE[0], width=2.5)


def curve_from_profile(key: str, label: str, profile, owner=None) -> Curve:
    return Curve(key=key, label=label, x=profile.distance, values=dict(profile.values), owner=owner)
