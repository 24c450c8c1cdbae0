"""The 3D view: a rotatable loss surface drawn with pyqtgraph.opengl, or a plain message without OpenGL.

OpenGL is not there everywhere: Qt's ``offscreen`` platform (tests, CI) has none, PyOpenGL may be
missing, and a remote desktop may fail to create a context. :func:`opengl_status` finds out once per
process without risking a crash, and :class:`Surface3DView` then shows either the GL surface or a
label that says why there is none, so the rest of the app keeps working either way.

Geometry and colors are computed here with numpy (:func:`surface_arrays`, testable without GL) and
handed to one reused ``GLSurfacePlotItem``: a job that refills a partial surface twice a second costs
a few array operations and a buffer upload, never a rebuild. Lighting is baked into the vertex colors
(pyqtgraph's own normals are computed in a Python loop, far too slow to redo on every update).
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QImage, QOffscreenSurface, QOpenGLContext
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

# Qt platforms that never give a usable OpenGL context to a QOpenGLWidget.
_NO_GL_PLATFORMS = {
    "offscreen": "3D view needs OpenGL: the 'offscreen' Qt platform has none; run with a display",
    "minimal": "3D view needs OpenGL: the 'minimal' Qt platform has none; run with a display",
    "linuxfb": "3D view needs OpenGL: the 'linuxfb' Qt platform has none; run with a display",
    "vnc": "3D view needs OpenGL: the 'vnc' Qt platform has none; run with a display",
}
DISABLE_ENV = "LANDSCAPE_NO_OPENGL"  # set to 1 to turn the 3D view off (e.g. a driver that crashes)

BOX_HEIGHT = 1.0  # height of the drawn box; x and y span at most [-1, 1]
NAN_COLOR = (0.55, 0.55, 0.58, 1.0)  # not computed / non-finite points: grey, at the top level
NAN_COLOR_ALT = (0.78, 0.12, 0.47, 1.0)  # magenta instead, for colormaps that contain that grey
_LIGHT = np.array([-0.4, -0.7, 1.0]) / np.linalg.norm([-0.4, -0.7, 1.0])  # from front-left, above
_AMBIENT = 0.35
_LUT_SIZE = 256
ELEVATION, AZIMUTH = 28.0, -62.0  # camera in front (at -y), a little to the right, looking down

_status: tuple[bool, str] | None = None


def opengl_status() -> tuple[bool, str]:
    """Whether the 3D view can work in this process, and if not a one-line reason for the user.

    Checks, in order and without ever crashing the process: the ``LANDSCAPE_NO_OPENGL`` switch, that
    a QGuiApplication exists, its platform (``offscreen`` and the like have no OpenGL), that
    PyOpenGL and ``pyqtgraph.opengl`` import, and that a QOpenGLContext of version 2.1 or later can be
    created and made current on a QOffscreenSurface. Call it from the GUI thread; the answer is
    cached once an application exists.
    """
    global _status
    if _status is not None:
        return _status
    if QGuiApplication.instance() is None:
        return False, "3D view needs a running Qt application"  # not cached: one may come later
    _status = _probe()
    return _status


def _probe() -> tuple[bool, str]:
    if os.environ.get(DISABLE_ENV, "").strip() not in ("", "0"):
        return False, f"3D view is turned off ({DISABLE_ENV} is set)"
    platform = QGuiApplication.platformName()
    if platform in _NO_GL_PLATFORMS:
        return False, _NO_GL_PLATFORMS[platform]
    if importlib.util.find_spec("OpenGL") is None:
        return False, "PyOpenGL is not installed: pip install PyOpenGL"
    try:
        importlib.import_module("pyqtgraph.opengl")
    except Exception as error:  # PyOpenGL present but broken (no libGL, ...)
        return False, f"3D view needs OpenGL, which failed to load: {_one_line(error)}"
    context = QOpenGLContext()
    surface = QOffscreenSurface()
    try:
        if not context.create():
            return False, "3D view needs OpenGL: no OpenGL context could be created (graphics driver?)"
        surface.setFormat(context.format())
        surface.create()
        if not surface.isValid():
            return False, "3D view needs OpenGL: no offscreen surface could be created"
        if not context.makeCurrent(surface):
            return False, "3D view needs OpenGL: the OpenGL context could not be made current"
        fmt = context.format()
        if not context.isOpenGLES() and (fmt.majorVersion(), fmt.minorVersion()) < (2, 1):
            context.doneCurrent()
            return False, (
                f"3D view needs OpenGL 2.1 or later; this driver has "
                f"{fmt.majorVersion()}.{fmt.minorVersion()}"
            )
        context.doneCurrent()
        return True, "OpenGL available"
    except Exception as error:
        return False, f"3D view needs OpenGL, which failed: {_one_line(error)}"
    finally:
        surface.destroy()


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _box_extent(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Half-widths (sx, sy) of the drawn box: the longer side is 1, aspect kept within 1:2."""
    rx = float(np.ptp(x)) if x.size > 1 else 0.0
    ry = float(np.ptp(y)) if y.size > 1 else 0.0
    if not (rx > 0 and ry > 0 and math.isfinite(rx) and math.isfinite(ry)):
        return 1.0, 1.0
    ratio = min(max(ry / rx, 0.5), 2.0)
    return (1.0, ratio) if ratio <= 1 else (1.0 / ratio, 1.0)


