"""Read every checkpoint a PyTorch user has on disk, without running code from it.

Formats: a plain ``state_dict``; a dict wrapping one under ``state_dict``,
``model_state_dict``, ``model`` or ``net`` (Lightning ``.ckpt`` included);
``.safetensors``; TorchScript archives; and Landscape's own self-describing
checkpoint, which also names the model factory and its kwargs.

Pickles are read with ``torch.load(..., weights_only=True)``. A file that needs
arbitrary unpickling is refused unless the caller passes ``trust_pickle=True``.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from engine.errors import LandscapeError

LANDSCAPE_CHECKPOINT_FORMAT = "landscape-checkpoint"
LANDSCAPE_CHECKPOINT_VERSION = 1
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")


@dataclass
class Checkpoint:
    """What a checkpoint file holds, in the one shape the rest of the engine uses."""

    path: Path
    sha256: str
    kind: str
    state_dict: dict[str, torch.Tensor]
    model_factory: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    # A module that came with the file (TorchScript, or a trusted full-model pickle).
    module: torch.nn.Module | None = None


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(
    path: str | Path,
    *,
    model_factory: str,
    model_kwargs: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write Landscape's self-describing checkpoint (loadable with ``weights_only=True``).

    ``model_factory`` is a reference such as ``engine.builtin.models:mlp``; ``model_kwargs``
    and ``metadata`` must hold only JSON-like values (str, int, float, bool, None,
    lists and dicts of them) so that reading the file never needs unpickling code.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": LANDSCAPE_CHECKPOINT_FORMAT,
        "format_version": LANDSCAPE_CHECKPOINT_VERSION,
        "model_factory": str(model_factory),
        "model_kwargs": dict(model_kwargs),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
        "metadata": dict(metadata or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # a killed writer never leaves half a checkpoint behind
    return path


def load_checkpoint(path: str | Path, *, trust_pickle: bool = False) -> Checkpoint:
    """Load any supported checkpoint; every failure is a one-line LandscapeError."""
    path = Path(path)
    if not path.exists():
        raise LandscapeError(f"no such checkpoint: {path}")
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder; pass one checkpoint file")
    sha = file_sha256(path)
    if path.suffix == ".safetensors":
        return _load_safetensors(path, sha)
    if _is_torchscript(path):
        return _load_torchscript(path, sha)
    obj = _torch_load(path, trust_pickle)
    return _interpret(obj, path, sha)


def _load_safetensors(path: Path, sha: str) -> Checkpoint:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise LandscapeError(f"{path} is not a readable .safetensors file ({_first_line(exc)})") from exc
    return Checkpoint(path=path, sha256=sha, kind="safetensors", state_dict=dict(state))


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _load_torchscript(path: Path, sha: str) -> Checkpoint:
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError subclasses with long texts
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LandscapeError(f"{path} looks like TorchScript but does not load: {first}") from exc
    # The engine only evaluates; parameters that require grad would make copy.deepcopy
    # of a ScriptModule return non-leaf tensors that Problem cannot freeze.
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    state = {k: v for k, v in module.state_dict().items()}
    return Checkpoint(path=path, sha256=sha, kind="torchscript", state_dict=state, module=module)


def _torch_load(path: Path, trust_pickle: bool) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if trust_pickle or not found:
            # Without a blocked GLOBAL the pickle stream itself is broken (random bytes,
            # a cut file): trusting it would not help, so don't suggest --trust-pickle.
            raise LandscapeError(
                f"{path} is not a readable PyTorch checkpoint ({_first_line(exc)}); is the file complete?"
            ) from exc
        raise LandscapeError(
            f"{path} needs arbitrary unpickling (it stores {found.group(1)}, which loading would run); "
            "if you trust the file, pass --trust-pickle (trust_pickle=True)"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise LandscapeError(
            f"{path} is not a readable PyTorch checkpoint ({_first_line(exc)}); is the file complete?"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - a trusted pickle may raise anything
        if not trust_pickle:  # weights_only runs no code from the file: the file is damaged
            raise LandscapeError(
                f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {_first_line(exc)}); "
                "is the file complete?"
            ) from exc
        raise LandscapeError(f"{path} failed to load: {type(exc).__name__}: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if "WeightsUnpickler error:" in text:  # torch's own reason follows its advice
        text = text.split("WeightsUnpickler error:", 1)[1].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines:
        if "Weights only load failed" not in line and "In PyTorch 2.6" not in line:
            line = line.strip()
            if len(line) > 120 and ". " in line:  # torch appends paragraphs of advice
                line = line.split(". ", 1)[0]
            return line[:300]
    return type(exc).__name__


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _interpret(obj: Any, path: Path, sha: str) -> Checkpoint:
    if isinstance(obj, torch.nn.Module):  # only reachable with trust_pickle
        return Checkpoint(path=path, sha256=sha, kind="pickled-module", state_dict=dict(obj.state_dict()), module=obj)
    if isinstance(obj, Mapping) and obj.get("format") == LANDSCAPE_CHECKPOINT_FORMAT:
        version = obj.get("format_version")
        if version != LANDSCAPE_CHECKPOINT_VERSION:
            raise LandscapeError(
                f"{path} is a Landscape checkpoint of format version {version}; this Landscape reads version "
                f"{LANDSCAPE_CHECKPOINT_VERSION}: upgrade Landscape"
            )
        if not _is_state_dict(obj.get("state_dict")) or not isinstance(obj.get("model_kwargs") or {}, Mapping) or not (
            obj.get("model_factory") is None or isinstance(obj.get("model_factory"), str)
        ):
            raise LandscapeError(
                f"{path} is a damaged Landscape checkpoint (its state_dict, model_factory or model_kwargs is invalid)"
            )
        return Checkpoint(
            path=path,
            sha256=sha,
            kind="landscape",
            state_dict=dict(obj["state_dict"]),
            model_factory=obj.get("model_factory"),
            model_kwargs=dict(obj.get("model_kwargs") or {}),
            metadata=dict(obj.get("metadata") or {}),
        )
    if _is_state_dict(obj):
        return Checkpoint(path=path, sha256=sha, kind="state_dict", state_dict=dict(obj))
    if isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, torch.nn.Module):
                return Checkpoint(path=path, sha256=sha, kind=f"pickled-module:{key}",
                                  state_dict=dict(inner.state_dict()), module=inner)
            if _is_state_dict(inner):
                kind = "lightning" if "pytorch-lightning_version" in obj or "lightning_version" in obj else f"wrapped:{key}"
                metadata = {k: obj[k] for k in ("epoch", "global_step") if isinstance(obj.get(k), (int, float))}
                return Checkpoint(path=path, sha256=sha, kind=kind, state_dict=dict(inner), metadata=metadata)
        keys = ", ".join(sorted(map(str, obj))[:8])
        raise LandscapeError(
            f"{path} holds a dict without a state_dict (keys: {keys}); expected one of {', '.join(WRAPPER_KEYS)}"
        )
    raise LandscapeError(f"{path} holds a {type(obj).__name__}, not a state_dict or a dict wrapping one")
