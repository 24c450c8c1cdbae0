"""The 2D map: a surface as a heatmap on its real coordinates, with contours, color bar,
the training trajectory, point status, and a slice line whose ends can be dragged.

Follows pyqtgraph's performance advice: float32 C-contiguous images, explicit
levels, lookup tables from the colormap; a colormap, scale or clip change only
swaps cached arrays and levels (engine.display.levels caches them), never recomputes.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Signal

from engine.display.contours import contour_lines
from engine.display.levels import contour_field, contour_levels
from landscape_gui.state import AppState, Landscape, value_label
from landscape_gui.views.colors import STATUS_LUT, colormap

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)


def grid_rect(x: np.ndarray, y: np.ndarray) -> QRectF:
    """The rectangle whose pixels are centred on the grid nodes (half a step beyond each end)."""
    dx = (x[-1] - x[0]) / (len(x) - 1) if len(x) > 1 else 1.0
    dy = (y[-1] - y[0]) / (len(y) - 1) if len(y) > 1 else 1.0
    return QRectF(x[0] - dx / 2, y[0] - dy / 2, dx * len(x), dy * len(y))


class HeatmapView(pg.GraphicsLayoutWidget):
    """Shows ``state.current`` (when 2D) as ``state.view`` says; emits ``hovered(x, y)`` in plane coordinates."""

    hovered = Signal(float, float)

    def __init__(self, state: AppState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self.setBackground("w")
        self.plot: pg.PlotItem = self.addPlot(row=0, col=0)
        self.plot.setAspectLocked(False)
        self.plot.showGrid(x=False, y=False)
        self.plot.setLabel("bottom", "α (direction x)")
        self.plot.setLabel("left", "β (direction y)")
        self.status_image = pg.ImageItem(axisOrder="row-major")
        self.status_image.setLookupTable(STATUS_LUT)
        self.status_image.setLevels((0, len(STATUS_LUT) - 1))
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setAutoDownsample(True)
        self.plot.addItem(self.image)
        self.plot.addItem(self.status_image)
        self.status_image.setZValue(1)  # a veil over pending points, magenta over NaN/inf
        self.contours = pg.PlotDataItem(pen=pg.mkPen((255, 255, 255, 150), width=1), connect="pairs")
        self.contours.setZValue(5)
        self.plot.addItem(self.contours)
        self.trajectory = pg.PlotDataItem(pen=pg.mkPen((255, 90, 60), width=2), symbol="o", symbolSize=6,
                                          symbolBrush=(255, 90, 60), symbolPen=pg.mkPen("w"))
        self.trajectory.setZValue(8)
        self.plot.addItem(self.trajectory)
        self.trajectory_labels: list[pg.TextItem] = []
        self.origin = pg.ScatterPlotItem([0.0], [0.0], symbol="+", size=14, pen=pg.mkPen("w", width=2), brush=None)
        self.origin.setZValue(9)
        self.plot.addItem(self.origin)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=colormap(state.view.colormap), interactive=False,
                                        width=15)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        self.roi = pg.LineSegmentROI([(0, 0), (1, 0)], pen=pg.mkPen((255, 255, 255), width=3),
                                     hoverPen=pg.mkPen((255, 220, 0), width=4))
        self.roi.setZValue(10)
        self.plot.addItem(self.roi)
        self.message = pg.TextItem("", color=(60, 60, 60), anchor=(0.5, 0.5))
        self.plot.addItem(self.message)
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
        else:
            self.refresh()

    def refresh(self, new_surface: bool = False) -> None:
        """Redraw from the state: data, levels, contours, trajectory (the ROI when the surface changed)."""
        landscape = self.state.current
        view = self.state.view
        if landscape is None or landscape.surface.dimensions != 2:
            self._shown = None
            for item in (self.image, self.status_image):
                item.clear()
            self.contours.setData([], [])
            self.trajectory.setData([], [])
            self.roi.setVisible(False)
            self.origin.setVisible(False)
            self.message.setText("Open a 2D surface (File ▸ Open Grid…)" if landscape is None
                                 else "This is a 1D surface: see the profile view")
            self.message.setPos(0.5, 0.5)
            self.plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            return
        self.message.setText("")
        surface = landscape.surface
        grid = landscape.grid(view.metric)
        low, high = grid.levels(view.scale, view.clip_percentile)
        rect = grid_rect(surface.x, surface.y)
        self.image.setImage(grid.preview(view.scale), levels=(low, high), autoLevels=False)
        self.status_image.setImage(grid.status, levels=(0, len(STATUS_LUT) - 1), autoLevels=False)
        self.image.setRect(rect)
        self.status_image.setRect(rect)
        self.colorbar.setLevels((low, high))
        self.colorbar.axis.setLabel(value_label(landscape.shown_metric(view.metric), view.scale))
        levels = contour_levels(low, high, view.contours)
        lines = contour_lines(surface.x, surface.y, contour_field(grid.preview(view.scale), high), levels)
        self.contours.setData(lines[:, 0], lines[:, 1], connect="pairs")
        self.origin.setVisible(bool(surface.x[0] <= 0 <= surface.x[-1] and surface.y[0] <= 0 <= surface.y[-1]))
        self.roi.setVisible(True)
        if new_surface or self._shown is not landscape:
            self._shown = landscape
            self._draw_trajectory()
            self.plot.setRange(rect=rect, padding=0)
            self._place_roi()

    def _draw_trajectory(self) -> None:
        for label in self.trajectory_labels:
            self.plot.removeItem(label)
        self.trajectory_labels = []
        landscape = self.state.current
        surface = landscape.surface if landscape is not None else None
        if surface is None or surface.trajectory is None or not self.state.view.show_trajectory:
            self.trajectory.setData([], [])
            return
        tx, ty = surface.trajectory["x"], surface.trajectory["y"]
        self.trajectory.setData(tx, ty)
        names = surface.trajectory_names or [str(k) for k in range(len(tx))]
        for k in sorted({0, len(tx) - 1}):
            label = pg.TextItem(names[k].removesuffix(".pt"), color=(255, 255, 255), anchor=(0, 1))
            label.setPos(float(tx[k]), float(ty[k]))
            label.setZValue(9)
            self.plot.addItem(label)
            self.trajectory_labels.append(label)

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

    def map_to_scene(self, x: float, y: float) -> QPointF:
        """Scene position of plane coordinates (tests use it to aim mouse events)."""
        return self.plot.vb.mapViewToScene(QPointF(x, y))