def _scale_to(values: np.ndarray, half: float) -> np.ndarray:
    """Map values linearly onto [-half, half] (all at 0 when they do not span a range)."""
    values = np.asarray(values, dtype=np.float64)
    lo, hi = (float(np.min(values)), float(np.max(values))) if values.size else (0.0, 0.0)
    if not (hi > lo and math.isfinite(lo) and math.isfinite(hi)):
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - lo) / (hi - lo) * 2.0 - 1.0).astype(np.float32) * half


def clean_levels(levels, z: np.ndarray | None = None) -> tuple[float, float]:
    """Finite levels with lo < hi: taken from z's finite values when the given ones are unusable."""
    try:
        lo, hi = float(levels[0]), float(levels[1])
    except (TypeError, ValueError, IndexError):
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi)):
        finite = z[np.isfinite(z)] if z is not None else np.empty(0)
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if hi < lo:
        lo, hi = hi, lo
    if hi - lo <= 1e-12 * max(1.0, abs(lo)):
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def colormap_lut(colormap: pg.ColorMap) -> np.ndarray:
    """(256, 4) float32 RGBA in [0, 1] from a pyqtgraph ColorMap."""
    lut = np.asarray(colormap.getLookupTable(0.0, 1.0, _LUT_SIZE, alpha=True, mode="float"))
    lut = np.asarray(lut, dtype=np.float32).reshape(_LUT_SIZE, -1)
    if lut.shape[1] == 3:
        lut = np.concatenate([lut, np.ones((_LUT_SIZE, 1), dtype=np.float32)], axis=1)
    lut[:, 3] = 1.0  # the surface is drawn opaque
    return np.clip(lut, 0.0, 1.0)


def nan_color(lut: np.ndarray) -> tuple[float, float, float, float]:
    """The color of NaN points: grey, or magenta when the colormap itself has that grey."""
    distance = np.abs(lut[:, :3] - np.asarray(NAN_COLOR[:3], dtype=np.float32)).max(axis=1).min()
    return NAN_COLOR if distance > 0.12 else NAN_COLOR_ALT


