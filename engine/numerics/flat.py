"""A Hessian on flat vectors: the parameter dicts of :class:`~engine.numerics.problem.HessianOperator`
seen as one vector, so Lanczos, trace and density estimators work on plain tensors."""

from __future__ import annotations

from typing import Mapping

import torch

from engine.numerics.problem import HessianOperator
from engine.numerics.threads import forward_flops, intra_op_threads, threads_for

Tensors = dict[str, torch.Tensor]


class FlatOperator:
    """``v -> H v`` on vectors of all parameters, concatenated in the model's parameter order.

    Each product runs on the intra-op threads its size calls for (:mod:`engine.numerics.threads`):
    one for a small model, whose backward otherwise stalls on a busy machine (a 38-parameter
    MLP's product took 100 ms on two threads beside two busy processes, 0.2 ms on one).
    """

    def __init__(self, hessian: HessianOperator) -> None:
        self.hessian = hessian
        problem = hessian.problem
        self.threads = threads_for(forward_flops(problem.model, next(iter(problem.batches()))[0]))
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
