"""The 3D view: a rotatable loss surface with its slice line, drawn with pyqtgraph.opengl, or a plain
message without OpenGL.

OpenGL is not there everywhere: Qt's ``offscreen`` platform (tests, CI) has none, PyOpenGL may be
missing, and a remote desktop may fail to create a context. :func:`opengl_status` finds out once per
process without risking a crash, and :class:`Surface3DView` then shows either the GL surface or a
label that says why there is none, so the rest of the app keeps working either way.

Geometry and colors are computed here with numpy (:func:`surface_arrays`, testable without GL) and
handed to one reused ``GLSurfacePlotItem``: a job that refills a partial surface twice a second costs
a few array operations and a buffer upload, never a rebuild. Lighting is baked into the vertex colors
(pyqtgraph's own normals are computed in a Python loop, far too slow to redo on every update). The
slice line follows the very triangles drawn (:func:`slice_vertices`), so it lies on the surface.

Given the app's state, the view follows it like the other views; the camera frames the box whenever
the panel changes shape, until the user moves it (then "Reset view" frames it again).
"""

from __future__ import annotations

from contextlib import contextmanager

import importlib
import importlib.util
import math
import os
from collections.abc import Iterator

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QOffscreenSurface, QOpenGLContext
from PySide6.QtWidgets import QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from engine.display.profile import surface_path
from landscape_gui.state import AppState, Landscape, value_label
from landscape_gui.views import colors

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
FIT_MARGIN = 1.08  # camera distance over the tightest fit of the box and its axis names
LABEL_OUT = 1.1  # the x and y names sit this far out from the box's centre (in half-widths)
SLICE_LIFT = 0.008 * BOX_HEIGHT  # the slice line floats this far above the surface, never inside it
SLICE_COLOR = (1.0, 1.0, 1.0, 1.0)  # white, as on the 2D map
SLICE_BEHIND_COLOR = (1.0, 1.0, 1.0, 0.3)  # where the surface hides it
FLOOR_DARK, FLOOR_LIGHT = (0.11, 0.11, 0.13, 1.0), (0.88, 0.88, 0.90, 1.0)
NOTHING_OPEN = "Open a 2D surface to see it in 3D"
ONE_D = "A 1D surface has no 3D view: see the profile"
NOT_DRAWN = ("contours", "show_trajectory")  # view settings the 3D view does not draw
# While a job fills the current surface, it is redrawn at most this often: software OpenGL (what most
# servers and VMs have) costs tens of milliseconds of CPU a frame, which the job's thread then lacks.
LIVE_REDRAW_MS = 1000
RESET_BUTTON_STYLE = (
    "QToolButton { color: #e0e0e0; background: rgba(255, 255, 255, 38); border: 1px solid rgba(255, 255, 255, 90);"
    " border-radius: 3px; padding: 2px 8px; }"
    "QToolButton:hover { background: rgba(255, 255, 255, 80); }"
)

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


def _scale_to(values: np.ndarray, half: float, axis: np.ndarray | None = None) -> np.ndarray:
    """Map values linearly onto [-half, half] as ``axis`` (default: the values) spans it (all at 0 on no range)."""
    values = np.asarray(values, dtype=np.float64)
    axis = values if axis is None else np.asarray(axis, dtype=np.float64)
    lo, hi = (float(np.min(axis)), float(np.max(axis))) if axis.size else (0.0, 0.0)
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


