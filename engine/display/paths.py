"""What the path view and the plane's overlay draw, computed without Qt.

A path file (:mod:`engine.io.store.paths`) holds the loss (and accuracy) along t for a
few series: the straight line from A to B, the straight line to B aligned to A, and the
trained curve. This module turns those arrays into what is drawn and listed:

* :func:`computed_points`: the points of a series that are computed (a running job fills
  them in coarse to fine, so they are drawn joined, not with NaN gaps);
* :func:`error_values`: the error (100 - accuracy, in percent) drawn on the right axis;
* :func:`chord` and :func:`barrier_mark`: where the barrier is marked, a point at the top of
  the bump and a segment down to the chord ``(1 - t) L(A) + t L(B)``;
* :func:`barrier_rows`: the table of barrier numbers, one row per series (and split);
* :class:`TrainingTrace`: the curve's live training loss placed on an epoch axis;
* :func:`path_status`: the status line of a running path job;
* :func:`label_anchors`: where the names of an overlay's points go on a map.

The barrier numbers themselves come from :mod:`engine.numerics.barriers`, the same
code that writes them in the file, so the table and ``landscape path --json`` agree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.numerics.barriers import barrier_numbers

SERIES_ORDER = ("linear", "linear_aligned", "curve")
SERIES_LABELS = {"linear": "straight line", "linear_aligned": "straight line, B aligned", "curve": "curve"}
SPLITS = ("train", "test")
# The table's columns: (heading, tooltip)
BARRIER_COLUMNS = (
    ("loss barrier", ("max over t in [0, 1] of L(t) - ((1 - t) L(A) + t L(B)): the rise over the chord "
                      "(Frankle et al. 2020)")),
    ("midpoint", ("midpoint barrier: max over t in [0, 1] of L(t) - (L(A) + L(B)) / 2 "
                  "(Garipov et al., Draxler et al.)")),
    ("t of max", "where the loss rises most over the chord"),
    ("error barrier", "the same rise over the chord for the error (100 - accuracy), in percentage points"),
    ("mean loss", "mean of the loss over t in [0, 1]"),
    ("length", "the path's length in weight space, from the file (recorded when a run ends)"),
)
NO_NUMBER = ""  # a number that does not exist (yet): not computed, regression (no error), no length recorded
TRAINING, EVALUATING = "training", "evaluating"


# -- curves ------------------------------------------------------------------------------------
def series_label(name: str, attrs: Mapping[str, Any] | None = None, short: bool = False) -> str:
    """The legend's name of a series: 'straight line', 'straight line, B aligned', 'bezier curve, 1 bend'
    (``short``: without the bends, for the table's rows)."""
    if name == "curve" and attrs is not None and attrs.get("curve"):
        if short:
            return f"{attrs['curve']} curve"
        bends = int(attrs.get("bends", 1) or 0)
        return f"{attrs['curve']} curve, {bends} bend{'s' if bends != 1 else ''}"
    if short and name == "linear_aligned":
        return "aligned line"
    return SERIES_LABELS.get(name, name)


def ordered_series(names: list[str] | tuple[str, ...]) -> list[str]:
    """Series in drawing order: straight line, aligned straight line, curve (others after, as given)."""
    return [n for n in SERIES_ORDER if n in names] + [n for n in names if n not in SERIES_ORDER]


def computed_points(t: np.ndarray, values: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t, value) of the computed points, in order of t (non-finite values kept: the line breaks there)."""
    done = np.asarray(done, dtype=bool)
    return np.asarray(t, dtype=np.float64)[done], np.asarray(values, dtype=np.float64)[done]


def error_values(acc: np.ndarray) -> np.ndarray:
    """The error in percent, 100 - accuracy (accuracies are stored in percent)."""
    return 100.0 - np.asarray(acc, dtype=np.float64)


def error_name(value: str) -> str | None:
    """The error a value is drawn as (train_acc -> train_error); None for a loss."""
    return value[: -len("acc")] + "error" if value.endswith("_acc") else None


def endpoint_value(t: np.ndarray, values: np.ndarray, done: np.ndarray, where: float) -> float | None:
    """The value at t == ``where`` (0 for A, 1 for B) when it is computed and finite."""
    hits = np.flatnonzero((np.asarray(t) == where) & np.asarray(done, dtype=bool))
    if not hits.size or not math.isfinite(float(values[hits[0]])):
        return None
    return float(values[hits[0]])


def chord(t: np.ndarray, values: np.ndarray, done: np.ndarray) -> np.ndarray | None:
    """``(1 - t) L(A) + t L(B)`` at every t, or None until both endpoints are computed."""
    start, end = endpoint_value(t, values, done, 0.0), endpoint_value(t, values, done, 1.0)
    if start is None or end is None:
        return None
    t = np.asarray(t, dtype=np.float64)
    return (1.0 - t) * start + t * end


@dataclass(frozen=True)
class BarrierMark:
    """The barrier of one curve as drawn: a point at (t, value) and a segment from (t, chord) up to it."""

    t: float
    value: float
    chord: float

    @property
    def height(self) -> float:
        return self.value - self.chord


def barrier_mark(t: np.ndarray, values: np.ndarray, done: np.ndarray) -> BarrierMark | None:
    """Where the interpolated barrier is (over the computed points in t in [0, 1]); None until it exists."""
    t = np.asarray(t, dtype=np.float64)
    masked = np.where(np.asarray(done, dtype=bool), np.asarray(values, dtype=np.float64), np.nan)
    numbers = barrier_numbers(t, masked)
    if numbers["interpolated"] is None:
        return None
    where = float(numbers["interpolated_t"])
    value = float(masked[np.flatnonzero(t == where)[0]])
    start, end = float(masked[np.flatnonzero(t == 0.0)[0]]), float(masked[np.flatnonzero(t == 1.0)[0]])
    # the chord from the endpoints themselves: value - barrier would lose a chord far below the top
    return BarrierMark(where, value, (1.0 - where) * start + where * end)


def endpoint_lines(t: np.ndarray) -> list[float]:
    """t = 0 and t = 1 (where A and B are), marked when the t range reaches past them."""
    t = np.asarray(t, dtype=np.float64)
    return [0.0, 1.0] if t.size and (t.min() < 0.0 or t.max() > 1.0) else []


# -- the table -------------------------------------------------------------------------------------
def format_number(value: float | None, digits: int = 4) -> str:
    """A table cell: ``digits`` significant digits; NO_NUMBER for None or a non-finite value."""
    if value is None or not math.isfinite(float(value)):
        return NO_NUMBER
    return f"{float(value):.{digits}g}"


def recorded_lengths(attrs: Mapping[str, Any]) -> dict[str, float]:
    """series -> curve length, from the file's ``barriers`` attribute (JSON, written when a run ends)."""
    text = attrs.get("barriers") or ""
    try:
        recorded = json.loads(text) if text else {}
    except (TypeError, ValueError):
        return {}
    if not isinstance(recorded, dict):
        return {}
    lengths = {}
    for series, entry in recorded.items():
        length = entry.get("length") if isinstance(entry, dict) else None
        if isinstance(length, (int, float)) and math.isfinite(length):
            lengths[series] = float(length)
    return lengths


@dataclass(frozen=True)
class BarrierRow:
    """One row of the barrier table: a series on one split, its numbers and their cells' text."""

    series: str
    split: str
    label: str
    numbers: tuple[float | None, ...]  # one per BARRIER_COLUMNS

    @property
    def cells(self) -> tuple[str, ...]:
        return tuple(format_number(v) for v in self.numbers)


def barrier_rows(series_barriers: Mapping[str, Mapping[str, Mapping[str, Any]]],
                 attrs: Mapping[str, Any] | None = None) -> list[BarrierRow]:
    """The table's rows from ``PathResult.barriers`` (series -> value -> numbers) and the file's attributes.

    One row per series, plus one per series for the test split when the file has test
    values. Lengths come from the attribute (:func:`recorded_lengths`), on the train row.
    """
    attrs = attrs or {}
    lengths = recorded_lengths(attrs)
    rows = []
    for split in SPLITS:
        for series in ordered_series(list(series_barriers)):
            numbers = series_barriers[series]
            loss, error = numbers.get(f"{split}_loss"), numbers.get(f"{split}_error") or {}
            if loss is None:
                continue
            label = series_label(series, attrs, short=True) + ("" if split == "train" else " (test)")
            rows.append(BarrierRow(series, split, label, (
                loss.get("interpolated"), loss.get("midpoint"), loss.get("interpolated_t"), error.get("interpolated"),
                loss.get("mean"), lengths.get(series) if split == "train" else None)))
    return rows


# -- the curve's training --------------------------------------------------------------------------
@dataclass
class TrainingTrace:
    """The curve's training loss as a job reports it, placed on an epoch axis (epoch k spans (k, k+1]).

    A job reports the mean minibatch loss every fraction of a second, and says when an epoch
    ends, but not how far into an epoch a report is. A finished epoch's reports are spread
    evenly over it; the running epoch's are placed as if it gets as many reports as the one
    before (the first epoch's spread over it as they come), so the line grows at about the
    rate the epoch runs.
    """

    reports: list[tuple[int, float, bool]] = field(default_factory=list)  # (epoch index, loss, ends the epoch)

    def add(self, epochs_done: int, loss: float | None, ends_epoch: bool) -> None:
        """A training progress step: ``epochs_done`` as the job reports it (after the epoch, for its last step)."""
        if loss is None or not math.isfinite(loss):
            return
        epoch = epochs_done - 1 if ends_epoch else epochs_done
        self.reports.append((max(epoch, 0), float(loss), bool(ends_epoch)))

    def clear(self) -> None:
        self.reports.clear()

    def __len__(self) -> int:
        return len(self.reports)

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(epoch position, loss) of every report."""
        epochs: dict[int, list[tuple[float, bool]]] = {}
        for epoch, loss, ends in self.reports:
            epochs.setdefault(epoch, []).append((loss, ends))
        xs: list[float] = []
        ys: list[float] = []
        previous = 0  # reports of the last finished epoch
        for epoch in sorted(epochs):
            entries = epochs[epoch]
            finished = any(ends for _loss, ends in entries)
            n = len(entries)
            slots = n if finished else (max(previous, n + 1) if previous else n + 1)
            xs += [epoch + (j + 1) / slots for j in range(n)]
            ys += [loss for loss, _ends in entries]
            if finished:
                previous = n
        return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def epoch_means(losses: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The training log's mean loss of each epoch, at the epoch's end (x = 1, 2, ...)."""
    losses = np.asarray(losses if losses is not None else [], dtype=np.float64)
    return np.arange(1, losses.size + 1, dtype=np.float64), losses


def path_status(phase: str, *, epoch: int = 0, epochs: int = 0, loss: float | None = None, series: str = "",
                attrs: Mapping[str, Any] | None = None, series_done: int = 0, points: int = 0) -> str:
    """What a running path job is doing, for the status bar: the epoch it trains, or the series it evaluates."""
    if phase == TRAINING:
        text = f"training the curve, epoch {min(epoch + 1, max(epochs, 1))}/{epochs}"
        return text + (f", loss {loss:.4g}" if loss is not None and math.isfinite(loss) else "")
    if phase == EVALUATING:
        return f"evaluating the {series_label(series, attrs)}, {series_done}/{points} points"
    return f"{phase}…"


# -- the plane's overlay ---------------------------------------------------------------------------
def label_anchors(points: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Where each point's name goes: away from the middle of all the points, so names do not cover the lines.

    Returns a pyqtgraph ``TextItem`` anchor per point, (0..1, 0..1) of the text's box placed at
    the point: x 1 puts the text to the left of the point, y 1 above it (y grows upwards on a map).
    """
    if not points:
        return {}
    centre = np.mean(np.asarray(list(points.values()), dtype=np.float64), axis=0)
    anchors = {}
    for name, (x, y) in points.items():
        anchors[name] = (1.0 if x < centre[0] else 0.0, 1.0 if y >= centre[1] else 0.0)
    return anchors


__all__ = [
    "BARRIER_COLUMNS",
    "SERIES_LABELS",
    "BarrierMark",
    "BarrierRow",
    "TrainingTrace",
    "barrier_mark",
    "barrier_rows",
    "chord",
    "computed_points",
    "endpoint_lines",
    "endpoint_value",
    "epoch_means",
    "error_name",
    "error_values",
    "format_number",
    "label_anchors",
    "ordered_series",
    "path_status",
    "recorded_lengths",
    "series_label",
]
