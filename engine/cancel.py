"""Cooperative cancellation that reaches deep into loading code without extra arguments.

A job runs its set-up inside :func:`cancellable`; slow loops far below it (hashing a
large checkpoint, a pass over the data) call :func:`raise_if_cancelled` between
blocks, which raises :class:`Cancelled` once the job was asked to stop. Outside a
job it does nothing. The scope is a context variable, so each thread has its own.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator


class Cancelled(Exception):
    """The job was asked to stop; nothing is wrong and whatever was written stays."""


_scope: ContextVar[Callable[[], bool] | None] = ContextVar("landscape_cancel_scope", default=None)


@contextmanager
def cancellable(is_cancelled: Callable[[], bool]) -> Iterator[None]:
    """Run a block in which :func:`raise_if_cancelled` consults ``is_cancelled``."""
    token = _scope.set(is_cancelled)
    try:
        yield
    finally:
        _scope.reset(token)


def raise_if_cancelled() -> None:
    """Raise :class:`Cancelled` if the enclosing job was asked to stop."""
    is_cancelled = _scope.get()
    if is_cancelled is not None and is_cancelled():
        raise Cancelled()
