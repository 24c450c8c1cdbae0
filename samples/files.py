"""Atomic writes for recipe outputs: a killed run never leaves a half-written file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _tmp(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def write_json(path: Path, data: Any, indent: int | None = 1) -> Path:
    tmp = _tmp(path)
    tmp.write_text(json.dumps(data, indent=indent) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def write_npz(path: Path, x: torch.Tensor, y: torch.Tensor) -> Path:
    """Store a data set as arrays ``x`` and ``y``, exactly as the model saw them."""
    tmp = _tmp(path)
    with open(tmp, "wb") as handle:  # a file handle stops numpy appending ".npz" to the tmp name
        np.savez(handle, x=x.detach().cpu().numpy(), y=y.detach().cpu().numpy())
    tmp.replace(path)
    return path


def prepare_out(out: Path, owned: tuple[str, ...]) -> Path:
    """Create ``out`` and delete the files an earlier run of a recipe left there.

    Only recipe outputs are removed (stale trajectory checkpoints would otherwise mix
    with the new ones); anything else the user keeps in the folder is left alone.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        from engine.errors import LandscapeError

        raise LandscapeError(f"--out {out} is a file; pass a folder (it is created if missing)")
    out.mkdir(parents=True, exist_ok=True)
    for name in owned:
        target = out / name
        if target.is_file():
            target.unlink()
    trajectory = out / "trajectory"
    if trajectory.is_dir():
        for old in trajectory.glob("epoch_*.pt"):
            old.unlink()
    return out
