"""Directions as Li et al. define them: filter normalization, ignored 1-D tensors, seeds, PCA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.numerics.directions import normalize_direction, pca_basis, random_basis, random_direction
from engine.errors import LandscapeError
from tests.reference_models import cnn_bn, mlp


def params_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in model.named_parameters()}


def test_filter_normalization_gives_each_filter_the_norm_of_the_weights_filter() -> None:
    torch.manual_seed(0)
    params = params_of(cnn_bn(channels=5))
    basis = random_basis(params, axes=2, seed=3, norm="filter", ignore="biasbn")
    for direction in basis.directions:
        for name, w in params.items():
            d = direction[name]
            assert d.shape == w.shape
            if w.dim() > 1:
                np.testing.assert_allclose(
                    d.reshape(len(d), -1).norm(dim=1), w.reshape(len(w), -1).norm(dim=1), rtol=1e-5
                )


def test_biasbn_ignore_zeroes_every_one_dimensional_tensor() -> None:
    params = params_of(cnn_bn())
    (direction,) = random_basis(params, axes=1, seed=0).directions
    one_d = [n for n, w in params.items() if w.dim() <= 1]
    assert one_d and all(not direction[n].any() for n in one_d)
    assert all(direction[n].any() for n, w in params.items() if w.dim() > 1)


def test_without_ignore_one_dimensional_tensors_are_normalized_as_one_filter() -> None:
    params = params_of(cnn_bn())
    (direction,) = random_basis(params, axes=1, seed=0, ignore="none").directions
    for name, w in params.items():
        if w.dim() <= 1:
            assert direction[name].norm().item() == pytest.approx(w.norm().item(), rel=1e-5)


def test_same_seed_same_directions_and_other_seed_other_directions() -> None:
    params = params_of(mlp())
    a = random_basis(params, 2, seed=11).directions
    b = random_basis(params, 2, seed=11).directions
    c = random_basis(params, 2, seed=12).directions
    for name in params:
        assert torch.equal(a[0][name], b[0][name]) and torch.equal(a[1][name], b[1][name])
    weight = next(n for n, w in params.items() if w.dim() > 1)
    assert not torch.equal(a[0][weight], c[0][weight])
    assert not torch.equal(a[0][weight], a[1][weight])  # x and y differ


def test_layer_and_weight_normalizations() -> None:
    w = torch.randn(4, 3)
    d = torch.randn(4, 3)
    assert normalize_direction(d, w, "layer").norm().item() == pytest.approx(w.norm().item(), rel=1e-5)
    assert torch.allclose(normalize_direction(d, w, "weight"), d * w)
    assert torch.equal(normalize_direction(d, w, "none"), d)


def test_unknown_norm_is_a_clear_error() -> None:
    with pytest.raises(LandscapeError, match="--norm"):
        random_direction({"w": torch.ones(2, 2)}, torch.Generator(), norm="filtr")


def test_pca_recovers_the_plane_a_trajectory_lies_in() -> None:
    """Offsets w_i - w_final in a known plane: PCA spans it and the projections keep all distances."""
    torch.manual_seed(0)
    final = params_of(mlp(d=3, width=5))
    sizes = {k: v.numel() for k, v in final.items() if v.dim() > 1}
    total = sum(sizes.values())
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((total, 2)))
    u, v = q[:, 0], q[:, 1]
    coeffs = np.array([[3.0, 1.0], [2.0, 0.4], [1.2, -0.3], [0.5, 0.1], [0.0, 0.0]])
    trajectory = []
    for a, b in coeffs:
        flat, state, offset = a * u + b * v, {}, 0
        for k, w in final.items():
            if w.dim() > 1:
                state[k] = w + torch.from_numpy(flat[offset:offset + w.numel()]).reshape(w.shape).float()
                offset += w.numel()
            else:
                state[k] = w + 5.0  # biases move too, but biasbn ignores them
        trajectory.append(state)
    basis = pca_basis(final, trajectory, [f"e{i}" for i in range(len(coeffs))])
    assert basis.kind == "pca" and sum(basis.explained_variance_ratio) == pytest.approx(1.0, abs=1e-6)
    projected = np.stack([basis.trajectory["x"], basis.trajectory["y"]], axis=1)

    def distances(points):
        return np.linalg.norm(points[:, None] - points[None], axis=-1)

    np.testing.assert_allclose(distances(projected), distances(coeffs), atol=1e-4)
    np.testing.assert_allclose(projected[-1], [0.0, 0.0], atol=1e-5)  # the final weights are the origin
    dx, dy = basis.directions
    flat_x = torch.cat([dx[k].reshape(-1) for k in final]).double()
    flat_y = torch.cat([dy[k].reshape(-1) for k in final]).double()
    assert flat_x.norm().item() == pytest.approx(1.0, abs=1e-5) and abs(flat_x @ flat_y) < 1e-5


def test_pca_needs_three_checkpoints() -> None:
    final = params_of(mlp())
    with pytest.raises(LandscapeError, match="at least 3"):
        pca_basis(final, [final, final], ["a", "b"])
