"""Export Figure: a view as a PNG of an exact pixel size, or as an SVG drawing; and a paper figure
of several views (:class:`Figure`: rows of views under a title, at a size in pixels and a DPI).

PNG: we render the scene ourselves with QPainter into a QImage of exactly the requested size.
pyqtgraph's ImageExporter couples its width and height parameters through the aspect ratio
(asking for 1000x500 from a 4:3 view gives 666x500) and letterboxes the scene, so it cannot give
an exact size of another shape. When the requested shape differs from the view's, we lay the view
out at that shape for the duration of the render (labels and plots reflow instead of stretching),
then put it back.

SVG: pyqtgraph 0.14.0's SVGExporter crashes under Qt >= 6.11, whose QSvgGenerator now closes
paths with a bare ``Z`` token that pyqtgraph's coordinate correction tries to split as ``x,y``
(pyqtgraph issue #3495, fixed after 0.14.0). :class:`ClosedPathSVGExporter` wraps that correction
step so ``Z`` tokens are set aside and put back, leaving the rest of pyqtgraph's SVG pipeline
(clipping, embedded images, gradients) as is.

Figures of several views: each view is laid out at the size its cell has when printed at the
figure's DPI (so text comes out at its point size) and its cosmetic pens are widened to match;
the PNG records the DPI. Their SVG holds each view as a vector group (ids prefixed: every view
exports its own ``ViewBox_1_clip``), and the OpenGL 3D view as an embedded PNG: OpenGL draws
pixels, so no vector form of it exists.
"""

from __future__ import annotations

import base64
import math
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Union
from xml.dom import minidom

from pyqtgraph import ROI, AxisItem, PlotCurveItem, PlotDataItem, mkPen
from pyqtgraph.exporters import Exporter, SVGExporter
from PySide6.QtCore import QBuffer, QByteArray, QCoreApplication, QIODevice, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter, QPen, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractScrollArea, QApplication, QGraphicsItem, QGraphicsScene, QGraphicsView, QWidget,
)

from engine.errors import LandscapeError

Target = Union[QGraphicsView, QGraphicsScene, QGraphicsItem]

SUFFIXES = (".png", ".svg")
MAX_SIDE = 20000  # a QImage of 20000 x 20000 ARGB32 is 1.6 GB; beyond that allocation fails anyway
MIN_LAYOUT = 80  # logical pixels: a plot laid out smaller has no room for its axes
MIN_DPI, MAX_DPI = 10.0, 2400.0
MIN_PANEL = 16  # pixels: the smallest view a figure of several views may hold
GAP_INCHES = 0.08  # between the views of a figure
TITLE_POINTS = 11.0
TITLE_COLOR = "#1e1e1e"
SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"

_svg_module = sys.modules[SVGExporter.__module__]
_CLOSE_COMMANDS = ("Z", "z")


# -- SVG: tolerate Qt >= 6.11's closed paths ---------------------------------------------------------
def _correct_coordinates_keeping_closes(upstream):
    """Wrap pyqtgraph's ``correctCoordinates`` so it never sees a bare ``Z`` in a path's ``d``.

    Qt writes one token per point (``M1,2 L3,4 C..``) plus, since 6.11, ``Z`` to close a subpath.
    pyqtgraph transforms each token as one ``x,y`` point and keeps the token count, so we remove
    the ``Z`` tokens, let it transform the points, and re-insert the ``Z`` tokens at their places.
    """

    def correct(node: minidom.Element, defs: list, item, options: dict) -> None:
        set_aside: list[tuple[minidom.Element, list[int]]] = []
        for path in node.getElementsByTagName("path"):
            tokens = path.getAttribute("d").split()
            closes = [k for k, token in enumerate(tokens) if token in _CLOSE_COMMANDS]
            if closes:
                path.setAttribute("d", " ".join(t for t in tokens if t not in _CLOSE_COMMANDS))
                set_aside.append((path, closes))
        upstream(node, defs, item, options)
        for path, closes in set_aside:
            tokens = path.getAttribute("d").split()
            for k in closes:  # ascending original positions, so each insert lands where it was
                tokens.insert(k, "Z")
            path.setAttribute("d", " ".join(tokens))

    return correct


