"""How responsive the app is on a 201 x 201 surface, next to the matplotlib way of drawing the same.

Two numbers the desktop app promises (issue 3):

* **open**: from ``MainWindow.open_grid`` on a finished 201 x 201 file until the 2D map,
  its contours and the 1D profile are painted. Budget: 0.5 s. The reference is Li et al.'s
  ``plot_2D.plot_2d_contour`` (read the .h5, ``plt.contour`` with levels, ``clabel``,
  ``savefig``), re-implemented with matplotlib's Agg backend on the same file.
* **drag**: one step of dragging the slice line: the state's slice changes, the engine
  interpolates the profile along it, the 1D view's curves are replaced and repainted.
  Budget: well under a frame (16.7 ms). The reference is how a script redraws a profile:
  ``line.set_data`` + ``canvas.draw`` of a matplotlib figure of the same size.

* **first launch** (``--first-launch``): a fresh cache, the window shown on a real X
  server; seconds until the sample is *trained* (next to ``landscape train`` of the same
  recipe under the same load), until a meaningful *picture* (the 5 x 5 coarse lattice
  computed, drawn as a low-resolution map) and until *finished* (10201 points). Promise
  (issue 8): idle, finished within 5 s; beside one CPU-bound process (``--busy``), training
  no slower than the CLI's and a picture within 10 s.

Run: ``QT_QPA_PLATFORM=offscreen python benchmarks/gui_speed.py [--points 201] [--steps 200]``;
``xvfb-run -a python benchmarks/gui_speed.py --first-launch [--busy] [--runs 3]``
(needs ``pip install matplotlib`` for the reference). Prints medians, p95 and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

FRAME_MS = 1000 / 60
COARSE_LATTICE = 25  # 5 x 5 points: levels 0 to 2 of both axes of the sample's 101 x 101 grid


def make_surface(folder: Path, points: int) -> Path:
    """A real surface: the mlp-sine sample (width 10) on a points x points grid."""
    from engine.jobs.surface import SurfaceJob, SurfaceRequest
    from samples.registry import train

    run = train("mlp-sine", folder / "w10", seed=0, width=10, epochs=300)
    out = folder / f"surface_{points}.h5"
    axis = f"-1:1:{points}"
    list(SurfaceJob(SurfaceRequest(checkpoint=str(run.checkpoints[0]), data=str(folder / "w10" / "train.npz"),
                                   x=axis, y=axis, out=str(out))).run())
    return out


def time_open(window, path: Path, repeats: int) -> list[float]:
    from PySide6.QtWidgets import QApplication

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        window.open_grid(path)
        QApplication.processEvents()
        window.heatmap.viewport().repaint()  # paint now, synchronously
        window.profile.viewport().repaint()
        times.append(time.perf_counter() - start)
        window.close_current()
        QApplication.processEvents()
    return times


def time_drag(window, path: Path, steps: int) -> list[float]:
    window.open_grid(path)
    rng = np.random.default_rng(0)
    ends = rng.uniform(-1, 1, size=(steps, 2))
    times = []
    for k in range(steps):
        start = time.perf_counter()
        window.state.view.slice = ((-0.9, -0.5), (float(ends[k, 0]), float(ends[k, 1])))
        window.profile.viewport().repaint()
        times.append(time.perf_counter() - start)
    return times


def reference_open(path: Path, out: Path, repeats: int) -> list[float]:
    """Li et al.'s plot_2d_contour: read, meshgrid, contour with levels, clabel, save."""
    import h5py
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with h5py.File(path, "r") as f:
            x = np.array(f["xcoordinates"][:])
            y = np.array(f["ycoordinates"][:])
            z = np.array(f["train_loss"][:])
        X, Y = np.meshgrid(x, y)
        fig = plt.figure(figsize=(7.5, 5.5), dpi=100)
        vmin, vmax, vlevel = float(np.nanmin(z)), float(np.nanmax(z)), (float(np.nanmax(z)) - float(np.nanmin(z))) / 10
        contours = plt.contour(X, Y, z, cmap="summer", levels=np.arange(vmin, vmax, vlevel))
        plt.clabel(contours, inline=1, fontsize=8)
        fig.savefig(out, dpi=100, bbox_inches="tight", format="png")
        plt.close(fig)
        times.append(time.perf_counter() - start)
    return times


def reference_drag(path: Path, steps: int) -> list[float]:
    """A script's profile redraw: interpolate (same engine call), set_data, canvas.draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from engine.display.profile import line_profile
    from engine.io.store import read_surface

    surface = read_surface(path)
    fig, ax = plt.subplots(figsize=(9, 3), dpi=100)
    (line,) = ax.semilogy([0, 1], [1, 1])
    fig.canvas.draw()
    rng = np.random.default_rng(0)
    ends = rng.uniform(-1, 1, size=(steps, 2))
    times = []
    for k in range(steps):
        start = time.perf_counter()
        profile = line_profile(surface.x, surface.y, surface.values, (-0.9, -0.5), tuple(ends[k]), 201)
        line.set_data(profile.distance, profile.values["train_loss"])
        ax.relim()
        ax.autoscale_view()
        fig.canvas.draw()
        times.append(time.perf_counter() - start)
    plt.close(fig)
    return times


def summary(name: str, seconds: list[float]) -> tuple[float, float]:
    ms = sorted(1000 * s for s in seconds)
    median = statistics.median(ms)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    print(f"  {name:<34} median {median:8.2f} ms   p95 {p95:8.2f} ms   (n={len(ms)})")
    return median, p95


@contextmanager
def busy(enabled: bool) -> Iterator[None]:
    """One CPU-bound process alongside, as on a shared machine."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if enabled else None
    try:
        yield
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def cli_training(folder: Path) -> float:
    """The CLI's own training time for the same recipe (recipe.json's seconds)."""
    out = folder / "cli"
    subprocess.run([sys.executable, "-m", "landscape_cli", "train", "mlp-sine", "--out", str(out)], check=True,
                   capture_output=True, cwd=Path(__file__).resolve().parents[1])
    return float(json.loads((out / "recipe.json").read_text())["seconds"])


