"""One writer per result file, across processes and threads.

A job holds an exclusive lock on a sidecar file (``.NAME.lock`` beside ``NAME``) for
its whole life, from before it reads or replaces the file until its last write; a
second writer is refused at once with a line naming the holder, which the lock file
records. Readers never take the lock. The sidecar stays after release (removing it
would let two writers lock two different inodes); a stale one locks nothing.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from engine.errors import LandscapeError


def lock_path(path: str | Path) -> Path:
    path = Path(path).resolve()
    return path.with_name(f".{path.name}.lock")


def _owner_text() -> str:
    command = " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:2]) if sys.argv and sys.argv[0] else "python"
    started = time.strftime("%H:%M:%S", time.localtime())
    return f"process {os.getpid()} on {socket.gethostname()} ({command}, since {started})"


def _record_owner(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.write(fd, _owner_text().encode())


def _holder(lock_file: Path) -> str:
    try:
        text = lock_file.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process"


class WriterLock:
    """The exclusive right to write one result file; use as a context manager or acquire/release."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Not thread-local: the lock belongs to the job, which may be closed from another thread than took it.
        self._lock = FileLock(str(lock_path(self.path)), timeout=0, on_acquired=_record_owner, thread_local=False)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> "WriterLock":
        """Take the lock or raise a one-line error naming who holds it."""
        lock_file = lock_path(self.path)
        try:
            lock_file.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except Timeout:
            raise LandscapeError(
                f"{self.path} is being written by {_holder(lock_file)}; wait for it to finish or stop it "
                "(two writers would mix their results in one file)"
            ) from None
        except OSError as exc:
            raise LandscapeError(f"cannot lock {self.path} for writing: {exc.strerror or exc}") from exc
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def writer_of(path: str | Path) -> str | None:
    """Who is writing ``path`` now (a line naming the process), or None if nobody is."""
    lock_file = lock_path(path)
    if not lock_file.exists():
        return None
    probe = FileLock(str(lock_file), timeout=0)
    try:
        probe.acquire()
    except Timeout:
        return _holder(lock_file)
    except OSError:
        return None
    probe.release()
    return None
