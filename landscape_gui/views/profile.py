"""The 1D view: loss (left axis) and accuracy (right axis, dashed, always linear 0-100 %) along a line.

What it shows follows the current surface, so curves of different axes never mix:

* a 2D surface: the live profile under its slice line (interpolated by engine.display.profile
  as the line is dragged), the curves pinned from it and the slice lines computed in its plane,
  all on the distance along the slice;
* a 1D surface: it and the other open 1D surfaces, which share its α axis;
* a computed slice line (or nothing, when only lines are open): the line(s), on their distance axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg

from engine.display.profile import line_distance, line_profile, log_tick_labels, log_ticks
from landscape_gui.state import AppState, Curve, Landscape

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
LIVE_KEY = "live"
PROFILE_SAMPLES = 201
ACCURACY_RANGE = (0.0, 100.0)  # accuracies are percentages
MARKED_POINTS = 60  # curves of at most this many points show their points
TICK_SPACING_PX = 32  # labelled log ticks at least this far apart, so their labels never overlap
DISTANCE_AXIS = "distance along the slice"
ALPHA_AXIS = "α (direction x)"
TEXT_COLOR = (40, 40, 40)
LEGEND_MARGIN_PX = 16  # room left beside the legend


def acc_metric(metric: str) -> str | None:
    """The accuracy drawn on the right with a loss (train_loss -> train_acc); none beside an accuracy."""
    return metric.replace("_loss", "_acc") if "_loss" in metric else None


class ProfileAxis(pg.AxisItem):
    """An axis of unitless numbers: no SI prefix, and on a log scale only ticks whose labels fit."""

    def __init__(self, orientation: str, **kwargs) -> None:
        super().__init__(orientation, **kwargs)
        self.enableAutoSIPrefix(False)

    def tickValues(self, minVal: float, maxVal: float, size: float):  # noqa: N802, N803 (pyqtgraph naming)
        if not self.logMode:
            return super().tickValues(minVal, maxVal, size)
        major, minor = log_ticks(minVal, maxVal, max_labels=int(size // TICK_SPACING_PX))
        return [(1.0, major.tolist()), (None, minor.tolist())]

    def tickStrings(self, values, scale: float, spacing):  # noqa: N802 (pyqtgraph naming)
        if not self.logMode:
            return super().tickStrings(values, scale, spacing)
        return log_tick_labels(np.asarray(values)) if spacing is not None else [""] * len(values)


class AccuracyAxis(ProfileAxis):
    """The right-hand axis: stays linear when PlotItem.setLogMode puts every axis of the plot on a log scale."""

    def setLogMode(self, *args, **kwargs) -> None:  # noqa: N802 (pyqtgraph naming)
        super().setLogMode(False, False)


class PlacedLegend(pg.LegendItem):
    """A legend that keeps its cell of the layout: pyqtgraph's can be dragged around over a plot."""

    def mouseDragEvent(self, ev) -> None:  # noqa: N802 (pyqtgraph naming)
        ev.ignore()


@dataclass(frozen=True)
class Trace:
    """One curve to draw: how it looks says what it is (interpolated band, computed points, pinned line)."""

    key: str
    label: str
    x: np.ndarray
    values: dict[str, np.ndarray]
    color: tuple[int, int, int]
    width: float = 2.0
    band: bool = False  # interpolated: a wide translucent band, so a computed curve on it stays visible
    marked: bool = False  # few enough points to draw each one: hollow markers (a computed line's values)
    z: float = 1.0


