"""The path schema: loss along a straight line or a trained curve between two checkpoints.

Root (the requested path; ``attrs["main"]`` names it ``linear``, ``linear_aligned`` or ``curve``):

* ``t`` (N,): the points, 0 and 1 among them;
* ``train_loss``, ``train_acc`` (percent, classification only), ``test_loss``,
  ``test_acc`` (with test data): (N,) float64, NaN where not computed;
* ``done``: (N,) uint8 mask of computed points;
* ``baselines/<series>/<value>`` and ``baselines/<series>/done``: the same for the
  paths drawn for comparison (the plain straight line, the aligned straight line);
* ``bends/a|b/<i>/<parameter>``: the curve's bends i = 1..k in two slots, and
  ``optimizer/a|b/<i>.<state>/<parameter>`` the optimizer's state for them;
  ``bends_epoch`` (2,) says which epoch each slot holds (-1: being written). A reader
  takes the slot with the larger epoch, so a kill while one is written loses nothing;
* ``endpoints/b/<name>``: B's parameters and BatchNorm statistics as used, when aligned (with
  ``alignment/<group>`` the permutation of each group of hidden units);
* ``logs/training``: one row per epoch (epoch, mean minibatch loss, lr, seconds);
* attributes: provenance of A, of B and of the data, the curve and its training,
  ``barriers`` (JSON, filled in when a run ends) and everything a resume compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np
import torch

from engine import __version__
from engine.errors import LandscapeError
from engine.io.store.files import (
    FORMAT, FORMAT_VERSION, ArraySpec, Layout, LogSpec, damaged, dataset, open_h5, read_attrs, set_placeholder,
    write_error,
)
from engine.io.store.logs import LogTable, read_log
from engine.io.store.tensors import TensorSet, overwrite_tensor_group, read_tensor_group, tensor_group_digests
from engine.numerics.barriers import path_barriers

KIND = "path"
SERIES = ("linear", "linear_aligned", "curve")
SLOTS = ("a", "b")
LOG_COLUMNS = ("epoch", "loss", "lr", "seconds")  # loss: the mean minibatch loss at random t
BARRIERS_WIDTH = 8192


@dataclass
class PathSeries:
    """One path's values along t, which are computed, and its barrier numbers."""

    values: dict[str, np.ndarray]  # train_loss, train_acc, test_loss, test_acc
    done: np.ndarray  # bool

    def barriers(self, t: np.ndarray) -> dict[str, dict[str, Any]]:
        """Barriers over the computed points (see :mod:`engine.numerics.barriers`)."""
        return path_barriers(t, {name: np.where(self.done, array, np.nan) for name, array in self.values.items()})


@dataclass
class PathResult:
    """A path file, read: what ``engine.path`` returns and the app draws."""

    path: Path
    t: np.ndarray
    main: str
    series: dict[str, PathSeries]  # main first, then the baselines
    attrs: dict[str, Any]
    bends: list[TensorSet] = field(default_factory=list)  # the curve's trained bends (epoch ``bends_epoch``)
    bends_epoch: int = 0
    training: LogTable | None = None

    @property
    def values(self) -> dict[str, np.ndarray]:
        return self.series[self.main].values

    @property
    def done(self) -> np.ndarray:
        return self.series[self.main].done

    @property
    def barriers(self) -> dict[str, dict[str, dict[str, Any]]]:
        """series -> value -> barrier numbers, computed from the values."""
        return {name: s.barriers(self.t) for name, s in self.series.items()}


def value_names(metrics: list[str], test: bool) -> list[str]:
    """``train_loss``, ``train_acc`` (and ``test_*``) for metrics ``loss``[, ``acc``]."""
    return [f"{split}_{m}" for split in (("train", "test") if test else ("train",)) for m in metrics]


def series_prefix(series: str, main: str) -> str:
    return "" if series == main else f"baselines/{series}/"


