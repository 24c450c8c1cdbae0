"""Path jobs end to end: real checkpoints, real files, ground truth from closed forms and plain torch."""

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

import engine
from engine.errors import LandscapeError
from engine.io.store.paths import read_path
from engine.jobs.path import PathJob, PathRequest
from tests.conftest import MODELS, ROOT

LANDSCAPE = [sys.executable, "-m", "landscape_cli"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*LANDSCAPE, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def _run(request: PathRequest) -> PathJob:
    job = PathJob(request)
    for _ in job.run():
        pass
    return job


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, str]:
    """Two mlp-sine minima from seeds 0 and 1 (the mlp-sine-pair sample)."""
    from samples.registry import train

    out = tmp_path_factory.mktemp("pair")
    train("mlp-sine-pair", out, seed=0)
    return {"a": str(out / "a" / "model.pt"), "b": str(out / "b" / "model.pt"), "data": str(out / "a" / "train.npz"),
            "test": str(out / "a" / "test.npz")}


@pytest.fixture(scope="module")
def linear_case(tmp_path_factory) -> dict[str, str]:
    """Two float64 linear models and data: the MSE along the line between them is an exact quadratic in t."""
    import tests.reference_models as zoo

    out = tmp_path_factory.mktemp("linear")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3))
    np.savez(out / "d.npz", x=x, y=x @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * rng.standard_normal((64, 1)))
    for name, seed in (("a", 1), ("b", 2)):
        torch.manual_seed(seed)
        torch.save(zoo.linear().state_dict(), out / f"{name}.pt")
    return {"a": str(out / "a.pt"), "b": str(out / "b.pt"), "data": str(out / "d.npz"), "model": f"{MODELS}:linear"}


def _linear_truth(case: dict[str, str], t: np.ndarray) -> np.ndarray:
    data = np.load(case["data"])
    a, b = torch.load(case["a"]), torch.load(case["b"])
    wa, wb = a["weight"].numpy().ravel(), b["weight"].numpy().ravel()
    ba, bb = float(a["bias"]), float(b["bias"])
    losses = []
    for s in t:
        w, c = (1 - s) * wa + s * wb, (1 - s) * ba + s * bb
        losses.append(np.mean((data["x"] @ w + c - data["y"].ravel()) ** 2))
    return np.array(losses)


def test_a_linear_path_of_a_linear_model_is_its_exact_quadratic_and_its_barrier_the_closed_form(linear_case, tmp_path):
    out = tmp_path / "p.h5"
    _run(PathRequest(a=linear_case["a"], b=linear_case["b"], data=linear_case["data"], model=linear_case["model"],
                     points=21, t_range=(-0.5, 1.5), out=str(out)))
    result = read_path(out)
    truth = _linear_truth(linear_case, result.t)
    assert result.done.all() and 0.0 in result.t and 1.0 in result.t
    assert np.allclose(result.values["train_loss"], truth, rtol=1e-12, atol=1e-12)
    inside = (result.t >= 0) & (result.t <= 1)
    excess = truth[inside] - ((1 - result.t[inside]) * truth[result.t == 0] + result.t[inside] * truth[result.t == 1])
    assert result.barriers["linear"]["train_loss"]["interpolated"] == pytest.approx(excess.max(), rel=1e-9)


def test_the_endpoints_of_a_path_have_each_checkpoints_own_loss(pair, tmp_path):
    out = tmp_path / "p.h5"
    _run(PathRequest(a=pair["a"], b=pair["b"], data=pair["data"], points=5, out=str(out)))
    result = read_path(out)
    from engine.builtin.models import mlp

    data = np.load(pair["data"])
    for name, t in (("a", 0.0), ("b", 1.0)):
        saved = torch.load(pair[name])
        model = mlp(**saved["model_kwargs"])
        model.load_state_dict(saved["state_dict"])
        with torch.no_grad():
            own = torch.nn.functional.mse_loss(model(torch.from_numpy(data["x"])), torch.from_numpy(data["y"])).item()
        assert result.values["train_loss"][result.t == t][0] == pytest.approx(own, rel=1e-5, abs=1e-12)
        assert result.values["train_loss"][result.t == t][0] == pytest.approx(saved["metadata"]["train_loss"], rel=1e-9)


