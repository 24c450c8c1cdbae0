"""Workers run engine work off the GUI thread and survive whatever owned them."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject

from engine.errors import LandscapeError
from landscape_gui.workers import CallbackWorker, GeneratorWorker


def test_deleting_the_owner_of_a_running_worker_does_not_abort_the_process(qtbot):
    # Qt aborts the process when a running QThread is destroyed; a dialog closed (and collected)
    # a moment before its training thread ends used to do exactly that under CPU load.
    owner = QObject()
    worker = CallbackWorker(lambda report: (time.sleep(0.3), report(1, 1, 0.5))[1], parent=owner)
    results = []
    worker.returned.connect(results.append)
    worker.start()
    del owner  # the Python wrapper goes, and with it the C++ parent
    qtbot.waitUntil(lambda: bool(results), timeout=5000)
    assert results == [True]


def test_generator_worker_yields_then_returns_or_reports_a_one_line_error(qtbot):
    def steps():
        yield 1
        yield 2
        return "done"

    worker = GeneratorWorker(steps)
    seen, ended = [], []
    worker.yielded.connect(seen.append)
    worker.returned.connect(ended.append)
    with qtbot.waitSignal(worker.returned, timeout=5000):
        worker.start()
    assert seen == [1, 2] and ended == ["done"]

    def failing():
        yield 1
        raise LandscapeError("bad file\nsecond line")

    broken = GeneratorWorker(failing)
    with qtbot.waitSignal(broken.errored, timeout=5000) as blocker:
        broken.start()
    message, details = blocker.args
    assert "bad file" in message and "\n" not in message and "Traceback" in details


def test_cancel_stops_a_generator_between_steps(qtbot):
    def endless():
        while True:
            yield 0
            time.sleep(0.001)

    worker = GeneratorWorker(endless)
    count = []
    worker.yielded.connect(lambda _x: count.append(1) or (len(count) == 5 and worker.cancel()))
    with qtbot.waitSignal(worker.aborted, timeout=5000):
        worker.start()
    assert worker.cancelled and len(count) >= 5
