"""Shared fixtures: small real checkpoints and data sets on disk, seeded."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
MODELS = str(ROOT / "tests" / "reference_models.py")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


# Source of peak_bytes() for child processes that measure their own memory. Not ru_maxrss: on
# Linux a child started with vfork+exec (Python's subprocess) inherits its parent's peak there,
# so inside a large pytest process it reports the parent's memory and a test could not fail.
PEAK_MEMORY_SOURCE = """
def peak_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
"""
PROC_STATUS = Path("/proc/self/status").exists()
PROC_STATUS_REASON = "reads the process's own peak memory from /proc/self/status (Linux)"
needs_proc_status = pytest.mark.skipif(not PROC_STATUS, reason=PROC_STATUS_REASON)


def plain_torch_mse(case: dict[str, str], directions=(), coefficients=()) -> float:
    """Ground truth without engine code: the regression case's MLP at theta0 + sum_k c_k d_k, its MSE in plain torch."""
    import tests.reference_models as zoo

    moved = dict(torch.load(case["checkpoint"]))
    for coefficient, direction in zip(coefficients, directions):
        for name, tensor in direction.items():
            moved[name] = moved[name] + coefficient * tensor.to(moved[name].dtype)
    model = zoo.mlp()
    model.load_state_dict(moved)
    model.eval()
    data = np.load(case["data"])
    with torch.no_grad():
        return torch.nn.functional.mse_loss(model(torch.from_numpy(data["x"])), torch.from_numpy(data["y"])).item()


def slow_case(tmp_path: Path) -> dict[str, str]:
    """Enough work per point (4000 samples) that a run can be caught, killed or signalled halfway."""
    import tests.reference_models as zoo

    torch.manual_seed(0)
    torch.save(zoo.mlp(d=8, width=64).state_dict(), tmp_path / "m.pt")
    x = np.random.default_rng(0).standard_normal((4000, 8)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.cos(x[:, :1]))
    return {"checkpoint": str(tmp_path / "m.pt"), "model": f"{MODELS}:mlp", "model_kwargs": {"d": 8, "width": 64},
            "data": str(tmp_path / "d.npz")}


def done_count(path: Path) -> int:
    """Points a (possibly running) job has written so far; 0 while the file does not exist yet."""
    import h5py

    try:
        with h5py.File(path, "r", locking=False) as handle:
            return int(handle["done"][()].sum())
    except (OSError, KeyError):
        return 0


def run_until(request, points: int):
    """Run a surface job and cancel it once ``points`` points are done: a partial file, as a closed window leaves it."""
    from engine.jobs.surface import SurfaceJob

    job = SurfaceJob(request)
    for step in job.run():
        if step.done >= points:
            job.cancel()
    return job


@contextmanager
def writer_lock_held_elsewhere(path: Path):
    """Another process holding the writer lock of ``path`` while the block runs; yields its pid."""
    import subprocess

    code = ("import sys, time; from engine.io.store import WriterLock\n"
            "lock = WriterLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(600)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=ROOT, env=run_cli_env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def damaged_landscape_files(folder: Path) -> dict[str, Path]:
    """Files that say format="landscape" but break the grid schema, keyed by what the error must say."""
    import h5py

    def landscape_file(name: str, build) -> Path:
        path = folder / name
        with h5py.File(path, "w") as handle:
            handle.attrs.update({"format": "landscape", "format_version": 1, "kind": "surface"})
            build(handle)
        return path

    return {
        "it has no done": landscape_file("no_done.h5", lambda h: (
            h.create_dataset("xcoordinates", data=np.arange(3.0)), h.create_dataset("train_loss", data=np.ones(3)))),
        "train_loss is a group, not an array": landscape_file("group.h5", lambda h: (
            h.create_dataset("xcoordinates", data=np.arange(3.0)), h.create_group("train_loss"))),
        "xcoordinates holds |S1 values, not numbers": landscape_file("text.h5", lambda h: (
            h.create_dataset("xcoordinates", data=np.array([b"a", b"b"])), h.create_dataset("train_loss",
                                                                                         data=np.ones(2)))),
    }


def run_cli_env() -> dict[str, str]:
    """Environment for running ``python -m engine`` in a subprocess from the repo."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def regression_case(tmp_path: Path) -> dict[str, str]:
    """An MLP checkpoint (plain state_dict) and 64 samples of regression data."""
    from tests import reference_models

    torch.manual_seed(0)
    model = reference_models.mlp(d=4, width=16, out=1)
    ckpt = tmp_path / "mlp.pt"
    torch.save(model.state_dict(), ckpt)
    generator = np.random.default_rng(0)
    x = generator.standard_normal((64, 4)).astype(np.float32)
    y = np.sin(x.sum(axis=1, keepdims=True)).astype(np.float32)
    data = tmp_path / "data.npz"
    np.savez(data, x=x, y=y)
    return {"checkpoint": str(ckpt), "model": f"{MODELS}:mlp", "data": str(data)}


@pytest.fixture
def classification_case(tmp_path: Path) -> dict[str, str]:
    """A Conv+BatchNorm classifier with non-trivial running statistics, and 48 labelled images."""
    from tests import reference_models

    torch.manual_seed(1)
    model = reference_models.cnn_bn()
    model.train()
    with torch.no_grad():
        for _ in range(3):  # give BatchNorm running statistics that differ from (0, 1)
            model(torch.randn(32, 1, 6, 6) * 2 + 0.5)
    ckpt = tmp_path / "cnn.pt"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    generator = np.random.default_rng(1)
    x = generator.standard_normal((48, 1, 6, 6)).astype(np.float32)
    y = generator.integers(0, 3, size=48).astype(np.int64)
    data = tmp_path / "images.npz"
    np.savez(data, x=x, y=y)
    return {"checkpoint": str(ckpt), "model": f"{MODELS}:cnn_bn", "data": str(data)}
