"""A model, its data and a loss: the one object that turns weights into numbers.

Surfaces evaluate it at grid points; mode-connecting paths and Hessian spectra ask the
same object for losses, gradients and Hessian-vector products, so model/data/loss
plumbing lives only here.

Two ways in:

* the **fast path for grids**: write weights into the private module (``problem.model``)
  and call :meth:`Problem.metrics` (see :mod:`engine.numerics.evaluate`);
* the **functional core**: pure functions of a parameter dict through
  ``torch.func.functional_call`` -- :meth:`Problem.loss`, :meth:`Problem.metrics_at`,
  :meth:`Problem.gradient`, :meth:`Problem.hessian`, :meth:`Problem.bn_statistics`.
  They never write into the module.

**Mode.** ``mode="eval"`` (the default) normalizes with BatchNorm's running statistics;
``mode="train"`` with each batch's own statistics, as in training. The mode is chosen
explicitly and recorded (``problem.mode``); it never changes behind the caller's back.
In train mode the running statistics are never updated, so every value is a pure
function of the weights; dropout stays off in both modes for the same reason.

**Memory budget** (``memory_budget`` bytes, default :data:`DEFAULT_MEMORY_BUDGET`; a
fixed number, never read from the free memory, so that the same command gives the same
bits on a busy machine):

=================================  ======  ==================================================
what                               share   effect
=================================  ======  ==================================================
data on the device                 1/2     larger data is streamed from its source every pass
retained Hessian graphs            1/4     else double backward rebuilds them per product
one batch's activations            1/8     caps the default batch size
a vmap stack of points             1/8     points per vmap call (engine.numerics.evaluate)
=================================  ======  ==================================================
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jvp
from torch.nn.modules.batchnorm import _BatchNorm

from engine.errors import LandscapeError
from engine.io.data import DataSet

LOSSES = ("mse", "cross_entropy")
MODES = ("eval", "train")
HVP_METHODS = ("auto", "double_backward", "forward_over_reverse")
DEFAULT_MEMORY_BUDGET = 2 * 2**30
RESIDENT_DATA_SHARE = 1 / 2
RETAINED_GRAPH_SHARE = 1 / 4
BATCH_ACTIVATION_SHARE = 1 / 8
VMAP_STACK_SHARE = 1 / 8
# Today's batch rule, kept so that existing files give the same bits: all samples up to
# this many, else batches of DEFAULT_BATCH (then capped by the activation budget).
ONE_BATCH_MAX, DEFAULT_BATCH = 4096, 2048
# auto Hessian-vector products. The first FOR_TRIAL_AFTER products use double backward (the
# second is timed). Forward-over-reverse is tried only on longer runs (products FOR_TRIAL_AFTER + 1
# and + 2, the second timed) and only when a double-backward product takes FOR_TRIAL_SECONDS: its
# first calls cost 0.25-1 s of one-off set-up in torch.func and 2x a product after that, which a
# short run (a top eigenvalue: 5-10 products) never pays back. The faster is kept; one timed
# product is noisy on a shared machine, so forward-over-reverse must be FOR_MARGIN faster.
FOR_TRIAL_AFTER = 16
FOR_TRIAL_SECONDS = 5e-3
FOR_MARGIN = 0.9

Tensors = dict[str, torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]


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


def activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of all module outputs for one forward of ``x``: a bound on the activations it keeps."""
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


