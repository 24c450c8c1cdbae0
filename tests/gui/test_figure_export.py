"""Export Figure: exact PNG sizes that show the figure, SVG that works under Qt >= 6.11, clear errors.

The figure mirrors the app's 2D map: a GraphicsLayoutWidget with a PlotItem holding an ImageItem of a
known array (a ColorBarItem beside it), an IsocurveItem, a LineSegmentROI and PlotDataItems.
"""

from __future__ import annotations

import base64
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.dom import minidom

import numpy as np
import pyqtgraph as pg
import pytest
import shiboken6
from pyqtgraph.exporters import SVGExporter
from PySide6.QtCore import QByteArray, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QApplication

from engine.errors import LandscapeError
from landscape_gui import figure_export
from landscape_gui.figure_export import export_figure, export_figure_bytes

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
NX, NY = 50, 40  # image columns (x) and rows (y)
LOW, HIGH = 0.0, 3.0
CMAP = pg.colormap.get("viridis")


def known_array() -> np.ndarray:
    """Row-major (y, x) values rising from LOW at (x=0, y=0) to HIGH at the opposite corner."""
    return np.add.outer(np.linspace(0.0, 1.0, NY), np.linspace(0.0, 2.0, NX)).astype(np.float32)


@pytest.fixture
def owned(qtbot):
    """Widgets of the test, deleted synchronously at teardown (instead of qtbot.addWidget).

    qtbot closes widgets and calls deleteLater(); when a traceback (a failed assert, a bound exception)
    keeps a widget's Python wrapper alive until a later cyclic gc, destroying a GraphicsLayoutWidget
    that holds an IsocurveItem then crashes Qt in the next test (PySide6 6.12, pyqtgraph 0.14.0).
    """
    widgets: list = []
    yield widgets
    for widget in widgets:
        if shiboken6.isValid(widget):
            shiboken6.delete(widget)
    QApplication.processEvents()


@pytest.fixture
def make_figure(qtbot, owned):
    """Builds :class:`Figure` s whose widgets are deleted at teardown."""

    def make(size: tuple[int, int] = (800, 600), show: bool = False) -> Figure:
        figure = Figure(size)
        owned.append(figure.widget)
        if show:
            figure.widget.show()
            qtbot.waitExposed(figure.widget)
        return figure

    return make


class Figure:
    """The widgets of a heatmap-like figure, kept for assertions."""

    def __init__(self, size: tuple[int, int] = (800, 600)) -> None:
        self.widget = pg.GraphicsLayoutWidget()
        self.widget.setBackground("w")
        self.plot = self.widget.addPlot(row=0, col=0)
        self.plot.setLabel("bottom", "α (direction x)")
        self.plot.setLabel("left", "β (direction y)")
        self.image = pg.ImageItem(known_array(), axisOrder="row-major", levels=(LOW, HIGH))
        self.image.setRect(QRectF(0, 0, NX, NY))
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(values=(LOW, HIGH), colorMap=CMAP, interactive=False, width=15)
        self.colorbar.setImageItem(self.image, insert_in=self.plot)
        self.isocurve = pg.IsocurveItem(known_array(), level=1.5, pen=pg.mkPen((255, 255, 255), width=1),
                                        axisOrder="row-major")
        self.isocurve.setParentItem(self.image)  # image pixel coordinates, like the data
        self.isocurve.setZValue(5)
        x = np.linspace(5, 45, 30)
        # width 2, not antialiased on screen: pyqtgraph draws it as separate segments unless told otherwise
        self.curve = pg.PlotDataItem(x, 20 + 8 * np.sin(x / 6), pen=pg.mkPen((255, 0, 0), width=2),
                                     antialias=False)
        self.plot.addItem(self.curve)
        self.trajectory = pg.PlotDataItem([10, 20, 30], [30, 25, 28], pen=pg.mkPen((255, 90, 60), width=2),
                                          symbol="o", symbolSize=6, symbolBrush=(255, 90, 60))
        self.plot.addItem(self.trajectory)
        self.roi = pg.LineSegmentROI([(12, 32), (38, 34)], pen=pg.mkPen((255, 255, 255), width=3))
        self.plot.addItem(self.roi)
        self.plot.setRange(xRange=(0, NX), yRange=(0, NY), padding=0)
        self.widget.resize(*size)

    def pixel_of(self, image: QImage, x: float, y: float) -> tuple[int, int, int]:
        """RGB of the exported image at plane point (x, y), scaling scene coordinates to the export."""
        scene = self.plot.vb.mapViewToScene(QPointF(x, y))
        sx = image.width() / self.widget.width()
        sy = image.height() / self.widget.height()
        color = image.pixelColor(int(scene.x() * sx), int(scene.y() * sy))
        return color.red(), color.green(), color.blue()


