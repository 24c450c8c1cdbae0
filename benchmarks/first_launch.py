"""How fast a new user sees a picture: the app's first launch, idle and on a busy machine.

The first launch trains the mlp-sine sample, then computes its 101 x 101 surface while
the map fills in coarse to fine. Milestones, in seconds after the window is shown:

* **trained**: the sample's training is done (its own time, from recipe.json, next to
  the same recipe trained by ``landscape train`` in a subprocess under the same load);
* **picture**: the map shows a meaningful picture: every point of the 5 x 5 coarse
  lattice is computed (the preview is a low-resolution version of the final map);
* **finished**: all 10201 points.

The promise (issue 8): idle, the finished sample within 5 s; with one CPU-bound process
running alongside (``--busy``), the app trains no slower than the CLI and shows a
meaningful picture within 10 s.

Run under a real X server, as a user would see it: ``xvfb-run -a python benchmarks/first_launch.py [--busy] [--runs 3]``.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COARSE_LATTICE = 25  # 5 x 5 points: levels 0 to 2 of both axes of a 101 x 101 grid


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", action="store_true", help="run one CPU-bound process alongside")
    parser.add_argument("--runs", type=int, default=3, help="first launches (each in a fresh process)")
    parser.add_argument("--one", metavar="DIR", help=argparse.SUPPRESS)  # one launch, in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(app_first_launch(Path(args.one))))
        return 0
    if not os.environ.get("DISPLAY"):
        print("run under an X server: xvfb-run -a python benchmarks/first_launch.py", file=sys.stderr)
        return 2
    rows: dict[str, list[float]] = {"trained": [], "cli trained": [], "picture": [], "finished": []}
    with busy(args.busy):
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                out = subprocess.run([sys.executable, __file__, "--one", tmp], check=True, capture_output=True,
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


if __name__ == "__main__":
    raise SystemExit(main())
