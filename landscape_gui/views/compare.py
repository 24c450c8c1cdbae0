"""Side by side: several 2D surfaces on one shared color scale (a width sweep at a glance).

One ColorBarItem drives every image, with levels from engine.display.levels.shared_levels
under the state's color limits, so equal colors mean equal loss across panels. Panels are
equally wide whatever their names and tick labels, and hovering one reads out its point.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QFont, QFontMetrics

from engine.display.contours import contour_lines
from engine.display.levels import contour_levels, shared_levels
from landscape_gui.state import AppState, Landscape, ViewState, point_readout, value_label
from landscape_gui.views.colors import STATUS_LUT, colormap
from landscape_gui.views.heatmap import grid_rect, plain_axes

AXIS_WIDTH = 52  # pixels for every panel's left axis, so tick labels never make one panel narrower
TITLE_POINTS = 10
HOVER_HINT = "Hover a panel to read its values"


def same_coordinates(a: Landscape, b: Landscape) -> bool:
    """Whether two surfaces span the same plane rectangle (their panels then zoom together)."""
    ra, rb = grid_rect(a.surface.x, a.surface.y), grid_rect(b.surface.x, b.surface.y)
    return ra == rb


class ComparePanel:
    """One surface's plot in the comparison: image, status veil and contours on its coordinates.

    Its title is the surface's name, cut in the middle to the panel's width (the full name
    is its tooltip), so a long name never widens its panel.
    """

    def __init__(self, plot: pg.PlotItem, landscape: Landscape) -> None:
        self.plot = plot
        self.landscape = landscape
        plot.titleLabel.setToolTip(landscape.name)
        self.fit_title()
        plot.vb.sigResized.connect(lambda _vb: self.fit_title())
        self.image = pg.ImageItem(axisOrder="row-major")
        self.status = pg.ImageItem(axisOrder="row-major")
        self.status.setLookupTable(STATUS_LUT)
        self.contours = pg.PlotDataItem(pen=pg.mkPen((255, 255, 255, 140), width=1), connect="finite")
        for item in (self.image, self.status, self.contours):
            plot.addItem(item)
        self.status.setZValue(1)  # a veil over pending points, magenta over NaN/inf
        self.contours.setZValue(2)

    def draw(self, scale: str, levels: tuple[float, float], contours: int, metric: str) -> None:
        surface = self.landscape.surface
        grid = self.landscape.grid(metric)
        rect = grid_rect(surface.x, surface.y)
        preview = grid.preview(scale, levels)
        self.image.setImage(preview, levels=levels, autoLevels=False)
        self.image.setRect(rect)
        self.status.setImage(grid.veil, levels=(0, len(STATUS_LUT) - 1), autoLevels=False)
        self.status.setRect(rect)
        lines = contour_lines(surface.x, surface.y, preview, contour_levels(*levels, contours))
        self.contours.setData(lines[:, 0], lines[:, 1], connect="finite")

    def fit_title(self) -> None:
        font = QFont()
        font.setPointSize(TITLE_POINTS)
        room = max(int(self.plot.vb.width()), 40)
        self.plot.setTitle(QFontMetrics(font).elidedText(self.landscape.name, Qt.ElideMiddle, room),
                           color=(30, 30, 30), size=f"{TITLE_POINTS}pt")
        self.plot.titleLabel.setMinimumWidth(0)
        self.plot.titleLabel.setPreferredWidth(0)

    def reset_range(self) -> None:
        surface = self.landscape.surface
        self.plot.setRange(rect=grid_rect(surface.x, surface.y), padding=0)


class CompareView(pg.GraphicsLayoutWidget):
    """Panels for ``state.compared``, in a near-square grid, one color bar on the right; the point
    under the mouse is read out under the panels."""

    def __init__(self, state: AppState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self.setBackground("w")
        self.panels: list[ComparePanel] = []
        self.colorbar: pg.ColorBarItem | None = None
        self.readout: pg.LabelItem | None = None
        self.levels: tuple[float, float] = (0.0, 1.0)
        self._stale = False  # the state changed while the tab was hidden: rebuild when shown
        state.compared_changed.connect(self.rebuild)
        state.updated.connect(lambda l: self.refresh() if l in state.compared else None)
        state.view.changed.connect(self._view_changed)
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self.rebuild()

    def _view_changed(self, name: str) -> None:
        if name == "colormap" and self.colorbar is not None:
            self.colorbar.setColorMap(colormap(self.state.view.colormap))
        elif name in ("metric", "scale", "contours", *ViewState.LIMIT_KEYS):
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
        self.readout = None
        landscapes = self.state.compared
        if not landscapes:
            self.addLabel("Tick 2D surfaces in the Landscapes list to compare them on one color scale",
                          color=(60, 60, 60))
            return
        columns = math.ceil(math.sqrt(len(landscapes)))
        rows = math.ceil(len(landscapes) / columns)
        for k, landscape in enumerate(landscapes):
            self.panels.append(ComparePanel(self._add_plot(k // columns, k % columns, landscape), landscape))
        for column in range(columns):
            self.ci.layout.setColumnStretchFactor(column, 1)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=colormap(self.state.view.colormap),
                                        interactive=False, width=15)
        self.colorbar.setImageItem([panel.image for panel in self.panels])
        self.colorbar.axis.enableAutoSIPrefix(False)
        self.addItem(self.colorbar, row=0, col=columns, rowspan=rows)
        # The hint shows only while the mouse is over the view, so an exported figure never carries it.
        self.readout = self.addLabel(HOVER_HINT if self.underMouse() else "", row=rows, col=0,
                                     colspan=columns + 1, color=(60, 60, 60))
        self.refresh(reset_range=True)

    def _add_plot(self, row: int, column: int, landscape: Landscape) -> pg.PlotItem:
        """A panel whose width does not depend on its tick labels; zoom is shared with panels on the same grid."""
        plot = self.addPlot(row=row, col=column)
        plot.getAxis("left").setWidth(AXIS_WIDTH)
        plain_axes(plot)
        same_grid = next((p for p in self.panels if same_coordinates(p.landscape, landscape)), None)
        if same_grid is not None:
            plot.setXLink(same_grid.plot)
            plot.setYLink(same_grid.plot)
        return plot

    def refresh(self, reset_range: bool = False) -> None:
        if not self.isVisible():
            self._stale = True
            return
        if self.colorbar is None:
            return
        view = self.state.view
        grids = [panel.landscape.grid(view.metric) for panel in self.panels]
        self.levels = shared_levels(grids, view.scale, view.limits())
        for panel in self.panels:
            panel.draw(view.scale, self.levels, view.contours, view.metric)
            if reset_range:
                panel.reset_range()
        self.colorbar.setLevels(self.levels)
        self.colorbar.axis.setLabel(value_label(view.metric, view.scale))

    def enterEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self._hint(HOVER_HINT)
        super().enterEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self._hint("")
        super().leaveEvent(event)

    def _hint(self, text: str) -> None:
        """The readout's text when no panel is hovered (the label may be gone while the view closes)."""
        if self.readout is not None and shiboken6.isValid(self.readout.item):
            self.readout.setText(text)

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        if self.readout is None:
            return
        panel = next((p for p in self.panels if p.plot.vb.sceneBoundingRect().contains(scene_pos)), None)
        if panel is None:
            self.readout.setText(HOVER_HINT)
            return
        point = panel.plot.vb.mapSceneToView(scene_pos)
        self.readout.setText(point_readout(panel.landscape, point.x(), point.y()) or HOVER_HINT)

    def map_to_scene(self, panel: int, x: float, y: float) -> QPointF:
        """Scene position of plane coordinates in a panel (tests use it to aim mouse events)."""
        return self.panels[panel].plot.vb.mapViewToScene(QPointF(x, y))
