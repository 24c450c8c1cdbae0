"""The user's path: train a sample, compute its surfaces from the CLI, inspect the files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.io.checkpoints import load_checkpoint
from landscape_cli import main
from engine.io.store import read_directions, read_surface


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "sine"
    assert main(["train", "mlp-sine", "--out", str(out), "--epochs", "300", "--width", "16"]) == 0
    return out


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "pair"
    assert main(["train", "mlp-sine-pair", "--out", str(out), "--epochs", "200", "--width", "16"]) == 0
    return out


def test_surface_centre_is_the_training_loss_the_recipe_recorded(trained: Path, tmp_path: Path, capsys) -> None:
    """The engine and the trainer agree: loss at (0, 0) equals the checkpoint's train_loss metadata."""
    out = tmp_path / "s.h5"
    assert main(["surface", str(trained / "model.pt"), "--data", str(trained / "train.npz"),
                 "--x=-1:1:5", "--y=-1:1:5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "train_loss" in printed
    surface = read_surface(out)
    recorded = load_checkpoint(trained / "model.pt").metadata["train_loss"]
    assert surface.values["train_loss"][2, 2] == pytest.approx(recorded, rel=1e-4, abs=1e-7)
    # A trained model sits in a basin: the centre is the lowest point of the grid.
    assert surface.values["train_loss"][2, 2] == np.nanmin(surface.values["train_loss"])
    assert surface.attrs["model"] == "engine.builtin.models:mlp"


def test_built_in_sample_data_is_the_data_the_recipe_trained_on(trained: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    main(["surface", str(trained / "model.pt"), "--data", str(trained / "train.npz"), "--x=0:0:1", "--out", str(a)])
    main(["surface", str(trained / "model.pt"), "--data", "sample:sine", "--x=0:0:1", "--out", str(b)])
    assert read_surface(a).attrs["data_sha256"] == read_surface(b).attrs["data_sha256"]


def test_pca_surface_stores_the_projected_trajectory_ending_at_the_origin(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "pca.h5"
    assert main(["surface", str(trained / "model.pt"), "--directions", "pca", "--trajectory",
                 str(trained / "trajectory"), "--data", str(trained / "train.npz"),
                 "--x=-5:5:5", "--y=-5:5:5", "--out", str(out)]) == 0
    surface = read_surface(out)
    assert surface.attrs["directions"] == "pca"
    ratio = surface.attrs["explained_variance_ratio"]
    assert len(ratio) == 2 and ratio[0] >= ratio[1] > 0 and sum(ratio) <= 1 + 1e-9
    names = surface.trajectory_names
    assert len(names) == len(surface.trajectory["x"]) == 11 and names[0] < names[-1]
    # The last trajectory checkpoint is the final model: it projects onto the origin.
    assert abs(surface.trajectory["x"][-1]) < 1e-4 and abs(surface.trajectory["y"][-1]) < 1e-4


def test_interpolation_between_two_seeds_ends_at_both_recorded_losses(pair: Path, tmp_path: Path) -> None:
    out = tmp_path / "path.h5"
    assert main(["surface", str(pair / "a" / "model.pt"), "--directions", "interpolate", "--to",
                 str(pair / "b" / "model.pt"), "--data", str(pair / "a" / "train.npz"),
                 "--x=0:1:11", "--out", str(out)]) == 0
    loss = read_surface(out).values["train_loss"]
    assert loss[0] == pytest.approx(load_checkpoint(pair / "a" / "model.pt").metadata["train_loss"], rel=1e-4, abs=1e-7)
    assert loss[-1] == pytest.approx(load_checkpoint(pair / "b" / "model.pt").metadata["train_loss"], rel=1e-4, abs=1e-7)
    # Two independently trained nets: the straight line between them crosses a barrier.
    assert loss.max() > 3 * max(loss[0], loss[-1])


def test_directions_file_puts_a_second_checkpoint_in_the_same_plane(pair: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    data = str(pair / "a" / "train.npz")
    main(["surface", str(pair / "a" / "model.pt"), "--data", data, "--x=-1:1:3", "--y=-1:1:3", "--seed", "4",
          "--out", str(first)])
    assert main(["surface", str(pair / "b" / "model.pt"), "--data", data, "--directions", str(first),
                 "--x=-1:1:3", "--y=-1:1:3", "--out", str(second)]) == 0
    for d1, d2 in zip(read_directions(first), read_directions(second)):
        assert all(torch.equal(d1[k], d2[k]) for k in d1)
    assert read_surface(second).attrs["directions"] == "file"


def test_info_json_summarizes_shape_progress_ranges_and_provenance(trained: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "s.h5"
    main(["surface", str(trained / "model.pt"), "--data", "sample:sine", "--x=-1:1:4", "--y=-2:2:3", "--out", str(out)])
    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["shape"] == [3, 4] and summary["x"] == [-1.0, 1.0, 4] and summary["y"] == [-2.0, 2.0, 3]
    assert summary["done"] == summary["total"] == 12 and summary["format"] == "landscape"
    assert summary["provenance"]["norm"] == "filter" and summary["provenance"]["seed"] == 0
    assert main(["info", str(out)]) == 0
    assert "12/12" in capsys.readouterr().out


def test_digits_cnn_surface_has_accuracy_and_batchnorm_running_statistics(tmp_path: Path) -> None:
    run = tmp_path / "digits"
    assert main(["train", "digits-cnn", "--out", str(run), "--epochs", "2", "--channels", "4"]) == 0
    out = tmp_path / "d.h5"
    assert main(["surface", str(run / "model.pt"), "--data", "sample:digits", "--x=-0.5:0.5:3",
                 "--y=-0.5:0.5:3", "--max-samples", "300", "--out", str(out)]) == 0
    surface = read_surface(out)
    meta = load_checkpoint(run / "model.pt").metadata
    assert surface.values["train_acc"].shape == (3, 3) and surface.attrs["data_samples"] == 300
    assert surface.values["train_acc"][1, 1] > 50 and meta["train_acc"] > 50
