"""Fixtures for the app's tests: surface files with known values, and a window on temp settings."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from engine.io.store import Surface, write_surface  # noqa: E402


def affine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A loss that is affine in (x, y): bilinear interpolation reproduces it exactly anywhere."""
    return 3.0 + 1.5 * x[None, :] - 0.75 * y[:, None]


@pytest.fixture
def affine_surface(tmp_path: Path) -> Path:
    """A complete, non-square Landscape surface file with known values (and an accuracy grid)."""
    x = np.linspace(-1.0, 1.0, 41)
    y = np.linspace(-0.8, 0.8, 33)
    loss = affine(x, y)
    acc = 50.0 + 10.0 * x[None, :] + 0.0 * y[:, None]
    surface = Surface(path=tmp_path / "src.h5", format="landscape", x=x, y=y,
                      values={"train_loss": loss, "train_acc": acc}, done=np.ones(loss.shape, bool),
                      attrs={"kind": "surface", "dimensions": 2})
    return write_surface(tmp_path / "affine.h5", surface)


@pytest.fixture
def li_surface(tmp_path: Path) -> Path:
    """A surface file as Li et al.'s plot_surface.py writes it (meshgrid ravel order, -1 = not computed)."""
    x = np.linspace(-1, 1, 7)
    y = np.linspace(-1, 1, 5)
    grid = 1.0 + x[None, :] ** 2 + 2.0 * y[:, None] ** 2
    stored = grid.ravel().reshape(len(x), len(y))  # their array is (nx, ny) but filled in (ny, nx) order
    stored = stored.copy()
    stored.ravel()[3] = -1  # one point their run never reached
    path = tmp_path / "li_surface.h5"
    with h5py.File(path, "w") as handle:
        handle["xcoordinates"] = x
        handle["ycoordinates"] = y
        handle["train_loss"] = stored
    return path


@pytest.fixture
def window(qtbot, tmp_path: Path):
    """The real main window on a settings file of its own, shown offscreen at a fixed size."""
    from PySide6.QtCore import QSettings

    from landscape_gui.main_window import MainWindow
    from landscape_gui.settings import AppSettings

    settings = AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.runner.cancel_all(wait=True)


def run_under_xvfb(script: str, tmp_path: Path, *args: str, timeout: float = 90) -> dict:
    """Run a GL script on a real X server (xvfb-run) in a subprocess, so a GL crash cannot take pytest
    down; its last stdout line is a JSON report. Skips where Xvfb or Qt's xcb platform is missing."""
    import json
    import shutil
    import subprocess
    import sys

    xvfb_run = shutil.which("xvfb-run")
    if xvfb_run is None:
        pytest.skip("xvfb-run is not installed (Debian: apt-get install xvfb xauth libgl1-mesa-dri)")
    path = tmp_path / "gl_script.py"
    path.write_text(script)
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "LANDSCAPE_NO_OPENGL")}
    env["QT_QPA_PLATFORM"] = "xcb"
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    command = [xvfb_run, "-a", "-s", "-screen 0 1280x1024x24", sys.executable, str(path), *args]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(root))
    except subprocess.TimeoutExpired:
        pytest.fail(f"the OpenGL script under Xvfb did not finish within {timeout:.0f} s")
    if "Could not load the Qt platform plugin" in done.stderr:
        pytest.skip("Qt's xcb platform cannot load here (missing libxcb-* packages): " + done.stderr[-300:])
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])
