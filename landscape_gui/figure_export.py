"""Export Figure: a view as a PNG of an exact pixel size, or as an SVG drawing.

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
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Union
from xml.dom import minidom

from pyqtgraph import PlotCurveItem
from pyqtgraph.exporters import Exporter, SVGExporter
from PySide6.QtCore import QBuffer, QByteArray, QCoreApplication, QIODevice, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QResizeEvent
from PySide6.QtWidgets import QAbstractScrollArea, QApplication, QGraphicsItem, QGraphicsScene, QGraphicsView

from engine.errors import LandscapeError

Target = Union[QGraphicsView, QGraphicsScene, QGraphicsItem]

SUFFIXES = (".png", ".svg")
MAX_SIDE = 20000  # a QImage of 20000 x 20000 ARGB32 is 1.6 GB; beyond that allocation fails anyway

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


def _same_shape(a: QRectF, width: int, height: int) -> bool:
    return abs(width - height * a.width() / a.height()) <= 1


# -- rendering --------------------------------------------------------------------------------------
def render_image(target: Target, width: int | None = None, height: int | None = None) -> QImage:
    """The figure as an antialiased ARGB32 image of exactly ``width`` x ``height`` pixels."""
    view = _view_of(target)
    _flush_pending_resize(view)
    item = target if isinstance(target, QGraphicsItem) else None
    if item is None:
        base = _visible_scene_rect(view)
        out_w, out_h = _output_size(base.width(), base.height(), width, height)
        layout = _layout_size_for(view, out_w, out_h)
    else:  # a single item keeps its geometry; a different shape is letterboxed below
        base = item.sceneBoundingRect()
        out_w, out_h = _output_size(base.width(), base.height(), width, height)
        layout = view.size()
    image = QImage(out_w, out_h, QImage.Format.Format_ARGB32)
    if image.isNull():
        raise LandscapeError(f"cannot allocate a {out_w}x{out_h} image; choose a smaller figure size")
    background = _background(view)
    image.fill(background)
    with _laid_out_at(view, layout), _whole_curves(view.scene()):
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
        return ClosedPathSVGExporter(item).export(toBytes=True)


def export_figure_bytes(target: Target, fmt: str, width: int | None = None, height: int | None = None) -> bytes:
    """The figure encoded as ``fmt`` ("png" or "svg"); width/height apply to PNG (SVG is vector)."""
    fmt = fmt.lower().lstrip(".")
    if fmt == "svg":
        return render_svg(target)
    if fmt == "png":
        image = render_image(target, width, height)
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        if not image.save(buffer, "PNG"):
            raise LandscapeError("could not encode the figure as PNG")
        buffer.close()
        return bytes(data.data())
    raise LandscapeError(f"cannot export a figure as '{fmt}'; use one of {', '.join(SUFFIXES)}")


def export_figure(target: Target, path: str | Path, width: int | None = None, height: int | None = None) -> Path:
    """Save the figure to ``path``, format by suffix: .png at width x height pixels (missing sides
    keep the figure's aspect ratio; none means the view's size), or .svg."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise LandscapeError(f"cannot export a figure as '{path.name}'; use a file ending in "
                             f"{' or '.join(SUFFIXES)}")
    data = export_figure_bytes(target, suffix, width, height)
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise LandscapeError(f"could not write {path}: {exc.strerror or exc}; choose a writable folder") from exc
    return path


def use_in_context_menus() -> None:
    """Make pyqtgraph's right-click "Export…" dialog offer our SVG exporter instead of the broken one."""
    from pyqtgraph.exporters import Exporter

    Exporter.Exporters[:] = [ClosedPathSVGExporter if cls is SVGExporter else cls for cls in Exporter.Exporters]
