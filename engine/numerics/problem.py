"""A model, its data and a loss: the one object that turns weights into numbers.

Surfaces evaluate it at grid points today; mode-connecting paths and Hessian
spectra (see ROADMAP) will ask the same object for losses, gradients and
Hessian-vector products, so model/data/loss plumbing lives only here.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.io.data import DataSet
from engine.errors import LandscapeError

LOSSES = ("mse", "cross_entropy")


def resolve_loss(name: str, y: torch.Tensor) -> str:
    """``auto``: integer targets mean classification (cross entropy), float targets regression (MSE)."""
    if name == "auto":
        if y.dtype.is_floating_point:
            return "mse"
        if y.dtype in (torch.bool, torch.complex64, torch.complex128):
            raise LandscapeError(f"cannot choose a loss for targets of dtype {y.dtype}; pass --loss mse or cross_entropy")
        return "cross_entropy"
    if name not in LOSSES:
        raise LandscapeError(f"unknown loss '{name}'; choose auto, mse or cross_entropy")
    return name


@dataclass(frozen=True)
class Metrics:
    """Mean loss over the whole data set, and accuracy in percent (None for regression)."""

    loss: float
    acc: float | None


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str | None) -> torch.device:
    if name in (None, "", "auto"):
        return default_device()
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise LandscapeError(f"unknown device '{name}'; use cpu or cuda (or cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LandscapeError(f"--device {name} was asked for but this machine has no CUDA device; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise LandscapeError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise LandscapeError(f"--device {name} was asked for but this machine has no MPS device; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise LandscapeError(f"device '{name}' is not supported; use cpu or cuda")
    return device


class Problem:
    """Loss and accuracy of a model on a data set, at the weights its tensors hold.

    The module is the engine's private copy (``copy_model=True`` makes one), in eval
    mode, on ``device``; callers may write its parameters in place (see
    :mod:`engine.numerics.evaluate`). Data is moved to the device once and kept there.
    """

    def __init__(
        self,
        model: nn.Module,
        data: DataSet,
        loss: str = "auto",
        device: torch.device | str | None = None,
        batch_size: int | None = None,
        copy_model: bool = True,
    ) -> None:
        self.device = torch.device(device) if device is not None else default_device()
        if batch_size is not None and int(batch_size) < 1:
            raise LandscapeError("--batch-size must be at least 1")
        if copy_model:
            with torch.no_grad():  # deep-copying a ScriptModule under autograd gives non-leaf parameters
                model = copy.deepcopy(model)
        self.model = model.to(self.device).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.loss_name = resolve_loss(loss, data.y)
        self.dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float32)
        x = data.x.to(self.device)
        if x.is_floating_point():
            x = x.to(self.dtype)
        y = data.y.to(self.device)
        if self.loss_name == "cross_entropy":
            if y.is_floating_point():
                raise LandscapeError("cross_entropy needs integer class labels in y; use --loss mse for float targets")
            y = y.long()
        else:
            y = y.to(self.dtype)
        self.x, self.y = x, y
        self.n = int(x.shape[0])
        self.batch_size = int(batch_size) if batch_size else (self.n if self.n <= 4096 else 2048)
        self.batches = [(x[i:i + self.batch_size], y[i:i + self.batch_size]) for i in range(0, self.n, self.batch_size)]
        self.classification = self.loss_name == "cross_entropy"
        self.channels_last = self._use_channels_last()

    def _use_channels_last(self) -> bool:
        """Image models on the CPU run in NHWC: oneDNN convolutions skip layout reorders and
        pooling vectorizes over channels (small CNN, 1437 8x8 images: max-pool 4.4 -> 0.5 ms,
        a forward 8.5 -> 5.5 ms). Kept only if the model runs that way (code that ``view``s
        an activation assuming NCHW strides raises, and then NCHW stays)."""
        if self.device.type != "cpu" or self.x.dim() != 4 or not any(isinstance(m, nn.Conv2d) for m in self.model.modules()):
            return False
        batches = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in self.batches]
        self.model.to(memory_format=torch.channels_last)
        try:
            with torch.inference_mode():
                self.model(batches[0][0][:2])
        except Exception:  # noqa: BLE001 - user code that assumes NCHW
            self.model.to(memory_format=torch.contiguous_format)
            return False
        self.batches = batches
        return True

    # -- what is evaluated -------------------------------------------------------------
    def batch_sums(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed loss, number correct) of one batch; pure tensor ops so vmap can batch it."""
        if self.classification:
            if output.dim() != 2:
                output = output.reshape(output.shape[0], -1)
            loss_sum = F.cross_entropy(output, target, reduction="sum")
            correct = (output.argmax(dim=1) == target).sum()
            return loss_sum, correct
        if output.shape != target.shape:
            target = target.reshape(output.shape)
        # Mean over every element (torch's MSELoss), so sum per element here.
        loss_sum = F.mse_loss(output, target, reduction="sum") / max(1, math.prod(output.shape[1:]))
        return loss_sum, torch.zeros((), device=output.device)

    def check_output(self) -> None:
        """Fail early, with one line, when the model and the data do not go together."""
        x, y = self.batches[0]
        try:
            with torch.inference_mode():
                output = self.model(x[:2])
        except Exception as exc:  # noqa: BLE001 - any shape error from user code
            raise LandscapeError(
                f"the model cannot take this data: inputs of shape {tuple(self.x.shape[1:])} gave "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from exc
        if not isinstance(output, torch.Tensor):
            raise LandscapeError(f"the model returns a {type(output).__name__}; Landscape needs it to return one tensor")
        if self.classification:
            classes = output.reshape(output.shape[0], -1).shape[1]
            top = int(self.y.max())
            if int(self.y.min()) < 0 or top >= classes:
                raise LandscapeError(
                    f"labels go up to {top} but the model gives {classes} outputs; check --model-kwargs or --loss"
                )
        elif output[:2].numel() != y[:2].numel():
            raise LandscapeError(
                f"the model gives outputs of shape {tuple(output.shape[1:])} but targets have shape "
                f"{tuple(y.shape[1:])}; check the model or use --loss cross_entropy for class labels"
            )

    def metrics(self) -> Metrics:
        """Loss and accuracy at the weights the module holds now."""
        with torch.inference_mode():
            if self.device.type == "cpu":
                # No device to sync with: add each batch's sums as Python floats (float64, like
                # the .double() sums below) and skip ~8 tiny tensor ops per point.
                loss_sum = correct = 0.0
                for x, y in self.batches:
                    batch_loss, batch_correct = self.batch_sums(self.model(x), y)
                    loss_sum += batch_loss.item()
                    if self.classification:
                        correct += batch_correct.item()
                return Metrics(loss_sum / self.n, 100.0 * correct / self.n if self.classification else None)
            loss_sum: torch.Tensor | float = 0.0
            correct: torch.Tensor | float = 0.0
            for x, y in self.batches:
                batch_loss, batch_correct = self.batch_sums(self.model(x), y)
                # float64 accumulation: many batches of float32 sums lose digits otherwise.
                loss_sum = loss_sum + batch_loss.double()
                correct = correct + batch_correct.double()
            values = torch.stack([loss_sum, correct]).tolist()  # one device sync per point
        return Metrics(values[0] / self.n, 100.0 * values[1] / self.n if self.classification else None)