def rgb_array(image: QImage) -> np.ndarray:
    rgba = image.convertToFormat(QImage.Format.Format_RGBA8888)
    return np.frombuffer(rgba.constBits(), np.uint8).reshape(rgba.height(), rgba.width(), 4)[..., :3].copy()


def distinct_colors(image: QImage) -> int:
    pixels = rgb_array(image).reshape(-1, 3)
    return len(np.unique(pixels[:, 0].astype(np.int64) << 16 | pixels[:, 1].astype(np.int64) << 8 | pixels[:, 2]))


def close_to(actual: tuple[int, int, int], expected, tolerance: int = 10) -> bool:
    return all(abs(int(a) - int(e)) <= tolerance for a, e in zip(actual, expected[:3]))


# -- PNG -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(800, 600), (1600, 1200)])
def test_png_has_exact_requested_size_and_shows_the_colormap_gradient(make_figure, tmp_path: Path, size):
    figure = make_figure()
    out = export_figure(figure.widget, tmp_path / "figure.png", *size)
    assert out == tmp_path / "figure.png"
    image = QImage(str(out))
    assert (image.width(), image.height()) == size
    assert distinct_colors(image) > 200  # a gradient, curves, text: not a blank or flat image
    low_corner = figure.pixel_of(image, 0.5, 0.5)  # centre of the cell holding LOW
    high_corner = figure.pixel_of(image, NX - 0.5, NY - 0.5)  # centre of the cell holding HIGH
    assert low_corner != high_corner
    assert close_to(low_corner, CMAP.map(0.0)), low_corner
    assert close_to(high_corner, CMAP.map(1.0)), high_corner


def test_png_with_one_side_keeps_the_aspect_ratio_and_none_gives_the_widget_size(make_figure):
    figure = make_figure(size=(800, 600))
    assert QImage.fromData(export_figure_bytes(figure.widget, "png", width=1200)).size().toTuple() == (1200, 900)
    assert QImage.fromData(export_figure_bytes(figure.widget, "png", height=300)).size().toTuple() == (400, 300)
    assert QImage.fromData(export_figure_bytes(figure.widget, "png")).size().toTuple() == (800, 600)


def test_png_of_another_shape_fills_it_by_relaying_out_and_restores_the_widget(make_figure):
    """1000x500 from a 4:3 view: exact size, the plot reflowed to fill it (no letterbox), widget unchanged."""
    figure = make_figure(size=(800, 600), show=True)
    before = figure.widget.size(), figure.widget.ci.geometry(), figure.plot.vb.viewRange()
    image = QImage.fromData(export_figure_bytes(figure.widget, "png", 1000, 500))
    assert image.size().toTuple() == (1000, 500)
    pixels = rgb_array(image)
    # the colour bar sits at the right edge and the heatmap spans the height: no background bands
    colored = (pixels.max(axis=2).astype(int) - pixels.min(axis=2)) > 60
    assert colored[:, 900:].any(), "colour bar missing on the right: the figure did not fill the width"
    assert colored[50:450, 200].mean() > 0.97, "heatmap does not span the height"  # bar a line or two
    assert (figure.widget.size(), figure.widget.ci.geometry(), figure.plot.vb.viewRange()) == before


