"""Evaluate a problem at many weight points ``origin + sum_k c_k * basis_k``.

This is a pure function of (model, data, directions, points) -> values: surfaces,
paths and scale-out workers all call it, and none of them writes files here.

Two strategies, chosen by measurement (``strategy="auto"``):

* ``inplace``: write each point's weights into the engine's private module and run
  it; cheapest per point when layers are small (no stacking, no vmap overhead).
* ``vmap``: stack a batch of points and run ``torch.func.functional_call`` under
  ``vmap``, one forward for many points; fills a GPU when one model is small.

On 2 CPU cores ``vmap`` measured up to 8x slower than ``inplace`` for a width-50
MLP, so neither is assumed: ``auto`` times both on the first points.

**Same coordinates, same bits.** The two strategies differ in the last bits, so a
file must not mix them: ``auto`` decides within its first call and every value it
returns comes from the strategy it chose. A value also depends only on its
coordinates, never on the other points of a call: a vmap call of one point gave other
bits than larger calls on this machine (batched GEMMs pick other kernels), so every
vmap call is padded to the same number of points, ``points_per_batch``, which comes
from the problem's memory budget and the model alone.

**Streamed data** (``problem.streamed``) is read once per tile of points, not once per
point: the data loop is outside, the points inside, and each point's float64 sums are
added in the same batch order as :meth:`Problem.metrics` adds them, so the bits equal
the point-by-point loop over resident data.
"""

from __future__ import annotations

import ctypes
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch.func import functional_call, vmap

from engine.errors import LandscapeError
from engine.numerics.threads import forward_flops, intra_op_threads, threads_for
from engine.numerics.problem import VMAP_STACK_SHARE, Problem, activation_bytes

STRATEGIES = ("auto", "inplace", "vmap")
# Points per vmap call (every call is padded to its size) and per tile of streamed in-place
# points. Width-10/50 MLPs on 2 CPU cores ran vmap as fast per point with 64 as with 256,
# and a small call pads 4x less.
MAX_POINTS_PER_BATCH = 64
# On the CPU, vmap only beat inplace where a point costs well under a millisecond in place
# (width-50 MLP: 0.05 vs 0.1 ms/point); above this it lost on every benchmark case (2-3x),
# so auto does not spend points on it there.
VMAP_CPU_MAX_POINT_SECONDS = 0.5e-3
# glibc malloc: serve allocations up to 32 MiB (its maximum) from the heap and keep up to
# 1 GiB of freed heap, so the activations freed after one point are reused by the next
# instead of going back to the OS and being page-faulted in again (CNN: ~9000 faults/point).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_malloc_tuned = False


def keep_freed_memory() -> bool:
    """Tell glibc malloc to keep freed memory for reuse; Linux only, idempotent, a no-op elsewhere."""
    global _malloc_tuned
    if _malloc_tuned or not sys.platform.startswith("linux"):
        return _malloc_tuned
    try:
        libc = ctypes.CDLL("libc.so.6")
        _malloc_tuned = bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**30))
    except (OSError, AttributeError):  # not glibc (musl, ...)
        _malloc_tuned = False
    return _malloc_tuned


Values = tuple[np.ndarray, np.ndarray | None]


