"""Directions in weight space (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets").

A direction is a dict ``name -> tensor`` shaped like the model's tensors. A plane
(or line) through weight space is an origin plus one direction per axis; random,
PCA, interpolation and (later) Hessian-eigenvector or mode-connectivity bases are
different ways to make the same thing, and evaluation does not care which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from engine.errors import LandscapeError

NORMS = ("filter", "layer", "weight", "none")
IGNORES = ("biasbn", "none")
Direction = dict[str, torch.Tensor]


@dataclass
class Basis:
    """An origin's directions, how they were made, and points to draw over the plane."""

    kind: str  # random | interpolate | pca | plane | hessian | file
    directions: list[Direction]
    norm: str = "none"
    ignore: str = "none"
    # PCA only: explained variance ratio of each axis, and trajectory projections.
    explained_variance_ratio: list[float] | None = None
    trajectory: dict[str, np.ndarray] | None = None  # {"x": (T,), "y": (T,)}
    trajectory_names: list[str] = field(default_factory=list)
    source: str | None = None  # the second checkpoint, trajectory glob or directions file
    eigenvalues: list[float] | None = None  # hessian only: the eigenvalue of each axis


def normalize_direction(direction: torch.Tensor, weight: torch.Tensor, norm: str) -> torch.Tensor:
    """Scale one tensor of a random direction to the weight it perturbs.

    ``filter``: each slice along dim 0 (an output channel or neuron) gets the norm of
    the weight's slice; ``layer``: the whole tensor gets the weight's norm; ``weight``:
    elementwise product with the weight; ``none``: unchanged. A tensor with one
    dimension or fewer counts as a single filter.
    """
    if norm == "none":
        return direction
    if norm == "weight":
        return direction * weight
    if norm == "layer" or direction.dim() <= 1:
        return direction * (weight.norm() / (direction.norm() + 1e-10))
    if norm == "filter":
        d = direction.reshape(direction.shape[0], -1)
        w = weight.reshape(weight.shape[0], -1)
        scale = w.norm(dim=1) / (d.norm(dim=1) + 1e-10)
        return (d * scale[:, None]).reshape(direction.shape)
    raise LandscapeError(f"unknown normalization '{norm}'; choose one of {', '.join(NORMS)}")


def check_choice(value: str, choices: Sequence[str], flag: str) -> str:
    if value not in choices:
        raise LandscapeError(f"unknown {flag} '{value}'; choose one of {', '.join(choices)}")
    return value


def random_direction(
    params: Mapping[str, torch.Tensor], generator: torch.Generator, norm: str = "filter", ignore: str = "biasbn"
) -> Direction:
    """A Gaussian direction shaped like ``params``, normalized as Li et al. do.

    Drawn on the CPU from ``generator`` in the order of ``params`` so that the same
    seed gives the same direction on any device.
    """
    check_choice(norm, NORMS, "--norm")
    check_choice(ignore, IGNORES, "--ignore")
    direction: Direction = {}
    for name, weight in params.items():
        w = weight.detach().to("cpu", torch.float32)
        d = torch.randn(w.shape, generator=generator, dtype=torch.float32)
        if ignore == "biasbn" and w.dim() <= 1:
            d.zero_()
        else:
            d = normalize_direction(d, w, norm)
        direction[name] = d
    return direction


def random_basis(
    params: Mapping[str, torch.Tensor], axes: int, seed: int, norm: str = "filter", ignore: str = "biasbn"
) -> Basis:
    """One random direction per axis from one seed (x first, then y)."""
    generator = torch.Generator().manual_seed(int(seed))
    directions = [random_direction(params, generator, norm, ignore) for _ in range(axes)]
    return Basis(kind="random", directions=directions, norm=norm, ignore=ignore)


def interpolation_basis(start: Mapping[str, torch.Tensor], end: Mapping[str, torch.Tensor]) -> Basis:
    """The line from ``start`` (x=0) to ``end`` (x=1): every floating tensor moves.

    ``start``/``end`` are full state dicts, so BatchNorm running statistics are
    interpolated too and both ends are exactly the two checkpoints' models.
    """
    direction: Direction = {}
    for name, a in start.items():
        if not a.is_floating_point():
            continue
        if name not in end:
            raise LandscapeError(f"the second checkpoint has no tensor {name}; are both checkpoints of the same model?")
        b = end[name]
        if b.shape != a.shape:
            raise LandscapeError(
                f"{name} has shape {tuple(a.shape)} in the first checkpoint and {tuple(b.shape)} in the second"
            )
        direction[name] = (b.detach().cpu().to(torch.float32) - a.detach().cpu().to(torch.float32))
    return Basis(kind="interpolate", directions=[direction], norm="none", ignore="none")