def surface_arrays(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    levels: tuple[float, float],
    lut: np.ndarray,
    box: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertex data for a GLSurfacePlotItem: (xs (nx,), ys (ny,), heights (nx, ny), colors (nx*ny, 4)).

    ``z[j, i]`` is the value at ``(x[i], y[j])``; the returned heights are indexed ``[i, j]`` as
    GLSurfacePlotItem wants. Values are clipped to ``levels`` and mapped onto [0, BOX_HEIGHT]; NaN and
    infinities are put at the top level and colored :func:`nan_color`, so the vertex data is always
    finite. Colors come from ``lut`` (see :func:`colormap_lut`) with a fixed light baked in.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    z = np.asarray(z, dtype=np.float64)
    if z.shape != (y.size, x.size):
        raise ValueError(f"z must have shape (len(y), len(x)) = {(y.size, x.size)}, got {z.shape}")
    sx, sy = box if box is not None else _box_extent(x, y)
    xs = _scale_to(x, sx)
    ys = _scale_to(y, sy)
    lo, hi = clean_levels(levels, z)

    values = z.T  # [i, j]: x first
    missing = ~np.isfinite(values)
    t = (np.clip(np.where(missing, hi, values), lo, hi) - lo) / (hi - lo)
    heights = (t * BOX_HEIGHT).astype(np.float32)

    index = np.clip(np.rint(t * (_LUT_SIZE - 1)), 0, _LUT_SIZE - 1).astype(np.intp)
    colors = lut[index]  # (nx, ny, 4)
    colors[missing] = nan_color(lut)
    shade = _shading(xs, ys, heights)
    colors[..., :3] *= shade[..., None]
    np.clip(colors, 0.0, 1.0, out=colors)
    return xs, ys, heights, np.ascontiguousarray(colors.reshape(-1, 4), dtype=np.float32)


def _shading(xs: np.ndarray, ys: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """Lambert shading factor per vertex, 1.0 on flat ground (so flat areas show the colormap exactly)."""
    if heights.shape[0] < 2 or heights.shape[1] < 2:
        return np.ones(heights.shape, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        dx = np.gradient(heights.astype(np.float64), xs.astype(np.float64), axis=0)
        dy = np.gradient(heights.astype(np.float64), ys.astype(np.float64), axis=1)
    dx = np.nan_to_num(dx, nan=0.0, posinf=0.0, neginf=0.0)
    dy = np.nan_to_num(dy, nan=0.0, posinf=0.0, neginf=0.0)
    lambert = (-dx * _LIGHT[0] - dy * _LIGHT[1] + _LIGHT[2]) / np.sqrt(dx * dx + dy * dy + 1.0)
    flat = _AMBIENT + (1 - _AMBIENT) * _LIGHT[2]
    return ((_AMBIENT + (1 - _AMBIENT) * np.clip(lambert, 0.0, 1.0)) / flat).astype(np.float32)


class Surface3DView(QWidget):
    """A rotatable 3D loss surface, or a label saying why 3D is unavailable.

    Drag to rotate, wheel to zoom, middle-drag (or ctrl-drag) to pan: pyqtgraph's GLViewWidget
    controls. x runs to the right, y into the depth, the displayed value upwards.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._available, self._reason = opengl_status()
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None
        self._z: np.ndarray | None = None
        self._levels: tuple[float, float] = (0.0, 1.0)
        self._colormap: pg.ColorMap = pg.colormap.get("viridis")
        self._lut = colormap_lut(self._colormap)
        self._box: tuple[float, float] | None = None  # extent the camera and frame were set for
        self._grid_shape: tuple[int, int] | None = None
        self._drawn_x: np.ndarray | None = None  # the coordinate arrays the GL item holds
        self._drawn_y: np.ndarray | None = None
        self._axis_names = ("x", "y", "loss")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._gl = None
        self._label: QLabel | None = None
        if self._available:
            try:
                self._build_gl()
            except Exception as error:  # keep the app alive whatever pyqtgraph.opengl does
                self._available = False
                self._reason = f"3D view could not start: {_one_line(error)}"
                self._gl = None
        if self._gl is not None:
            layout.addWidget(self._gl)
        else:
            self._label = self._make_label(self._reason)
            layout.addWidget(self._label)

    # -- public -------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """True when the surface is drawn with OpenGL, False when the fallback label is shown."""
        return self._available

    @property
    def reason(self) -> str:
        """Why 3D is unavailable (or 'OpenGL available')."""
        return self._reason

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        return QSize(640, 480)

    def set_surface(
        self,
        x: np.ndarray,
        y: np.ndarray,
        z: np.ndarray,
        levels: tuple[float, float],
        colormap: pg.ColorMap,
    ) -> None:
        """Show z[j, i] over (x[i], y[j]); NaN = not computed or non-finite, drawn grey at the top.

        Cheap enough to call every half second while a job fills z in: the GL item is reused, x and
        y are re-sent only when they change, and the camera is placed again only when the extent
        changes (a new landscape), never on a refill, so the user's rotation stays.
        """
        x = np.array(x, dtype=np.float64).ravel()  # copies: the caller may refill its arrays
        y = np.array(y, dtype=np.float64).ravel()
        z = np.array(z, dtype=np.float64)
        if z.shape != (y.size, x.size):
            raise ValueError(f"z must have shape (len(y), len(x)) = {(y.size, x.size)}, got {z.shape}")
        if self._x is not None and self._x.shape == x.shape and np.array_equal(self._x, x):
            x = self._x
        if self._y is not None and self._y.shape == y.shape and np.array_equal(self._y, y):
            y = self._y
        self._x, self._y, self._z = x, y, z
        self._levels = clean_levels(levels, z)
        if colormap is not self._colormap:
            self._colormap = colormap
            self._lut = colormap_lut(colormap)
        self._redraw(geometry=True)

    def set_colormap(self, colormap: pg.ColorMap) -> None:
        """Recolor the surface (heights stay)."""
        self._colormap = colormap
        self._lut = colormap_lut(colormap)
        self._redraw(geometry=False)

    def set_levels(self, lo: float, hi: float) -> None:
        """Change the value range mapped onto the box height and the colormap."""
        self._levels = clean_levels((lo, hi), self._z)
        self._redraw(geometry=True)

    def set_axis_labels(self, x: str = "x", y: str = "y", z: str = "loss") -> None:
        """Names written at the box's edges (with the ranges they span)."""
        self._axis_names = (x, y, z)
        self._update_labels()

    def reset_camera(self) -> None:
        """Put the camera back where it frames the whole box."""
        if self._gl is None:
            return
        sx, sy = self._box or (1.0, 1.0)
        w, h = max(self._gl.width(), 1), max(self._gl.height(), 1)
        # fit views up to 1.6 times wider than tall (a screenshot may be), and this one
        aspect = min(h / w, 0.62) if self._gl.isVisible() else 0.62
        center = np.array([0.0, 0.0, BOX_HEIGHT / 2])
        corners = np.array(
            [(cx, cy, cz) for cx in (-sx, sx) for cy in (-sy, sy) for cz in (self._floor, BOX_HEIGHT)]
        ) - center
        distance = _fit_distance(corners, ELEVATION, AZIMUTH, self._gl.opts["fov"], aspect) * 1.06
        self._gl.setCameraPosition(
            pos=pg.Vector(*center), distance=distance, elevation=ELEVATION, azimuth=AZIMUTH
        )

    def grab_image(self, width: int | None = None, height: int | None = None) -> QImage:
        """A picture of the view (for screenshots), at the given size or the widget's own.

        With OpenGL this reads the GL framebuffer (``QWidget.grab`` would miss the GL content);
        without, it renders the fallback label.
        """
        target: QWidget = self._gl if self._gl is not None else self._label
        old = target.size()
        base = old if old.width() >= 16 and old.height() >= 16 else QSize(640, 480)
        size = QSize(int(width or base.width()), int(height or base.height()))
        resized = size != old
        if resized:
            target.resize(size)
        try:
            image = self._gl.grabFramebuffer() if self._gl is not None else target.grab().toImage()
        finally:
            if resized:
                target.resize(old)
                self.updateGeometry()
        if not image.isNull() and image.size() != size:  # device pixel ratio > 1
            image = image.scaled(size, Qt.AspectRatioMode.IgnoreAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
        return image

    # -- internals ----------------------------------------------------------------------------

    def _make_label(self, reason: str) -> QLabel:
        label = QLabel(f"3D view unavailable.\n{reason}", self)
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        label.setWordWrap(True)
        label.setMargin(16)
        label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        label.setAutoFillBackground(True)
        return label

    def _build_gl(self) -> None:
        import pyqtgraph.opengl as gl

        view = gl.GLViewWidget(parent=self)
        fmt = view.format()
        fmt.setSamples(4)  # smooth edges where the driver can; ignored where it cannot
        view.setFormat(fmt)
        background = pg.mkColor(pg.getConfigOption("background"))
        view.setBackgroundColor(background)
        dark = background.lightnessF() < 0.5
        line = QColor(255, 255, 255, 45) if dark else QColor(0, 0, 0, 50)
        self._text_color = QColor(220, 220, 220) if dark else QColor(40, 40, 40)

        floor = -0.01 * BOX_HEIGHT  # just under the lowest level, so the grid never fights the surface
        self._floor = floor
        self._grid = gl.GLGridItem(color=line)
        self._grid.translate(0, 0, floor)
        self._frame = gl.GLBoxItem(color=line)
        self._surface = gl.GLSurfacePlotItem(
            computeNormals=False, smooth=True, shader=None, glOptions="opaque"
        )
        self._surface.hide()
        text_font = self.font()
        text_font.setPointSizeF(max(text_font.pointSizeF(), 8.0))
        self._text_items = [
            gl.GLTextItem(color=self._text_color, font=text_font) for _ in range(3)
        ]
        for item in self._text_items:
            item.setDepthValue(10)  # drawn last, over the surface
        for item in (self._grid, self._frame, self._surface, *self._text_items):
            view.addItem(item)
        view.setMinimumSize(120, 90)
        self._gl = view
        self._set_box(1.0, 1.0)
        self.reset_camera()

    def _set_box(self, sx: float, sy: float) -> None:
        self._box = (sx, sy)
        self._grid.setSize(2 * sx, 2 * sy, 1)
        self._grid.setSpacing(sx / 4, sy / 4, 1)
        self._frame.setSize(2 * sx, 2 * sy, BOX_HEIGHT - self._floor)
        self._frame.resetTransform()
        self._frame.translate(-sx, -sy, self._floor)
        self._update_labels()

    def _update_labels(self) -> None:
        if self._gl is None:
            return
        sx, sy = self._box or (1.0, 1.0)
        xname, yname, zname = self._axis_names
        xr, yr = _span(self._x), _span(self._y)
        lo, hi = self._levels
        center = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
        left = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        self._text_items[0].setData(pos=(0.0, -sy * 1.12, self._floor), text=xname + xr, alignment=center)
        self._text_items[1].setData(pos=(sx * 1.08, 0.0, self._floor), text=yname + yr, alignment=left)
        self._text_items[2].setData(
            # above the back-left top corner: centred there, it stays inside the view
            pos=(-sx, sy, BOX_HEIGHT * 1.04), text=f"{zname} {_fmt(lo)} … {_fmt(hi)}",
            alignment=Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom,
        )

    def _redraw(self, geometry: bool) -> None:
        if self._gl is None or self._z is None:
            return
        x, y, z = self._x, self._y, self._z
        if x.size < 2 or y.size < 2:  # a line or a point is no surface: show the empty box
            self._surface.hide()
            return
        box = _box_extent(x, y)
        xs, ys, heights, colors = surface_arrays(x, y, z, self._levels, self._lut, box)
        shape = (x.size, y.size)
        if box != self._box:  # another extent (a new landscape): reframe
            self._set_box(*box)
            self.reset_camera()
        if shape != self._grid_shape or (x is not self._drawn_x or y is not self._drawn_y):
            self._surface.setData(x=xs, y=ys, z=heights, colors=colors)
            self._grid_shape = shape
            self._drawn_x, self._drawn_y = x, y
        elif geometry:
            self._surface.setData(z=heights, colors=colors)
        else:
            self._surface.setData(colors=colors)
            self._surface.meshDataChanged()  # setData(colors=) alone does not re-upload them
        self._update_labels()
        self._surface.show()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().showEvent(event)
        if self._gl is not None and not getattr(self, "_shown_once", False):
            self._shown_once = True
            self.reset_camera()  # now that the real aspect ratio is known


def _fit_distance(points: np.ndarray, elevation: float, azimuth: float, fov: float, aspect: float) -> float:
    """Smallest camera distance from the origin at which all points (relative to the view center)
    fit a perspective view; ``fov`` is horizontal in degrees, ``aspect`` is height / width."""
    e, a = math.radians(elevation), math.radians(azimuth)
    toward = np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
    right = np.cross([0.0, 0.0, 1.0], toward)
    right /= np.linalg.norm(right)
    up = np.cross(toward, right)
    tan_h = math.tan(math.radians(fov) / 2)
    tan_v = tan_h * aspect
    depth = points @ toward  # toward the camera
    need = np.maximum(np.abs(points @ right) / tan_h, np.abs(points @ up) / tan_v) + depth
    return float(max(need.max(), 1e-3))


def _fmt(value: float) -> str:
    return f"{float(value):.3g}"


def _span(values: np.ndarray | None) -> str:
    return f" {_fmt(values.min())} … {_fmt(values.max())}" if values is not None and values.size else ""
