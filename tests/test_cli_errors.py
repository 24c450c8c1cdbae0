"""Every error a user can cause ends in ONE stderr line 'landscape: error: ...' and a non-zero exit.

Most cases run in-process through ``engine.cli.main(argv)``; a few run the real
``python -m engine`` in subprocesses (started together, since each pays torch's
import time).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from engine.io.checkpoints import file_sha256
from engine.cli import main
from tests import zoo
from tests.conftest import damaged_landscape_files

ROOT = Path(__file__).resolve().parents[1]


def assert_one_error_line(code: int, out: str, err: str) -> str:
    assert code != 0, (out, err)
    assert out == "", out
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one stderr line, got: {err!r}"
    assert err.startswith("landscape: error: "), err
    assert "Traceback" not in err
    return err.strip()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """A checkpoint, regression and classification data, and broken inputs, on disk."""
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    torch.save(zoo.tiny_mlp(d=4, width=8, out=1).state_dict(), d / "mlp.pt")
    torch.save(zoo.linear(d=5).state_dict(), d / "linear5.pt")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 4)).astype(np.float32)
    np.savez(d / "reg.npz", x=x, y=np.sin(x.sum(axis=1, keepdims=True)).astype(np.float32))
    np.savez(d / "cls.npz", x=x, y=rng.integers(0, 3, size=24))
    np.savez(d / "no_y.npz", x=x)
    (d / "corrupt.pt").write_bytes(rng.bytes(1000))
    good = (d / "mlp.pt").read_bytes()
    (d / "truncated.pt").write_bytes(good[: len(good) // 2])
    torch.save({"state_dict": torch.load(d / "mlp.pt"), "payload": _Payload(str(d / "PWNED"))}, d / "evil.pt")
    (d / "raises.py").write_text("raise ValueError('boom at import')\n")
    (d / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (d / "multiline.py").write_text(
        "def net():\n    raise RuntimeError('first line\\nsecond line')\n"
        "def data():\n    raise ValueError('bad data\\n  more detail')\n"
    )
    (d / "folder.npz").mkdir()
    (d / "corrupt.h5").write_bytes(b"this is not HDF5 " * 64)
    with h5py.File(d / "other.h5", "w") as handle:
        handle["weights"] = np.zeros(3)
    return {name: str(d / name) for name in (
        "mlp.pt", "reg.npz", "cls.npz", "no_y.npz", "corrupt.pt", "truncated.pt", "evil.pt", "raises.py",
        "corrupt.h5", "other.h5", "PWNED", "linear5.pt", "exits.py", "multiline.py", "folder.npz",
    )} | {"dir": str(d)}


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def surface(f: dict[str, str], *extra: str, checkpoint: str | None = None, out: str | None = None) -> list[str]:
    argv = ["surface", checkpoint or f["mlp.pt"]]
    if "--model" not in extra and "--no-model" not in extra:
        argv += ["--model", "tests.zoo:tiny_mlp"]
    argv += [a for a in extra if a != "--no-model"]
    if "--data" not in extra:
        argv += ["--data", f["reg.npz"]]
    if not any(a.startswith("--x") for a in extra):
        argv += ["--x=-1:1:3"]
    argv += ["--out", out or str(Path(f["dir"]) / "never_written.h5")]
    return argv


# name -> (argv builder, a phrase the message must contain)
ERROR_CASES = {
    "missing checkpoint": (lambda f: surface(f, checkpoint=f["dir"] + "/nope.pt"), "no such checkpoint"),
    "corrupt checkpoint": (lambda f: surface(f, checkpoint=f["corrupt.pt"]), "not a readable"),
    "truncated checkpoint": (lambda f: surface(f, checkpoint=f["truncated.pt"]), "not a readable"),
    "checkpoint is a folder": (lambda f: surface(f, checkpoint=f["dir"]), "folder"),
    "pickle payload checkpoint": (lambda f: surface(f, checkpoint=f["evil.pt"]), "--trust-pickle"),
    "weights only without --model": (lambda f: surface(f, "--no-model"), "--model"),
    "--model without colon": (lambda f: surface(f, "--model", "tests.zoo.tiny_mlp"), "module.path:callable"),
    "--model missing module": (lambda f: surface(f, "--model", "no_such_module_xyz:net"), "no_such_module_xyz"),
    "--model missing attribute": (lambda f: surface(f, "--model", "tests.zoo:no_such_factory"), "no_such_factory"),
    "--model file raises on import": (lambda f: surface(f, "--model", f["raises.py"] + ":net"), "boom at import"),
    "--model file calls sys.exit on import": (lambda f: surface(f, "--model", f["exits.py"] + ":net"), "SystemExit"),
    "--model factory raises multi-line error": (
        lambda f: surface(f, "--model", f["multiline.py"] + ":net"), "first line second line"),
    "--data callable raises multi-line error": (
        lambda f: surface(f, "--data", f["multiline.py"] + ":data"), "bad data more detail"),
    "--data is a folder": (lambda f: surface(f, "--data", f["folder.npz"]), "is a folder"),
    "--model file missing": (lambda f: surface(f, "--model", f["dir"] + "/gone.py:net"), "gone.py"),
    "--model returns no module": (lambda f: surface(f, "--model", "os:getcwd"), "not a torch.nn.Module"),
    "--model-kwargs bad JSON": (lambda f: surface(f, "--model-kwargs", "{width: 3"), "--model-kwargs"),
    "--model-kwargs not an object": (lambda f: surface(f, "--model-kwargs", "[3]"), "JSON object"),
    "--model-kwargs unknown argument": (lambda f: surface(f, "--model-kwargs", '{"depth": 3}'), "depth"),
    "mismatched model": (lambda f: surface(f, "--model-kwargs", '{"width": 5}'), "mis-shaped"),
    "missing data file": (lambda f: surface(f, "--data", f["dir"] + "/gone.npz"), "no such data file"),
    "data without y": (lambda f: surface(f, "--data", f["no_y.npz"]), "no array y"),
    "model cannot take data": (lambda f: surface(f, "--model", "tests.zoo:linear", "--model-kwargs", '{"d": 5}',
                                                 checkpoint=f["linear5.pt"]), "cannot take this data"),
    "--x max below min": (lambda f: surface(f, "--x", "1:0:5"), "MAX must be greater than MIN"),
    "--x not numbers": (lambda f: surface(f, "--x", "a:b:c"), "numbers"),
    "--x two fields": (lambda f: surface(f, "--x", "0:1"), "MIN:MAX:N"),
    "--x zero points": (lambda f: surface(f, "--x", "0:1:0"), "at least 1"),
    "pca without --trajectory": (lambda f: surface(f, "--directions", "pca", "--y=-1:1:3"), "--trajectory"),
    "interpolate without --to": (lambda f: surface(f, "--directions", "interpolate"), "--to"),
    "interpolate with missing --to": (
        lambda f: surface(f, "--directions", "interpolate", "--to", f["dir"] + "/gone.pt"), "gone.pt"),
    "unknown --directions": (lambda f: surface(f, "--directions", "sideways"), "sideways"),
    "unknown --norm": (lambda f: surface(f, "--norm", "sideways"), "--norm"),
    "unknown --loss": (lambda f: surface(f, "--loss", "hinge"), "hinge"),
    "cross_entropy on float targets": (lambda f: surface(f, "--loss", "cross_entropy"), "--loss mse"),
    "unknown metric": (lambda f: surface(f, "--metrics", "loss,f1"), "f1"),
    "labels beyond model outputs": (lambda f: surface(f, "--data", f["cls.npz"]), "labels go up to"),
    "bad --max-samples": (lambda f: surface(f, "--max-samples", "0"), "--max-samples"),
    "non-integer --seed": (lambda f: surface(f, "--seed", "one"), "--seed"),
    "corrupt .h5 as --out": (lambda f: surface(f, out=f["corrupt.h5"]), "--overwrite"),
    "non-surface .h5 as --out": (lambda f: surface(f, out=f["other.h5"]), "not a Landscape surface file"),
    "info on missing file": (lambda f: ["info", f["dir"] + "/gone.h5"], "no such file"),
    "info on non-surface h5": (lambda f: ["info", f["other.h5"]], "not a surface file"),
    "info on corrupt h5": (lambda f: ["info", f["corrupt.h5"]], "not a readable HDF5 file"),
    "unknown subcommand": (lambda f: ["paint", f["mlp.pt"]], "paint"),
    "unknown flag": (lambda f: surface(f, "--colour", "blue"), "--colour"),
    "missing required flag": (lambda f: ["surface", f["mlp.pt"], "--x=-1:1:3", "--out", "x.h5"], "--data"),
    "unknown device": (lambda f: surface(f, "--device", "tpu7"), "tpu7"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_error_exits_nonzero_with_one_stderr_line_and_no_traceback(files, capsys, case):
    build, phrase = ERROR_CASES[case]
    code = main(build(files))
    out, err = capsys.readouterr()
    message = assert_one_error_line(code, out, err)
    assert phrase in message, message
    assert not Path(files["dir"], "never_written.h5").exists()


def test_pickle_payload_is_not_run_by_the_cli(files, capsys):
    main(surface(files, checkpoint=files["evil.pt"]))
    capsys.readouterr()
    assert not Path(files["PWNED"]).exists()


def test_cuda_device_on_cpu_only_machine_is_one_line_error(files, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for device in ("cuda", "cuda:0"):
        code = main(surface(files, "--device", device))
        message = assert_one_error_line(code, *capsys.readouterr())
        assert "--device cpu" in message


def test_existing_out_with_other_settings_is_refused_unchanged_and_names_overwrite(tmp_path, files, capsys):
    out = str(tmp_path / "s.h5")
    assert main(surface(files, "--seed", "0", out=out)) == 0
    capsys.readouterr()
    before = file_sha256(out)
    code = main(surface(files, "--seed", "1", out=out))
    message = assert_one_error_line(code, *capsys.readouterr())
    assert "--overwrite" in message and "seed" in message
    assert file_sha256(out) == before
    assert main(surface(files, "--seed", "1", "--overwrite", out=out)) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}")
    with h5py.File(out, "r") as handle:
        assert str(handle.attrs["seed"]) == "1"


def test_corrupt_out_file_is_replaced_with_overwrite(tmp_path, files, capsys):
    out = tmp_path / "broken.h5"
    out.write_bytes(Path(files["corrupt.h5"]).read_bytes())
    assert main(surface(files, out=str(out))) != 0
    capsys.readouterr()
    assert main(surface(files, "--overwrite", out=str(out))) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}")


def test_success_prints_wrote_and_negative_x_with_space_equals_x_with_equals(tmp_path, files, capsys):
    spaced, joined = str(tmp_path / "spaced.h5"), str(tmp_path / "joined.h5")
    assert main(surface(files, "--x", "-1:1:5", out=spaced)) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"wrote {spaced}:") and out.count("\n") == 1
    assert "error" not in err
    assert main(surface(files, "--x=-1:1:5", "--y", "-0.5:0.5:3", out=joined)) == 0
    assert capsys.readouterr().out.startswith(f"wrote {joined}:")
    with h5py.File(spaced, "r") as a, h5py.File(joined, "r") as b:
        assert np.allclose(a["xcoordinates"][()], np.linspace(-1, 1, 5))
        assert np.array_equal(a["xcoordinates"][()], b["xcoordinates"][()])
        assert np.allclose(b["ycoordinates"][()], [-0.5, 0, 0.5])
        assert np.all(a["done"][()] == 1)
        # The y = 0 row of the plane is the 1D line (same seed, same x direction).
        assert np.allclose(a["train_loss"][()], b["train_loss"][()][1], rtol=1e-5)


# -- the real command, in subprocesses ------------------------------------------------------------


# Each process pays ~2 s of torch import, so only a few representative paths run here
# (an engine error, the pickle refusal, an argparse error, CUDA on CPU, success);
# every path above already runs through the same main() in-process.
SUBPROCESS_CASES = {
    "pickle payload": lambda f: surface(f, checkpoint=f["evil.pt"]),
    "unknown subcommand": lambda f: ["paint"],
    "cuda on cpu": lambda f: surface(f, "--device", "cuda"),
    "success with spaced negative --x": lambda f: surface(f, "--x", "-1:1:5", out=f["dir"] + "/sub.h5"),
}


@pytest.fixture(scope="module")
def subprocess_results(files) -> dict[str, subprocess.CompletedProcess]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONWARNINGS", None)
    started = {
        name: subprocess.Popen([sys.executable, "-m", "engine", *build(files)], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, build in SUBPROCESS_CASES.items()
    }
    results = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return results


@pytest.mark.parametrize(
    "case,phrase",
    [("pickle payload", "--trust-pickle"), ("unknown subcommand", "paint")],
)
def test_real_command_error_is_one_stderr_line_and_nonzero_exit(subprocess_results, files, case, phrase):
    result = subprocess_results[case]
    message = assert_one_error_line(result.returncode, result.stdout, result.stderr)
    assert phrase in message
    assert not Path(files["PWNED"]).exists()


def test_real_command_cuda_on_cpu_only_machine_is_one_line_error(subprocess_results):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = subprocess_results["cuda on cpu"]
    assert "--device cpu" in assert_one_error_line(result.returncode, result.stdout, result.stderr)


def test_real_command_success_prints_wrote_with_spaced_negative_x(subprocess_results, files):
    result = subprocess_results["success with spaced negative --x"]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {files['dir']}/sub.h5:")
    assert "Traceback" not in result.stderr
    with h5py.File(files["dir"] + "/sub.h5", "r") as handle:
        assert np.allclose(handle["xcoordinates"][()], np.linspace(-1, 1, 5))
        assert np.all(handle["done"][()] == 1)


# -- landscape info -------------------------------------------------------------------------------
def test_info_on_a_damaged_file_says_damaged_in_one_line(tmp_path, capsys) -> None:
    for what, path in damaged_landscape_files(tmp_path).items():
        code = main(["info", str(path)])
        captured = capsys.readouterr()
        message = assert_one_error_line(code, captured.out, captured.err)
        assert message.endswith(f"{path} is damaged: {what}"), message


def test_info_on_a_text_file_suggests_no_flag_it_does_not_have(tmp_path, capsys) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    code = main(["info", str(notes)])
    captured = capsys.readouterr()
    message = assert_one_error_line(code, captured.out, captured.err)
    assert "not a readable HDF5 file" in message and "--overwrite" not in message


def test_resuming_onto_a_damaged_file_is_one_line_naming_overwrite(files, tmp_path, capsys) -> None:
    for path in damaged_landscape_files(tmp_path).values():
        code = main(surface(files, out=str(path)))
        captured = capsys.readouterr()
        message = assert_one_error_line(code, captured.out, captured.err)
        assert "--overwrite" in message


def test_info_into_a_closed_pipe_ends_quietly(files, tmp_path) -> None:
    out = str(tmp_path / "s.h5")
    assert main(surface(files, "--x=-1:1:5", out=out)) == 0
    # `landscape info F | head -c 10`: the reader goes away before info has written everything.
    pipeline = subprocess.run(f"{sys.executable} -m engine info {out} | head -c 10", shell=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                              timeout=120)
    assert len(pipeline.stdout) == 10
    assert "Error" not in pipeline.stderr and "Traceback" not in pipeline.stderr, pipeline.stderr
