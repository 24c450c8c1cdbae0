"""The installed Qt binding keeps Python's reference counts: a long session must not abort."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    fired = Signal(object)


def test_signal_emits_do_not_leak_references_to_true_or_none(qapp):
    # PySide6 6.12.0 on Python 3.11 dropped one reference to True per emit; after a few
    # hundred emits (a job's progress, a drag) the interpreter aborted in bool_dealloc.
    emitter = _Emitter()
    received = []
    emitter.fired.connect(received.append)
    true_before, none_before = sys.getrefcount(True), sys.getrefcount(None)
    for k in range(200):
        emitter.fired.emit(k)
    assert len(received) == 200
    assert abs(sys.getrefcount(True) - true_before) < 20, "this PySide6 leaks True on emit: install another version"
    assert abs(sys.getrefcount(None) - none_before) < 20, "this PySide6 leaks None: install another version"