class ProfileView(pg.GraphicsLayoutWidget):
    """Curves of ``state``, chosen by its current surface (see the module docstring); legend below the plot."""

    def __init__(self, state: AppState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self.setBackground("w")
        axes = {"left": ProfileAxis("left"), "bottom": ProfileAxis("bottom"), "right": AccuracyAxis("right")}
        self.plot: pg.PlotItem = self.addPlot(row=0, col=0, axisItems=axes)
        self.plot.setMenuEnabled(False, enableViewBoxMenu=True)  # log/linear is the Display panel's to say
        self.plot.setLabel("bottom", DISTANCE_AXIS)
        # Outside the plot, so it hides no curve; two columns keep it short.
        self.legend = PlacedLegend(labelTextColor=TEXT_COLOR, colCount=2, verSpacing=-4, horSpacing=12)
        self.legend.setMinimumWidth(0)  # a long name may be cut at the edge; the plot is never squeezed by it
        self.addItem(self.legend, row=1, col=0)
        # Accuracy on a second y axis: a ViewBox linked in x (pyqtgraph's MultiplePlotAxes example).
        self.acc_box = pg.ViewBox(enableMenu=False)
        self.acc_box.setZValue(-1)  # under the loss plot: mouse zoom and pan act on the loss axis
        self.acc_box.setYRange(*ACCURACY_RANGE, padding=0.03)
        self.acc_box.setMouseEnabled(y=False)
        self.plot.scene().addItem(self.acc_box)
        self.plot.getAxis("right").linkToView(self.acc_box)
        self.acc_box.setXLink(self.plot)
        self.plot.getAxis("right").setLabel("accuracy (%), dashed")
        self.plot.vb.sigResized.connect(self._sync_boxes)
        self.plot.vb.sigResized.connect(self._place_legend)  # the view's width changed, maybe
        self.items: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
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

    # -- what to show --------------------------------------------------------------------------
    def refresh(self) -> None:
        """Redraw every curve (a metric/scale change, a new current surface, pinned curves, opened files)."""
        for key in list(self.items):
            self._remove(key)
        self._set_value_axes()
        self.update_live()  # first: the legend starts with it
        current = self.state.current
        traces = [self._pinned_trace(k, curve) for k, curve in enumerate(self.state.shown_curves())]
        if current is not None and current.surface.dimensions == 2:
            traces += self._file_traces(self._lines_of(current), first_color=len(traces) + 1)
        elif current is not None and not current.is_line:
            traces += self._file_traces(self._alpha_surfaces(), first_color=len(traces) + 1)
        else:
            traces += self._file_traces([current] if current is not None else self._open_lines(),
                                        first_color=len(traces) + 1)
        for trace in traces:
            self._draw(trace)
        self.plot.setLabel("bottom", ALPHA_AXIS if self._on_alpha_axis() else DISTANCE_AXIS)
        self.plot.showAxis("right", any(acc.yData is not None and len(acc.yData) for _l, acc in self.items.values()))
        self._place_legend()

    def _place_legend(self) -> None:
        """Two columns when two entries fit side by side, else one (a narrow window).

        LegendItem moves itself to (0, 0) whenever its entries change (it expects to float
        over a plot): the layout puts it back below the plot at once.
        """
        self.legend.setColumnCount(2)
        if self.legend.layout.preferredWidth() > self.width() - LEGEND_MARGIN_PX:
            self.legend.setColumnCount(1)
        self.legend.updateGeometry()
        self.ci.layout.activate()

    def _set_value_axes(self) -> None:
        view = self.state.view
        log = view.scale == "log" and "loss" in view.metric
        self.plot.setLogMode(y=log)  # the accuracy axis stays linear (AccuracyAxis)
        self.plot.setLabel("left", view.metric)  # short, so a low plot (a figure's row) keeps it whole
        self.plot.enableAutoRange()

    def _on_alpha_axis(self) -> bool:
        current = self.state.current
        return current is not None and current.surface.dimensions == 1 and not current.is_line

    def _lines_of(self, surface: Landscape) -> list[Landscape]:
        """The slice lines computed in ``surface``'s plane."""
        path = surface.path.resolve()
        return [l for l in self.state.landscapes if l.is_line and l.line_of is not None
                and l.line_of.resolve() == path]

    def _alpha_surfaces(self) -> list[Landscape]:
        """Open 1D surfaces that are not slice lines: they share the α axis."""
        return [l for l in self.state.landscapes if l.surface.dimensions == 1 and not l.is_line]

    def _open_lines(self) -> list[Landscape]:
        return [l for l in self.state.landscapes if l.is_line]

    # -- traces ----------------------------------------------------------------------------------
    def _pinned_trace(self, k: int, curve: Curve) -> Trace:
        return Trace(curve.key, curve.label, curve.x, curve.values, PALETTE[(k + 1) % len(PALETTE)],
                     marked=len(curve.x) <= MARKED_POINTS)

    def _file_traces(self, landscapes: list[Landscape], first_color: int) -> list[Trace]:
        """Open 1D files: computed lines on top with their points marked; the current file thicker and blue."""
        traces = []
        for k, landscape in enumerate(landscapes):
            surface = landscape.surface  # values are NaN where not computed (state.Landscape guarantees it)
            line = landscape.is_line
            current = landscape is self.state.current
            x = line_distance(surface.x, surface.attrs["line"]) if line else surface.x
            color = PALETTE[0] if current else PALETTE[(first_color + k) % len(PALETTE)]
            traces.append(Trace(f"file:{landscape.path}", f"{landscape.name} (computed)" if line else landscape.name,
                                x, surface.values, color, width=2.5 if current else 1.5,
                                marked=len(x) <= MARKED_POINTS, z=3.0 if line else 2.0))
        return traces

    def update_live(self) -> None:
        """The profile under the slice line, interpolated from the grid (called while dragging)."""
        current = self.state.current
        segment = self.state.view.slice
        if current is None or current.surface.dimensions != 2 or segment is None:
            if LIVE_KEY in self.items:
                self._remove(LIVE_KEY)
                self._place_legend()
            self.last_profile = None
            return
        surface = current.surface
        # Values are NaN where not computed (state.Landscape guarantees it): no copy per mouse move.
        profile = line_profile(surface.x, surface.y, surface.values, segment[0], segment[1], PROFILE_SAMPLES)
        self.last_profile = profile
        new = LIVE_KEY not in self.items
        self._draw(Trace(LIVE_KEY, "slice (interpolated)", profile.distance, profile.values,
                         PALETTE[0], width=7.0, band=True, z=0.0))
        if new:
            self._place_legend()

    # -- drawing -----------------------------------------------------------------------------------
    def _draw(self, trace: Trace) -> None:
        metric = self.state.view.metric
        loss = trace.values.get(metric, trace.values.get("train_loss"))
        acc_name = acc_metric(metric)
        acc = trace.values.get(acc_name) if acc_name is not None else None
        if trace.key not in self.items:
            self.items[trace.key] = (pg.PlotDataItem(), pg.PlotDataItem())
            self.plot.addItem(self.items[trace.key][0])
            self.acc_box.addItem(self.items[trace.key][1])
            self.legend.addItem(self.items[trace.key][0], trace.label)
        loss_item, acc_item = self.items[trace.key]
        alpha = 90 if trace.band else 255
        marks = {"symbol": "o", "symbolSize": 6, "symbolPen": pg.mkPen(trace.color, width=1.5),
                 "symbolBrush": (255, 255, 255)} if trace.marked else {"symbol": None}
        loss_item.setData(trace.x, loss if loss is not None else np.full(len(trace.x), np.nan), connect="finite",
                          pen=pg.mkPen((*trace.color, alpha), width=trace.width), **marks)
        dash = pg.mkPen((*trace.color, alpha), width=trace.width - 2 if trace.band else max(1.0, trace.width - 0.5),
                        style=pg.QtCore.Qt.PenStyle.DashLine)
        if acc is None:
            acc_item.setData([], [])
        else:
            acc_item.setData(trace.x, acc, pen=dash, connect="finite", **marks)
        for item in (loss_item, acc_item):
            item.setZValue(trace.z)

    def _remove(self, key: str) -> None:
        loss_item, acc_item = self.items.pop(key)
        self.legend.removeItem(loss_item)
        self.plot.removeItem(loss_item)
        self.acc_box.removeItem(acc_item)


def curve_from_profile(key: str, label: str, profile, owner=None) -> Curve:
    """A pinned curve of a live profile (``owner``: the surface it was drawn from, which it is shown with)."""
    return Curve(key=key, label=label, x=profile.distance, values=dict(profile.values), owner=owner)
