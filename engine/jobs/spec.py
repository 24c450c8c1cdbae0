"""What a job evaluates: a checkpoint's model on its data, named by a frozen spec and loaded in one place.

Every job kind builds its problem with :func:`load_problem`, so checkpoint safety,
model building, data loading, device choice and the provenance written into result
files are the same for surfaces, paths and spectra. A spec holds only strings and
numbers (paths already absolute), so it can be sent to another process and loaded
there to the same bits.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import torch

from engine.cancel import raise_if_cancelled
from engine.errors import LandscapeError
from engine.io.checkpoints import Checkpoint, load_checkpoint, pickle_import_folders
from engine.io.data import DataSet, load_data
from engine.io.models import build_model, load_weights
from engine.io.references import absolute_reference
from engine.numerics.problem import MODES, Problem, resolve_device

DATA_FILE_SUFFIXES = (".npz", ".pt", ".pth", ".h5", ".hdf5")


@dataclass(frozen=True)
class ProblemSpec:
    """A model (checkpoint + architecture), its data, the loss and where/how to evaluate it."""

    checkpoint: str
    data: str
    model: str | None = None
    model_kwargs: Mapping[str, Any] | None = None
    loss: str = "auto"
    max_samples: int | None = None
    device: str | None = None
    batch_size: int | None = None
    mode: str = "eval"
    memory_budget: int | None = None  # bytes; None: the Problem's fixed default
    trust_pickle: bool = False

    def resolved(self) -> "ProblemSpec":
        """The same spec with every file named by its absolute path (provenance survives a ``cd``)."""
        return replace(
            self,
            checkpoint=absolute_path(self.checkpoint),
            data=absolute_data_reference(self.data),
            model=absolute_reference(self.model) if self.model else None,
        )


@dataclass
class LoadedProblem:
    """A spec, loaded: the checkpoint, the model built from it, the data, and the Problem over them."""

    spec: ProblemSpec
    checkpoint: Checkpoint
    problem: Problem
    data: DataSet
    model_ref: str | None
    model_kwargs: dict[str, Any]

    @property
    def n_params(self) -> int:
        return int(sum(p.numel() for p in self.problem.model.parameters()))

    def provenance(self) -> dict[str, Any]:
        """Root attributes every result file records about its problem."""
        spec = self.spec
        return {
            "checkpoint": spec.checkpoint,
            "checkpoint_sha256": self.checkpoint.sha256,
            "checkpoint_kind": self.checkpoint.kind,
            # What the trainer recorded (epoch, seed, width, losses): lets studies group results.
            "checkpoint_metadata": json.dumps(self.checkpoint.metadata, sort_keys=True, default=str),
            "model": self.model_ref or f"<{self.checkpoint.kind} module>",
            "model_kwargs": json.dumps(self.model_kwargs, sort_keys=True),
            "n_params": self.n_params,
            "data": spec.data,
            "data_sha256": self.data.sha256,
            "data_samples": len(self.data),
            "data_total_samples": self.data.total_samples,
            "max_samples": -1 if spec.max_samples is None else int(spec.max_samples),
            "loss": self.problem.loss_name,
            "mode": spec.mode,
            "batch_size": int(self.problem.batch_size),
            "memory_budget": int(self.problem.memory_budget),
            "device": str(self.problem.device),
            "dtype": str(self.problem.dtype).replace("torch.", ""),
        }

    def state_of(self, other: Checkpoint) -> dict[str, torch.Tensor]:
        """Another checkpoint's full state, aligned to this model (prefixes stripped, shapes checked)."""
        twin = copy.deepcopy(self.problem.model).cpu()
        load_weights(twin, other.state_dict, source=str(other.path))
        return {k: v.detach().clone() for k, v in twin.state_dict().items()}


def load_problem(spec: ProblemSpec) -> LoadedProblem:
    """Load checkpoint, model and data and check that they fit; honours a job's cancel between steps."""
    if spec.mode not in MODES:
        raise LandscapeError(f"unknown mode '{spec.mode}'; choose eval (BatchNorm running statistics) or train")
    device = resolve_device(spec.device)
    # a trusted whole-model pickle imports its classes from the folder of the model file the user named
    checkpoint = load_checkpoint(spec.checkpoint, trust_pickle=spec.trust_pickle,
                                 import_from=pickle_import_folders(spec.model))
    raise_if_cancelled()
    model, model_ref, model_kwargs = build_model(checkpoint, spec.model, spec.model_kwargs)
    raise_if_cancelled()
    data = load_data(spec.data, spec.max_samples)
    raise_if_cancelled()
    problem = Problem(model, data, spec.loss, device, spec.batch_size, copy_model=False, mode=spec.mode,
                      memory_budget=spec.memory_budget)
    problem.check_output()
    return LoadedProblem(spec, checkpoint, problem, data, model_ref, model_kwargs)


def parse_size(text: str, flag: str = "--memory-budget") -> int:
    """``'2GiB'``, ``'512MB'``, ``'1e9'`` -> bytes, or a one-line LandscapeError."""
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([KMGT]i?B|B)?\s*", str(text))
    try:
        value = float(match.group(1)) if match else float("nan")
    except ValueError:
        value = float("nan")
    if not match or not value > 0:
        raise LandscapeError(f"{flag} {text}: write a size such as 2GiB, 512MB or 1e9 (bytes)")
    unit = match.group(2) or "B"
    scale = 1 if unit == "B" else (1024 if "i" in unit else 1000) ** ("KMGT".index(unit[0]) + 1)
    return int(value * scale)


def absolute_path(path: str) -> str:
    """An absolute path without resolving globs or requiring the file to exist."""
    return os.path.abspath(os.path.expanduser(path))


def absolute_data_reference(reference: str) -> str:
    """Data files and ``file.py:callable`` references made absolute; ``sample:`` and module names as they are."""
    path = Path(reference)
    if path.suffix.lower() in DATA_FILE_SUFFIXES:
        return absolute_path(reference)
    if ":" in reference and reference.split(":")[0].endswith(".py"):
        return absolute_reference(reference)
    return reference
