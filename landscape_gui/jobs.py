"""Engine jobs for the window: a queue run one at a time off the GUI thread, for any job kind.

The window hands over immutable requests; a ``GeneratorWorker`` builds the job
(``engine.jobs.registry.job_for``), prepares it and runs it in its thread, and every
progress step comes back as a signal. What a step means for a view is the job's
business: the window folds it into the open result with ``result.apply(progress)``.
Cancel stops at the next step, or during set-up; everything computed is in the file.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.api import open as open_result
from engine.cancel import Cancelled
from engine.io.store import same_file
from engine.jobs.base import Job, Progress
from engine.jobs.registry import job_for
from landscape_gui.workers import GeneratorWorker


@dataclass(frozen=True)
class Started:
    """First message of a job: its file exists now (created or reopened)."""

    request: Any
    kind: str
    messages: tuple[str, ...]
    total: int
    resumed_from: int
    result: Any  # the file as the job found or created it, read in the job's own thread

    @property
    def path(self) -> Path:
        return Path(self.request.out)


class JobRunner(QObject):
    """Runs queued requests in order; see the module docstring for the signals' meaning."""

    started = Signal(object)  # Started
    progressed = Signal(object, object)  # request, Progress
    finished = Signal(object, object)  # request, Summary
    cancelled = Signal(object, object)  # request, Summary | None
    failed = Signal(object, str, str)  # request, one-line message, details
    idle = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.queue: deque[Any] = deque()
        self.worker: GeneratorWorker | None = None
        self.job: Job | None = None
        self.current: Any = None

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def submit(self, request: Any) -> None:
        """Queue a request (a request for a file already queued or running is ignored)."""
        if self.is_queued(request.out) or self.is_running(request.out):
            return
        self.queue.append(request)
        if not self.busy:
            self._next()

    def is_running(self, path: str | Path) -> bool:
        return self.current is not None and same_file(self.current.out, path)

    def is_queued(self, path: str | Path) -> bool:
        return any(same_file(r.out, path) for r in self.queue)

    def _next(self) -> None:
        if not self.queue:
            self.current = None
            self.idle.emit()
            return
        request = self.queue.popleft()
        job = job_for(request)
        self.current, self.job = request, job

        def steps():
            try:
                job.prepare()
            except Cancelled:
                return  # closed or cancelled during set-up: nothing to show
            try:
                # Read here, between the job's writes: HDF5 will not open a file read-only in one
                # thread while another thread of the process has it open for writing.
                yield Started(request, job.kind, tuple(job.messages), job.total, job.resumed_from,
                              open_result(request.out))
                yield from job.run()
            finally:
                job.close()  # a cancel between set-up and the first step never enters run(), which closes

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
        elif isinstance(item, Progress):
            self.progressed.emit(self.current, item)

    def _summary(self):
        job = self.job
        return job.summary() if job is not None and job.has_summary else None

    def _cleanup(self) -> None:
        if self.worker is not None:
            self.worker.wait()
            self.worker.deleteLater()
        self.worker = None

    def _ended(self, how: str) -> None:
        request, summary = self.current, self._summary()
        self._cleanup()
        complete = summary is not None and summary.done == summary.total
        if how == "finished" and complete:
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

    def cancel(self, path: str | Path) -> None:
        """Stop the job writing ``path``, or drop it from the queue; the other jobs go on."""
        self.queue = deque(r for r in self.queue if not same_file(r.out, path))
        if self.is_running(path):
            self.cancel_current()

    def cancel_all(self, wait: bool = True) -> None:
        """Drop the queue and stop the running job (used when the window closes)."""
        self.queue.clear()
        if self.worker is not None:
            self.worker.cancel()
            if wait:
                self.worker.wait(60000)

