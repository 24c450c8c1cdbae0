"""How long does one Hessian-vector product take, by method?

For the mean loss over all the data, at the model's initial (seeded) weights, it times
:meth:`engine.numerics.problem.Problem.hessian` products with

* ``db-retained``  double backward, each batch's gradient graph kept between products
                   (the first product builds them and warms up; its time is shown apart as "1st");
* ``db-rebuilt``   double backward, graphs rebuilt for every product (``retain=False``);
* ``for``          forward-over-reverse, ``torch.func.jvp(torch.func.grad(f))``;

and, to judge whether a batched ``matmat`` would pay, 4 vectors at once per method:
``autograd.grad(..., is_grads_batched=True)`` on the kept graphs (``db-retained x4``) and
``vmap`` over the jvp (``for x4``), written here with the public ``Problem.loss``; their
times are per vector. It also checks that the methods agree and which one ``auto`` keeps.

Cases (float32, CPU): the 44,601-parameter MLP (``engine.builtin.models:mlp`` width 200
on ``sample:sine-2000``, MSE; one batch of 2000) and the small CNN
(``engine.builtin.models:small_cnn`` on ``sample:digits``, cross entropy; one batch of 1437,
eval-mode BatchNorm).

Run (from the repository root)::

    python benchmarks/hvp_speed.py                 # 9 timed products per method, about a minute
    python benchmarks/hvp_speed.py --repeats 21 --cases mlp
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch
from torch.func import grad, jvp, vmap

from engine.builtin.models import mlp, small_cnn
from engine.io.data import load_data
from engine.numerics.problem import Problem

CASES: dict[str, Callable[[], Problem]] = {
    "mlp": lambda: Problem(_seeded(lambda: mlp(width=200)), load_data("sample:sine-2000"), device="cpu"),
    "cnn": lambda: Problem(_seeded(small_cnn), load_data("sample:digits"), device="cpu"),
}
BATCHED = 4  # vectors per batched product


def _seeded(factory):
    torch.manual_seed(0)
    return factory()


def _vectors(params: dict[str, torch.Tensor], count: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [{n: torch.randn(p.shape, generator=generator).to(p) for n, p in params.items()} for _ in range(count)]


def _median_seconds(product: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        product()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _batched_double_backward(problem: Problem, params, vectors) -> Callable[[], object]:
    """4 products at once on kept gradient graphs: autograd.grad(is_grads_batched=True)."""
    leaves = {n: p.detach().requires_grad_() for n, p in params.items()}
    graphs = []
    for batch in problem.batches():
        loss = problem.loss(leaves, None, batch) * (len(batch[0]) / problem.n)
        graphs.append(torch.autograd.grad(loss, tuple(leaves.values()), create_graph=True))
    stacked = tuple(torch.stack([v[n] for v in vectors]) for n in params)

    def product():
        return [torch.autograd.grad(g, tuple(leaves.values()), grad_outputs=stacked, retain_graph=True,
                                    is_grads_batched=True) for g in graphs]

    return product


def _batched_forward_over_reverse(problem: Problem, params, vectors) -> Callable[[], object]:
    """4 products at once: vmap over the tangent of jvp(grad(f))."""
    stacked = {n: torch.stack([v[n] for v in vectors]) for n in params}
    batches = list(problem.batches())

    def product():
        out = []
        for batch in batches:
            def f(p, batch=batch):
                return problem.loss(p, None, batch) * (len(batch[0]) / problem.n)
            out.append(vmap(lambda t: jvp(grad(f), (params,), (t,))[1])(stacked))
        return out

    return product


def run_case(name: str, repeats: int) -> dict[str, float]:
    problem = CASES[name]()
    params = problem.params()
    vectors = _vectors(params, BATCHED)
    n_params = sum(p.numel() for p in params.values())
    print(f"\n{name}: {n_params:,} parameters, {problem.n} samples in batches of {problem.batch_size}, "
          f"{problem.loss_name}, {torch.get_num_threads()} threads")
    seconds: dict[str, float] = {}
    results = {}
    operators = {
        "db-retained": problem.hessian(params, method="double_backward", retain=True),
        "db-rebuilt": problem.hessian(params, method="double_backward", retain=False),
        "for": problem.hessian(params, method="forward_over_reverse"),
    }
    for label, operator in operators.items():
        start = time.perf_counter()
        results[label] = operator.matvec(vectors[0])  # builds kept graphs, loads jvp decompositions
        if label == "db-retained":
            seconds["db-retained 1st"] = time.perf_counter() - start
        operator.matvec(vectors[1])  # warm-up
        seconds[label] = _median_seconds(lambda operator=operator: operator.matvec(vectors[2]), repeats)
    for label, make in (("db-retained x4", _batched_double_backward), ("for x4", _batched_forward_over_reverse)):
        try:
            product = make(problem, params, vectors)
            product()
        except RuntimeError as exc:  # vmap lacks rules for some layouts (channels_last convolutions)
            print(f"  {label}: not possible here ({str(exc).splitlines()[0][:90]})")
            continue
        seconds[label] = _median_seconds(product, repeats) / BATCHED
    reference = torch.cat([t.reshape(-1) for t in results["db-retained"].values()])
    for label in ("db-rebuilt", "for"):
        other = torch.cat([t.reshape(-1) for t in results[label].values()])
        print(f"  {label} vs db-retained: max relative difference {float((other - reference).abs().max() / reference.abs().max()):.1e}")
    auto = problem.hessian(params)
    for v in vectors + vectors[:2]:
        auto.matvec(v)
    print(f"  auto keeps {auto.method} (timed {', '.join(f'{k} {v * 1e3:.1f} ms' for k, v in auto.timings.items())}); "
          f"default retain for this budget: {operators['db-retained'].retain}")
    base = seconds["db-retained"]
    print(f"  {'method':<18} {'median ms/product':>18} {'vs db-retained':>15}")
    for label, value in seconds.items():
        ratio = "" if label == "db-retained 1st" else f"{value / base:14.2f}x"
        print(f"  {label:<18} {value * 1e3:18.2f} {ratio:>15}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed products per method (median reported)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in args.cases.split(","):
        run_case(name, args.repeats)


if __name__ == "__main__":
    main()
