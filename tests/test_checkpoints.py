"""engine.io.checkpoints.load_checkpoint + engine.io.models.build_model against real files."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from engine.io.checkpoints import file_sha256, load_checkpoint, save_checkpoint
from engine.io.data import DataSet, tensor_sha256
from engine.errors import LandscapeError
from engine.io.models import build_model, load_weights
from engine.numerics.problem import Problem
from tests import zoo


def one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message.strip(), "empty error message"
    assert "\n" not in message and "\r" not in message, f"multi-line error: {message!r}"
    return message


def seeded(factory, seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return factory(**kwargs)


def assert_same_weights(model: nn.Module, reference: nn.Module) -> None:
    got, want = model.state_dict(), reference.state_dict()
    assert list(got) == list(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key


def outputs_equal(a: nn.Module, b: nn.Module, x: torch.Tensor) -> bool:
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


# -- every accepted format gives the same weights ----------------------------------------------


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
def test_plain_state_dict_loads_same_weights_for_every_suffix(tmp_path, suffix):
    reference = seeded(zoo.tiny_mlp)
    path = tmp_path / f"weights{suffix}"
    torch.save(reference.state_dict(), path)
    checkpoint = load_checkpoint(path)
    assert checkpoint.kind == "state_dict"
    model, ref, kwargs = build_model(checkpoint, "tests.zoo:tiny_mlp")
    assert_same_weights(model, reference)
    assert ref == "tests.zoo:tiny_mlp" and kwargs == {}


@pytest.mark.parametrize("key", ["state_dict", "model_state_dict", "model", "net"])
def test_state_dict_wrapped_under_each_key_loads_same_weights(tmp_path, key):
    reference = seeded(zoo.tiny_mlp, 1)
    path = tmp_path / "wrapped.pt"
    torch.save({key: reference.state_dict(), "epoch": 7, "optimizer": {"lr": 0.1}}, path)
    model, _, _ = build_model(load_checkpoint(path), "tests.zoo:tiny_mlp")
    assert_same_weights(model, reference)


def test_lightning_ckpt_model_prefix_is_stripped_and_epoch_kept(tmp_path):
    reference = seeded(zoo.linear, 2)
    path = tmp_path / "last.ckpt"
    state = {f"model.{k}": v for k, v in reference.state_dict().items()}
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.4.0", "epoch": 3, "global_step": 10}, path)
    checkpoint = load_checkpoint(path)
    assert checkpoint.kind == "lightning"
    assert set(checkpoint.state_dict) == {"model.0.weight", "model.0.bias"}
    assert checkpoint.metadata == {"epoch": 3, "global_step": 10}
    model, _, _ = build_model(checkpoint, "tests.zoo:linear")
    assert_same_weights(model, reference)


def test_dataparallel_module_prefix_is_stripped(tmp_path):
    reference = seeded(zoo.tiny_mlp, 3)
    state = nn.DataParallel(reference).state_dict()  # real DataParallel keys, CPU-only is fine
    assert all(k.startswith("module.") for k in state)
    path = tmp_path / "dp.pth"
    torch.save(state, path)
    model, _, _ = build_model(load_checkpoint(path), "tests.zoo:tiny_mlp")
    assert_same_weights(model, reference)


def test_safetensors_loads_same_weights(tmp_path):
    reference = seeded(zoo.tiny_cnn, 4)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    checkpoint = load_checkpoint(path)
    assert checkpoint.kind == "safetensors"
    model, _, _ = build_model(checkpoint, "tests.zoo:tiny_cnn")
    assert_same_weights(model, reference)


def test_torchscript_archive_works_with_model_and_as_its_own_architecture(tmp_path):
    reference = seeded(zoo.tiny_mlp, 5)
    path = tmp_path / "scripted.pt"
    torch.jit.script(reference).save(str(path))
    checkpoint = load_checkpoint(path)
    assert checkpoint.kind == "torchscript"

    with_model, ref, _ = build_model(checkpoint, "tests.zoo:tiny_mlp")
    assert_same_weights(with_model, reference)
    assert ref == "tests.zoo:tiny_mlp"

    own, ref, kwargs = build_model(checkpoint)
    assert ref is None and kwargs == {}
    x = torch.randn(6, 4)
    assert outputs_equal(own, reference, x)


def test_torchscript_module_can_be_evaluated_by_a_copying_problem(tmp_path):
    # Problem(copy_model=True) deep-copies the module; a ScriptModule whose parameters
    # require grad used to come back with non-leaf parameters and crash.
    reference = seeded(zoo.tiny_mlp, 6)
    path = tmp_path / "scripted.pt"
    torch.jit.script(reference).save(str(path))
    module, _, _ = build_model(load_checkpoint(path))
    x, y = torch.randn(10, 4), torch.randn(10, 1)
    problem = Problem(module, DataSet(x, y, "t", tensor_sha256(x, y), 10), device="cpu")
    with torch.no_grad():
        expected = torch.mean((reference(x) - y) ** 2).item()
    assert problem.metrics().loss == pytest.approx(expected, rel=1e-6)


def test_landscape_checkpoint_rebuilds_its_trusted_sample_factory(tmp_path):
    from engine.builtin.models import mlp

    kwargs = {"in_dim": 3, "width": 5, "depth": 1, "out_dim": 2}
    reference = seeded(mlp, 7, **kwargs)
    path = save_checkpoint(tmp_path / "own.pt", model_factory="engine.builtin.models:mlp", model_kwargs=kwargs,
                           state_dict=reference.state_dict(), metadata={"epoch": 4})
    checkpoint = load_checkpoint(path)
    assert checkpoint.kind == "landscape"
    assert checkpoint.model_factory == "engine.builtin.models:mlp"
    assert checkpoint.metadata == {"epoch": 4}
    model, ref, used = build_model(checkpoint)
    assert ref == "engine.builtin.models:mlp" and used == kwargs
    assert_same_weights(model, reference)


@pytest.mark.parametrize("factory", ["tests.zoo:linear", "os:getcwd"])
def test_landscape_checkpoint_naming_untrusted_factory_is_refused_with_hint_to_pass_model(tmp_path, factory):
    path = save_checkpoint(tmp_path / "foreign.pt", model_factory=factory, model_kwargs={},
                           state_dict=seeded(zoo.linear).state_dict())
    with pytest.raises(LandscapeError) as exc:
        build_model(load_checkpoint(path))
    message = one_line(exc)
    assert f"--model {factory}" in message


def test_checkpoint_cannot_run_code_through_trusted_packages(tmp_path):
    # Functions of trusted packages that import or unpickle files, or attribute walks
    # out of engine.builtin.models, must not be called just because a checkpoint names them.
    marker = tmp_path / "PWNED"
    payload = tmp_path / "payload.py"
    payload.write_text(f"open({str(marker)!r}, 'w').write('x')\ndef f():\n    return None\n")
    evil_pickle = tmp_path / "evil.pt"
    torch.save({"x": _SystemPayload(f"touch {marker}")}, evil_pickle)
    attempts = [
        ("engine.io.references:resolve", {"ref": f"{payload}:f"}),
        ("engine.io.checkpoints:load_checkpoint", {"path": str(evil_pickle), "trust_pickle": True}),
        ("engine.builtin.models:nn.modules.module.torch.load", {"f": str(evil_pickle), "weights_only": False}),
    ]
    for factory, kwargs in attempts:
        path = save_checkpoint(tmp_path / "sneaky.pt", model_factory=factory, model_kwargs=kwargs,
                               state_dict=seeded(zoo.linear).state_dict())
        with pytest.raises(LandscapeError) as exc:
            build_model(load_checkpoint(path))
        assert "--model" in one_line(exc)
        assert not marker.exists(), factory


def test_untrusted_factory_works_when_user_passes_model_and_keeps_checkpoint_kwargs(tmp_path):
    kwargs = {"d": 4, "width": 5}  # not the factory defaults
    reference = seeded(zoo.tiny_mlp, 8, **kwargs)
    path = save_checkpoint(tmp_path / "foreign.pt", model_factory="tests.zoo:tiny_mlp", model_kwargs=kwargs,
                           state_dict=reference.state_dict())
    model, ref, used = build_model(load_checkpoint(path), model_ref="tests.zoo:tiny_mlp")
    assert ref == "tests.zoo:tiny_mlp" and used == kwargs
    assert_same_weights(model, reference)
    # Explicit kwargs still win.
    with pytest.raises(LandscapeError) as exc:
        build_model(load_checkpoint(path), model_ref="tests.zoo:tiny_mlp", model_kwargs={"d": 4, "width": 9})
    assert "mis-shaped" in one_line(exc)


def test_untrusted_file_factory_works_when_user_passes_it(tmp_path):
    factory_file = tmp_path / "arch.py"
    factory_file.write_text("from torch import nn\ndef net(d=3):\n    return nn.Sequential(nn.Linear(d, 1))\n")
    reference = seeded(zoo.linear, 9)
    ref = f"{factory_file}:net"
    path = save_checkpoint(tmp_path / "file_factory.pt", model_factory=ref, model_kwargs={"d": 3},
                           state_dict=reference.state_dict())
    with pytest.raises(LandscapeError) as exc:
        build_model(load_checkpoint(path))
    assert "--model" in one_line(exc)
    model, used_ref, _ = build_model(load_checkpoint(path), model_ref=ref)
    assert used_ref == ref
    assert_same_weights(model, reference)


# -- safety -------------------------------------------------------------------------------------


class _SystemPayload:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class WritesMarker:
    """Unpickling an instance calls __setstate__, which writes a file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        Path(state["path"]).write_text("ran")
        self.path = state["path"]


