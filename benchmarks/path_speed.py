"""How fast does Landscape compute a mode-connecting path, compared with Garipov et al.'s procedure?

Every case joins the same two trained checkpoints A and B, on the same data, two ways:

* ``linear``  the straight line, evaluated at 61 values of t (train and test loss and
              accuracy at each, with BatchNorm statistics re-estimated at each point
              for a model that has BatchNorm);
* ``bezier``  a quadratic Bezier curve (one bend) trained for 300 SGD minibatch steps
              of 128 samples (one t ~ U(0, 1) per step), then evaluated at 61 values of t.

and with two tools:

* ``landscape`` Landscape's engine: ``PathJob(PathRequest(...))`` run to completion
                (loads the checkpoints and the .npz data, trains, writes the .h5 file);
* ``reference`` Garipov et al.'s procedure (github.com/timgaripov/dnn-mode-connectivity,
                "Loss Surfaces, Mode Connectivity, and Fast Ensembling of DNNs", 2018)
                re-implemented in plain PyTorch below: their ``curves.py`` (``Bezier``,
                ``PolyChain``, curve layers with one parameter per control point,
                ``CurveNet``, ``l2_regularizer``), ``train.py`` + ``utils.train`` (the
                training loop) and ``eval_curve.py`` + ``utils.update_bn`` /
                ``utils.test`` (the evaluation). Their linear path is a ``PolyChain``
                with two points and no training.

Steps are minibatch steps: an epoch is ``ceil(n_train / batch)`` steps (the last batch
may be short, in both tools), so 300 steps are 300 epochs of the 100-sample MLP and
25 epochs of the 1437-image CNN.

Fairness: every timed run happens in a fresh Python process after a small warm-up run
of the same tool in that process (imports, oneDNN kernels and torch's optimizer
machinery are not timed), with the same torch thread count; runs of the two tools are
interleaved and the best of ``--repeats`` is reported (the median too). Each tool's
set-up (reading checkpoints and data) is timed. Landscape's job runs with
``baselines=False`` (``--no-baselines``): like Garipov et al.'s procedure it computes
only the requested path, not also the straight line it draws for comparison by default.

Run (from the repository root)::

    python benchmarks/path_speed.py                 # both cases, both tasks, best of 3 (about 10 minutes)
    python benchmarks/path_speed.py --quick         # 60 steps, 21 points, one run each: a smoke test
    python benchmarks/path_speed.py --cases digits-cnn --tasks bezier --repeats 5 --wait-quiet
    python benchmarks/path_speed.py --engine-root /tmp/patched   # time another checkout's engine
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# --engine-root DIR: time another checkout's engine (e.g. one with a proposed patch applied).
ENGINE_ROOT = None
if "--engine-root" in sys.argv[1:-1]:
    ENGINE_ROOT = str(Path(sys.argv[sys.argv.index("--engine-root") + 1]).resolve())
    sys.path.insert(0, ENGINE_ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import Module, Parameter  # noqa: E402
from torch.nn.modules.utils import _pair  # noqa: E402

from machine import (  # noqa: E402 - benchmarks/machine.py, beside this script
    QUIET_BUSY, cpu_jiffies, minor_faults, own_cpu_jiffies, wait_quiet,
)

TOOLS = ("reference", "landscape")
TASKS = ("linear", "bezier")
LR, MOMENTUM = 0.015, 0.9  # Garipov et al.'s README uses --lr=0.015 for curves; momentum is their default
WEIGHT_DECAY = 1e-4  # their train.py default (--wd); Landscape gets the same
SAVE_FREQ = 50  # their train.py default: a checkpoint every 50 epochs (and at the start and the end)
REFERENCE_SEED = 1  # their train.py default --seed
AGREE_REL = 1e-5  # the straight line's endpoint losses must agree this closely
# glibc settings for --malloc-tuned (both tools): keep freed activations in the heap instead of
# returning them to the OS, as Landscape's surface evaluator does with mallopt (see README).
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


# --------------------------------------------------------------------------------------
# Cases: two checkpoints trained by the sample recipes, and their data
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    description: str
    recipe: str
    runs: tuple[tuple[int, str], ...]  # (seed, folder) of each recipe run; A and B are the first and last checkpoints
    a: str  # A's folder (and the data's) under the case folder
    b: str
    bn: bool  # the model has BatchNorm: statistics are re-estimated at each point


CASES = [
    Case("mlp-sine-pair", "MLP 20-50-50-1 (3,651 params), 100 train / 1000 test samples of a 20-D sine; MSE",
         "mlp-sine-pair", ((0, ""),), "a", "b", False),
    Case("digits-cnn", "Conv-BN-ReLU x2 CNN, 16 ch (5,082 params), 1437 train / 360 test 8x8 digits; "
         "cross entropy", "digits-cnn", ((0, "s0"), (1, "s1")), "s0", "s1", True),
]
CASE_BY_NAME = {case.name: case for case in CASES}


@dataclass(frozen=True)
class Files:
    a: str
    b: str
    train: str
    test: str


def case_files(case: Case, workdir: Path) -> Files:
    folder = workdir / case.name
    return Files(str(folder / case.a / "model.pt"), str(folder / case.b / "model.pt"),
                 str(folder / case.a / "train.npz"), str(folder / case.a / "test.npz"))


def setup(case: Case, workdir: Path) -> Files:
    """Train the case's checkpoints with the sample recipes (once; an existing --workdir is reused)."""
    from samples.registry import train

    files = case_files(case, workdir)
    if all(Path(p).is_file() for p in (files.a, files.b, files.train, files.test)):
        return files
    for seed, folder in case.runs:
        print(f"  training {case.recipe} seed {seed}", file=sys.stderr, flush=True)
        result = train(case.recipe, workdir / case.name / folder, seed=seed)
        if result.cancelled:
            raise RuntimeError(f"training {case.recipe} was cancelled")
    return files


