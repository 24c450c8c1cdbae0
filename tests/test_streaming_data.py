"""Streamed data gives the same bits as data kept on the device, and load_data reads sources in chunks.

A tiny memory budget forces Problem to stream an ``.h5`` file, a ``.pt`` file and a
``torch.utils.data.Dataset`` from their source on every pass; the same sources kept
resident (the default budget) and the same arrays from an ``.npz`` file are the truth.
"""

from __future__ import annotations

import textwrap

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import engine.io.data as data_module
from engine.io.data import load_data, tensor_sha256
from engine.numerics.evaluate import PointEvaluator
from engine.numerics.problem import Problem

N = 23
TINY_BUDGET = 1_000  # bytes: the data (23 x 152 bytes) is over half of it, so it is streamed

USER_CODE = textwrap.dedent(
    """
    from pathlib import Path

    import numpy as np
    import torch

    class _Items(torch.utils.data.Dataset):
        def __init__(self):
            with np.load(Path(__file__).with_name("d.npz")) as archive:
                self.x, self.y = archive["x"], archive["y"]

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return torch.from_numpy(self.x[i]), torch.tensor(self.y[i])

    def items():
        return _Items()
    """
)


def arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return rng.standard_normal((N, 1, 6, 6)).astype(np.float32), rng.integers(0, 3, size=N).astype(np.int64)


@pytest.fixture
def sources(tmp_path, monkeypatch) -> dict[str, str]:
    x, y = arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with h5py.File(tmp_path / "d.h5", "w") as handle:
        handle["x"], handle["y"] = x, y
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, tmp_path / "d.pt")
    (tmp_path / "items.py").write_text(USER_CODE)
    return {"npz": str(tmp_path / "d.npz"), "h5": str(tmp_path / "d.h5"), "pt": str(tmp_path / "d.pt"),
            "dataset": f"{tmp_path / 'items.py'}:items"}


def cnn() -> nn.Module:
    """Conv + BatchNorm classifier with running statistics away from (0, 1); runs channels_last on the CPU."""
    torch.manual_seed(12)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(108, 3))
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 1, 6, 6) * 2 + 1)
    return model.eval()


def evaluate_everything(problem: Problem) -> dict[str, object]:
    """Every number a problem gives: metrics, metrics at other weights, gradient, grid values."""
    torch.manual_seed(13)
    params = problem.params()
    direction = {name: torch.randn_like(p) for name, p in params.items()}
    moved = {name: p + 0.5 * direction[name] for name, p in params.items()}
    coords = np.array([[a, b] for b in (-0.5, 0.25) for a in (-1.0, 0.0, 0.5)])
    origin = problem.model.state_dict()
    basis = [direction, {name: torch.randn_like(p) for name, p in params.items()}]
    values = {"metrics": problem.metrics(), "metrics_at": problem.metrics_at(moved),
              "gradient": problem.gradient(moved)}
    for strategy in ("inplace", "vmap"):
        evaluator = PointEvaluator(problem, {k: v.clone() for k, v in origin.items()}, basis, strategy=strategy)
        evaluator.points_per_batch = 4  # the same vmap calls whatever the budget (they set the bits)
        values[strategy] = evaluator(coords)
        evaluator.restore()
    return values


def assert_same_bits(got: dict[str, object], expected: dict[str, object], label: str) -> None:
    assert got["metrics"] == expected["metrics"], label
    assert got["metrics_at"] == expected["metrics_at"], label
    for name, g in expected["gradient"].items():
        assert torch.equal(got["gradient"][name], g), (label, name)
    for strategy in ("inplace", "vmap"):
        (loss, acc), (loss0, acc0) = got[strategy], expected[strategy]
        assert np.array_equal(loss, loss0) and np.array_equal(acc, acc0), (label, strategy)


def test_streamed_sources_give_the_same_bits_as_resident_data(sources):
    model = cnn()
    truth_problem = Problem(model, load_data(sources["npz"]), device="cpu", batch_size=5)
    assert not truth_problem.streamed and truth_problem.channels_last
    truth = evaluate_everything(truth_problem)
    assert truth["metrics"].acc is not None and truth["metrics"] != truth["metrics_at"]
    for name in ("h5", "pt", "dataset"):
        data = load_data(sources[name])
        resident = Problem(model, data, device="cpu", batch_size=5)
        streamed = Problem(model, data, device="cpu", batch_size=5, memory_budget=TINY_BUDGET)
        assert not resident.streamed and streamed.streamed, name
        assert [len(x) for x, _ in streamed.batches()] == [5, 5, 5, 5, 3]
        assert_same_bits(evaluate_everything(resident), truth, f"{name} resident")
        assert_same_bits(evaluate_everything(streamed), truth, f"{name} streamed")


def test_default_batch_size_keeps_the_old_rule_and_caps_activations(sources):
    data = load_data(sources["npz"])
    assert Problem(cnn(), data, device="cpu").batch_size == N  # all samples up to 4096
    # One sample's activations: conv, BN, ReLU (3 x 108 floats each), flatten, linear, and the
    # Sequential's own output: 4 x 432 + 3 x 4 + 3 x 4 = 1752 bytes; 1/8 of 60 kB holds 4 samples.
    assert Problem(cnn(), data, device="cpu", memory_budget=60_000).batch_size == 4
    assert Problem(cnn(), data, device="cpu", memory_budget=60_000, batch_size=9).batch_size == 9


def test_chunked_hash_and_subset_equal_the_whole_tensors(sources, monkeypatch):
    monkeypatch.setattr(data_module, "CHUNK_BYTES", 400)  # two or three samples per chunk
    x, y = (torch.from_numpy(a) for a in arrays())
    keep = torch.randperm(N, generator=torch.Generator().manual_seed(3))[:9].sort().values  # the subset rule
    for name, reference in sources.items():
        whole = load_data(reference)
        assert whole.sha256 == tensor_sha256(x, y), name
        subset = load_data(reference, max_samples=9, subset_seed=3)
        assert len(subset) == 9 and subset.total_samples == N, name
        assert torch.equal(subset.x, x[keep]) and torch.equal(subset.y, y[keep]), name
        assert subset.sha256 == tensor_sha256(x[keep], y[keep]), name


def test_h5_data_is_never_read_whole(sources, monkeypatch):
    monkeypatch.setattr(data_module, "CHUNK_BYTES", 1_000)  # six samples per chunk
    reads: list[int] = []
    original = h5py.Dataset.__getitem__

    def spy(self, selection):
        result = original(self, selection)
        reads.append(len(result) if getattr(result, "ndim", 0) else 0)
        return result

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    data = load_data(sources["h5"])
    problem = Problem(cnn(), data, device="cpu", batch_size=5, memory_budget=TINY_BUDGET)
    problem.metrics()
    assert reads and max(reads) <= 6 and sum(reads) >= 2 * 2 * N  # hashed, then streamed, in pieces
