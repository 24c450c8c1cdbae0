"""The job model every long computation follows: surfaces today, paths and spectra next.

A job is built from a frozen request and goes through explicit states::

    NEW --prepare()--> PREPARED --run()--> RUNNING --> FINISHED | CANCELLED
                 \\--------------------------------> FAILED (an error was raised)

* :meth:`Job.prepare` takes the file's writer lock, loads what the job needs and
  creates or reopens its result file. :meth:`Job.cancel` is honoured *during*
  prepare too (between the blocks of hashing a large checkpoint, say).
* :meth:`Job.run` is a generator of :class:`Progress`; it stops after the current
  step once cancelled, and everything computed is in the file when it ends.
* :meth:`Job.summary` describes the result; :meth:`Summary.as_json` is what
  ``--json`` prints.

A job kind implements ``_prepare``, ``_steps``, ``_complete``, ``_summary`` and the
``total`` and ``resumed_from`` counts, nothing else of this life cycle; the CLI, the
Python API and the app drive every kind the same way.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

from engine.cancel import Cancelled, cancellable
from engine.errors import LandscapeError
from engine.io.store import settings_mismatch, settings_of

# Phases a progress step reports, so a front end can say what is happening.
PREPARING, CALIBRATING, COMPUTING = "preparing", "calibrating", "computing"
ETA_WINDOW_SECONDS = 10.0  # the ETA follows the rate over this much recent work
ETA_MIN_SECONDS = 1.0  # and says nothing until it has seen this much


class JobState(enum.Enum):
    NEW = "new"
    PREPARED = "prepared"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class Progress:
    """One step of a running job. Kinds add what the step computed (see SurfaceProgress)."""

    kind: str
    path: Path  # the result file
    phase: str
    done: int  # units of work finished in the file (points, epochs, iterations)
    total: int
    computed: int  # finished by this run (not counting a resumed file's)
    elapsed: float  # seconds since prepare() began
    eta: float | None  # seconds left, from the recent rate; None until that means something


@dataclass(frozen=True)
class Summary:
    """How a job ended and what its file holds."""

    kind: str
    path: Path
    shape: tuple[int, ...]
    done: int
    total: int
    computed: int
    resumed_from: int
    seconds: float  # wall time from the start of prepare() to the finished file
    cancelled: bool
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> min, max, nonfinite
    details: dict[str, Any] = field(default_factory=dict)  # kind-specific facts (strategy, ...)

    def describe(self) -> str:
        """One line for a terminal."""
        state = "cancelled" if self.cancelled else "done"
        return f"wrote {self.path}: {self.done}/{self.total} {state}, computed {self.computed} in {self.seconds:.1f} s"

    def as_json(self) -> dict[str, Any]:
        """The one JSON object ``--json`` prints (keys are a promise to users' scripts)."""
        return {
            "kind": self.kind,
            "file": str(self.path),
            "shape": list(self.shape),
            "done": self.done,
            "total": self.total,
            "computed": self.computed,
            "resumed_from": self.resumed_from,
            "complete": self.done == self.total,
            "cancelled": self.cancelled,
            "seconds": round(self.seconds, 6),
            "metrics": self.metrics,
            **self.details,
        }


class RateMeter:
    """Seconds left from the rate of recent work: a job makes one when its first tile is computed,
    so set-up and strategy calibration never count."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()

    def eta(self, now: float, computed: int, remaining: int) -> float | None:
        self._samples.append((now, computed))
        while len(self._samples) > 2 and now - self._samples[1][0] >= ETA_WINDOW_SECONDS:
            self._samples.popleft()
        (t0, c0) = self._samples[0]
        if now - t0 < ETA_MIN_SECONDS or computed <= c0:
            return None
        return remaining * (now - t0) / (computed - c0)


class Job(ABC):
    """The life cycle shared by every job kind; see the module docstring."""

    kind: ClassVar[str]
    unit: ClassVar[str] = "step"  # what Progress.done counts, for progress bars ...
    noun: ClassVar[str] = "steps"  # ... and for messages ("41 of 441 points are saved")

    @property
    def has_summary(self) -> bool:
        """True once prepare() completed, i.e. the result file exists and summary() describes it."""
        return self._ready_for_summary

    def __init__(self, request: Any) -> None:
        self.request = request
        self.state = JobState.NEW
        self.messages: list[str] = []  # notes for the user (resuming, ignored options, ...)
        self._stop = threading.Event()
        self._ready_for_summary = False  # _prepare() completed: there is a file to describe
        self._started: float | None = None
        self._ended: float | None = None

    # -- life cycle ------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop at the next step (or the next block of set-up); safe from any thread."""
        self._stop.set()

    def prepare(self) -> None:
        """Lock, load and create or reopen the result file; raises Cancelled if cancelled meanwhile."""
        if self.state is not JobState.NEW:
            return
        self._started = time.perf_counter()
        try:
            with cancellable(self._stop.is_set):
                self._prepare()
        except Cancelled:
            self.state = JobState.CANCELLED
            self.close()
            raise
        except BaseException:
            self.state = JobState.FAILED
            self.close()
            raise
        self._ready_for_summary = True
        self.state = JobState.PREPARED

    def run(self) -> Iterator[Progress]:
        """Compute what the file misses, yielding progress; ends early, cleanly, once cancelled."""
        if self.state is JobState.NEW:
            try:
                self.prepare()
            except Cancelled:
                return
        if self.state is not JobState.PREPARED:
            return
        self.state = JobState.RUNNING
        try:
            for step in self._steps():
                yield step
                if self._stop.is_set():
                    break
            self.state = JobState.CANCELLED if self._stop.is_set() or not self._complete() else JobState.FINISHED
        except GeneratorExit:  # the caller stopped iterating: that is a cancel
            self.state = JobState.CANCELLED
            raise
        except BaseException:
            self.state = JobState.FAILED
            raise
        finally:
            try:
                self._finish()
            finally:
                self._ended = time.perf_counter()
                self.close()

    def summary(self) -> Summary:
        """How the job ended; valid once prepare() has completed."""
        if not self._ready_for_summary:
            raise RuntimeError("summary() of a job whose prepare() did not complete")
        return self._summary()

    @property
    def seconds(self) -> float:
        """Wall time of the computation: from the start of prepare() to the finished file."""
        if self._started is None:
            return 0.0
        return (self._ended or time.perf_counter()) - self._started

    def close(self) -> None:
        """Release the file and its lock; idempotent. run() calls it when it ends."""

    def recorded_settings(self, out: Path) -> dict[str, Any]:
        """The attributes of an existing result file this job would resume, refused in one line if it is not one
        of this kind (or cannot be read)."""
        try:
            recorded = settings_of(out)
        except LandscapeError as exc:
            raise LandscapeError(f"{exc}; pass --overwrite to replace it or choose another --out") from None
        if recorded.get("format") != "landscape" or recorded.get("kind") != self.kind:
            raise LandscapeError(f"{out} exists and is not a Landscape {self.kind} file; choose another --out or pass "
                                 "--overwrite")
        return recorded

    @staticmethod
    def refuse_other_settings(out: Path, recorded: dict[str, Any], settings: dict[str, Any],
                              keys: tuple[str, ...]) -> None:
        """One line, and no change to the file, when it was made with settings other than this request's."""
        mismatch = settings_mismatch(recorded, settings, keys)
        if mismatch is None:
            return
        key, theirs, ours = mismatch
        theirs, ours = (v if len(v) <= 24 else v[:12] + "..." for v in (theirs, ours))
        raise LandscapeError(f"{out} was made with different settings ({key}: {theirs} there, {ours} now); "
                             "pass --overwrite to replace it or choose another --out")

    # -- what a kind implements ---------------------------------------------------------------
    @property
    @abstractmethod
    def total(self) -> int:
        """Units of work the result file holds when complete (known once prepared)."""

    @property
    @abstractmethod
    def resumed_from(self) -> int:
        """Units already done in the file when this job reopened it."""

    @abstractmethod
    def _prepare(self) -> None: ...

    @abstractmethod
    def _steps(self) -> Iterator[Progress]: ...

    @abstractmethod
    def _complete(self) -> bool: ...

    def _finish(self) -> None:
        """Write what is still buffered (called however run() ends)."""

    @abstractmethod
    def _summary(self) -> Summary: ...


def json_safe(value: Any) -> Any:
    """NaN and inf become None, in nested dicts and lists: what ``--json`` prints is always valid JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
