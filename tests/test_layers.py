"""The layers: the engine and the app's state need no Qt, the engine needs no samples, and names it
wrote into files keep resolving."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.io.checkpoints import save_checkpoint
from engine.io.store import read_surface
from tests.conftest import ROOT, run_cli_env, run_until

# Make `import samples` fail in the child, as on an installation without the samples.
WITHOUT_SAMPLES = "import sys; sys.modules['samples'] = None\n"


def run_without_samples(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_SAMPLES + code], cwd=tmp_path, env=run_cli_env(),
                          capture_output=True, text=True, timeout=300)


def test_state_and_engine_import_without_qt():
    code = ("import sys, landscape_gui.state, landscape_gui.first_run, engine.cli, engine.display.levels, engine.display.contours; "
            "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=run_cli_env(), capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"


def test_the_engine_imports_and_its_cli_runs_with_the_samples_unimportable(tmp_path: Path) -> None:
    code = ("import importlib, pkgutil, engine\n"
            "names = [m.name for m in pkgutil.walk_packages(engine.__path__, 'engine.') if m.name != 'engine.__main__']\n"
            "for name in names:\n    importlib.import_module(name)\n"
            "assert not any(m == 'samples' or m.startswith('samples.') for m in sys.modules if sys.modules[m])\n"
            "from landscape_cli import main\n"
            "sys.exit(main(['surface', '--help']))\n")
    result = run_without_samples(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--directions" in result.stdout and "--json" in result.stdout
    listing = run_without_samples("from landscape_cli import main\nsys.exit(main(['--help']))\n", tmp_path)
    assert listing.returncode == 0 and "surface" in listing.stdout and "train" not in listing.stdout.split("{")[-1]


def test_a_surface_of_built_in_data_and_model_computes_without_the_samples(tmp_path: Path) -> None:
    from engine.builtin.models import mlp

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "model.pt", model_factory="engine.builtin.models:mlp", model_kwargs={"width": 6},
                    state_dict=mlp(width=6).state_dict())
    code = ("from engine.cli import main\n"
            "sys.exit(main(['surface', 'model.pt', '--data', 'sample:sine-40', '--x=-1:1:3', '--device', 'cpu',"
            " '--out', 's.h5']))\n")
    result = run_without_samples(code, tmp_path)
    assert result.returncode == 0, result.stderr
    surface = read_surface(tmp_path / "s.h5")
    assert surface.done.all() and surface.attrs["data_samples"] == 40  # sine-N resolves in the engine


def test_a_checkpoint_naming_the_old_samples_models_factory_still_loads(tmp_path: Path) -> None:
    """Version 0.1's recipes wrote 'samples.models:mlp' into every checkpoint."""
    from engine.builtin.models import mlp
    from engine.io.checkpoints import load_checkpoint
    from engine.io.models import build_model

    torch.manual_seed(1)
    model = mlp(in_dim=3, width=5)
    path = save_checkpoint(tmp_path / "old.pt", model_factory="samples.models:mlp",
                           model_kwargs={"in_dim": 3, "width": 5}, state_dict=model.state_dict())
    built, reference, kwargs = build_model(load_checkpoint(path))
    assert reference == "engine.builtin.models:mlp" and kwargs == {"in_dim": 3, "width": 5}
    x = torch.randn(4, 3)
    assert torch.equal(built(x), model(x))
    code = ("from engine.io.checkpoints import load_checkpoint\nfrom engine.io.models import build_model\n"
            "print(build_model(load_checkpoint('old.pt'))[1])\n")
    result = run_without_samples(code, tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == "engine.builtin.models:mlp", result.stderr


def test_an_old_file_naming_samples_models_resumes(tmp_path: Path) -> None:
    """A partial surface written by 0.1 records model 'samples.models:mlp'; the same command resumes it."""
    import h5py

    from engine.builtin.models import mlp
    from engine.jobs.surface import SurfaceJob, SurfaceRequest

    torch.manual_seed(2)
    save_checkpoint(tmp_path / "m.pt", model_factory="engine.builtin.models:mlp", model_kwargs={"width": 4},
                    state_dict=mlp(width=4).state_dict())
    request = SurfaceRequest(checkpoint=str(tmp_path / "m.pt"), data="sample:sine", x="-1:1:7", out=str(tmp_path / "s.h5"),
                             flush_seconds=1e-6)
    run_until(request, 3)
    with h5py.File(tmp_path / "s.h5", "r+") as handle:  # as 0.1 wrote it
        handle.attrs["model"] = "samples.models:mlp"
        del handle.attrs["mode"]
    resumed = SurfaceJob(request)
    list(resumed.run())
    assert resumed.resumed_from >= 3 and read_surface(tmp_path / "s.h5").done.all()


def test_sample_names_resolve_in_one_place(tmp_path: Path) -> None:
    from engine.builtin.datasets import load_dataset
    from engine.io.data import load_data

    for name in ("sine", "sine-37", "digits-test"):
        x, y = load_dataset(name)
        data = load_data(f"sample:{name}")
        assert torch.equal(data.x, x) and torch.equal(data.y, y)
    with pytest.raises(Exception, match="unknown sample data set 'nope'"):
        load_data("sample:nope")
    assert np.isfinite(load_data("sample:sine-5").x.numpy()).all()
