"""A Hessian on flat vectors: the parameter dicts of :class:`~engine.numerics.problem.HessianOperator`
seen as one vector, so Lanczos, trace and density estimators work on plain tensors."""

from __future__ import annotations

from typing import Mapping

import torch

from engine.numerics.problem import HessianOperator

Tensors = dict[str, torch.Tensor]


class FlatOperator:
    """``v -> H v`` on vectors of all parameters, concatenated in the model's parameter order."""

    def __init__(self, hessian: HessianOperator) -> None:
        self.hessian = hessian
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
        return self.flatten(self.hessian.matvec(self.unflatten(v)))

    def flatten(self, tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([tensors[name].reshape(-1) for name in self.names])

    def unflatten(self, v: torch.Tensor) -> Tensors:
        """Views of ``v`` shaped like each parameter (contiguous, in the parameter's dtype)."""
        return {name: part.view(shape) for name, part, shape in zip(self.names, torch.split(v, self.sizes), self.shapes)}
