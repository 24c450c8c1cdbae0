"""Grid export: HDF5 (write_surface), CSV and ParaView .vtp, and ``landscape export``."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from engine.cli import main
from engine.errors import LandscapeError
from engine.io.export import export_grid, write_csv, write_vtp
from engine.io.store import Surface, read_directions, read_surface, write_surface
from engine.jobs.surface import SurfaceJob, SurfaceRequest
from tests.test_li_format import known, write_li_file


def run_job(case: dict[str, str], out: Path, **kwargs) -> Path:
    job = SurfaceJob(SurfaceRequest(**case, out=str(out), **kwargs))
    for _ in job.run():
        pass
    return out


def assert_same_surface(a: Surface, b: Surface, *, attrs: bool = True) -> None:
    np.testing.assert_array_equal(a.x, b.x)
    if a.y is None:
        assert b.y is None
    else:
        np.testing.assert_array_equal(a.y, b.y)
    assert list(a.values) == list(b.values)
    for name in a.values:
        np.testing.assert_array_equal(a.values[name], b.values[name])  # NaN == NaN here
    np.testing.assert_array_equal(a.done, b.done)
    assert (a.trajectory is None) == (b.trajectory is None)
    if a.trajectory is not None:
        for axis in ("x", "y"):
            np.testing.assert_array_equal(a.trajectory[axis], b.trajectory[axis])
        assert a.trajectory_names == b.trajectory_names
    if attrs:
        assert a.attrs == b.attrs


@pytest.fixture
def line(tmp_path, regression_case) -> Path:
    return run_job(regression_case, tmp_path / "line.h5", x="-1:1:7")


@pytest.fixture
def plane(tmp_path, regression_case) -> Path:
    return run_job(regression_case, tmp_path / "plane.h5", x="-1:1:5", y="-0.5:0.5:4")


@pytest.fixture
def pca_plane(tmp_path, regression_case) -> Path:
    """A real PCA surface: it has a trajectory group and an array attribute (explained_variance_ratio)."""
    state = torch.load(regression_case["checkpoint"])
    folder = tmp_path / "trajectory"
    folder.mkdir()
    torch.manual_seed(3)
    for epoch in range(4):
        torch.save({k: v + 0.1 * epoch * torch.randn_like(v) for k, v in state.items()}, folder / f"epoch_{epoch}.pt")
    return run_job(regression_case, tmp_path / "pca.h5", x="-1:1:4", y="-1:1:3",
                   directions="pca", trajectory=str(folder))


@pytest.fixture
def partial(tmp_path, regression_case) -> Path:
    """A cancelled 6 x 5 run (18 points done, 6 full quads) where computed point (x[1], y[1]) has a NaN loss."""
    out = tmp_path / "partial.h5"
    job = SurfaceJob(SurfaceRequest(**regression_case, out=str(out), x="-1:1:6", y="-1:1:5", flush_seconds=1e-9))
    for progress in job.run():  # one point per step (coarse to fine): stop after 18 of 30
        if progress.done == 18:
            job.cancel()
    with h5py.File(out, "r+") as handle:
        done = handle["done"][()].astype(bool)
        assert done.sum() == 18 and done[1, 1]
        handle["train_loss"][1, 1] = np.nan  # a diverged point: computed, NaN
    return out


# -- HDF5 -----------------------------------------------------------------------------------
def test_hdf5_round_trip_1d_keeps_values_done_coords_attrs_and_directions(line, tmp_path) -> None:
    original = read_surface(line)
    copy = write_surface(tmp_path / "copy.h5", original)
    assert_same_surface(original, read_surface(copy))
    for a, b in zip(read_directions(line), read_directions(copy)):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_hdf5_round_trip_2d_pca_keeps_trajectory_and_array_attrs(pca_plane, tmp_path) -> None:
    original = read_surface(pca_plane)
    assert original.trajectory is not None and isinstance(original.attrs["explained_variance_ratio"], list)
    copy = export_grid(original, tmp_path / "copy.hdf5")
    assert_same_surface(original, read_surface(copy))
    assert len(read_directions(copy)) == 2


def test_hdf5_round_trip_partial_grid_keeps_nan_and_not_done(partial, tmp_path) -> None:
    original = read_surface(partial)
    assert not original.done.all() and np.isnan(original.values["train_loss"][original.done]).any()
    again = read_surface(write_surface(tmp_path / "copy.h5", original))
    assert_same_surface(original, again)
    with h5py.File(tmp_path / "copy.h5", "r") as handle:
        assert handle["done"].dtype == np.uint8 and handle["train_loss"].shape == (5, 6)


def test_hdf5_li_file_converts_to_landscape_format_with_converted_from(tmp_path) -> None:
    x, y = np.linspace(-1, 1, 5), np.linspace(-0.5, 0.5, 3)
    write_li_file(tmp_path / "li.h5", x, y, unfinished=4)
    original = read_surface(tmp_path / "li.h5")
    out = write_surface(tmp_path / "ours.h5", original)
    with h5py.File(out, "r") as handle:
        assert handle.attrs["format"] == "landscape" and handle.attrs["format_version"] == 1
        assert handle["train_loss"].shape == (3, 5) and handle["done"].dtype == np.uint8
        source = json.loads(handle.attrs["converted_from"])
    assert source == {"format": "li2018", "path": str((tmp_path / "li.h5").resolve())}
    again = read_surface(out)
    assert again.format == "landscape"
    assert_same_surface(original, again, attrs=False)
    assert again.values["train_loss"][0, 0] == known(x[0], y[0])
    assert set(original.attrs.items()) <= set(again.attrs.items())
    # and a second round trip of the converted file is exact
    assert_same_surface(again, read_surface(write_surface(tmp_path / "twice.h5", again)))


def test_hdf5_given_directions_are_written(tmp_path) -> None:
    write_li_file(tmp_path / "li.h5", np.linspace(-1, 1, 3), np.linspace(-1, 1, 2))
    dirs = [{"w": torch.ones(2, 3)}, {"w": torch.zeros(2, 3)}]
    out = write_surface(tmp_path / "ours.h5", read_surface(tmp_path / "li.h5"), dirs)
    assert [torch.equal(d["w"], e["w"]) for d, e in zip(read_directions(out), dirs)] == [True, True]


def test_hdf5_refuses_to_overwrite_its_source_and_leaves_it_unchanged(plane) -> None:
    before = plane.read_bytes()
    with pytest.raises(LandscapeError, match="read from"):
        write_surface(plane, read_surface(plane))
    with pytest.raises(LandscapeError, match="read from"):
        export_grid(read_surface(plane), plane.parent / "." / plane.name)
    assert plane.read_bytes() == before
    assert not list(plane.parent.glob(".*.tmp"))


# -- CSV ------------------------------------------------------------------------------------
def test_csv_rows_hold_grid_values_at_their_x_y_x_fastest(plane, tmp_path) -> None:
    surface = read_surface(plane)
    out = write_csv(surface, tmp_path / "grid.csv")
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["x", "y", "train_loss", "done"]
    assert len(rows) == 1 + 4 * 5
    for k, row in enumerate(rows[1:]):
        j, i = divmod(k, 5)
        assert float(row[0]) == surface.x[i] and float(row[1]) == surface.y[j]
        assert float(row[2]) == surface.values["train_loss"][j, i]  # exact: repr round-trips
        assert row[3] == "1"


def test_csv_not_computed_is_empty_and_computed_nan_is_nan(partial, tmp_path) -> None:
    surface = read_surface(partial)
    rows = list(csv.reader(export_grid(surface, tmp_path / "grid.CSV").open()))[1:]
    loss, done = surface.values["train_loss"].ravel(), surface.done.ravel()
    for row, value, is_done in zip(rows, loss, done):
        assert row[-1] == ("1" if is_done else "0")
        if not is_done:
            assert row[2] == ""
        elif np.isnan(value):
            assert row[2] == "nan"
        else:
            assert float(row[2]) == value
    assert sum(r[2] == "nan" for r in rows) == 1


def test_csv_1d_header_and_values(line, tmp_path) -> None:
    surface = read_surface(line)
    rows = list(csv.reader(write_csv(surface, tmp_path / "line.csv").open()))
    assert rows[0] == ["x", "train_loss", "done"]
    np.testing.assert_array_equal([float(r[0]) for r in rows[1:]], surface.x)
    np.testing.assert_array_equal([float(r[1]) for r in rows[1:]], surface.values["train_loss"])


# -- VTP ------------------------------------------------------------------------------------
def parse_vtp(path: Path) -> dict:
    root = ET.parse(path).getroot()
    assert root.tag == "VTKFile" and root.attrib["type"] == "PolyData"
    piece = root.find("PolyData/Piece")

    def array(parent: str, name: str) -> np.ndarray:
        for element in piece.find(parent).findall("DataArray"):
            if element.attrib["Name"] == name:
                return np.array((element.text or "").split(), dtype=float)
        raise AssertionError(f"no {parent}/{name}")

    result = {"counts": {k: int(v) for k, v in piece.attrib.items()}, "array": array}
    result["points"] = array("Points", "Points").reshape(-1, 3)
    return result


def test_vtp_parses_and_points_and_values_equal_the_grid(plane, tmp_path) -> None:
    surface = read_surface(plane)
    vtp = parse_vtp(export_grid(surface, tmp_path / "grid.vtp"))
    ny, nx = surface.shape
    assert vtp["counts"]["NumberOfPoints"] == nx * ny
    assert vtp["counts"]["NumberOfPolys"] == (nx - 1) * (ny - 1)
    xs, ys = np.meshgrid(surface.x, surface.y)
    loss = surface.values["train_loss"]
    np.testing.assert_array_equal(vtp["points"], np.c_[xs.ravel(), ys.ravel(), loss.ravel()])
    np.testing.assert_array_equal(vtp["array"]("PointData", "train_loss"), loss.ravel())
    np.testing.assert_array_equal(vtp["array"]("PointData", "zvalue"), loss.ravel())
    connectivity = vtp["array"]("Polys", "connectivity").astype(int).reshape(-1, 4)
    assert connectivity[0].tolist() == [0, 1, nx + 1, nx]
    assert vtp["array"]("Polys", "offsets").astype(int).tolist() == list(range(4, 4 * len(connectivity) + 1, 4))
    assert len(vtp["array"]("CellData", "averaged zvalue")) == len(connectivity)


def test_vtp_non_computed_and_nan_points_are_excluded_from_points_and_polys(partial, tmp_path) -> None:
    surface = read_surface(partial)
    vtp = parse_vtp(write_vtp(surface, tmp_path / "partial.vtp"))
    loss = surface.values["train_loss"]
    valid = surface.done & np.isfinite(loss)
    assert vtp["counts"]["NumberOfPoints"] == valid.sum()
    assert np.isfinite(vtp["points"]).all()
    xs, ys = np.meshgrid(surface.x, surface.y)
    np.testing.assert_array_equal(vtp["points"], np.c_[xs[valid], ys[valid], loss[valid]])
    quads_ok = valid[:-1, :-1] & valid[:-1, 1:] & valid[1:, :-1] & valid[1:, 1:]
    connectivity = vtp["array"]("Polys", "connectivity").astype(int)
    assert vtp["counts"]["NumberOfPolys"] == quads_ok.sum() == len(connectivity) // 4
    done = surface.done
    assert 0 < quads_ok.sum() < (done[:-1, :-1] & done[:-1, 1:] & done[1:, :-1] & done[1:, 1:]).sum()
    assert (connectivity < valid.sum()).all()


def test_vtp_polys_skip_exactly_the_quads_touching_a_missing_point(plane, tmp_path) -> None:
    surface = read_surface(plane)
    surface.done[1, 2] = False  # an interior point: its four quads go, the other 8 stay
    vtp = parse_vtp(write_vtp(surface, tmp_path / "hole.vtp"))
    assert vtp["counts"]["NumberOfPoints"] == 19 and vtp["counts"]["NumberOfPolys"] == 12 - 4
    used = vtp["points"][vtp["array"]("Polys", "connectivity").astype(int)]
    assert not ((used[:, 0] == surface.x[2]) & (used[:, 1] == surface.y[1])).any()


def test_vtp_log_and_zmax_set_the_height_but_keep_the_raw_values(plane, tmp_path) -> None:
    surface = read_surface(plane)
    loss = surface.values["train_loss"].ravel()
    zmax = float(np.median(loss))
    vtp = parse_vtp(write_vtp(surface, tmp_path / "log.vtp", log=True, zmax=zmax))
    np.testing.assert_allclose(vtp["points"][:, 2], np.log10(np.minimum(loss, zmax)), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(vtp["array"]("PointData", "train_loss"), loss)


def test_vtp_1d_is_polylines_broken_at_missing_points(line, tmp_path) -> None:
    surface = read_surface(line)
    surface.done[3] = False
    vtp = parse_vtp(export_grid(surface, tmp_path / "line.vtp"))
    assert vtp["counts"]["NumberOfLines"] == 2 and vtp["counts"]["NumberOfPolys"] == 0
    keep = np.arange(7) != 3
    np.testing.assert_array_equal(
        vtp["points"], np.c_[surface.x[keep], np.zeros(6), surface.values["train_loss"][keep]]
    )
    assert vtp["array"]("Lines", "connectivity").astype(int).tolist() == [0, 1, 2, 3, 4, 5]
    assert vtp["array"]("Lines", "offsets").astype(int).tolist() == [3, 6]


def test_vtp_unknown_metric_names_the_available_ones(plane, tmp_path) -> None:
    with pytest.raises(LandscapeError, match="train_loss"):
        export_grid(read_surface(plane), tmp_path / "g.vtp", metric="test_acc")


# -- suffixes, CLI ----------------------------------------------------------------------------
def test_unknown_suffix_is_an_error_naming_the_supported_ones(plane, tmp_path) -> None:
    with pytest.raises(LandscapeError) as info:
        export_grid(read_surface(plane), tmp_path / "grid.xlsx")
    assert all(s in str(info.value) for s in (".h5", ".hdf5", ".csv", ".vtp"))
    assert not (tmp_path / "grid.xlsx").exists()


def test_log_or_zmax_with_csv_is_an_error(plane, tmp_path) -> None:
    with pytest.raises(LandscapeError, match=".vtp"):
        export_grid(read_surface(plane), tmp_path / "grid.csv", log=True)


def test_cli_export_exits_0_and_writes_each_format(plane, tmp_path, capsys) -> None:
    for name in ("g.vtp", "g.csv", "g.h5"):
        out = tmp_path / name
        argv = ["export", str(plane), str(out)] + (["--log", "--zmax", "10"] if name.endswith(".vtp") else [])
        assert main(argv) == 0
        printed = capsys.readouterr().out
        assert printed.startswith(f"wrote {out}:") and printed.count("\n") == 1
    assert_same_surface(read_surface(plane), read_surface(tmp_path / "g.h5"))


@pytest.mark.parametrize("args,phrase", [
    (["corrupt.h5", "o.csv"], "not a readable HDF5 file"),
    (["gone.h5", "o.csv"], "no such file"),
    (["plane.h5", "o.txt"], ".vtp"),
    (["plane.h5", "o.vtp", "--metric", "nope"], "nope"),
    (["plane.h5", "o.csv", "--zmax", "3"], ".vtp"),
    (["plane.h5", "plane.h5"], "read from"),
])
def test_cli_export_error_is_one_line(plane, tmp_path, capsys, args, phrase) -> None:
    (tmp_path / "corrupt.h5").write_bytes(b"this is not HDF5 " * 64)
    code = main(["export", *(str(tmp_path / a) if a.endswith(("h5", "csv", "txt", "vtp")) else a for a in args)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("landscape: error: ") and "Traceback" not in err
    assert phrase in err
    assert not any((tmp_path / name).exists() for name in ("o.csv", "o.txt", "o.vtp"))
