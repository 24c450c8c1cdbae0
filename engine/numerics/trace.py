"""The trace of a Hessian from products alone: Hutchinson's estimator and Hutch++.

Hutchinson: tr(H) = E[gᵀ H g] for Rademacher g; the mean of n samples, with its standard
error from their spread. Hutch++ (Meyer, Musco, Musco & Woodruff 2021) first takes the
trace of H on the range of a sketch H S exactly (Q = orth(H S), tr(Qᵀ H Q)) and applies
Hutchinson only to the rest, (I - QQᵀ) H (I - QQᵀ): the few large eigenvalues a network's
Hessian has no longer add variance, so the same relative error needs far fewer products.

Both are step-wise (:meth:`TraceEstimator.step`) so a job can save every sample and
resume, and both stop when the standard error falls below ``rel_tol`` of the estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from engine.errors import LandscapeError
from engine.numerics.lanczos import Operator
from engine.numerics.probes import TRACE_SAMPLE, TRACE_SKETCH, random_vector

TRACE_METHODS = ("hutch++", "hutchinson")
MIN_SAMPLES = 10  # a standard error from fewer samples is itself too uncertain to stop on


@dataclass(frozen=True)
class TraceEstimate:
    value: float
    stderr: float
    samples: int  # residual (Hutchinson) samples
    products: int  # Hessian-vector products in all, the sketch's included


class TraceEstimator:
    """Step-wise trace estimation; ``method`` is ``hutch++`` (``sketch`` vectors) or ``hutchinson``."""

    def __init__(self, operator: Operator, method: str = "hutch++", sketch: int = 10, seed: int = 0) -> None:
        if method not in TRACE_METHODS:
            raise LandscapeError(f"unknown trace method '{method}'; choose hutch++ or hutchinson")
        self.operator = operator
        self.method = method
        self.seed = int(seed)
        self.sketch = min(int(sketch), operator.dim) if method == "hutch++" else 0
        if method == "hutch++" and self.sketch < 1:
            raise LandscapeError("--trace-sketch must be at least 1 for hutch++")
        self.basis: torch.Tensor | None = None  # Q: orthonormal rows
        self.exact = 0.0  # tr(Qᵀ H Q)
        self.samples: list[float] = []
        self.sketch_products = 0

    @property
    def sketched(self) -> bool:
        return self.sketch == 0 or self.basis is not None

    def make_sketch(self) -> None:
        """Q = orth(H S) and tr(Qᵀ H Q): 2 x sketch products. Deterministic in the seed, so a resume remakes it."""
        op = self.operator
        columns = [op.matvec(random_vector(op.dim, self.seed, TRACE_SKETCH, i, op.dtype, op.device))
                   for i in range(self.sketch)]
        q, _ = torch.linalg.qr(torch.stack(columns, dim=1))
        self.basis = q.T.contiguous()
        self.exact = float(sum(torch.dot(row, op.matvec(row)) for row in self.basis))
        self.sketch_products = 2 * self.sketch

    def sample(self, index: int) -> float:
        """One Hutchinson sample of the part of H outside the sketch (the sample with this index)."""
        op = self.operator
        g = random_vector(op.dim, self.seed, TRACE_SAMPLE, index, op.dtype, op.device)
        if self.basis is not None:
            g = g - self.basis.T @ (self.basis @ g)
        value = float(torch.dot(g, op.matvec(g)))
        if not math.isfinite(value):
            raise LandscapeError("a Hessian-vector product is not finite (NaN or inf): the loss or the data hold "
                                 "non-finite values at these weights")
        return value

    def step(self) -> float:
        """The next sample, added to the estimate."""
        if not self.sketched:
            self.make_sketch()
        value = self.sample(len(self.samples))
        self.samples.append(value)
        return value

    def estimate(self) -> TraceEstimate:
        n = len(self.samples)
        residual = float(np.mean(self.samples)) if n else 0.0
        stderr = float(np.std(self.samples, ddof=1) / math.sqrt(n)) if n > 1 else float("inf")
        return TraceEstimate(self.exact + residual, stderr, n, self.sketch_products + n)

    def converged(self, rel_tol: float) -> bool:
        if len(self.samples) < min(MIN_SAMPLES, self.operator.dim):
            return False
        estimate = self.estimate()
        return estimate.stderr <= rel_tol * abs(estimate.value) or estimate.stderr == 0.0
