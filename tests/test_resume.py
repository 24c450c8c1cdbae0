"""A surface survives being killed: the file stays readable and the same command finishes it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.errors import LandscapeError
from engine.numerics.grid import iter_coarse_to_fine
from engine.io.store import read_surface
from engine.jobs.surface import SurfaceJob, SurfaceRequest
from tests.conftest import ROOT, done_count, run_cli_env, slow_case


def cli_args(case: dict, out: Path) -> list[str]:
    return [sys.executable, "-m", "engine", "surface", case["checkpoint"], "--model", case["model"],
            "--model-kwargs", '{"d": 8, "width": 64}', "--data", case["data"], "--x=-1:1:21", "--y=-1:1:21",
            "--strategy", "inplace", "--flush-seconds", "0.02", "--device", "cpu", "--out", str(out)]


def test_sigkilled_run_leaves_a_readable_file_and_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    case = slow_case(tmp_path)
    out = tmp_path / "killed.h5"
    process = subprocess.Popen(cli_args(case, out), cwd=ROOT, env=run_cli_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while done_count(out) < 40 and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = read_surface(out)  # readable after SIGKILL
    saved = int(partial.done.sum())
    assert 0 < saved < partial.done.size, "the run should be killed halfway"
    # Coarse first: what was saved is a prefix of the coarse-to-fine order.
    order = np.concatenate(list(iter_coarse_to_fine(21, 21)))
    assert set(np.flatnonzero(partial.done.ravel())) == set(order[:saved])

    resumed = SurfaceJob(SurfaceRequest(**case, x="-1:1:21", y="-1:1:21", out=str(out), strategy="inplace"))
    resumed.prepare()
    assert resumed.resumed_from == saved
    assert any("resuming" in m for m in resumed.messages)
    for _ in resumed.run():
        pass
    assert resumed.summary().computed == partial.done.size - saved  # only the missing points

    reference = tmp_path / "whole.h5"
    whole = SurfaceJob(SurfaceRequest(**case, x="-1:1:21", y="-1:1:21", out=str(reference), strategy="inplace"))
    for _ in whole.run():
        pass
    np.testing.assert_allclose(read_surface(out).values["train_loss"], read_surface(reference).values["train_loss"],
                               rtol=1e-6)
    assert read_surface(out).done.all()


def test_cancel_between_steps_keeps_every_computed_point_and_resume_finishes(tmp_path, regression_case) -> None:
    out = tmp_path / "c.h5"
    request = SurfaceRequest(**regression_case, x="-1:1:21", y="-1:1:21", out=str(out), strategy="inplace")
    job = SurfaceJob(request)
    steps = 0
    for progress in job.run():
        steps += 1
        job.cancel()
    summary = job.summary()
    assert summary.cancelled and 0 < summary.done < summary.total and steps == 1
    on_disk = read_surface(out)
    assert int(on_disk.done.sum()) == summary.done
    np.testing.assert_array_equal(on_disk.values["train_loss"].ravel()[progress.indices], progress.loss)

    again = SurfaceJob(request)
    for _ in again.run():
        pass
    assert again.summary().computed == summary.total - summary.done and read_surface(out).done.all()


def test_progress_reports_each_new_point_once_and_counts_up_to_total(tmp_path, regression_case) -> None:
    job = SurfaceJob(SurfaceRequest(**regression_case, x="-1:1:9", y="-1:1:9", out=str(tmp_path / "p.h5")))
    seen = []
    last = None
    for progress in job.run():
        seen.extend(progress.indices.tolist())
        assert last is None or progress.done > last.done
        last = progress
    assert sorted(seen) == list(range(81)) and last.done == last.total == 81


def test_rerunning_a_finished_file_computes_nothing(tmp_path, regression_case) -> None:
    request = SurfaceRequest(**regression_case, x="-1:1:5", out=str(tmp_path / "f.h5"))
    for _ in SurfaceJob(request).run():
        pass
    job = SurfaceJob(request)
    assert list(job.run()) == [] and job.summary().done == 5


def test_a_file_made_with_other_settings_is_not_overwritten(tmp_path, regression_case) -> None:
    out = tmp_path / "s.h5"
    for _ in SurfaceJob(SurfaceRequest(**regression_case, x="-1:1:5", out=str(out), seed=1)).run():
        pass
    before = out.read_bytes()
    with pytest.raises(LandscapeError, match="different settings.*seed.*--overwrite"):
        SurfaceJob(SurfaceRequest(**regression_case, x="-1:1:5", out=str(out), seed=2)).prepare()
    with pytest.raises(LandscapeError, match="different grid"):
        SurfaceJob(SurfaceRequest(**regression_case, x="-1:1:7", out=str(out), seed=1)).prepare()
    assert out.read_bytes() == before
    job = SurfaceJob(SurfaceRequest(**regression_case, x="-1:1:5", out=str(out), seed=2, overwrite=True))
    for _ in job.run():
        pass
    assert read_surface(out).attrs["seed"] == 2


def test_a_corrupt_output_file_is_a_clear_error(tmp_path, regression_case) -> None:
    out = tmp_path / "bad.h5"
    out.write_bytes(b"not hdf5 at all" * 10)
    with pytest.raises(LandscapeError, match="not a readable HDF5 file.*--overwrite"):
        SurfaceJob(SurfaceRequest(**regression_case, x="-1:1:5", out=str(out))).prepare()


def test_sigterm_stops_with_a_one_line_message_and_the_same_command_resumes(tmp_path: Path) -> None:
    case = slow_case(tmp_path)
    out = tmp_path / "term.h5"
    process = subprocess.Popen(cli_args(case, out), cwd=ROOT, env=run_cli_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while done_count(out) < 40 and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    saved = int(read_surface(out).done.sum())
    assert process.returncode == 130 and 0 < saved < 441
    last = stderr.strip().splitlines()[-1]
    assert f"{saved} of 441 points are saved" in last and "run the same command again" in last
    rerun = subprocess.run(cli_args(case, out), cwd=ROOT, env=run_cli_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0 and f"resuming {out}: {saved} of 441" in rerun.stderr
    assert read_surface(out).done.all()
