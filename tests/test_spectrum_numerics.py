"""Lanczos, power iteration, Hutchinson, Hutch++ and SLQ against dense ground truth (numpy/torch eigh).

Closed form: the MSE Hessian of a linear model y = w.x + b is exactly (2/n) [X 1]^T [X 1].
Tiny float64 networks: the dense Hessian from ``torch.func.hessian``; their spectra have
negative eigenvalues, which the bottom-k must find.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.func import functional_call, hessian

import tests.reference_models as zoo
from engine.errors import LandscapeError
from engine.io.data import DataSet, tensor_sha256
from engine.numerics.density import (
    default_sigma, density_grid, effective_dimensionality, gaussian_density, negative_mass, probe_matrix, slq_probe,
)
from engine.numerics.flat import FlatOperator
from engine.numerics.lanczos import DenseOperator, Lanczos, extreme_eigenpairs, power_iteration
from engine.numerics.problem import Problem
from engine.numerics.trace import TraceEstimator


def _problem(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> Problem:
    return Problem(model, DataSet(x, y, "test", tensor_sha256(x, y), len(x)), device="cpu")


def linear_problem(n: int = 40, d: int = 5) -> tuple[Problem, np.ndarray]:
    """A float64 linear regression and its exact Hessian (2/n) A^T A with A = [X 1]."""
    torch.manual_seed(0)
    x = torch.randn(n, d, dtype=torch.float64) * torch.linspace(0.2, 3.0, d, dtype=torch.float64)
    y = torch.randn(n, 1, dtype=torch.float64)
    a = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], dim=1).numpy()
    return _problem(zoo.linear(d), x, y), 2.0 / n * a.T @ a


def dense_truth(problem: Problem) -> np.ndarray:
    """The dense Hessian of the mean loss, written independently of the Problem's products."""
    x = torch.cat([b[0] for b in problem.batches()])
    y = torch.cat([b[1] for b in problem.batches()])
    params, buffers = problem.params(), problem.buffers()
    names = list(params)

    def loss(p):
        out = functional_call(problem.model, {**buffers, **p}, (x,))
        return torch.nn.functional.cross_entropy(out, y) if problem.classification else ((out - y) ** 2).mean()

    blocks = hessian(loss)(params)
    return torch.cat([torch.cat([blocks[a][b].reshape(params[a].numel(), params[b].numel()) for b in names], 1)
                      for a in names]).numpy()


def network_problem(kind: str) -> Problem:
    torch.manual_seed(4)
    if kind == "mlp":
        model, x = zoo.tiny_mlp(), torch.randn(30, 3, dtype=torch.float64)
    else:
        model = zoo.tiny_cnn()
        model.train()
        with torch.no_grad():
            model(torch.randn(16, 1, 4, 4, dtype=torch.float64) * 2 + 1)
        model.eval()
        x = torch.randn(20, 1, 4, 4, dtype=torch.float64)
    return _problem(model, x, torch.randint(0, 3, (len(x),)))


def flat_operator(problem: Problem, method: str = "double_backward") -> FlatOperator:
    return FlatOperator(problem.hessian(problem.params(), method=method))


# -- the operator ----------------------------------------------------------------------------------


def test_flat_operator_of_a_linear_model_is_the_closed_form_hessian():
    problem, exact = linear_problem()
    op = flat_operator(problem)
    matrix = torch.stack([op.matvec(e) for e in torch.eye(op.dim, dtype=torch.float64)], dim=1).numpy()
    np.testing.assert_allclose(matrix, exact, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
def test_flat_operator_of_a_network_matches_the_dense_hessian_on_random_vectors(kind, method):
    problem = network_problem(kind)
    truth = dense_truth(problem)
    op = flat_operator(problem, method)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        v = torch.randn(op.dim, generator=generator, dtype=torch.float64)
        np.testing.assert_allclose(op.matvec(v).numpy(), truth @ v.numpy(), rtol=1e-9, atol=1e-11)


# -- eigenpairs ------------------------------------------------------------------------------------


def test_lanczos_top_and_bottom_of_linear_regression_equal_numpy_eigh():
    problem, exact = linear_problem()
    truth = np.linalg.eigvalsh(exact)
    top, bottom = extreme_eigenpairs(flat_operator(problem), top_k=3, bottom_k=2, tol=1e-10)
    np.testing.assert_allclose(top.values, truth[::-1][:3], rtol=1e-10)
    np.testing.assert_allclose(bottom.values, truth[:2], rtol=1e-9)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_lanczos_eigenpairs_of_a_network_match_eigh_including_negative_ones(kind):
    problem = network_problem(kind)
    values, vectors = np.linalg.eigh(dense_truth(problem))
    assert values[0] < -1e-4, "the case must have negative curvature for this test to mean something"
    op = flat_operator(problem)
    top, bottom = extreme_eigenpairs(op, top_k=4, bottom_k=3, tol=1e-9, max_iter=op.dim)
    np.testing.assert_allclose(top.values, values[::-1][:4], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(bottom.values, values[:3], rtol=1e-7, atol=1e-10)
    assert bottom.values[0] < 0
    for got, want in zip(top.vectors.numpy(), vectors[:, ::-1].T[:2]):  # the top two are simple
        assert abs(abs(got @ want) - 1.0) < 1e-7


def test_ritz_residuals_bound_the_distance_to_a_true_eigenvalue():
    """Stopped early, every reported eigenvalue lies within its residual of some true eigenvalue."""
    torch.manual_seed(1)
    n = 200
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64))
    spectrum = torch.cat([torch.tensor([40.0, 25.0, 24.0, -6.0]), torch.rand(n - 4) - 0.2]).double()
    op = DenseOperator(q @ torch.diag(spectrum) @ q.T)
    top, bottom = extreme_eigenpairs(op, top_k=3, bottom_k=1, tol=1e-3, max_iter=15)
    truth = spectrum.numpy()
    for value, residual in zip(np.r_[top.values, bottom.values], np.r_[top.residuals, bottom.residuals]):
        assert np.min(np.abs(truth - value)) <= residual + 1e-12