def test_never_shown_widget_exports_at_the_size_it_was_resized_to(make_figure):
    """Qt holds back resize events for hidden widgets; the export must lay the scene out at the new size."""
    figure = make_figure(size=(900, 450))
    assert not figure.widget.isVisible()
    image = QImage.fromData(export_figure_bytes(figure.widget, "png"))
    assert image.size().toTuple() == (900, 450)
    assert figure.widget.ci.geometry().size().toTuple() == (900.0, 450.0)
    high_corner = figure.pixel_of(image, NX - 0.5, NY - 0.5)
    assert close_to(high_corner, CMAP.map(1.0)), high_corner


def test_png_is_antialiased(owned):
    """A thin black diagonal on white has grey edge pixels only when antialiased."""
    widget = pg.GraphicsLayoutWidget()
    owned.append(widget)
    widget.setBackground("w")
    plot = widget.addPlot()
    plot.hideAxis("left")
    plot.hideAxis("bottom")
    plot.plot([0, 1], [0, 0.7], pen=pg.mkPen((0, 0, 0), width=1), antialias=False)
    widget.resize(300, 200)
    pixels = rgb_array(QImage.fromData(export_figure_bytes(widget, "png", 600, 400))).astype(int)
    grey = (pixels.min(axis=2) == pixels.max(axis=2)) & (pixels[..., 0] > 30) & (pixels[..., 0] < 225)
    assert grey.sum() > 100


# -- SVG -----------------------------------------------------------------------------------------------
def _path_points_are_numbers(d: str) -> bool:
    return all(token in ("Z", "z") or re.fullmatch(r"[A-Za-z]?-?[\d.e+-]+,-?[\d.e+-]+", token)
               for token in d.split())


def test_svg_with_image_colorbar_curve_isocurve_parses_and_has_image_and_paths(make_figure, tmp_path: Path):
    figure = make_figure()
    upstream = sys.modules[SVGExporter.__module__].correctCoordinates
    out = export_figure(figure.widget, tmp_path / "figure.svg")
    root = ET.parse(out).getroot()
    assert root.tag == f"{SVG}svg"
    images = root.findall(f".//{SVG}image")
    hrefs = [el.get(f"{XLINK}href", "") for el in images]
    heatmap = [h for h in hrefs if h.startswith("data:image/png;base64,")
               and QImage.fromData(base64.b64decode(h.split(",", 1)[1])).size().toTuple() == (NX, NY)]
    assert heatmap, "the heatmap is not embedded as a base64 PNG of the array's size"
    paths = root.findall(f".//{SVG}path")
    assert paths and all(_path_points_are_numbers(p.get("d", "")) for p in paths)
    assert any(p.get("d", "").rstrip().endswith("Z") for p in paths), "closed paths (Qt >= 6.11) kept their Z"

    def stroked_paths(color: str) -> list[ET.Element]:
        return [p for g in root.iter(f"{SVG}g") if g.get("stroke") == color for p in g.findall(f"{SVG}path")]

    curve = stroked_paths("#ff0000")
    assert len(curve) == 1 and len(curve[0].get("d").split()) == 30, "the curve is one 30-point path"
    assert stroked_paths("#ffffff"), "isocurve / ROI lines are missing"
    # the export changed nothing for later exports or for pyqtgraph's own exporter
    assert sys.modules[SVGExporter.__module__].correctCoordinates is upstream
    assert figure.curve.curve.opts["segmentedLineMode"] == "auto"


def test_plain_pyqtgraph_svg_exporter_fails_on_qt_closed_paths(make_figure):
    """Documents the pitfall our ClosedPathSVGExporter works around (pyqtgraph #3495).

    Skips once the installed pyqtgraph handles Qt's ``Z``: then the workaround can be removed.
    """
    figure = make_figure()
    try:
        SVGExporter(figure.widget.scene()).export(toBytes=True)
    except ValueError as exc:
        assert "unpack" in str(exc)
    else:
        pytest.skip(f"pyqtgraph {pg.__version__} exports closed paths itself; ClosedPathSVGExporter is no "
                    "longer needed")