class PointEvaluator:
    """Loss (and accuracy) at points given by coordinates along basis directions."""

    def __init__(
        self,
        problem: Problem,
        origin: Mapping[str, torch.Tensor],
        basis: Sequence[Mapping[str, torch.Tensor]],
        strategy: str = "auto",
    ) -> None:
        if strategy not in STRATEGIES:
            raise LandscapeError(f"unknown evaluation strategy '{strategy}'; choose one of {', '.join(STRATEGIES)}")
        self.problem = problem
        module_state = dict(problem.model.named_parameters())
        module_state.update(dict(problem.model.named_buffers()))
        self.live = module_state
        names = [name for direction in basis for name in direction]
        unknown = sorted(set(names) - set(module_state))
        if unknown:
            raise LandscapeError(
                f"the directions name tensors the model does not have: {', '.join(unknown[:4])}"
                f"{' ...' if len(unknown) > 4 else ''}; were they made for another model?"
            )
        if problem.device.type == "cpu":
            keep_freed_memory()
        # Small models run on one thread (see engine.numerics.threads), decided from their FLOPs.
        self.threads = threads_for(forward_flops(problem.model, next(iter(problem.batches()))[0]))
        # In the module's own layout (channels_last conv weights), so the per-point adds stay dense.
        self.basis = [{name: _like(module_state[name], d) for name, d in direction.items()} for direction in basis]
        for direction in self.basis:
            for name, d in direction.items():
                if d.shape != module_state[name].shape:
                    raise LandscapeError(
                        f"direction for {name} has shape {tuple(d.shape)} but the model's is {tuple(module_state[name].shape)}"
                    )
        # Only tensors that some direction moves are rewritten per point.
        self.moving = [
            name for name in module_state
            if any(name in direction and bool(direction[name].any()) for direction in self.basis)
        ]
        self.origin = {name: _like(module_state[name], origin[name]) for name in self.moving}
        self.strategy = strategy
        self.points_per_batch: int | None = None  # points in every vmap call; from the memory budget on first use
        self.timings: dict[str, float] = {}  # auto: seconds per point measured for each strategy

    # -- public ---------------------------------------------------------------------
    def __call__(self, coords: np.ndarray) -> Values:
        """Loss and accuracy (percent; None for regression) at each row of ``coords``.

        With ``strategy="auto"`` the first call times both strategies and sets ``strategy``
        to the faster before it returns anything (see :meth:`_choose`).
        """
        with intra_op_threads(self.threads):
            return self._evaluate(np.asarray(coords, dtype=np.float64).reshape(-1, len(self.basis)))

    def _evaluate(self, coords: np.ndarray) -> Values:
        computed = self._choose(coords) if self.strategy == "auto" else {}
        losses = np.empty(len(coords))
        accs = np.empty(len(coords)) if self.problem.classification else None
        for row, (loss, acc) in computed.items():
            losses[row] = loss
            if accs is not None:
                accs[row] = acc
        todo = np.array([row for row in range(len(coords)) if row not in computed], dtype=np.int64)
        if len(todo):
            rest_loss, rest_acc = self._run(self.strategy, coords[todo])
            losses[todo] = rest_loss
            if accs is not None and rest_acc is not None:
                accs[todo] = rest_acc
        return losses, accs

    def restore(self) -> None:
        """Put the origin weights back into the private module."""
        with torch.no_grad():
            torch._foreach_copy_([self.live[n] for n in self.moving], [self.origin[n] for n in self.moving])

    # -- choosing a strategy ------------------------------------------------------------
    def _run(self, strategy: str, coords: np.ndarray) -> Values:
        if strategy == "vmap":
            return self._vmap(coords)
        return self._inplace_tiled(coords) if self.problem.streamed else self._inplace(coords)

    def _choose(self, coords: np.ndarray, min_points: int = 32, min_seconds: float = 0.05) -> dict[int, tuple]:
        """Time both strategies on this call's points, keep the faster, and return its values so far.

        Each strategy is judged after a warm-up, on at least ``min_points`` points or
        ``min_seconds`` of work: in place first, in growing blocks (on the CPU vmap is not
        tried when in place costs VMAP_CPU_MAX_POINT_SECONDS or more per point), then vmap
        on whole padded calls; a model that vmap cannot run counts as infinitely slow.
        Blocks take this call's points in order and, when there are too few, time repeats
        of them. The points the losing strategy computed are computed again by the
        winner, so every returned value comes from one strategy.
        """
        trial = _Trial(self, coords)
        trial.run("inplace", 1)  # warm-up
        seconds, points, best, size = 0.0, 0, float("inf"), 2
        while points < min_points and seconds < min_seconds:
            elapsed = trial.run("inplace", size)
            seconds, points = seconds + elapsed, points + size
            if size >= 4:  # a block's rate, free of the per-call costs of the smallest blocks
                best = min(best, elapsed / size)
            if self.problem.device.type == "cpu" and seconds / points >= VMAP_CPU_MAX_POINT_SECONDS:
                break
            size = max(2, min(points, 64))
        vmap_rate = float("inf")
        if self.problem.device.type != "cpu" or seconds / points < VMAP_CPU_MAX_POINT_SECONDS:
            vmap_rate = self._time_vmap(trial, min_points, min_seconds)
        self.timings = {"inplace": min(seconds / points, best), "vmap": vmap_rate}
        self.strategy = "vmap" if self.timings["vmap"] < self.timings["inplace"] else "inplace"
        self.restore()
        return trial.results[self.strategy]

    def _time_vmap(self, trial: _Trial, min_points: int, min_seconds: float) -> float:
        """Seconds per point of vmap on whole (padded) calls after a warm-up call."""
        try:
            if self.points_per_batch is None:
                self.points_per_batch = self._vmap_batch_size()
            step = self.points_per_batch
            trial.run("vmap", step)  # warm-up
            seconds, points = 0.0, 0
            while points < min_points and seconds < min_seconds:
                seconds, points = seconds + trial.run("vmap", step), points + step
        except Exception:  # noqa: BLE001 - ops without vmap rules, TorchScript modules
            return float("inf")
        return seconds / points

    # -- strategies -----------------------------------------------------------------
    def _axes(self) -> list[list[torch.Tensor]]:
        """Per basis direction, its tensor for each moving name (zeros where it does not move it)."""
        return [
            [direction.get(name, torch.zeros_like(self.origin[name])) for name in self.moving]
            for direction in self.basis
        ]

    def _base(self, key: tuple[float, ...], axes: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        """``origin + sum_{k>0} c_k d_k``: the part of a point's weights shared along a grid row."""
        base = [self.origin[name].clone() for name in self.moving]
        for c, tensors in zip(key, axes[1:]):
            if c != 0.0:
                torch._foreach_add_(base, tensors, alpha=c)
        return base

    def _inplace(self, coords: np.ndarray) -> Values:
        """Write each point's weights into the module, one pass over the weights per point.

        Weights are ``base + c0 * d0`` with ``base = origin + sum_{k>0} c_k d_k`` cached
        while the other coordinates stay the same (along a grid row), so a point costs
        a single ``add(out=)`` per tensor, and its value depends only on its coordinates.
        """
        problem = self.problem
        losses = np.empty(len(coords))
        accs = np.empty(len(coords)) if problem.classification else None
        live = [self.live[name] for name in self.moving]
        axes = self._axes()
        base_key: tuple[float, ...] | None = None
        base: list[torch.Tensor] = []
        with torch.inference_mode():
            for row, point in enumerate(coords):
                key = tuple(float(c) for c in point[1:])
                if key != base_key:
                    base, base_key = self._base(key, axes), key
                for target, b, d in zip(live, base, axes[0]):
                    torch.add(b, d, alpha=float(point[0]), out=target)
                metrics = problem.metrics()
                losses[row] = metrics.loss
                if accs is not None:
                    accs[row] = metrics.acc
        return losses, accs

    def _inplace_tiled(self, coords: np.ndarray) -> Values:
        """In place over streamed data: for each tile of points, one pass over the data.

        Each point's weights are made once per tile (the same arithmetic as :meth:`_inplace`)
        and copied into the module for every batch; its sums are added in batch order.
        """
        problem = self.problem
        losses = np.empty(len(coords))
        accs = np.empty(len(coords)) if problem.classification else None
        live = [self.live[name] for name in self.moving]
        axes = self._axes()
        weight_bytes = sum(t.numel() * t.element_size() for t in self.origin.values())
        tile = int(max(1, min(MAX_POINTS_PER_BATCH, problem.memory_budget * VMAP_STACK_SHARE // max(1, weight_bytes))))
        with torch.inference_mode():
            for start in range(0, len(coords), tile):
                points = coords[start:start + tile]
                weights = []
                for point in points:
                    base = self._base(tuple(float(c) for c in point[1:]), axes)
                    weights.append([torch.add(b, d, alpha=float(point[0])) for b, d in zip(base, axes[0])])
                sums = [[0.0, 0.0] for _ in points]
                for x, y in problem.batches():
                    for tensors, total in zip(weights, sums):
                        torch._foreach_copy_(live, tensors)
                        batch_loss, batch_correct = problem.batch_sums(problem.model(x), y)
                        total[0] += batch_loss.item()
                        if problem.classification:
                            total[1] += batch_correct.item()
                for k, (loss_sum, correct) in enumerate(sums):
                    metrics = problem.metrics_from_sums(loss_sum, correct)
                    losses[start + k] = metrics.loss
                    if accs is not None:
                        accs[start + k] = metrics.acc
        return losses, accs

    def _vmap_batch_size(self) -> int:
        """Points per vmap call: stacked weights plus one batch's activations per point, within the budget."""
        problem = self.problem
        weight_bytes = sum(self.origin[n].numel() * self.origin[n].element_size() for n in self.moving)
        x, _ = next(problem.batches())
        with torch.inference_mode():
            per_point = max(1, weight_bytes + activation_bytes(problem.model, x))
        return int(max(1, min(MAX_POINTS_PER_BATCH, problem.memory_budget * VMAP_STACK_SHARE // per_point)))

    def _vmap(self, coords: np.ndarray) -> Values:
        """Every call runs ``points_per_batch`` points (the last chunk padded with copies of its last point)."""
        problem = self.problem
        static = {name: t for name, t in self.live.items() if name not in self.moving}
        model = problem.model

        def batch_sums(moving: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):
            return problem.batch_sums(functional_call(model, (moving, static), (x,)), y)

        batched = vmap(batch_sums, in_dims=(0, None, None))
        losses = np.empty(len(coords))
        accs = np.empty(len(coords)) if problem.classification else None
        if self.points_per_batch is None:
            self.points_per_batch = self._vmap_batch_size()
        step = self.points_per_batch
        with torch.inference_mode():
            for start in range(0, len(coords), step):
                real = coords[start:start + step]
                padded = np.concatenate([real, np.repeat(real[-1:], step - len(real), axis=0)])
                chunk = torch.as_tensor(padded, device=problem.device)
                stacked = {}
                for name in self.moving:
                    origin = self.origin[name]
                    c = chunk.to(origin.dtype)
                    weights = origin.unsqueeze(0).repeat(len(chunk), *([1] * origin.dim()))
                    for k, direction in enumerate(self.basis):
                        if name in direction:
                            shape = (len(chunk),) + (1,) * origin.dim()
                            weights.add_(c[:, k].reshape(shape) * direction[name].unsqueeze(0))
                    stacked[name] = weights
                loss_sum = torch.zeros(len(chunk), dtype=torch.float64, device=problem.device)
                correct = torch.zeros(len(chunk), dtype=torch.float64, device=problem.device)
                for x, y in problem.batches():
                    batch_loss, batch_correct = batched(stacked, x, y)
                    loss_sum += batch_loss.double()
                    correct += batch_correct.double()
                losses[start:start + len(real)] = (loss_sum / problem.n).cpu().numpy()[:len(real)]
                if accs is not None:
                    accs[start:start + len(real)] = (100.0 * correct / problem.n).cpu().numpy()[:len(real)]
        return losses, accs


class _Trial:
    """auto's timed blocks over one call's coordinates: rows in order, then repeats of them.

    ``results[strategy]`` holds the values each strategy computed for real rows.
    """

    def __init__(self, evaluator: PointEvaluator, coords: np.ndarray) -> None:
        self.evaluator, self.coords, self.cursor = evaluator, coords, 0
        self.results: dict[str, dict[int, tuple]] = {"inplace": {}, "vmap": {}}

    def run(self, strategy: str, size: int) -> float:
        """Evaluate the next ``size`` rows with ``strategy``; the seconds it took."""
        rows = np.arange(self.cursor, self.cursor + size)
        self.cursor += size
        start = time.perf_counter()
        loss, acc = self.evaluator._run(strategy, self.coords[rows % len(self.coords)])
        elapsed = time.perf_counter() - start
        for k in np.flatnonzero(rows < len(self.coords)):
            self.results[strategy][int(rows[k])] = (loss[k], None if acc is None else acc[k])
        return elapsed


def _like(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """A copy of ``source`` with ``target``'s device, dtype and memory layout."""
    return torch.empty_like(target).copy_(source)
