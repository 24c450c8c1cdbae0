"""Sizes a checkpoint declares are checked before anything is allocated.

Hostile files are built here from real ones: a pickle that declares a 300 MB tensor
over a 0.3 MB record, a 300 MB record of zeros deflated to 0.3 MB (a zip bomb), the
same lie in a legacy (non-zip) file and in a TorchScript archive, and a self-describing
checkpoint whose kwargs ask for a 1.6 GB model. They are loaded one after another in a
fresh interpreter, which reports each error and how far its peak resident memory has
grown since before the first: a peak only rises, so every file's own growth is at most that.
"""

from __future__ import annotations

import io
import json
import pickletools
import random
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from engine.builtin.models import mlp
from engine.errors import LandscapeError
from engine.io.checkpoints import (
    LEGACY_PICKLES,
    MAX_EXPANSION,
    _check_inflation,
    load_checkpoint,
    save_checkpoint,
)
from engine.io.models import build_model
from tests import zoo
from tests.conftest import PEAK_MEMORY_SOURCE, PROC_STATUS, PROC_STATUS_REASON, ROOT, run_cli_env

SMALL = 75_000  # floats in the real tensor: a 0.3 MB record
DECLARED = 75_000_000  # floats the hostile pickles declare: 300 MB
EXTRA_LIMIT = 150_000_000  # bytes a refusal may add to the peak, far below what is declared
CHUNK = 1_000_000  # bytes of zeros written at a time

PEAK_SCRIPT = PEAK_MEMORY_SOURCE + """
import json, sys
from engine.errors import LandscapeError
from engine.io.checkpoints import load_checkpoint
from engine.io.models import build_model

warm, cases = sys.argv[1], json.loads(sys.argv[2])
build_model(load_checkpoint(warm))  # first calls fill caches that are not the hostile files' doing
before = peak_bytes()
results = {}
for name, path in cases.items():
    try:
        build_model(load_checkpoint(path))
        error = None
    except LandscapeError as exc:
        error = str(exc)
    results[name] = {"error": error, "growth": peak_bytes() - before}
print(json.dumps(results))
"""


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message.strip() and "\n" not in message, f"not one line: {message!r}"
    return message


def replace_ints(data: bytes, old: int, new: int, pickles: int = 1) -> bytes:
    """``data`` with every 4-byte int equal to ``old`` in its first pickles (a storage's numel, a size) set to ``new``."""
    out, stream = bytearray(data), io.BytesIO(data)
    for _ in range(pickles):
        for opcode, arg, pos in pickletools.genops(stream):
            if opcode.name == "BININT" and arg == old:
                out[pos + 1:pos + 5] = struct.pack("<i", new)
    assert out != data, f"no {old} to replace"
    return bytes(out)