@pytest.mark.parametrize("payload", ["os.system", "custom class"])
def test_pickle_payload_is_refused_without_running_and_names_trust_pickle(tmp_path, payload):
    marker = tmp_path / "PWNED"
    weights = seeded(zoo.linear).state_dict()
    obj = _SystemPayload(f"touch {marker}") if payload == "os.system" else WritesMarker(str(marker))
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": weights, "extra": obj}, path)
    assert not marker.exists()  # saving did not run it
    with pytest.raises(LandscapeError) as exc:
        load_checkpoint(path)
    assert "--trust-pickle" in one_line(exc)
    assert not marker.exists()


def test_trusted_whole_module_pickle_loads_and_is_its_own_architecture(tmp_path):
    reference = seeded(zoo.affine, 10)
    path = tmp_path / "whole.pt"
    torch.save(reference, path)
    with pytest.raises(LandscapeError) as exc:
        load_checkpoint(path)
    assert "--trust-pickle" in one_line(exc)

    checkpoint = load_checkpoint(path, trust_pickle=True)
    model, ref, _ = build_model(checkpoint)
    assert ref is None
    assert type(model).__name__ == "Affine"
    assert outputs_equal(model, reference, torch.randn(5, 3))


# -- errors -------------------------------------------------------------------------------------


