"""Intra-op threads: small models on one thread, by their FLOPs; the setting stays in its own thread."""

from __future__ import annotations

import threading

import torch

from engine.builtin.models import mlp, small_cnn
from engine.io.data import DataSet, tensor_sha256
from engine.numerics.evaluate import PointEvaluator
from engine.numerics.problem import Problem
from engine.numerics.threads import SMALL_FLOPS, forward_flops, intra_op_threads, threads_for


def evaluator(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> PointEvaluator:
    problem = Problem(model, DataSet(x, y, "test", tensor_sha256(x, y), len(x)), device="cpu")
    params = {n: p.detach().clone() for n, p in problem.model.named_parameters()}
    origin = {n: t.detach().clone() for n, t in problem.model.state_dict().items()}
    return PointEvaluator(problem, origin, [{n: torch.ones_like(p) * 1e-3 for n, p in params.items()}], "inplace")


def test_flops_are_counted_not_timed() -> None:
    model = mlp(in_dim=20, width=50)
    x = torch.randn(100, 20)
    assert forward_flops(model, x) == 2 * 100 * (20 * 50 + 50 * 50 + 50 * 1)  # the three GEMMs


def test_a_small_model_runs_on_one_thread_and_a_large_one_on_all() -> None:
    torch.manual_seed(0)
    small = evaluator(mlp(in_dim=20, width=50), torch.randn(100, 20), torch.randn(100, 1))
    assert small.threads == 1
    large = evaluator(small_cnn(channels=16), torch.rand(512, 1, 8, 8), torch.randint(0, 10, (512,)))
    assert large.threads == torch.get_num_threads()
    assert threads_for(SMALL_FLOPS - 1) == 1 and threads_for(SMALL_FLOPS) == torch.get_num_threads()


def test_the_setting_is_restored_and_belongs_to_its_thread() -> None:
    before = torch.get_num_threads()
    seen = {}

    def worker() -> None:
        with intra_op_threads(1):
            seen["inside"] = torch.get_num_threads()
            seen["main while inside"] = main_threads.wait(5) and observed[0]
        seen["after"] = torch.get_num_threads()

    observed = [None]
    main_threads = threading.Event()
    thread = threading.Thread(target=worker)
    thread.start()
    observed[0] = torch.get_num_threads()  # the main thread's count while the worker uses one
    main_threads.set()
    thread.join()
    assert seen["inside"] == 1 and seen["after"] == before and observed[0] == before


def test_one_thread_gives_the_same_values_as_all() -> None:
    torch.manual_seed(1)
    ev = evaluator(small_cnn(channels=8), torch.rand(256, 1, 8, 8), torch.randint(0, 10, (256,)))
    coords = torch.linspace(-1, 1, 9).numpy()[:, None]
    assert ev.threads == torch.get_num_threads()
    all_threads = ev(coords)
    ev.threads = 1
    one = ev(coords)
    assert (one[0] == all_threads[0]).all() and (one[1] == all_threads[1]).all()