def test_closed_path_correction_transforms_points_and_keeps_each_z_in_place():
    doc = minidom.parseString('<g><g transform="matrix(2,0,0,2,10,0)">'
                              '<path d="M0,0 L1,0 L1,1 Z M5,5 L6,6 Z"/></g></g>')
    upstream = sys.modules[SVGExporter.__module__].correctCoordinates
    correct = figure_export._correct_coordinates_keeping_closes(upstream)
    correct(doc.documentElement, [], None, {})
    d = doc.getElementsByTagName("path")[0].getAttribute("d")
    assert d.split() == ["M10.0,0.0", "L12.0,0.0", "L12.0,2.0", "Z", "M20.0,10.0", "L22.0,12.0", "Z"]


# -- errors --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["figure.jpg", "figure.pdf", "figure"])
def test_unknown_suffix_gives_landscape_error_naming_supported_suffixes(make_figure, tmp_path: Path, name):
    figure = make_figure()
    with pytest.raises(LandscapeError, match=r"\.png.*\.svg") as caught:
        export_figure(figure.widget, tmp_path / name)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("size", [(0, 600), (800, -1), (10**6, 10)])
def test_impossible_pixel_size_gives_landscape_error(make_figure, tmp_path: Path, size):
    figure = make_figure()
    with pytest.raises(LandscapeError, match="pixels"):
        export_figure(figure.widget, tmp_path / "figure.png", *size)


def test_unwritable_path_gives_landscape_error(make_figure, tmp_path: Path):
    figure = make_figure()
    with pytest.raises(LandscapeError, match="could not write"):
        export_figure(figure.widget, tmp_path / "missing-folder" / "figure.png", 200, 150)


def test_context_menu_svg_export_uses_the_fixed_exporter(qapp, tmp_path):
    """The plots' right-click Export dialog lists exporters from this registry; ours replaces the broken one."""
    import pyqtgraph as pg
    from pyqtgraph.exporters import Exporter, SVGExporter

    from landscape_gui.figure_export import ClosedPathSVGExporter, use_in_context_menus

    saved = list(Exporter.Exporters)
    try:
        use_in_context_menus()
        assert ClosedPathSVGExporter in Exporter.Exporters and SVGExporter not in Exporter.Exporters
        plot = pg.PlotWidget()
        plot.plot([0, 1, 2], [1, 0, 1])
        exporter_class = next(c for c in Exporter.Exporters if "SVG" in c.Name)
        exporter_class(plot.plotItem).export(str(tmp_path / "menu.svg"))
        assert (tmp_path / "menu.svg").read_text().lstrip().startswith("<?xml")
        plot.close()
    finally:
        Exporter.Exporters[:] = saved


# -- figures of several views ---------------------------------------------------------------------------
class SolidPanel:
    """A raster panel (what the OpenGL 3D view is to a figure): a flat colour at whatever size is asked."""

    def __init__(self, color: tuple[int, int, int]) -> None:
        self.color = color
        self.sizes: list[tuple[int, int]] = []
        self.scales: list[float] = []

    def grab_image(self, width=None, height=None, scale=1.0) -> QImage:
        self.sizes.append((width, height))
        self.scales.append(scale)
        image = QImage(width, height, QImage.Format.Format_ARGB32)
        image.fill(QColor(*self.color))
        return image


def curve_figure(owned, qtbot, color=(0, 0, 255)) -> pg.GraphicsLayoutWidget:
    """A shown plot of one coloured line with labelled axes (a profile-like view)."""
    widget = pg.GraphicsLayoutWidget()
    owned.append(widget)
    widget.setBackground("w")
    plot = widget.addPlot()
    plot.setLabel("bottom", "distance along the slice")
    plot.plot([0, 1, 2, 3], [3, 1, 2, 0.5], pen=pg.mkPen(color, width=2))
    widget.resize(500, 250)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_figure_layout_fills_the_size_exactly_with_rows_by_weight_under_the_title(make_figure, owned, qtbot):
    top_a, top_b, bottom = make_figure(show=True).widget, SolidPanel((255, 0, 0)), curve_figure(owned, qtbot)
    spec = figure_export.Figure(rows=((top_a, top_b), (bottom,)), width=2100, height=1500, dpi=300,
                                title="sine w50", row_weights=(1.0, 0.5))
    cells = {id(panel): rect for panel, rect in figure_export.figure_layout(spec)}
    a, b, c = cells[id(top_a)], cells[id(top_b)], cells[id(bottom)]
    gap, title = round(figure_export.GAP_INCHES * 300), figure_export.title_height(spec)
    assert title == round(11 * 300 / 72 * 1.8) and a.top() == b.top() == title
    assert (a.left(), b.right() + 1, c.left(), c.right() + 1) == (0, 2100, 0, 2100)  # edge to edge
    assert b.left() - (a.right() + 1) == gap and c.top() - (a.bottom() + 1) == gap
    assert c.bottom() + 1 == 1500
    assert abs(a.height() - 2 * c.height()) <= 1  # weights 1 : 0.5
    untitled = figure_export.Figure(rows=((top_a,),), width=800, height=600)
    assert figure_export.figure_layout(untitled)[0][1].getRect() == (0, 0, 800, 600)