def test_lanczos_finds_a_repeated_eigenvalue_after_a_breakdown():
    """A rank-3 matrix with a double eigenvalue: the Krylov space of one vector holds only one copy."""
    q, _ = torch.linalg.qr(torch.randn(30, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(2)))
    spectrum = torch.zeros(30, dtype=torch.float64)
    spectrum[:3] = torch.tensor([5.0, 5.0, 2.0], dtype=torch.float64)
    top, _ = extreme_eigenpairs(DenseOperator(q @ torch.diag(spectrum) @ q.T), top_k=3, tol=1e-10, max_iter=30)
    np.testing.assert_allclose(top.values, [5.0, 5.0, 2.0], atol=1e-9)


def test_power_iteration_returns_the_largest_magnitudes_and_with_a_shift_the_most_negative():
    truth = dense_truth(network_problem("mlp"))
    values = np.linalg.eigvalsh(truth)
    op = DenseOperator(torch.from_numpy(truth))  # the products themselves are checked above
    top = power_iteration(op, k=2, tol=1e-10, max_iter=5000)
    by_magnitude = values[np.argsort(-np.abs(values))][:2]
    np.testing.assert_allclose(top.values, by_magnitude, rtol=1e-6)
    bottom = power_iteration(op, k=1, tol=1e-10, max_iter=20000, shift=float(values[-1]))
    np.testing.assert_allclose(bottom.values, values[:1], rtol=1e-5)


def test_lanczos_restored_from_its_saved_state_continues_to_the_same_bits():
    problem = network_problem("cnn")
    op = flat_operator(problem)
    whole = Lanczos(op, 20, seed=3)
    for _ in range(12):
        whole.step()
    part = Lanczos(op, 20, seed=3)
    for _ in range(5):
        part.step()
    resumed = Lanczos(op, 20, seed=3)
    resumed.restore(part.basis[:6].clone(), np.array(part.alpha), np.array(part.beta))
    for _ in range(7):
        resumed.step()
    assert resumed.alpha == whole.alpha and resumed.beta == whole.beta


def test_more_eigenvalues_than_parameters_is_one_line_error():
    problem, _ = linear_problem(d=2)
    with pytest.raises(LandscapeError, match="only 3 parameters"):
        extreme_eigenpairs(flat_operator(problem), top_k=4)


# -- trace -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_trace_estimates_lie_within_a_few_standard_errors_of_the_true_trace(method):
    matrix = dense_truth(network_problem("cnn"))
    truth = float(np.trace(matrix))
    op = DenseOperator(torch.from_numpy(matrix))  # the products themselves are checked above
    z_scores = []
    for seed in range(8):
        estimator = TraceEstimator(op, method, sketch=8, seed=seed)
        for _ in range(40):
            estimator.step()
        estimate = estimator.estimate()
        z_scores.append((estimate.value - truth) / estimate.stderr)
    z = np.abs(np.array(z_scores))
    assert z.max() < 5.0, z
    assert np.mean(z < 2.5) >= 0.75, z  # roughly Gaussian errors: most within 2.5 standard errors


