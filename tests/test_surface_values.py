"""Surface values against ground truth: closed forms and direct evaluation of the weights."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.io.checkpoints import load_checkpoint
from engine.io.data import load_data
from engine.numerics.evaluate import PointEvaluator
from engine.io.models import build_model
from engine.numerics.problem import Problem
from engine.io.store import read_directions, read_surface
from engine.jobs.surface import SurfaceJob, SurfaceRequest
from tests.conftest import MODELS, plain_torch_mse


def run_job(**kwargs) -> SurfaceJob:
    job = SurfaceJob(SurfaceRequest(**kwargs))
    for _ in job.run():
        pass
    return job


def test_linear_mse_surface_equals_closed_form_quadratic(tmp_path: Path) -> None:
    """For y = w.x + b with MSE, L(a, b) = mean((r + a X dx + b X dy)^2) exactly."""
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 1).double()
    torch.save(model.state_dict(), tmp_path / "lin.pt")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    Y = X @ rng.standard_normal((5, 1)) + 0.3
    np.savez(tmp_path / "d.npz", x=X, y=Y)
    out = tmp_path / "s.h5"
    run_job(checkpoint=str(tmp_path / "lin.pt"), model=f"{MODELS}:linear", model_kwargs={"d": 5},
            data=str(tmp_path / "d.npz"), x="-2:1:13", y="-1:1.5:9", out=str(out))

    surface = read_surface(out)
    dx, dy = read_directions(out)
    w = model.weight.detach().numpy().reshape(-1)
    b = model.bias.item()
    ax, ay = X @ dx["weight"].double().numpy().reshape(-1), X @ dy["weight"].double().numpy().reshape(-1)
    residual = X @ w + b - Y[:, 0]
    expected = np.array([[np.mean((residual + a * ax + c * ay) ** 2) for a in surface.x] for c in surface.y])
    assert surface.values["train_loss"].shape == (9, 13)
    np.testing.assert_allclose(surface.values["train_loss"], expected, rtol=1e-10, atol=1e-12)
    assert surface.done.all()
    # Biases are not moved under the default --ignore biasbn.
    assert not dx["bias"].any() and not dy["bias"].any()


def test_one_dimensional_slice_has_shape_nx_and_matches_closed_form(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = torch.nn.Linear(2, 1).double()
    torch.save(model.state_dict(), tmp_path / "lin.pt")
    X = np.random.default_rng(3).standard_normal((10, 2))
    Y = X[:, :1] * 2.0
    np.savez(tmp_path / "d.npz", x=X, y=Y)
    out = tmp_path / "line.h5"
    run_job(checkpoint=str(tmp_path / "lin.pt"), model=f"{MODELS}:linear", model_kwargs={"d": 2},
            data=str(tmp_path / "d.npz"), x="-1:1:7", out=str(out))
    surface = read_surface(out)
    (dx,) = read_directions(out)
    residual = X @ model.weight.detach().numpy().reshape(-1) + model.bias.item() - Y[:, 0]
    along = X @ dx["weight"].double().numpy().reshape(-1)
    expected = [np.mean((residual + a * along) ** 2) for a in surface.x]
    assert surface.y is None and surface.values["train_loss"].shape == (7,)
    np.testing.assert_allclose(surface.values["train_loss"], expected, rtol=1e-10)


def test_single_point_axis_is_its_minimum(tmp_path: Path, regression_case) -> None:
    """``MIN:MAX:1`` is the one value MIN (not MAX, not the middle), and the values are computed there."""
    origin = tmp_path / "o.h5"
    run_job(**regression_case, x="0:3:1", y="0:2:1", out=str(origin))
    surface = read_surface(origin)
    assert surface.x.tolist() == [0.0] and surface.y.tolist() == [0.0] and surface.done.all()
    # The grid's one point is the checkpoint itself: its own loss, with its weights loaded as saved.
    assert surface.values["train_loss"][0, 0] == pytest.approx(plain_torch_mse(regression_case), rel=1e-5)

    out = tmp_path / "p.h5"
    run_job(**regression_case, x="0.5:2:1", y="-1:1:3", out=str(out))
    surface = read_surface(out)
    assert surface.x.tolist() == [0.5] and surface.values["train_loss"].shape == (3, 1)
    directions = read_directions(out)
    for j, b in enumerate(surface.y):
        truth = plain_torch_mse(regression_case, directions, (0.5, b))
        assert surface.values["train_loss"][j, 0] == pytest.approx(truth, rel=1e-5)


def _direct_metrics(model, state, directions, a, b, data, loss):
    """Loss at theta0 + a dx + b dy, by loading those weights into a fresh copy of the model."""
    twin = copy.deepcopy(model)
    moved = {k: v.clone() for k, v in state.items()}
    for name in directions[0]:
        moved[name] = moved[name] + a * directions[0][name].to(moved[name].dtype) + b * directions[1][name].to(moved[name].dtype)
    twin.load_state_dict(moved)
    problem = Problem(twin, data, loss, "cpu")
    return problem.metrics()


@pytest.mark.parametrize("strategy", ["inplace", "vmap"])
@pytest.mark.parametrize("case", ["regression_case", "classification_case"])
def test_each_strategy_matches_loading_the_weights_directly(tmp_path, request, case, strategy) -> None:
    """Both evaluation strategies give the loss (and acc) of the model with those weights loaded."""
    spec = request.getfixturevalue(case)
    out = tmp_path / f"{strategy}.h5"
    job = run_job(**spec, x="-1:1:4", y="-0.5:0.5:3", out=str(out), strategy=strategy)
    assert job.evaluator.strategy == strategy
    surface = read_surface(out)
    directions = read_directions(out)
    checkpoint = load_checkpoint(spec["checkpoint"])
    model, _, _ = build_model(checkpoint, spec["model"])
    data = load_data(spec["data"])
    for j, b in enumerate(surface.y):
        for i, a in enumerate(surface.x):
            truth = _direct_metrics(model, model.state_dict(), directions, a, b, data, "auto")
            assert surface.values["train_loss"][j, i] == pytest.approx(truth.loss, rel=1e-5, abs=1e-7)
            if truth.acc is not None:
                assert surface.values["train_acc"][j, i] == pytest.approx(truth.acc)


def test_classification_surface_stores_accuracy_in_percent(tmp_path, classification_case) -> None:
    out = tmp_path / "c.h5"
    run_job(**classification_case, x="-1:1:3", y="-1:1:3", out=str(out))
    acc = read_surface(out).values["train_acc"]
    assert acc.shape == (3, 3) and np.all((acc >= 0) & (acc <= 100))
    # 48 samples: every accuracy is a multiple of 100/48.
    np.testing.assert_allclose(acc * 48 / 100, np.round(acc * 48 / 100), atol=1e-9)


def test_regression_surface_has_no_accuracy(tmp_path, regression_case) -> None:
    out = tmp_path / "r.h5"
    run_job(**regression_case, x="-1:1:3", out=str(out))
    assert set(read_surface(out).values) == {"train_loss"}


def test_nonfinite_losses_are_stored_and_reported_not_fatal(tmp_path: Path) -> None:
    import tests.reference_models as zoo

    model = zoo.log_model(2)
    torch.save(model.state_dict(), tmp_path / "log.pt")
    np.savez(tmp_path / "d.npz", x=np.abs(np.random.default_rng(0).standard_normal((20, 2))).astype(np.float32) + 0.1,
             y=np.zeros((20, 1), np.float32))
    out = tmp_path / "nan.h5"
    job = run_job(checkpoint=str(tmp_path / "log.pt"), model=f"{MODELS}:log_model", data=str(tmp_path / "d.npz"),
                  x="-3:1:9", out=str(out), norm="layer")
    surface = read_surface(out)
    assert surface.done.all()
    assert np.isnan(surface.values["train_loss"]).any() and np.isfinite(surface.values["train_loss"]).any()
    assert job.summary().nonfinite == int(np.isnan(surface.values["train_loss"]).sum())


def test_interpolation_ends_are_the_two_checkpoints_including_batchnorm_statistics(tmp_path, classification_case) -> None:
    """x=0 gives the first checkpoint's loss and x=1 the second's, running statistics included."""
    import tests.reference_models as zoo

    torch.manual_seed(7)
    other = zoo.cnn_bn()
    other.train()
    with torch.no_grad():
        other(torch.randn(64, 1, 6, 6) * 3 - 1)
    second = tmp_path / "second.pt"
    torch.save(other.state_dict(), second)
    out = tmp_path / "line.h5"
    run_job(**classification_case, x="0:1:5", out=str(out), directions="interpolate", to=str(second))
    loss = read_surface(out).values["train_loss"]
    data = load_data(classification_case["data"])
    first_model, _, _ = build_model(load_checkpoint(classification_case["checkpoint"]), classification_case["model"])
    assert loss[0] == pytest.approx(Problem(first_model, data).metrics().loss, rel=1e-5)
    assert loss[-1] == pytest.approx(Problem(other, data).metrics().loss, rel=1e-5)
    (direction,) = read_directions(out)
    assert any("running_mean" in name for name in direction)


def test_evaluator_restore_puts_the_origin_weights_back(regression_case) -> None:
    checkpoint = load_checkpoint(regression_case["checkpoint"])
    model, _, _ = build_model(checkpoint, regression_case["model"])
    problem = Problem(model, load_data(regression_case["data"]), "auto", "cpu")
    before = problem.metrics().loss
    params = dict(problem.model.named_parameters())
    direction = {k: torch.randn_like(v) for k, v in params.items()}
    evaluator = PointEvaluator(problem, problem.model.state_dict(), [direction])
    evaluator(np.array([[0.0], [1.0], [2.0]]))
    evaluator.restore()
    assert problem.metrics().loss == pytest.approx(before, rel=1e-7)


def test_channels_last_evaluation_matches_nchw_and_falls_back_for_view_models(classification_case) -> None:
    import tests.reference_models as zoo

    data = load_data(classification_case["data"])
    model, _, _ = build_model(load_checkpoint(classification_case["checkpoint"]), classification_case["model"])
    fast = Problem(model, data, device="cpu")
    assert fast.channels_last
    reference = model.eval()(data.x.float())
    expected = torch.nn.functional.cross_entropy(reference, data.y.long()).item()
    assert fast.metrics().loss == pytest.approx(expected, rel=1e-5)
    viewing = Problem(zoo.view_cnn(), data, device="cpu")
    assert not viewing.channels_last and np.isfinite(viewing.metrics().loss)