def path_layout(
    *,
    t: np.ndarray,
    main: str,
    series: list[str],
    names: list[str],
    bends: list[Mapping[str, torch.Tensor]],
    optimizer_state: Mapping[str, Mapping[str, torch.Tensor]],
    epochs: int,
    endpoint_b: Mapping[str, torch.Tensor] | None,
    permutations: Mapping[str, np.ndarray] | None,
    attrs: Mapping[str, Any],
) -> Layout:
    """A new path file: t, NaN values and empty masks for every series, bends in slot a, a training log."""
    arrays: dict[str, np.ndarray | ArraySpec] = {"t": np.asarray(t, dtype=np.float64)}
    for name in series:
        prefix = series_prefix(name, main)
        for value in names:
            arrays[prefix + value] = ArraySpec((len(t),), np.float64, np.nan)
        arrays[prefix + "done"] = ArraySpec((len(t),), np.uint8, 0)
    tensors: dict[str, dict[str, Mapping[str, torch.Tensor]]] = {}
    if bends:
        members = {str(i + 1): {n: b.detach().cpu() for n, b in bend.items()} for i, bend in enumerate(bends)}
        for slot in SLOTS:
            tensors[f"bends/{slot}"] = members
            if optimizer_state:
                tensors[f"optimizer/{slot}"] = {k: {n: v.detach().cpu() for n, v in s.items()}
                                                for k, s in optimizer_state.items()}
        arrays["bends_epoch"] = np.array([0, -1], dtype=np.int64)
    if endpoint_b is not None:
        tensors["endpoints"] = {"b": {n: v.detach().cpu() for n, v in endpoint_b.items()}}
    for group, perm in (permutations or {}).items():
        arrays[f"alignment/{group}"] = np.asarray(perm, dtype=np.int64)
    root = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "engine_version": __version__,
        "main": main,
        "series": ",".join(series),
        "values": ",".join(names),
        "barriers": "",
        **attrs,
    }
    logs = {"training": LogSpec(LOG_COLUMNS, max(epochs, 1))} if bends else {}
    return Layout(kind=KIND, attrs=root, arrays=arrays, tensors=tensors, logs=logs,
                  placeholders={"barriers": BARRIERS_WIDTH})


# -- training state ---------------------------------------------------------------------------
def committed_slot(handle: h5py.File, path: str | Path) -> tuple[str, int]:
    """The slot holding the latest complete epoch, and that epoch."""
    epochs = np.asarray(dataset(handle, "bends_epoch", path)[()]).reshape(-1)
    if epochs.shape != (2,) or epochs.max() < 0:
        raise damaged(path, "neither slot of its bends is complete")
    k = int(np.argmax(epochs))
    return SLOTS[k], int(epochs[k])


def read_training_state(path: str | Path) -> tuple[int, list[TensorSet], dict[str, TensorSet]]:
    """(epoch, bends, optimizer state) of the latest complete epoch, each checked against its digest."""
    with open_h5(path) as handle:
        slot, epoch = committed_slot(handle, path)
    bends = read_tensor_group(path, f"bends/{slot}")
    optimizer = read_tensor_group(path, f"optimizer/{slot}") if _has(path, f"optimizer/{slot}") else {}
    return epoch, [bends[k] for k in sorted(bends, key=int)], optimizer


def bends_digests(path: str | Path) -> list[str]:
    """Digests of the committed bends and of the stored (aligned) B: what a plane through the path depends on."""
    with open_h5(path) as handle:
        if "bends_epoch" not in handle:
            return []
        slot, _ = committed_slot(handle, path)
    digests = tensor_group_digests(path, f"bends/{slot}")
    stored = tensor_group_digests(path, "endpoints") if _has(path, "endpoints") else {}
    return [digests[k] for k in sorted(digests, key=int)] + [stored[k] for k in sorted(stored)]


