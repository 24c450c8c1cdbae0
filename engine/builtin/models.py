"""Model factories named by reference (``engine.builtin.models:mlp``) inside checkpoints.

They are plain ``nn.Sequential`` stacks so any tool can walk them layer by layer;
in ``small_cnn`` each ``Conv2d`` is followed directly by its ``BatchNorm2d`` so the
BN can be folded into the convolution.
"""

from __future__ import annotations

from torch import nn

from engine.errors import LandscapeError


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LandscapeError(f"model option {name} must be a positive integer, got {value!r}")
    return value


def mlp(in_dim: int = 20, width: int = 50, depth: int = 2, out_dim: int = 1) -> nn.Sequential:
    """ReLU MLP in_dim -> width (x depth hidden layers) -> out_dim; width sets the overparameterization."""
    in_dim = _positive_int("in_dim", in_dim)
    width = _positive_int("width", width)
    depth = _positive_int("depth", depth)
    out_dim = _positive_int("out_dim", out_dim)
    layers: list[nn.Module] = []
    previous = in_dim
    for _ in range(depth):
        layers += [nn.Linear(previous, width), nn.ReLU()]
        previous = width
    layers.append(nn.Linear(previous, out_dim))
    return nn.Sequential(*layers)


def small_cnn(channels: int = 16, num_classes: int = 10) -> nn.Sequential:
    """Conv-BN-ReLU x2, 2x2 max-pool, linear: a BatchNorm image classifier for 1x8x8 inputs.

    Convolutions have no bias because the BatchNorm right after them has one.
    """
    channels = _positive_int("channels", channels)
    num_classes = _positive_int("num_classes", num_classes)
    return nn.Sequential(
        nn.Conv2d(1, channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 8x8 -> 4x4
        nn.Flatten(),
        nn.Linear(channels * 4 * 4, num_classes),
    )
