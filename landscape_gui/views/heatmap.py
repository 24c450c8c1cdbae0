"""The 2D map: a surface as a heatmap on its real coordinates, with contours, color bar,
the training trajectory, point status, and a slice line whose ends can be dragged.

A surface with an overlay (a mode-connectivity plane through A, B and a bend) shows it
as in Garipov et al.'s figures: its points as labelled markers, the straight segment
dashed and the curve solid, both white over the colours. Contour levels are evenly
spaced, or log-spaced (crowding towards the minimum) as the Display panel says.

Follows pyqtgraph's performance advice: float32 C-contiguous images, explicit
levels, lookup tables from the colormap; a colormap, scale or color-limit change only
swaps cached arrays and levels (engine.display.levels caches them), never recomputes.
When there is no picture to draw (nothing open, a 1D surface, a job before its first
points) a centred notice says why, with a progress bar while something is on its way.

Right-click a point of a Landscape surface for **Hessian here**: the view emits
``hessian_requested(x, y)`` with the grid point nearest the click, and the window computes
the Hessian spectrum there.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFrame, QLabel, QProgressBar, QVBoxLayout, QWidget

from engine.display.contours import contour_lines
from engine.display.levels import contour_levels
from engine.display.paths import label_anchors
from engine.display.profile import nearest_node
from landscape_gui.state import AppState, Landscape, ViewState, value_label
from landscape_gui.views.colors import STATUS_LUT, colormap

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)


def grid_rect(x: np.ndarray, y: np.ndarray) -> QRectF:
    """The rectangle whose pixels are centred on the grid nodes (half a step beyond each end)."""
    dx = (x[-1] - x[0]) / (len(x) - 1) if len(x) > 1 else 1.0
    dy = (y[-1] - y[0]) / (len(y) - 1) if len(y) > 1 else 1.0
    return QRectF(x[0] - dx / 2, y[0] - dy / 2, dx * len(x), dy * len(y))


def plain_axes(plot: pg.PlotItem) -> None:
    """Plane coordinates are unitless: ticks read -0.5..0.5, never -500..500 with an SI multiplier."""
    for side in ("left", "bottom", "right", "top"):
        plot.getAxis(side).enableAutoSIPrefix(False)


NO_SURFACE = "No surface open: File ▸ Open Grid… or File ▸ Open Checkpoint…"
ONE_D_SURFACE = "1D surface: see the profile below"
PATH_RESULT = "This is a path between two checkpoints: see the Path tab"
SPECTRUM_RESULT = "This is a Hessian spectrum: see the Spectrum tab"
HESSIAN_HERE = "Hessian here"
OVERLAY_COLOR = (255, 255, 255)
OVERLAY_LINE_STYLES = {"straight": Qt.PenStyle.DashLine, "curve": Qt.PenStyle.SolidLine}  # others: dotted
NOTICE_MARGIN = 24  # pixels kept between the notice and the view's edges


class Notice(QFrame):
    """A centred message over a view, with a progress bar as wide as the text when work is under way."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("notice")
        self.setStyleSheet("#notice { background: rgba(255, 255, 255, 235); border: 1px solid #c8c8c8;"
                           " border-radius: 6px; } QLabel { color: #3c3c3c; }")
        self.label = QLabel()
        self.label.setAlignment(Qt.AlignCenter)
        self.label.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(10)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.hide()
        parent.installEventFilter(self)  # stay centred when the view is resized

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt naming
        if event.type() == QEvent.Resize and self.isVisible():
            self.place()
        return False

    def text(self) -> str:
        return self.label.text() if self.isVisibleTo(self.parentWidget()) else ""

    def show_message(self, text: str, progress: tuple[int | None, int | None] | None = None) -> None:
        """Show ``text``; ``progress`` (value, maximum) adds a bar, busy when the maximum is unknown."""
        self.label.setText(text)
        self.bar.setVisible(progress is not None)
        if progress is not None:
            value, maximum = progress
            self.bar.setRange(0, maximum or 0)
            self.bar.setValue(value or 0)
        self.place()
        self.show()
        self.raise_()

    def place(self) -> None:
        """Size to the text (wrapped within the view) and centre in the parent."""
        parent = self.parentWidget()
        room = max(parent.width() - 2 * NOTICE_MARGIN, 120)
        margins = self.layout().contentsMargins()
        text_width = self.label.fontMetrics().horizontalAdvance(self.label.text()) + 4
        self.label.setFixedWidth(min(text_width, room - margins.left() - margins.right()))
        self.adjustSize()
        self.move((parent.width() - self.width()) // 2, (parent.height() - self.height()) // 2)


class MapViewBox(pg.ViewBox):
    """The map's view box: its right-click menu starts with "Hessian here", for the point clicked.

    ``menu_point`` is where the menu was opened, in plane coordinates; ``prepare(x, y)`` (set by the
    map) names the point in the action's text and enables it when the Hessian can be taken there.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.menu_point: tuple[float, float] | None = None
        self.prepare = None
        self.hessian_action = QAction(HESSIAN_HERE, self.menu)
        self.hessian_action.setStatusTip("The Hessian's eigenvalues, trace, density and report at this point of the "
                                         "surface (the grid point nearest the click), with the last Hessian "
                                         "Spectrum choices")
        first = self.menu.actions()[0] if self.menu.actions() else None
        self.menu.insertAction(first, self.hessian_action)
        self.menu.insertSeparator(first)

    def getMenu(self, ev):  # noqa: N802 - pyqtgraph naming
        point = self.mapSceneToView(ev.scenePos())
        self.menu_point = (point.x(), point.y())
        if self.prepare is not None:
            self.prepare(*self.menu_point)
        return self.menu


class HeatmapView(pg.GraphicsLayoutWidget):
    """Shows ``state.current`` (when 2D) as ``state.view`` says; emits ``hovered(x, y)`` in plane coordinates.

    ``set_status(text, value, maximum)`` says what is on its way while there is no picture yet.
    """

    hovered = Signal(float, float)
    hessian_requested = Signal(float, float)  # a grid point of the current surface (right-click, Hessian here)

    def __init__(self, state: AppState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self.setBackground("w")
        self.view_box = MapViewBox()
        self.view_box.prepare = self._prepare_menu
        self.view_box.hessian_action.triggered.connect(self._hessian_here)
        self._hessian_point: tuple[float, float] | None = None
        self.plot: pg.PlotItem = self.addPlot(row=0, col=0, viewBox=self.view_box)
        self.plot.setAspectLocked(False)
        policy = self.plot.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # hidden while there is no picture, laid out all the same
        self.plot.setSizePolicy(policy)
        self.plot.showGrid(x=False, y=False)
        self.plot.setLabel("bottom", "α (direction x)")
        self.plot.setLabel("left", "β (direction y)")
        plain_axes(self.plot)
        self.status_image = pg.ImageItem(axisOrder="row-major")
        self.status_image.setLookupTable(STATUS_LUT)
        self.status_image.setLevels((0, len(STATUS_LUT) - 1))
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setAutoDownsample(True)
        self.plot.addItem(self.image)
        self.plot.addItem(self.status_image)
        self.status_image.setZValue(1)  # a veil over pending points, magenta over NaN/inf
        self.contours = pg.PlotDataItem(pen=pg.mkPen((255, 255, 255, 150), width=1), connect="finite")
        self.contours.setZValue(5)
        self.plot.addItem(self.contours)
        self.trajectory = pg.PlotDataItem(pen=pg.mkPen((255, 90, 60), width=2), symbol="o", symbolSize=6,
                                          symbolBrush=(255, 90, 60), symbolPen=pg.mkPen("w"))
        self.trajectory.setZValue(8)
        self.plot.addItem(self.trajectory)
        self.trajectory_labels: list[pg.TextItem] = []
        # the overlay of a mode-connectivity plane: one polyline per named line, one marker per named point
        self.overlay_lines: dict[str, pg.PlotDataItem] = {}
        self.overlay_points = pg.ScatterPlotItem(symbol="o", size=9, brush=pg.mkBrush(OVERLAY_COLOR),
                                                 pen=pg.mkPen((30, 30, 30), width=1.5))
        self.overlay_points.setZValue(8)
        self.plot.addItem(self.overlay_points)
        self.overlay_labels: dict[str, pg.TextItem] = {}
        self._drawn_overlay = None
        self.origin = pg.ScatterPlotItem([0.0], [0.0], symbol="+", size=14, pen=pg.mkPen("w", width=2), brush=None)
        self.origin.setZValue(9)
        self.plot.addItem(self.origin)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=colormap(state.view.colormap), interactive=False,
                                        width=15)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        self.colorbar.axis.enableAutoSIPrefix(False)
        policy = self.colorbar.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # hidden until the first point has a color: no jump when it shows
        self.colorbar.setSizePolicy(policy)
        self.roi = pg.LineSegmentROI([(0, 0), (1, 0)], pen=pg.mkPen((255, 255, 255), width=3),
                                     hoverPen=pg.mkPen((255, 220, 0), width=4))
        self.roi.setZValue(10)
        self.plot.addItem(self.roi)
        self.notice = Notice(self)
        self._status: tuple[str, int | None, int | None] | None = None
        self._syncing_roi = False
        self._shown: Landscape | None = None
        self.roi.sigRegionChanged.connect(self._roi_moved)
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        state.current_changed.connect(lambda _l: self.refresh(new_surface=True))
        state.updated.connect(self._landscape_updated)
        state.view.changed.connect(self._view_changed)
        self.refresh(new_surface=True)

    # -- state -> view ---------------------------------------------------------------------
    def _landscape_updated(self, landscape: Landscape) -> None:
        if landscape is self.state.current:
            self.refresh()

    def _view_changed(self, name: str) -> None:
        if name == "slice":
            self._place_roi()
        elif name == "colormap":
            cmap = colormap(self.state.view.colormap)
            self.colorbar.setColorMap(cmap)  # sets the image's lookup table too; no data touched
        elif name == "show_trajectory":
            self._draw_trajectory()
        elif name in ("metric", "scale", "contours", "contour_spacing", *ViewState.LIMIT_KEYS):
            self.refresh()

    def set_status(self, text: str | None, value: int | None = None, maximum: int | None = None) -> None:
        """Say what is on its way (training, computing) while the map has no picture; None clears it.

        Shown in the middle of the map with a progress bar as wide as the text: ``value``
        of ``maximum`` when given, a busy bar otherwise. Hidden while a picture is drawn
        (a 2D surface with computed points) and shown again if the map empties.
        """
        self._status = None if text is None else (text, value, maximum)
        self._update_notice()

    def _update_notice(self) -> None:
        landscape = self.state.current
        has_picture = (landscape is not None and landscape.surface.dimensions == 2
                       and bool(landscape.surface.done.any()))
        if self._status is not None and not has_picture:
            text, value, maximum = self._status
            self.notice.show_message(text, (value, maximum))
        elif landscape is None:
            self.notice.show_message(NO_SURFACE)
        elif landscape.kind == "path":
            self.notice.show_message(PATH_RESULT)
        elif landscape.kind == "spectrum":
            self.notice.show_message(SPECTRUM_RESULT)
        elif landscape.surface.dimensions != 2:
            self.notice.show_message(ONE_D_SURFACE)
        else:
            self.notice.hide()

    def refresh(self, new_surface: bool = False) -> None:
        """Redraw from the state: data, levels, contours, trajectory (the ROI when the surface changed)."""
        landscape = self.state.current
        view = self.state.view
        self._update_notice()
        if landscape is None or landscape.surface.dimensions != 2:
            self._clear()
            return
        self.plot.setVisible(True)
        surface = landscape.surface
        grid = landscape.grid(view.metric)
        low, high = grid.levels(view.scale, view.limits())
        rect = grid_rect(surface.x, surface.y)
        preview = grid.preview(view.scale, (low, high))
        self.image.setImage(preview, levels=(low, high), autoLevels=False)
        self.status_image.setImage(grid.veil, levels=(0, len(STATUS_LUT) - 1), autoLevels=False)
        self.image.setRect(rect)
        self.status_image.setRect(rect)
        self.colorbar.setLevels((low, high))
        self.colorbar.axis.setLabel(value_label(landscape.shown_metric(view.metric), view.scale))
        self.colorbar.setVisible(bool(surface.done.any()))  # no range to show before the first point
        levels = contour_levels(low, high, view.contours, view.contour_spacing, view.scale)
        lines = contour_lines(surface.x, surface.y, preview, levels)
        self.contours.setData(lines[:, 0], lines[:, 1], connect="finite")
        self.origin.setVisible(bool(surface.x[0] <= 0 <= surface.x[-1] and surface.y[0] <= 0 <= surface.y[-1]))
        self.roi.setVisible(True)
        if new_surface or self._shown is not landscape:
            self._shown = landscape
            self._draw_trajectory()
            self._draw_overlay()
            self.plot.setRange(rect=rect, padding=0)
            self._place_roi()
        elif surface.overlay is not self._drawn_overlay:  # the file was read again (a job ended)
            self._draw_overlay()

    def _clear(self) -> None:
        """No stale picture: image, veil, contours, color bar and axes all go (the notice says why)."""
        self._shown = None
        for item in (self.image, self.status_image):
            item.clear()
        self.contours.setData([], [])
        self._draw_trajectory()
        self._draw_overlay()
        self.roi.setVisible(False)
        self.origin.setVisible(False)
        self.plot.setVisible(False)

    def _draw_trajectory(self) -> None:
        for label in self.trajectory_labels:
            self.plot.removeItem(label)
        self.trajectory_labels = []
        landscape = self.state.current
        surface = landscape.surface if landscape is not None else None
        if (surface is None or surface.dimensions != 2 or surface.trajectory is None
                or not self.state.view.show_trajectory):
            self.trajectory.setData([], [])
            return
        tx, ty = surface.trajectory["x"], surface.trajectory["y"]
        self.trajectory.setData(tx, ty)
        names = surface.trajectory_names or [str(k) for k in range(len(tx))]
        first_left = bool(tx[0] <= tx[-1])  # each end's name points away from the other end: no overlap
        for k in sorted({0, len(tx) - 1}):
            away = (k == 0) == first_left
            label = pg.TextItem(names[k].removesuffix(".pt"), color=(255, 255, 255), anchor=(1 if away else 0, 1))
            label.setPos(float(tx[k]), float(ty[k]))
            label.setZValue(9)
            self.plot.addItem(label)
            self.trajectory_labels.append(label)

    def _draw_overlay(self) -> None:
        """The current surface's overlay (points and lines in its plane), or nothing."""
        for item in self.overlay_lines.values():
            self.plot.removeItem(item)
        for label in self.overlay_labels.values():
            self.plot.removeItem(label)
        self.overlay_lines, self.overlay_labels = {}, {}
        landscape = self.state.current
        overlay = landscape.surface.overlay if landscape is not None and landscape.surface.dimensions == 2 else None
        self._drawn_overlay = overlay
        if overlay is None:
            self.overlay_points.setData([], [])
            return
        for name, line in overlay.lines.items():
            line = np.asarray(line, dtype=np.float64).reshape(-1, 2)
            pen = pg.mkPen(OVERLAY_COLOR, width=2, style=OVERLAY_LINE_STYLES.get(name, Qt.PenStyle.DotLine))
            item = pg.PlotDataItem(line[:, 0], line[:, 1], pen=pen, connect="finite")
            item.setZValue(7)
            self.plot.addItem(item)
            self.overlay_lines[name] = item
        names = list(overlay.points)
        xy = np.asarray([overlay.points[n] for n in names], dtype=np.float64).reshape(-1, 2)
        self.overlay_points.setData(xy[:, 0], xy[:, 1], data=names)
        for name, anchor in label_anchors(overlay.points).items():
            label = pg.TextItem(name, color=OVERLAY_COLOR, anchor=anchor, fill=pg.mkBrush(0, 0, 0, 110))
            label.setPos(*overlay.points[name])
            label.setZValue(9)
            self.plot.addItem(label)
            self.overlay_labels[name] = label

    def _place_roi(self) -> None:
        segment = self.state.view.slice
        if segment is None:
            return
        handles = self.roi.getHandles()
        self._syncing_roi = True
        try:
            for handle, point in zip(handles, segment):
                self.roi.movePoint(handle, QPointF(*point), finish=False, coords="parent")
        finally:
            self._syncing_roi = False

    # -- view -> state ----------------------------------------------------------------------
    def slice_endpoints(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The slice line's ends in plane coordinates, as drawn."""
        ends = [self.roi.mapToParent(handle.pos()) for handle in self.roi.getHandles()]
        return (ends[0].x(), ends[0].y()), (ends[1].x(), ends[1].y())

    def _roi_moved(self) -> None:
        if not self._syncing_roi:
            self.state.view.slice = self.slice_endpoints()

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        if self._shown is None or not self.plot.sceneBoundingRect().contains(scene_pos):
            return
        point = self.plot.vb.mapSceneToView(scene_pos)
        self.hovered.emit(point.x(), point.y())

    # -- Hessian here -------------------------------------------------------------------------------
    def hessian_point(self, x: float, y: float) -> tuple[float, float] | None:
        """The grid point of the current surface nearest (x, y) where the Hessian can be taken, else None
        (no 2D Landscape surface with a checkpoint, or outside its grid)."""
        landscape = self._shown
        if landscape is None or landscape.kind != "surface" or landscape.surface.format != "landscape":
            return None
        surface = landscape.surface
        if not surface.attrs.get("checkpoint"):
            return None
        node = nearest_node(surface.x, surface.y, x, y)
        if node is None:
            return None
        return float(surface.x[node[0]]), float(surface.y[node[1]])

    def _prepare_menu(self, x: float, y: float) -> None:
        point = self.hessian_point(x, y)
        self._hessian_point = point
        action = self.view_box.hessian_action
        action.setEnabled(point is not None)
        action.setVisible(self._shown is not None)
        action.setText(HESSIAN_HERE if point is None else f"{HESSIAN_HERE} (x {point[0]:.4g}, y {point[1]:.4g})")

    def _hessian_here(self) -> None:
        if self._hessian_point is not None:
            self.hessian_requested.emit(*self._hessian_point)

    def map_to_scene(self, x: float, y: float) -> QPointF:
        """Scene position of plane coordinates (tests use it to aim mouse events)."""
        return self.plot.vb.mapViewToScene(QPointF(x, y))