@pytest.mark.parametrize("spec, message", [
    ({"rows": (), "width": 800, "height": 600}, "choose at least one view"),
    ({"rows": ((None,) * 40,), "width": 800, "height": 600}, "too small for 40 views"),
    ({"rows": ((None,),), "width": 800, "height": 600, "dpi": 5000}, "dpi"),
    ({"rows": ((None,),), "width": 0, "height": 600}, "pixels"),
])
def test_impossible_figures_are_one_line_errors(spec, message):
    with pytest.raises(LandscapeError, match=message) as caught:
        figure_export.figure_layout(figure_export.Figure(**spec))
    assert "\n" not in str(caught.value)


def test_figure_png_has_exact_size_recorded_dpi_title_and_each_view_in_its_cell(make_figure, owned, qtbot, tmp_path):
    heat = make_figure(show=True)
    solid = SolidPanel((255, 0, 255))
    spec = figure_export.Figure(rows=((heat.widget, solid), (curve_figure(owned, qtbot),)), width=1500, height=1000,
                                dpi=200, title="sine w50", row_weights=(1.0, 0.5))
    out = figure_export.save_figure(spec, tmp_path / "figure.png")
    image = QImage(str(out))
    assert image.size().toTuple() == (1500, 1000)
    assert image.dotsPerMeterX() == image.dotsPerMeterY() == round(200 / 0.0254)  # the PNG's pHYs
    cells = [rect for _panel, rect in figure_export.figure_layout(spec)]
    pixels = rgb_array(image)
    band = pixels[: cells[0].top()]
    assert (band.max(axis=2) < 80).sum() > 200, "no dark title text above the views"
    solid_cell = pixels[cells[1].top():cells[1].bottom() + 1, cells[1].left():cells[1].right() + 1]
    assert solid.sizes == [(cells[1].width(), cells[1].height())]
    assert solid.scales == [200 / 96]  # the 3D view's text and lines grow with the DPI like the others'
    assert (np.abs(solid_cell.astype(int) - (255, 0, 255)).max(axis=2) < 3).all()
    heat_cell = image.copy(cells[0])
    assert distinct_colors(heat_cell) > 200  # the heatmap's gradient, in its cell only
    profile_cell = pixels[cells[2].top():cells[2].bottom() + 1, cells[2].left():cells[2].right() + 1]
    blue = (profile_cell[..., 2] > 150) & (profile_cell[..., 0] < 100) & (profile_cell[..., 1] < 100)
    assert blue.sum() > 500, "the profile's blue line is missing from the bottom row"


