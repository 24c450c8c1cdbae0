"""Read every checkpoint a PyTorch user has on disk, without running code from it.

Formats: a plain ``state_dict``; a dict wrapping one under ``state_dict``,
``model_state_dict``, ``model`` or ``net`` (Lightning ``.ckpt`` included);
``.safetensors``; TorchScript archives; and Landscape's own self-describing
checkpoint, which also names the model factory and its kwargs.

Pickles are read with ``torch.load(..., weights_only=True)``. A file that needs
arbitrary unpickling is refused unless the caller passes ``trust_pickle=True``. A trusted
pickle of a whole model names its classes by module (``models.Net``), as the script that
saved it imported them; those modules are looked up in the folders the caller names (the
folder of the user's ``--model path/to/models.py:...``) and the checkpoint's own, which are
on ``sys.path`` during that load only.

Before any loader runs, the sizes a file declares are checked against the bytes it
holds (:func:`check_declared_sizes`): torch sizes each tensor storage from the
pickle's declaration and each zip record from the zip's directory, so a small hostile
file could otherwise make it allocate gigabytes before it fails.
"""

from __future__ import annotations

import functools
import hashlib
import mmap
import os
import pickle
import pickletools
import re
import struct
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Mapping

import torch

from engine.cancel import raise_if_cancelled
from engine.errors import LandscapeError
from engine.io.references import split_reference

