"""How many intra-op threads a computation uses: one when its steps are too small to share.

OpenMP hands every op to all of torch's threads and waits for the slowest; for a small
model that fork-and-join costs more than the work, and on a busy machine (one other
process is enough) a waiting thread is descheduled and every op stalls. Measured on
2 cores with the sample MLP (width 50, 100 samples, 0.7 MFLOP a forward): a 101 x 101
surface took 0.89 s on one thread or two when idle, 0.83 s on one and 4.0 s on two
beside one busy process; training it took 1.5 s on one thread and 9.9 s on two.
Larger models (the digits CNN, 460 MFLOP a point) keep every thread. The choice comes
from the work's FLOPs, not from timing, so the same command always runs the same way.
Under OpenMP the setting belongs to the calling thread: a job's thread can use one
while the app's other threads keep theirs.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

SMALL_FLOPS = 5e6  # a forward of one batch below this runs on one thread


def forward_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward of ``x`` (counted by torch, nothing is timed)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def threads_for(flops: float, small: float = SMALL_FLOPS) -> int:
    """One thread for steps whose forward is below ``small`` FLOPs, all of torch's for the rest."""
    return 1 if flops < small else torch.get_num_threads()


@contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` intra-op threads in this thread, then restore what it had."""
    previous = torch.get_num_threads()
    if count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
