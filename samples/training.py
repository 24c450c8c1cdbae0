"""The one training loop every recipe uses, and the output folder it writes.

A recipe describes its run as a :class:`Job`; :func:`run` trains it and writes::

    OUT/model.pt               final self-describing checkpoint (engine.io.checkpoints)
    OUT/trajectory/epoch_N.pt  evenly spaced checkpoints, epoch 0 (init) to the last
    OUT/train.npz, test.npz    arrays x, y: exactly the data used
    OUT/history.json           losses (and accuracies) at the evaluated epochs
    OUT/recipe.json            recipe, seed, options; written last, so it marks completion

Reported losses are means over the whole set with the model in eval mode, i.e. what
the engine computes at the same weights, so they double as a consistency check.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from engine.io.checkpoints import save_checkpoint
from engine.io.references import resolve as resolve_reference
from engine.numerics.threads import forward_flops, intra_op_threads, threads_for
from samples.files import prepare_out, write_json, write_npz

# progress(epoch, total_epochs, train_loss) -> None | bool; returning False cancels.
Progress = Callable[[int, int, float], "bool | None"]

OUTPUT_FILES = ("model.pt", "train.npz", "test.npz", "history.json", "recipe.json")
MAX_HISTORY_ROWS = 250  # evaluate every epoch for short runs, ~250 times for long ones


@dataclass
class Job:
    """Everything one training run needs; recipes fill it in, :func:`run` does the rest."""

    recipe: str
    seed: int
    options: dict[str, Any]
    model_factory: str  # reference such as "engine.builtin.models:mlp"
    model_kwargs: dict[str, Any]
    task: str  # "regression" (MSE) or "classification" (cross-entropy)
    train_data: tuple[torch.Tensor, torch.Tensor]
    test_data: tuple[torch.Tensor, torch.Tensor]
    epochs: int
    lr: float
    batch_size: int = 0  # 0 = full batch
    optimizer: str = "adam"
    snapshots: int = 11  # trajectory checkpoints, including epoch 0 and the last epoch
    metadata: dict[str, Any] = field(default_factory=dict)  # extra JSON-like facts (data names, ...)


@dataclass
class TrainResult:
    """Where a recipe wrote its outputs and how the run ended."""

    recipe: str
    out: Path
    checkpoints: list[Path]  # final model.pt: one, or a/ and b/ for the pair
    trajectory: list[Path]  # epoch_N.pt in training order (the pair keeps them in parts)
    metrics: dict[str, float]  # final train_loss, test_loss (+ train_acc, test_acc)
    history: dict[str, list]
    seconds: float
    cancelled: bool = False
    parts: dict[str, "TrainResult"] = field(default_factory=dict)

    @property
    def checkpoint(self) -> Path:
        return self.checkpoints[0]

    def describe(self) -> str:
        """A few human-readable lines for a CLI (``landscape train`` prints them)."""
        if self.parts:
            lines = [f"{self.recipe}: {self.out} ({self.seconds:.1f} s)"]
            lines += [f"  {name}: {part.describe()}" for name, part in self.parts.items()]
            return "\n".join(lines)
        facts = " ".join(f"{k} {v:.4g}" for k, v in self.metrics.items())
        state = " (cancelled)" if self.cancelled else ""
        return f"{self.checkpoint} {facts} in {self.seconds:.1f} s{state}"


def snapshot_epochs(epochs: int, count: int) -> list[int]:
    """``count`` evenly spaced epochs from 0 to ``epochs`` (fewer if there are fewer epochs)."""
    count = max(2, min(count, epochs + 1))
    steps = count - 1
    return sorted({(i * epochs + steps // 2) // steps for i in range(count)})


def evaluate(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], task: str, chunk: int = 2048) -> dict[str, float]:
    """Mean loss (and accuracy) over the whole set in eval mode."""
    x, y = data
    was_training = model.training
    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), chunk):
            out = model(x[start:start + chunk])
            target = y[start:start + chunk]
            if task == "classification":
                total += float(F.cross_entropy(out, target, reduction="sum"))
                correct += int((out.argmax(dim=1) == target).sum())
            else:
                total += float(F.mse_loss(out, target, reduction="sum"))
    model.train(was_training)
    if task == "classification":
        return {"loss": total / len(x), "acc": 100.0 * correct / len(x)}  # percent, as the engine
    return {"loss": total / y.numel()}


def _loss_fn(task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return F.cross_entropy if task == "classification" else F.mse_loss


def _optimizer(job: Job, model: nn.Module) -> torch.optim.Optimizer:
    if job.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=job.lr, momentum=0.9)
    return torch.optim.Adam(model.parameters(), lr=job.lr)


def _train_epoch(model: nn.Module, job: Job, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> None:
    x, y = job.train_data
    loss_fn = _loss_fn(job.task)
    n = len(x)
    batch = n if job.batch_size <= 0 else min(job.batch_size, n)
    model.train()
    if batch == n:
        batches = [(x, y)]  # full batch: no shuffling, no copies
    else:
        order = torch.randperm(n, generator=generator)
        batches = [(x[idx], y[idx]) for idx in order.split(batch)]
    for xb, yb in batches:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(xb), yb).backward()
        optimizer.step()


def build_model(job: Job) -> nn.Module:
    """Build the model with ``torch.manual_seed(job.seed)`` without disturbing the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(job.seed)
        return resolve_reference(job.model_factory)(**job.model_kwargs)