def pca_basis(
    final: Mapping[str, torch.Tensor],
    trajectory: Sequence[Mapping[str, torch.Tensor]],
    names: Sequence[str],
    ignore: str = "biasbn",
) -> Basis:
    """Top two principal components of the trajectory's offsets from the final weights.

    As in Li et al.: offsets ``w_i - w_final`` (1-D tensors zeroed under
    ``ignore=biasbn``), PCA of those offsets (mean-centred), and each checkpoint
    projected onto the two unit components for the overlay.
    """
    check_choice(ignore, IGNORES, "--ignore")
    if len(trajectory) < 3:
        raise LandscapeError(
            f"PCA directions need at least 3 trajectory checkpoints, found {len(trajectory)}; pass --trajectory DIR_OR_GLOB"
        )
    keys = list(final)
    rows = []
    for state in trajectory:
        parts = []
        for key in keys:
            if key not in state or state[key].shape != final[key].shape:
                raise LandscapeError(f"a trajectory checkpoint does not match the model at {key}")
            offset = (state[key].detach().cpu().double() - final[key].detach().cpu().double()).reshape(-1)
            if ignore == "biasbn" and final[key].dim() <= 1:
                offset = torch.zeros_like(offset)
            parts.append(offset)
        rows.append(torch.cat(parts))
    matrix = torch.stack(rows).numpy()  # (T, P)
    centred = matrix - matrix.mean(axis=0, keepdims=True)
    # Economy SVD of a (T, P) matrix: cheap because T (checkpoints) is small.
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    total = variance.sum()
    if total <= 0 or len(singular) < 2 or variance[1] <= 1e-30 * max(total, 1e-300):
        raise LandscapeError("the trajectory checkpoints do not span a plane (all offsets are collinear or zero)")
    components = vt[:2]  # unit vectors
    ratio = (variance[:2] / total).tolist()
    coords = matrix @ components.T  # projections of w_i - w_final, (T, 2)
    directions: list[Direction] = []
    for component in components:
        direction, offset = {}, 0
        for key in keys:
            size = final[key].numel()
            direction[key] = torch.from_numpy(component[offset:offset + size].copy()).reshape(final[key].shape).float()
            offset += size
        directions.append(direction)
    return Basis(
        kind="pca",
        directions=directions,
        norm="none",
        ignore=ignore,
        explained_variance_ratio=[float(r) for r in ratio],
        trajectory={"x": coords[:, 0].copy(), "y": coords[:, 1].copy()},
        trajectory_names=list(names),
    )


def hessian_basis(problem, axes: int, seed: int = 0, tol: float = 1e-5, max_iter: int = 100) -> Basis:
    """The top ``axes`` Hessian eigenvectors at the problem's weights as unit directions (Lanczos).

    Li et al. draw the plane of the two sharpest directions this way; each eigenvector is
    signed so that its largest entry is positive, so the same command gives the same plane.
    """
    from engine.cancel import raise_if_cancelled
    from engine.numerics.flat import FlatOperator
    from engine.numerics.lanczos import Lanczos, converged, split_eigenpairs
    from engine.numerics.threads import intra_op_threads

    params = problem.params()
    operator = FlatOperator(problem.hessian(params, wrt=problem.trainable or None))
    if operator.dim < axes:
        raise LandscapeError(f"the model has {operator.dim} parameter(s); a plane of Hessian eigenvectors needs {axes}")
    lanczos = Lanczos(operator, max_iter, seed)
    with intra_op_threads(operator.threads):
        while True:
            raise_if_cancelled()
            lanczos.step()
            ritz = lanczos.ritz()
            if converged(lanczos, ritz, axes, 0, tol) or lanczos.exhausted:
                break
        top, _ = split_eigenpairs(lanczos, ritz, axes, 0, vectors=True)
    assert top.vectors is not None
    # parameters held fixed (requires_grad=False) get zeros: the plane moves only what the Hessian is over
    directions = [{n: t.detach().clone() for n, t in operator.unflatten(row).items()} for row in top.vectors]
    directions = [{n: d[n] if n in d else torch.zeros_like(p) for n, p in params.items()} for d in directions]
    return Basis(kind="hessian", directions=directions, eigenvalues=[float(v) for v in top.values])
