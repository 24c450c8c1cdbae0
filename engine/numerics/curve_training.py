"""Training a curve's bends between fixed endpoints, as Garipov et al. (2018) do, for any model.

Per minibatch one ``t ~ U(0, 1)`` is drawn, the weights ``w(t)`` are formed from the
endpoints and the bends (:func:`engine.numerics.curves.curve_point`), and the loss of
the model at ``w(t)`` (``torch.func.functional_call``) plus ``weight_decay / 2 * |w(t)|^2``
(their ``l2_regularizer``) is minimized over the bends alone. BatchNorm normalizes with
each minibatch's statistics while training, as theirs does; its running statistics are
never touched (a point's statistics are re-estimated when it is evaluated).

An epoch's shuffle and its t's come from a generator seeded by (seed, epoch), so a run
resumed at epoch e continues with exactly the numbers an uninterrupted run would use.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from engine.errors import LandscapeError
from engine.numerics.curves import CurveShape, curve_point
from engine.numerics.problem import Problem
from engine.numerics.threads import forward_flops, intra_op_threads, threads_for

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("garipov", "constant", "cosine")
# The optimizer state kept per parameter, so that a file can hold it from the start.
STATE_KEYS = {"sgd": ("momentum_buffer",), "adam": ("step", "exp_avg", "exp_avg_sq")}

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TrainingSettings:
    """How the bends are trained (recorded in the path file)."""

    epochs: int = 20
    lr: float = 0.015
    optimizer: str = "sgd"  # sgd (with momentum) or adam
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "garipov"  # constant to 50%, linear to 1% by 90%, then 1% (their learning_rate_schedule)
    batch_size: int = 128
    seed: int = 0

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise LandscapeError(f"unknown optimizer '{self.optimizer}'; choose {' or '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise LandscapeError(f"unknown schedule '{self.schedule}'; choose one of {', '.join(SCHEDULES)}")
        if not 1 <= self.epochs <= 1_000_000:
            raise LandscapeError(f"--epochs {self.epochs}: train for 1 to 1,000,000 epochs")
        if not self.lr > 0 or not self.lr < float("inf"):
            raise LandscapeError(f"--lr {self.lr}: the learning rate must be positive and finite")
        if not 0 <= self.momentum < 1:
            raise LandscapeError(f"--momentum {self.momentum}: use a value in [0, 1)")
        if not 0 <= self.weight_decay < float("inf"):
            raise LandscapeError(f"--weight-decay {self.weight_decay}: use a non-negative number")
        if self.batch_size < 1:
            raise LandscapeError("--batch-size must be at least 1")

    def learning_rate(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (0-based) under the schedule.

        ``garipov`` is their ``learning_rate_schedule`` as their ``train.py`` calls it, with
        epochs counted from 1 (so a one-epoch run trains at 1% of ``lr``, as theirs does).
        """
        if self.schedule == "constant":
            return self.lr
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1.0 + float(np.cos(np.pi * epoch / self.epochs)))
        alpha = (epoch + 1) / self.epochs
        factor = 1.0 if alpha <= 0.5 else (1.0 - (alpha - 0.5) / 0.4 * 0.99 if alpha <= 0.9 else 0.01)
        return self.lr * factor

    def state_keys(self) -> tuple[str, ...]:
        if self.optimizer == "sgd" and self.momentum == 0:
            return ()
        return STATE_KEYS[self.optimizer]


@dataclass(frozen=True)
class StepReport:
    """One minibatch: its loss at its t (for a live curve), and where the epoch stands."""

    epoch: int
    step: int
    steps: int
    t: float
    loss: float


