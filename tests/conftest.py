"""Shared fixtures: small real checkpoints and data sets on disk, seeded."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
MODELS = str(ROOT / "tests" / "reference_models.py")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def run_cli_env() -> dict[str, str]:
    """Environment for running ``python -m engine`` in a subprocess from the repo."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def regression_case(tmp_path: Path) -> dict[str, str]:
    """An MLP checkpoint (plain state_dict) and 64 samples of regression data."""
    sys.path.insert(0, str(ROOT / "tests"))
    import reference_models

    torch.manual_seed(0)
    model = reference_models.mlp(d=4, width=16, out=1)
    ckpt = tmp_path / "mlp.pt"
    torch.save(model.state_dict(), ckpt)
    generator = np.random.default_rng(0)
    x = generator.standard_normal((64, 4)).astype(np.float32)
    y = np.sin(x.sum(axis=1, keepdims=True)).astype(np.float32)
    data = tmp_path / "data.npz"
    np.savez(data, x=x, y=y)
    return {"checkpoint": str(ckpt), "model": f"{MODELS}:mlp", "data": str(data)}


@pytest.fixture
def classification_case(tmp_path: Path) -> dict[str, str]:
    """A Conv+BatchNorm classifier with non-trivial running statistics, and 48 labelled images."""
    sys.path.insert(0, str(ROOT / "tests"))
    import reference_models

    torch.manual_seed(1)
    model = reference_models.cnn_bn()
    model.train()
    with torch.no_grad():
        for _ in range(3):  # give BatchNorm running statistics that differ from (0, 1)
            model(torch.randn(32, 1, 6, 6) * 2 + 0.5)
    ckpt = tmp_path / "cnn.pt"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    generator = np.random.default_rng(1)
    x = generator.standard_normal((48, 1, 6, 6)).astype(np.float32)
    y = generator.integers(0, 3, size=48).astype(np.int64)
    data = tmp_path / "images.npz"
    np.savez(data, x=x, y=y)
    return {"checkpoint": str(ckpt), "model": f"{MODELS}:cnn_bn", "data": str(data)}
