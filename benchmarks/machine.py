"""The machine a benchmark runs on: how busy the other processes keep it, and this process's page faults.

Shared by the speed benchmarks, which record both with every timed run and can wait
for a quiet machine (``--wait-quiet``) before one.
"""

from __future__ import annotations

import os
import time

QUIET_BUSY = 0.10  # --wait-quiet: other processes may use at most this share of the CPUs before a timed run


def own_cpu_jiffies() -> float:
    t = os.times()
    return (t.user + t.system) * os.sysconf("SC_CLK_TCK")


def cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot; None where /proc/stat does not exist."""
    try:
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
    except OSError:
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def minor_faults() -> int:
    """Minor page faults of this process so far (0 where the resource module is missing)."""
    try:
        import resource
    except ImportError:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def others_busy(seconds: float = 0.5) -> float:
    """Share of all CPUs that other processes use over the next ``seconds`` (0 where unknown)."""
    start, own = cpu_jiffies(), own_cpu_jiffies()
    time.sleep(seconds)
    end, own_end = cpu_jiffies(), own_cpu_jiffies()
    if start is None or end is None:
        return 0.0
    return max(0.0, (end[0] - start[0] - (own_end - own)) / max(1, end[1] - start[1]))


def wait_quiet(timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while others_busy() > QUIET_BUSY and time.monotonic() < deadline:
        pass