def load_npz(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(path) as archive:
        return torch.from_numpy(archive["x"]), torch.from_numpy(archive["y"])


def steps_per_epoch(files: Files, batch_size: int) -> int:
    with np.load(files.train) as archive:
        return math.ceil(len(archive["y"]) / batch_size)


# ======================================================================================
# The reference: Garipov et al.'s dnn-mode-connectivity, re-implemented in plain PyTorch.
# curves.py: Bezier, PolyChain, CurveModule, Linear, Conv2d, _BatchNorm, BatchNorm2d,
# CurveNet, l2_regularizer (as in their repository; scipy's binom as theirs).
# ======================================================================================
class Bezier(Module):
    def __init__(self, num_bends):
        super().__init__()
        from scipy.special import binom

        self.register_buffer("binom", torch.Tensor(binom(num_bends - 1, np.arange(num_bends), dtype=np.float32)))
        self.register_buffer("range", torch.arange(0, float(num_bends)))
        self.register_buffer("rev_range", torch.arange(float(num_bends - 1), -1, -1))

    def forward(self, t):
        return self.binom * torch.pow(t, self.range) * torch.pow((1.0 - t), self.rev_range)


class PolyChain(Module):
    def __init__(self, num_bends):
        super().__init__()
        self.num_bends = num_bends
        self.register_buffer("range", torch.arange(0, float(num_bends)))

    def forward(self, t):
        t_n = t * (self.num_bends - 1)
        return torch.max(self.range.new([0.0]), 1.0 - torch.abs(t_n - self.range))


class CurveModule(Module):
    def __init__(self, fix_points, parameter_names=()):
        super().__init__()
        self.fix_points = fix_points
        self.num_bends = len(self.fix_points)
        self.parameter_names = parameter_names
        self.l2 = 0.0

    def compute_weights_t(self, coeffs_t):
        w_t = [None] * len(self.parameter_names)
        self.l2 = 0.0
        for i, parameter_name in enumerate(self.parameter_names):
            for j, coeff in enumerate(coeffs_t):
                parameter = getattr(self, "%s_%d" % (parameter_name, j))
                if parameter is not None:
                    if w_t[i] is None:
                        w_t[i] = parameter * coeff
                    else:
                        w_t[i] += parameter * coeff
            if w_t[i] is not None:
                self.l2 += torch.sum(w_t[i] ** 2)
        return w_t


class CurveLinear(CurveModule):  # their curves.Linear
    def __init__(self, in_features, out_features, fix_points, bias=True):
        super().__init__(fix_points, ("weight", "bias"))
        self.in_features = in_features
        self.out_features = out_features
        self.l2 = 0.0
        for i, fixed in enumerate(self.fix_points):
            self.register_parameter("weight_%d" % i,
                                    Parameter(torch.Tensor(out_features, in_features), requires_grad=not fixed))
        for i, fixed in enumerate(self.fix_points):
            if bias:
                self.register_parameter("bias_%d" % i, Parameter(torch.Tensor(out_features), requires_grad=not fixed))
            else:
                self.register_parameter("bias_%d" % i, None)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.in_features)
        for i in range(self.num_bends):
            getattr(self, "weight_%d" % i).data.uniform_(-stdv, stdv)
            bias = getattr(self, "bias_%d" % i)
            if bias is not None:
                bias.data.uniform_(-stdv, stdv)

    def forward(self, input, coeffs_t):
        weight_t, bias_t = self.compute_weights_t(coeffs_t)
        return F.linear(input, weight_t, bias_t)