def copy_archive(src: Path, dst: Path, numel: int, zero_record_bytes: int = 0) -> Path:
    """``src`` with its pickles declaring ``numel`` elements instead of SMALL, and optionally its
    first storage replaced by that many zero bytes, deflated (torch.save stores records)."""
    with zipfile.ZipFile(src) as source, zipfile.ZipFile(dst, "w") as target:
        for record in source.infolist():
            data = source.read(record)
            if record.filename.endswith(("/data.pkl", "/constants.pkl")) and SMALL in _ints(data):
                data = replace_ints(data, SMALL, numel)
            if zero_record_bytes and record.filename.endswith("/data/0"):
                record.compress_type = zipfile.ZIP_DEFLATED
                with target.open(record, "w") as stream:
                    zeros = bytes(CHUNK)
                    for _ in range(zero_record_bytes // CHUNK):
                        stream.write(zeros)
            else:
                target.writestr(record, data)
    return dst


def _ints(data: bytes) -> set[int]:
    return {arg for opcode, arg, _ in pickletools.genops(data) if opcode.name == "BININT"}


# -- the hostile files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    torch.manual_seed(0)
    torch.save({"w": torch.randn(SMALL)}, d / "real.pt")
    files = {
        "declares": copy_archive(d / "real.pt", d / "declares.pt", DECLARED),
        # A tensor of zeros that really is 300 MB: only the deflated record is hostile.
        "bomb": copy_archive(d / "real.pt", d / "bomb.pt", DECLARED, zero_record_bytes=4 * DECLARED),
    }
    torch.save({"w": torch.randn(SMALL)}, d / "real_legacy.pt", _use_new_zipfile_serialization=False)
    files["legacy"] = d / "legacy.pt"
    files["legacy"].write_bytes(replace_ints((d / "real_legacy.pt").read_bytes(), SMALL, DECLARED, LEGACY_PICKLES))
    torch.jit.script(zoo.tiny_mlp(d=SMALL // 5, width=5)).save(str(d / "real_ts.pt"))
    files["torchscript"] = copy_archive(d / "real_ts.pt", d / "torchscript.pt", DECLARED)
    files["wide"] = save_checkpoint(d / "wide.pt", model_factory="engine.builtin.models:mlp",
                                    model_kwargs={"width": 20000}, state_dict=mlp(width=50).state_dict())
    files["warm"] = save_checkpoint(d / "warm.pt", model_factory="engine.builtin.models:mlp",
                                    model_kwargs={"width": 50}, state_dict=mlp(width=50).state_dict())
    return files


@pytest.fixture(scope="module")
def measured(hostile) -> dict[str, dict]:
    """Each hostile file loaded (and its model built) in one fresh interpreter."""
    if not PROC_STATUS:
        pytest.skip(PROC_STATUS_REASON)
    cases = {name: str(hostile[name]) for name in ("declares", "bomb", "legacy", "torchscript", "wide")}
    result = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(hostile["warm"]), json.dumps(cases)],
                            cwd=ROOT, env=run_cli_env(), capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_hostile_files_are_what_they_claim(hostile):
    assert hostile["declares"].stat().st_size < 400_000
    assert hostile["bomb"].stat().st_size < 400_000
    with zipfile.ZipFile(hostile["bomb"]) as archive:
        assert archive.getinfo("real/data/0").file_size == 4 * DECLARED


# -- refused in one line, before the memory is spent ---------------------------------------------


@pytest.mark.parametrize("name, says", [
    ("declares", "declares 300.0 MB of tensors but holds 0.3 MB"),
    ("bomb", "inflates from 0.3 MB to 300.0 MB"),
    ("legacy", "declares 300.0 MB of tensors but holds 0.3 MB"),
    ("torchscript", "declares 300.0 MB of tensors but holds 0.3 MB"),
])
def test_file_declaring_more_than_it_holds_is_refused_before_allocating(hostile, measured, name, says):
    result = measured[name]
    assert result["error"] is not None, f"{name} loaded"
    assert says in result["error"], result["error"]
    assert str(hostile[name]) in result["error"] and "\n" not in result["error"]
    assert "damaged or hostile; re-save it with torch.save" in result["error"]
    assert result["growth"] < EXTRA_LIMIT, f"{name}: peak grew {result['growth'] / 1e6:.0f} MB"


def test_kwargs_asking_for_a_wider_model_are_refused_before_building_it(hostile, measured):
    result = measured["wide"]
    assert result["error"] is not None
    assert result["error"].startswith(f"the weights in {hostile['wide']} (3,651 parameters) do not fit the model "
                                      'built from engine.builtin.models:mlp with {"width": 20000} (400,460,001 parameters)')
    assert "mis-shaped 5: 0.weight (50, 20) vs model (20000, 20)" in result["error"]
    assert "--model-kwargs" in result["error"] and "\n" not in result["error"]
    assert result["growth"] < EXTRA_LIMIT, f"peak grew {result['growth'] / 1e6:.0f} MB of the model's 1,600"


def test_records_that_add_up_far_beyond_the_file_are_refused(tmp_path):
    # Each record inflates under the per-record bound, but together (records can share their
    # compressed bytes in a crafted zip) they would be 100 MB out of a 0.1 MB file.
    records = []
    for index in range(100):
        record = zipfile.ZipInfo(f"archive/data/{index}")
        record.compress_size, record.file_size = 10_000, 10_000 * MAX_EXPANSION
        records.append(record)
    with pytest.raises(LandscapeError) as exc:
        _check_inflation(tmp_path / "m.pt", records, 100_000)
    assert "inflates to 100.0 MB from 0.1 MB" in one_line(exc)
    _check_inflation(tmp_path / "m.pt", records, 1_000_000)  # the same records in a 1 MB file are plausible


def test_zip_with_two_records_named_alike_is_refused(tmp_path):
    real = tmp_path / "real.pt"
    torch.save(zoo.tiny_mlp().state_dict(), real)
    path = tmp_path / "twice.pt"
    with zipfile.ZipFile(real) as source, zipfile.ZipFile(path, "w") as target:
        for record in source.infolist():
            target.writestr(record, source.read(record))
        # torch finds records ignoring case, so this one could stand in for data.pkl.
        target.writestr("real/DATA.pkl", source.read("real/data.pkl"))
    with pytest.raises(LandscapeError) as exc:
        load_checkpoint(path)
    assert "two records with the same name" in one_line(exc)


# -- the model is checked on the meta device -----------------------------------------------------

FACTORIES = '''
import torch
from torch import nn

BUILT = []


def net(d=3):
    """Records the device each build used."""
    BUILT.append(str(torch.empty(0).device))
    return nn.Sequential(nn.Linear(d, 1))


def reads_values(d=3):
    """Reads a weight's value, which the meta device does not have."""
    model = nn.Sequential(nn.Linear(d, 1))
    if model[0].weight.sum().item() > 1e9:
        raise ValueError("unreachable")
    return model
'''


@pytest.fixture
def factories(tmp_path) -> Path:
    path = tmp_path / "factories.py"
    path.write_text(FACTORIES)
    return path


def test_mismatch_is_found_on_the_meta_device_without_a_real_build(tmp_path, factories):
    from engine.io.references import resolve

    checkpoint_path = tmp_path / "linear3.pt"
    torch.save(zoo.linear(d=3).state_dict(), checkpoint_path)
    built = resolve(f"{factories}:net").__globals__["BUILT"]
    with pytest.raises(LandscapeError) as exc:
        build_model(load_checkpoint(checkpoint_path), f"{factories}:net", {"d": 7})
    assert "(4 parameters) do not fit the model" in one_line(exc) and "(8 parameters)" in one_line(exc)
    assert built == ["meta"]
    build_model(load_checkpoint(checkpoint_path), f"{factories}:net", {"d": 3})
    assert built == ["meta", "meta", "cpu"]


def test_factory_that_cannot_run_on_meta_is_built_for_real_and_still_checked(tmp_path, factories):
    torch.manual_seed(3)
    reference = zoo.linear(d=3)
    checkpoint_path = tmp_path / "linear3.pt"
    torch.save(reference.state_dict(), checkpoint_path)
    model, _, _ = build_model(load_checkpoint(checkpoint_path), f"{factories}:reads_values", {"d": 3})
    assert all(torch.equal(model.state_dict()[k], v) for k, v in reference.state_dict().items())
    with pytest.raises(LandscapeError) as exc:
        build_model(load_checkpoint(checkpoint_path), f"{factories}:reads_values", {"d": 5})
    assert "mis-shaped 1: 0.weight (1, 3) vs model (1, 5)" in one_line(exc)


@pytest.mark.parametrize("prefix", ["model.", "module."])
def test_meta_check_strips_wrapper_prefixes_like_load_weights(tmp_path, prefix):
    state = {f"{prefix}{k}": v for k, v in zoo.tiny_mlp(width=8).state_dict().items()}
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(LandscapeError) as exc:
        build_model(load_checkpoint(path), "tests.zoo:tiny_mlp", {"width": 9})
    message = one_line(exc)
    assert "mis-shaped 3: 0.weight (8, 4) vs model (9, 4)" in message
    assert "missing" not in message and "unexpected" not in message
    assert "(49 parameters) do not fit the model built from tests.zoo:tiny_mlp with {\"width\": 9} (55 parameters)" \
        in message
    model, _, _ = build_model(load_checkpoint(path), "tests.zoo:tiny_mlp", {"width": 8})
    assert torch.equal(model.state_dict()["0.weight"], state[f"{prefix}0.weight"])


def test_batchnorm_buffers_do_not_count_as_parameters(tmp_path):
    state = zoo.tiny_cnn(channels=4).state_dict()
    path = tmp_path / "cnn.pt"
    torch.save(state, path)
    with pytest.raises(LandscapeError) as exc:
        build_model(load_checkpoint(path), "tests.zoo:tiny_cnn", {"channels": 5})
    params = sum(p.numel() for p in zoo.tiny_cnn(channels=4).parameters())
    assert f"({params:,} parameters) do not fit" in one_line(exc)


# -- every legitimate file still loads -----------------------------------------------------------


def _legit_files(d: Path) -> dict[str, tuple[Path, bool]]:
    model = zoo.tiny_cnn()
    shared = torch.randn(4, 4)
    files = {}

    def save(name: str, obj, trust: bool = False, **kwargs) -> None:
        torch.save(obj, d / f"{name}.pt", **kwargs)
        files[name] = (d / f"{name}.pt", trust)

    save("legacy", model.state_dict(), _use_new_zipfile_serialization=False)
    save("legacy shared storage", {"a": shared, "b": shared[1:]}, _use_new_zipfile_serialization=False)
    save("legacy whole module", model, trust=True, _use_new_zipfile_serialization=False)
    save("pickle protocol 4", model.state_dict(), trust=True, pickle_protocol=4)  # weights_only reads protocol 2
    save("shared storage and views", {"a": shared, "b": shared[1:], "c": shared.t(), "empty": torch.zeros(0)})
    save("untyped storages", {"f8": torch.zeros(3, dtype=torch.float8_e4m3fn), "u16": torch.zeros(2, dtype=torch.uint16),
                              "bf16": torch.randn(3, dtype=torch.bfloat16), "bool": torch.ones(2, dtype=torch.bool)})
    torch.serialization.set_crc32_options(False)  # torch may leave CRCs blank, and does not check them
    try:
        save("blank crcs", model.state_dict())
    finally:
        torch.serialization.set_crc32_options(True)
    torch.jit.trace(WithConstant(), torch.randn(2, 3)).save(str(d / "traced.pt"))
    files["traced TorchScript with a constant"] = (d / "traced.pt", False)
    return files


class WithConstant(nn.Module):
    """Tracing keeps ``table`` (not a buffer) as a constant: constants.pkl and constants/0."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 1)
        self.table = torch.randn(SMALL)

    def forward(self, x):
        return self.proj(x + self.table[:3])


def test_legitimate_files_of_every_kind_still_load(tmp_path):
    for name, (path, trust) in _legit_files(tmp_path).items():
        checkpoint = load_checkpoint(path, trust_pickle=trust)
        assert checkpoint.state_dict, name


def test_legacy_whole_module_still_asks_for_trust(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(zoo.affine(), path, _use_new_zipfile_serialization=False)
    with pytest.raises(LandscapeError) as exc:
        load_checkpoint(path)
    assert "--trust-pickle" in one_line(exc)


def test_damaged_files_only_ever_give_one_line_errors(tmp_path):
    # Flipped bytes anywhere (zip directory, pickle, data) either load or give a LandscapeError.
    torch.manual_seed(0)
    model = zoo.tiny_mlp()
    torch.save(model.state_dict(), tmp_path / "zip.pt")
    torch.save(model.state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    rng = random.Random(0)
    damaged = tmp_path / "damaged.pt"
    for source in ("zip.pt", "legacy.pt"):
        data = (tmp_path / source).read_bytes()
        for _ in range(150):
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            damaged.write_bytes(flipped)
            try:
                load_checkpoint(damaged)
            except LandscapeError as exc:
                assert "\n" not in str(exc) and str(damaged) in str(exc)


def test_meta_build_leaves_the_random_state_alone(tmp_path):
    path = tmp_path / "mlp.pt"
    torch.save(zoo.tiny_mlp().state_dict(), path)
    checkpoint = load_checkpoint(path)
    torch.manual_seed(5)
    zoo.tiny_mlp()  # the real build's initialisation draws from the generator
    expected = torch.rand(3)
    torch.manual_seed(5)
    build_model(checkpoint, "tests.zoo:tiny_mlp")  # the meta build must draw nothing more
    assert torch.equal(torch.rand(3), expected)
