"""A whole model pickled with ``torch.save(model)`` from the user's own ``models.py``.

Such a file names its classes by module (``models.ResNetish``), as the script that saved it
imported them. Trusted, it loads from any working directory: the folder of the model file the
user names and the checkpoint's own folder are importable during that load only. Untrusted,
it is refused and nothing in it runs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.errors import LandscapeError
from engine.io.checkpoints import load_checkpoint, pickle_import_folders
from engine.io.models import build_model
from engine.io.store import read_surface

# The user's model file. Importing it leaves a marker, so a test can tell whether loading ran it;
# WIDTH lets two projects define different networks under the same module name.
MODELS_SOURCE = '''
import pathlib

import torch
from torch import nn

pathlib.Path(__file__).with_name("IMPORTED").touch()
WIDTH = {width}


class Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(out)))


class ResNetish(nn.Module):
    def __init__(self, channels=WIDTH, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU())
        self.blocks = nn.Sequential(Block(channels), Block(channels))
        self.head = nn.Linear(channels, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x.view(-1, 1, 8, 8)))
        return self.head(x.mean(dim=(2, 3)))


def build():
    return ResNetish()
'''

# Run in the project's source folder, as a user's training script would: ``import models``.
SAVE_SCRIPT = """
import sys

import torch

import models

torch.manual_seed(0)
model = models.build()
model.train()
for _ in range(3):  # running statistics that differ from a fresh BatchNorm's
    model(torch.randn(16, 64))
model.eval()
x = torch.randn(24, 64)
with torch.no_grad():
    logits = model(x)
torch.save(model, sys.argv[1])
torch.save({"x": x, "logits": logits}, sys.argv[2])
"""


def make_project(root: Path, width: int = 4, beside_checkpoint: bool = False) -> dict[str, Path]:
    """``root/src/models.py`` and ``root/runs/whole.pt`` (a pickled ResNetish); the import marker removed."""
    src, runs = root / "src", root / "runs"
    src.mkdir(parents=True)
    runs.mkdir()
    (src / "models.py").write_text(MODELS_SOURCE.format(width=width))
    subprocess.run([sys.executable, "-c", SAVE_SCRIPT, str(runs / "whole.pt"), str(runs / "expected.pt")],
                   cwd=src, check=True, capture_output=True)
    if beside_checkpoint:
        shutil.move(src / "models.py", runs / "models.py")
    for marker in root.rglob("IMPORTED"):
        marker.unlink()
    folder = runs if beside_checkpoint else src
    return {"checkpoint": runs / "whole.pt", "expected": runs / "expected.pt", "models": folder / "models.py",
            "marker": folder / "IMPORTED"}


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """A project whose models.py is NOT next to the checkpoint; the test runs from an unrelated folder."""
    files = make_project(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return files


def imports_untouched(path_before: list[str]) -> bool:
    return sys.path == path_before and "models" not in sys.modules


def test_an_untrusted_whole_model_is_refused_and_nothing_in_it_runs(project):
    path_before = list(sys.path)
    with pytest.raises(LandscapeError, match="--trust-pickle") as refused:
        load_checkpoint(project["checkpoint"], import_from=pickle_import_folders(f"{project['models']}:build"))
    assert "models.ResNetish" in str(refused.value)
    assert not project["marker"].exists()
    assert imports_untouched(path_before)


def test_trusted_pickle_imports_its_classes_from_the_folder_of_the_named_model_file(project):
    path_before = list(sys.path)
    with pytest.raises(LandscapeError, match=r"No module named 'models'.*--model path/to/models\.py"):
        load_checkpoint(project["checkpoint"], trust_pickle=True)  # models.py is not beside the checkpoint
    assert imports_untouched(path_before)

    folders = pickle_import_folders(f"{project['models']}:build")
    assert folders == (project["models"].parent,)
    checkpoint = load_checkpoint(project["checkpoint"], trust_pickle=True, import_from=folders)
    assert project["marker"].exists() and type(checkpoint.module).__name__ == "ResNetish"
    assert imports_untouched(path_before)  # importable during the load only

    expected = torch.load(project["expected"])
    for model_ref in (None, f"{project['models']}:build"):  # the pickled module itself, or rebuilt from the file
        model, _ref, _kwargs = build_model(checkpoint, model_ref)
        with torch.no_grad():
            torch.testing.assert_close(model.eval()(expected["x"]), expected["logits"], rtol=0, atol=0)


def test_models_py_beside_the_checkpoint_needs_no_model_reference(tmp_path, monkeypatch):
    files = make_project(tmp_path / "project", beside_checkpoint=True)
    monkeypatch.chdir(tmp_path)
    checkpoint = load_checkpoint(files["checkpoint"], trust_pickle=True)
    assert type(checkpoint.module).__name__ == "ResNetish" and "models" not in sys.modules


def test_two_projects_with_a_models_py_each_get_their_own_classes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    narrow, wide = make_project(tmp_path / "narrow", width=3), make_project(tmp_path / "wide", width=6)
    for files, width in ((narrow, 3), (wide, 6), (narrow, 3)):
        checkpoint = load_checkpoint(files["checkpoint"], trust_pickle=True,
                                     import_from=pickle_import_folders(f"{files['models']}:build"))
        assert checkpoint.state_dict["head.weight"].shape == (10, width)
        assert type(checkpoint.module).__module__ == "models"


def test_module_references_add_no_folder():
    assert pickle_import_folders(None) == ()
    assert pickle_import_folders("my_project.models:Net") == ()


def test_cli_surface_of_a_pickled_model_named_by_a_relative_models_py(project, monkeypatch, capsys):
    expected = torch.load(project["expected"])
    labels = np.arange(24) % 10
    data = project["checkpoint"].parent / "data.npz"
    np.savez(data, x=expected["x"].numpy(), y=labels)
    out = project["checkpoint"].parent / "line.h5"
    argv = ["surface", str(project["checkpoint"]), "--data", str(data), "--x=-1:1:3", "--out", str(out)]

    assert main(argv + ["--model", "models.py:build"]) != 0  # untrusted: refused before anything runs
    assert "--trust-pickle" in capsys.readouterr().err and not project["marker"].exists()

    monkeypatch.chdir(project["models"].parent)  # the user's source folder: models.py is a relative path
    assert main(argv + ["--model", "models.py:build", "--trust-pickle"]) == 0, capsys.readouterr().err
    loss = read_surface(out).values["train_loss"]
    truth = torch.nn.functional.cross_entropy(expected["logits"], torch.from_numpy(labels)).item()
    assert loss[1] == pytest.approx(truth, rel=1e-5)
    assert "models" not in sys.modules