@contextmanager
def _closed_paths_tolerated() -> Iterator[None]:
    """Swap pyqtgraph's path correction for the tolerant one during one export only.

    ``_generateItemSvg`` looks ``correctCoordinates`` up in its module at call time, so this is the
    one place to hook; restoring it afterwards keeps pyqtgraph's own exporter (context menu) untouched.
    """
    upstream = _svg_module.correctCoordinates
    _svg_module.correctCoordinates = _correct_coordinates_keeping_closes(upstream)
    try:
        yield
    finally:
        _svg_module.correctCoordinates = upstream


class ClosedPathSVGExporter(SVGExporter):
    """pyqtgraph's SVGExporter that works with Qt >= 6.11 (paths ending in ``Z``).

    The app puts it in place of pyqtgraph's in the plots' right-click Export menu
    (:func:`use_in_context_menus`); importing this module changes nothing global.
    """

    def export(self, fileName=None, toBytes=False, copy=False):  # noqa: N803 - pyqtgraph's signature
        with _closed_paths_tolerated():
            return super().export(fileName=fileName, toBytes=toBytes, copy=copy)


@contextmanager
def _whole_curves(scene: QGraphicsScene) -> Iterator[None]:
    """Draw every curve as one path while exporting, then restore each curve's mode.

    pyqtgraph's "auto" segmented-line mode draws a pen wider than 1 px, without antialiasing, as
    separate segments (fast on screen). In an SVG those become one loose ``<polyline>`` per segment,
    and in an antialiased export image their overlapping ends show at the joints.
    """
    curves = [item for item in scene.items() if isinstance(item, PlotCurveItem)]
    modes = [curve.opts["segmentedLineMode"] for curve in curves]
    for curve in curves:
        curve.opts["segmentedLineMode"] = "off"  # set directly: no bounds invalidation or repaint needed
    try:
        yield
    finally:
        for curve, mode in zip(curves, modes):
            curve.opts["segmentedLineMode"] = mode


@contextmanager
def _print_pens(scene: QGraphicsScene, factor: float) -> Iterator[None]:
    """Widen the lines of curves, axes and ROIs by ``factor`` (print dpi over screen dpi) for one export.

    pyqtgraph's pens are cosmetic: their width is in output pixels whatever the scale, so a view
    printed at 300 dpi would come out in hairlines a third of their width on screen.
    """
    undo = []
    for item in scene.items() if abs(factor - 1) > 1e-3 else ():
        if isinstance(item, (PlotCurveItem, PlotDataItem)):  # a data item passes its pen on when the range moves
            pen = item.opts["pen"]
            if pen is not None:
                item.opts["pen"] = _wider(mkPen(pen), factor)  # read at paint time: no repaint request needed
                undo.append(lambda item=item, pen=pen: item.opts.__setitem__("pen", pen))
        elif isinstance(item, AxisItem):
            pen = item.pen()
            item.setPen(_wider(pen, factor))
            undo.append(lambda item=item, pen=pen: item.setPen(pen))
        elif isinstance(item, ROI):
            pen = item.currentPen
            item.currentPen = _wider(pen, factor)
            undo.append(lambda item=item, pen=pen: setattr(item, "currentPen", pen))
    try:
        yield
    finally:
        for step in reversed(undo):
            step()


@contextmanager
def _scaled_with_the_figure(scene: QGraphicsScene) -> Iterator[None]:
    """Let items that ignore transformations (pyqtgraph's legends) scale with the export for one render.

    A legend keeps its screen size when a plot zooms; in an export larger than the view it would
    otherwise come out at screen size while the axes' text around it is scaled up.
    """
    flag = QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations
    fixed = [item for item in scene.items() if item.flags() & flag]
    for item in fixed:
        item.setFlag(flag, False)
    try:
        yield
    finally:
        for item in fixed:
            item.setFlag(flag, True)