def slice_vertices(
    x: np.ndarray,
    y: np.ndarray,
    heights: np.ndarray,
    segment: tuple[tuple[float, float], tuple[float, float]],
    box: tuple[float, float],
) -> np.ndarray:
    """(n, 3) float32 vertices of the slice line on the drawn surface, in box coordinates.

    ``heights[i, j]`` are the surface's drawn heights (from :func:`surface_arrays`); the line
    follows the very triangles GL draws (engine.display.profile.surface_path), a hair above
    them so that depth testing never hides it, and stops at the edges of the grid.
    """
    path = surface_path(x, y, {"height": np.asarray(heights, dtype=np.float64).T}, segment[0], segment[1])
    if len(path.t) < 2:
        return np.zeros((0, 3), dtype=np.float32)
    sx, sy = box
    return np.column_stack(
        [_scale_to(path.xs, sx, x), _scale_to(path.ys, sy, y), path.values["height"] + SLICE_LIFT]
    ).astype(np.float32)


class Surface3DView(QWidget):
    """A rotatable 3D loss surface with the slice line on it, or a label saying why 3D is unavailable.

    Given an :class:`AppState` it follows it like the other views (current surface, metric, scale,
    color limits, colormap, slice line); a 1D surface or none clears it, with a line saying why.
    Without one, a caller feeds it through :meth:`set_surface`, :meth:`set_slice` and friends.
    Drag to rotate, wheel to zoom, middle-drag (or ctrl-drag) to pan: pyqtgraph's GLViewWidget
    controls; the "Reset view" button (:meth:`reset_camera`) frames the surface again. x runs to
    the right, y into the depth, the displayed value upwards.
    """

    def __init__(self, state: AppState | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._available, self._reason = opengl_status()
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None
        self._z: np.ndarray | None = None
        self._heights: np.ndarray | None = None  # (nx, ny) as drawn, for the slice line
        self._segment: tuple[tuple[float, float], tuple[float, float]] | None = None
        self._levels: tuple[float, float] = (0.0, 1.0)
        self._colormap: pg.ColorMap = pg.colormap.get("viridis")
        self._lut = colormap_lut(self._colormap)
        self._box: tuple[float, float] | None = None  # extent the camera and frame were set for
        self._grid_shape: tuple[int, int] | None = None
        self._drawn_x: np.ndarray | None = None  # the coordinate arrays the GL item holds
        self._drawn_y: np.ndarray | None = None
        self._axis_names = ("x", "y", "loss")
        self._fitted_camera: tuple | None = None  # the camera as reset_camera left it
        self.state = state
        self.shown: Landscape | None = None  # with a state: the landscape drawn
        self.message = ""  # why no surface is drawn ("" while one is)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._gl = None
        self.reset_button: QToolButton | None = None
        # OpenGL starts with the first surface: until then the window composes without it, which
        # on software OpenGL (most servers and VMs) keeps the first launch's training at CLI speed.
        self._label = self._make_label(f"3D view unavailable.\n{self._reason}" if not self._available else "")
        if self._available:  # standing in for the OpenGL view: its colours
            background = pg.mkColor(pg.getConfigOption("background"))
            text = "#dcdcdc" if background.lightnessF() < 0.5 else "#282828"
            self._label.setStyleSheet(f"background: {background.name()}; color: {text};")
        layout.addWidget(self._label)
        if state is not None:
            self._follow(state)

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
        self.message = ""
        self._start_gl()
        self._redraw(geometry=True)

    def set_slice(self, segment: tuple[tuple[float, float], tuple[float, float]] | None) -> None:
        """Draw the slice line ((x0, y0), (x1, y1)), in the plane's coordinates, on the surface; None hides it."""
        self._segment = segment
        self._draw_slice()

    def clear(self, message: str = "") -> None:
        """Show no surface, and ``message`` saying why (a 1D surface, nothing open)."""
        self._x = self._y = self._z = self._heights = None
        self._grid_shape = None
        self._drawn_x = self._drawn_y = None
        self.message = message
        if self._gl is None:
            if self._available:
                self._label.setText(message)
            return
        for item in self._scene_items():
            item.hide()
        self._message.setData(text=message)
        self._message.show()

    def set_colormap(self, colormap: pg.ColorMap) -> None:
        """Recolor the surface (heights stay)."""
        self._colormap = colormap
        self._lut = colormap_lut(colormap)
        self._redraw(geometry=False)

    def set_axis_labels(self, x: str = "x", y: str = "y", z: str = "loss") -> None:
        """Names written at the box's edges (with the ranges they span)."""
        self._axis_names = (x, y, z)
        self._update_labels()

    def reset_camera(self) -> None:
        """Put the camera back where the box fills the view (the Reset view button; View menu)."""
        if self._gl is None:
            return
        sx, sy = self._box or (1.0, 1.0)
        w, h = self._gl.width(), self._gl.height()
        aspect = h / w if w >= 16 and h >= 16 else 0.75  # a view never shown: its default 640 x 480
        center = np.array([0.0, 0.0, (self._floor + BOX_HEIGHT) / 2])
        points = np.array(
            [(cx, cy, cz) for cx in (-sx, sx) for cy in (-sy, sy) for cz in (self._floor, BOX_HEIGHT)]
            + [(0.0, -sy * LABEL_OUT, self._floor), (sx * LABEL_OUT, 0.0, self._floor)]  # the axis names
        ) - center
        distance = _fit_distance(points, ELEVATION, AZIMUTH, self._gl.opts["fov"], aspect) * FIT_MARGIN
        self._gl.setCameraPosition(
            pos=pg.Vector(*center), distance=distance, elevation=ELEVATION, azimuth=AZIMUTH
        )
        self._fitted_camera = self._camera()

    def grab_image(self, width: int | None = None, height: int | None = None, scale: float = 1.0) -> QImage:
        """A picture of the view (for screenshots and figures), at the given size or the widget's own.

        ``scale`` enlarges text and lines as a figure printed at ``scale`` x 96 dpi needs, so
        they keep their size next to the other views. With OpenGL this reads the GL framebuffer
        (``QWidget.grab`` would miss the GL content); without, it renders the fallback label.
        """
        target: QWidget = self._gl if self._gl is not None else self._label
        old = target.size()
        base = old if old.width() >= 16 and old.height() >= 16 else QSize(640, 480)
        size = QSize(int(width or base.width()), int(height or base.height()))
        resized = size != old
        if resized:
            target.resize(size)
        try:
            with self._printed(scale):
                image = self._gl.grabFramebuffer() if self._gl is not None else target.grab().toImage()
        finally:
            if resized:
                target.resize(old)
                self.updateGeometry()
        if not image.isNull() and image.size() != size:  # device pixel ratio > 1
            image = image.scaled(size, Qt.AspectRatioMode.IgnoreAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
        return image

    @contextmanager
    def _printed(self, scale: float) -> Iterator[None]:
        """Text and lines ``scale`` times larger for the block (a figure at a higher resolution)."""
        if self._gl is None or scale == 1.0:
            yield
            return
        texts = [*self._text_items, self._message]
        fonts = [item.font for item in texts]
        widths = [(line, line.width) for line in (self._slice, self._slice_behind)]
        for item, font in zip(texts, fonts):
            larger = QFont(font)
            larger.setPointSizeF(font.pointSizeF() * scale)
            item.setData(font=larger)
        for line, width in widths:
            line.setData(width=width * scale)
        try:
            yield
        finally:
            for item, font in zip(texts, fonts):
                item.setData(font=font)
            for line, width in widths:
                line.setData(width=width)

    # -- following a state ----------------------------------------------------------------------

    def _follow(self, state: AppState) -> None:
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_REDRAW_MS)
        self._live_timer.timeout.connect(self._show_current)
        state.current_changed.connect(lambda _l: self._show_current(new_surface=True))
        state.updated.connect(self._updated)
        state.view.changed.connect(self._view_changed)
        self._show_current(new_surface=True)

    def _updated(self, landscape) -> None:
        """New values: drawn at once when a job has finished, at most once a LIVE_REDRAW_MS while it runs."""
        if landscape is not self.state.current:
            return
        if landscape.computing:
            if not self._live_timer.isActive():
                self._live_timer.start()
        else:
            self._live_timer.stop()
            self._show_current()

    def _view_changed(self, name: str) -> None:
        if name == "colormap":
            self.set_colormap(colors.colormap(self.state.view.colormap))
        elif name == "slice":
            self.set_slice(self.state.view.slice)
        elif name not in NOT_DRAWN:  # metric, scale, color limits
            self._show_current()

    def _show_current(self, new_surface: bool = False) -> None:
        """Draw the state's current surface as its view says (a new one framed afresh).

        A 1D surface (or a computed slice line) has no surface to draw: the view is cleared
        rather than left showing the previous 2D surface, which would read as this one's.
        """
        landscape = self.state.current
        if landscape is None or landscape.surface.dimensions != 2:
            self.shown = None
            self.clear(NOTHING_OPEN if landscape is None else ONE_D)
            return
        view = self.state.view
        grid = landscape.grid(view.metric)
        self.shown = landscape
        levels = grid.levels(view.scale, view.limits())
        # The map's preview, clamped to the same levels: one extreme point cannot flood it here either.
        self.set_surface(landscape.surface.x, landscape.surface.y, grid.preview(view.scale, levels), levels,
                         colors.colormap(view.colormap))
        self.set_axis_labels("α", "β", value_label(landscape.shown_metric(view.metric), view.scale))
        self.set_slice(view.slice)
        if new_surface:
            self.reset_camera()

    # -- internals ----------------------------------------------------------------------------

    def _start_gl(self) -> None:
        """Build the OpenGL view in place of the label, once (a failure leaves the label saying why)."""
        if self._gl is not None or not self._available:
            return
        try:
            self._build_gl()
        except Exception as error:  # keep the app alive whatever pyqtgraph.opengl does
            self._available = False
            self._reason = f"3D view could not start: {_one_line(error)}"
            self._gl = None
            self._label.setText(f"3D view unavailable.\n{self._reason}")
            return
        self.layout().replaceWidget(self._label, self._gl)
        self._label.hide()
        self._update_labels()

    def _make_label(self, text: str) -> QLabel:
        label = QLabel(text, self)
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
        # An opaque floor: a funnel reaching the lowest level is seen to rest on it, not to pass through a wire grid.
        self._floor_plane = gl.GLMeshItem(
            vertexes=np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], dtype=np.float32),
            faces=np.array([[0, 1, 2], [0, 2, 3]], dtype=np.uint32),
            color=FLOOR_DARK if dark else FLOOR_LIGHT, smooth=False, shader=None, glOptions="opaque",
        )
        self._grid = gl.GLGridItem(color=line)
        self._grid.translate(0, 0, floor)
        self._frame = gl.GLBoxItem(color=line)
        self._surface = gl.GLSurfacePlotItem(
            computeNormals=False, smooth=True, shader=None, glOptions="opaque"
        )
        self._surface.hide()
        self._slice = gl.GLLinePlotItem(color=SLICE_COLOR, width=3.0, antialias=True, mode="line_strip",
                                        glOptions="translucent")
        # The same line faintly through the surface, so its part behind a hill still shows where it runs.
        self._slice_behind = gl.GLLinePlotItem(color=SLICE_BEHIND_COLOR, width=2.0, antialias=True,
                                               mode="line_strip", glOptions="additive")
        for item in (self._slice, self._slice_behind):
            item.hide()
        text_font = self.font()
        text_font.setPointSizeF(max(text_font.pointSizeF(), 8.0))
        self._text_items = [
            gl.GLTextItem(color=self._text_color, font=text_font) for _ in range(3)
        ]
        self._message = gl.GLTextItem(color=self._text_color, font=text_font, pos=(0.0, 0.0, BOX_HEIGHT / 2),
                                      alignment=Qt.AlignmentFlag.AlignCenter)
        self._message.hide()
        for item in (*self._text_items, self._message):
            item.setDepthValue(10)  # drawn last, over the surface
        for item in (self._floor_plane, self._grid, self._frame, self._surface, self._slice, self._slice_behind,
                     *self._text_items, self._message):
            view.addItem(item)
        view.setMinimumSize(120, 90)
        self._gl = view
        self.reset_button = self._make_reset_button(view)
        view.installEventFilter(self)
        self._set_box(1.0, 1.0)
        self.reset_camera()

    def _make_reset_button(self, parent: QWidget) -> QToolButton:
        button = QToolButton(parent)
        button.setText("Reset view")
        button.setToolTip("Frame the whole surface again (drag rotates, wheel zooms, ctrl-drag pans)")
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        button.setStyleSheet(RESET_BUTTON_STYLE)
        button.clicked.connect(self.reset_camera)
        button.adjustSize()
        return button

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt naming)
        if watched is self._gl and event.type() == QEvent.Type.Resize:
            self._gl_resized()
        return False

    def _gl_resized(self) -> None:
        """Keep the button in the top-right corner, and the surface fitted until the user moves the camera."""
        margin = 8
        self.reset_button.move(self._gl.width() - self.reset_button.width() - margin, margin)
        if self._camera() == self._fitted_camera:
            self.reset_camera()

    def _camera(self) -> tuple:
        opts = self._gl.opts
        center = opts["center"]
        return opts["distance"], opts["elevation"], opts["azimuth"], (center.x(), center.y(), center.z())

    def _scene_items(self) -> list:
        """Everything drawn for a surface (hidden when there is none)."""
        return [self._floor_plane, self._grid, self._frame, self._surface, self._slice, self._slice_behind,
                *self._text_items]

    def _set_box(self, sx: float, sy: float) -> None:
        self._box = (sx, sy)
        self._grid.setSize(2 * sx, 2 * sy, 1)
        self._grid.setSpacing(sx / 4, sy / 4, 1)
        self._frame.setSize(2 * sx, 2 * sy, BOX_HEIGHT - self._floor)
        self._frame.resetTransform()
        self._frame.translate(-sx, -sy, self._floor)
        self._floor_plane.resetTransform()
        self._floor_plane.scale(sx, sy, 1.0)
        self._floor_plane.translate(0.0, 0.0, self._floor - 0.002 * BOX_HEIGHT)  # under the grid lines
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
        self._text_items[0].setData(pos=(0.0, -sy * LABEL_OUT, self._floor), text=xname + xr, alignment=center)
        self._text_items[1].setData(pos=(sx * LABEL_OUT, 0.0, self._floor), text=yname + yr, alignment=left)
        self._text_items[2].setData(
            # above the back-left top corner: centred there, it stays inside the view
            pos=(-sx, sy, BOX_HEIGHT * 1.04), text=f"{zname} {_fmt(lo)} … {_fmt(hi)}",
            alignment=Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom,
        )

    def _redraw(self, geometry: bool) -> None:
        if self._gl is None or self._z is None:
            return
        x, y, z = self._x, self._y, self._z
        self._message.hide()
        for item in (self._floor_plane, self._grid, self._frame, *self._text_items):
            item.show()
        if x.size < 2 or y.size < 2:  # a line or a point is no surface: show the empty box
            self._surface.hide()
            self._heights = None
            self._draw_slice()
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
        self._heights = heights
        self._update_labels()
        self._surface.show()
        self._draw_slice()

    def _draw_slice(self) -> None:
        if self._gl is None:
            return
        pos = (slice_vertices(self._x, self._y, self._heights, self._segment, self._box)
               if self._segment is not None and self._heights is not None else np.zeros((0, 3)))
        visible = len(pos) >= 2
        for item in (self._slice, self._slice_behind):
            if visible:
                item.setData(pos=pos)
            item.setVisible(visible)


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