def test_figure_text_and_lines_keep_their_print_size_at_any_dpi(owned, qtbot):
    """The same 5 x 2.5 in figure at 100 and 300 dpi is the same picture, three times finer: views are laid
    out at their printed size, and lines widen with the resolution (pyqtgraph's pens are cosmetic)."""
    widget = curve_figure(owned, qtbot)
    before = widget.size()
    images = [figure_export.render_figure(figure_export.Figure(rows=((widget,),), width=round(5 * dpi),
                                                                 height=round(2.5 * dpi), dpi=dpi))
              for dpi in (100, 300)]
    fine = images[1].scaled(images[0].size(), Qt.AspectRatioMode.IgnoreAspectRatio,
                            Qt.TransformationMode.SmoothTransformation)
    coarse, fine = rgb_array(images[0]).astype(int), rgb_array(fine).astype(int)
    assert np.abs(coarse - fine).mean() < 4, "the 300-dpi figure is laid out differently from the 100-dpi one"

    def blue_run(image: QImage) -> int:  # the line's thickness where it crosses the middle column
        column = rgb_array(image)[:, image.width() // 2]
        return int(((column[:, 2] > 150) & (column[:, 0] < 120)).sum())

    assert blue_run(images[1]) >= 2 * blue_run(images[0]) > 0  # about 3x, give or take antialiasing
    assert widget.size() == before
    pen = widget.getItem(0, 0).listDataItems()[0].curve.opts["pen"]
    assert pen.widthF() == 2  # the widened pen was put back


def test_figure_svg_is_one_vector_document_with_unique_ids_and_the_raster_view_embedded(make_figure, owned, qtbot):
    heat = make_figure(show=True)
    spec = figure_export.Figure(rows=((heat.widget, SolidPanel((255, 0, 255))), (curve_figure(owned, qtbot),)),
                                width=1400, height=1000, dpi=200, title="sine & w50 <test>", row_weights=(1.0, 0.5))
    data = figure_export.figure_bytes(spec, "svg")
    root = ET.fromstring(data)
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("7.0000in", "5.0000in", "0 0 1400 1000")
    assert root.find(f"{SVG}text").text == "sine & w50 <test>"
    ids = [el.get("id") for el in root.iter() if el.get("id")]
    assert len(ids) == len(set(ids)), "two views' ids collide in one document"
    references = re.findall(r"url\(#([^)]+)\)", data.decode())
    assert references and set(references) <= set(ids), "a clip path points at an id that is not there"
    groups = [g for g in root.findall(f"{SVG}g") if g.get("transform", "").startswith("translate")]
    assert len(groups) == 2  # the heatmap and the profile: vector drawings, each placed in its cell
    for group in groups:  # each view laid out at its printed size: scaled by 200 dpi over the screen's 96
        sx, sy = (float(v) for v in re.search(r"scale\(([^,]+),([^)]+)\)", group.get("transform")).groups())
        assert sx == pytest.approx(200 / 96, rel=0.02) and sy == pytest.approx(200 / 96, rel=0.02)
    assert all(el.get("vector-effect", "none") == "none" for el in root.iter()), "strokes must scale with their view"
    images = [el.get(f"{XLINK}href") for el in root.iter(f"{SVG}image")]
    solid = [QImage.fromData(base64.b64decode(h.split(",", 1)[1])) for h in images
             if QImage.fromData(base64.b64decode(h.split(",", 1)[1])).pixelColor(3, 3) == QColor(255, 0, 255)]
    assert solid, "the raster view is not embedded as a picture"
    assert len(re.findall(r"#0000ff", data.decode())) >= 1, "the profile line is not a vector path"


def test_figure_svg_renders_like_the_png(make_figure):
    """Qt's own SVG renderer (SVG Tiny: no nested <svg>) draws the document as the PNG shows it."""
    from PySide6.QtSvg import QSvgRenderer

    heat = make_figure(show=True)
    spec = figure_export.Figure(rows=((heat.widget,),), width=800, height=600, dpi=96, title="gradient")
    renderer = QSvgRenderer(QByteArray(figure_export.figure_svg(spec)))
    assert renderer.isValid()
    drawn = QImage(800, 600, QImage.Format.Format_ARGB32)
    drawn.fill(QColor("white"))
    painter = QPainter(drawn)
    renderer.render(painter)
    painter.end()
    svg, png = rgb_array(drawn).astype(int), rgb_array(figure_export.render_figure(spec)).astype(int)
    for value in (0.0, 1.0):  # both ends of the colormap are drawn, as large in one as in the other
        near = [(np.abs(image - CMAP.map(value)[:3]).max(axis=2) < 12).sum() for image in (svg, png)]
        assert near[0] > 50 and abs(near[0] - near[1]) < 0.2 * near[1], (value, near)
    assert np.abs(svg - png).mean() < 10  # Qt's SVG renderer smooths the embedded heatmap, the PNG does not