def run(job: Job, out: Path, progress: Progress | None = None) -> TrainResult:
    """Train ``job`` and write its output folder; progress returning False stops early.

    A cancelled run still writes a complete folder for the epoch it reached, with
    ``"cancelled": true`` in the metadata and ``TrainResult.cancelled`` set.
    """
    model = build_model(job)
    batch = len(job.train_data[0]) if job.batch_size <= 0 else job.batch_size
    with intra_op_threads(threads_for(3 * forward_flops(model, job.train_data[0][:batch]))):  # forward + backward
        return _run(job, model, Path(out), progress)


def _run(job: Job, model: nn.Module, out: Path, progress: Progress | None) -> TrainResult:
    started = time.perf_counter()
    out = prepare_out(Path(out), OUTPUT_FILES)
    (out / "trajectory").mkdir(exist_ok=True)
    write_npz(out / "train.npz", *job.train_data)
    write_npz(out / "test.npz", *job.test_data)

    optimizer = _optimizer(job, model)
    generator = torch.Generator().manual_seed(job.seed)
    n_params = sum(p.numel() for p in model.parameters())
    snapshots = set(snapshot_epochs(job.epochs, job.snapshots))
    every = max(1, math.ceil(job.epochs / MAX_HISTORY_ROWS))
    pad = max(4, len(str(job.epochs)))

    history: dict[str, list] = {"epoch": [], "seconds": []}
    trajectory: list[Path] = []
    metrics: dict[str, float] = {}
    cancelled = False

    def checkpoint(path: Path, epoch: int) -> Path:
        metadata = {
            "recipe": job.recipe,
            "seed": job.seed,
            "epoch": epoch,
            "epochs": job.epochs,
            "options": dict(job.options),
            **job.metadata,
            "task": job.task,
            "loss": "cross_entropy" if job.task == "classification" else "mse",
            "n_train": len(job.train_data[0]),
            "n_test": len(job.test_data[0]),
            "n_params": n_params,
            **metrics,
            "cancelled": cancelled,
        }
        return save_checkpoint(path, model_factory=job.model_factory, model_kwargs=job.model_kwargs,
                               state_dict=model.state_dict(), metadata=metadata)

    epoch = 0
    while True:
        if epoch in snapshots or epoch % every == 0 or epoch == job.epochs:
            metrics = {f"{split}_{k}": v for split, data in (("train", job.train_data), ("test", job.test_data))
                       for k, v in evaluate(model, data, job.task).items()}
            history["epoch"].append(epoch)
            history["seconds"].append(round(time.perf_counter() - started, 4))
            for key, value in metrics.items():
                history.setdefault(key, []).append(value)
            if progress is not None and progress(epoch, job.epochs, metrics["train_loss"]) is False:
                cancelled = epoch < job.epochs
        if epoch in snapshots or cancelled:
            trajectory.append(checkpoint(out / "trajectory" / f"epoch_{epoch:0{pad}d}.pt", epoch))
        if epoch == job.epochs or cancelled:
            break
        _train_epoch(model, job, optimizer, generator)
        epoch += 1

    final = checkpoint(out / "model.pt", epoch)
    write_json(out / "history.json", history, indent=None)  # columns: one list per key
    seconds = time.perf_counter() - started
    write_json(out / "recipe.json", {
        "recipe": job.recipe,
        "seed": job.seed,
        "options": dict(job.options),
        "model_factory": job.model_factory,
        "model_kwargs": dict(job.model_kwargs),
        **job.metadata,
        "epoch": epoch,
        "cancelled": cancelled,
        "seconds": round(seconds, 3),
        **metrics,
    })
    return TrainResult(recipe=job.recipe, out=out, checkpoints=[final], trajectory=trajectory,
                       metrics=metrics, history=history, seconds=seconds, cancelled=cancelled)
