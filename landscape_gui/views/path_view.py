"""The Path tab: the loss along a path between two checkpoints, its barriers, and the curve's training.

Shows the current result when it is a path (else the path shown last, while it is open):

* a plot of the loss along t (left axis) for every series in the file, the straight line,
  the straight line to B aligned to A, and the trained curve, each in its own colour; train
  solid, test dashed; the error (100 - accuracy) on the right axis, dotted, for a classifier.
  The barrier of each series is marked: a point at the top of the bump and a segment down to
  the chord between the endpoints' losses. With a t range past 0..1, A and B are marked;
* a table of barrier numbers per series (:func:`engine.display.paths.barrier_rows`);
* the curve's training loss: each epoch's mean from the file, and while a job trains, the
  mean minibatch loss as it comes (:class:`engine.display.paths.TrainingTrace`).

All of it follows the state: a running job's steps fill it in at the window's redraw ticks.
"""

from __future__ import annotations

import html

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QSizePolicy,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.display.paths import (
    BARRIER_COLUMNS,
    barrier_mark,
    barrier_rows,
    computed_points,
    endpoint_lines,
    epoch_means,
    error_name,
    error_values,
    ordered_series,
    series_label,
)
from landscape_gui.state import AppState, PathLandscape
from landscape_gui.views.heatmap import Notice
from landscape_gui.views.profile import AccuracyAxis, PlacedLegend, ProfileAxis

SERIES_COLORS = {"linear": (31, 119, 180), "linear_aligned": (44, 160, 44), "curve": (214, 39, 40)}
OTHER_COLOR = (127, 127, 127)
KEY_COLOR = (90, 90, 90)  # the legend's samples of line styles
TEXT_COLOR = (40, 40, 40)
LOSS_WIDTH, ERROR_WIDTH = 2.0, 1.5
STYLES = {"train_loss": Qt.PenStyle.SolidLine, "test_loss": Qt.PenStyle.DashLine,
          "train_error": Qt.PenStyle.DotLine, "test_error": Qt.PenStyle.DashDotLine}
KEY_LABELS = {"train_loss": "train loss", "test_loss": "test loss",
              "train_error": "train error % (right)", "test_error": "test error % (right)"}
MARKED_POINTS = 41  # paths of at most this many points show their computed points
ERROR_COLUMN = [heading for heading, _tip in BARRIER_COLUMNS].index("error barrier")
NO_PATH = "No path open: Compute ▸ Mode Connectivity…, or open a path file with File ▸ Open Grid…"
T_AXIS = "t  (A at 0, B at 1)"
LEGEND_MARGIN_PX = 16