class CurveConv2d(CurveModule):  # their curves.Conv2d
    def __init__(self, in_channels, out_channels, kernel_size, fix_points, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__(fix_points, ("weight", "bias"))
        kernel_size = _pair(kernel_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dilation, self.groups = _pair(stride), _pair(padding), _pair(dilation), groups
        for i, fixed in enumerate(self.fix_points):
            self.register_parameter("weight_%d" % i, Parameter(
                torch.Tensor(out_channels, in_channels // groups, *kernel_size), requires_grad=not fixed))
        for i, fixed in enumerate(self.fix_points):
            if bias:
                self.register_parameter("bias_%d" % i, Parameter(torch.Tensor(out_channels), requires_grad=not fixed))
            else:
                self.register_parameter("bias_%d" % i, None)
        self.reset_parameters()

    def reset_parameters(self):
        n = self.in_channels
        for k in self.kernel_size:
            n *= k
        stdv = 1.0 / math.sqrt(n)
        for i in range(self.num_bends):
            getattr(self, "weight_%d" % i).data.uniform_(-stdv, stdv)
            bias = getattr(self, "bias_%d" % i)
            if bias is not None:
                bias.data.uniform_(-stdv, stdv)

    def forward(self, input, coeffs_t):
        weight_t, bias_t = self.compute_weights_t(coeffs_t)
        return F.conv2d(input, weight_t, bias_t, self.stride, self.padding, self.dilation, self.groups)


class CurveBatchNorm(CurveModule):  # their curves._BatchNorm
    def __init__(self, num_features, fix_points, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(fix_points, ("weight", "bias"))
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.l2 = 0.0
        for i, fixed in enumerate(self.fix_points):
            self.register_parameter("weight_%d" % i, Parameter(torch.Tensor(num_features), requires_grad=not fixed)
                                    if affine else None)
        for i, fixed in enumerate(self.fix_points):
            self.register_parameter("bias_%d" % i, Parameter(torch.Tensor(num_features), requires_grad=not fixed)
                                    if affine else None)
        if self.track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.reset_parameters()

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            for i in range(self.num_bends):
                getattr(self, "weight_%d" % i).data.uniform_()
                getattr(self, "bias_%d" % i).data.zero_()

    def forward(self, input, coeffs_t):
        if input.dim() != 4:  # their BatchNorm2d._check_input_dim
            raise ValueError("expected 4D input (got {}D input)".format(input.dim()))
        exponential_average_factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            if self.momentum is None:
                exponential_average_factor = 1.0 / self.num_batches_tracked.item()
            else:
                exponential_average_factor = self.momentum
        weight_t, bias_t = self.compute_weights_t(coeffs_t)
        return F.batch_norm(input, self.running_mean, self.running_var, weight_t, bias_t,
                            self.training or not self.track_running_stats, exponential_average_factor, self.eps)


class CurveNet(Module):
    def __init__(self, num_classes, curve, architecture, num_bends, fix_start=True, fix_end=True,
                 architecture_kwargs={}):  # noqa: B006 - their signature
        super().__init__()
        self.num_classes = num_classes
        self.num_bends = num_bends
        self.fix_points = [fix_start] + [False] * (self.num_bends - 2) + [fix_end]
        self.curve = curve
        self.architecture = architecture
        self.l2 = 0.0
        self.coeff_layer = self.curve(self.num_bends)
        self.net = self.architecture(num_classes, fix_points=self.fix_points, **architecture_kwargs)
        self.curve_modules = [m for m in self.net.modules() if issubclass(m.__class__, CurveModule)]

    def import_base_parameters(self, base_model, index):
        parameters = list(self.net.parameters())[index::self.num_bends]
        for parameter, base_parameter in zip(parameters, base_model.parameters()):
            parameter.data.copy_(base_parameter.data)

    def init_linear(self):
        parameters = list(self.net.parameters())
        for i in range(0, len(parameters), self.num_bends):
            weights = parameters[i:i + self.num_bends]
            for j in range(1, self.num_bends - 1):
                alpha = j * 1.0 / (self.num_bends - 1)
                weights[j].data.copy_(alpha * weights[-1].data + (1.0 - alpha) * weights[0].data)

    def weights(self, t):
        coeffs_t = self.coeff_layer(t)
        weights = []
        for module in self.curve_modules:
            weights.extend([w for w in module.compute_weights_t(coeffs_t) if w is not None])
        return np.concatenate([w.detach().cpu().numpy().ravel() for w in weights])

    def _compute_l2(self):
        self.l2 = sum(module.l2 for module in self.curve_modules)

    def forward(self, input, t=None):
        if t is None:
            t = input.data.new(1).uniform_()
        coeffs_t = self.coeff_layer(t)
        output = self.net(input, coeffs_t)
        self._compute_l2()
        return output


def l2_regularizer(weight_decay):
    return lambda model: 0.5 * weight_decay * model.l2


# Their models/*.py give each architecture a `base` and a `curve` twin; these are the curve
# twins of the sample models (engine.builtin.models.mlp and small_cnn), parameter for parameter
# in the same order, so import_base_parameters maps A and B onto them.
class MLPCurve(Module):
    def __init__(self, num_classes, fix_points, in_dim=20, width=50, depth=2):
        super().__init__()
        layers, previous = [], in_dim
        for _ in range(depth):
            layers.append(CurveLinear(previous, width, fix_points))
            previous = width
        self.hidden = nn.ModuleList(layers)
        self.out = CurveLinear(previous, num_classes, fix_points)

    def forward(self, x, coeffs_t):
        for layer in self.hidden:
            x = F.relu(layer(x, coeffs_t))
        return self.out(x, coeffs_t)


class SmallCNNCurve(Module):
    def __init__(self, num_classes, fix_points, channels=16):
        super().__init__()
        self.conv1 = CurveConv2d(1, channels, 3, fix_points, padding=1, bias=False)
        self.bn1 = CurveBatchNorm(channels, fix_points)
        self.conv2 = CurveConv2d(channels, channels, 3, fix_points, padding=1, bias=False)
        self.bn2 = CurveBatchNorm(channels, fix_points)
        self.fc = CurveLinear(channels * 4 * 4, num_classes, fix_points)

    def forward(self, x, coeffs_t):
        x = F.relu(self.bn1(self.conv1(x, coeffs_t), coeffs_t))
        x = F.relu(self.bn2(self.conv2(x, coeffs_t), coeffs_t))
        x = F.max_pool2d(x, 2)
        x = x.view(x.size(0), -1)
        return self.fc(x, coeffs_t)


def reference_architecture(checkpoint: dict) -> tuple[Callable[[], nn.Module], type, int, dict[str, Any], bool]:
    """(base factory, curve class, num_classes, curve kwargs, classification) of a sample checkpoint."""
    from engine.builtin.models import mlp, small_cnn

    factory, kwargs = checkpoint["model_factory"], dict(checkpoint["model_kwargs"])
    if factory.endswith(":mlp"):
        return (lambda: mlp(**kwargs), MLPCurve, kwargs.get("out_dim", 1),
                {k: kwargs[k] for k in ("in_dim", "width", "depth") if k in kwargs}, False)
    if factory.endswith(":small_cnn"):
        return (lambda: small_cnn(**kwargs), SmallCNNCurve, kwargs.get("num_classes", 10),
                {"channels": kwargs.get("channels", 16)}, True)
    raise ValueError(f"no curve twin for {factory}")


# utils.py: train, test, bn_update (update_bn), learning_rate_schedule from train.py.
def learning_rate_schedule(base_lr, epoch, total_epochs):
    alpha = epoch / total_epochs
    if alpha <= 0.5:
        factor = 1.0
    elif alpha <= 0.9:
        factor = 1.0 - (alpha - 0.5) / 0.4 * 0.99
    else:
        factor = 0.01
    return factor * base_lr


def adjust_learning_rate(optimizer, lr):
    for param_group in optimizer.param_groups:
        param_group["lr"] = lr
    return lr


def save_checkpoint(dir, epoch, name="checkpoint", **kwargs):
    state = {"epoch": epoch}
    state.update(kwargs)
    filepath = os.path.join(dir, "%s-%d.pt" % (name, epoch))
    torch.save(state, filepath)
    return filepath


def utils_train(train_loader, model, optimizer, criterion, regularizer=None, classification=True):
    """utils.train (their .cuda(async=True) copies dropped: the CPU is the device here)."""
    loss_sum = 0.0
    correct = 0.0
    model.train()
    for input, target in train_loader:
        output = model(input)
        loss = criterion(output, target)
        if regularizer is not None:
            loss += regularizer(model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * input.size(0)
        if classification:
            pred = output.data.argmax(1, keepdim=True)
            correct += pred.eq(target.data.view_as(pred)).sum().item()
    return {"loss": loss_sum / len(train_loader.dataset), "accuracy": correct * 100.0 / len(train_loader.dataset)}


def utils_test(test_loader, model, criterion, regularizer=None, classification=True, **kwargs):
    """utils.test; as theirs, without torch.no_grad (their eval builds autograd graphs through the bends)."""
    loss_sum = 0.0
    nll_sum = 0.0
    correct = 0.0
    model.eval()
    for input, target in test_loader:
        output = model(input, **kwargs)
        nll = criterion(output, target)
        loss = nll.clone()
        if regularizer is not None:
            loss += regularizer(model)
        nll_sum += nll.item() * input.size(0)
        loss_sum += loss.item() * input.size(0)
        if classification:
            pred = output.data.argmax(1, keepdim=True)
            correct += pred.eq(target.data.view_as(pred)).sum().item()
    return {"nll": nll_sum / len(test_loader.dataset), "loss": loss_sum / len(test_loader.dataset),
            "accuracy": correct * 100.0 / len(test_loader.dataset)}


def isbatchnorm(module):
    return issubclass(module.__class__, nn.modules.batchnorm._BatchNorm) or issubclass(module.__class__, CurveBatchNorm)


def check_bn(model):
    flag = [False]

    def _check_bn(module):
        if isbatchnorm(module):
            flag[0] = True

    model.apply(_check_bn)
    return flag[0]


def reset_bn(module):
    if isbatchnorm(module):
        module.reset_running_stats()


def update_bn(loader, model, **kwargs):
    """utils.update_bn: reset the statistics, then train-mode passes with momentum b / (seen + b)."""
    if not check_bn(model):
        return
    model.train()
    momenta = {}
    model.apply(reset_bn)

    def _get_momenta(module):
        if isbatchnorm(module):
            momenta[module] = module.momentum

    model.apply(_get_momenta)
    num_samples = 0
    for input, _ in loader:
        batch_size = input.data.size(0)
        momentum = batch_size / (num_samples + batch_size)
        for module in momenta.keys():
            module.momentum = momentum
        model(input, **kwargs)
        num_samples += batch_size

    def _set_momenta(module):
        if isbatchnorm(module):
            module.momentum = momenta[module]

    model.apply(_set_momenta)


def loaders(files: Files, batch_size: int, shuffle_train: bool) -> dict[str, torch.utils.data.DataLoader]:
    """data.loaders for in-memory tensors: num_workers=0 (theirs: 4 worker processes, which only
    slows an in-memory TensorDataset down) and no pin_memory (no GPU)."""
    train, test = load_npz(files.train), load_npz(files.test)
    return {
        "train": torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*train), batch_size=batch_size,
                                             shuffle=shuffle_train, num_workers=0),
        "test": torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*test), batch_size=batch_size,
                                            shuffle=False, num_workers=0),
    }


def reference_train(files: Files, curve: type, num_bends: int, epochs: int, out_dir: str, batch_size: int,
                    wd: float, epoch_test: bool) -> tuple[str, dict[str, float]]:
    """train.py with --curve CURVE --num_bends N --init_start A --init_end B --fix_start --fix_end
    (init_linear on); returns the last checkpoint and the phase times."""
    start = time.perf_counter()
    torch.manual_seed(REFERENCE_SEED)
    loader = loaders(files, batch_size, shuffle_train=True)
    a = torch.load(files.a, map_location="cpu", weights_only=False)
    base_factory, curve_arch, num_classes, arch_kwargs, classification = reference_architecture(a)
    model = CurveNet(num_classes, curve, curve_arch, num_bends, True, True, architecture_kwargs=arch_kwargs)
    base_model = None
    for path, k in [(files.a, 0), (files.b, num_bends - 1)]:
        if base_model is None:
            base_model = base_factory()
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        base_model.load_state_dict(checkpoint["state_dict"])  # theirs: checkpoint['model_state']
        model.import_base_parameters(base_model, k)
    model.init_linear()
    criterion = F.cross_entropy if classification else F.mse_loss
    regularizer = l2_regularizer(wd)
    trainable = [param for param in model.parameters() if param.requires_grad]
    # A PolyChain of two fixed points has nothing to train: their train.py would stop at SGD's
    # "empty parameter list", so the straight line's checkpoint is written without an optimizer.
    optimizer = torch.optim.SGD(trainable, lr=LR, momentum=MOMENTUM, weight_decay=0.0) if trainable else None
    last = save_checkpoint(out_dir, 0, model_state=model.state_dict(),
                           optimizer_state=optimizer.state_dict() if optimizer else None)
    prepared = time.perf_counter()
    has_bn = check_bn(model)
    train_res = {"loss": float("nan")}
    for epoch in range(1, epochs + 1):
        lr = learning_rate_schedule(LR, epoch, epochs)
        adjust_learning_rate(optimizer, lr)
        train_res = utils_train(loader["train"], model, optimizer, criterion, regularizer, classification)
        if epoch_test and not has_bn:  # train.py tests every epoch when the curve has no BatchNorm
            utils_test(loader["test"], model, criterion, regularizer, classification)
        if epoch % SAVE_FREQ == 0:
            last = save_checkpoint(out_dir, epoch, model_state=model.state_dict(),
                                   optimizer_state=optimizer.state_dict())
    if epochs % SAVE_FREQ != 0:
        last = save_checkpoint(out_dir, epochs, model_state=model.state_dict(), optimizer_state=optimizer.state_dict())
    end = time.perf_counter()
    return last, {"setup": prepared - start, "train": end - prepared, "final_train_loss": float(train_res["loss"])}


def reference_eval_curve(files: Files, curve: type, num_bends: int, ckpt: str, points: int, out_dir: str,
                         batch_size: int, wd: float) -> dict[str, Any]:
    """eval_curve.py: update_bn, then utils.test on the train and test loaders, at each of `points` t's."""
    loader = loaders(files, batch_size, shuffle_train=False)
    a = torch.load(files.a, map_location="cpu", weights_only=False)
    _, curve_arch, num_classes, arch_kwargs, classification = reference_architecture(a)
    model = CurveNet(num_classes, curve, curve_arch, num_bends, architecture_kwargs=arch_kwargs)
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    model.load_state_dict(checkpoint["model_state"])
    criterion = F.cross_entropy if classification else F.mse_loss
    regularizer = l2_regularizer(wd)
    T = points
    ts = np.linspace(0.0, 1.0, T)
    tr_loss, tr_nll, tr_acc = np.zeros(T), np.zeros(T), np.zeros(T)
    te_loss, te_nll, te_acc = np.zeros(T), np.zeros(T), np.zeros(T)
    dl = np.zeros(T)
    previous_weights = None
    t = torch.FloatTensor([0.0])
    for i, t_value in enumerate(ts):
        t.data.fill_(t_value)
        weights = model.weights(t)
        if previous_weights is not None:
            dl[i] = np.sqrt(np.sum(np.square(weights - previous_weights)))
        previous_weights = weights.copy()
        update_bn(loader["train"], model, t=t)
        tr_res = utils_test(loader["train"], model, criterion, regularizer, classification, t=t)
        te_res = utils_test(loader["test"], model, criterion, regularizer, classification, t=t)
        tr_loss[i], tr_nll[i], tr_acc[i] = tr_res["loss"], tr_res["nll"], tr_res["accuracy"]
        te_loss[i], te_nll[i], te_acc[i] = te_res["loss"], te_res["nll"], te_res["accuracy"]
        # (their per-row tabulate print is left out)
    np.savez(os.path.join(out_dir, "curve.npz"), ts=ts, dl=dl, tr_loss=tr_loss, tr_nll=tr_nll, tr_acc=tr_acc,
             te_loss=te_loss, te_nll=te_nll, te_acc=te_acc)
    values = {"train_loss": tr_nll, "test_loss": te_nll}
    if classification:
        values.update({"train_acc": tr_acc, "test_acc": te_acc})
    return {"t": ts.tolist(), "values": {k: v.tolist() for k, v in values.items()}, "length": float(np.sum(dl))}


def run_reference(files: Files, task: str, points: int, epochs: int, batch_size: int, wd: float,
                  epoch_test: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="garipov-") as out_dir:
        start = time.perf_counter()
        if task == "linear":  # train.py --curve PolyChain --num_bends 2 --epochs 0 (saves checkpoint-0), then eval
            ckpt, times = reference_train(files, PolyChain, 2, 0, out_dir, batch_size, wd, epoch_test)
            curve, num_bends = PolyChain, 2
        else:
            ckpt, times = reference_train(files, Bezier, 3, epochs, out_dir, batch_size, wd, epoch_test)
            curve, num_bends = Bezier, 3
        trained = time.perf_counter()
        result = reference_eval_curve(files, curve, num_bends, ckpt, points, out_dir, batch_size, wd)
        end = time.perf_counter()
    result.update({"time": end - start, "setup": times["setup"], "train": times["train"], "eval": end - trained,
                   "comparable": end - start})
    return result


# ======================================================================================
# Landscape
# ======================================================================================
def run_landscape(files: Files, task: str, points: int, epochs: int, batch_size: int, wd: float, bn: bool,
                  out: str, eval_batch_size: int | None = None) -> dict[str, Any]:
    from engine.io.store.paths import read_path
    from engine.jobs.path import TRAINING, PathJob, PathRequest

    curve = {"curve": "linear"} if task == "linear" else {"curve": "bezier", "bends": 1, "epochs": epochs}
    request = PathRequest(a=files.a, b=files.b, data=files.train, test_data=files.test, out=out, **curve,
                          lr=LR, optimizer="sgd", momentum=MOMENTUM, weight_decay=wd, schedule="garipov",
                          batch_size=batch_size, points=points, bn_recompute="on" if bn else "auto",
                          device="cpu", eval_batch_size=eval_batch_size, overwrite=True,
                          baselines=False)  # the reference computes only the requested path too
    start = time.perf_counter()
    job = PathJob(request)
    job.prepare()
    prepared = time.perf_counter()
    train_end = None
    for progress in job.run():
        if progress.phase == TRAINING:
            train_end = time.perf_counter()
    end = time.perf_counter()
    result = read_path(out)
    series = result.series["linear" if task == "linear" else "curve"]
    values = {k: v.tolist() for k, v in series.values.items()}
    summary = job.summary()
    length = summary.details.get("barriers", {}).get("curve" if task == "bezier" else "linear", {}).get("length")
    train_end = train_end or prepared
    times = {"setup": prepared - start, "train": train_end - prepared, "eval": end - train_end}
    total = end - start
    return {"time": total, "comparable": total, **times, "t": result.t.tolist(), "values": values,
            "length": length, "eval_batch_size": int(result.attrs["batch_size"])}


# ======================================================================================
# Worker: one timed run of one tool, in its own process
# ======================================================================================
def worker(args: argparse.Namespace) -> dict[str, Any]:
    case = CASE_BY_NAME[args.cases]
    files = case_files(case, Path(args.workdir))
    spe = steps_per_epoch(files, args.batch_size)
    epochs = math.ceil(args.steps / spe)
    with tempfile.TemporaryDirectory(prefix="landscape-path-bench-") as tmp:
        def run(points: int, epochs: int) -> dict[str, Any]:
            if args.worker == "landscape":
                return run_landscape(files, args.task, points, epochs, args.batch_size, args.weight_decay, case.bn,
                                     os.path.join(tmp, f"{case.name}-{args.task}-{points}.h5"))
            return run_reference(files, args.task, points, epochs, args.batch_size, args.weight_decay,
                                 args.reference_epoch_test)

        run(3, 1)  # warm-up: imports, oneDNN kernels, the optimizer's lazy imports
        if args.wait_quiet:
            wait_quiet()
        start, own = cpu_jiffies(), own_cpu_jiffies()
        faults = minor_faults()
        result = run(args.points, epochs)
        result["faults"] = minor_faults() - faults
        end, own_end = cpu_jiffies(), own_cpu_jiffies()
    result["others"] = 0.0 if start is None or end is None else \
        max(0.0, (end[0] - start[0] - (own_end - own)) / max(1, end[1] - start[1]))
    result["threads"] = torch.get_num_threads()
    result["epochs"], result["steps"] = (epochs, epochs * spe) if args.task == "bezier" else (0, 0)
    return result


def spawn(tool: str, case: Case, task: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, "--task", task, "--cases", case.name,
               "--workdir", str(args.workdir), "--points", str(args.points), "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--weight-decay", repr(args.weight_decay)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if ENGINE_ROOT:
        command += ["--engine-root", ENGINE_ROOT]
    if args.wait_quiet:
        command.append("--wait-quiet")
    if args.reference_epoch_test:
        command.append("--reference-epoch-test")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ENGINE_ROOT, str(ROOT),
                                                                    os.environ.get("PYTHONPATH")])))
    if args.malloc_tuned:
        env.update(TUNED_MALLOC)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{tool} {task} on {case.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ======================================================================================
# Agreement
# ======================================================================================
def barrier(t: list[float], values: list[float]) -> tuple[float, float]:
    """(max_t L(t) - ((1 - t) L(0) + t L(1)), its t): the interpolated barrier (Frankle et al.)."""
    t_arr, v = np.asarray(t), np.asarray(values)
    excess = v - ((1 - t_arr) * v[0] + t_arr * v[-1])
    k = int(np.argmax(excess))
    return float(excess[k]), float(t_arr[k])


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-300)