def _wider(pen: QPen, factor: float) -> QPen:
    wider = QPen(pen)
    wider.setWidthF((pen.widthF() or 1.0) * factor)  # width 0 is a one-pixel cosmetic line
    return wider


def _prepare(scene: QGraphicsScene) -> None:
    """Let pyqtgraph's views apply pending auto-ranges, as they do before a paint (the SVG path paints none)."""
    prepare = getattr(scene, "prepareForPaint", None)
    if prepare is not None:
        prepare()


# -- target handling -------------------------------------------------------------------------------
def _view_of(target: Target) -> QGraphicsView:
    """The view showing ``target`` (pyqtgraph's exporters need one for background and geometry)."""
    if isinstance(target, QGraphicsView):
        return target
    scene = target if isinstance(target, QGraphicsScene) else target.scene()
    views = scene.views() if scene is not None else []
    if not views:
        raise LandscapeError("nothing to export: the figure is not shown in a view")
    return views[0]


def _flush_pending_resize(view: QGraphicsView) -> None:
    """Deliver the resize events Qt holds back for a hidden widget, so its scene is laid out at its size.

    A never-shown view keeps its scene at the old size after ``resize()``; showing it would send
    these events. For a scroll area the viewport's event is the one that reaches ``resizeEvent``.
    """
    pending = Qt.WidgetAttribute.WA_PendingResizeEvent
    widgets = [view, view.viewport()] if isinstance(view, QAbstractScrollArea) else [view]
    for widget in widgets:
        if widget.testAttribute(pending):
            QCoreApplication.sendEvent(widget, QResizeEvent(widget.size(), QSize()))
            widget.setAttribute(pending, False)
    QApplication.processEvents()


@contextmanager
def _laid_out_at(view: QGraphicsView, size: QSize) -> Iterator[None]:
    """Lay the view out at ``size`` for the duration of the block, then restore its size."""
    old = view.size()
    if size == old:
        _flush_pending_resize(view)
        yield
        return
    view.resize(size)
    _flush_pending_resize(view)
    try:
        yield
    finally:
        view.resize(old)
        _flush_pending_resize(view)


def _visible_scene_rect(view: QGraphicsView) -> QRectF:
    """The scene area the view shows (as pyqtgraph's exporters compute it)."""
    return view.viewportTransform().inverted()[0].mapRect(QRectF(view.rect()))


def _background(view: QGraphicsView) -> QColor:
    brush = view.backgroundBrush()
    color = QColor(brush.color())
    if brush.style() == Qt.BrushStyle.NoBrush:
        color.setAlpha(0)
    return color


