"""Appendable logs in a result file: a curve's training history, Lanczos coefficients, one row per step.

A log is preallocated at creation (``logs/<name>/rows``: capacity x columns, NaN;
``logs/<name>/count``: rows written), so appending writes raw data only: the rows
first, then the count. A killed job's log ends at its last complete row, and the job
resumes from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from engine.errors import LandscapeError
from engine.io.store.files import LogSpec, damaged, dataset, open_h5


@dataclass(frozen=True)
class LogTable:
    """The rows written so far, with their column names."""

    columns: tuple[str, ...]
    rows: np.ndarray  # (count, len(columns)) float64

    def column(self, name: str) -> np.ndarray:
        return self.rows[:, self.columns.index(name)]


def create_log(handle: h5py.File, name: str, spec: LogSpec) -> None:
    group = handle.require_group("logs").create_group(name)
    group.create_dataset("rows", data=np.full((spec.capacity, len(spec.columns)), np.nan))
    group.create_dataset("count", data=np.zeros(1, dtype=np.int64))
    group.attrs["columns"] = ",".join(spec.columns)


def append_log(handle: h5py.File, name: str, rows: np.ndarray) -> int:
    """Append rows to an open (r+) file's log; returns the new row count."""
    group = handle["logs"][name]
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    count = int(group["count"][0])
    capacity, width = group["rows"].shape
    if rows.shape[1] != width:
        raise LandscapeError(f"internal: log {name} has {width} columns, got rows of {rows.shape[1]}")
    if count + len(rows) > capacity:
        raise LandscapeError(f"internal: log {name} holds {capacity} rows; {count + len(rows)} were written")
    group["rows"][count:count + len(rows)] = rows
    handle.flush()  # the rows reach the file before the count that makes them visible
    group["count"][0] = count + len(rows)
    return count + len(rows)


def read_log(path: str | Path, name: str) -> LogTable:
    with open_h5(path) as handle:
        if "logs" not in handle or name not in handle["logs"]:
            raise damaged(path, f"it has no log {name}")
        group = handle["logs"][name]
        rows = dataset(group, "rows", path, dims=2)
        count = int(dataset(group, "count", path)[0])
        columns = str(group.attrs.get("columns", "")).split(",")
        if not 0 <= count <= rows.shape[0] or len(columns) != rows.shape[1]:
            raise damaged(path, f"log {name} says it holds {count} rows of {len(columns)} columns")
        return LogTable(tuple(columns), np.asarray(rows[:count], dtype=np.float64))
