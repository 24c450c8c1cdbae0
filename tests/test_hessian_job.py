"""Spectrum jobs end to end: real checkpoints, real files, real subprocesses; ground truth from closed forms
and dense Hessians of tiny float64 models."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch.func import functional_call, hessian

import engine
import tests.reference_models as zoo
from engine.errors import LandscapeError
from engine.io.store import read_directions
from engine.io.store.spectra import read_spectrum
from engine.jobs.hessian import HessianJob, HessianRequest
from engine.jobs.registry import resume_request
from tests.conftest import MODELS, ROOT, slow_case

LANDSCAPE = [sys.executable, "-m", "landscape_cli"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LANDSCAPE, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def _run(request: HessianRequest, cancel_after: int | None = None) -> HessianJob:
    job = HessianJob(request)
    for step in job.run():
        if cancel_after is not None and step.computed >= cancel_after:
            job.cancel()
    return job


@pytest.fixture(scope="module")
def linear(tmp_path_factory) -> dict[str, object]:
    """A float64 least-squares fit y = w.x + b: its MSE Hessian is (2/n)[X 1]^T[X 1] and its gradient is zero."""
    out = tmp_path_factory.mktemp("linear")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 4)) * np.array([0.3, 1.0, 2.0, 3.0])
    y = x @ np.array([[1.0], [-2.0], [0.5], [0.1]]) + 0.2 * rng.standard_normal((50, 1))
    a = np.c_[x, np.ones(50)]
    solution = np.linalg.lstsq(a, y, rcond=None)[0].ravel()
    model = zoo.linear(4)
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(solution[:4]).reshape(1, 4))
        model.bias.copy_(torch.from_numpy(solution[4:]))
    torch.save(model.state_dict(), out / "m.pt")
    np.savez(out / "d.npz", x=x, y=y)
    return {"checkpoint": str(out / "m.pt"), "data": str(out / "d.npz"), "model": f"{MODELS}:linear",
            "model_kwargs": '{"d": 4}', "hessian": 2.0 / 50 * a.T @ a}


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> dict[str, object]:
    """The tiny float64 tanh classifier at its seeded start (negative curvature), data, held-out data, dense Hessian."""
    out = tmp_path_factory.mktemp("network")
    torch.manual_seed(4)
    model = zoo.tiny_mlp()
    x, y = torch.randn(30, 3, dtype=torch.float64), torch.randint(0, 3, (30,))
    torch.save(model.state_dict(), out / "m.pt")
    np.savez(out / "d.npz", x=x.numpy(), y=y.numpy())
    np.savez(out / "t.npz", x=torch.randn(20, 3, dtype=torch.float64).numpy(), y=torch.randint(0, 3, (20,)).numpy())
    params = dict(model.named_parameters())

    def loss(p):
        return torch.nn.functional.cross_entropy(functional_call(model, p, (x,)), y)

    blocks = hessian(loss)({k: v.detach() for k, v in params.items()})
    names = list(params)
    dense = torch.cat([torch.cat([blocks[a][b].reshape(params[a].numel(), params[b].numel()) for b in names], 1)
                       for a in names]).numpy()
    return {"checkpoint": str(out / "m.pt"), "data": str(out / "d.npz"), "test": str(out / "t.npz"),
            "model": f"{MODELS}:tiny_mlp", "hessian": dense, "model_obj": model, "x": x, "y": y}


def test_cli_json_of_a_linear_model_gives_the_closed_form_spectrum_and_trace(linear, tmp_path):
    truth = np.linalg.eigvalsh(linear["hessian"])
    done = _cli("hessian", linear["checkpoint"], "--model", linear["model"], "--model-kwargs", linear["model_kwargs"],
                "--data", linear["data"], "--top-k", "2", "--bottom-k", "2", "--tol", "1e-10", "--trace",
                "--trace-sketch", "5", "--json", "--out", str(tmp_path / "s.h5"))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # exactly one JSON object on stdout
    np.testing.assert_allclose(result["top_eigenvalues"], truth[::-1][:2], rtol=1e-9)
    np.testing.assert_allclose(result["bottom_eigenvalues"], truth[:2], rtol=1e-8)
    assert result["trace"] == pytest.approx(np.trace(linear["hessian"]), rel=1e-9)  # the sketch spans all 5 dims
    for key in ("trace_stderr", "hvp_count", "seconds", "top_residuals", "n_params"):
        assert key in result
    assert result["hvp_count"] > 0 and result["complete"] is True
    stored = read_spectrum(tmp_path / "s.h5")
    np.testing.assert_array_equal(stored.top_eigenvalues, result["top_eigenvalues"])


def test_report_of_a_network_matches_its_dense_hessian_and_its_data(network, tmp_path):
    truth = np.linalg.eigvalsh(network["hessian"])
    spectrum = engine.hessian(network["checkpoint"], network["data"], model=f"{network['model']}", report=True,
                              test_data=network["test"], top_k=3, tol=1e-9, density_probes=12, density_steps=38,
                              trace_tol=0.01, trace_max_probes=200, out=tmp_path / "r.h5", progress=False)
    report = spectrum.report
    p = network["hessian"].shape[0]
    assert (report["n_params"], report["n_samples"]) == (p, 30)
    assert report["params_per_sample"] == pytest.approx(p / 30)
    assert report["top_eigenvalue"] == pytest.approx(truth[-1], rel=1e-8)
    assert report["bottom_eigenvalue"] == pytest.approx(truth[0], rel=1e-7) and truth[0] < 0
    np.testing.assert_allclose(spectrum.top_eigenvalues, truth[::-1][:3], rtol=1e-8)
    assert abs(report["trace"] - np.trace(network["hessian"])) <= 5 * report["trace_stderr"]
    model, x, y = network["model_obj"], network["x"], network["y"]
    with torch.no_grad():
        out = model(x)
        loss = float(torch.nn.functional.cross_entropy(out, y))
        acc = 100.0 * float((out.argmax(1) == y).double().mean())
    assert report["train_loss"] == pytest.approx(loss, rel=1e-12)
    assert report["train_acc"] == pytest.approx(acc)
    assert report["interpolates"] is (acc == 100.0)
    assert report["test_loss"] is not None
    neg_truth = float(np.mean(truth < -1e-5 * np.abs(truth).max()))
    assert abs(report["negative_mass"] - neg_truth) <= 4 * report["negative_mass_stderr"] + 1e-9
    positive = np.maximum(truth, 0)
    for alpha, value in report["n_eff"].items():
        exact = float(np.sum(positive / (positive + float(alpha))))
        assert abs(value - exact) <= 4 * report["n_eff_stderr"][alpha] + 1e-9
    grid, density = spectrum.density_at(0.05)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, rel=1e-3)
    assert isinstance(engine.open(tmp_path / "r.h5"), engine.Spectrum)


def test_eigenvectors_are_stored_by_parameter_name_and_are_eigenvectors(network, tmp_path):
    spectrum = engine.hessian(network["checkpoint"], network["data"], model=network["model"], top_k=2, bottom_k=1,
                              eigenvectors=True, tol=1e-10, out=tmp_path / "v.h5", progress=False)
    vectors = spectrum.eigenvectors()
    assert sorted(vectors) == ["bottom_1", "top_1", "top_2"]
    names = [n for n, _ in network["model_obj"].named_parameters()]
    assert sorted(vectors["top_1"]) == sorted(names)
    h = network["hessian"]
    for member, value in (("top_1", spectrum.top_eigenvalues[0]), ("bottom_1", spectrum.bottom_eigenvalues[0])):
        u = np.concatenate([vectors[member][n].numpy().ravel() for n in names])
        assert np.linalg.norm(u) == pytest.approx(1.0)
        np.testing.assert_allclose(h @ u, value * u, atol=1e-8)


def test_power_iteration_agrees_with_lanczos_and_needs_more_products(network, tmp_path):
    results = {}
    for method in ("lanczos", "power"):
        done = _cli("hessian", network["checkpoint"], "--model", network["model"], "--data", network["data"],
                    "--top-k", "2", "--method", method, "--tol", "1e-7", "--max-iter", "3000", "--json",
                    "--out", str(tmp_path / f"{method}.h5"))
        assert done.returncode == 0, done.stderr
        results[method] = json.loads(done.stdout)
    truth = np.linalg.eigvalsh(network["hessian"])
    by_magnitude = truth[np.argsort(-np.abs(truth))][:2]
    np.testing.assert_allclose(sorted(results["power"]["top_eigenvalues"]), sorted(by_magnitude), rtol=1e-5)
    np.testing.assert_allclose(results["lanczos"]["top_eigenvalues"], truth[::-1][:2], rtol=1e-7)
    assert results["lanczos"]["hvp_count"] < results["power"]["hvp_count"]


def test_hessian_at_a_surface_point_is_the_hessian_at_those_weights(network, tmp_path):
    engine.surface(network["checkpoint"], network["data"], "-1:1:5", "-1:1:5", model=network["model"],
                   out=tmp_path / "s.h5", progress=False)
    x, y = 0.5, -1.0
    spectrum = engine.hessian(network["checkpoint"], network["data"], model=network["model"], top_k=2, bottom_k=1,
                              tol=1e-10, at=str(tmp_path / "s.h5"), point=(x, y), out=tmp_path / "h.h5",
                              progress=False)
    assert spectrum.attrs["point"] == "0.5,-1.0"
    model = network["model_obj"]
    dx, dy = read_directions(tmp_path / "s.h5")
    moved = {n: p.detach() + x * dx[n].to(p.dtype) + y * dy[n].to(p.dtype) for n, p in model.named_parameters()}
    data_x, data_y = network["x"], network["y"]

    def loss(p):
        return torch.nn.functional.cross_entropy(functional_call(model, p, (data_x,)), data_y)

    blocks = hessian(loss)(moved)
    names = list(moved)
    dense = torch.cat([torch.cat([blocks[a][b].reshape(moved[a].numel(), moved[b].numel()) for b in names], 1)
                       for a in names]).numpy()
    truth = np.linalg.eigvalsh(dense)
    np.testing.assert_allclose(spectrum.top_eigenvalues, truth[::-1][:2], rtol=1e-8)
    np.testing.assert_allclose(spectrum.bottom_eigenvalues, truth[:1], rtol=1e-7)
    with pytest.raises(LandscapeError, match="outside the surface's x range"):
        engine.hessian(network["checkpoint"], network["data"], model=network["model"], at=str(tmp_path / "s.h5"),
                       point=(1.5, 0.0), out=tmp_path / "bad.h5", progress=False)
    with pytest.raises(LandscapeError, match="takes 2 coordinate"):
        engine.hessian(network["checkpoint"], network["data"], model=network["model"], at=str(tmp_path / "s.h5"),
                       point=(0.5,), out=tmp_path / "bad.h5", progress=False)


def test_a_surface_along_hessian_directions_of_a_least_squares_fit_is_its_exact_quadratic(linear, tmp_path):
    """At a minimum of a quadratic, loss(x, y) = L0 + (λ1 x² + λ2 y²)/2 along the top eigenvectors."""
    surface = engine.surface(linear["checkpoint"], linear["data"], "-1:1:5", "-2:2:5", model=linear["model"],
                             model_kwargs={"d": 4}, directions="hessian", out=tmp_path / "s.h5", progress=False)
    values = np.linalg.eigvalsh(linear["hessian"])[::-1][:2]
    np.testing.assert_allclose(surface.attrs["hessian_eigenvalues"], values, rtol=1e-8)
    dx, dy = (np.concatenate([d[k].numpy().ravel() for k in ("weight", "bias")]).astype(np.float64)
              for d in read_directions(tmp_path / "s.h5"))  # stored in float32, used as stored
    h = linear["hessian"]
    assert np.linalg.norm(dx) == pytest.approx(1.0, abs=1e-6) and abs(dx @ dy) < 1e-6
    assert dx @ h @ dx == pytest.approx(values[0], rel=1e-6) and dy @ h @ dy == pytest.approx(values[1], rel=1e-6)
    loss = surface.values["train_loss"]
    xx, yy = np.meshgrid(surface.x, surface.y)
    quadratic = 0.5 * (xx ** 2 * (dx @ h @ dx) + 2 * xx * yy * (dx @ h @ dy) + yy ** 2 * (dy @ h @ dy))
    np.testing.assert_allclose(loss, loss[2, 2] + quadratic, rtol=1e-9)
    resumed = resume_request(tmp_path / "s.h5")
    assert resumed.directions == "hessian"


def _request(case: dict, out: Path, **options) -> HessianRequest:
    return HessianRequest(checkpoint=case["checkpoint"], data=case["data"], model=case["model"],
                          model_kwargs=case.get("model_kwargs"), out=str(out), hvp_method="double_backward",
                          flush_seconds=1e-3, **options)


@pytest.mark.parametrize("cancel_after", [5, 45, 70])  # within the eigenpairs, the trace and the density
def test_a_cancelled_job_resumes_to_the_same_bits_as_an_uninterrupted_one(tmp_path, cancel_after):
    torch.manual_seed(0)
    torch.save(zoo.mlp(d=4, width=16).state_dict(), tmp_path / "m.pt")
    x = np.random.default_rng(0).standard_normal((200, 4)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.sin(x[:, :1]))
    case = {"checkpoint": str(tmp_path / "m.pt"), "data": str(tmp_path / "d.npz"), "model": f"{MODELS}:mlp"}
    options = dict(top_k=3, bottom_k=1, tol=1e-9, max_iter=40, trace=True, trace_sketch=3, trace_max_probes=20,
                   trace_tol=1e-9, density=True, density_probes=3, density_steps=8)
    whole = _run(_request(case, tmp_path / "whole.h5", **options))
    assert whole.summary().done == whole.summary().total
    part = tmp_path / "part.h5"
    first = _run(_request(case, part, **options), cancel_after=cancel_after)
    assert first.summary().cancelled
    second = _run(resume_request(part))
    assert second.summary().resumed_from > 0 and not second.summary().cancelled
    a, b = read_spectrum(tmp_path / "whole.h5"), read_spectrum(part)
    for name in ("top_eigenvalues", "bottom_eigenvalues", "ritz_values", "ritz_weights", "density"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.trace == b.trace and a.trace_stderr == b.trace_stderr


def test_a_killed_cli_run_resumes_from_its_last_saved_iteration(tmp_path):
    case = slow_case(tmp_path)
    out = tmp_path / "k.h5"
    args = ["hessian", case["checkpoint"], "--model", case["model"], "--model-kwargs",
            json.dumps(case["model_kwargs"]), "--data", case["data"], "--top-k", "3", "--tol", "1e-12",
            "--max-iter", "60", "--hvp-method", "double_backward", "--flush-seconds", "0.001", "--out"]
    process = subprocess.Popen([*LANDSCAPE, *args, str(out)], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    saved = 0
    deadline = time.monotonic() + 300
    while saved < 5 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        if out.exists():
            try:
                with h5py.File(out, "r", locking=False) as handle:
                    saved = int(handle["logs/lanczos/count"][0])
            except (OSError, KeyError):
                pass
    assert process.poll() is None, "the run ended before it could be killed; make the case slower"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    resumed = _cli(*args, str(out), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["resumed_from"] >= saved
    whole = _cli(*args, str(tmp_path / "w.h5"), "--json")
    np.testing.assert_array_equal(read_spectrum(out).top_eigenvalues, read_spectrum(tmp_path / "w.h5").top_eigenvalues)


def test_resuming_with_other_settings_is_refused_in_one_line(network, tmp_path):
    out = tmp_path / "s.h5"
    engine.hessian(network["checkpoint"], network["data"], model=network["model"], top_k=1, out=out, progress=False)
    with pytest.raises(LandscapeError, match="different settings .top_k"):
        engine.hessian(network["checkpoint"], network["data"], model=network["model"], top_k=2, out=out,
                       progress=False)


@pytest.mark.parametrize("args, message", [
    (["--top-k", "40"], "only 38 parameters"),
    (["--bottom-k", "-1"], "at least 0"),
    (["--trace", "--trace-tol", "0"], "must be positive"),
    (["--point", "0,0"], "--at SURFACE.h5 and --point"),
    (["--alpha", "0,1"], "positive numbers"),
    (["--density", "--density-steps", "1"], "at least 2"),
])
def test_bad_requests_give_one_line_errors(network, tmp_path, args, message):
    done = _cli("hessian", network["checkpoint"], "--model", network["model"], "--data", network["data"], *args,
                "--out", str(tmp_path / "e.h5"))
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_a_loss_that_is_not_finite_at_the_weights_gives_one_line_error(tmp_path):
    """log(w.x) is NaN where w.x < 0: clean data, but no finite Hessian there."""
    torch.save(zoo.log_model(2).state_dict(), tmp_path / "m.pt")
    x = np.array([[1.0, 2.0], [-3.0, 1.0], [0.5, 0.5]], dtype=np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.ones((3, 1), dtype=np.float32))
    done = _cli("hessian", str(tmp_path / "m.pt"), "--model", f"{MODELS}:log_model", "--data",
                str(tmp_path / "d.npz"), "--out", str(tmp_path / "n.h5"))
    assert done.returncode == 2, done.stderr
    assert "not finite" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_surface_of_another_checkpoint_is_refused(network, linear, tmp_path):
    engine.surface(linear["checkpoint"], linear["data"], "-1:1:3", "-1:1:3", model=linear["model"],
                   model_kwargs={"d": 4}, out=tmp_path / "s.h5", progress=False)
    done = _cli("hessian", network["checkpoint"], "--model", network["model"], "--data", network["data"],
                "--at", str(tmp_path / "s.h5"), "--point", "0,0", "--out", str(tmp_path / "h.h5"))
    assert done.returncode == 2 and "computed around another checkpoint" in done.stderr, done.stderr


def test_info_describes_a_spectrum_file(network, tmp_path):
    out = tmp_path / "s.h5"
    engine.hessian(network["checkpoint"], network["data"], model=network["model"], top_k=2, trace=True, out=out,
                   progress=False)
    done = _cli("info", str(out), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["kind"] == "spectrum" and len(summary["top_eigenvalues"]) == 2 and summary["trace"] is not None
    assert "top eigenvalues" in _cli("info", str(out)).stdout


def test_the_hessian_is_over_the_parameters_that_require_grad(network, tmp_path):
    """A model whose first layer is frozen (a fine-tuned head): the Hessian of the head's parameters only."""
    names = ["2.weight", "2.bias"]
    model, x, y = network["model_obj"], network["x"], network["y"]
    head = {n: p.detach() for n, p in model.named_parameters() if n in names}
    fixed = {n: p.detach() for n, p in model.named_parameters() if n not in names}

    def loss(p):
        return torch.nn.functional.cross_entropy(functional_call(model, {**fixed, **p}, (x,)), y)

    blocks = hessian(loss)(head)
    dense = torch.cat([torch.cat([blocks[a][b].reshape(head[a].numel(), head[b].numel()) for b in names], 1)
                       for a in names]).numpy()
    spectrum = engine.hessian(network["checkpoint"], network["data"], model=f"{MODELS}:tiny_mlp_frozen_first",
                              top_k=2, bottom_k=1, eigenvectors=True, tol=1e-10, out=tmp_path / "f.h5", progress=False)
    truth = np.linalg.eigvalsh(dense)
    np.testing.assert_allclose(spectrum.top_eigenvalues, truth[::-1][:2], rtol=1e-8)
    np.testing.assert_allclose(spectrum.bottom_eigenvalues, truth[:1], rtol=1e-7, atol=1e-12)
    assert sorted(spectrum.eigenvectors()["top_1"]) == sorted(names)
    assert spectrum.results["n_params"] == dense.shape[0] and spectrum.attrs["hessian_params"] == dense.shape[0]
    done = _cli("hessian", network["checkpoint"], "--model", f"{MODELS}:tiny_mlp_frozen_first",
                "--model-kwargs", '{"frozen": "all"}', "--data", network["data"], "--out", str(tmp_path / "a.h5"))
    assert done.returncode == 2 and "no parameter of the model requires grad" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
