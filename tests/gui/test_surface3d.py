"""The 3D view: its fallback under the offscreen platform, its numpy geometry, and real OpenGL under Xvfb.

Real GL runs only in a subprocess under ``xvfb-run`` (skipped where that is missing), so a GL crash
can never take pytest down with it.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pg = pytest.importorskip("pyqtgraph")

from PySide6.QtGui import QImage  # noqa: E402
from PySide6.QtWidgets import QLabel  # noqa: E402

from landscape_gui.views import surface3d  # noqa: E402
from tests.gui.conftest import run_under_xvfb  # noqa: E402
from landscape_gui.views.surface3d import (  # noqa: E402
    BOX_HEIGHT,
    NAN_COLOR,
    Surface3DView,
    colormap_lut,
    opengl_status,
    surface_arrays,
)

ROOT = Path(__file__).resolve().parents[2]


def paraboloid(nx: int = 21, ny: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.linspace(-1.0, 1.0, nx)
    y = np.linspace(-0.5, 0.5, ny)
    xx, yy = np.meshgrid(x, y)  # (ny, nx): z[j, i] at (x[i], y[j])
    z = xx**2 + 4 * yy**2
    z[2:5, 3:7] = np.nan
    z[-1, -1] = np.inf
    return x, y, z


# -- numpy geometry (no GL needed) -----------------------------------------------------------


def test_surface_arrays_transpose_clip_and_nan() -> None:
    x = np.array([0.0, 1.0, 2.0])
    y = np.array([10.0, 20.0])
    z = np.array([[0.0, 1.0, 2.0], [np.nan, 5.0, -3.0]])  # z[j, i] at (x[i], y[j])
    lut = colormap_lut(pg.colormap.get("viridis"))
    xs, ys, heights, colors = surface_arrays(x, y, z, (0.0, 2.0), lut)
    assert heights.shape == (3, 2) and colors.shape == (6, 4)
    assert np.all(np.isfinite(heights)) and np.all(np.isfinite(colors))
    assert xs[0] < xs[1] < xs[2] and ys[0] < ys[1]
    assert abs(max(np.ptp(xs), np.ptp(ys)) - 2.0) < 1e-6  # the longer side spans the box
    # heights[i, j] is z[j, i], clipped to the levels and scaled onto [0, BOX_HEIGHT]
    assert heights[0, 0] == 0.0 and heights[1, 0] == pytest.approx(BOX_HEIGHT / 2)
    assert heights[2, 0] == pytest.approx(BOX_HEIGHT)
    assert heights[1, 1] == pytest.approx(BOX_HEIGHT)  # 5 clipped to the top
    assert heights[2, 1] == 0.0  # -3 clipped to the bottom
    assert heights[0, 1] == pytest.approx(BOX_HEIGHT)  # NaN at the top
    assert np.allclose(colors[1, :3], NAN_COLOR[:3], atol=0.2)  # vertex (i=0, j=1) is NaN: grey
    assert np.all(colors[:, 3] == 1.0)


def test_surface_arrays_all_nan_and_bad_levels() -> None:
    x, y = np.linspace(0, 1, 4), np.linspace(0, 1, 3)
    z = np.full((3, 4), np.nan)
    lut = colormap_lut(pg.colormap.get("viridis"))
    for levels in [(np.nan, np.nan), (1.0, 1.0), (2.0, -2.0), (-np.inf, np.inf)]:
        _, _, heights, colors = surface_arrays(x, y, z, levels, lut)
        assert np.all(np.isfinite(heights)) and np.all(np.isfinite(colors))
    with pytest.raises(ValueError):
        surface_arrays(x, y, z.T, (0, 1), lut)


def test_grey_colormap_gets_a_distinct_nan_color() -> None:
    grey = colormap_lut(pg.ColorMap([0.0, 1.0], [(0, 0, 0), (255, 255, 255)]))
    assert surface3d.nan_color(grey) != NAN_COLOR
    assert surface3d.nan_color(colormap_lut(pg.colormap.get("viridis"))) == NAN_COLOR


# -- fallback under the offscreen platform -------------------------------------------------------


@pytest.fixture
def offscreen(qapp):
    if qapp.platformName() != "offscreen":
        pytest.skip(f"runs under the offscreen Qt platform, not {qapp.platformName()!r}")
    return qapp


def test_opengl_status_offscreen(offscreen) -> None:
    ok, reason = opengl_status()
    assert ok is False
    assert "offscreen" in reason and "OpenGL" in reason
    assert "\n" not in reason
    assert opengl_status() == (ok, reason)  # cached


def test_view_falls_back_to_a_label(offscreen, qtbot) -> None:
    view = Surface3DView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    assert view.available is False
    _, reason = opengl_status()
    label = view.findChild(QLabel)
    assert label is not None and reason in label.text() and label.isVisible()

    x, y, z = paraboloid()
    view.set_surface(x, y, z, (0.0, 2.0), pg.colormap.get("viridis"))
    view.set_surface(x, y, np.full_like(z, np.nan), (np.nan, np.nan), pg.colormap.get("viridis"))
    view.set_surface(x, y, z, (0.5, 0.1), pg.colormap.get("viridis"))  # levels the wrong way round
    view.set_colormap(pg.colormap.get("plasma"))
    view.set_axis_labels("α", "β", "log10 loss")
    with pytest.raises(ValueError):
        view.set_surface(x, y, z.T, (0.0, 2.0), pg.colormap.get("viridis"))

    image = view.grab_image()
    assert isinstance(image, QImage) and not image.isNull()
    assert (image.width(), image.height()) == (400, 300)
    image = view.grab_image(320, 200)
    assert (image.width(), image.height()) == (320, 200)
    assert label.size().width() == 400  # restored after the sized grab


def test_view_never_shown_can_still_be_grabbed(offscreen, qtbot) -> None:
    view = Surface3DView()
    qtbot.addWidget(view)
    image = view.grab_image(200, 100)
    assert (image.width(), image.height()) == (200, 100)


# -- real OpenGL under Xvfb, in a subprocess ---------------------------------------------------------

GL_SCRIPT = textwrap.dedent(
    r"""
    import json, sys, time
    import numpy as np
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication
    from landscape_gui.views.surface3d import Surface3DView, opengl_status

    out = sys.argv[1]
    app = QApplication(sys.argv)
    report = {"platform": app.platformName(), "status": list(opengl_status())}
    view = Surface3DView()
    report["available"] = view.available
    view.resize(640, 480)
    view.show()

    def settle():
        for _ in range(4):
            app.processEvents()
            time.sleep(0.02)

    cmap = pg.colormap.get("viridis")
    x = np.linspace(-1.0, 1.0, 41)
    y = np.linspace(-1.0, 1.0, 33)
    xx, yy = np.meshgrid(x, y)
    z = xx**2 + yy**2
    z[5:10, 6:14] = np.nan  # holes: not computed
    z[20, 30] = np.inf

    # a job filling the surface in, row by row (OpenGL starts with the first surface)
    report["gl_before_a_surface"] = getattr(view, "_gl", None) is not None
    partial = np.full_like(z, np.nan)
    view.set_surface(x, y, partial, (0.0, 2.0), cmap)
    item = getattr(view, "_surface", None)
    t0 = time.perf_counter()
    for j in range(0, len(y), 4):
        partial[: j + 4] = z[: j + 4]
        view.set_surface(x, y, partial, (0.0, 2.0), cmap)
        app.processEvents()
    report["update_s"] = (time.perf_counter() - t0) / len(range(0, len(y), 4))
    view.set_surface(x, y, z, (0.0, 2.0), cmap)
    report["item_reused"] = getattr(view, "_surface", None) is item
    settle()
    view.grab_image().save(out + "/paraboloid.png")
    view.grab_image(400, 300).save(out + "/small.png")

    # orientation: a plane rising with x must be low on the left, high on the right
    view.set_surface(x, y, np.broadcast_to(xx, z.shape).copy(), (-1.0, 1.0), cmap)
    view.set_colormap(cmap)
    settle()
    view.grab_image().save(out + "/plane_x.png")

    # the other reasons, probed afresh (opengl_status() itself is cached)
    import os
    from landscape_gui.views import surface3d
    os.environ[surface3d.DISABLE_ENV] = "1"
    report["disabled"] = list(surface3d._probe())
    del os.environ[surface3d.DISABLE_ENV]
    saved = sys.modules.get("OpenGL")
    sys.modules["OpenGL"] = None  # as if PyOpenGL were not installed
    report["no_pyopengl"] = list(surface3d._probe())
    sys.modules["OpenGL"] = saved
    print(json.dumps(report))
    sys.stdout.flush()
    """
)


def _rgb(path: Path) -> np.ndarray:
    image = QImage(str(path))
    assert not image.isNull(), f"{path} is not an image"
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    array = np.frombuffer(image.constBits(), dtype=np.uint8)
    return array.reshape(image.height(), image.bytesPerLine() // 4, 4)[:, : image.width(), :3].copy()


def _lut_matches(rgb: np.ndarray, lut: np.ndarray, tolerance: float = 14.0) -> np.ndarray:
    """For each pixel the index of the nearest colormap entry, or -1 if none is within tolerance."""
    pixels = rgb.reshape(-1, 3).astype(np.float32)
    distance = np.linalg.norm(pixels[:, None, :] - lut[None, ::4, :3], axis=2)
    nearest = distance.argmin(axis=1)
    return np.where(distance.min(axis=1) <= tolerance, nearest * 4, -1).reshape(rgb.shape[:2])


def test_real_opengl_under_xvfb(tmp_path: Path) -> None:
    assert surface3d.DISABLE_ENV == "LANDSCAPE_NO_OPENGL"  # the variable run_under_xvfb clears
    report = run_under_xvfb(GL_SCRIPT, tmp_path, str(tmp_path), timeout=60)
    assert report["platform"] == "xcb"
    assert report["status"][0] is True, report["status"]
    assert report["available"] is True
    assert report["item_reused"] is True
    assert report["gl_before_a_surface"] is False  # no OpenGL composition before there is a surface
    assert report["update_s"] < 0.25, report
    assert report["disabled"][0] is False and surface3d.DISABLE_ENV in report["disabled"][1]
    assert report["no_pyopengl"] == [False, "PyOpenGL is not installed: pip install PyOpenGL"]

    lut = colormap_lut(pg.colormap.get("viridis"))[:, :3] * 255.0
    rgb = _rgb(tmp_path / "paraboloid.png")
    assert rgb.shape[:2] == (480, 640)
    colors = {tuple(c) for c in rgb.reshape(-1, 3)[::7]}
    assert len(colors) > 200, f"only {len(colors)} distinct colors: blank or flat render"
    matches = _lut_matches(rgb[::2, ::2], lut)
    found = matches[matches >= 0]
    assert found.size > 1500, f"too few colormap-colored pixels ({found.size})"
    assert found.min() < 40 and found.max() > 140, (found.min(), found.max())  # low and high ends
    grey = (np.ptp(rgb.astype(int), axis=2) < 12) & (rgb.mean(axis=2) > 90)  # the NaN holes
    assert grey.sum() > 100
    small = _rgb(tmp_path / "small.png")
    assert small.shape[:2] == (300, 400)

    plane = _lut_matches(_rgb(tmp_path / "plane_x.png")[::2, ::2], lut)
    width = plane.shape[1]
    left, right = plane[:, : width // 2], plane[:, width // 2 :]
    assert left[left >= 0].mean() + 60 < right[right >= 0].mean(), "x does not run to the right"