def endpoint_check(case: Case, files: Files, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Both tools on a 2-point straight line (t = 0 and 1) with the same evaluation batch size:
    their endpoint losses must agree to AGREE_REL. (With Landscape's own batch size a model with
    BatchNorm gets slightly different statistics: the running variance is a size-weighted mean
    of per-batch variances, so it depends on the batching.)"""
    ref = run_reference(files, "linear", 2, 0, args.batch_size, args.weight_decay, False)
    ours = run_landscape(files, "linear", 2, 0, args.batch_size, args.weight_decay, case.bn,
                         str(workdir / f"{case.name}-check.h5"), eval_batch_size=args.batch_size)
    return {k: [rel(ref["values"][k][i], ours["values"][k][i]) for i in (0, 1)] for k in ref["values"]}


# ======================================================================================
# One case
# ======================================================================================
def run_case(case: Case, tasks: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    files = setup(case, Path(args.workdir))
    rows = []
    for task in tasks:
        runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in TOOLS}
        for rep in range(args.repeats):  # interleaved: run 1 of both tools, then run 2, ...
            for tool in TOOLS:
                print(f"  {case.name} {task}: {tool} run {rep + 1}", file=sys.stderr, flush=True)
                runs[tool].append(spawn(tool, case, task, args))
        best = {tool: min(rs, key=lambda r: r["comparable"]) for tool, rs in runs.items()}
        row: dict[str, Any] = {
            "case": case.name, "task": task, "description": case.description,
            "steps": best["landscape"]["steps"], "epochs": best["landscape"]["epochs"], "points": args.points,
            "batch": args.batch_size,
            "threads": sorted({r["threads"] for rs in runs.values() for r in rs}),
            "landscape_eval_batch": best["landscape"]["eval_batch_size"],
            "best": {tool: {k: r[k] for k in ("time", "comparable", "setup", "train", "eval")}
                     for tool, r in best.items()},
            "median": {tool: float(statistics.median(r["comparable"] for r in rs)) for tool, rs in runs.items()},
            "all": {tool: [r["comparable"] for r in rs] for tool, rs in runs.items()},
            "others_busy": {tool: max(r["others"] for r in rs) for tool, rs in runs.items()},
            "faults": {tool: r["faults"] for tool, r in best.items()},
        }
        ours, ref = best["landscape"], best["reference"]
        row["barrier"] = {tool: {k: barrier(r["t"], v) for k, v in r["values"].items() if k.endswith("loss")}
                          for tool, r in best.items()}
        row["endpoints"] = {tool: {k: (v[0], v[-1]) for k, v in r["values"].items()} for tool, r in best.items()}
        row["length"] = {tool: r["length"] for tool, r in best.items()}
        if task == "linear":
            row["max_rel_along_path"] = {k: float(max(rel(a, b) for a, b in zip(ref["values"][k], ours["values"][k])))
                                         for k in ref["values"] if k.endswith("loss")}
        rows.append(row)
    if "linear" in tasks:
        rows[tasks.index("linear")]["endpoint_check"] = endpoint_check(case, files, Path(args.workdir), args)
    return rows


# ======================================================================================
# Report
# ======================================================================================
def report(rows: list[dict[str, Any]]) -> str:
    header = (f"{'case':<15}{'task':<28}{'reference s':>12}{'Landscape s':>13}{'ratio':>8}"
              f"{'ratio (median)':>16}   threads")
    lines = ["", header]
    for r in rows:
        task = f"linear, {r['points']} pts" if r["task"] == "linear" else \
            f"bezier, {r['steps']} steps + {r['points']} pts"
        ref, ours = r["best"]["reference"]["comparable"], r["best"]["landscape"]["comparable"]
        ratio_median = r["median"]["reference"] / r["median"]["landscape"]
        lines.append(f"{r['case']:<15}{task:<28}{ref:>12.3f}{ours:>13.3f}{ref / ours:>7.2f}x{ratio_median:>15.2f}x"
                     f"   {','.join(map(str, r['threads']))}")
    lines.append("ratio = reference seconds / Landscape seconds (> 1: Landscape is faster); best of the runs.")
    for r in rows:
        lines.append("")
        lines.append(f"{r['case']} {r['task']}: {r['description']}")
        if r["task"] == "bezier":
            lines.append(f"  {r['steps']} steps = {r['epochs']} epochs of batches of up to {r['batch']} samples")
        for tool in TOOLS:
            b = r["best"][tool]
            parts = f"set-up {b['setup']:.3f}, train {b['train']:.3f}, eval {b['eval']:.3f}"
            runs = "/".join(f"{v:.3g}" for v in r["all"][tool])
            lines.append(f"  {tool:<10} best {b['comparable']:.3f} s ({parts}); median {r['median'][tool]:.3f} s; "
                         f"runs {runs}; others' CPU up to {100 * r['others_busy'][tool]:.0f}%; "
                         f"{r['faults'][tool]:,} minor page faults in the run")
        lines.append(f"  Landscape's evaluation batch: {r['landscape_eval_batch']} samples (reference loaders: "
                     f"{r['batch']})")
        for name in r["barrier"]["reference"]:
            (rb, rt), (lb, lt) = r["barrier"]["reference"][name], r["barrier"]["landscape"][name]
            e_ref, e_ours = r["endpoints"]["reference"][name], r["endpoints"]["landscape"][name]
            lines.append(f"  {name}: barrier reference {rb:.5g} (t={rt:.3g}), Landscape {lb:.5g} (t={lt:.3g}); "
                         f"at t=0/1 reference {e_ref[0]:.8g}/{e_ref[1]:.8g}, Landscape {e_ours[0]:.8g}/{e_ours[1]:.8g}")
        lines.append(f"  length: reference {r['length']['reference']:.5g}, Landscape {r['length']['landscape']:.5g}")
        if "max_rel_along_path" in r:
            lines.append("  straight line, max relative difference over all t (Landscape's own batch): "
                         + ", ".join(f"{k} {v:.1e}" for k, v in r["max_rel_along_path"].items()))
        if "endpoint_check" in r:
            worst = max(max(v) for k, v in r["endpoint_check"].items() if k.endswith("loss"))
            lines.append(f"  endpoint check (2-point line, both with batches of {r['batch']}), relative difference "
                         "at t=0/1: "
                         + ", ".join(f"{k} {v[0]:.1e}/{v[1]:.1e}" for k, v in r["endpoint_check"].items())
                         + f" -> {'OK' if worst <= AGREE_REL else 'MISMATCH'} (losses within {AGREE_REL:g})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="60 steps, 21 points, one run per tool: a smoke test")
    parser.add_argument("--steps", type=int, default=None, help="Bezier training steps (default 300; 60 with --quick)")
    parser.add_argument("--points", type=int, default=None, help="values of t along each path (default 61; 21 "
                                                                 "with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per tool (default 3; 1 with --quick)")
    parser.add_argument("--cases", default=",".join(c.name for c in CASES), help="comma-separated subset of cases")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of linear,bezier")
    parser.add_argument("--batch-size", type=int, default=128, help="training minibatch and the reference's "
                                                                     "loaders (their default 128)")
    parser.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY, help="both tools (their default 1e-4)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in every process")
    parser.add_argument("--reference-epoch-test", action="store_true",
                        help="also run train.py's test pass after every epoch (it does so for curves without "
                             "BatchNorm); off by default, since Landscape does no such pass")
    parser.add_argument("--wait-quiet", action="store_true",
                        help=f"before each timed run, wait until other processes use < {100 * QUIET_BUSY:.0f}%% "
                             "of the CPUs")
    parser.add_argument("--malloc-tuned", action="store_true",
                        help="run both tools with glibc malloc told to keep freed memory (see README)")
    parser.add_argument("--workdir", default=None, help="keep the trained samples here (reused when present)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--engine-root", default=None,
                        help="time the engine of another checkout (e.g. with a proposed patch applied)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--task", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.steps = args.steps or (60 if args.quick else 300)
    args.points = args.points or (21 if args.quick else 61)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.points < 2 or args.steps < 1 or args.repeats < 1 or args.batch_size < 1:
        parser.error("--points must be at least 2, --steps, --repeats and --batch-size at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    cases, tasks = args.cases.split(","), args.tasks.split(",")
    unknown = [c for c in cases if c not in CASE_BY_NAME] + [t for t in tasks if t not in TASKS]
    if unknown:
        parser.error(f"unknown case(s) or task(s) {', '.join(unknown)}; cases: {', '.join(CASE_BY_NAME)}; "
                     f"tasks: {', '.join(TASKS)}")
    import engine

    print(f"torch {torch.__version__}, Python {platform.python_version()} on {platform.machine()} "
          f"({os.cpu_count()} CPUs), torch.get_num_threads()={torch.get_num_threads()}")
    print(f"engine: {Path(engine.__file__).resolve().parent}")
    print(f"{args.points} points per path, {args.steps} Bezier steps of {args.batch_size}; lr {LR}, momentum "
          f"{MOMENTUM}, weight decay {args.weight_decay:g}; best of {args.repeats} run(s) per tool, each in a fresh "
          f"process after a warm-up; malloc tuned: {args.malloc_tuned}", flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="landscape-path-bench-") as tmp:
        args.workdir = str(Path(args.workdir).resolve()) if args.workdir else tmp
        for name in cases:
            rows.extend(run_case(CASE_BY_NAME[name], tasks, args))
    print(report(rows))
    if args.json:
        payload = {"torch": torch.__version__, "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
                   "points": args.points, "steps": args.steps, "repeats": args.repeats,
                   "malloc_tuned": args.malloc_tuned,
                   "engine_root": ENGINE_ROOT or str(ROOT), "rows": rows}
        Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
