"""The Spectrum tab: a Hessian's spectral density, its extreme eigenvalues, and reports side by side.

Shows the current result when it is a spectrum (else the spectrum shown last, while it is open):

* the spectral density on a log y axis (clipped at a floor far below its peak, where a
  Gaussian's tails would reach 0), with the top and bottom eigenvalues as labelled vertical
  sticks (:mod:`engine.display.spectra`);
* the Gaussian width σ on a log-spaced slider (or typed): a change redraws the density from
  the stored quadrature nodes (``Spectrum.density_at``'s maths), no Hessian-vector product;
* the x range: every eigenvalue (the outliers in sight), or the bulk, where almost all the mass is;
* the overparameterization report of every open spectrum file, one column each, smallest
  model first: a width sweep reads from under- to overparameterized left to right;
* while a job computes the file, its current λ estimates (dashed sticks) and trace ± error.

All of it follows the state: σ is the spectrum's (``AppState.set_sigma``), the x range the
view state's (``spectrum_range``); the view writes only through them.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont, QFontMetricsF
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.display.spectra import (
    BOTTOM,
    RANGE_LABELS,
    RANGES,
    DensityCurve,
    ReportColumn,
    SigmaScale,
    Stick,
    curve_grid,
    density_curve,
    eigen_sticks,
    grid_points,
    ordered_columns,
    point_text,
    report_of,
    report_table,
    x_range,
)
from engine.numerics.density import DEFAULT_GRID
from landscape_gui.state import AppState, SpectrumLandscape
from landscape_gui.views.heatmap import Notice
from landscape_gui.views.profile import PlacedLegend, ProfileAxis

DENSITY_COLOR = (31, 119, 180)
TOP_COLOR = (214, 39, 40)
BOTTOM_COLOR = (148, 103, 189)
TEXT_COLOR = (40, 40, 40)
LABEL_HEADROOM_DECADES = 0.9  # room above the peak for the sticks' labels
LABEL_MARGIN_PX = 12  # a label's box around its text, and a little air
NO_SPECTRUM = ("No spectrum open: Compute ▸ Hessian Spectrum…, right-click the map for the Hessian at a point, "
               "or open a spectrum file with File ▸ Open Grid…")
NO_DENSITY = "This file holds no density (computed without it): the eigenvalues only"
DENSITY_PENDING = "The density is not computed yet"
DENSITY_COMING = "The density is drawn when the job has done its probes"


class SpectrumView(QWidget):
    """Draws a :class:`SpectrumLandscape` of ``state`` and the reports of all open spectra."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.shown: SpectrumLandscape | None = None
        self.curve_data: DensityCurve | None = None  # what the density item draws now
        self.sticks: list[Stick] = []  # the eigenvalues drawn now (the live estimates while a job runs)
        self.scale: SigmaScale | None = None
        self._curve_key: tuple | None = None
        self._range_key: tuple | None = None
        self._stick_values: tuple[list[float], list[float], bool] = ([], [], False)
        self._framing = False  # the view sets the x range itself (not a zoom by hand)
        self._zoom_timer = QTimer(self)
        self._zoom_timer.setSingleShot(True)
        self._zoom_timer.setInterval(60)
        self._zoom_timer.timeout.connect(self._refine)

        self.header = QLabel()
        self.header.setTextFormat(Qt.RichText)
        self.header.setWordWrap(True)
        self.header.setContentsMargins(6, 4, 6, 0)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        axes = {"left": ProfileAxis("left"), "bottom": ProfileAxis("bottom")}
        self.plot: pg.PlotItem = self.graphics.addPlot(row=0, col=0, axisItems=axes)
        self.plot.setMenuEnabled(False, enableViewBoxMenu=True)
        self.plot.setLogMode(x=False, y=True)
        self.plot.setLabel("left", "spectral density (log scale)")
        self.plot.setLabel("bottom", "eigenvalue λ of the Hessian")
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.density_item = pg.PlotDataItem(pen=pg.mkPen(DENSITY_COLOR, width=2))
        self.density_item.setZValue(2)
        self.plot.addItem(self.density_item)
        self.top_item = pg.PlotDataItem(pen=pg.mkPen(TOP_COLOR, width=2), connect="pairs")
        self.bottom_item = pg.PlotDataItem(pen=pg.mkPen(BOTTOM_COLOR, width=2), connect="pairs")
        for item in (self.top_item, self.bottom_item):
            item.setZValue(3)
            self.plot.addItem(item)
        self.stick_labels: list[pg.TextItem] = []
        self.legend = PlacedLegend(labelTextColor=TEXT_COLOR, colCount=3, verSpacing=-4, horSpacing=16)
        self.legend.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)
        self.legend.layout.setContentsMargins(4, 0, 4, 0)
        self.graphics.addItem(self.legend, row=1, col=0)
        self.graphics.ci.layout.setRowStretchFactor(0, 1)
        self.graphics.ci.layout.setRowStretchFactor(1, 0)
        self.legend.addItem(self.density_item, "density")
        self.legend.addItem(self.top_item, "top eigenvalues")
        self.legend.addItem(self.bottom_item, "bottom eigenvalues")

        # σ and the x range
        self.sigma_slider = QSlider(Qt.Horizontal)
        self.sigma_slider.setToolTip("The Gaussian width σ the density is drawn with (log scale): redrawn from the "
                                     "stored quadrature nodes, no new Hessian-vector products")
        self.sigma_slider.setMinimumWidth(140)
        self.sigma_edit = QLineEdit()
        self.sigma_edit.setMaximumWidth(90)
        self.sigma_edit.setToolTip("σ, typed (press Enter)")
        self.sigma_reset = QPushButton("File's σ")
        self.sigma_reset.setToolTip("Back to the σ the file's density was drawn with (1% of the spread)")
        self.sigma_reset.setAutoDefault(False)
        self.range_box = QComboBox()
        for key in RANGES:
            self.range_box.addItem(RANGE_LABELS[key], key)
        self.range_box.setToolTip("All eigenvalues: the outliers in sight; bulk: zoom on where almost all the "
                                  "spectral mass is (between its 1% and 99% quantiles)")
        controls = QWidget()
        row = QHBoxLayout(controls)
        row.setContentsMargins(6, 2, 6, 2)
        row.addWidget(QLabel("σ"))
        row.addWidget(self.sigma_slider, 2)
        row.addWidget(self.sigma_edit)
        row.addWidget(self.sigma_reset)
        row.addSpacing(16)
        row.addWidget(QLabel("Show:"))
        row.addWidget(self.range_box)
        row.addStretch(1)
        self.controls = controls

        # the report of every open spectrum
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.NoSelection)
        self.table.setFocusPolicy(Qt.NoFocus)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setSectionsClickable(True)
        self.table.horizontalHeader().setToolTip("One column per open spectrum file, the smallest model first; "
                                                 "click one to show it")
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.columns: list[SpectrumLandscape] = []  # the table's columns, in order
        self.rows: list = []  # the table's rows (engine.display.spectra.ReportRow)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.setSpacing(0)
        top_layout.addWidget(self.graphics, 1)
        top_layout.addWidget(controls)
        self.splitter = QSplitter(Qt.Vertical)
        self.splitter.addWidget(top)
        self.splitter.addWidget(self.table)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([520, 300])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.header)
        layout.addWidget(self.splitter, 1)
        self.notice = Notice(self.graphics)

        self.sigma_slider.valueChanged.connect(self._slider_moved)
        self.sigma_edit.editingFinished.connect(self._sigma_typed)
        self.sigma_reset.clicked.connect(lambda: self.shown is not None and self.state.set_sigma(self.shown, None))
        self.range_box.currentIndexChanged.connect(
            lambda _i: self.state.view.set("spectrum_range", self.range_box.currentData()))
        self.table.horizontalHeader().sectionClicked.connect(self._column_clicked)
        self.plot.vb.sigXRangeChanged.connect(self._x_range_moved)
        self.plot.vb.sigResized.connect(lambda *_: self._place_sticks())  # labels fit the new width (and exports)
        state.current_changed.connect(lambda _l: self.refresh())
        state.opened.connect(lambda l: self._fill_table() if l.kind == "spectrum" else None)
        state.closed.connect(lambda _l: self.refresh())
        state.updated.connect(self._updated)
        state.sigma_changed.connect(lambda l: self.redraw() if l is self.shown else None)
        state.view.changed.connect(lambda name: self.redraw() if name == "spectrum_range" else None)
        self.refresh()

    # -- what to show ------------------------------------------------------------------------------
    def spectrum_to_show(self) -> SpectrumLandscape | None:
        """The current result if it is a spectrum; else the one shown last while it is open; else the last opened."""
        current = self.state.current
        if current is not None and current.kind == "spectrum":
            return current
        spectra = self.state.spectra()
        if self.shown in spectra:
            return self.shown
        return spectra[-1] if spectra else None

    def _updated(self, landscape) -> None:
        if landscape.kind != "spectrum":
            return
        if landscape is self.shown or landscape is self.state.current:
            self.refresh()
        else:
            self._fill_table()

    def refresh(self) -> None:
        """Redraw from the state: the spectrum shown, its controls, and the table of every open spectrum."""
        spectrum = self.spectrum_to_show()
        if spectrum is not self.shown:
            self.shown = spectrum
            self._curve_key = self._range_key = None
        self.controls.setEnabled(spectrum is not None)
        self._fill_table()
        if spectrum is None:
            self.header.setText("")
            self._clear()
            self.notice.show_message(NO_SPECTRUM)
            return
        self.redraw()

    def _clear(self) -> None:
        self.density_item.setData([], [])
        self.curve_data = None
        self._stick_values = ([], [], False)
        self._place_sticks()

    # -- drawing -----------------------------------------------------------------------------------
    def redraw(self) -> None:
        """The density at the σ chosen, the eigenvalues, the x range: cheap, from what the file holds."""
        spectrum = self.shown
        if spectrum is None:
            return
        result = spectrum.result
        self.header.setText(header_text(spectrum))
        values, weights = spectrum.probes
        has_nodes = bool(np.isfinite(values).any())
        sigma = spectrum.shown_sigma
        self._sync_sigma_controls(spectrum, values, sigma)
        self._sync_range_box()
        mode = self.state.view.spectrum_range
        live = spectrum.computing and not result.eigen_done and spectrum.live.active  # sticks at the job's values
        estimates = live and not spectrum.live.eigen_final  # ... still converging
        top = list(spectrum.live.top or spectrum.live.values[:1]) if live else _finite(result.top_eigenvalues)
        bottom = list(spectrum.live.bottom) if live else _finite(result.bottom_eigenvalues)
        eigenvalues = top + bottom
        if has_nodes and sigma is not None:
            frame = x_range(mode, values, weights, sigma, eigenvalues)
            self.notice.hide()
        else:
            frame = _eigenvalue_frame(eigenvalues)
            wants_density = bool(int(result.attrs.get("density", 0) or 0))
            pending = DENSITY_COMING if spectrum.computing else DENSITY_PENDING
            self.notice.show_message(pending if wants_density else NO_DENSITY)
        # a new file, x range, or (for the bulk, whose margin is a few σ) σ: frame it; a zoom by hand stays until then
        range_key = (id(spectrum), mode, has_nodes, sigma if mode == "bulk" else None,
                     None if has_nodes else frame)  # without a density, the eigenvalues frame it as they come
        if range_key != self._range_key:
            self._range_key = range_key
            self._framing = True
            self.plot.setXRange(*frame, padding=0.02)
            self._framing = False
        self._draw_curve(values, weights, sigma, eigenvalues, has_nodes)
        self._stick_values = (top, bottom, estimates)
        self._place_sticks()
        self._fit_y()

    def _place_sticks(self) -> None:
        """The eigenvalue sticks, their labels on rows where they do not overlap at the plot's width now."""
        top, bottom, estimates = self._stick_values
        curve = self.curve_data
        floor, peak = (curve.floor, curve.peak) if curve is not None else (1e-3, 1.0)
        span = tuple(self.plot.vb.viewRange()[0])
        pixels = max(self.plot.vb.width(), 1.0)
        metrics = QFontMetricsF(self.font())
        per_pixel = (span[1] - span[0]) / pixels

        def width(text: str) -> float:  # in λ units: the label's text and the TextItem's margins
            return (metrics.horizontalAdvance(text) + LABEL_MARGIN_PX) * per_pixel

        self.sticks = eigen_sticks(top, bottom, floor, peak, span=span, text_width=width, estimates=estimates)
        self._draw_sticks(self.sticks, live=estimates)

    def _draw_curve(self, values: np.ndarray, weights: np.ndarray, sigma: float | None, eigenvalues: list[float],
                    has_nodes: bool) -> None:
        """The density on the whole spectrum and, finely, on the x range shown (redone when it pans or zooms)."""
        if not has_nodes or sigma is None:
            self.curve_data, self._curve_key = None, None
            self.density_item.setData([], [])
            return
        whole = x_range("all", values, weights, sigma, eigenvalues)
        visible = tuple(float(v) for v in self.plot.vb.viewRange()[0])
        key = (id(self.shown.result), sigma, whole, visible)
        if key == self._curve_key:
            return
        self._curve_key = key
        lo, hi = max(visible[0], whole[0]), min(visible[1], whole[1])
        ranges = [whole] + ([(lo, hi)] if hi > lo else [])
        grid = curve_grid(ranges, [grid_points(*whole, sigma), DEFAULT_GRID][:len(ranges)])
        self.curve_data = density_curve(values, weights, sigma, grid)
        self.density_item.setData(self.curve_data.grid, self.curve_data.shown)

    def _fit_y(self) -> None:
        """From the lowest point of the curve on screen (at least the floor) to above the peak, room for labels."""
        if self.curve_data is None:
            self.plot.setYRange(-3.0, LABEL_HEADROOM_DECADES, padding=0.02)
            return
        curve = self.curve_data
        lo, hi = self.plot.vb.viewRange()[0]
        on_screen = curve.shown[(curve.grid >= lo) & (curve.grid <= hi)]
        bottom = float(on_screen.min()) if on_screen.size else curve.floor
        top = math.log10(curve.peak) + LABEL_HEADROOM_DECADES
        self.plot.setYRange(min(math.log10(bottom), top - 1.0), top, padding=0.02)

    def _x_range_moved(self, *_args) -> None:
        """A pan or zoom by hand: the density is drawn finely where it now shows (at the next event loop turn)."""
        if not self._framing and self.shown is not None:
            self._zoom_timer.start()

    def _refine(self) -> None:
        spectrum = self.shown
        if spectrum is None:
            return
        values, weights = spectrum.probes
        eigenvalues = self._stick_values[0] + self._stick_values[1]
        self._draw_curve(values, weights, spectrum.shown_sigma, eigenvalues, bool(np.isfinite(values).any()))
        self._place_sticks()

    def _draw_sticks(self, sticks: list[Stick], live: bool) -> None:
        for label in self.stick_labels:
            self.plot.removeItem(label)
        self.stick_labels = []
        style = Qt.PenStyle.DashLine if live else Qt.PenStyle.SolidLine
        for item, kind, color in ((self.top_item, "top", TOP_COLOR), (self.bottom_item, BOTTOM, BOTTOM_COLOR)):
            chosen = [s for s in sticks if s.kind == kind]
            xs = np.repeat([s.x for s in chosen], 2)
            ys = np.ravel([[s.bottom, s.top] for s in chosen])
            item.setPen(pg.mkPen(color, width=2, style=style))
            item.setData(xs, ys, connect="pairs") if chosen else item.setData([], [])
        for stick in sticks:
            color = TOP_COLOR if stick.kind == "top" else BOTTOM_COLOR
            label = pg.TextItem(stick.label, color=color, anchor=(0.0 if stick.kind == BOTTOM else 1.0, 0.0),
                                fill=pg.mkBrush(255, 255, 255, 200))
            label.setPos(stick.x, math.log10(stick.label_y))  # view coordinates: log10 of the density
            label.setZValue(5)
            self.plot.addItem(label, ignoreBounds=True)
            self.stick_labels.append(label)

    # -- σ -------------------------------------------------------------------------------------------
    def _sync_sigma_controls(self, spectrum: SpectrumLandscape, values: np.ndarray, sigma: float | None) -> None:
        has = sigma is not None and bool(np.isfinite(values).any())
        for widget in (self.sigma_slider, self.sigma_edit, self.sigma_reset):
            widget.setEnabled(has)
        if not has:
            self.scale = None
            self.sigma_edit.setText("")
            return
        self.scale = SigmaScale.for_nodes(values, spectrum.file_sigma)
        self.sigma_slider.blockSignals(True)
        self.sigma_slider.setRange(0, self.scale.steps)
        self.sigma_slider.setValue(self.scale.position(sigma))
        self.sigma_slider.blockSignals(False)
        if not self.sigma_edit.hasFocus():
            self.sigma_edit.setText(f"{sigma:.3g}")
        self.sigma_reset.setEnabled(spectrum.sigma is not None and spectrum.file_sigma is not None)

    def _slider_moved(self, position: int) -> None:
        if self.shown is not None and self.scale is not None:
            self.state.set_sigma(self.shown, self.scale.sigma(position))

    def _sigma_typed(self) -> None:
        if self.shown is None:
            return
        try:
            sigma = float(self.sigma_edit.text())
            self.state.set_sigma(self.shown, sigma)
        except ValueError:
            self.sigma_edit.setStyleSheet("color: #c81e1e;")
            self.sigma_edit.setToolTip(f"'{self.sigma_edit.text()}' is not a positive number")
            return
        self.sigma_edit.setStyleSheet("")
        self.sigma_edit.setToolTip("σ, typed (press Enter)")

    def set_sigma(self, sigma: float | None) -> None:
        """Draw the shown spectrum's density at ``sigma`` (None: the file's), as the slider does."""
        if self.shown is not None:
            self.state.set_sigma(self.shown, sigma)

    def _sync_range_box(self) -> None:
        index = self.range_box.findData(self.state.view.spectrum_range)
        if index != self.range_box.currentIndex():
            self.range_box.blockSignals(True)
            self.range_box.setCurrentIndex(index)
            self.range_box.blockSignals(False)

    # -- the table ------------------------------------------------------------------------------------
    def _fill_table(self) -> None:
        spectra = self.state.spectra()
        columns = [ReportColumn(s.name, report_of(s.result), s.result.attrs) for s in spectra]
        owner = {id(c): s for c, s in zip(columns, spectra)}
        ordered = ordered_columns(columns)
        self.columns = [owner[id(c)] for c in ordered]
        self.rows = rows = report_table(ordered)
        self.table.setColumnCount(len(ordered))
        self.table.setRowCount(len(rows))
        bold = QFont(self.table.font())
        bold.setBold(True)
        for c, (column, spectrum) in enumerate(zip(ordered, self.columns)):
            name = column.name
            title = name.replace(" (", "\n(") if " (" in name else name
            item = self.table.horizontalHeaderItem(c) or QTableWidgetItem()
            item.setText(title)
            item.setToolTip(f"{spectrum.path}" + ("\n(computing)" if spectrum.computing else ""))
            item.setFont(bold if spectrum is self.shown else self.table.font())
            self.table.setHorizontalHeaderItem(c, item)
        for r, entry in enumerate(rows):
            header = self.table.verticalHeaderItem(r) or QTableWidgetItem()
            header.setText(entry.label)
            header.setToolTip(entry.tooltip)
            self.table.setVerticalHeaderItem(r, header)
            for c, text in enumerate(entry.cells):
                item = self.table.item(r, c)
                if item is None:
                    item = QTableWidgetItem()
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                    self.table.setItem(r, c, item)
                if item.text() != text:
                    item.setText(text)
        self.table.setVisible(bool(spectra))

    def _column_clicked(self, column: int) -> None:
        if 0 <= column < len(self.columns):
            self.state.set_current(self.columns[column])

    def cell(self, row_key: str, spectrum: SpectrumLandscape) -> str:
        """The table's text for quantity ``row_key`` (a row key of engine.display.spectra) of ``spectrum``."""
        row = [r.key for r in self.rows].index(row_key)
        return self.table.item(row, self.columns.index(spectrum)).text()

    # -- figures -------------------------------------------------------------------------------------
    def figure_target(self) -> pg.GraphicsLayoutWidget:
        """What File ▸ Export Figure… draws of the spectrum: the density plot with its sticks and legend."""
        return self.graphics


