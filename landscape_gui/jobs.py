"""Surface jobs for the window: a queue run one at a time off the GUI thread.

The window hands over immutable ``SurfaceRequest``s; a ``GeneratorWorker`` runs
``SurfaceJob`` (set-up included) in its thread, and every progress step comes back
as a signal carrying the new values, which the window folds into the open surface.
Cancel stops at the next step; everything computed is already in the file.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.io.store import Surface, read_surface
from engine.jobs.surface import SurfaceJob, SurfaceProgress, SurfaceRequest
from landscape_gui.workers import GeneratorWorker


@dataclass(frozen=True)
class Started:
    """First message of a job: its file exists now (created or reopened)."""

    request: SurfaceRequest
    messages: tuple[str, ...]
    total: int
    resumed_from: int
    surface: Surface  # the file as the job found or created it, read in the job's own thread


class JobRunner(QObject):
    """Runs queued surface requests in order; see the module docstring for the signals' meaning."""

    started = Signal(object)  # Started
    progressed = Signal(object, object)  # request, SurfaceProgress
    finished = Signal(object, object)  # request, SurfaceSummary
    cancelled = Signal(object, object)  # request, SurfaceSummary | None
    failed = Signal(object, str, str)  # request, one-line message, details
    idle = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.queue: deque[SurfaceRequest] = deque()
        self.worker: GeneratorWorker | None = None
        self.job: SurfaceJob | None = None
        self.current: SurfaceRequest | None = None

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def submit(self, request: SurfaceRequest) -> None:
        """Queue a request (a request for a file already queued or running is ignored)."""
        out = Path(request.out).resolve()
        if any(Path(r.out).resolve() == out for r in self.queue) or (
            self.current is not None and Path(self.current.out).resolve() == out
        ):
            return
        self.queue.append(request)
        if not self.busy:
            self._next()

    def _next(self) -> None:
        if not self.queue:
            self.current = None
            self.idle.emit()
            return
        request = self.queue.popleft()
        job = SurfaceJob(request)
        self.current, self.job = request, job

        def steps():
            job.prepare()
            # Read here, between the job's writes: HDF5 will not open a file read-only in one
            # thread while another thread of the process has it open for writing.
            surface = read_surface(request.out)
            yield Started(request, tuple(job.messages), job.total, job.resumed_from, surface)
            yield from job.run()

        worker = GeneratorWorker(steps, on_cancel=job.cancel, parent=self)
        worker.yielded.connect(self._yielded)
        worker.returned.connect(lambda _r: self._ended("finished"))
        worker.aborted.connect(lambda: self._ended("cancelled"))
        worker.errored.connect(self._errored)
        self.worker = worker
        worker.start()

    def _yielded(self, item: object) -> None:
        if isinstance(item, Started):
            self.started.emit(item)
        elif isinstance(item, SurfaceProgress):
            self.progressed.emit(self.current, item)

    def _summary(self):
        job = self.job
        return job.summary() if job is not None and job.prepared else None

    def _cleanup(self) -> None:
        if self.worker is not None:
            self.worker.wait()
            self.worker.deleteLater()
        self.worker = None

    def _ended(self, how: str) -> None:
        request, summary = self.current, self._summary()
        self._cleanup()
        if how == "finished":
            self.finished.emit(request, summary)
        else:
            self.cancelled.emit(request, summary)
        self._next()

    def _errored(self, message: str, details: str) -> None:
        request = self.current
        self._cleanup()
        self.failed.emit(request, message, details)
        self._next()

    def cancel_current(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def cancel_all(self, wait: bool = True) -> None:
        """Drop the queue and stop the running job (used when the window closes)."""
        self.queue.clear()
        if self.worker is not None:
            self.worker.cancel()
            if wait:
                self.worker.wait(60000)