def test_hutch_plus_plus_is_exact_when_its_sketch_spans_the_space():
    problem, exact = linear_problem()
    estimator = TraceEstimator(flat_operator(problem), "hutch++", sketch=10, seed=0)  # dim 6 <= 10
    while not estimator.converged(1e-6):
        estimator.step()
    assert estimator.estimate().value == pytest.approx(np.trace(exact), rel=1e-10)


def test_hutch_plus_plus_needs_fewer_products_than_hutchinson_for_the_same_error_on_a_spiked_spectrum():
    """A few large eigenvalues over a small bulk, as networks have: the sketch removes their variance."""
    torch.manual_seed(5)
    n = 400
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64))
    spectrum = torch.cat([torch.tensor([300.0, 200.0, 150.0, 100.0, 80.0]), torch.rand(n - 5) * 0.1]).double()
    op = DenseOperator(q @ torch.diag(spectrum) @ q.T)
    products = {}
    for method in ("hutchinson", "hutch++"):
        estimator = TraceEstimator(op, method, sketch=10, seed=0)
        while not estimator.converged(0.01) and len(estimator.samples) < 5000:
            estimator.step()
        products[method] = estimator.estimate().products
        assert estimator.estimate().value == pytest.approx(float(spectrum.sum()), rel=0.05)
    assert products["hutch++"] * 3 < products["hutchinson"], products


# -- density ---------------------------------------------------------------------------------------


def _slq(op, probes: int, steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return probe_matrix([slq_probe(op, steps, seed, i) for i in range(probes)], steps)


def test_slq_cumulative_distribution_matches_the_true_eigenvalues():
    problem, exact = linear_problem(d=7)
    truth = np.linalg.eigvalsh(exact)
    values, weights = _slq(flat_operator(problem), probes=200, steps=8)
    nodes, mass = values[np.isfinite(values)], weights[np.isfinite(weights)] / len(values)
    for threshold in (truth[:-1] + truth[1:]) / 2:  # between consecutive eigenvalues: the true CDF is k/p
        estimated = mass[nodes <= threshold].sum()
        exact_cdf = np.mean(truth <= threshold)
        assert abs(estimated - exact_cdf) < 0.06, (threshold, estimated, exact_cdf)


def test_slq_quadrature_is_exact_per_probe_once_the_krylov_space_is_complete():
    """With m >= p steps, Σ w_i θ_i is v^T H v exactly for the probe v."""
    problem, exact = linear_problem()
    op = flat_operator(problem)
    values, weights = slq_probe(op, 10, 0, 0)
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-12)
    from engine.numerics.probes import DENSITY_PROBE, random_vector

    v = random_vector(op.dim, 0, DENSITY_PROBE, 0, torch.float64, torch.device("cpu"), unit=True).numpy()
    assert float(weights @ values) == pytest.approx(float(v @ exact @ v), rel=1e-10)


def test_gaussian_density_integrates_to_one_and_redraws_at_any_sigma():
    values = np.array([[0.0, 1.0, np.nan], [2.0, 3.0, 5.0]])
    weights = np.array([[0.5, 0.5, np.nan], [0.2, 0.3, 0.5]])
    for sigma in (0.05, 0.3):
        grid = density_grid(values, sigma, 4000)
        density = gaussian_density(values, weights, grid, sigma)
        assert np.trapezoid(density, grid) == pytest.approx(1.0, rel=1e-6)
    assert default_sigma(values) == pytest.approx(0.05)
    with pytest.raises(LandscapeError, match="sigma"):
        gaussian_density(values, weights, np.zeros(3), 0.0)


def test_effective_dimensionality_and_negative_mass_match_the_eigenvalues():
    matrix = dense_truth(network_problem("mlp"))
    truth = np.linalg.eigvalsh(matrix)
    op = DenseOperator(torch.from_numpy(matrix))  # the products themselves are checked above
    values, weights = _slq(op, probes=60, steps=op.dim)
    for alpha in (1e-3, 1e-1):
        positive = np.maximum(truth, 0)
        exact = float(np.sum(positive / (positive + alpha)))
        estimate = effective_dimensionality(values, weights, op.dim, alpha)
        assert abs(estimate.value - exact) <= 4 * estimate.stderr + 1e-9, (alpha, estimate, exact)
    neg = negative_mass(values, weights)
    exact_negative = float(np.mean(truth < -1e-5 * np.abs(truth).max()))
    assert abs(neg.value - exact_negative) <= 4 * neg.stderr + 1e-9


def test_a_non_finite_product_is_one_line_error():
    op = DenseOperator(torch.tensor([[1.0, 0.0], [0.0, math.nan]], dtype=torch.float64))
    with pytest.raises(LandscapeError, match="not finite"):
        extreme_eigenpairs(op, 1)
