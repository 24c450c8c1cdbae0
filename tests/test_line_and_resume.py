"""Slice lines computed by the engine, and surfaces resumed from their file's own record."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.errors import LandscapeError
from engine.io.store import read_surface
from engine.jobs.surface import SurfaceJob, SurfaceRequest, line_request, resume_request


def _surface(case: dict[str, str], out: Path, **extra) -> SurfaceRequest:
    request = SurfaceRequest(checkpoint=case["checkpoint"], model=case["model"], data=case["data"],
                             x="-1:1:9", y="-0.5:0.5:5", out=str(out), **extra)
    list(SurfaceJob(request).run())
    return request


def test_line_along_the_diagonal_equals_the_grid_at_its_nodes(classification_case, tmp_path):
    _surface(classification_case, tmp_path / "s.h5")
    grid = read_surface(tmp_path / "s.h5")
    # From node (0, 0) to node (8, 4): passes through (2k, k) for k = 0..4.
    request = line_request(tmp_path / "s.h5", (-1.0, -0.5), (1.0, 0.5), points=5)
    list(SurfaceJob(request).run())
    line = read_surface(request.out)
    assert line.dimensions == 1 and line.done.all()
    expected = [grid.values["train_loss"][k, 2 * k] for k in range(5)]
    np.testing.assert_allclose(line.values["train_loss"], expected, rtol=1e-6)
    np.testing.assert_allclose(line.values["train_acc"], [grid.values["train_acc"][k, 2 * k] for k in range(5)])
    assert line.attrs["directions"] == "file"


def test_same_line_again_reopens_the_same_file(regression_case, tmp_path):
    _surface(regression_case, tmp_path / "s.h5")
    first = line_request(tmp_path / "s.h5", (0.1, 0.2), (0.3, -0.4), points=7)
    again = line_request(tmp_path / "s.h5", (0.1, 0.2), (0.3, -0.4), points=7)
    other = line_request(tmp_path / "s.h5", (0.1, 0.2), (0.3, -0.41), points=7)
    assert first.out == again.out != other.out
    list(SurfaceJob(first).run())
    job = SurfaceJob(again)
    list(job.run())
    assert job.resumed_from == 7 and job.computed == 0


def test_resume_request_finishes_a_cancelled_surface_with_identical_values(regression_case, tmp_path):
    full = _surface(regression_case, tmp_path / "full.h5")
    partial = replace(full, out=str(tmp_path / "partial.h5"), flush_seconds=1e-6)
    job = SurfaceJob(partial)
    for step in job.run():
        if step.done >= 6:
            job.cancel()
    assert 0 < job.summary().done < 45
    request = resume_request(tmp_path / "partial.h5")
    assert (request.x, request.y, request.seed, request.norm) == ("-1.0:1.0:9", "-0.5:0.5:5", 0, "filter")
    resumed = SurfaceJob(request)
    list(resumed.run())
    assert resumed.resumed_from == job.summary().done
    np.testing.assert_allclose(read_surface(tmp_path / "partial.h5").values["train_loss"],
                               read_surface(tmp_path / "full.h5").values["train_loss"], rtol=1e-6)


def test_line_needs_a_2d_surface_file(regression_case, tmp_path):
    with pytest.raises(LandscapeError, match="2D surface"):
        request = SurfaceRequest(checkpoint=regression_case["checkpoint"], model=regression_case["model"],
                                 data=regression_case["data"], x="0:1:5", out=str(tmp_path / "l.h5"),
                                 line=(0.0, 0.0, 1.0, 1.0))
        SurfaceJob(request).prepare()
    one_d = SurfaceRequest(checkpoint=regression_case["checkpoint"], model=regression_case["model"],
                           data=regression_case["data"], x="-1:1:5", out=str(tmp_path / "one.h5"))
    list(SurfaceJob(one_d).run())
    with pytest.raises(LandscapeError, match="1D surface"):
        line_request(tmp_path / "one.h5", (0, 0), (1, 1))


def test_cli_line_flag_matches_line_request(classification_case, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT, run_cli_env

    _surface(classification_case, tmp_path / "s.h5")
    out = tmp_path / "cli_line.h5"
    result = subprocess.run(
        [sys.executable, "-m", "engine", "surface", classification_case["checkpoint"], "--model",
         classification_case["model"], "--data", classification_case["data"], "--directions", str(tmp_path / "s.h5"),
         "--line=-1,-0.5:1,0.5", "--x=0:1:5", "--device", "cpu", "--out", str(out)],
        cwd=ROOT, env=run_cli_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    request = line_request(tmp_path / "s.h5", (-1.0, -0.5), (1.0, 0.5), points=5)
    list(SurfaceJob(request).run())
    np.testing.assert_allclose(read_surface(out).values["train_loss"], read_surface(request.out).values["train_loss"],
                               rtol=1e-6)
    bad = subprocess.run([sys.executable, "-m", "engine", "surface", classification_case["checkpoint"], "--model",
                          classification_case["model"], "--data", classification_case["data"], "--line", "1,2",
                          "--directions", str(tmp_path / "s.h5"), "--x=0:1:5", "--device", "cpu",
                          "--out", str(tmp_path / "b.h5")],
                         cwd=ROOT, env=run_cli_env(), capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "X0,Y0:X1,Y1" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
