"""Same coordinates, same bits: a value depends on its coordinates only, and auto never mixes strategies.

The two strategies differ in the last bits, so these tests compare with ``np.array_equal``,
never with a tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.io.data import DataSet, tensor_sha256
from engine.numerics import evaluate
from engine.numerics.evaluate import PointEvaluator
from engine.numerics.problem import Problem


def mlp_problem(**kwargs) -> Problem:
    torch.manual_seed(20)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1))
    x, y = torch.randn(40, 5), torch.randn(40, 1)
    # One output and one batch of 40: here a vmap call of one point gives other bits than larger calls.
    return Problem(model, DataSet(x, y, "t", tensor_sha256(x, y), 40), device="cpu", batch_size=40, **kwargs)


def cnn_problem(**kwargs) -> Problem:
    torch.manual_seed(21)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 1, 6, 6) * 2 + 1)
    x, y = torch.randn(30, 1, 6, 6), torch.randint(0, 3, (30,))
    return Problem(model.eval(), DataSet(x, y, "t", tensor_sha256(x, y), 30), device="cpu", batch_size=8, **kwargs)


PROBLEMS = {"mlp": mlp_problem, "cnn": cnn_problem}


def evaluator(problem: Problem, strategy: str, cls=PointEvaluator) -> PointEvaluator:
    params = problem.params()  # the weights the problem was built with, whatever its module holds now
    generator = torch.Generator().manual_seed(22)
    basis = [{name: 0.3 * torch.randn(p.shape, generator=generator) for name, p in params.items()} for _ in range(2)]
    return cls(problem, {**problem.buffers(), **params}, basis, strategy=strategy)


def grid(n: int = 7) -> np.ndarray:
    """Rows of a grid (points sharing their second coordinate, as surfaces evaluate them)."""
    axis = np.linspace(-1.0, 1.0, n)
    return np.array([[a, b] for b in axis[::3] for a in axis])


def assert_equal_values(got, expected) -> None:
    assert np.array_equal(got[0], expected[0])
    assert (got[1] is None and expected[1] is None) or np.array_equal(got[1], expected[1])


def in_groups(ev: PointEvaluator, coords: np.ndarray, order: np.ndarray, sizes: list[int]):
    """Evaluate ``coords[order]`` in calls of the given sizes; values put back in coords order."""
    loss, acc = np.empty(len(coords)), np.empty(len(coords))
    start = 0
    for size in sizes:
        rows = order[start:start + size]
        part_loss, part_acc = ev(coords[rows])
        loss[rows] = part_loss
        if part_acc is not None:
            acc[rows] = part_acc
        start += size
    assert start == len(coords)
    return loss, (acc if ev.problem.classification else None)


@pytest.mark.parametrize("strategy", ["inplace", "vmap"])
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_a_value_depends_only_on_its_coordinates(name, strategy):
    problem = PROBLEMS[name]()
    coords = grid()
    ev = evaluator(problem, strategy)
    ev.points_per_batch = 5  # several vmap calls per grid, the last one padded
    whole = ev(coords)
    n = len(coords)
    rng = np.random.default_rng(23)
    assert_equal_values(in_groups(ev, coords, np.arange(n), [1] * n), whole)  # one point per call
    assert_equal_values(in_groups(ev, coords, np.arange(n)[::-1], [n]), whole)  # reversed
    assert_equal_values(in_groups(ev, coords, rng.permutation(n), [3, 1, 7, 2, n - 13]), whole)  # shuffled groups
    assert_equal_values(evaluator(problem, strategy)(coords), whole)  # a fresh evaluator


def test_the_two_strategies_differ_in_the_last_bits_here():
    """The premise of the tests below: otherwise mixing strategies would go unnoticed."""
    for make in PROBLEMS.values():
        problem = make()
        inplace, vmapped = evaluator(problem, "inplace")(grid()), evaluator(problem, "vmap")(grid())
        assert not np.array_equal(inplace[0], vmapped[0])
        np.testing.assert_allclose(inplace[0], vmapped[0], rtol=1e-5)


class VmapWins(PointEvaluator):
    """auto, with vmap timed on real points as usual but declared the faster."""

    rate = 0.0

    def _time_vmap(self, trial, min_points, min_seconds):
        super()._time_vmap(trial, min_points, min_seconds)
        self.real_points = {strategy: len(rows) for strategy, rows in trial.results.items()}
        return self.rate


class InplaceWins(VmapWins):
    """auto, with vmap timed on real points as usual but declared the slower."""

    rate = float("inf")


@pytest.mark.parametrize("cls,winner", [(VmapWins, "vmap"), (InplaceWins, "inplace"), (PointEvaluator, None)])
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_auto_returns_only_the_chosen_strategys_bits(monkeypatch, name, cls, winner):
    monkeypatch.setattr(evaluate, "VMAP_CPU_MAX_POINT_SECONDS", float("inf"))  # vmap is always tried
    problem = PROBLEMS[name]()
    coords = grid(15)  # 75 points: in place computes up to 33 of them, vmap some of the rest
    auto = evaluator(problem, "auto", cls)
    first = auto(coords)
    if winner is not None:  # both strategies computed real points, so the loser's were recomputed
        assert auto.strategy == winner and min(auto.real_points.values()) > 0
    fixed = evaluator(problem, auto.strategy)
    fixed.points_per_batch = auto.points_per_batch
    assert_equal_values(first, fixed(coords))
    assert_equal_values(auto(coords[::-1]), fixed(coords[::-1]))  # later calls too


def test_auto_decides_within_a_first_call_of_one_point():
    """A surface job's first call holds one point: auto must not return it before deciding."""
    problem = mlp_problem()
    auto = evaluator(problem, "auto")
    one = auto(grid()[:1])
    assert auto.strategy in ("inplace", "vmap") and set(auto.timings) == {"inplace", "vmap"}
    fixed = evaluator(problem, auto.strategy)
    fixed.points_per_batch = auto.points_per_batch
    assert_equal_values(one, fixed(grid()[:1]))


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_streamed_tiles_give_the_bits_of_resident_points(name):
    resident, streamed = PROBLEMS[name](), PROBLEMS[name](memory_budget=1_000)
    assert streamed.streamed and not resident.streamed
    coords = grid()
    expected = evaluator(resident, "inplace")(coords)
    ev = evaluator(streamed, "inplace")
    assert_equal_values(ev(coords), expected)
    assert_equal_values(in_groups(ev, coords, np.random.default_rng(24).permutation(len(coords)), [5, 9, 7]), expected)


def test_train_mode_points_are_pure_functions_of_their_weights():
    problem = cnn_problem(mode="train")
    buffers = {k: v.clone() for k, v in problem.model.named_buffers()}
    coords = grid()
    inplace = evaluator(problem, "inplace")
    first = inplace(coords)
    assert_equal_values(inplace(coords[::-1]), (first[0][::-1], first[1][::-1]))
    vmapped = evaluator(problem, "vmap")(coords)
    np.testing.assert_allclose(vmapped[0], first[0], rtol=1e-5)  # vmap also normalizes with batch statistics
    for name, value in problem.model.named_buffers():
        assert torch.equal(value, buffers[name]), name
    eval_values = evaluator(cnn_problem(), "inplace")(coords)
    assert np.abs(eval_values[0] - first[0]).max() > 1e-3