LANDSCAPE_CHECKPOINT_FORMAT = "landscape-checkpoint"
LANDSCAPE_CHECKPOINT_VERSION = 1
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
# How much a zip may inflate: per record (over its compressed bytes) and in total (over the
# file's size). torch.save stores its records uncompressed and TorchScript deflates its code
# about 3-9x, while a deflated run of zeros inflates about 1000x (a zip bomb). The total also
# catches records that share compressed bytes (overlapping entries).
MAX_EXPANSION = 100
# The pickles in a zip whose storages torch.load and torch.jit.load read, each from the folder
# of the same name (``<archive>/data.pkl`` declares ``<archive>/data/<key>``).
STORAGE_PICKLES = ("data", "constants")
# A legacy (non-zip) torch.save file is these pickles (magic number, protocol version, system
# info, the object), then the list of storage keys and the raw storages.
LEGACY_PICKLES = 4
# Element sizes of the typed storages torch.save names ('torch FloatStorage'); newer dtypes are
# saved as 'torch.storage UntypedStorage', whose numel counts bytes.
STORAGE_DTYPES = {
    "DoubleStorage": torch.float64, "FloatStorage": torch.float32, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "ComplexDoubleStorage": torch.complex128, "ComplexFloatStorage": torch.complex64, "QInt8Storage": torch.qint8,
    "QInt32Storage": torch.qint32, "QUInt8Storage": torch.quint8, "QUInt4x2Storage": torch.quint4x2,
    "QUInt2x4Storage": torch.quint2x4,
}


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
    """sha256 of a file, read in 1 MiB blocks; a job's cancel stops it between blocks (large checkpoints).

    Remembered for a file that has not changed since (same inode, size and modification time), so a
    job that names a checkpoint twice (settings, then loading) reads it once.
    """
    stat = os.stat(path)
    return _sha256_of(str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_of(path: str, _inode: int, _size: int, _mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            raise_if_cancelled()
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


def load_checkpoint(path: str | Path, *, trust_pickle: bool = False,
                    import_from: Sequence[str | Path] = ()) -> Checkpoint:
    """Load any supported checkpoint; every failure is a one-line LandscapeError.

    ``import_from``: folders a trusted pickle may import the classes it names from, besides the
    checkpoint's own folder (see :func:`pickle_import_folders`); ignored without ``trust_pickle``.
    """
    path = Path(path)
    if not path.exists():
        raise LandscapeError(f"no such checkpoint: {path}")
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder; pass one checkpoint file")
    sha = file_sha256(path)
    if path.suffix == ".safetensors":
        return _load_safetensors(path, sha)  # safetensors checks its header's offsets against the file itself
    if _is_torchscript(check_declared_sizes(path)):
        return _load_torchscript(path, sha)
    if not trust_pickle:
        return _interpret(_torch_load(path, False), path, sha)
    with _importable([*map(Path, import_from), path.parent]):
        return _interpret(_torch_load(path, True), path, sha)


def pickle_import_folders(model_ref: str | None) -> tuple[Path, ...]:
    """The folder of a ``path/to/models.py:callable`` reference: where a whole-model pickle's classes live.

    A module reference (``pkg.models:Net``) is importable already, so it adds no folder.
    """
    if not model_ref:
        return ()
    target, _attr = split_reference(model_ref)
    return (Path(target).resolve().parent,) if target.endswith(".py") else ()


@contextmanager
def _importable(folders: Sequence[Path]) -> Iterator[None]:
    """Put ``folders`` first on ``sys.path`` for one trusted load, then take them and the modules
    imported from them away again, so two projects' ``models.py`` never meet in one process."""
    added = [f for f in dict.fromkeys(str(f.resolve()) for f in folders) if f not in sys.path]
    before = set(sys.modules)
    sys.path[:0] = added
    try:
        yield
    finally:
        for folder in added:
            sys.path.remove(folder)
        for name in set(sys.modules) - before:
            if _module_under(sys.modules[name], added):
                del sys.modules[name]


def _module_under(module: Any, folders: list[str]) -> bool:
    """True for a module (or namespace package) found in one of ``folders``."""
    source = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", None) or ()), None)
    return bool(source) and any(Path(source).resolve().is_relative_to(folder) for folder in folders)


def _load_safetensors(path: Path, sha: str) -> Checkpoint:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise LandscapeError(f"{path} is not a readable .safetensors file ({_first_line(exc)})") from exc
    return Checkpoint(path=path, sha256=sha, kind="safetensors", state_dict=dict(state))


def _is_torchscript(names: list[str]) -> bool:
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


def check_declared_sizes(path: Path) -> list[str]:
    """Refuse, before torch allocates anything, a file that declares more bytes than it holds.

    Returns the names in a zip archive (none for other files). Only the zip's directory and
    the pickles' opcodes are read; nothing is unpickled. The pre-1.0 tar format is not
    checked: torch refuses it with ``weights_only=True``, and a trusted pickle runs its own
    code anyway.
    """
    try:
        with open(path, "rb") as handle:
            if handle.read(4) == b"PK\x03\x04":  # torch's own test for a zip checkpoint
                return _check_archive(path, handle)
        if not _is_tar(path):
            _check_legacy(path)
        return []
    except (ValueError, OSError, NotImplementedError, zipfile.BadZipFile, zlib.error, struct.error) as exc:
        raise _unreadable(path, _first_line(exc)) from exc


def _is_tar(path: Path) -> bool:
    """torch's own test for the pre-1.0 format: an uncompressed tar (a compressed one is read as pickles)."""
    try:
        with tarfile.open(path, "r:"):
            return True
    except tarfile.TarError:
        return False


def _check_archive(path: Path, handle: BinaryIO) -> list[str]:
    """A torch.save or TorchScript zip: bounded inflation, and each storage fits its record."""
    with zipfile.ZipFile(handle) as archive, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        listed = archive.infolist()
        _check_inflation(path, listed, len(view))
        # torch finds records by name ignoring case, so two names that differ only in case
        # could show this check one record and torch another.
        records = {record.filename.lower(): record for record in listed}
        if len(records) < len(listed):
            raise _hostile(path, "has two records with the same name")
        prefix = listed[0].filename.split("/", 1)[0].lower() if listed else ""  # torch reads the first record's folder
        for name in STORAGE_PICKLES:
            if f"{prefix}/{name}.pkl" in records:
                declared = _storage_bytes(_persistent_ids(_record_bytes(view, records[f"{prefix}/{name}.pkl"])))
                held = {key: _record_size(records, f"{prefix}/{name}/{key}") for key in declared}
                over = [key for key in declared if declared[key] > held[key]]
                if over:
                    raise _overdeclared(path, sum(declared[k] for k in over), sum(held[k] for k in over))
        return [record.filename for record in listed]


def _record_size(records: dict[str, zipfile.ZipInfo], name: str) -> int:
    record = records.get(name.lower())
    return record.file_size if record is not None else 0


def _record_bytes(view: mmap.mmap, record: zipfile.ZipInfo) -> bytes:
    """A record's bytes, unchecked against its CRC: torch may write blank CRCs and does not check them.

    Slicing the mapped file never reads past its end, whatever size the directory claims.
    """
    start = record.header_offset
    if view[start:start + 4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"no local header for {record.filename}")
    name_length, extra_length = struct.unpack("<HH", view[start + 26:start + 30])
    begin = start + 30 + name_length + extra_length
    raw = view[begin:begin + record.compress_size]
    if record.compress_type == zipfile.ZIP_STORED:
        return raw
    if record.compress_type == zipfile.ZIP_DEFLATED:
        # max_length bounds the output; zlib reads a max_length of 0 as no bound at all.
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw, record.file_size) if record.file_size else b""
    raise NotImplementedError(f"{record.filename} uses zip compression method {record.compress_type}")


def _check_inflation(path: Path, records: list[zipfile.ZipInfo], file_size: int) -> None:
    """Zip bombs: a record that inflates far beyond its compressed bytes, or records that add up far beyond the file."""
    for record in records:
        if record.file_size > MAX_EXPANSION * record.compress_size:
            raise _hostile(path, f"has a record ({record.filename}) that inflates from {_size(record.compress_size)} "
                                 f"to {_size(record.file_size)}")
    total = sum(record.file_size for record in records)
    if total > MAX_EXPANSION * file_size:
        raise _hostile(path, f"inflates to {_size(total)} from {_size(file_size)}")


def _check_legacy(path: Path) -> None:
    """A non-zip torch.save file: its storages follow its pickles, so they must fit in the bytes left after them."""
    size = path.stat().st_size
    if size == 0:
        raise ValueError("the file is empty")
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        # A mapped file never reads more than it holds, whatever length an opcode claims.
        ids = [pid for _ in range(LEGACY_PICKLES) for pid in _persistent_ids(view)]
        held = size - view.tell()
    declared = sum(_storage_bytes(ids).values())
    if declared > held:
        raise _overdeclared(path, declared, held)


class _Global(str):
    """A pickle GLOBAL ('torch FloatStorage'), told apart from a string literal."""


class _PickleScan:
    """Follow a pickle's opcodes without running them, to collect the persistent ids it hands its loader.

    Literals, tuples, globals and the memo are tracked, because torch spells a storage
    declaration with them; every other value is opaque.
    """

    OPAQUE = object()

    def __init__(self) -> None:
        self.stack: list[Any] = []
        self.marks: list[int] = []  # stack heights at each MARK
        self.memo: dict[int, Any] = {}
        self.persistent_ids: list[Any] = []

    def step(self, opcode: pickletools.OpcodeInfo, arg: Any) -> None:
        name, before = opcode.name, opcode.stack_before
        if name == "MARK":
            self.marks.append(len(self.stack))
        elif name == "GLOBAL":
            self.stack.append(_Global(arg))
        elif name == "STACK_GLOBAL":
            module, attr = self.pop(2)
            self.stack.append(_Global(f"{module} {attr}"))
        elif name in ("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
            self.stack.append(tuple(self.pop_mark() if name == "TUPLE" else self.pop(int(name[-1]))))
        elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            self.memo[len(self.memo) if name == "MEMOIZE" else arg] = self.stack[-1]
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            self.stack.append(self.memo[arg])
        elif name in ("PERSID", "BINPERSID"):
            self.persistent_ids.append(arg if name == "PERSID" else self.pop(1)[0])
            self.stack.append(self.OPAQUE)
        else:  # any other opcode: pop what it consumes, push a literal or opaque results
            if pickletools.markobject in before:
                self.pop_mark()
                before = before[: before.index(pickletools.markobject)]
            self.pop(len(before))
            literal = not before and len(opcode.stack_after) == 1 and arg is not None
            self.stack.extend([arg] if literal else [self.OPAQUE] * len(opcode.stack_after))

    def pop(self, count: int) -> list[Any]:
        floor = self.marks[-1] if self.marks else 0
        if len(self.stack) - count < floor:
            raise ValueError("its pickle pops more values than it pushed")
        items = self.stack[len(self.stack) - count:]
        del self.stack[len(self.stack) - count:]
        return items

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise ValueError("its pickle closes a MARK it never opened")
        return self.pop(len(self.stack) - self.marks.pop())


def _persistent_ids(data: bytes | mmap.mmap) -> list[Any]:
    """The persistent ids of one pickle (from the start of bytes, or a mapped file's position)."""
    scan = _PickleScan()
    try:
        for opcode, arg, _ in pickletools.genops(data):
            scan.step(opcode, arg)
    except (KeyError, IndexError) as exc:  # a GET of nothing stored, a PUT on an empty stack
        raise ValueError("its pickle refers to values it never made") from exc
    return scan.persistent_ids


def _storage_bytes(persistent_ids: list[Any]) -> dict[str, int]:
    """Bytes declared per storage key by torch's ``('storage', type, key, location, numel, ...)`` ids."""
    declared: dict[str, int] = {}
    for pid in persistent_ids:
        if not isinstance(pid, tuple) or not pid or pid[0] not in ("storage", b"storage"):
            continue  # e.g. a legacy module pickle's ('module', ...) ids, which hold no data
        if len(pid) < 5 or not isinstance(pid[1], _Global) or not isinstance(pid[2], str) or type(pid[4]) is not int:
            raise ValueError("it declares a tensor storage in a form torch does not write")
        # An unknown storage type fails in torch; counting it as bytes is a lower bound.
        dtype = STORAGE_DTYPES.get(pid[1].rpartition(" ")[2])
        size = max(pid[4], 0) * (dtype.itemsize if dtype is not None else 1)
        declared[pid[2]] = max(declared.get(pid[2], 0), size)
    return declared


def _size(count: int) -> str:
    return f"{count / 1e6:,.1f} MB" if count >= 100_000 else f"{count:,} bytes"


def _overdeclared(path: Path, declared: int, held: int) -> LandscapeError:
    return _hostile(path, f"declares {_size(declared)} of tensors but holds {_size(held)}")


def _hostile(path: Path, what: str) -> LandscapeError:
    return LandscapeError(
        f"{path} {what}: the file is damaged or hostile; re-save it with torch.save (torch.jit.save for TorchScript)"
    )


def _unreadable(path: Path, reason: str) -> LandscapeError:
    return LandscapeError(f"{path} is not a readable PyTorch checkpoint ({reason}); is the file complete?")


def _torch_load(path: Path, trust_pickle: bool) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if trust_pickle or not found:
            # Without a blocked GLOBAL the pickle stream itself is broken (random bytes,
            # a cut file): trusting it would not help, so don't suggest --trust-pickle.
            raise _unreadable(path, _first_line(exc)) from exc
        raise LandscapeError(
            f"{path} needs arbitrary unpickling (it stores {found.group(1)}, which loading would run); "
            "if you trust the file, pass --trust-pickle (trust_pickle=True)"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise _unreadable(path, _first_line(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - a trusted pickle may raise anything
        if not trust_pickle:  # weights_only runs no code from the file: the file is damaged
            raise _unreadable(path, f"{type(exc).__name__}: {_first_line(exc)}") from exc
        hint = ""
        if isinstance(exc, ModuleNotFoundError):  # a class of the user's own module, pickled by name
            hint = (f"; the pickle names a class of that module: name the file that defines the model "
                    f"(--model path/to/{exc.name or 'module'}.py:NAME) so its folder can be imported")
        raise LandscapeError(f"{path} failed to load: {type(exc).__name__}: {_first_line(exc)}{hint}") from exc


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