class CurveTrainer:
    """The bends as trainable leaves, an optimizer over them, and one epoch at a time."""

    def __init__(self, problem: Problem, shape: CurveShape, a: Mapping[str, torch.Tensor],
                 b: Mapping[str, torch.Tensor], bends: Sequence[Mapping[str, torch.Tensor]],
                 settings: TrainingSettings) -> None:
        self.problem, self.shape, self.settings = problem, shape, settings
        self.names = list(a)
        self.a = {n: a[n].detach().to(problem.device) for n in self.names}
        self.b = {n: b[n].detach().to(problem.device) for n in self.names}
        self.bends = [{n: bend[n].detach().to(problem.device).clone().requires_grad_() for n in self.names}
                      for bend in bends]
        self._data = None if problem.streamed else _joined(problem)
        head = next(iter(problem.batches()))[0][:settings.batch_size]
        self.threads = threads_for(forward_flops(problem.model, head))  # one thread for small minibatches
        leaves = [bend[n] for bend in self.bends for n in self.names]
        if settings.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam(leaves, lr=settings.lr)
        else:
            self.optimizer = torch.optim.SGD(leaves, lr=settings.lr, momentum=settings.momentum)

    # -- optimizer state as parameter-shaped tensors (what the file stores) ---------------------
    def optimizer_state(self) -> dict[str, Tensors]:
        """``{"<bend>.<key>": {name: tensor}}`` for every state key, zeros before the first step."""
        result: dict[str, Tensors] = {}
        for i, bend in enumerate(self.bends, start=1):
            for key in self.settings.state_keys():
                tensors = {}
                for name in self.names:
                    value = self.optimizer.state.get(bend[name], {}).get(key)
                    if value is None:
                        value = torch.zeros(() if key == "step" else bend[name].shape, dtype=torch.float32
                                            if key == "step" else bend[name].dtype)
                    tensors[name] = value.detach().cpu().clone()
                result[f"{i}.{key}"] = tensors
        return result

    def load(self, bends: Sequence[Mapping[str, torch.Tensor]], state: Mapping[str, Mapping[str, torch.Tensor]],
             epoch: int) -> None:
        """Continue from what :meth:`bends_now` and :meth:`optimizer_state` saved after ``epoch`` epochs."""
        with torch.no_grad():
            for leaf, saved in zip(self.bends, bends):
                for name in self.names:
                    leaf[name].copy_(saved[name])
        self.optimizer.state.clear()
        if epoch == 0:
            return
        for i, bend in enumerate(self.bends, start=1):
            for name in self.names:
                entry = {key: state[f"{i}.{key}"][name].to(self.problem.device) for key in self.settings.state_keys()}
                if "step" in entry:
                    entry["step"] = entry["step"].cpu().float()
                if entry:
                    self.optimizer.state[bend[name]] = entry

    def controls(self) -> list[Tensors]:
        """[A, bends..., B], detached: for evaluating points of the curve."""
        return [self.a, *({n: t.detach() for n, t in bend.items()} for bend in self.bends), self.b]

    def bends_now(self) -> list[Tensors]:
        return [{n: t.detach().cpu().clone() for n, t in bend.items()} for bend in self.bends]

    # -- training -------------------------------------------------------------------------------
    def epoch(self, epoch: int, stop: Callable[[], bool]) -> Iterator[StepReport]:
        """Train one epoch (0-based), yielding each minibatch; returns early when ``stop()`` says so."""
        settings = self.settings
        generator = torch.Generator().manual_seed(settings.seed * 1_000_003 + epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = settings.learning_rate(epoch)
        batches = list(self._minibatches(generator))
        ts = torch.rand(len(batches), generator=generator, dtype=torch.float64).tolist()
        controls_fixed = (self.a, self.b)
        with batch_statistics(self.problem.model), torch.enable_grad():
            for step, ((x, y), t) in enumerate(zip(batches, ts)):
                if stop():
                    return
                with intra_op_threads(self.threads):
                    weights = curve_point(self.shape, [controls_fixed[0], *self.bends, controls_fixed[1]], t)
                    loss = self.problem.loss(weights, None, (x, y))
                    objective = loss
                    if settings.weight_decay:
                        objective = loss + 0.5 * settings.weight_decay * sum((w * w).sum() for w in weights.values())
                    self.optimizer.zero_grad(set_to_none=True)
                    objective.backward()
                    self.optimizer.step()
                yield StepReport(epoch, step + 1, len(batches), t, float(loss.detach()))

    def _minibatches(self, generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled minibatches: over all the data when it is on the device, within each chunk when streamed."""
        size = self.settings.batch_size
        for x, y in self._data or self.problem.batches():
            order = torch.randperm(len(x), generator=generator).to(x.device)
            for start in range(0, len(x), size):
                index = order[start:start + size]
                yield x[index], y[index]


def _joined(problem: Problem) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """All the data as one (x, y) pair on the device, made once (it fits: the problem keeps it there)."""
    parts = list(problem.batches())
    return [(torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts]))]


@contextmanager
def batch_statistics(model: torch.nn.Module) -> Iterator[None]:
    """BatchNorm layers normalize with batch statistics and update no running statistics, for the block."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    saved = [(m, m.training, m.track_running_stats) for m in norms]
    try:
        for module in norms:
            module.train()
            module.track_running_stats = False
        yield
    finally:
        for module, training, tracking in saved:
            module.train(training)
            module.track_running_stats = tracking


def has_batchnorm(model: torch.nn.Module) -> bool:
    """True if some BatchNorm layer keeps running statistics (they must be re-estimated along a path)."""
    return any(isinstance(m, _BatchNorm) and m.running_mean is not None for m in model.modules())


__all__ = ["OPTIMIZERS", "SCHEDULES", "CurveTrainer", "StepReport", "TrainingSettings", "batch_statistics",
           "has_batchnorm"]