def app_first_launch(folder: Path) -> dict[str, float]:
    """Milestones of one first launch in a fresh cache, in a window on the real display."""
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from landscape_gui.app import make_app
    from landscape_gui.first_launch import start_sample
    from landscape_gui.first_run import FirstRun
    from landscape_gui.main_window import MainWindow
    from landscape_gui.settings import AppSettings

    app = make_app()
    window = MainWindow(settings=AppSettings(QSettings(str(folder / "settings.ini"), QSettings.IniFormat)))
    window.resize(1400, 900)
    window.show()
    QApplication.processEvents()
    shown = time.perf_counter()
    marks: dict[str, float] = {}
    run = FirstRun(folder=folder / "sample")

    def drawn(landscape) -> None:  # the views redraw on this event
        if "picture" not in marks and landscape.progress[0] >= COARSE_LATTICE:
            marks["picture"] = time.perf_counter() - shown

    def finished(*_args) -> None:
        marks["finished"] = time.perf_counter() - shown
        app.quit()

    window.state.updated.connect(drawn)
    window.runner.finished.connect(finished)
    start_sample(window, run)
    QTimer.singleShot(180_000, app.quit)
    app.exec()
    marks["trained"] = float(json.loads((run.folder / "recipe.json").read_text())["seconds"])
    window.close()
    return marks


def first_launch_main(args: argparse.Namespace) -> int:
    """Milestones of fresh first launches (each in its own process), idle or beside a busy process."""
    if not os.environ.get("DISPLAY"):
        print("run under an X server: xvfb-run -a python benchmarks/gui_speed.py --first-launch", file=sys.stderr)
        return 2
    rows: dict[str, list[float]] = {"trained": [], "cli trained": [], "picture": [], "finished": []}
    with busy(args.busy):
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                out = subprocess.run([sys.executable, __file__, "--one-launch", tmp], check=True, capture_output=True,
                                     text=True, env={**os.environ, "QT_QPA_PLATFORM": "xcb"})
                marks = json.loads(out.stdout.strip().splitlines()[-1])
                for key in ("trained", "picture", "finished"):
                    rows[key].append(marks.get(key, float("nan")))
                rows["cli trained"].append(cli_training(Path(tmp)))
    load = "one CPU-bound process alongside" if args.busy else "idle"
    print(f"first launch, {load}, {args.runs} runs (seconds; median [min .. max])")
    for key, values in rows.items():
        print(f"  {key:12s} {statistics.median(values):6.2f} [{min(values):.2f} .. {max(values):.2f}]")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=201, help="grid side (default 201)")
    parser.add_argument("--steps", type=int, default=200, help="drag steps to time")
    parser.add_argument("--repeats", type=int, default=5, help="times the file is opened")
    parser.add_argument("--first-launch", action="store_true",
                        help="time the first launch instead (under a real X server: xvfb-run -a ...)")
    parser.add_argument("--busy", action="store_true", help="--first-launch beside one CPU-bound process")
    parser.add_argument("--runs", type=int, default=3, help="--first-launch: launches, each in a fresh process")
    parser.add_argument("--one-launch", metavar="DIR", help=argparse.SUPPRESS)  # one launch, in this process
    args = parser.parse_args()
    if args.one_launch:
        print(json.dumps(app_first_launch(Path(args.one_launch))))
        return 0
    if args.first_launch:
        return first_launch_main(args)

    from PySide6.QtCore import QSettings

    from landscape_gui.app import make_app
    from landscape_gui.main_window import MainWindow
    from landscape_gui.settings import AppSettings

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"computing a {args.points} x {args.points} surface of the mlp-sine sample ...")
        path = make_surface(folder, args.points)
        app = make_app()
        window = MainWindow(AppSettings(QSettings(str(folder / "s.ini"), QSettings.IniFormat)))
        window.resize(1500, 950)
        window.show()
        app.processEvents()
        print(f"open a finished {args.points}x{args.points} grid and paint (budget 500 ms):")
        ours_open, _ = summary("landscape (map+contours+profile)", time_open(window, path, args.repeats))
        try:
            ref_open, _ = summary("Li et al. plot_2d_contour (mpl)", reference_open(path, folder / "c.png", args.repeats))
        except ImportError:
            ref_open = None
            print("  (pip install matplotlib for the reference)")
        print(f"drag the slice line one step (budget one frame, {FRAME_MS:.1f} ms):")
        ours_drag, ours_p95 = summary("landscape (profile + repaint)", time_drag(window, path, args.steps))
        try:
            ref_drag, _ = summary("matplotlib set_data + draw", reference_drag(path, args.steps))
        except ImportError:
            ref_drag = None
        window.close()
        print("ratios (reference / landscape; > 1 means Landscape is faster):")
        if ref_open:
            print(f"  open : {ref_open / ours_open:5.1f}x   (landscape {ours_open:.0f} ms vs budget 500 ms)")
        if ref_drag:
            print(f"  drag : {ref_drag / ours_drag:5.1f}x   (landscape p95 {ours_p95:.1f} ms vs frame {FRAME_MS:.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
