"""Curves, barriers and the path plane against closed forms (no model, no files)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import LandscapeError
from engine.numerics.barriers import barrier_numbers, path_barriers
from engine.numerics.curves import (
    CurveShape, curve_length, curve_point, gram, plane_basis, plane_coordinates, straight_bends, t_grid,
)
from engine.numerics.path_plane import path_plane


def _points(count: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [{"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g)} for _ in range(count)]


def _flat(point: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([point[n].reshape(-1).double() for n in sorted(point)])


def test_bezier_ends_are_the_checkpoints_and_its_middle_is_the_quarter_half_quarter_mix_exactly():
    a, theta, b = _points(3)
    shape = CurveShape("bezier", 1)
    for name in a:
        assert torch.equal(curve_point(shape, [a, theta, b], 0.0)[name], a[name])
        assert torch.equal(curve_point(shape, [a, theta, b], 1.0)[name], b[name])
        assert torch.equal(curve_point(shape, [a, theta, b], 0.5)[name], 0.25 * a[name] + 0.5 * theta[name] + 0.25 * b[name])


@pytest.mark.parametrize("bends", [1, 2, 3, 5])
def test_polychain_passes_through_every_bend_exactly_at_its_knot(bends):
    controls = _points(bends + 2, seed=bends)
    shape = CurveShape("polychain", bends)
    for i, point in enumerate(controls):
        at = curve_point(shape, controls, i / (bends + 1))
        assert all(torch.equal(at[n], point[n]) for n in point), f"knot {i}"


def test_higher_order_bezier_matches_de_casteljau():
    controls = _points(4, seed=7)  # cubic: 2 bends
    t = 0.3

    def lerp(p, q):
        return {n: (1 - t) * p[n].double() + t * q[n].double() for n in p}

    level = [{n: v.double() for n, v in c.items()} for c in controls]
    while len(level) > 1:
        level = [lerp(level[i], level[i + 1]) for i in range(len(level) - 1)]
    ours = curve_point(CurveShape("bezier", 2), [{n: v.double() for n, v in c.items()} for c in controls], t)
    assert all(torch.allclose(ours[n], level[0][n], rtol=0, atol=1e-12) for n in ours)


def test_bends_start_evenly_on_the_straight_line():
    a, b = _points(2)
    bends = straight_bends(a, b, CurveShape("polychain", 3))
    for i, bend in enumerate(bends, start=1):
        assert torch.allclose(_flat(bend), _flat(a) + i / 4 * (_flat(b) - _flat(a)), atol=1e-6)


def test_lengths_are_the_straight_distance_the_sum_of_segments_and_a_dense_polyline_of_the_bezier():
    a, theta, b = _points(3, seed=3)
    straight = float((_flat(b) - _flat(a)).norm())
    assert curve_length(CurveShape("linear", 0), gram([a, b])) == pytest.approx(straight, rel=1e-12)
    segments = float((_flat(theta) - _flat(a)).norm() + (_flat(b) - _flat(theta)).norm())
    assert curve_length(CurveShape("polychain", 1), gram([a, theta, b])) == pytest.approx(segments, rel=1e-12)
    ts = np.linspace(0, 1, 20001)
    pts = torch.stack([_flat(curve_point(CurveShape("bezier", 1), [a, theta, b], float(t))) for t in ts])
    dense = float((pts[1:] - pts[:-1]).norm(dim=1).sum())
    assert curve_length(CurveShape("bezier", 1), gram([a, theta, b])) == pytest.approx(dense, rel=1e-6)


def test_t_grid_holds_both_endpoints_exactly_and_extends_with_the_same_spacing():
    t = t_grid(61, -0.2, 1.2)
    assert 0.0 in t and 1.0 in t
    assert np.allclose(np.diff(t), 1 / 60)
    assert t[0] == pytest.approx(-0.2) and t[-1] == pytest.approx(1.2)
    assert len(t_grid(61)) == 61
    with pytest.raises(LandscapeError, match="must contain 0..1"):
        t_grid(61, 0.2, 1.0)


def test_the_plane_basis_is_orthonormal_and_projects_the_endpoints_and_the_bend_where_they_are():
    a, theta, b = _points(3, seed=5)
    plane = path_plane(CurveShape("bezier", 1), a, [theta], b)
    u, v = (_flat({n: d[n] for n in d}) for d in plane.basis.directions)
    assert float(u @ u) == pytest.approx(1, abs=1e-6) and float(v @ v) == pytest.approx(1, abs=1e-6)
    assert abs(float(u @ v)) < 1e-6
    assert plane.points["A"] == (0.0, 0.0)
    distance = float((_flat(b) - _flat(a)).norm())
    assert plane.points["B"][0] == pytest.approx(distance, rel=1e-9) and abs(plane.points["B"][1]) < 1e-9
    bend = _flat(theta) - _flat(a)
    assert plane.points["bend"] == pytest.approx((float(bend @ u), float(bend @ v)), rel=1e-5)
    assert plane.points["bend"][1] > 0
    # a one-bend curve lies in its plane: the projection is the point itself
    g = gram([a, theta, b])
    basis = plane_basis(g, 1)
    mid = CurveShape("bezier", 1).coefficients(0.37)
    x, y = plane_coordinates(g, basis, mid)[0]
    point = _flat(curve_point(CurveShape("bezier", 1), [a, theta, b], 0.37)) - _flat(a)
    assert float((point - x * u - y * v).norm()) < 1e-5 * float(point.norm())


def test_a_straight_path_has_no_plane():
    a, b = _points(2)
    with pytest.raises(LandscapeError, match="no bend"):
        path_plane(CurveShape("linear", 0), a, [], b)


def test_barriers_of_a_parabola_over_a_sloped_chord_have_their_closed_forms():
    t = t_grid(101)
    la, lb = 1.0, 3.0
    values = (1 - t) * la + t * lb + 4 * t * (1 - t)  # 1 above the chord at t = 1/2
    numbers = barrier_numbers(t, values)
    assert numbers["interpolated"] == pytest.approx(1.0) and numbers["interpolated_t"] == pytest.approx(0.5)
    # over the endpoints' mean (2): max_t of 1 + 2t + 4t(1-t) - 2, at t = 3/4, is 1.25
    assert numbers["midpoint"] == pytest.approx(1.25) and numbers["midpoint_t"] == pytest.approx(0.75)
    assert numbers["mean"] == pytest.approx(2 + 4 / 6, rel=1e-3)
    assert numbers["nonfinite"] == 0


def test_barriers_ignore_points_past_the_endpoints_and_mask_nonfinite_values():
    t = t_grid(11, -0.5, 1.5)
    values = np.where((t < 0) | (t > 1), 100.0, 1.0)
    values[np.isclose(t, 0.5)] = np.nan
    values[np.isclose(t, 0.3)] = 2.0
    numbers = barrier_numbers(t, values)
    assert numbers["interpolated"] == pytest.approx(1.0) and numbers["interpolated_t"] == pytest.approx(0.3)
    assert numbers["nonfinite"] == 1


def test_error_barriers_come_from_accuracy():
    t = t_grid(3)
    result = path_barriers(t, {"train_loss": np.array([0.1, 1.0, 0.1]), "train_acc": np.array([100.0, 60.0, 90.0])})
    assert result["train_error"]["interpolated"] == pytest.approx(40 - 5)
    assert result["train_error"]["midpoint"] == pytest.approx(40 - 5)


def test_the_garipov_schedule_is_theirs_with_epochs_counted_from_one():
    from engine.numerics.curve_training import TrainingSettings

    def theirs(base_lr: float, epoch: int, total: int) -> float:  # dnn-mode-connectivity/train.py, epoch = 1..total
        alpha = epoch / total
        factor = 1.0 if alpha <= 0.5 else (1.0 - (alpha - 0.5) / 0.4 * 0.99 if alpha <= 0.9 else 0.01)
        return factor * base_lr

    for total in (1, 7, 20):
        settings = TrainingSettings(epochs=total, lr=0.05)
        assert [settings.learning_rate(e) for e in range(total)] == pytest.approx(
            [theirs(0.05, e + 1, total) for e in range(total)])
    assert TrainingSettings(epochs=4, lr=1.0, schedule="cosine").learning_rate(0) == 1.0