def test_cli_path_writes_the_promised_datasets_and_json(pair, tmp_path):
    out = tmp_path / "p.h5"
    done = _cli("path", pair["a"], pair["b"], "--data", pair["data"], "--test-data", pair["test"], "--curve", "bezier",
                "--epochs", "3", "--points", "11", "--t-range=-0.2:1.2", "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["kind"] == "path" and summary["complete"] and summary["main"] == "curve"
    assert set(summary["barriers"]) == {"linear", "curve"}
    for series in ("linear", "curve"):
        entry = summary["barriers"][series]
        assert {"train_loss", "test_loss", "length"} <= set(entry)
        assert {"interpolated", "interpolated_t", "midpoint", "midpoint_t", "mean", "max"} <= set(entry["train_loss"])
    with h5py.File(out) as f:
        for name in ("t", "train_loss", "test_loss", "done", "baselines/linear/train_loss", "baselines/linear/done",
                     "bends_epoch", "logs/training/rows"):
            assert name in f, name
        assert f["t"].shape == (15,)
        assert sorted(f["bends/a/1"]) == sorted(torch.load(pair["a"])["state_dict"])
        assert json.loads(f.attrs["barriers"])["curve"]["train_loss"]["max"] == pytest.approx(summary["barriers"]["curve"]["train_loss"]["max"])


def test_a_trained_bezier_curve_between_two_seeds_has_a_far_lower_maximum_than_the_straight_line(pair, tmp_path):
    result = engine.path(pair["a"], pair["b"], pair["data"], curve="bezier", epochs=40, optimizer="adam", lr=0.01,
                         batch_size=32, points=21, out=tmp_path / "p.h5", progress=False)
    straight = result.barriers["linear"]["train_loss"]["max"]
    curve = result.barriers["curve"]["train_loss"]["max"]
    assert straight > 0.1
    assert curve < 0.1 * straight, (curve, straight)
    assert result.training is not None and len(result.training.rows) == 40
    assert result.training.column("loss")[-5:].mean() < result.training.column("loss")[:5].mean()
    assert isinstance(engine.open(result.path), type(result))


def test_a_cancelled_training_resumes_to_the_same_bits_as_an_uninterrupted_run(pair, tmp_path):
    settings = dict(a=pair["a"], b=pair["b"], data=pair["data"], curve="polychain", bends=2, epochs=6, points=7,
                    batch_size=16, optimizer="adam", lr=0.01)
    whole = tmp_path / "whole.h5"
    _run(PathRequest(**settings, out=str(whole)))
    parts = tmp_path / "parts.h5"
    job = PathJob(PathRequest(**settings, out=str(parts)))
    for progress in job.run():
        if progress.phase == "training" and progress.epoch_loss is not None and progress.epoch == 3:
            job.cancel()
    assert read_path(parts).bends_epoch == 3 and not read_path(parts).done.any()
    resumed = PathJob(PathRequest(**settings, out=str(parts)))
    for _ in resumed.run():
        pass
    assert resumed.resumed_from == 7 + 3  # the straight line's points and three epochs
    a, b = read_path(whole), read_path(parts)
    assert all(torch.equal(x[n], y[n]) for x, y in zip(a.bends, b.bends) for n in x)
    assert np.array_equal(a.values["train_loss"], b.values["train_loss"])
    assert np.array_equal(a.training.rows[:, :3], b.training.rows[:, :3])


def test_a_path_killed_with_sigkill_while_training_resumes_from_its_last_saved_epoch(pair, tmp_path):
    out = tmp_path / "p.h5"
    args = ["path", pair["a"], pair["b"], "--data", pair["data"], "--curve", "bezier", "--epochs", "400",
            "--batch-size", "4", "--points", "5", "--device", "cpu", "--out", str(out)]
    process = subprocess.Popen([*LANDSCAPE, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            time.sleep(0.2)
            try:
                if out.exists() and read_path(out).bends_epoch >= 2:
                    break
            except LandscapeError:
                continue
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    saved = read_path(out).bends_epoch
    assert 2 <= saved < 400
    job = PathJob(PathRequest(a=pair["a"], b=pair["b"], data=pair["data"], curve="bezier", epochs=400, batch_size=4,
                              points=5, out=str(out)))
    job.prepare()
    assert job.resumed_from >= 5 + saved
    job.cancel()
    job.close()


@pytest.fixture(scope="module")
def bn_pair(tmp_path_factory) -> dict[str, str]:
    """Two BatchNorm CNNs (the digits-cnn sample, 2 epochs, seeds 1 and 2)."""
    from samples.registry import train

    out = tmp_path_factory.mktemp("bn")
    for seed in (1, 2):
        train("digits-cnn", out / str(seed), seed=seed, epochs=2)
    return {"a": str(out / "1" / "model.pt"), "b": str(out / "2" / "model.pt"), "data": "sample:digits"}


def test_batchnorm_statistics_re_estimated_at_t0_give_the_checkpoints_loss_when_its_statistics_are_the_datas(
        bn_pair, tmp_path):
    from engine.builtin.models import small_cnn
    from engine.io.checkpoints import load_checkpoint, save_checkpoint
    from engine.builtin.datasets import DATASETS

    checkpoint = load_checkpoint(bn_pair["a"])
    model = small_cnn(**checkpoint.model_kwargs)
    model.load_state_dict(checkpoint.state_dict)
    x, y = DATASETS["digits"]()
    for module in model.modules():  # plain torch: running statistics = the data's (cumulative average, one pass)
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(x.float())
    model.eval()
    with torch.no_grad():
        own = torch.nn.functional.cross_entropy(model(x.float()), y.long()).item()
    exact = tmp_path / "exact.pt"
    save_checkpoint(exact, model_factory=checkpoint.model_factory, model_kwargs=checkpoint.model_kwargs,
                    state_dict=model.state_dict())
    out = tmp_path / "p.h5"
    _run(PathRequest(a=str(exact), b=bn_pair["b"], data=bn_pair["data"], points=3, eval_batch_size=len(x),
                     out=str(out)))
    result = read_path(out)
    assert result.attrs["bn_recompute"] == "on"
    assert result.values["train_loss"][0] == pytest.approx(own, rel=1e-5)


def test_re_estimated_batchnorm_statistics_beat_interpolated_ones_in_the_middle_of_the_path(bn_pair, tmp_path):
    losses = {}
    for choice in ("on", "off"):
        out = tmp_path / f"{choice}.h5"
        _run(PathRequest(a=bn_pair["a"], b=bn_pair["b"], data=bn_pair["data"], points=3, bn_recompute=choice,
                         out=str(out)))
        result = read_path(out)
        assert result.attrs["bn_recompute"] == choice
        losses[choice] = result.values["train_loss"][1]
    assert losses["on"] < losses["off"]


def test_endpoints_of_different_architectures_are_refused_in_one_line(tmp_path, pair):
    from engine.builtin.models import mlp
    from engine.io.checkpoints import save_checkpoint

    other = tmp_path / "wide.pt"
    save_checkpoint(other, model_factory="engine.builtin.models:mlp", model_kwargs={"in_dim": 20, "width": 64},
                    state_dict=mlp(in_dim=20, width=64).state_dict())
    done = _cli("path", pair["a"], str(other), "--data", pair["data"], "--out", str(tmp_path / "p.h5"))
    assert done.returncode == 2 and "different architectures" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_plane_through_another_pairs_path_is_refused(pair, tmp_path, linear_case):
    path = tmp_path / "p.h5"
    _run(PathRequest(a=pair["a"], b=pair["b"], data=pair["data"], curve="bezier", epochs=1, points=3, out=str(path)))
    done = _cli("surface", pair["b"], "--data", pair["data"], "--directions", "plane", "--path", str(path),
                "--out", str(tmp_path / "s.h5"))
    assert done.returncode == 2 and "path from another checkpoint" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_resuming_a_path_file_with_other_endpoints_is_refused(pair, tmp_path):
    out = tmp_path / "p.h5"
    _run(PathRequest(a=pair["a"], b=pair["b"], data=pair["data"], points=3, out=str(out)))
    with pytest.raises(LandscapeError, match="different settings"):
        _run(PathRequest(a=pair["b"], b=pair["a"], data=pair["data"], points=3, out=str(out)))


def test_nan_losses_along_a_path_are_kept_and_masked_from_the_barrier(tmp_path):
    x = np.abs(np.random.default_rng(0).standard_normal((32, 2))).astype(np.float32) + 0.1
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros((32, 1), np.float32))
    # log(w.x) with x > 0: finite at A, w = (1, 1), and at B, w = (1, 0.2); past B, w = (1, 1 - 0.8 t)
    # turns negative enough that w.x < 0 for some samples, whose log (and the mean loss) is NaN
    torch.save({"w": torch.tensor([[1.0, 1.0]])}, tmp_path / "a.pt")
    torch.save({"w": torch.tensor([[1.0, 0.2]])}, tmp_path / "b.pt")
    done = _cli("path", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--data", str(tmp_path / "d.npz"),
                "--model", f"{MODELS}:log_model", "--points", "5", "--t-range=0:4", "--out", str(tmp_path / "p.h5"),
                "--json")
    assert done.returncode == 0, done.stderr
    result = read_path(tmp_path / "p.h5")
    assert np.isnan(result.values["train_loss"][result.t > 2]).any()
    summary = json.loads(done.stdout)
    assert summary["metrics"]["train_loss"]["nonfinite"] > 0
    assert summary["barriers"]["linear"]["train_loss"]["interpolated"] is not None


def test_bad_path_settings_are_one_line_errors(pair, tmp_path):
    cases = [
        (["--curve", "bezier", "--bends", "0"], "takes 1 to 16 bends"),
        (["--points", "1"], "--points must be at least 2"),
        (["--t-range=0.5:1"], "must contain 0..1"),
        (["--t-range", "abc"], "--t-range abc"),
        (["--curve", "bezier", "--epochs", "0"], "--epochs 0"),
        (["--bn-samples", "0"], "--bn-samples must be at least 1"),
    ]
    for extra, message in cases:
        done = _cli("path", pair["a"], pair["b"], "--data", pair["data"], "--out", str(tmp_path / "p.h5"), *extra)
        assert done.returncode == 2 and message in done.stderr, (extra, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1


def test_the_plane_surface_has_orthonormal_directions_an_overlay_and_the_losses_of_its_points(pair, tmp_path):
    path = tmp_path / "p.h5"
    _run(PathRequest(a=pair["a"], b=pair["b"], data=pair["data"], curve="bezier", epochs=2, points=5, out=str(path)))
    plane = tmp_path / "plane.h5"
    done = _cli("surface", pair["a"], "--data", pair["data"], "--directions", "plane", "--path", str(path),
                "--x=-1:11:7", "--y=-2:8:5", "--out", str(plane))
    assert done.returncode == 0, done.stderr
    surface = engine.open(plane)
    assert surface.attrs["directions"] == "plane" and surface.overlay is not None
    assert set(surface.overlay.points) == {"A", "B", "bend"} and set(surface.overlay.lines) == {"straight", "curve"}
    from engine.io.store import read_directions

    u, v = (torch.cat([d[n].reshape(-1).double() for n in sorted(d)]) for d in read_directions(plane))
    assert float(u @ u) == pytest.approx(1, abs=1e-5) and float(v @ v) == pytest.approx(1, abs=1e-5)
    assert abs(float(u @ v)) < 1e-5
    bx, by = surface.overlay.points["B"]
    line = tmp_path / "line.h5"
    done = _cli("surface", pair["a"], "--data", pair["data"], "--directions", str(plane), f"--line=0,0:{bx!r},{by!r}",
                "--x=0:1:2", "--out", str(line))
    assert done.returncode == 0, done.stderr
    losses = engine.open(line).values["train_loss"]
    path_values = read_path(path)
    assert losses[0] == pytest.approx(path_values.values["train_loss"][0], rel=1e-6)
    assert losses[1] == pytest.approx(path_values.values["train_loss"][-1], rel=1e-3, abs=1e-5)


def _permuted_copy(path: str, out: Path, seed: int = 3) -> None:
    """The mlp-sine model with both hidden layers' units shuffled by hand: the same function, other weights."""
    saved = torch.load(path)
    state = dict(saved["state_dict"])
    g = torch.Generator().manual_seed(seed)
    for layer, following in (("0", "2"), ("2", "4")):
        perm = torch.randperm(state[f"{layer}.weight"].shape[0], generator=g)
        state[f"{layer}.weight"], state[f"{layer}.bias"] = state[f"{layer}.weight"][perm], state[f"{layer}.bias"][perm]
        state[f"{following}.weight"] = state[f"{following}.weight"][:, perm]
    torch.save({**saved, "state_dict": state}, out)


def test_weight_matching_finds_a_permuted_copy_and_its_straight_line_has_no_barrier(pair, tmp_path):
    shuffled = tmp_path / "shuffled.pt"
    _permuted_copy(pair["a"], shuffled)
    out, aligned = tmp_path / "p.h5", tmp_path / "aligned.pt"
    done = _cli("path", pair["a"], str(shuffled), "--data", pair["data"], "--align", "weight-matching", "--points", "11",
                "--save-aligned", str(aligned), "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["main"] == "linear_aligned" and summary["alignment"]["max_output_difference"] < 1e-5
    before = summary["barriers"]["linear"]["train_loss"]["interpolated"]
    after = summary["barriers"]["linear_aligned"]["train_loss"]
    assert before > 0.01
    assert abs(after["interpolated"]) < 1e-9 and after["max"] < 1e-9  # the aligned copy is A itself
    restored = torch.load(aligned)["state_dict"]
    original = torch.load(pair["a"])["state_dict"]
    assert all(torch.equal(restored[k], original[k]) for k in original)


def test_weight_matching_refuses_a_residual_model_in_one_line(tmp_path):
    model_file = tmp_path / "residual.py"
    model_file.write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Residual(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.inp, self.block, self.out = nn.Linear(3, 8), nn.Linear(8, 8), nn.Linear(8, 1)\n\n"
        "    def forward(self, x):\n"
        "        h = torch.relu(self.inp(x))\n"
        "        return self.out(h + torch.relu(self.block(h)))\n\n"
        "def residual():\n    return Residual()\n")
    import importlib.util

    spec = importlib.util.spec_from_file_location("residual_for_test", model_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, seed in (("a", 0), ("b", 1)):
        torch.manual_seed(seed)
        torch.save(module.residual().state_dict(), tmp_path / f"{name}.pt")
    x = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=x[:, :1])
    done = _cli("path", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--data", str(tmp_path / "d.npz"),
                "--model", f"{model_file}:residual", "--align", "weight-matching", "--out", str(tmp_path / "p.h5"))
    assert done.returncode == 2 and "residual connection" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p.h5").exists()


def test_weight_matching_aligns_a_permuted_batchnorm_cnn_back_onto_the_original(bn_pair, tmp_path):
    saved = torch.load(bn_pair["a"])
    state = dict(saved["state_dict"])
    channels = state["0.weight"].shape[0]
    g = torch.Generator().manual_seed(5)
    first, second = torch.randperm(channels, generator=g), torch.randperm(channels, generator=g)
    state["0.weight"] = state["0.weight"][first]
    state["3.weight"] = state["3.weight"][:, first][second]
    for bn, perm in (("1", first), ("4", second)):
        for key in ("weight", "bias", "running_mean", "running_var"):
            state[f"{bn}.{key}"] = state[f"{bn}.{key}"][perm]
    classes = state["8.weight"].shape[0]
    state["8.weight"] = state["8.weight"].reshape(classes, channels, -1)[:, second].reshape(classes, -1)
    shuffled = tmp_path / "shuffled.pt"
    torch.save({**saved, "state_dict": state}, shuffled)
    out = tmp_path / "p.h5"
    _run(PathRequest(a=bn_pair["a"], b=str(shuffled), data=bn_pair["data"], align="weight-matching", points=5,
                     out=str(out)))
    result = read_path(out)
    assert result.main == "linear_aligned" and result.attrs["bn_recompute"] == "on"
    assert result.barriers["linear"]["train_loss"]["interpolated"] > 0.1
    aligned = result.series["linear_aligned"].values["train_loss"]
    assert np.ptp(aligned) < 1e-6 * aligned.max()  # every point is A again
    assert result.attrs["alignment_max_output_difference"] < 1e-4
