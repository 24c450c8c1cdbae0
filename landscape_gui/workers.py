"""Run engine generators off the GUI thread (the superqt GeneratorWorker pattern).

The main thread builds an immutable request and a function that turns it into a
generator; the worker thread iterates it and sends every yielded value back as a
signal. Cancel is a flag checked between yields, so an engine job stops at a step
boundary with everything it computed already on disk. Workers never touch widgets.
"""

from __future__ import annotations

import math
import time
import traceback
from typing import Any, Callable, Iterable

import torch._dynamo  # noqa: F401 - imported here, in the GUI thread: see below
from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.errors import LandscapeError
from engine.io.references import one_line

# torch imports torch._dynamo (and sympy, about 1 s) lazily, at the first forward under
# FlopCounterMode, which every job's thread rule runs (engine.numerics.threads). Done in a worker
# thread while the GUI thread runs Qt's event loop, that import has deadlocked the app (the worker
# stuck inside sympy's import, waiting for the GIL); importing it once, here, takes it off the workers.


_RUNNING: set[QThread] = set()  # started workers, held until their thread has ended


class _Reaper(QObject):
    """Lets go of a worker once its thread has really ended (runs in the GUI thread)."""

    @Slot()
    def reap(self) -> None:
        worker = self.sender()
        if isinstance(worker, QThread):
            worker.wait()
            _RUNNING.discard(worker)


_reaper: _Reaper | None = None


def keep_alive(worker: QThread) -> None:
    """Detach a starting worker from its Qt parent and hold it until its thread has ended.

    Qt aborts the whole process when a QThread is destroyed while running, which is what
    happens if a dialog or window that parented a worker is deleted (or garbage collected)
    a moment before the worker's thread finishes. Call from the GUI thread.
    """
    global _reaper
    if _reaper is None:
        _reaper = _Reaper()
    worker.setParent(None)
    _RUNNING.add(worker)
    worker.finished.connect(_reaper.reap)


class _Worker(QThread):
    """What both workers share: ending signals, a cancel flag, and staying alive while running."""

    returned = Signal(object)
    errored = Signal(str, str)
    aborted = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def start(self, *args) -> None:  # noqa: D102 - held until its thread ends (see keep_alive)
        keep_alive(self)
        super().start(*args)

    def cancel(self) -> None:
        """Ask the work to stop at its next step; safe to call from any thread, more than once."""
        self._cancelled = True

    def stop_and_wait(self, timeout_ms: int = 30000) -> bool:
        """Cancel and block until the thread has finished (used when a window closes)."""
        self.cancel()
        return self.wait(timeout_ms)

    def _report_error(self, exc: Exception) -> None:
        """One line for the user (a bug or library error is named), the traceback as details."""
        message = one_line(exc) if isinstance(exc, LandscapeError) else f"{type(exc).__name__}: {one_line(exc)}"
        self.errored.emit(message, traceback.format_exc())


class GeneratorWorker(_Worker):
    """Iterates ``make()`` in a thread; emits ``yielded`` per item and exactly one ending signal.

    ``make`` runs in the worker thread too, so slow set-up (loading a checkpoint,
    hashing data) never blocks the window. Endings: ``returned(value)`` after the
    generator ran out (``value`` is its ``return`` value), ``aborted()`` after a
    cancel, ``errored(message, details)`` with a one-line message for the user and
    the traceback as details. ``on_cancel`` is called from :meth:`cancel` so a job
    object with its own cancel flag (``SurfaceJob.cancel``) stops as soon as it can.
    """

    yielded = Signal(object)

    def __init__(self, make: Callable[[], Iterable[Any]], on_cancel: Callable[[], None] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._make = make
        self._on_cancel = on_cancel

    def cancel(self) -> None:  # noqa: D102 - also tells the job object
        super().cancel()
        if self._on_cancel is not None:
            self._on_cancel()

    def run(self) -> None:  # noqa: D102 - QThread entry point
        try:
            iterator = iter(self._make())
            while True:
                if self._cancelled:
                    close = getattr(iterator, "close", None)
                    if close is not None:
                        close()
                    self.aborted.emit()
                    return
                try:
                    item = next(iterator)
                except StopIteration as stop:
                    result = stop.value
                    break
                self.yielded.emit(item)
            if self._cancelled:
                self.aborted.emit()
            else:
                self.returned.emit(result)
        except Exception as exc:  # noqa: BLE001 - every failure reaches the user as one line
            self._report_error(exc)


class CallbackWorker(_Worker):
    """Runs ``func(report)`` in a thread, for engine calls that report through a callback.

    ``report(*args)`` emits ``progress(args)`` and returns False once :meth:`cancel`
    was called, which is how ``samples.registry.train`` learns to stop. With
    ``min_interval`` seconds, reports closer together than that are not emitted (only
    the latest matters to a progress bar, and every signal costs the GUI thread the
    GIL); cancel is still seen at every call. It ends with ``errored(message, details)``
    or ``returned(result)``; a cancelled call that still returns (training keeps the
    epoch it reached) emits ``aborted()`` just before.
    """

    progress = Signal(object)

    def __init__(self, func: Callable[[Callable[..., bool]], Any], parent: QObject | None = None,
                 min_interval: float = 0.0) -> None:
        super().__init__(parent)
        self._func = func
        self._min_interval = min_interval
        self._last_emit = -math.inf

    def _report(self, *args: Any) -> bool:
        now = time.monotonic()
        if now - self._last_emit >= self._min_interval:
            self._last_emit = now
            self.progress.emit(args)
        return not self._cancelled

    def run(self) -> None:  # noqa: D102 - QThread entry point
        try:
            result = self._func(self._report)
        except Exception as exc:  # noqa: BLE001 - every failure reaches the user as one line
            self._report_error(exc)
            return
        if self._cancelled:
            self.aborted.emit()
        self.returned.emit(result)
