"""How long does ``engine.io.export.export_grid`` take to write a 201 x 201 grid as .vtp and .csv?

The grid is a smooth bowl (1 + x^2 + y^2 over [-1, 1]^2) with every point computed,
as a finished ``landscape surface --x=-1:1:201 --y=-1:1:201`` gives. Three exports are
timed, each into a fresh file in a temporary folder:

* ``vtp``      ParaView PolyData (ASCII), height = the loss;
* ``vtp-log``  the same with ``log=True, zmax=2.5`` (clipped, log10 height);
* ``csv``      one row per point (x, y, train_loss, done).

Each is run ``--runs`` times (after one untimed warm-up) and the median, best and worst
are printed, with the file size. Timings live here rather than in the tests, because a
loaded machine makes any wall-clock assertion flaky.

Run (from the repository root)::

    python benchmarks/export_speed.py
    python benchmarks/export_speed.py --points 401 --runs 9
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.io.export import export_grid  # noqa: E402
from engine.io.store import Surface  # noqa: E402


def bowl(points: int, folder: Path) -> Surface:
    x = np.linspace(-1.0, 1.0, points)
    xs, ys = np.meshgrid(x, x)
    return Surface(folder / "none.h5", "landscape", x, x.copy(), {"train_loss": 1.0 + xs**2 + ys**2},
                   np.ones((points, points), dtype=bool))


CASES = {
    "vtp": ("grid.vtp", {}),
    "vtp-log": ("grid.vtp", {"log": True, "zmax": 2.5}),
    "csv": ("grid.csv", {}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=201, help="side of the square grid (default 201)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per format (default 7)")
    args = parser.parse_args(argv)

    print(f"export_grid, {args.points} x {args.points} = {args.points**2} points, {args.runs} runs each "
          f"(Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()})")
    print(f"{'format':<8} {'median':>9} {'best':>9} {'worst':>9} {'size':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        surface = bowl(args.points, folder)
        for name, (filename, kwargs) in CASES.items():
            times = []
            for run in range(args.runs + 1):
                target = folder / f"{run}-{filename}"
                start = time.perf_counter()
                export_grid(surface, target, **kwargs)
                elapsed = time.perf_counter() - start
                size = target.stat().st_size
                target.unlink()
                if run:  # run 0 is the warm-up
                    times.append(elapsed)
            print(f"{name:<8} {1e3 * statistics.median(times):>7.1f}ms {1e3 * min(times):>7.1f}ms "
                  f"{1e3 * max(times):>7.1f}ms {size / 2**20:>6.2f}MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
