"""Seeded random vectors for the spectrum estimators, one independent stream per purpose and index.

A vector is drawn on the CPU from a generator seeded by (seed, stream, index) and then
moved, so it has the same bits on every device and a resumed job draws exactly the
vectors the interrupted one would have.
"""

from __future__ import annotations

import numpy as np
import torch

# Streams: what a vector is for.
LANCZOS_START, LANCZOS_RESTART, POWER_START, TRACE_SKETCH, TRACE_SAMPLE, DENSITY_PROBE = range(6)


def stream_seed(seed: int, stream: int, index: int) -> int:
    """A 63-bit generator seed for the index-th vector of a stream (numpy's SeedSequence mixes them)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(stream), int(index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def random_vector(dim: int, seed: int, stream: int, index: int, dtype: torch.dtype, device: torch.device,
                  kind: str = "rademacher", unit: bool = False) -> torch.Tensor:
    """A Rademacher (±1) or Gaussian vector; ``unit``: scaled to norm 1."""
    generator = torch.Generator().manual_seed(stream_seed(seed, stream, index))
    if kind == "rademacher":
        v = torch.randint(0, 2, (dim,), generator=generator, dtype=torch.int8).to(torch.float64).mul_(2).sub_(1)
    else:
        v = torch.randn(dim, generator=generator, dtype=torch.float64)
    if unit:
        v = v / v.norm()
    return v.to(dtype=dtype, device=device)