class PathView(QWidget):
    """Draws a :class:`PathLandscape` of ``state`` (see the module docstring)."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.shown: PathLandscape | None = None

        self.header = QLabel()
        self.header.setTextFormat(Qt.RichText)
        self.header.setWordWrap(True)
        self.header.setContentsMargins(6, 4, 6, 0)

        # the path: loss on the left, error on a linked right axis (pyqtgraph's MultiplePlotAxes example)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        axes = {"left": ProfileAxis("left"), "bottom": ProfileAxis("bottom"), "right": AccuracyAxis("right")}
        self.plot: pg.PlotItem = self.graphics.addPlot(row=0, col=0, axisItems=axes)
        self.plot.setMenuEnabled(False, enableViewBoxMenu=True)
        self.plot.setLabel("bottom", T_AXIS)
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.error_box = pg.ViewBox(enableMenu=False)
        self.error_box.setZValue(-1)
        self.error_box.setMouseEnabled(y=False)
        self.plot.scene().addItem(self.error_box)
        self.plot.getAxis("right").linkToView(self.error_box)
        self.error_box.setXLink(self.plot)
        self.plot.getAxis("right").setLabel("error (%)")
        self.plot.vb.sigResized.connect(self._sync_boxes)
        self.plot.vb.sigResized.connect(self._place_legend)
        # below the plot: the series by colour, then which line style is which value
        self.legend = PlacedLegend(labelTextColor=TEXT_COLOR, colCount=3, verSpacing=-4, horSpacing=16)
        self.style_legend = PlacedLegend(labelTextColor=TEXT_COLOR, colCount=4, verSpacing=-4, horSpacing=16)
        for legend, row in ((self.legend, 1), (self.style_legend, 2)):
            legend.setMinimumWidth(0)
            legend.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)  # the plot takes the spare height
            legend.layout.setContentsMargins(4, 0, 4, 0)  # the two legends read as one block
            self.graphics.addItem(legend, row=row, col=0)
            self.graphics.ci.layout.setRowStretchFactor(row, 0)
        self.graphics.ci.layout.setRowStretchFactor(0, 1)
        self.curves: dict[tuple[str, str], pg.PlotDataItem] = {}  # (series, train_loss|test_loss|train_error..)
        self.barrier_points: dict[str, pg.PlotDataItem] = {}
        self.barrier_lines: dict[str, pg.PlotDataItem] = {}
        self.endpoint_marks = [pg.InfiniteLine(pos=v, angle=90, pen=pg.mkPen((120, 120, 120), width=1,
                                                                               style=Qt.PenStyle.DashLine),
                                               label=name, labelOpts={"position": 0.95, "color": TEXT_COLOR})
                               for v, name in ((0.0, "A"), (1.0, "B"))]
        for mark in self.endpoint_marks:
            mark.setVisible(False)
            self.plot.addItem(mark, ignoreBounds=True)
        self._keys: list[pg.PlotDataItem] = []  # legend samples of the line styles
        self._log: bool | None = None  # the loss axes' scale as set

        # the barrier numbers
        self.table = QTableWidget(0, len(BARRIER_COLUMNS))
        self.table.setHorizontalHeaderLabels([heading for heading, _tip in BARRIER_COLUMNS])
        for k, (_heading, tip) in enumerate(BARRIER_COLUMNS):
            self.table.horizontalHeaderItem(k).setToolTip(tip)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        self.table.setFocusPolicy(Qt.NoFocus)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)

        # the curve's training
        self.training_plot = pg.PlotWidget(background="w", axisItems={"left": ProfileAxis("left"),
                                                                      "bottom": ProfileAxis("bottom")})
        self.training_plot.setMenuEnabled(False)
        self.training_plot.setTitle("curve training: mean minibatch loss", color=TEXT_COLOR, size="9pt")
        self.training_plot.setLabel("bottom", "epoch")
        self.training_live = self.training_plot.plot(pen=pg.mkPen(SERIES_COLORS["curve"], width=1.5))
        self.training_epochs = self.training_plot.plot(pen=pg.mkPen((*SERIES_COLORS["curve"], 110), width=1),
                                                       symbol="o", symbolSize=6,
                                                       symbolBrush=(255, 255, 255),
                                                       symbolPen=pg.mkPen(SERIES_COLORS["curve"], width=1.5))
        self.training_plot.setMinimumWidth(220)

        self.bottom = QSplitter(Qt.Horizontal)
        self.bottom.addWidget(self.table)
        self.bottom.addWidget(self.training_plot)
        self.bottom.setStretchFactor(0, 3)
        self.bottom.setStretchFactor(1, 2)
        self.bottom.setSizes([660, 380])
        self.splitter = QSplitter(Qt.Vertical)
        self.splitter.addWidget(self.graphics)
        self.splitter.addWidget(self.bottom)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([560, 220])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.header)
        layout.addWidget(self.splitter, 1)
        self.notice = Notice(self.graphics)

        state.current_changed.connect(lambda _l: self.refresh())
        state.updated.connect(self._updated)
        state.closed.connect(lambda _l: self.refresh())
        state.view.changed.connect(lambda name: self.refresh() if name == "scale" else None)
        self.refresh()

    # -- what to show ------------------------------------------------------------------------------
    def path_to_show(self) -> PathLandscape | None:
        """The current result if it is a path; else the path shown last while it is open; else the last opened."""
        current = self.state.current
        if current is not None and current.kind == "path":
            return current
        paths = self.state.paths()
        if self.shown in paths:
            return self.shown
        return paths[-1] if paths else None

    def _updated(self, landscape) -> None:
        if landscape is self.shown or landscape is self.state.current:
            self.refresh()

    def refresh(self) -> None:
        """Redraw from the state (cheap: a few short curves, one table)."""
        path = self.path_to_show()
        if path is not self.shown:
            self._rebuild(path)
        self.bottom.setVisible(path is not None)  # no table or training plot of nothing
        if path is None:
            self.header.setText("")
            self.notice.show_message(NO_PATH)
            return
        self.notice.hide()
        self._set_scale()
        self._draw(path)
        self._fill_table(path)
        self._draw_training(path)
        self.header.setText(header_text(path))

    # -- building ----------------------------------------------------------------------------------
    def _rebuild(self, path: PathLandscape | None) -> None:
        """Items for ``path``'s series and values (none for None)."""
        for (_series, value), item in self.curves.items():
            (self.error_box if value.endswith("_error") else self.plot).removeItem(item)
        for item in [*self.barrier_points.values(), *self.barrier_lines.values()]:
            self.plot.removeItem(item)
        self.legend.clear()
        self.style_legend.clear()
        self.curves, self.barrier_points, self.barrier_lines, self._keys = {}, {}, {}, []
        self.shown = path
        self.table.setRowCount(0)
        if path is None:
            for mark in self.endpoint_marks:
                mark.setVisible(False)
            self.training_plot.setVisible(False)
            return
        result = path.result
        names = list(result.values)
        drawn = [n for n in names if n.endswith("_loss")] + [error_name(n) for n in names if n.endswith("_acc")]
        marked = len(result.t) <= MARKED_POINTS
        for series in ordered_series(list(result.series)):
            color = SERIES_COLORS.get(series, OTHER_COLOR)
            for value in drawn:
                error = value.endswith("_error")
                pen = pg.mkPen(color, width=ERROR_WIDTH if error else LOSS_WIDTH, style=STYLES.get(value))
                marks = {"symbol": "o", "symbolSize": 5, "symbolPen": pg.mkPen(color, width=1),
                         "symbolBrush": (255, 255, 255)} if marked and not error else {}
                item = pg.PlotDataItem(pen=pen, **marks)
                if marks:  # the legend draws its sample symbol from the scatter, styled only once data come
                    item.scatter.setPen(marks["symbolPen"])
                    item.scatter.setBrush(pg.mkBrush(marks["symbolBrush"]))
                    item.scatter.setSize(marks["symbolSize"])
                item.setZValue(1 if error else 2)
                (self.error_box if error else self.plot).addItem(item)
                self.curves[(series, value)] = item
            self.legend.addItem(self.curves[(series, drawn[0])], series_label(series, result.attrs))
            point = pg.PlotDataItem(pen=None, symbol="o", symbolSize=10, symbolBrush=color,
                                    symbolPen=pg.mkPen("w", width=1.5))
            line = pg.PlotDataItem(pen=pg.mkPen(color, width=1.5, style=Qt.PenStyle.DashLine))
            for item, z in ((line, 3), (point, 4)):
                item.setZValue(z)
                self.plot.addItem(item)
            self.barrier_points[series], self.barrier_lines[series] = point, line
        if len(drawn) > 1:  # which line style is which value
            for value in drawn:
                key = pg.PlotDataItem(pen=pg.mkPen(KEY_COLOR, width=ERROR_WIDTH if value.endswith("_error")
                                                   else LOSS_WIDTH, style=STYLES.get(value)))
                self._keys.append(key)
                self.style_legend.addItem(key, KEY_LABELS.get(value, value))
        self.plot.showAxis("right", any(v.endswith("_error") for v in drawn))
        marks = endpoint_lines(result.t)
        for mark in self.endpoint_marks:
            mark.setVisible(mark.value() in marks)
        self.training_plot.setVisible(path.has_training)
        self.training_plot.setXRange(0, max(path.epochs, 1), padding=0.02)
        self.plot.enableAutoRange()
        self.error_box.enableAutoRange()
        self._place_legend()

    def _set_scale(self) -> None:
        """The loss axes follow the Display panel's scale (set only when it changes: pyqtgraph's setLogMode
        resets the zoom)."""
        log = self.state.view.scale == "log"
        if log == self._log:
            return
        self._log = log
        self.plot.setLogMode(y=log)  # the error axis stays linear (AccuracyAxis)
        self.training_plot.setLogMode(y=log)
        self.plot.setLabel("left", "loss (log scale)" if log else "loss")

    # -- drawing -----------------------------------------------------------------------------------
    def _draw(self, path: PathLandscape) -> None:
        result = path.result
        t = result.t
        for (series, value), item in self.curves.items():
            data = result.series[series]
            if value.endswith("_error"):
                y = error_values(data.values[value[: -len("error")] + "acc"])
            else:
                y = data.values[value]
            x, y = computed_points(t, y, data.done)
            item.setData(x, y, connect="finite")
        for series, point in self.barrier_points.items():
            data = result.series[series]
            mark = barrier_mark(t, data.values["train_loss"], data.done)
            line = self.barrier_lines[series]
            if mark is None:
                point.setData([], [])
                line.setData([], [])
            else:
                point.setData([mark.t], [mark.value])
                line.setData([mark.t, mark.t], [mark.chord, mark.value])

    def _fill_table(self, path: PathLandscape) -> None:
        rows = barrier_rows(path.result.barriers, path.result.attrs)
        self.table.setRowCount(len(rows))
        classifier = any(name.endswith("_acc") for name in path.result.values)
        self.table.setColumnHidden(ERROR_COLUMN, not classifier)  # a regression model has no error
        self.table.setVerticalHeaderLabels([r.label for r in rows])
        for r, entry in enumerate(rows):
            self.table.verticalHeaderItem(r).setToolTip(series_label(entry.series, path.result.attrs)
                                                        + ("" if entry.split == "train" else ", test data"))
        for r, entry in enumerate(rows):
            header = self.table.verticalHeaderItem(r)
            header.setForeground(pg.mkColor(SERIES_COLORS.get(entry.series, OTHER_COLOR)))
            for c, text in enumerate(entry.cells):
                item = self.table.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                    self.table.setItem(r, c, item)
                if item.text() != text:
                    item.setText(text)

    def _draw_training(self, path: PathLandscape) -> None:
        if not path.has_training:
            return
        x, y = path.training.positions()
        self.training_live.setData(x, y)
        if self.training_plot.getViewBox().autoRangeEnabled()[0]:  # the epochs' axis, unless zoomed by hand
            self.training_plot.setXRange(0, max(path.epochs, 1), padding=0.02)
        log = path.result.training
        ex, ey = epoch_means(log.column("loss") if log is not None and len(log.rows) else None)
        self.training_epochs.setData(ex, ey)

    # -- layout ------------------------------------------------------------------------------------
    def _sync_boxes(self) -> None:
        self.error_box.setGeometry(self.plot.vb.sceneBoundingRect())
        self.error_box.linkedViewChanged(self.plot.vb, self.error_box.XAxis)

    def _place_legend(self) -> None:
        """Each legend on as few rows as fit the view's width, kept below the plot."""
        room = self.graphics.width() - LEGEND_MARGIN_PX
        for legend in (self.legend, self.style_legend):
            entries = max(len(legend.items), 1)
            for columns in range(entries, 0, -1):
                legend.setColumnCount(columns)
                if legend.layout.preferredWidth() <= room:
                    break
            legend.updateGeometry()
        self.graphics.ci.layout.activate()

    # -- figures -----------------------------------------------------------------------------------
    def figure_target(self) -> pg.GraphicsLayoutWidget:
        """What File ▸ Export Figure… draws of the path: the plot with its legend."""
        return self.graphics


def header_text(path: PathLandscape) -> str:
    """One line above the plot: the file, its endpoints and how the path was made."""
    a = path.result.attrs
    facts = [f"{_file_name(a.get('checkpoint'))} → {_file_name(a.get('b_checkpoint'))}"]
    if path.has_training:
        bends = int(a.get("bends", 1) or 0)
        facts.append(f"{a.get('curve', 'curve')} curve with {bends} bend{'s' if bends != 1 else ''}, "
                     f"{path.epochs} epochs")
    else:
        facts.append("straight line")
    if a.get("align") and a.get("align") != "none":
        facts.append(f"B aligned by {a['align']}")
    if a.get("bn_recompute") == "on":
        facts.append("BatchNorm statistics re-estimated at every point")
    done, total = path.progress
    if done < total:
        facts.append(f"{done}/{total} steps done")
    return f"<b>{html.escape(path.name)}</b> — " + html.escape("; ".join(facts))


def _file_name(value) -> str:
    if not value:
        return "?"
    text = str(value).replace("\\", "/").rstrip("/")
    parts = text.split("/")
    return "/".join(parts[-2:]) if len(parts) > 1 else text


__all__ = ["PathView", "header_text"]
