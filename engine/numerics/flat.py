"""A Hessian on flat vectors: the parameter dicts of :class:`~engine.numerics.problem.HessianOperator`
seen as one vector, so Lanczos, trace and density estimators work on plain tensors."""

from __future__ import annotations

from typing import Mapping

import torch

from engine.numerics.problem import HessianOperator
from engine.numerics.threads import forward_flops, intra_op_threads, threads_for

Tensors = dict[str, torch.Tensor]
PRODUCT_SMALL_FLOPS = 1e8


class FlatOperator:
    """``v -> H v`` on vectors of all parameters, concatenated in the model's parameter order.

    Each product runs on the intra-op threads its size calls for (:mod:`engine.numerics.threads`):
    one when a forward over one batch is below ``PRODUCT_SMALL_FLOPS``. A product is a forward
    and two backward passes of many small ops, and on a busy machine a second OpenMP thread
    stalls every one of them. Measured on 2 cores beside two busy processes (load 5), with
    double backward: top-5 of the width-200 sample MLP (44,601 parameters, 100 samples,
    9 MFLOP a forward) 0.53 s on one thread, 5.5 s on two; width 500 (26 MFLOP) 0.25 s and
    1.4 s; a 38-parameter MLP's product 0.2 ms against 100 ms. Callers that run vector
    operations of the same size between products (Lanczos, the trace) use ``threads`` for them too.
    """

    def __init__(self, hessian: HessianOperator) -> None:
        self.hessian = hessian
        problem = hessian.problem
        x = next(iter(problem.batches()))[0]
        # FLOPs grow with the batch: counted on two samples (train-mode BatchNorm needs two), scaled
        flops = forward_flops(problem.model, x[:2]) * len(x) / len(x[:2])
        self.threads = threads_for(flops, PRODUCT_SMALL_FLOPS)
        params = hessian.params
        self.names = list(hessian.names)
        self.shapes = [params[name].shape for name in self.names]
        self.sizes = [params[name].numel() for name in self.names]
        first = params[self.names[0]]
        self.dim = int(sum(self.sizes))
        self.dtype = first.dtype
        self.device = first.device

    @property
    def products(self) -> int:
        return self.hessian.n_products

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        with intra_op_threads(self.threads):
            return self.flatten(self.hessian.matvec(self.unflatten(v)))

    def flatten(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([tensors[name].reshape(-1) for name in self.names])

    def unflatten(self, v: torch.Tensor) -> Tensors:
        """Views of ``v`` shaped like each parameter (contiguous, in the parameter's dtype)."""
        return {name: part.view(shape) for name, part, shape in zip(self.names, torch.split(v, self.sizes), self.shapes)}
