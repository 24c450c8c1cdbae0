"""Side by side: several 2D surfaces on one shared color scale (a width sweep at a glance).

One ColorBarItem drives every image, with levels from engine.display.levels.shared_levels,
so equal colors mean equal loss across panels.
"""

from __future__ import annotations

import math

import pyqtgraph as pg

from engine.display.contours import contour_lines
from engine.display.levels import contour_field, contour_levels, shared_levels
from landscape_gui.state import AppState, value_label
from landscape_gui.views.colors import STATUS_LUT, colormap
from landscape_gui.views.heatmap import grid_rect


class CompareView(pg.GraphicsLayoutWidget):
    """Panels for ``state.compared``, in a near-square grid, one color bar on the right."""

    def __init__(self, state: AppState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self.setBackground("w")
        self.panels: list[tuple[pg.PlotItem, pg.ImageItem]] = []
        self.colorbar: pg.ColorBarItem | None = None
        self.levels: tuple[float, float] = (0.0, 1.0)
        self._stale = False  # the state changed while the tab was hidden: rebuild when shown
        state.compared_changed.connect(self.rebuild)
        state.updated.connect(lambda l: self.refresh() if l in state.compared else None)
        state.view.changed.connect(self._view_changed)
        self.rebuild()

    def _view_changed(self, name: str) -> None:
        if name == "colormap" and self.colorbar is not None:
            self.colorbar.setColorMap(colormap(self.state.view.colormap))
        elif name in ("metric", "scale", "clip_percentile", "contours"):
            self.refresh()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().showEvent(event)
        if self._stale:
            self.rebuild()

    def rebuild(self) -> None:
        """New panel layout for the compared surfaces (deferred while the tab is hidden)."""
        if not self.isVisible():
            self._stale = True
            return
        self._stale = False
        self.clear()
        self.panels = []
        self.colorbar = None
        landscapes = self.state.compared
        if not landscapes:
            self.addLabel("Open several 2D surfaces to compare them on one color scale", color=(60, 60, 60))
            return
        columns = math.ceil(math.sqrt(len(landscapes)))
        rows = math.ceil(len(landscapes) / columns)
        for k, landscape in enumerate(landscapes):
            plot = self.addPlot(row=k // columns, col=k % columns, title=landscape.name)
            plot.setTitle(landscape.name, color=(30, 30, 30), size="10pt")
            status = pg.ImageItem(axisOrder="row-major")
            status.setLookupTable(STATUS_LUT)
            image = pg.ImageItem(axisOrder="row-major")
            contours = pg.PlotDataItem(pen=pg.mkPen((255, 255, 255, 140), width=1), connect="pairs")
            for item in (image, status, contours):
                plot.addItem(item)
            status.setZValue(1)  # a veil over pending points, magenta over NaN/inf
            contours.setZValue(2)
            plot.contours = contours  # type: ignore[attr-defined]
            plot.status = status  # type: ignore[attr-defined]
            if k > 0:
                plot.setXLink(self.panels[0][0])
                plot.setYLink(self.panels[0][0])
            self.panels.append((plot, image))
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=colormap(self.state.view.colormap),
                                        interactive=False, width=15)
        self.colorbar.setImageItem([image for _plot, image in self.panels])
        self.addItem(self.colorbar, row=0, col=columns, rowspan=rows)
        self.refresh(reset_range=True)

    def refresh(self, reset_range: bool = False) -> None:
        if not self.isVisible():
            self._stale = True
            return
        if self.colorbar is None:
            return
        view = self.state.view
        grids = [landscape.grid(view.metric) for landscape in self.state.compared]
        low, high = shared_levels(grids, view.scale, view.clip_percentile)
        self.levels = (low, high)
        for (plot, image), landscape, grid in zip(self.panels, self.state.compared, grids):
            surface = landscape.surface
            rect = grid_rect(surface.x, surface.y)
            image.setImage(grid.preview(view.scale), levels=(low, high), autoLevels=False)
            image.setRect(rect)
            plot.status.setImage(grid.status, levels=(0, len(STATUS_LUT) - 1), autoLevels=False)
            plot.status.setRect(rect)
            lines = contour_lines(surface.x, surface.y, contour_field(grid.preview(view.scale), high),
                                  contour_levels(low, high, view.contours))
            plot.contours.setData(lines[:, 0], lines[:, 1], connect="pairs")
            if reset_range:
                plot.setRange(rect=rect, padding=0)
        self.colorbar.setLevels((low, high))
        self.colorbar.axis.setLabel(value_label(view.metric, view.scale))
