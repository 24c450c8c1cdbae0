"""The Python API: engine.surface(...) runs the CLI's job and returns what reading its file gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engine
from engine.cli import main
from engine.jobs.surface import SurfaceJob, SurfaceRequest
from tests.conftest import run_until

VOLATILE = {"created"}  # what differs between two runs of the same job
# Both runs pin the strategy: auto measures, and on a loaded machine two fresh runs may pick
# different ones, whose values differ in the last bits (a file never mixes them).


def test_engine_surface_writes_the_same_file_as_the_cli(classification_case, tmp_path, capsys) -> None:
    api_out, cli_out = tmp_path / "api.h5", tmp_path / "cli.h5"
    s = engine.surface(checkpoint=classification_case["checkpoint"], model=classification_case["model"],
                       data=classification_case["data"], x="-1:1:7", y="-0.5:0.5:5", seed=3, device="cpu",
                       strategy="inplace", out=api_out, progress=False)
    assert main(["surface", classification_case["checkpoint"], "--model", classification_case["model"], "--data",
                 classification_case["data"], "--x=-1:1:7", "--y=-0.5:0.5:5", "--seed", "3", "--device", "cpu",
                 "--strategy", "inplace", "--out", str(cli_out)]) == 0
    capsys.readouterr()
    from_cli = engine.open(cli_out)
    assert s.values["train_loss"].shape == (5, 7) and s.x.shape == (7,) and s.y.shape == (5,)
    assert set(s.values) == set(from_cli.values) == {"train_loss", "train_acc"}
    for name in s.values:
        np.testing.assert_array_equal(s.values[name], from_cli.values[name])  # the same bits
    np.testing.assert_array_equal(s.done, from_cli.done)
    mine = {k: v for k, v in s.attrs.items() if k not in VOLATILE}
    theirs = {k: v for k, v in from_cli.attrs.items() if k not in VOLATILE}
    assert mine == theirs
    assert s.attrs["seed"] == 3 and s.path == api_out


def test_without_out_a_temporary_file_is_written_and_axes_may_be_tuples(regression_case) -> None:
    s = engine.surface(checkpoint=regression_case["checkpoint"], model=regression_case["model"],
                       data=regression_case["data"], x=(-1, 1, 5), progress=False)
    assert s.path.is_file() and s.dimensions == 1 and s.done.all()
    np.testing.assert_array_equal(s.x, np.linspace(-1, 1, 5))
    reopened = engine.open(s.path)
    np.testing.assert_array_equal(reopened.values["train_loss"], s.values["train_loss"])


def test_calling_again_resumes_a_partial_file(regression_case, tmp_path) -> None:
    out = tmp_path / "s.h5"
    saved = run_until(SurfaceRequest(checkpoint=regression_case["checkpoint"], model=regression_case["model"],
                                     data=regression_case["data"], x="-1:1:9", y="-1:1:9", out=str(out),
                                     flush_seconds=1e-6), 20).summary().done
    resumed = SurfaceJob(SurfaceRequest(checkpoint=regression_case["checkpoint"], model=regression_case["model"],
                                        data=regression_case["data"], x="-1:1:9", y="-1:1:9", out=str(out)))
    summary = engine.run(resumed, progress=False)
    assert summary.resumed_from == saved and summary.computed == 81 - saved
    s = engine.surface(checkpoint=regression_case["checkpoint"], model=regression_case["model"],
                       data=regression_case["data"], x="-1:1:9", y="-1:1:9", out=out, progress=False)
    assert s.done.all()


def test_errors_are_landscape_errors_with_one_line(regression_case, tmp_path) -> None:
    with pytest.raises(engine.LandscapeError) as info:
        engine.surface(checkpoint=tmp_path / "missing.pt", data=regression_case["data"], x="-1:1:3",
                       out=tmp_path / "s.h5", progress=False)
    assert "no such checkpoint" in str(info.value) and "\n" not in str(info.value)
    assert not Path(tmp_path / "s.h5").exists()