def _eigenvalue_frame(eigenvalues: list[float]) -> tuple[float, float]:
    """The x range of eigenvalues alone (no density yet): around them, or -1..1 with none."""
    if not eigenvalues:
        return -1.0, 1.0
    lo, hi = min(eigenvalues), max(eigenvalues)
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    return lo - pad, hi + pad


def _finite(values) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64) if math.isfinite(float(v))]


def header_text(spectrum: SpectrumLandscape) -> str:
    """One or two lines above the plot: the file, where the Hessian is taken, the size, what a job is doing."""
    result = spectrum.result
    a = result.attrs
    where = point_text(a)
    facts = []
    checkpoint = _file_name(a.get("checkpoint"))
    facts.append(f"at {checkpoint}" if where == "checkpoint" else f"at {where} of {_file_name(a.get('at'))}")
    n_params = result.results.get("n_params") or a.get("n_params")
    if n_params:
        facts.append(f"{int(n_params):,} parameters")
    if a.get("data_samples"):
        facts.append(f"{int(a['data_samples']):,} samples")
    if result.hvp_count:
        facts.append(f"{result.hvp_count:,} Hessian-vector products")
    sigma = spectrum.shown_sigma
    if sigma is not None and np.isfinite(spectrum.probes[0]).any():
        facts.append(f"σ = {sigma:.3g}" + ("" if spectrum.sigma is None else f" (file: {spectrum.file_sigma:.3g})"
                                            if spectrum.file_sigma is not None else ""))
    text = f"<b>{html.escape(spectrum.name)}</b> — " + html.escape("; ".join(facts))
    if spectrum.computing and spectrum.live.active:
        done, total = spectrum.progress
        text += (f"<br><span style='color:#8a6d00'>computing: {html.escape(spectrum.live.text())} "
                 f"({done}/{total} products)</span>")
    elif not spectrum.complete and not spectrum.computing:
        text += "<br><span style='color:#8a6d00'>not finished: Compute ▸ Resume Computing continues it</span>"
    return text


def _file_name(value) -> str:
    if not value:
        return "?"
    parts = str(value).replace("\\", "/").rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) > 1 else parts[0]


__all__ = ["SpectrumView", "header_text"]
