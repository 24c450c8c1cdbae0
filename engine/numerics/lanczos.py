"""Extreme eigenpairs of a symmetric operator by Lanczos with full reorthogonalization.

The operator is anything with ``v -> H v`` on flat vectors (:class:`FlatOperator` wraps
:meth:`engine.numerics.problem.Problem.hessian`). Why Lanczos and not power iteration
(PyHessian): one Krylov space converges at both ends of the spectrum at once, so the
top-k and the bottom-k (most negative) come from the same products, and it stops on the
Ritz residual ``|H u - θ u|``, a bound on the error, not on the change of an estimate.

:class:`Lanczos` is step-wise and its state (the basis, the α and β coefficients) can be
saved and restored, so a job resumes from its last iteration. On a breakdown (β = 0: an
invariant subspace, e.g. a Hessian of small rank) it continues from a fresh vector
orthogonal to the basis, so every eigenvalue can be found, multiple ones included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

from engine.errors import LandscapeError
from engine.numerics.probes import LANCZOS_RESTART, LANCZOS_START, POWER_START, random_vector

Matvec = Callable[[torch.Tensor], torch.Tensor]
INITIAL_ROWS = 8
BREAKDOWN = 1e-10  # β below this (relative to the largest |α|, β seen) ends a Krylov block


class Operator(Protocol):
    """A symmetric linear operator on flat vectors."""

    dim: int
    dtype: torch.dtype
    device: torch.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor: ...


@dataclass
class DenseOperator:
    """A symmetric matrix as an operator: ground truth in tests, and the tridiagonal checks."""

    matrix: torch.Tensor

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.matrix.dtype

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.matrix @ v


@dataclass(frozen=True)
class Ritz:
    """Ritz values (ascending) of the tridiagonal matrix so far, their residual bounds and eigenvectors of T."""

    values: np.ndarray
    residuals: np.ndarray  # |β_m s_m,i|: the norm of H u_i - θ_i u_i
    vectors: np.ndarray  # (m, m) eigenvectors of T, columns
    scale: float  # largest |θ|: residuals are compared with tol * scale

    def top(self, k: int) -> np.ndarray:
        """Indices of the k largest values, descending."""
        return np.arange(len(self.values))[::-1][:k]

    def bottom(self, k: int) -> np.ndarray:
        """Indices of the k smallest values, ascending."""
        return np.arange(len(self.values))[:k]

    def converged(self, indices: np.ndarray, tol: float) -> bool:
        return bool(np.all(self.residuals[indices] <= tol * max(self.scale, np.finfo(float).tiny)))


class Lanczos:
    """Step-wise Lanczos with full reorthogonalization (two passes of classical Gram-Schmidt).

    ``basis`` rows are the orthonormal Lanczos vectors q_0, q_1, ...; after ``m`` steps,
    ``alpha[:m]`` and ``beta[:m]`` define T (``beta[m-1]`` couples to the next vector,
    0 when the Krylov space was exhausted and restarted).
    """

    def __init__(self, operator: Operator, capacity: int, seed: int = 0, start: torch.Tensor | None = None) -> None:
        if capacity < 1:
            raise LandscapeError("Lanczos needs at least one iteration")
        self.operator = operator
        self.capacity = min(int(capacity), operator.dim)
        self.seed = int(seed)
        # grown as needed (doubling): a top eigenvalue in a few products does not pay for 100 vectors
        self.basis = torch.zeros(min(self.capacity, INITIAL_ROWS), operator.dim, dtype=operator.dtype,
                                 device=operator.device)
        self.alpha: list[float] = []
        self.beta: list[float] = []
        self.block_start = 0  # the step the current Krylov block began at (after the last breakdown)
        first = start if start is not None else random_vector(operator.dim, seed, LANCZOS_START, 0, operator.dtype,
                                                                 operator.device)
        self.basis[0] = first / first.norm()

    @property
    def steps(self) -> int:
        return len(self.alpha)

    @property
    def exhausted(self) -> bool:
        """No further step is possible: the capacity (or the dimension) is reached."""
        return self.steps >= self.capacity

    def restore(self, basis: torch.Tensor, alpha: np.ndarray, beta: np.ndarray) -> None:
        """Continue from saved state: the first ``len(alpha) + 1`` basis rows (fewer at the capacity)."""
        m = len(alpha)
        rows = min(m + 1, self.capacity)
        if basis.shape[0] < rows or len(beta) != m:
            raise LandscapeError("internal: the saved Lanczos state is incomplete")
        self._reserve(rows)
        self.basis[:rows] = basis[:rows].to(self.basis)
        self.alpha, self.beta = [float(a) for a in alpha], [float(b) for b in beta]
        breaks = [i + 1 for i, b in enumerate(self.beta) if b == 0.0]
        self.block_start = breaks[-1] if breaks else 0

    def step(self) -> None:
        """One product H q_j, its coefficients, and the next basis vector."""
        if self.exhausted:
            raise LandscapeError("internal: Lanczos stepped past its capacity")
        j = self.steps
        q = self.basis[j]
        w = self.operator.matvec(q)
        alpha = float(torch.dot(q, w))
        w = w - alpha * q
        if j > 0:
            w = w - self.beta[j - 1] * self.basis[j - 1]
        w = self._orthogonalize(w, j + 1)
        beta = float(w.norm())
        if not (math.isfinite(alpha) and math.isfinite(beta)):  # any NaN or inf in H q reaches both
            raise LandscapeError("a Hessian-vector product is not finite (NaN or inf): the loss or the data hold "
                                 "non-finite values at these weights")
        self.alpha.append(alpha)
        scale = max(max(abs(a) for a in self.alpha), max(self.beta, default=0.0), 1e-300)
        if j + 1 >= self.capacity:
            self.beta.append(beta)
            return
        if beta <= BREAKDOWN * scale:  # an invariant subspace: T splits; go on in its complement
            self.beta.append(0.0)
            self.block_start = j + 1
            fresh = random_vector(self.operator.dim, self.seed, LANCZOS_RESTART, j + 1, self.basis.dtype,
                                  self.basis.device, "normal")
            fresh = self._orthogonalize(fresh, j + 1)
            norm = float(fresh.norm())
            if norm <= 1e-8:  # the basis spans everything: nothing is left to find
                self.capacity = j + 1
                return
            self._reserve(j + 2)
            self.basis[j + 1] = fresh / norm
            return
        self.beta.append(beta)
        self._reserve(j + 2)
        self.basis[j + 1] = w / beta

    def _reserve(self, rows: int) -> None:
        """Room for ``rows`` basis vectors (at most the capacity)."""
        if rows <= self.basis.shape[0]:
            return
        grown = torch.zeros(min(self.capacity, max(rows, 2 * self.basis.shape[0])), self.basis.shape[1],
                            dtype=self.basis.dtype, device=self.basis.device)
        grown[:self.basis.shape[0]] = self.basis
        self.basis = grown

    def _orthogonalize(self, w: torch.Tensor, rows: int) -> torch.Tensor:
        basis = self.basis[:rows]
        for _ in range(2):
            w = w - basis.T @ (basis @ w)
        return w

    def block_settled(self, top: bool, bottom: bool, tol: float) -> bool:
        """After a breakdown, the new block has taken a step and its own extreme Ritz values have converged:
        only then can an eigenvalue repeated across blocks (a second copy outside the first Krylov space)
        be excluded from the wanted ones."""
        if self.block_start == 0:
            return True
        m = self.steps
        if m <= self.block_start:
            return False
        alpha = np.asarray(self.alpha[self.block_start:], dtype=np.float64)
        off = np.asarray(self.beta[self.block_start:m - 1], dtype=np.float64)
        values, vectors = (alpha.copy(), np.ones((1, 1))) if len(alpha) == 1 else eigh_tridiagonal(alpha, off)
        residuals = np.abs(self.beta[m - 1] * vectors[-1, :])
        scale = max(float(np.max(np.abs(self.alpha))), np.finfo(float).tiny)
        ends = ([len(values) - 1] if top else []) + ([0] if bottom else [])
        return bool(np.all(residuals[ends] <= tol * scale))

    def ritz(self) -> Ritz:
        """The Ritz values of the steps so far (T's eigenvalues) with their residual bounds."""
        m = self.steps
        if m == 0:
            raise LandscapeError("internal: no Lanczos step yet")
        alpha = np.asarray(self.alpha, dtype=np.float64)
        off = np.asarray(self.beta[:m - 1], dtype=np.float64)
        if m == 1:
            values, vectors = alpha.copy(), np.ones((1, 1))
        else:
            values, vectors = eigh_tridiagonal(alpha, off)
        residuals = np.abs(self.beta[m - 1] * vectors[m - 1, :])
        return Ritz(values, residuals, vectors, float(np.max(np.abs(values))))

    def ritz_vectors(self, ritz: Ritz, indices: np.ndarray) -> torch.Tensor:
        """Unit Ritz vectors V s_i as rows, each signed so that its largest entry is positive (same bits every run)."""
        m = self.steps
        s = torch.as_tensor(ritz.vectors[:, indices], dtype=self.basis.dtype, device=self.basis.device)
        vectors = (self.basis[:m].T @ s).T
        vectors = vectors / vectors.norm(dim=1, keepdim=True)
        signs = torch.sign(vectors.gather(1, vectors.abs().argmax(dim=1, keepdim=True)))
        return vectors * torch.where(signs == 0, torch.ones_like(signs), signs)

    def quadrature(self) -> tuple[np.ndarray, np.ndarray]:
        """Gauss quadrature nodes and weights of the start vector's spectral measure (SLQ): T's eigenvalues
        and the squared first components of its eigenvectors (they sum to 1)."""
        ritz = self.ritz()
        return ritz.values, ritz.vectors[0, :] ** 2


@dataclass(frozen=True)
class Eigenpairs:
    """Eigenvalues (top: descending, bottom: ascending), their residuals and, if kept, unit eigenvectors."""

    values: np.ndarray
    residuals: np.ndarray
    vectors: torch.Tensor | None  # rows
    products: int


def extreme_eigenpairs(
    operator: Operator, top_k: int = 1, bottom_k: int = 0, tol: float = 1e-5, max_iter: int = 100, seed: int = 0,
    vectors: bool = True,
) -> tuple[Eigenpairs, Eigenpairs]:
    """The ``top_k`` largest and ``bottom_k`` smallest eigenpairs from one Lanczos run.

    Stops once every wanted Ritz pair has a residual at most ``tol`` times the largest
    |Ritz value|, or after ``max_iter`` products (then the residuals say how far off they are).
    """
    check_counts(top_k, bottom_k, operator.dim)
    lanczos = Lanczos(operator, max_iter, seed)
    while True:
        lanczos.step()
        ritz = lanczos.ritz()
        if converged(lanczos, ritz, top_k, bottom_k, tol) or lanczos.exhausted:
            break
    return split_eigenpairs(lanczos, ritz, top_k, bottom_k, vectors)


def check_counts(top_k: int, bottom_k: int, dim: int) -> None:
    if top_k < 0 or bottom_k < 0:
        raise LandscapeError("--top-k and --bottom-k must be at least 0")
    if max(top_k, bottom_k) > dim:
        raise LandscapeError(f"asked for {max(top_k, bottom_k)} eigenvalues but the model has only {dim} parameters; "
                             "lower --top-k/--bottom-k")


def wanted_converged(ritz: Ritz, top_k: int, bottom_k: int, tol: float) -> bool:
    """Every wanted pair has converged, and T has enough values to tell top from bottom."""
    if len(ritz.values) < max(top_k, bottom_k) + (1 if top_k and bottom_k else 0):
        return False
    return ritz.converged(ritz.top(top_k), tol) and ritz.converged(ritz.bottom(bottom_k), tol)


def converged(lanczos: Lanczos, ritz: Ritz, top_k: int, bottom_k: int, tol: float) -> bool:
    """The stopping rule: the wanted pairs have converged and no Krylov block after a breakdown is unexplored."""
    return wanted_converged(ritz, top_k, bottom_k, tol) and lanczos.block_settled(top_k > 0, bottom_k > 0, tol)


def split_eigenpairs(lanczos: Lanczos, ritz: Ritz, top_k: int, bottom_k: int,
                     vectors: bool) -> tuple[Eigenpairs, Eigenpairs]:
    top, bottom = ritz.top(top_k), ritz.bottom(bottom_k)
    products = lanczos.steps

    def pairs(indices: np.ndarray) -> Eigenpairs:
        kept = lanczos.ritz_vectors(ritz, indices) if vectors and len(indices) else None
        return Eigenpairs(ritz.values[indices].copy(), ritz.residuals[indices].copy(), kept, products)

    return pairs(top), pairs(bottom)


class PowerIteration:
    """The k eigenpairs of largest magnitude of H - shift·I by power iteration with deflation, as PyHessian
    does but stopping on the residual |H u - λ u| <= tol |λ|; eigenvalues are reported for H itself.

    ``shift`` = λ_max turns the most negative eigenvalues of H into the largest-magnitude ones of the
    shifted operator. ``max_iter`` bounds the products per eigenpair. Kept for comparison: Lanczos
    needs far fewer products for the same accuracy. Step-wise, one product per :meth:`step`.
    """

    def __init__(self, operator: Operator, k: int = 1, tol: float = 1e-5, max_iter: int = 100, seed: int = 0,
                 shift: float = 0.0) -> None:
        check_counts(k, 0, operator.dim)
        self.operator, self.k, self.tol, self.max_iter, self.seed, self.shift = operator, k, tol, max_iter, seed, shift
        self.found: list[torch.Tensor] = []
        self.values: list[float] = []
        self.residuals: list[float] = []
        self.products = 0
        self._iterations = 0
        self._v = self._start(0)

    @property
    def done(self) -> bool:
        return len(self.found) >= self.k

    def _start(self, i: int) -> torch.Tensor:
        op = self.operator
        return random_vector(op.dim, self.seed, POWER_START, i, op.dtype, op.device, "normal")

    def step(self) -> None:
        v = self._v
        for u in self.found:
            v = v - torch.dot(u, v) * u
        v = v / v.norm()
        w = self.operator.matvec(v) - self.shift * v
        self.products += 1
        self._iterations += 1
        for u in self.found:  # deflation: stay in the complement of the pairs found
            w = w - torch.dot(u, w) * u
        value = float(torch.dot(v, w))
        residual = float((w - value * v).norm())
        norm = float(w.norm())
        if not np.isfinite(norm):
            raise LandscapeError("a Hessian-vector product is not finite (NaN or inf): the loss or the data hold "
                                 "non-finite values at these weights")
        if residual <= self.tol * max(abs(value), 1e-300) or norm == 0.0 or self._iterations >= self.max_iter:
            self.found.append(v)
            self.values.append(value + self.shift)
            self.residuals.append(residual)
            self._iterations = 0
            self._v = self._start(len(self.found))
            return
        self._v = w / norm

    def result(self) -> Eigenpairs:
        return Eigenpairs(np.asarray(self.values), np.asarray(self.residuals),
                          torch.stack(self.found) if self.found else None, self.products)


def power_iteration(operator: Operator, k: int = 1, tol: float = 1e-5, max_iter: int = 100, seed: int = 0,
                    shift: float = 0.0) -> Eigenpairs:
    """:class:`PowerIteration` run to its end."""
    power = PowerIteration(operator, k, tol, max_iter, seed, shift)
    while not power.done:
        power.step()
    return power.result()