def write_training_state(path: str | Path, epoch: int, bends: list[Mapping[str, torch.Tensor]],
                         optimizer_state: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    """Save an epoch into the older slot: mark it incomplete, write, then commit its epoch."""
    try:
        with open_h5(path, "r+") as handle:
            current, _ = committed_slot(handle, path)
            target = SLOTS[1 - SLOTS.index(current)]
            marks = handle["bends_epoch"]
            marks[SLOTS.index(target)] = -1
            handle.flush()
            overwrite_tensor_group(handle, f"bends/{target}", {str(i + 1): b for i, b in enumerate(bends)})
            if optimizer_state:
                overwrite_tensor_group(handle, f"optimizer/{target}", optimizer_state)
            handle.flush()
            marks[SLOTS.index(target)] = epoch
            handle.flush()
    except (OSError, RuntimeError) as exc:
        raise write_error(Path(path), exc) from exc


def set_log_count(path: str | Path, name: str, count: int) -> None:
    """Forget a log's rows past ``count`` (rows of an epoch whose state was never committed)."""
    with open_h5(path, "r+") as handle:
        handle["logs"][name]["count"][0] = count


def write_barriers(path: str | Path, barriers: Mapping[str, Any]) -> None:
    """Record the barrier numbers in the file's ``barriers`` attribute (JSON)."""
    text = json.dumps(barriers, sort_keys=True, allow_nan=False, default=_none_for_nan)
    if len(text.encode()) > BARRIERS_WIDTH:
        text = json.dumps({"note": "too many series to record; read them with engine.open"})
    try:
        with open_h5(path, "r+") as handle:
            set_placeholder(handle, "barriers", text)
    except (OSError, RuntimeError) as exc:
        raise write_error(Path(path), exc) from exc


def _none_for_nan(value: Any) -> Any:
    return None


def _has(path: str | Path, group: str) -> bool:
    with open_h5(path) as handle:
        return group in handle


# -- reading ----------------------------------------------------------------------------------
def read_path(path: str | Path) -> PathResult:
    """Read a path file written by a path job (complete or not)."""
    path = Path(path)
    with open_h5(path) as handle:
        attrs = read_attrs(handle)
        if attrs.get("kind") != KIND:
            raise LandscapeError(f"{path} is not a path file (its kind is '{attrs.get('kind', 'unknown')}')")
        if attrs.get("format_version") != FORMAT_VERSION or attrs.get("format") != FORMAT:
            raise LandscapeError(f"{path} has format_version {attrs.get('format_version')}; this Landscape reads "
                                 f"{FORMAT_VERSION}: upgrade")
        t = np.asarray(dataset(handle, "t", path, dims=1)[()], dtype=np.float64)
        main = str(attrs.get("main", ""))
        names = [n for n in str(attrs.get("values", "")).split(",") if n]
        order = [main] + [s for s in str(attrs.get("series", "")).split(",") if s and s != main]
        series: dict[str, PathSeries] = {}
        for name in order:
            prefix = series_prefix(name, main)
            done = np.asarray(dataset(handle, prefix + "done", path, dims=1)[()]).astype(bool)
            values = {v: np.asarray(dataset(handle, prefix + v, path, dims=1)[()], dtype=np.float64) for v in names}
            if any(a.shape != t.shape for a in values.values()) or done.shape != t.shape:
                raise damaged(path, f"the values of series {name} do not have one entry per t")
            series[name] = PathSeries(values, done)
        has_bends = "bends_epoch" in handle
    result = PathResult(path, t, main, series, attrs)
    if has_bends:
        result.bends_epoch, result.bends, _ = read_training_state(path)
        result.training = read_log(path, "training")
    return result


def read_endpoint_b(path: str | Path) -> TensorSet | None:
    """B's parameters as the path used them (aligned), or None when it used B's checkpoint as it is."""
    if not _has(path, "endpoints"):
        return None
    return read_tensor_group(path, "endpoints", ["b"])["b"]


__all__ = [
    "KIND", "bends_digests", "LOG_COLUMNS", "SERIES", "PathResult", "PathSeries", "committed_slot", "path_layout", "read_endpoint_b",
    "read_path", "read_training_state", "series_prefix", "set_log_count", "value_names", "write_barriers",
    "write_training_state",
]
