"""The job model and the contracts around it: --json, one writer per file, cancel during set-up,
derived files that resume, absolute provenance, and grids too large for the disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from engine.cancel import Cancelled, cancellable
from engine.cli import main
from engine.errors import LandscapeError
from engine.io.checkpoints import file_sha256
from engine.io.references import resolve
from engine.io.store import read_surface, writer_of
from engine.jobs.base import CALIBRATING, COMPUTING, JobState
from engine.jobs.registry import job_for, resume_request
from engine.jobs.surface import SurfaceJob, SurfaceRequest, line_request
from engine.jobs.tiles import SurfaceTask
from tests.conftest import (
    MODELS, PEAK_MEMORY_SOURCE, ROOT, done_count, needs_proc_status, run_cli_env, run_until, slow_case,
)


def request(case: dict, out: Path, **extra) -> SurfaceRequest:
    return SurfaceRequest(checkpoint=case["checkpoint"], model=case["model"], data=case["data"], x="-1:1:9",
                          y="-0.5:0.5:5", out=str(out), **extra)


def cli(case: dict, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "engine", "surface", case["checkpoint"], "--model", case["model"],
            "--model-kwargs", '{"d": 8, "width": 64}', "--data", case["data"], "--x=-1:1:21", "--y=-1:1:21",
            "--strategy", "inplace", "--flush-seconds", "0.02", "--device", "cpu", "--out", str(out), *extra]


# -- the life cycle ---------------------------------------------------------------------------------
def test_states_and_phases_of_a_surface_job(regression_case, tmp_path) -> None:
    job = job_for(request(regression_case, tmp_path / "s.h5"))
    assert isinstance(job, SurfaceJob) and job.state is JobState.NEW and not job.has_summary
    phases = [step.phase for step in job.run()]
    assert job.state is JobState.FINISHED
    assert phases[0] == CALIBRATING and set(phases[1:]) == {COMPUTING}  # auto measures first, then computes
    summary = job.summary()
    assert summary.done == summary.total == 45 and not summary.cancelled and summary.seconds > 0
    assert summary.details["strategy"] in ("inplace", "vmap")
    assert read_surface(tmp_path / "s.h5").attrs["evaluation_strategy"] == summary.details["strategy"]


def test_cancel_before_or_during_prepare_leaves_no_file_and_no_lock(regression_case, tmp_path) -> None:
    out = tmp_path / "s.h5"
    job = SurfaceJob(request(regression_case, out))
    job.cancel()
    with pytest.raises(Cancelled):
        job.prepare()
    assert job.state is JobState.CANCELLED and not out.exists() and writer_of(out) is None
    assert list(SurfaceJob(request(regression_case, out)).run())  # the file is free for the next job

    # Cancelled while its data loads (the user closes the window during set-up):
    hook = tmp_path / "slow_data.py"
    hook.write_text("import numpy as np\nJOB = []\n"
                    f"def load():\n    JOB[0].cancel()\n    d = np.load({regression_case['data']!r})\n"
                    "    return d['x'], d['y']\n")
    job = SurfaceJob(request({**regression_case, "data": f"{hook}:load"}, tmp_path / "t.h5"))
    resolve(f"{hook}:load").__globals__["JOB"].append(job)  # the module Landscape will import and call
    with pytest.raises(Cancelled):
        job.prepare()
    assert not (tmp_path / "t.h5").exists() and writer_of(tmp_path / "t.h5") is None


def test_hashing_a_checkpoint_stops_when_its_job_is_cancelled(tmp_path) -> None:
    big = tmp_path / "big.pt"
    big.write_bytes(os.urandom(4 << 20))
    with cancellable(lambda: True), pytest.raises(Cancelled):
        file_sha256(big)
    with cancellable(lambda: False):
        assert len(file_sha256(big)) == 64


def test_closing_a_job_mid_run_keeps_every_point_and_releases_the_lock(regression_case, tmp_path) -> None:
    out = tmp_path / "s.h5"
    job = SurfaceJob(request(regression_case, out, flush_seconds=10.0))  # no flush would happen on its own
    steps = job.run()
    for step in steps:
        if step.done >= 10:
            break
    steps.close()  # the caller stops iterating
    assert job.state is JobState.CANCELLED and writer_of(out) is None
    assert int(read_surface(out).done.sum()) == job.summary().done >= 10


# -- --json ----------------------------------------------------------------------------------------
def test_json_is_exactly_one_object_on_stdout_with_the_promised_keys(regression_case, tmp_path, capsys) -> None:
    out = tmp_path / "s.h5"
    args = ["surface", regression_case["checkpoint"], "--model", regression_case["model"], "--data",
            regression_case["data"], "--x=-1:1:7", "--y=-1:1:3", "--out", str(out), "--json"]
    assert main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # the whole of stdout is one JSON object
    assert captured.out.count("\n") == 1
    assert summary["file"] == str(out) and summary["kind"] == "surface" and summary["shape"] == [3, 7]
    assert summary["done"] == summary["total"] == 21 and summary["complete"] and not summary["cancelled"]
    values = read_surface(out).values["train_loss"]
    assert summary["metrics"]["train_loss"]["min"] == pytest.approx(float(values.min()), rel=0, abs=0)
    assert summary["metrics"]["train_loss"]["max"] == float(values.max())
    assert 0 < summary["seconds"] < 600 and summary["strategy"] in ("inplace", "vmap", "auto")
    assert main(args) == 0  # resumed: nothing left to compute
    again = json.loads(capsys.readouterr().out)
    assert again["computed"] == 0 and again["resumed_from"] == 21


def test_json_seconds_exclude_interpreter_start_up(regression_case, tmp_path) -> None:
    out = tmp_path / "s.h5"
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "engine", "surface", regression_case["checkpoint"], "--model",
                             regression_case["model"], "--data", regression_case["data"], "--x=-1:1:3",
                             "--device", "cpu", "--out", str(out), "--json"],
                            cwd=ROOT, env=run_cli_env(), capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert 0 < summary["seconds"] < wall  # the run's own time is part of the process's, never more


# -- one writer per file ------------------------------------------------------------------------------
def test_a_second_writer_with_overwrite_is_refused_while_the_first_runs(tmp_path) -> None:
    case = slow_case(tmp_path)
    out = tmp_path / "s.h5"
    big = [a if a != "--y=-1:1:21" else "--y=-1:1:201" for a in cli(case, out)]  # long enough to be caught running
    first = subprocess.Popen(big, cwd=ROOT, env=run_cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.time() + 120
    while done_count(out) < 5 and time.time() < deadline and first.poll() is None:
        time.sleep(0.01)
    second = subprocess.run(cli(case, out, "--overwrite", "--seed", "1", "--max-samples", "300"), cwd=ROOT,
                            env=run_cli_env(), capture_output=True, text=True, timeout=300)
    first.send_signal(signal.SIGTERM)
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 130, first_err  # it was still running when the second one was refused
    assert second.returncode == 2 and second.stdout == ""
    assert second.stderr.count("\n") == 1
    assert f"{out} is being written by process {first.pid}" in second.stderr
    surface = read_surface(out)  # the first run's file, consistent with its own settings
    assert surface.attrs["seed"] == 0 and surface.attrs["data_samples"] == 4000 and surface.done.any()
    assert writer_of(out) is None


# -- derived files and provenance -------------------------------------------------------------------------
def test_a_file_derived_from_a_partial_surface_resumes_after_the_source_gains_points(regression_case, tmp_path):
    source = tmp_path / "s.h5"
    # One strategy for both: auto may pick differently for each, and the values would differ in the last bits.
    run_until(request(regression_case, source, flush_seconds=1e-6, strategy="inplace"), 10)
    derived = tmp_path / "d.h5"
    run_until(request(regression_case, derived, directions=str(source), flush_seconds=1e-6, strategy="inplace"), 10)
    line = line_request(source, (-1.0, -0.5), (1.0, 0.5), points=9)
    run_until(line, 3)

    list(SurfaceJob(resume_request(source)).run())  # the source gains its missing points
    for path in (derived, Path(line.out)):
        resumed = SurfaceJob(resume_request(path))
        list(resumed.run())
        assert resumed.resumed_from > 0 and read_surface(path).done.all()
    np.testing.assert_array_equal(read_surface(derived).values["train_loss"],
                                  read_surface(source).values["train_loss"])


def test_paths_are_recorded_absolute_so_a_pca_surface_resumes_from_another_folder(tmp_path, monkeypatch) -> None:
    import tests.reference_models as zoo

    run = tmp_path / "run"
    (run / "trajectory").mkdir(parents=True)
    torch.manual_seed(0)
    model = zoo.mlp(d=4, width=8)
    for epoch in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        torch.save(model.state_dict(), run / "trajectory" / f"epoch_{epoch}.pt")
    torch.save(model.state_dict(), run / "model.pt")
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    np.savez(run / "data.npz", x=x, y=x[:, :1])
    monkeypatch.chdir(run)
    run_until(SurfaceRequest(checkpoint="model.pt", model=f"{MODELS}:mlp", model_kwargs={"d": 4, "width": 8},
                             data="data.npz", directions="pca", trajectory="trajectory", x="-1:1:5",
                             y="-1:1:5", out="pca.h5", flush_seconds=1e-6), 5)
    attrs = read_surface(run / "pca.h5").attrs
    for key in ("checkpoint", "data", "directions_source"):
        assert Path(attrs[key]).is_absolute(), (key, attrs[key])
    assert attrs["model"].split(":")[0] == str(Path(MODELS).resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    resumed = SurfaceJob(resume_request(run / "pca.h5"))
    list(resumed.run())
    assert resumed.resumed_from >= 5 and read_surface(run / "pca.h5").done.all()


def test_a_tile_rebuilt_in_another_process_gives_the_same_bits(regression_case, tmp_path) -> None:
    out = tmp_path / "s.h5"
    job = SurfaceJob(request(regression_case, out, strategy="inplace"))
    job.prepare()
    task = job.task()
    list(job.run())
    assert isinstance(task, SurfaceTask) and task.strategy == "inplace"
    code = ("import pickle, sys, numpy as np\nfrom engine.jobs.tiles import TileFunction\n"
            "task = pickle.loads(sys.stdin.buffer.read())\ntile = TileFunction.from_task(task)\n"
            "coords = np.array([[-1.0, -0.5], [0.25, 0.0], [1.0, 0.5]])\n"
            "sys.stdout.buffer.write(pickle.dumps(tile(coords)['train_loss']))\n")
    import pickle

    result = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(task), cwd=ROOT, env=run_cli_env(),
                            capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    remote = pickle.loads(result.stdout)
    grid = read_surface(out).values["train_loss"]
    np.testing.assert_array_equal(remote, [grid[0, 0], grid[2, 5], grid[4, 8]])  # bit for bit


# -- sizes ---------------------------------------------------------------------------------------------
def test_a_grid_whose_file_cannot_fit_the_disk_is_refused_at_once(regression_case, tmp_path, capsys) -> None:
    out = tmp_path / "huge.h5"
    code = main(["surface", regression_case["checkpoint"], "--model", regression_case["model"], "--data",
                 regression_case["data"], "--x=-1:1:100000000", "--y=-1:1:100000000", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "a grid of 10,000,000,000,000,000 points needs" in err and "free" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz", "mlp.pt"]  # no file, temp or lock left


@needs_proc_status
def test_a_hundred_million_point_line_starts_without_building_its_order_in_memory(regression_case, tmp_path) -> None:
    """The order is generated lazily: the job prepares and computes its first points in bounded memory."""
    code = PEAK_MEMORY_SOURCE + f"""
