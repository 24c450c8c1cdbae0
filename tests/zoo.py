"""Tiny model factories for tests, named by reference (``tests.zoo:linear``).

They are deliberately *not* trusted by Landscape (only ``engine.builtin.models`` is): a
checkpoint naming them must be confirmed with ``--model``.
"""

from __future__ import annotations

import torch
from torch import nn


def linear(d: int = 3, out: int = 1) -> nn.Sequential:
    """One linear layer; keys ``0.weight``/``0.bias`` like a Lightning module's ``model.0.*``."""
    return nn.Sequential(nn.Linear(d, out))


def tiny_mlp(d: int = 4, width: int = 8, out: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, width), nn.ReLU(), nn.Linear(width, out))


def tiny_cnn(channels: int = 4, classes: int = 3) -> nn.Sequential:
    """Conv2d + BatchNorm2d classifier for (n, 1, 6, 6) inputs."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channels * 6 * 6, classes),
    )


class Affine(nn.Module):
    """A custom module class, for whole-model pickles (``torch.save(model)``)."""

    def __init__(self, d: int = 3) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, d))
        self.proj = nn.Linear(d, 1)

    def forward(self, x):
        return self.proj(x * self.scale)


def affine(d: int = 3) -> Affine:
    return Affine(d)
