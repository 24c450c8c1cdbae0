"""Reading surface files written by Li et al.'s loss-landscape code, and their reading ours."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from engine.io.info import describe
from engine.io.store import read_directions, read_surface
from engine.jobs.surface import SurfaceJob, SurfaceRequest
from tests.conftest import plain_torch_mse


def known(x: float, y: float) -> float:
    """A loss whose orientation cannot be mistaken: it grows 10x faster along y."""
    return 1.0 + x + 10.0 * (y + 2.0)


def write_li_file(path: Path, x: np.ndarray, y: np.ndarray, unfinished: int = 0) -> None:
    """What their plot_surface.py does: -1 filled (nx, ny) arrays, written through meshgrid(x, y) ravel order."""
    with h5py.File(path, "w") as f:
        f["xcoordinates"] = x
        f["ycoordinates"] = y
        losses = -np.ones((len(x), len(y)))
        accs = -np.ones((len(x), len(y)))
        xm, ym = np.meshgrid(x, y)
        coords = np.c_[xm.ravel(), ym.ravel()]
        for index, (a, b) in enumerate(coords[: len(coords) - unfinished]):
            losses.ravel()[index] = known(a, b)
            accs.ravel()[index] = 50.0
        f["train_loss"] = losses
        f["train_acc"] = accs


@pytest.mark.parametrize("nx,ny", [(5, 5), (7, 3), (3, 6)])
def test_li_surface_is_read_with_value_ji_at_x_i_y_j(tmp_path: Path, nx: int, ny: int) -> None:
    x, y = np.linspace(-1, 1, nx), np.linspace(-0.5, 0.5, ny)
    write_li_file(tmp_path / "li.h5", x, y)
    surface = read_surface(tmp_path / "li.h5")
    assert surface.format == "li2018" and surface.shape == (ny, nx)
    expected = np.array([[known(a, b) for a in x] for b in y])
    np.testing.assert_allclose(surface.values["train_loss"], expected)
    assert surface.done.all()


def test_li_unfinished_points_are_marked_not_done(tmp_path: Path) -> None:
    x, y = np.linspace(-1, 1, 4), np.linspace(-1, 1, 3)
    write_li_file(tmp_path / "li.h5", x, y, unfinished=5)
    surface = read_surface(tmp_path / "li.h5")
    assert int(surface.done.sum()) == 12 - 5
    assert np.isnan(surface.values["train_loss"][~surface.done]).all()
    assert describe(tmp_path / "li.h5")["done"] == 7


def test_li_one_dimensional_file(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "li1d.h5", "w") as f:
        f["xcoordinates"] = np.linspace(0, 1, 6)
        f["train_loss"] = np.arange(1, 7, dtype=float)
    surface = read_surface(tmp_path / "li1d.h5")
    assert surface.y is None and surface.values["train_loss"].tolist() == [1, 2, 3, 4, 5, 6]


def test_our_files_read_the_way_li_plotting_code_reads_theirs(tmp_path, regression_case) -> None:
    """Their plot code: X, Y = meshgrid(x, y); Z = f['train_loss'][:] plotted at (X, Y).

    So Z[j, i] must be the loss at theta0 + X[j, i] dx + Y[j, i] dy, evaluated here directly.
    """
    out = tmp_path / "ours.h5"
    job = SurfaceJob(SurfaceRequest(**regression_case, x="-1:1:5", y="-1:0.5:3", out=str(out)))
    for _ in job.run():
        pass
    with h5py.File(out, "r") as f:  # what plot_2D.plot_2d_contour does
        x = np.array(f["xcoordinates"][:])
        y = np.array(f["ycoordinates"][:])
        X, Y = np.meshgrid(x, y)
        Z = np.array(f["train_loss"][:])
    assert X.shape == Y.shape == Z.shape == (3, 5)
    dx, dy = read_directions(out)
    truth = np.array([[plain_torch_mse(regression_case, (dx, dy), (X[j, i], Y[j, i])) for i in range(5)] for j in range(3)])
    assert len(np.unique(np.round(truth, 6))) == truth.size  # no two points alike: a transposition would show
    np.testing.assert_allclose(Z, truth, rtol=1e-5)