class Problem:
    """Loss and accuracy of a model on a data set; see the module docstring.

    The module is the engine's private copy (``copy_model=True`` makes one; with
    ``False`` the caller hands its module over), on ``device``, its parameters with
    ``requires_grad=False``; callers may write its weights in place (the fast path).
    """

    def __init__(
        self,
        model: nn.Module,
        data: DataSet,
        loss: str = "auto",
        device: torch.device | str | None = None,
        batch_size: int | None = None,
        copy_model: bool = True,
        *,
        mode: str = "eval",
        memory_budget: int | None = None,
    ) -> None:
        self.device = torch.device(device) if device is not None else default_device()
        if batch_size is not None and int(batch_size) < 1:
            raise LandscapeError("--batch-size must be at least 1")
        if mode not in MODES:
            raise LandscapeError(f"unknown mode '{mode}'; choose eval or train")
        self.memory_budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else int(memory_budget)
        if self.memory_budget < 1:
            raise LandscapeError("the memory budget must be a positive number of bytes")
        self.mode = mode
        if copy_model:
            with torch.no_grad():  # deep-copying a ScriptModule under autograd gives non-leaf parameters
                model = copy.deepcopy(model)
        self.model = model.to(self.device)
        # What the model trains (PyHessian's rule too): the Hessian is taken with respect to these.
        self.trainable = [name for name, p in self.model.named_parameters() if p.requires_grad]
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self._set_mode()
        self.data = data
        self.n = len(data)
        head_x, head_y = data.head(2)
        self.loss_name = resolve_loss(loss, head_y)
        self.classification = self.loss_name == "cross_entropy"
        if self.classification and head_y.is_floating_point():
            raise LandscapeError("cross_entropy needs integer class labels in y; use --loss mse for float targets")
        self.dtype = next((p.dtype for p in self.model.parameters() if p.is_floating_point()), torch.float32)
        self.channels_last = False
        self.channels_last = self._use_channels_last(self._prepare(head_x, head_y)[0])
        head = self._prepare(head_x, head_y)
        self.batch_size = int(batch_size) if batch_size else self._default_batch_size(head[0])
        sample_bytes = (head[0].nbytes + head[1].nbytes) / len(head[0])
        self.streamed = sample_bytes * self.n > self.memory_budget * RESIDENT_DATA_SHARE
        self._resident = None if self.streamed else list(self._read_batches())
        self._params = {name: p.detach().clone() for name, p in self.model.named_parameters()}
        self._buffers = {name: b.detach().clone() for name, b in self.model.named_buffers()}

    # -- set-up ---------------------------------------------------------------------------
    def _set_mode(self) -> None:
        """Eval everywhere; in train mode BatchNorm normalizes with batch statistics and tracks none."""
        self.model.eval()
        if self.mode == "eval":
            return
        if isinstance(self.model, torch.jit.ScriptModule):
            raise LandscapeError("train mode needs a Python nn.Module; a TorchScript model cannot switch its BatchNorm alone")
        for module in self.model.modules():
            if isinstance(module, _BatchNorm):
                module.train()
                module.track_running_stats = False  # batch statistics, running ones left as they are

    def _prepare(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        """A chunk of the data as the model takes it: on the device, in its dtype and layout."""
        x = x.to(self.device)
        if x.is_floating_point():
            x = x.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = y.to(self.device)
        return x, (y.long() if self.classification else y.to(self.dtype))

    def _use_channels_last(self, x: torch.Tensor) -> bool:
        """Image models on the CPU run in NHWC: oneDNN convolutions skip layout reorders and
        pooling vectorizes over channels (small CNN, 1437 8x8 images: max-pool 4.4 -> 0.5 ms,
        a forward 8.5 -> 5.5 ms). Kept only if the model runs that way (code that ``view``s
        an activation assuming NCHW strides raises, and then NCHW stays)."""
        if self.device.type != "cpu" or x.dim() != 4 or not any(isinstance(m, nn.Conv2d) for m in self.model.modules()):
            return False
        self.model.to(memory_format=torch.channels_last)
        try:
            with torch.inference_mode():
                self.model(x[:2].contiguous(memory_format=torch.channels_last))
        except Exception:  # noqa: BLE001 - user code that assumes NCHW
            self.model.to(memory_format=torch.contiguous_format)
            return False
        return True

    def _default_batch_size(self, x: torch.Tensor) -> int:
        """All samples up to ONE_BATCH_MAX, else DEFAULT_BATCH (as before, so files keep their
        bits), capped so that one batch's activations stay within their share of the budget.

        Activations are measured with forward hooks on (at most) two samples; a model that
        cannot take the data is left to :meth:`check_output` to report.
        """
        rule = self.n if self.n <= ONE_BATCH_MAX else DEFAULT_BATCH
        try:
            with torch.inference_mode():
                per_sample = activation_bytes(self.model, x) / len(x)
        except Exception:  # noqa: BLE001 - reported by check_output
            return rule
        cap = int(self.memory_budget * BATCH_ACTIVATION_SHARE // max(per_sample, 1.0))
        return max(1, min(rule, cap))

    # -- data -------------------------------------------------------------------------------
    def batches(self) -> Iterator[Batch]:
        """(x, y) batches on the device, in order: kept there when the data fits, read from the source otherwise.

        Both give the same batches, so the same bits: resident batches are the streamed ones, kept.
        """
        return iter(self._resident) if self._resident is not None else self._read_batches()

    def _read_batches(self) -> Iterator[Batch]:
        for x, y in self.data.chunks(self.batch_size):
            yield self._prepare(x, y)

    # -- weights ----------------------------------------------------------------------------
    def origin(self) -> Mapping[str, torch.Tensor]:
        """The parameters and buffers the problem was built with, read-only and not copied: the point
        every direction starts from (callers that change weights copy what they change)."""
        return MappingProxyType({**self._params, **self._buffers})

    def params(self) -> Tensors:
        """Copies of the parameters the problem was built with (name -> tensor, the module's layout)."""
        return {name: p.clone() for name, p in self._params.items()}

    def buffers(self) -> Tensors:
        """Copies of the buffers (BatchNorm statistics, ...) the problem was built with."""
        return {name: b.clone() for name, b in self._buffers.items()}

    def _state(self, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor] | None) -> Tensors:
        """Parameters and buffers for functional_call; every parameter must be named, no other name."""
        missing = sorted(set(self._params) - set(params))
        unknown = sorted(set(params) - set(self._params))
        if missing or unknown:
            raise LandscapeError(
                f"the weights do not fit the model: {len(missing)} parameter(s) missing ({', '.join(missing[:3])}), "
                f"{len(unknown)} unknown ({', '.join(unknown[:3])})"
            )
        return {**(self._buffers if buffers is None else buffers), **params}

    # -- what is evaluated ------------------------------------------------------------------
    def batch_sums(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed loss, number correct) of one batch; pure tensor ops so vmap and autograd can batch it."""
        loss_sum = self._loss_sum(output, target)
        if not self.classification:
            return loss_sum, torch.zeros((), device=output.device)
        return loss_sum, (output.reshape(output.shape[0], -1).argmax(dim=1) == target).sum()

    def _loss_sum(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.classification:
            return F.cross_entropy(output.reshape(output.shape[0], -1), target, reduction="sum")
        if output.shape != target.shape:
            target = target.reshape(output.shape)
        # Mean over every element (torch's MSELoss), so sum per element here. Written out because
        # jvp over grad through F.mse_loss / nn.MSELoss raises "ZeroTensors are immutable" on
        # torch 2.13; mse_loss computes the same d*d and sum, so the bits are the same as before.
        return ((output - target) ** 2).sum() / max(1, math.prod(output.shape[1:]))

    def _batch_loss_sum(self, state: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._loss_sum(functional_call(self.model, dict(state), (x,)), y)

    def loss(self, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor] | None, batch: Batch) -> torch.Tensor:
        """Mean loss over one batch at ``params``; differentiable with respect to them.

        ``buffers=None`` takes the problem's own. A pure function: nothing is written anywhere.
        """
        x, y = batch
        return self._batch_loss_sum(self._state(params, buffers), x, y) / len(x)

    def check_output(self) -> None:
        """Fail early, with one line, when the model and the data do not go together."""
        x, y = self._prepare(*self.data.head(2))
        try:
            with torch.inference_mode():
                output = self.model(x)
        except Exception as exc:  # noqa: BLE001 - any shape error from user code
            raise LandscapeError(
                f"the model cannot take this data: inputs of shape {tuple(x.shape[1:])} gave "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            ) from exc
        if not isinstance(output, torch.Tensor):
            raise LandscapeError(f"the model returns a {type(output).__name__}; Landscape needs it to return one tensor")
        if self.classification:
            classes = output.reshape(output.shape[0], -1).shape[1]
            low, high = self.data.label_range()
            if low < 0:
                raise LandscapeError(
                    f"y holds the negative label {low}; the model's {classes} outputs take labels 0..{classes - 1}"
                )
            if high >= classes:
                raise LandscapeError(
                    f"labels go up to {high} but the model gives {classes} outputs (labels 0..{classes - 1}); "
                    "check --model-kwargs or --loss"
                )
        elif output[:2].numel() != y[:2].numel():
            raise LandscapeError(
                f"the model gives outputs of shape {tuple(output.shape[1:])} but targets have shape "
                f"{tuple(y.shape[1:])}; check the model or use --loss cross_entropy for class labels"
            )

    def metrics(self) -> Metrics:
        """Loss and accuracy at the weights the module holds now (the fast path for grids)."""
        return self._metrics(self.model)

    def metrics_at(self, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor] | None = None) -> Metrics:
        """Loss and accuracy at ``params`` (and ``buffers``; None: the problem's own), without touching the module.

        Bit for bit what writing those tensors into the module and calling :meth:`metrics` gives,
        when they are in the module's layout (as :meth:`params` returns them).
        """
        state = self._state(params, buffers)
        return self._metrics(lambda x: functional_call(self.model, state, (x,)))

    def _metrics(self, forward: Callable[[torch.Tensor], torch.Tensor]) -> Metrics:
        with torch.inference_mode():
            if self.device.type == "cpu":
                # No device to sync with: add each batch's sums as Python floats (float64, like
                # the .double() sums below) and skip ~8 tiny tensor ops per point.
                loss_sum = correct = 0.0
                for x, y in self.batches():
                    batch_loss, batch_correct = self.batch_sums(forward(x), y)
                    loss_sum += batch_loss.item()
                    if self.classification:
                        correct += batch_correct.item()
                return self.metrics_from_sums(loss_sum, correct)
            loss_total: torch.Tensor | float = 0.0
            correct_total: torch.Tensor | float = 0.0
            for x, y in self.batches():
                batch_loss, batch_correct = self.batch_sums(forward(x), y)
                # float64 accumulation: many batches of float32 sums lose digits otherwise.
                loss_total = loss_total + batch_loss.double()
                correct_total = correct_total + batch_correct.double()
            values = torch.stack([torch.as_tensor(loss_total), torch.as_tensor(correct_total)]).tolist()  # one sync
        return self.metrics_from_sums(values[0], values[1])

    def metrics_from_sums(self, loss_sum: float, correct: float) -> Metrics:
        """Metrics from float64 sums over all batches (of :meth:`batch_sums`, added in batch order)."""
        return Metrics(loss_sum / self.n, 100.0 * correct / self.n if self.classification else None)

    # -- derivatives ------------------------------------------------------------------------
    def gradient(self, params: Mapping[str, torch.Tensor], buffers: Mapping[str, torch.Tensor] | None = None) -> Tensors:
        """Gradient of the mean loss over all the data at ``params``.

        Each batch contributes the gradient of its loss sum divided by n, i.e. its mean
        loss's gradient weighted by its size, so the total is the full-batch gradient.
        """
        state = self._state(params, buffers)
        fixed = {name: t for name, t in state.items() if name not in self._params}
        primal = {name: state[name] for name in self._params}
        total: Tensors | None = None
        for x, y in self.batches():
            g = grad(lambda p, x=x, y=y: self._batch_loss_sum({**fixed, **p}, x, y) / self.n)(primal)
            total = g if total is None else {name: total[name].add_(g[name]) for name in total}
        assert total is not None  # a data set has at least one sample
        return total

    def hessian(
        self,
        params: Mapping[str, torch.Tensor],
        buffers: Mapping[str, torch.Tensor] | None = None,
        method: str = "auto",
        retain: bool | None = None,
        wrt: Sequence[str] | None = None,
    ) -> HessianOperator:
        """The Hessian of the mean loss over all the data at ``params``, as an operator ``v -> H v``.

        ``method``: ``double_backward`` (autograd through each batch's gradient graph),
        ``forward_over_reverse`` (``torch.func.jvp`` of ``torch.func.grad``) or ``auto``
        (times both on its first products, then keeps the faster; see
        :class:`HessianOperator`). ``retain``: keep double backward's graphs between
        products (None: when they fit their share of the memory budget). ``wrt``: the parameters
        the Hessian is taken with respect to (None: all; the others are held fixed).
        """
        if method not in HVP_METHODS:
            raise LandscapeError(f"unknown Hessian-vector method '{method}'; choose one of {', '.join(HVP_METHODS)}")
        state = self._state(params, buffers)
        names = list(self._params) if wrt is None else [name for name in self._params if name in set(wrt)]
        unknown = sorted(set(wrt or ()) - set(self._params))
        if unknown or not names:
            raise LandscapeError(f"the Hessian needs at least one of the model's parameters to vary; got "
                                 f"{', '.join(unknown[:3]) or 'none'}")
        return HessianOperator(self, state, names, method, retain)

    def bn_statistics(
        self, params: Mapping[str, torch.Tensor], max_samples: int | None = None, seed: int = 0
    ) -> Tensors:
        """BatchNorm running statistics re-estimated at ``params`` over the data (or a seeded subset).

        As Garipov et al.'s ``bn_update``: reset the running mean/var, then run train-mode
        forwards with momentum ``b / (seen + b)`` per batch of ``b`` samples, so the running
        mean ends as the exact mean over the data and the running variance as the
        size-weighted mean of the batches' (unbiased) variances. Returns all buffers (the
        others unchanged); the module and the problem's own buffers are left as they were.
        """
        state = self._state(params, None)
        buffers = self.buffers()
        norms = {name: m for name, m in self.model.named_modules() if isinstance(m, _BatchNorm) and m.running_mean is not None}
        if not norms:
            return buffers
        for name in norms:
            buffers[f"{name}.running_mean"].zero_()
            buffers[f"{name}.running_var"].fill_(1.0)
            if f"{name}.num_batches_tracked" in buffers:
                buffers[f"{name}.num_batches_tracked"].zero_()
        state.update(buffers)  # functional_call updates these tensors in place
        saved = [(m, m.training, m.track_running_stats, m.momentum) for m in norms.values()]
        seen = 0
        try:
            for module in norms.values():
                module.train()
                module.track_running_stats = True
            with torch.no_grad():
                for x in self._bn_inputs(max_samples, seed):
                    for module in norms.values():
                        module.momentum = len(x) / (seen + len(x))
                    functional_call(self.model, state, (x,))
                    seen += len(x)
        finally:
            for module, training, tracking, momentum in saved:
                module.train(training)
                module.track_running_stats, module.momentum = tracking, momentum
        return buffers

    def _bn_inputs(self, max_samples: int | None, seed: int) -> Iterator[torch.Tensor]:
        """Inputs in batches of batch_size: all the data, or a seeded subset (in data order)."""
        if max_samples is not None and max_samples < 1:
            raise LandscapeError("the number of samples for BatchNorm statistics must be at least 1")
        if max_samples is None or max_samples >= self.n:
            yield from (x for x, _ in self.batches())
            return
        keep = torch.randperm(self.n, generator=torch.Generator().manual_seed(seed))[:max_samples].sort().values.numpy()
        pending: list[torch.Tensor] = []
        count = offset = 0
        for x, _ in self.batches():
            low, high = np.searchsorted(keep, [offset, offset + len(x)])
            if high > low:
                pending.append(x[torch.as_tensor(keep[low:high] - offset, device=x.device)])
                count += int(high - low)
            offset += len(x)
            while count >= self.batch_size:
                joined = torch.cat(pending)
                yield joined[:self.batch_size]
                pending, count = [joined[self.batch_size:]], count - self.batch_size
        if count:
            yield torch.cat(pending)


class HessianOperator:
    """``v -> H v`` for the Hessian H of the mean loss over all the data at fixed weights.

    Vectors are dicts name -> tensor shaped like the parameters. Two methods, both summed
    over the batches in order:

    * ``double_backward``: autograd through each batch's gradient (``create_graph=True``).
      When the graphs of all batches fit their share of the memory budget (measured on
      the first batch with saved-tensor hooks) they are kept between products, and a
      product is one backward pass per batch; otherwise each product rebuilds them.
    * ``forward_over_reverse``: ``torch.func.jvp(torch.func.grad(f))`` per batch.

    ``auto`` computes its first products by double backward and, on longer runs, two by
    forward-over-reverse (all returned: real products, not trials; see ``FOR_TRIAL_AFTER``),
    times the second of each method, and from then on uses the faster one, recorded in ``method``. For the same ``v`` every later product has
    that method's bits; pass the recorded method back to get them from the first product on.
    """

    def __init__(self, problem: Problem, state: Tensors, names: list[str], method: str, retain: bool | None) -> None:
        self.problem = problem
        self.names = names
        # NCHW, whatever layout the problem evaluates in: double backward through channels_last
        # convolutions took 77 ms a product on the digits CNN, 55 ms in NCHW (PyHessian's 52).
        self.params = {name: standard_layout(state[name].detach()) for name in names}
        self.buffers = {name: standard_layout(t) for name, t in state.items() if name not in self.params}
        self.method = method
        self.retain = retain
        self.n_products = 0
        self.timings: dict[str, float] = {}  # auto: seconds of the timed product of each method
        self._leaves: Tensors | None = None
        self._kept: list[tuple[torch.Tensor, ...]] | None = None

    def matvec(self, v: Mapping[str, torch.Tensor]) -> Tensors:
        """H v, a dict shaped like the parameters; every call is one product (``n_products``)."""
        missing = sorted(set(self.names) - set(v))
        if missing:
            raise LandscapeError(f"the vector has no entry for {', '.join(missing[:3])}; give one per parameter")
        method = self.method
        if method == "auto":
            method = "forward_over_reverse" if self.n_products >= FOR_TRIAL_AFTER else "double_backward"
        start = time.perf_counter()
        product = self._double_backward(v) if method == "double_backward" else self._forward_over_reverse(v)
        elapsed = time.perf_counter() - start
        self.n_products += 1
        if self.method == "auto" and self.n_products in (2, FOR_TRIAL_AFTER + 2):  # each method's second product
            self.timings[method] = elapsed
            if self.n_products > 2 or elapsed < FOR_TRIAL_SECONDS:
                self.method = _faster(self.timings)
        return product

    # -- forward over reverse -------------------------------------------------------------
    def _forward_over_reverse(self, v: Mapping[str, torch.Tensor]) -> Tensors:
        problem, buffers = self.problem, self.buffers
        tangent = {name: v[name] for name in self.names}
        total: Tensors | None = None
        for x, y in problem.batches():
            x = standard_layout(x)

            def loss(p: Tensors, x=x, y=y) -> torch.Tensor:
                return problem._batch_loss_sum({**buffers, **p}, x, y) / problem.n

            _, hv = jvp(grad(loss), (self.params,), (tangent,))
            total = hv if total is None else {name: total[name].add_(hv[name]) for name in total}
        assert total is not None
        return total

    # -- double backward ------------------------------------------------------------------
    def _double_backward(self, v: Mapping[str, torch.Tensor]) -> Tensors:
        leaves = self._leaf_params()
        inputs = tuple(leaves.values())
        total: list[torch.Tensor] | None = None  # the first batch's product, then the others added in order
        with torch.enable_grad():
            for grads in self._graphs():
                pairs = [(g, v[name]) for g, name in zip(grads, self.names) if g.requires_grad]
                if not pairs:  # a loss linear in the weights
                    continue
                hv = torch.autograd.grad(
                    [g for g, _ in pairs], inputs, grad_outputs=[u for _, u in pairs],
                    retain_graph=bool(self.retain), allow_unused=True, materialize_grads=True,
                )
                if total is None:
                    total = list(hv)
                else:
                    for t, h in zip(total, hv):
                        t.add_(h)
        if total is None:  # no batch had curvature: a loss linear in the weights
            total = [torch.zeros_like(p) for p in inputs]
        return dict(zip(self.names, total))

    def _leaf_params(self) -> Tensors:
        if self._leaves is None:
            self._leaves = {name: p.detach().requires_grad_() for name, p in self.params.items()}
        return self._leaves

    def _graphs(self) -> Iterator[tuple[torch.Tensor, ...]]:
        """Each batch's gradient with its graph; kept after the first pass when they fit the budget."""
        if self._kept is not None:
            yield from self._kept
            return
        kept: list[tuple[torch.Tensor, ...]] = []
        for x, y in self.problem.batches():
            if self.retain is None:
                grads, nbytes = self._measured_gradient_graph(x, y)
                batches = math.ceil(self.problem.n / len(x))
                self.retain = nbytes * batches <= self.problem.memory_budget * RETAINED_GRAPH_SHARE
            else:
                grads = self._gradient_graph(x, y)
            if self.retain:
                kept.append(grads)
            yield grads
        if self.retain:
            self._kept = kept

    def _gradient_graph(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = standard_layout(x)
        leaves = self._leaf_params()
        loss = self.problem._batch_loss_sum({**self.buffers, **leaves}, x, y) / self.problem.n
        return torch.autograd.grad(loss, tuple(leaves.values()), create_graph=True, allow_unused=True,
                                   materialize_grads=True)

    def _measured_gradient_graph(self, x: torch.Tensor, y: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], int]:
        """The gradient graph of one batch and the bytes its saved tensors hold (each storage once)."""
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            grads = self._gradient_graph(x, y)
        return grads, sum(storages.values())


def _faster(timings: Mapping[str, float]) -> str:
    """The method auto keeps: double backward unless forward-over-reverse is clearly faster (FOR_MARGIN)."""
    other = timings.get("forward_over_reverse")
    if other is not None and other < FOR_MARGIN * timings["double_backward"]:
        return "forward_over_reverse"
    return "double_backward"


def standard_layout(tensor: torch.Tensor) -> torch.Tensor:
    """A 4-D tensor in NCHW strides. ``.contiguous()`` is not enough: a one-channel channels_last
    tensor already counts as contiguous and keeps its strides."""
    n, c, h, w = tensor.shape if tensor.dim() == 4 else (0, 0, 0, 0)
    if tensor.dim() != 4 or tensor.stride() == (c * h * w, h * w, w, 1):
        return tensor
    return torch.empty(tensor.shape, dtype=tensor.dtype, device=tensor.device).copy_(tensor)