def _check_size(value: int | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIDE:
        raise LandscapeError(f"figure {name} must be a whole number of pixels from 1 to {MAX_SIDE}, not {value!r}")
    return value


def _output_size(logical_w: float, logical_h: float, width: int | None, height: int | None) -> tuple[int, int]:
    """Requested pixel size, filling a missing side from the figure's aspect ratio."""
    width, height = _check_size(width, "width"), _check_size(height, "height")
    if width is None and height is None:
        return max(1, round(logical_w)), max(1, round(logical_h))
    if width is None:
        width = max(1, round(height * logical_w / logical_h))
    if height is None:
        height = max(1, round(width * logical_h / logical_w))
    return _check_size(width, "width"), _check_size(height, "height")


def _layout_size_for(view: QGraphicsView, width: int, height: int) -> QSize:
    """The view size to lay out at: the current one if the shape matches within a pixel, else one of
    about the same area with the requested shape (so fonts keep their size relative to the figure)."""
    cur_w, cur_h = max(1, view.width()), max(1, view.height())
    if abs(width - height * cur_w / cur_h) <= 1 and abs(height - width * cur_h / cur_w) <= 1:
        return view.size()
    scale = math.sqrt(width * height / (cur_w * cur_h))
    return QSize(max(1, round(width / scale)), max(1, round(height / scale)))


def _layout_size_at(view: QWidget, width: int, height: int, dpi: float) -> QSize:
    """The on-screen size of ``width`` x ``height`` pixels printed at ``dpi`` (never under MIN_LAYOUT)."""
    scale = view.logicalDpiX() / dpi
    return QSize(max(MIN_LAYOUT, round(width * scale)), max(MIN_LAYOUT, round(height * scale)))


def _same_shape(a: QRectF, width: int, height: int) -> bool:
    return abs(width - height * a.width() / a.height()) <= 1


# -- rendering --------------------------------------------------------------------------------------
def render_image(target: Target, width: int | None = None, height: int | None = None,
                 dpi: float | None = None) -> QImage:
    """The figure as an antialiased ARGB32 image of exactly ``width`` x ``height`` pixels.

    With ``dpi`` a whole view is laid out at the size the image has at that resolution on this
    screen, so its text comes out at its point size (a paper figure); without, at about its own area.
    """
    view = _view_of(target)
    _flush_pending_resize(view)
    item = target if isinstance(target, QGraphicsItem) else None
    if item is None:
        base = _visible_scene_rect(view)
        out_w, out_h = _output_size(base.width(), base.height(), width, height)
        layout = _layout_size_for(view, out_w, out_h) if dpi is None else _layout_size_at(view, out_w, out_h, dpi)
    else:  # a single item keeps its geometry; a different shape is letterboxed below
        base = item.sceneBoundingRect()
        out_w, out_h = _output_size(base.width(), base.height(), width, height)
        layout = view.size()
    image = QImage(out_w, out_h, QImage.Format.Format_ARGB32)
    if image.isNull():
        raise LandscapeError(f"cannot allocate a {out_w}x{out_h} image; choose a smaller figure size")
    background = _background(view)
    image.fill(background)
    pens = 1.0 if dpi is None or item is not None else dpi / view.logicalDpiX()
    with _laid_out_at(view, layout), _whole_curves(view.scene()), _print_pens(view.scene(), pens), \
            _scaled_with_the_figure(view.scene()):
        source = item.sceneBoundingRect() if item is not None else _visible_scene_rect(view)
        if source.width() <= 0 or source.height() <= 0:
            raise LandscapeError("nothing to export: the figure has no area")
        same_shape = _same_shape(source, out_w, out_h)
        # within a pixel of the same shape, stretch the last fraction so no background strip shows;
        # a single item asked at another shape is letterboxed instead
        mode = Qt.AspectRatioMode.IgnoreAspectRatio if same_shape else Qt.AspectRatioMode.KeepAspectRatio
        scale = min(out_w / source.width(), out_h / source.height())
        exporter = Exporter(item if item is not None else view.scene())  # only for its export-mode walk
        painter = QPainter(image)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
            # resolutionScale: pixel-sized things (scatter symbols) grow with the export, as in
            # pyqtgraph's ImageExporter; cosmetic pens stay their width in output pixels
            exporter.setExportMode(True, {"antialias": True, "background": background, "painter": painter,
                                          "resolutionScale": scale})
            view.scene().render(painter, QRectF(0, 0, out_w, out_h), source, mode)
        finally:
            exporter.setExportMode(False)
            painter.end()
    return image


def render_svg(target: Target) -> bytes:
    """The figure as SVG bytes: lines as paths, images embedded as base64 PNG ``<image>`` elements."""
    view = _view_of(target)
    _flush_pending_resize(view)
    item = target if isinstance(target, QGraphicsItem) else view.scene()
    with _whole_curves(view.scene()):
        _prepare(view.scene())
        return ClosedPathSVGExporter(item).export(toBytes=True)


def export_figure_bytes(target: Target, fmt: str, width: int | None = None, height: int | None = None) -> bytes:
    """The figure encoded as ``fmt`` ("png" or "svg"); width/height apply to PNG (SVG is vector)."""
    fmt = fmt.lower().lstrip(".")
    if fmt == "svg":
        return render_svg(target)
    if fmt == "png":
        return _png_bytes(render_image(target, width, height))
    raise LandscapeError(f"cannot export a figure as '{fmt}'; use one of {', '.join(SUFFIXES)}")


def export_figure(target: Target, path: str | Path, width: int | None = None, height: int | None = None) -> Path:
    """Save the figure to ``path``, format by suffix: .png at width x height pixels (missing sides
    keep the figure's aspect ratio; none means the view's size), or .svg."""
    path = Path(path)
    return _write(path, export_figure_bytes(target, _suffix_of(path), width, height))


def _suffix_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise LandscapeError(f"cannot export a figure as '{path.name}'; use a file ending in "
                             f"{' or '.join(SUFFIXES)}")
    return suffix


def _write(path: Path, data: bytes) -> Path:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise LandscapeError(f"could not write {path}: {exc.strerror or exc}; choose a writable folder") from exc
    return path


def _png_bytes(image: QImage) -> bytes:
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise LandscapeError("could not encode the figure as PNG")
    buffer.close()
    return bytes(data.data())


# -- figures of several views ----------------------------------------------------------------------
SCREEN_DPI = 96.0  # what Qt lays views out at: a figure at another DPI scales its text and lines by dpi / 96


class RasterPanel(Protocol):
    """A view that only exists as pixels (the OpenGL 3D view): it draws itself at a given size."""

    def grab_image(self, width: int | None = None, height: int | None = None, scale: float = 1.0) -> QImage: ...


Panel = Union[Target, RasterPanel]


@dataclass(frozen=True)
class Figure:
    """A figure for a paper: rows of views side by side under a title, at an exact size and resolution.

    ``row_weights`` are the rows' relative heights (equal when empty). ``dpi`` sizes the text (views
    are laid out as they would be printed at that resolution) and is recorded in the PNG.
    """

    rows: tuple[tuple[Panel, ...], ...]
    width: int
    height: int
    dpi: float = SCREEN_DPI
    title: str = ""
    row_weights: tuple[float, ...] = ()


def figure_layout(figure: Figure) -> list[tuple[Panel, QRect]]:
    """Where each view goes in the figure's pixels: rows under the title band, split by weight, small gaps."""
    _check_size(figure.width, "width")
    _check_size(figure.height, "height")
    if not MIN_DPI <= figure.dpi <= MAX_DPI:
        raise LandscapeError(f"figure resolution must be from {MIN_DPI:g} to {MAX_DPI:g} dpi, not {figure.dpi:g}")
    rows = [row for row in figure.rows if row]
    if not rows:
        raise LandscapeError("nothing to export: choose at least one view for the figure")
    weights = figure.row_weights or (1.0,) * len(rows)
    if len(weights) != len(rows) or min(weights) <= 0:
        raise ValueError("one positive weight per row")
    gap = round(GAP_INCHES * figure.dpi)
    top = title_height(figure)
    cells = []
    for (y0, y1), row in zip(_spans(top, figure.height, weights, gap), rows):
        for (x0, x1), panel in zip(_spans(0, figure.width, (1.0,) * len(row), gap), row):
            cells.append((panel, QRect(x0, y0, x1 - x0, y1 - y0)))
    if any(cell.width() < MIN_PANEL or cell.height() < MIN_PANEL for _panel, cell in cells):
        raise LandscapeError(f"a {figure.width}x{figure.height} figure is too small for {len(cells)} views; "
                             "make it larger or include fewer views")
    return cells


def _spans(start: int, end: int, weights: tuple[float, ...], gap: int) -> list[tuple[int, int]]:
    """``[start, end)`` cut into pieces proportional to ``weights`` with ``gap`` between; ends are exact."""
    free = end - start - gap * (len(weights) - 1)
    edges = [0.0]
    for weight in weights:
        edges.append(edges[-1] + weight)
    cuts = [round(free * edge / edges[-1]) for edge in edges]
    return [(start + cuts[k] + k * gap, start + cuts[k + 1] + k * gap) for k in range(len(weights))]


def title_height(figure: Figure) -> int:
    """The title band's height in pixels (0 without a title)."""
    return round(TITLE_POINTS * figure.dpi / 72 * 1.8) if figure.title.strip() else 0


def render_figure(figure: Figure) -> QImage:
    """The figure as an image of exactly ``width`` x ``height`` pixels on white, its DPI recorded."""
    cells = figure_layout(figure)
    image = QImage(figure.width, figure.height, QImage.Format.Format_ARGB32)
    if image.isNull():
        raise LandscapeError(f"cannot allocate a {figure.width}x{figure.height} image; choose a smaller figure size")
    image.fill(QColor("white"))
    dots_per_meter = round(figure.dpi / 0.0254)
    image.setDotsPerMeterX(dots_per_meter)
    image.setDotsPerMeterY(dots_per_meter)
    pictures = [(_panel_image(panel, cell.size(), figure.dpi), cell) for panel, cell in cells]
    painter = QPainter(image)
    try:
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        for picture, cell in pictures:
            painter.drawImage(cell.topLeft(), picture)
        if figure.title.strip():
            font = _title_font(figure)
            painter.setFont(font)
            painter.setPen(QColor(TITLE_COLOR))
            band = QRect(0, 0, figure.width, title_height(figure))
            text = QFontMetrics(font).elidedText(figure.title.strip(), Qt.TextElideMode.ElideRight, figure.width)
            painter.drawText(band, Qt.AlignmentFlag.AlignCenter, text)
    finally:
        painter.end()
    return image


def _title_font(figure: Figure) -> QFont:
    font = QFont()
    font.setPixelSize(max(1, round(TITLE_POINTS * figure.dpi / 72)))
    font.setBold(True)
    return font


def _is_vector(panel: Panel) -> bool:
    return isinstance(panel, (QGraphicsView, QGraphicsScene, QGraphicsItem))


def _panel_image(panel: Panel, size: QSize, dpi: float) -> QImage:
    if _is_vector(panel):
        return render_image(panel, size.width(), size.height(), dpi=dpi)
    picture = panel.grab_image(size.width(), size.height(), scale=dpi / SCREEN_DPI)
    if picture.isNull():
        raise LandscapeError("the 3D view could not be drawn; leave it out of the figure")
    return picture if picture.size() == size else picture.scaled(size, Qt.AspectRatioMode.IgnoreAspectRatio,
                                                                 Qt.TransformationMode.SmoothTransformation)


def figure_svg(figure: Figure) -> bytes:
    """The figure as one SVG of the figure's physical size (``width / dpi`` inches): each pyqtgraph
    view as a vector drawing, the OpenGL 3D view as an embedded PNG (OpenGL
    draws pixels, so no vector form of it exists)."""
    cells = figure_layout(figure)
    document = minidom.getDOMImplementation().createDocument(SVG_NS, "svg", None)
    root = document.documentElement
    inches = (f"{figure.width / figure.dpi:.4f}in", f"{figure.height / figure.dpi:.4f}in")
    for name, value in (("xmlns", SVG_NS), ("xmlns:xlink", XLINK_NS), ("version", "1.1"), ("width", inches[0]),
                        ("height", inches[1]), ("viewBox", f"0 0 {figure.width} {figure.height}")):
        root.setAttribute(name, value)
    _element(document, root, "rect", width="100%", height="100%", fill="white")
    for k, (panel, cell) in enumerate(cells):
        if _is_vector(panel):
            root.appendChild(_vector_panel(document, panel, cell, figure.dpi, f"panel{k}_"))
        else:
            png = _png_bytes(_panel_image(panel, cell.size(), figure.dpi))
            _element(document, root, "image", x=cell.x(), y=cell.y(), width=cell.width(), height=cell.height(),
                     preserveAspectRatio="none", **{"xlink:href": "data:image/png;base64,"
                                                   + base64.b64encode(png).decode("ascii")})
    if figure.title.strip():
        font = _title_font(figure)
        metrics = QFontMetrics(font)
        baseline = (title_height(figure) + metrics.ascent() - metrics.descent()) / 2  # centred as in the PNG
        text = _element(document, root, "text", x=figure.width / 2, y=round(baseline, 2), fill=TITLE_COLOR,
                        **{"text-anchor": "middle", "font-size": font.pixelSize(), "font-weight": "bold",
                           "font-family": font.family() or "sans-serif"})
        text.appendChild(document.createTextNode(figure.title.strip()))
    return document.toxml(encoding="UTF-8")


def _element(document: minidom.Document, parent: minidom.Element, tag: str, **attributes) -> minidom.Element:
    element = document.createElement(tag)
    for name, value in attributes.items():
        element.setAttribute(name, str(value))
    parent.appendChild(element)
    return element


def _vector_panel(document: minidom.Document, panel: Target, cell: QRect, dpi: float, prefix: str) -> minidom.Element:
    """One view's SVG, laid out at the cell's printed size, as a group scaled into the cell (ids prefixed).

    A group rather than a nested ``<svg>``: SVG Tiny readers (Qt's own) skip nested documents.
    """
    view = _view_of(panel)
    item = panel if isinstance(panel, QGraphicsItem) else view.scene()
    with _laid_out_at(view, _layout_size_at(view, cell.width(), cell.height(), dpi)), _whole_curves(view.scene()):
        _prepare(view.scene())
        exporter = ClosedPathSVGExporter(item)  # made at the laid-out size: it takes its viewBox from the view now
        # strokes in the view's units, so that they scale with the group like everything else (a
        # non-scaling stroke would stay a hairline, or be scaled twice by readers that ignore it)
        exporter.params["scaling stroke"] = True
        data = exporter.export(toBytes=True)
    source = minidom.parseString(data).documentElement
    _prefix_ids(source, prefix)
    _x, _y, width, height = (float(v) for v in source.getAttribute("viewBox").split())
    group = document.createElement("g")
    group.setAttribute("transform", f"translate({cell.x()},{cell.y()}) "
                                    f"scale({cell.width() / width:.6g},{cell.height() / height:.6g})")
    clip = _element(document, group, "clipPath", id=f"{prefix}cell")
    _element(document, clip, "rect", width=width, height=height)
    group.setAttribute("clip-path", f"url(#{prefix}cell)")
    for child in list(source.childNodes):
        if child.nodeType != child.ELEMENT_NODE or child.tagName in ("title", "desc"):
            continue
        if child.tagName == "rect" and child.getAttribute("width") == "100%":  # the view's background
            child.setAttribute("width", str(width))
            child.setAttribute("height", str(height))
        group.appendChild(document.importNode(child, True))
    return group


def _prefix_ids(root: minidom.Element, prefix: str) -> None:
    """Prefix every id of one view's SVG and each reference to it (``url(#id)``, ``href="#id"``).

    Each view is exported on its own, so two views both define ids such as ``ViewBox_1_clip``;
    in one document a reference would find the first view's clip path.
    """
    elements = [root, *root.getElementsByTagName("*")]
    ids = {element.getAttribute("id") for element in elements if element.getAttribute("id")}
    if not ids:
        return
    reference = re.compile("#(" + "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True)) + r")(?=\)|$)")
    for element in elements:
        for name, value in list(element.attributes.items()):
            if name == "id" and value in ids:
                element.setAttribute(name, prefix + value)
            elif "#" in value:
                element.setAttribute(name, reference.sub(lambda match: "#" + prefix + match.group(1), value))


def figure_bytes(figure: Figure, fmt: str) -> bytes:
    """The figure encoded as ``fmt`` ("png" or "svg")."""
    fmt = fmt.lower().lstrip(".")
    if fmt == "svg":
        return figure_svg(figure)
    if fmt == "png":
        return _png_bytes(render_figure(figure))
    raise LandscapeError(f"cannot export a figure as '{fmt}'; use one of {', '.join(SUFFIXES)}")


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Save the figure to ``path``, format by suffix (.png or .svg)."""
    path = Path(path)
    return _write(path, figure_bytes(figure, _suffix_of(path)))


def use_in_context_menus() -> None:
    """Make pyqtgraph's right-click "Export…" dialog offer our SVG exporter instead of the broken one."""
    from pyqtgraph.exporters import Exporter

    Exporter.Exporters[:] = [ClosedPathSVGExporter if cls is SVGExporter else cls for cls in Exporter.Exporters]
