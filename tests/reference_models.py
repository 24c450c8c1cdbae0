"""Tiny seeded models with known structure, named by reference in ground-truth tests."""

from __future__ import annotations

import torch
from torch import nn


def linear(d: int = 3, dtype: str = "float64") -> nn.Module:
    """y = w.x + b: its MSE on any plane through weight space is an exact quadratic."""
    return nn.Linear(d, 1).to(getattr(torch, dtype))


def mlp(d: int = 4, width: int = 16, out: int = 1) -> nn.Module:
    return nn.Sequential(nn.Linear(d, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, out))


def cnn_bn(channels: int = 4, classes: int = 3) -> nn.Module:
    """Conv + BatchNorm on 1x6x6 inputs, to check that eval mode uses running statistics."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
        nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * channels, classes),
    )


class LogModel(nn.Module):
    """log(w.x) on positive inputs: NaN wherever w.x < 0, to check NaN points are kept."""

    def __init__(self, d: int = 2) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(x @ self.w.T)


def log_model(d: int = 2) -> nn.Module:
    return LogModel(d)


class ViewCNN(nn.Module):
    """A CNN that flattens with ``view``, which assumes NCHW strides (fails on channels_last)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        return self.fc(h.view(h.shape[0], -1))


def view_cnn() -> nn.Module:
    return ViewCNN()


def tiny_mlp(d: int = 3, width: int = 5, classes: int = 3, dtype: str = "float64") -> nn.Module:
    """A smooth (tanh) classifier small enough for a dense Hessian; at its seeded start it has negative curvature."""
    return nn.Sequential(nn.Linear(d, width), nn.Tanh(), nn.Linear(width, classes)).to(getattr(torch, dtype))


def tiny_cnn(classes: int = 3, dtype: str = "float64") -> nn.Module:
    """Conv + BatchNorm + Linear on 1x4x4 inputs, small enough for a dense Hessian."""
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.Tanh(), nn.Flatten(),
                         nn.Linear(2 * 4 * 4, classes)).to(getattr(torch, dtype))


def tiny_mlp_frozen_first(frozen: str = "first") -> nn.Module:
    """tiny_mlp with its first layer (or, with ``frozen="all"``, every layer) frozen, as a fine-tuned head's model."""
    model = tiny_mlp()
    for layer in (model if frozen == "all" else model[:1]):
        layer.requires_grad_(False)
    return model