from engine.jobs.surface import SurfaceJob, SurfaceRequest
job = SurfaceJob(SurfaceRequest(checkpoint={regression_case['checkpoint']!r}, model={regression_case['model']!r},
                                data={regression_case['data']!r}, x="-1:1:100000000", out={str(tmp_path / 'line.h5')!r},
                                strategy="inplace"))
steps = job.run()
for step in steps:
    if step.done >= 3:
        break
steps.close()
print(job.summary().done, peak_bytes() // 2**20)
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=run_cli_env(), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    done, peak_mib = (int(v) for v in result.stdout.split())
    print("PEAK", peak_mib)
    assert done >= 3
    assert peak_mib < 2000, f"peak memory {peak_mib} MiB for a file of 1.7 GB (1.2 GB measured: the 0.8 GB axis is the floor)"


def test_sigterm_of_a_json_run_still_prints_its_summary(tmp_path) -> None:
    case = slow_case(tmp_path)
    out = tmp_path / "s.h5"
    # 81 x 81: on an idle machine the 21 x 21 grid could finish before the poll below saw 20 points
    process = subprocess.Popen(cli(case, out, "--json", "--x=-1:1:81", "--y=-1:1:81"), cwd=ROOT, env=run_cli_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while done_count(out) < 20 and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before it could be signalled; make the grid larger"
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=120)
    summary = json.loads(stdout)
    assert process.returncode == 130 and summary["cancelled"] and 0 < summary["done"] < summary["total"]
    assert summary["done"] == int(read_surface(out).done.sum())


def test_registry_resumes_by_kind_and_refuses_what_it_cannot(tmp_path) -> None:
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle.attrs.update({"format": "landscape", "format_version": 1, "kind": "study"})
    with pytest.raises(LandscapeError, match="holds a 'study' result, which this Landscape cannot resume"):
        resume_request(other)


def test_batch_size_and_memory_budget_are_recorded_and_a_resume_uses_them(regression_case, tmp_path, capsys) -> None:
    out = tmp_path / "s.h5"
    args = ["surface", regression_case["checkpoint"], "--model", regression_case["model"], "--data",
            regression_case["data"], "--x=-1:1:9", "--y=-0.5:0.5:5", "--strategy", "inplace", "--batch-size", "24",
            "--memory-budget", "64MiB", "--out", str(out), "--flush-seconds", "0.000001"]
    run_until(request(regression_case, out, batch_size=24, memory_budget=64 * 2**20, flush_seconds=1e-6,
                      strategy="inplace"), 4)
    attrs = read_surface(out).attrs
    assert attrs["batch_size"] == 24 and attrs["memory_budget"] == 64 * 2**20 and attrs["mode"] == "eval"
    resumed = resume_request(out)
    assert resumed.batch_size == 24 and resumed.memory_budget == 64 * 2**20
    plain = SurfaceJob(request(regression_case, out))  # no --batch-size: the file's is used, not the default
    list(plain.run())
    assert plain.task().problem.batch_size == 24
    whole = tmp_path / "whole.h5"
    assert main([*args[:-4], "--out", str(whole)]) == 0  # the same command, uninterrupted: the same bits
    np.testing.assert_array_equal(read_surface(out).values["train_loss"], read_surface(whole).values["train_loss"])
    assert main([a if a != "64MiB" else "lots" for a in args]) == 2
    assert "--memory-budget lots: write a size such as 2GiB" in capsys.readouterr().err


def test_the_eta_follows_the_recent_rate_and_says_nothing_until_it_means_something() -> None:
    """The meter starts with the first computed tile, after set-up and strategy calibration, which
    therefore never count (the 0.1 app read "4 min 31 s" at 13 of 10201 points from them)."""
    from engine.jobs.base import ETA_WINDOW_SECONDS, RateMeter

    meter = RateMeter()
    assert meter.eta(100.0, 13, 10188) is None  # one sample: nothing to say
    assert meter.eta(100.5, 513, 9688) is None  # half a second of work: still nothing
    eta = meter.eta(101.0, 1013, 9188)
    assert eta == pytest.approx(9188 / 1000.0)  # 1000 points/s, from the work itself
    # The rate doubles; once a window has passed, the estimate follows the new rate alone.
    done, now = 1013, 101.0
    while now < 101.0 + 2 * ETA_WINDOW_SECONDS:
        now += 0.1
        done += 200
        eta = meter.eta(now, done, 100_000 - done)
    assert eta == pytest.approx((100_000 - done) / 2000.0, rel=0.02)


def test_a_prepared_job_closed_from_another_thread_releases_its_lock(regression_case, tmp_path) -> None:
    """The app prepares a job in a worker thread; a cancel before its first step closes it from there or
    from the window's thread. Either way the file must be free again (the lock is the job's, not a thread's)."""
    import threading

    out = tmp_path / "s.h5"
    job = SurfaceJob(request(regression_case, out))
    worker = threading.Thread(target=job.prepare)
    worker.start()
    worker.join()
    assert writer_of(out) is not None  # prepared: the file is the job's
    job.close()  # from this (another) thread, without run() ever starting
    assert writer_of(out) is None
    assert list(SurfaceJob(request(regression_case, out)).run())  # and the next job may write it
