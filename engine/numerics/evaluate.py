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
"""

from __future__ import annotations

import ctypes
import sys
import time
from typing import Mapping, Sequence

import numpy as np
import torch
from torch.func import functional_call, vmap

from engine.errors import LandscapeError
from engine.numerics.problem import Problem

STRATEGIES = ("auto", "inplace", "vmap")
# Upper bound on the memory a vmap batch of points may take (stacked weights + activations).
VMAP_MEMORY_BUDGET = 256 * 2**20
# On the CPU, vmap only beat inplace where a point costs well under a millisecond in place
# (width-50 MLP: 0.05 vs 0.1 ms/point); above this it lost on every benchmark case (2-3x),
# so auto does not spend real points on it there.
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
        device = problem.device
        if device.type == "cpu":
            keep_freed_memory()
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
        self.points_per_batch: int | None = None  # vmap: sized from memory on first use
        # auto: (seconds, points) measured per strategy after its warm-up point, and the best
        # per-point time of a block of 4+ points (vmap pays per call: its small first blocks
        # would make it look slower than it runs on whole chunks).
        self._measured: dict[str, tuple[float, int]] = {"inplace": (0.0, 0), "vmap": (0.0, 0)}
        self._best_rate: dict[str, float] = {"inplace": float("inf"), "vmap": float("inf")}
        self._warm: set[str] = set()
        self.timings: dict[str, float] = {}

    # -- public ---------------------------------------------------------------------
    def __call__(self, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Loss and accuracy (percent; None for regression) at each row of ``coords``."""
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, len(self.basis))
        if self.strategy == "auto":
            return self._measure_and_choose(coords)
        return self._run(self.strategy, coords)

    def _run(self, strategy: str, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self._vmap(coords) if strategy == "vmap" else self._inplace(coords)

    def _measure_and_choose(
        self, coords: np.ndarray, min_points: int = 32, min_seconds: float = 0.05
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Evaluate real points with both strategies in growing blocks and keep the faster.

        Nothing is thrown away: every measured point is a point of the grid. A strategy
        is judged after a one-point warm-up, on at least ``min_points`` points or
        ``min_seconds`` of work; a model that vmap cannot run counts as infinitely slow.
        """
        losses = np.empty(len(coords))
        accs = np.empty(len(coords)) if self.problem.classification else None
        position = 0

        def enough(name: str) -> bool:
            seconds, points = self._measured[name]
            return points >= min_points or seconds >= min_seconds

        while position < len(coords) and self.strategy == "auto":
            # In place first; vmap only where in place leaves it a chance.
            strategy = "vmap" if enough("inplace") else "inplace"
            if strategy == "vmap" and self.problem.device.type == "cpu":
                seconds, points = self._measured["inplace"]
                if seconds / max(points, 1) >= VMAP_CPU_MAX_POINT_SECONDS:
                    self._measured["vmap"] = (float("inf"), min_points)
            if enough("inplace") and enough("vmap"):
                self._decide()
                break
            seconds, points = self._measured[strategy]
            size = 1 if strategy not in self._warm else max(2, min(points, 64))
            block = coords[position:position + size]
            start = time.perf_counter()
            try:
                block_loss, block_acc = self._run(strategy, block)
            except Exception:  # noqa: BLE001 - ops without vmap rules, TorchScript modules
                if strategy == "inplace":
                    raise
                self._measured["vmap"] = (float("inf"), min_points)
                self.restore()
                continue
            elapsed = time.perf_counter() - start
            if strategy in self._warm:
                self._measured[strategy] = (seconds + elapsed, points + len(block))
                if len(block) >= 4:
                    self._best_rate[strategy] = min(self._best_rate[strategy], elapsed / len(block))
            self._warm.add(strategy)
            losses[position:position + len(block)] = block_loss
            if accs is not None and block_acc is not None:
                accs[position:position + len(block)] = block_acc
            position += len(block)
            if enough("inplace") and enough("vmap"):
                self._decide()
        if position < len(coords):
            rest_loss, rest_acc = self._run(self.strategy, coords[position:])
            losses[position:] = rest_loss
            if accs is not None and rest_acc is not None:
                accs[position:] = rest_acc
        return losses, accs

    def _decide(self) -> None:
        rates = {}
        for name, (seconds, points) in self._measured.items():
            average = seconds / max(points, 1)
            rates[name] = min(average, self._best_rate[name])
        self.timings = rates
        self.strategy = "vmap" if rates["vmap"] < rates["inplace"] else "inplace"
        self.restore()

    def restore(self) -> None:
        """Put the origin weights back into the private module."""
        with torch.no_grad():
            torch._foreach_copy_([self.live[n] for n in self.moving], [self.origin[n] for n in self.moving])

    # -- strategies -----------------------------------------------------------------
    def _inplace(self, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Write each point's weights into the module, one pass over the weights per point.

        Weights are ``base + c0 * d0`` with ``base = origin + sum_{k>0} c_k d_k`` cached
        while the other coordinates stay the same (along a grid row), so a point costs
        a single ``add(out=)`` per tensor, and its value depends only on its coordinates.
        """
        problem = self.problem
        losses = np.empty(len(coords))
        accs = np.empty(len(coords)) if problem.classification else None
        live = [self.live[name] for name in self.moving]
        axes = [
            [direction.get(name, torch.zeros_like(self.origin[name])) for name in self.moving]
            for direction in self.basis
        ]
        base_key: tuple[float, ...] | None = None
        base: list[torch.Tensor] = []
        with torch.inference_mode():
            for row, point in enumerate(coords):
                key = tuple(float(c) for c in point[1:])
                if key != base_key:
                    base = [self.origin[name].clone() for name in self.moving]
                    for c, tensors in zip(key, axes[1:]):
                        if c != 0.0:
                            torch._foreach_add_(base, tensors, alpha=c)
                    base_key = key
                for target, b, d in zip(live, base, axes[0]):
                    torch.add(b, d, alpha=float(point[0]), out=target)
                metrics = problem.metrics()
                losses[row] = metrics.loss
                if accs is not None:
                    accs[row] = metrics.acc
        return losses, accs

    def _vmap_batch_size(self) -> int:
        problem = self.problem
        weight_bytes = sum(self.origin[n].numel() * self.origin[n].element_size() for n in self.moving)
        x, _ = problem.batches[0]
        with torch.inference_mode():
            activation_bytes = _activation_bytes(problem.model, x)
        per_point = max(1, weight_bytes + activation_bytes)
        return int(max(1, min(256, VMAP_MEMORY_BUDGET // per_point)))

    def _vmap(self, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
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
                chunk = torch.as_tensor(coords[start:start + step], device=problem.device)
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
                for x, y in problem.batches:
                    batch_loss, batch_correct = batched(stacked, x, y)
                    loss_sum += batch_loss.double()
                    correct += batch_correct.double()
                losses[start:start + len(chunk)] = (loss_sum / problem.n).cpu().numpy()
                if accs is not None:
                    accs[start:start + len(chunk)] = (100.0 * correct / problem.n).cpu().numpy()
        return losses, accs


def _like(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """A copy of ``source`` with ``target``'s device, dtype and memory layout."""
    return torch.empty_like(target).copy_(source)


def _activation_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of all module outputs for one forward: a bound on what one vmapped point adds."""
    total = 0

    def hook(_module, _inputs, output):
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return total