def test_mismatched_state_dict_lists_missing_unexpected_and_misshaped_keys_in_one_line(tmp_path):
    state = seeded(zoo.tiny_mlp).state_dict()
    del state["2.bias"]
    state["extra.weight"] = torch.zeros(2)
    state["0.weight"] = torch.zeros(8, 5)
    path = tmp_path / "wrong.pt"
    torch.save(state, path)
    with pytest.raises(LandscapeError) as exc:
        build_model(load_checkpoint(path), "tests.zoo:tiny_mlp")
    message = one_line(exc)
    assert "missing 1: 2.bias" in message
    assert "unexpected 1: extra.weight" in message
    assert "mis-shaped 1: 0.weight (8, 5) vs model (8, 4)" in message


def test_weights_only_checkpoint_without_model_asks_for_model(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save(seeded(zoo.linear).state_dict(), path)
    with pytest.raises(LandscapeError) as exc:
        build_model(load_checkpoint(path))
    assert "--model" in one_line(exc)


def _zip_checkpoint(tmp_path: Path) -> bytes:
    path = tmp_path / "good.pt"
    torch.save(seeded(zoo.tiny_mlp).state_dict(), path)
    return path.read_bytes()


CORRUPTIONS = {
    "random bytes": lambda tmp: np.random.default_rng(0).bytes(2048),
    "text": lambda tmp: b"hello, this is not a checkpoint\n",
    "empty": lambda tmp: b"",
    "truncated zip": lambda tmp: _zip_checkpoint(tmp)[:600],
    "zip without its last bytes": lambda tmp: _zip_checkpoint(tmp)[:-40],
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_checkpoint_gives_one_line_error_without_trust_pickle_advice(tmp_path, kind):
    path = tmp_path / "broken.pt"
    path.write_bytes(CORRUPTIONS[kind](tmp_path))
    with pytest.raises(LandscapeError) as exc:
        load_checkpoint(path)
    message = one_line(exc)
    assert str(path) in message
    assert "--trust-pickle" not in message  # trusting a damaged file would not help


def test_corrupt_safetensors_and_torchscript_give_one_line_errors(tmp_path):
    model = seeded(zoo.tiny_mlp)
    good_st = tmp_path / "good.safetensors"
    save_file(dict(model.state_dict()), str(good_st))
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(good_st.read_bytes()[:-20])
    good_ts = tmp_path / "good_ts.pt"
    torch.jit.script(model).save(str(good_ts))
    bad_ts = tmp_path / "bad_ts.pt"
    bad_ts.write_bytes(good_ts.read_bytes()[:-100])
    for path in (bad_st, bad_ts):
        with pytest.raises(LandscapeError) as exc:
            load_checkpoint(path)
        assert str(path) in one_line(exc)


def test_folder_and_missing_path_give_one_line_errors(tmp_path):
    with pytest.raises(LandscapeError) as exc:
        load_checkpoint(tmp_path)
    assert "folder" in one_line(exc)
    with pytest.raises(LandscapeError) as exc:
        load_checkpoint(tmp_path / "nope.pt")
    assert "no such checkpoint" in one_line(exc)


def test_damaged_landscape_checkpoint_gives_one_line_error(tmp_path):
    path = tmp_path / "damaged.pt"
    torch.save({"format": "landscape-checkpoint", "format_version": 1, "model_factory": "engine.builtin.models:mlp"}, path)
    with pytest.raises(LandscapeError) as exc:
        load_checkpoint(path)
    one_line(exc)


def test_float64_checkpoint_keeps_model_in_float64(tmp_path):
    reference = seeded(zoo.tiny_mlp).double()
    path = tmp_path / "double.pt"
    torch.save(reference.state_dict(), path)
    model, _, _ = build_model(load_checkpoint(path), "tests.zoo:tiny_mlp")
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert_same_weights(model, reference)
    x, y = torch.randn(7, 4, dtype=torch.float64), torch.randn(7, 1, dtype=torch.float64)
    problem = Problem(model, DataSet(x, y, "t", tensor_sha256(x, y), 7), device="cpu")
    assert problem.dtype == torch.float64
    with torch.no_grad():
        expected = torch.mean((reference(x) - y) ** 2).item()
    assert problem.metrics().loss == pytest.approx(expected, rel=1e-12)


def test_load_weights_keeps_float32_model_for_float32_checkpoint():
    model = zoo.linear()
    load_weights(model, seeded(zoo.linear, 1).state_dict())
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_load_checkpoint_never_modifies_the_file(tmp_path):
    model = seeded(zoo.tiny_mlp)
    files = []
    plain = tmp_path / "plain.pt"
    torch.save(model.state_dict(), plain)
    files.append((plain, False))
    lightning = tmp_path / "l.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "pytorch-lightning_version": "2.4.0", "epoch": 1, "global_step": 2}, lightning)
    files.append((lightning, False))
    st = tmp_path / "m.safetensors"
    save_file(dict(model.state_dict()), str(st))
    files.append((st, False))
    ts = tmp_path / "ts.pt"
    torch.jit.script(model).save(str(ts))
    files.append((ts, False))
    own = save_checkpoint(tmp_path / "own.pt", model_factory="engine.builtin.models:mlp",
                          model_kwargs={"in_dim": 4, "width": 8, "depth": 1}, state_dict=model.state_dict())
    files.append((own, False))
    whole = tmp_path / "whole.pt"
    torch.save(model, whole)
    files.append((whole, True))
    for path, trust in files:
        before = (file_sha256(path), path.stat().st_mtime_ns, path.stat().st_size)
        checkpoint = load_checkpoint(path, trust_pickle=trust)
        # Moving the loaded weights around must not touch the file either.
        for tensor in checkpoint.state_dict.values():
            if tensor.is_floating_point():
                tensor.add_(1.0)
        assert checkpoint.sha256 == before[0]
        assert (file_sha256(path), path.stat().st_mtime_ns, path.stat().st_size) == before, path.name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p, _ in files)  # no side files
    assert zipfile.is_zipfile(plain)
