"""Spectral density by stochastic Lanczos quadrature (SLQ), and what it tells about a model.

Each probe is a Rademacher unit vector v; ``m`` Lanczos steps from v give Gauss quadrature
nodes θ_i (Ritz values) and weights w_i (squared first components of T's eigenvectors)
with Σ w_i f(θ_i) ≈ vᵀ f(H) v. Averaged over ``n_v`` probes this estimates the spectral
measure (1/p) Σ_j δ(λ - λ_j) (Ghorbani, Krishnan & Xiao 2019; PyHessian's ``density``).
Only the nodes and weights are stored, so the density can be redrawn at any Gaussian
width σ without a single new product (:func:`gaussian_density`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.errors import LandscapeError
from engine.numerics.lanczos import Lanczos, Operator
from engine.numerics.probes import DENSITY_PROBE, random_vector

DEFAULT_PROBES = 5
DEFAULT_STEPS = 80
DEFAULT_GRID = 1000
DEFAULT_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0)
ZERO_TOLERANCE = 1e-5  # |λ| below this x λ_max is zero to float32 products (see negative_mass)
SIGMA_FRACTION = 0.01  # default σ: this fraction of the spread of the Ritz values


def slq_probe(operator: Operator, steps: int, seed: int, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights (``steps`` of each, fewer if the Krylov space ends) of probe ``index``."""
    start = random_vector(operator.dim, seed, DENSITY_PROBE, index, operator.dtype, operator.device, unit=True)
    lanczos = Lanczos(operator, steps, seed=seed, start=start)
    while not lanczos.exhausted:
        lanczos.step()
        if lanczos.beta[-1] == 0.0:  # v's Krylov space is invariant: the quadrature is exact already
            break
    return lanczos.quadrature()


def default_sigma(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    spread = float(finite.max() - finite.min()) if finite.size else 0.0
    return SIGMA_FRACTION * spread if spread > 0 else 1e-3 * max(float(np.abs(finite).max(initial=0.0)), 1.0)


def density_grid(values: np.ndarray, sigma: float, points: int = DEFAULT_GRID) -> np.ndarray:
    """A grid that covers every node with 5σ to spare on each side."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return np.zeros(0)
    return np.linspace(float(finite.min()) - 5 * sigma, float(finite.max()) + 5 * sigma, int(points))


def gaussian_density(values: np.ndarray, weights: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    """(1/n_v) Σ_probes Σ_i w_i N(λ; θ_i, σ²) on ``grid``: integrates to 1 (NaN-padded nodes are skipped)."""
    if not sigma > 0:
        raise LandscapeError("the density's width sigma must be positive")
    keep = np.isfinite(values) & np.isfinite(weights)
    nodes, mass = values[keep], weights[keep]
    probes = max(values.shape[0], 1) if values.ndim == 2 else 1
    density = np.zeros(len(grid))
    for start in range(0, len(nodes), 256):  # bounded memory for long node lists
        diff = (grid[:, None] - nodes[None, start:start + 256]) / sigma
        density += np.exp(-0.5 * diff * diff) @ mass[start:start + 256]
    return density / (probes * sigma * math.sqrt(2 * math.pi))


@dataclass(frozen=True)
class SpectralStatistic:
    value: float
    stderr: float  # across probes


def spectral_mean(values: np.ndarray, weights: np.ndarray, f) -> SpectralStatistic:
    """(1/p) tr f(H) estimated from each probe's quadrature, with the standard error across probes."""
    per_probe = np.array([float(np.nansum(w * f(np.nan_to_num(v)))) for v, w in zip(values, weights)])
    n = len(per_probe)
    stderr = float(np.std(per_probe, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return SpectralStatistic(float(per_probe.mean()), stderr)


def effective_dimensionality(values: np.ndarray, weights: np.ndarray, dim: int, alpha: float) -> SpectralStatistic:
    """N_eff(α) = Σ_i λ_i / (λ_i + α) over the positive eigenvalues (Maddox, Benton & Wilson 2020), from SLQ."""
    if not alpha > 0:
        raise LandscapeError("alpha for the effective dimensionality must be positive")
    stat = spectral_mean(values, weights, lambda v: np.maximum(v, 0.0) / (np.maximum(v, 0.0) + alpha))
    return SpectralStatistic(dim * stat.value, dim * stat.stderr)


def negative_mass(values: np.ndarray, weights: np.ndarray, zero: float = ZERO_TOLERANCE) -> SpectralStatistic:
    """The fraction of the spectrum's mass at negative eigenvalues: the Ritz weight of nodes below
    ``-zero`` x the largest |node|. Smaller magnitudes count as zero: an interpolating network's
    huge null space comes out of float32 products as nodes of either sign around 1e-8 x λ_max."""
    finite = np.abs(values[np.isfinite(values)])
    threshold = zero * float(finite.max()) if finite.size else 0.0
    return spectral_mean(values, weights, lambda v: (v < -threshold).astype(float))


def probe_matrix(rows: list[tuple[np.ndarray, np.ndarray]], steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Probes' nodes and weights as (n_v, steps) arrays, NaN-padded where a Krylov space ended early."""
    values = np.full((len(rows), steps), np.nan)
    weights = np.full((len(rows), steps), np.nan)
    for i, (v, w) in enumerate(rows):
        values[i, :len(v)], weights[i, :len(w)] = v, w
    return values, weights

