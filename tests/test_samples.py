"""The sample recipes: fast, deterministic runs whose outputs the engine can load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from engine.io.checkpoints import load_checkpoint
from engine.errors import LandscapeError
from engine.io.references import resolve
from engine.builtin import datasets
from engine.builtin.models import mlp, small_cnn
from samples.registry import RECIPES, get, train
from samples.training import evaluate, snapshot_epochs

SINE_OPTIONS = {"width": 16, "epochs": 30, "snapshots": 6}
DIGITS_OPTIONS = {"epochs": 2, "snapshots": 3}


@pytest.fixture(scope="module")
def sine_run(tmp_path_factory):
    return train("mlp-sine", tmp_path_factory.mktemp("sine"), seed=0, **SINE_OPTIONS)


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory):
    return train("mlp-sine-pair", tmp_path_factory.mktemp("pair"), seed=3, **SINE_OPTIONS)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    return train("digits-cnn", tmp_path_factory.mktemp("digits"), seed=0, **DIGITS_OPTIONS)


def rebuild(path: Path) -> tuple[nn.Module, dict]:
    """What the engine does with a self-describing checkpoint; load_state_dict is strict."""
    ckpt = load_checkpoint(path)
    assert ckpt.kind == "landscape"
    model = resolve(ckpt.model_factory)(**ckpt.model_kwargs)
    model.load_state_dict(ckpt.state_dict, strict=True)
    return model, ckpt.metadata


def load_npz(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(path) as data:
        assert sorted(data.files) == ["x", "y"]
        return torch.from_numpy(data["x"]), torch.from_numpy(data["y"])


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).state_dict


# --- registry and options ---------------------------------------------------------


def test_registry_lists_the_three_recipes_with_descriptions_and_option_specs():
    assert set(RECIPES) == {"mlp-sine", "mlp-sine-pair", "digits-cnn"}
    for name, recipe in RECIPES.items():
        assert recipe.name == name
        assert recipe.description and "\n" not in recipe.description
        assert recipe.script.is_file()
        for option in recipe.options:
            assert option.flag.startswith("--") and option.help
            assert option.check(name, option.default) == option.default
    assert {o.name for o in RECIPES["mlp-sine"].options} >= {"width", "epochs", "lr", "n_train"}


def test_unknown_recipe_raises_one_line_error_listing_valid_names(tmp_path):
    with pytest.raises(LandscapeError, match="mlp-sine, mlp-sine-pair, digits-cnn") as info:
        train("resnet-imagenet", tmp_path)
    assert "\n" not in str(info.value)
    with pytest.raises(LandscapeError):
        get("nope")


def test_unknown_option_raises_one_line_error_listing_valid_options(tmp_path):
    with pytest.raises(LandscapeError, match="--width") as info:
        train("mlp-sine", tmp_path, widht=10)
    assert "widht" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize(
    "recipe, options",
    [
        ("mlp-sine", {"width": 0}),
        ("mlp-sine", {"width": 2.5}),
        ("mlp-sine", {"width": True}),
        ("mlp-sine", {"lr": 0.0}),
        ("mlp-sine", {"lr": "fast"}),
        ("mlp-sine", {"lr": float("nan")}),
        ("mlp-sine-pair", {"snapshots": 1}),
        ("digits-cnn", {"optimizer": "rmsprop"}),
        ("digits-cnn", {"epochs": -1}),
    ],
)
def test_bad_option_value_raises_landscape_error(tmp_path, recipe, options):
    with pytest.raises(LandscapeError) as info:
        train(recipe, tmp_path, **options)
    assert "\n" not in str(info.value)


def test_negative_seed_raises_landscape_error(tmp_path):
    with pytest.raises(LandscapeError, match="seed"):
        train("mlp-sine", tmp_path, seed=-1, epochs=1)


def test_cli_spelling_and_none_values_are_accepted(tmp_path):
    """The CLI passes every flag, None meaning "not given", in either spelling."""
    result = train("mlp-sine", tmp_path, **{"n-train": 20, "width": 4, "epochs": 2, "lr": None})
    assert load_checkpoint(result.checkpoint).metadata["options"]["lr"] == 1e-3
    assert load_npz(tmp_path / "train.npz")[0].shape == (20, 20)


def test_out_that_is_a_file_raises_landscape_error(tmp_path):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    with pytest.raises(LandscapeError, match="is a file"):
        train("mlp-sine", target, epochs=1)


# --- mlp-sine -------------------------------------------------------------------


def test_mlp_sine_checkpoints_rebuild_the_model_and_load_strictly(sine_run):
    paths = [sine_run.checkpoint, *sine_run.trajectory]
    for path in paths:
        model, meta = rebuild(path)
        assert isinstance(model, nn.Sequential)
        assert meta["recipe"] == "mlp-sine" and meta["seed"] == 0 and meta["width"] == 16
        assert meta["train_data"] == "sample:sine" and meta["test_data"] == "sample:sine-test"
        assert meta["n_params"] == sum(p.numel() for p in model.parameters())
        assert meta["loss"] == "mse" and meta["n_train"] == 100
        json.dumps(meta)  # JSON-like values only
    assert load_checkpoint(sine_run.checkpoint).model_kwargs == {"in_dim": 20, "width": 16, "depth": 2, "out_dim": 1}


def test_mlp_sine_trajectory_runs_evenly_from_initial_weights_to_final(sine_run):
    names = sorted(p.name for p in (sine_run.out / "trajectory").iterdir())
    assert names == [f"epoch_{e:04d}.pt" for e in (0, 6, 12, 18, 24, 30)]
    assert [p.name for p in sine_run.trajectory] == names
    epochs = [load_checkpoint(p).metadata["epoch"] for p in sine_run.trajectory]
    assert epochs == [0, 6, 12, 18, 24, 30]
    torch.manual_seed(0)
    initial = mlp(width=16).state_dict()
    for key, value in weights(sine_run.trajectory[0]).items():
        assert torch.equal(value, initial[key])
    for key, value in weights(sine_run.trajectory[-1]).items():
        assert torch.equal(value, weights(sine_run.checkpoint)[key])


def test_mlp_sine_npz_files_hold_exactly_the_data_used(sine_run):
    x, y = load_npz(sine_run.out / "train.npz")
    xt, yt = load_npz(sine_run.out / "test.npz")
    assert x.shape == (100, 20) and y.shape == (100, 1) and x.dtype == y.dtype == torch.float32
    assert xt.shape == (1000, 20) and yt.shape == (1000, 1)
    assert torch.equal(x, datasets.DATASETS["sine"]().x) and torch.equal(yt, datasets.DATASETS["sine-test"]().y)


def test_mlp_sine_training_decreases_the_loss(sine_run):
    history = json.loads((sine_run.out / "history.json").read_text())
    assert history["epoch"][0] == 0 and history["epoch"][-1] == 30
    assert len(history["train_loss"]) == len(history["test_loss"]) == len(history["epoch"])
    assert history["train_loss"][-1] < 0.9 * history["train_loss"][0]
    assert sine_run.metrics["train_loss"] == history["train_loss"][-1]


def test_metadata_loss_matches_the_loss_recomputed_from_npz(sine_run, digits_run):
    """The engine evaluating model.pt on train.npz must find the recorded train loss."""
    for run, task in ((sine_run, "regression"), (digits_run, "classification")):
        model, meta = rebuild(run.checkpoint)
        recomputed = evaluate(model, load_npz(run.out / "train.npz"), task)
        assert recomputed["loss"] == pytest.approx(meta["train_loss"], rel=1e-5)


def test_recipe_json_records_recipe_seed_and_options(sine_run):
    recipe = json.loads((sine_run.out / "recipe.json").read_text())
    assert recipe["recipe"] == "mlp-sine" and recipe["seed"] == 0 and recipe["cancelled"] is False
    assert recipe["options"]["width"] == 16 and recipe["model_factory"] == "engine.builtin.models:mlp"


def test_same_seed_gives_identical_weights_and_another_seed_does_not(tmp_path, sine_run):
    again = train("mlp-sine", tmp_path / "again", seed=0, **SINE_OPTIONS)
    other = train("mlp-sine", tmp_path / "other", seed=1, **SINE_OPTIONS)
    first, second, third = (weights(r.checkpoint) for r in (sine_run, again, other))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], third[k]) for k in first)


def test_minibatch_training_is_deterministic_too(tmp_path):
    runs = [train("mlp-sine", tmp_path / str(i), seed=5, width=8, epochs=3, batch_size=16) for i in range(2)]
    a, b = (weights(r.checkpoint) for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_leaves_the_global_torch_rng_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train("mlp-sine", tmp_path, width=4, epochs=2)
    assert torch.equal(torch.rand(3), expected)


def test_rerun_into_the_same_folder_replaces_the_old_trajectory(tmp_path):
    train("mlp-sine", tmp_path, width=4, epochs=10, snapshots=6)
    (tmp_path / "notes.txt").write_text("mine")
    result = train("mlp-sine", tmp_path, width=4, epochs=10, snapshots=3)
    assert sorted(p.name for p in (tmp_path / "trajectory").iterdir()) == [p.name for p in result.trajectory]
    assert len(result.trajectory) == 3 and (tmp_path / "notes.txt").read_text() == "mine"


def test_progress_reports_losses_and_returning_false_cancels(tmp_path):
    seen: list[tuple[int, int, float]] = []

    def progress(epoch: int, total: int, loss: float) -> bool:
        seen.append((epoch, total, loss))
        return epoch < 4

    result = train("mlp-sine", tmp_path, width=4, epochs=20, snapshots=3, progress=progress)
    assert [e for e, _, _ in seen] == [0, 1, 2, 3, 4] and all(t == 20 for _, t, _ in seen)
    assert result.cancelled
    meta = load_checkpoint(result.checkpoint).metadata
    assert meta["cancelled"] is True and meta["epoch"] == 4
    assert [load_checkpoint(p).metadata["epoch"] for p in result.trajectory] == [0, 4]
    assert json.loads((tmp_path / "recipe.json").read_text())["cancelled"] is True


# --- mlp-sine-pair ----------------------------------------------------------------


def test_pair_writes_a_and_b_with_different_weights_on_the_same_data(pair_run):
    out = pair_run.out
    assert pair_run.checkpoints == [out / "a" / "model.pt", out / "b" / "model.pt"]
    (_, meta_a), (_, meta_b) = rebuild(pair_run.checkpoints[0]), rebuild(pair_run.checkpoints[1])
    assert (meta_a["seed"], meta_b["seed"]) == (3, 4)
    assert (meta_a["member"], meta_b["member"]) == ("a", "b")
    wa, wb = weights(pair_run.checkpoints[0]), weights(pair_run.checkpoints[1])
    assert wa.keys() == wb.keys() and not any(torch.equal(wa[k], wb[k]) for k in wa)
    for name in ("train.npz", "test.npz"):
        xa, ya = load_npz(out / "a" / name)
        xb, yb = load_npz(out / "b" / name)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    for member in ("a", "b"):
        assert len(list((out / member / "trajectory").glob("epoch_*.pt"))) == 6
    assert json.loads((out / "recipe.json").read_text())["members"]["b"]["seed"] == 4


def test_pair_members_are_the_single_recipe_with_seeds_s_and_s_plus_1(pair_run, tmp_path):
    single = train("mlp-sine", tmp_path, seed=4, **SINE_OPTIONS)
    wb, ws = weights(pair_run.parts["b"].checkpoint), weights(single.checkpoint)
    assert all(torch.equal(wb[k], ws[k]) for k in wb)


# --- digits-cnn -------------------------------------------------------------------


def test_digits_cnn_reaches_80_percent_train_accuracy_in_a_short_run(digits_run):
    assert digits_run.metrics["train_acc"] > 80
    assert digits_run.metrics["test_acc"] > 80


def test_digits_cnn_checkpoints_load_strictly_with_batchnorm_buffers(digits_run):
    assert len(digits_run.trajectory) == 3
    for path in [digits_run.checkpoint, *digits_run.trajectory]:
        model, meta = rebuild(path)
        assert "1.running_mean" in load_checkpoint(path).state_dict
        assert meta["recipe"] == "digits-cnn" and meta["loss"] == "cross_entropy"
        assert {"train_acc", "test_acc", "train_loss", "test_loss"} <= meta.keys()
        assert meta["data_source"] == datasets.DATASETS["digits"]().source
    x, y = load_npz(digits_run.out / "train.npz")
    xt, yt = load_npz(digits_run.out / "test.npz")
    assert x.shape == (1437, 1, 8, 8) and y.shape == (1437,) and y.dtype == torch.int64
    assert xt.shape == (360, 1, 8, 8) and yt.shape == (360,)
    history = json.loads((digits_run.out / "history.json").read_text())
    assert history["train_loss"][-1] < history["train_loss"][0] and len(history["test_acc"]) == 3


def test_digits_cnn_without_sklearn_trains_on_generated_digits(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_have_sklearn", lambda: False)
    result = train("digits-cnn", tmp_path, epochs=1, channels=4, snapshots=2)
    assert load_checkpoint(result.checkpoint).metadata["data_source"] == datasets.SYNTHETIC_SOURCE
    assert load_npz(tmp_path / "train.npz")[0].shape == (1437, 1, 8, 8)


# --- data sets and models ---------------------------------------------------------


def test_builtin_datasets_are_deterministic_with_the_documented_shapes():
    shapes = {"sine": (100, 20), "sine-test": (1000, 20), "sine-2000": (2000, 20),
              "digits": (1437, 1, 8, 8), "digits-test": (360, 1, 8, 8)}
    assert set(shapes) <= set(datasets.DATASETS)
    for name, shape in shapes.items():
        x, y = datasets.DATASETS[name]()
        x2, y2 = datasets.load_dataset(f"sample:{name}")
        assert x.shape == shape and len(y) == shape[0]
        assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(datasets.DATASETS["sine"]().x, datasets.DATASETS["sine-test"]().x[:100])
    with pytest.raises(LandscapeError, match="sine-test"):
        datasets.load_dataset("mnist")


def test_digits_train_and_test_splits_are_disjoint_and_in_unit_range():
    for source in (datasets.SKLEARN_SOURCE, datasets.SYNTHETIC_SOURCE):
        train_set, test_set = datasets.digits("train", source=source), datasets.digits("test", source=source)
        assert train_set.source == source
        assert train_set.x.min() >= 0 and train_set.x.max() <= 1
        assert set(train_set.y.tolist()) == set(range(10))
        rows = {tuple(r.tolist()) for r in train_set.x.flatten(1)}
        assert sum(tuple(r.tolist()) in rows for r in test_set.x.flatten(1)) < 10  # sklearn has a few duplicates


def test_snapshot_epochs_are_evenly_spaced_and_include_first_and_last():
    assert snapshot_epochs(100, 11) == list(range(0, 101, 10))
    assert snapshot_epochs(3, 11) == [0, 1, 2, 3]
    assert snapshot_epochs(7, 3) == [0, 4, 7]
    assert len(snapshot_epochs(1000, 16)) == 16


def test_small_cnn_has_batchnorm_right_after_each_conv_for_folding():
    model = small_cnn()
    layers = list(model)
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d)]
    assert len(convs) == 2 and all(isinstance(layers[i + 1], nn.BatchNorm2d) for i in convs)
    assert model(torch.zeros(4, 1, 8, 8)).shape == (4, 10)
    assert mlp(width=7, depth=3)(torch.zeros(2, 20)).shape == (2, 1)
    with pytest.raises(LandscapeError):
        mlp(width=0)


# --- the recipe files as scripts --------------------------------------------------


@pytest.mark.parametrize("name, flags", [
    ("mlp-sine", ["--epochs", "3", "--width", "4", "--snapshots", "2"]),
    ("mlp-sine-pair", ["--epochs", "2", "--width", "4"]),
    ("digits-cnn", ["--epochs", "1", "--channels", "4"]),
])
def test_recipe_file_runs_as_a_script(tmp_path, name, flags):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the file must find its package itself
    done = subprocess.run([sys.executable, str(RECIPES[name].script), "--out", "out", "--seed", "1", *flags],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    models = sorted((tmp_path / "out").rglob("model.pt"))
    assert len(models) == (2 if name == "mlp-sine-pair" else 1)
    assert all(rebuild(path)[1]["seed"] in (1, 2) for path in models)


def test_recipe_script_reports_bad_options_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(RECIPES["mlp-sine"].script), "--out", "out", "--width", "0"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: mlp-sine option --width must be at least 1, got 0"]


# --- the contract with the engine -------------------------------------------------


def test_metadata_data_names_load_the_same_data_as_the_npz_files(sine_run, digits_run, tmp_path):
    from engine.io.data import load_data

    for run in (sine_run, digits_run):
        meta = load_checkpoint(run.checkpoint).metadata
        for split in ("train", "test"):
            named = load_data(meta[f"{split}_data"])
            stored = load_data(str(run.out / f"{split}.npz"))
            assert named.sha256 == stored.sha256
    odd = train("mlp-sine", tmp_path, width=4, epochs=1, n_train=37)
    assert "train_data" not in load_checkpoint(odd.checkpoint).metadata  # no built-in name: use train.npz


def test_landscape_train_command_runs_a_recipe(tmp_path, capsys):
    from landscape_cli import main

    assert main(["train", "mlp-sine", "--out", str(tmp_path), "--width", "4", "--epochs", "2"]) == 0
    assert (tmp_path / "model.pt").is_file() and str(tmp_path / "model.pt") in capsys.readouterr().out
