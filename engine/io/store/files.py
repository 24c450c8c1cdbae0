"""Opening, creating and checking Landscape's HDF5 files, whatever kind of result they hold.

A result file is created complete, under a temporary name, and renamed into place;
afterwards a job changes only raw data that was allocated at creation (values,
done masks, log rows, fixed-width attributes). So a killed writer leaves a file that
has lost only what was in flight, and a full disk can only fail at creation, where
it is one line and leaves nothing behind.

Files up to ``IMAGE_LIMIT`` are built in memory (HDF5's core driver) and written
with plain file I/O: HDF5 crashes the process (SIGSEGV) when the disk fills while it
creates a file, plain ``write`` raises ENOSPC. Larger files are created on disk after
checking that they fit.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import h5py
import numpy as np
import torch

from engine.errors import LandscapeError
from engine.io.references import one_line

FORMAT = "landscape"
FORMAT_VERSION = 1
IMAGE_LIMIT = 256 * 2**20
SPACE_MARGIN = 2**20  # HDF5's own metadata and the filesystem's rounding


@dataclass(frozen=True)
class ArraySpec:
    """A dataset allocated at creation and filled with ``fill``; written point by point later."""

    shape: tuple[int, ...]
    dtype: Any
    fill: Any = 0

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class LogSpec:
    """An appendable table (one row per iteration or epoch) of float64 columns, preallocated."""

    columns: tuple[str, ...]
    capacity: int


@dataclass
class Layout:
    """Everything a new result file holds, so it can be written in one atomic step.

    ``arrays`` maps dataset paths (``"train_loss"``, ``"trajectory/x"``) to data or
    to an :class:`ArraySpec`; ``tensors`` maps a group to members to tensors keyed by
    parameter name (see :mod:`engine.io.store.tensors`); ``placeholders`` are string
    attributes of a fixed width that a job fills in later, in place.
    """

    kind: str
    attrs: dict[str, Any]
    arrays: dict[str, np.ndarray | ArraySpec] = field(default_factory=dict)
    tensors: dict[str, dict[str, Mapping[str, torch.Tensor]]] = field(default_factory=dict)
    logs: dict[str, LogSpec] = field(default_factory=dict)
    placeholders: dict[str, int] = field(default_factory=dict)

    def nbytes(self) -> int:
        """The size of the data the file will hold (HDF5's metadata not included)."""
        total = sum(a.nbytes if isinstance(a, ArraySpec) else np.asarray(a).nbytes for a in self.arrays.values())
        total += sum(t.numel() * t.element_size() for members in self.tensors.values()
                     for tensors in members.values() for t in tensors.values())
        total += sum(8 * (spec.capacity * len(spec.columns) + 1) for spec in self.logs.values())
        return int(total)


# -- opening and reading ---------------------------------------------------------------------
def open_h5(path: str | Path, mode: str = "r") -> h5py.File:
    """Open an HDF5 file, turning every failure into one line.

    No HDF5 file locks: a file that a running job is writing can be looked at, and
    HDF5 refuses, within one process, to open a file twice with different locking
    flags (the app reads while its job thread writes). One writer per file is the
    engine's own rule (:mod:`engine.io.store.lock`).
    """
    path = Path(path)
    if mode == "r" and not path.exists():
        raise LandscapeError(f"no such file: {path}")
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder, not an HDF5 file; name a .h5 file")
    try:
        return h5py.File(path, mode, locking=False)
    except OSError as exc:
        reason = str(exc).split("(")[-1].rstrip(")") if "(" in str(exc) else str(exc)
        raise LandscapeError(f"{path} is not a readable HDF5 file ({' '.join(reason.split())})") from exc


def damaged(path: str | Path, what: str) -> LandscapeError:
    """The one-line error for a file whose structure is not what its format promises."""
    return LandscapeError(f"{path} is damaged: {what}")


def read_attrs(handle: h5py.File | h5py.Group) -> dict[str, Any]:
    """Root (or group) attributes as plain Python values: str, int, float, lists."""
    attrs: dict[str, Any] = {}
    for key, value in handle.attrs.items():
        if isinstance(value, bytes):
            value = value.decode(errors="replace")
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        attrs[key] = value
    return attrs


def settings_of(path: str | Path) -> dict[str, Any]:
    """The root attributes of any HDF5 file."""
    with open_h5(path) as handle:
        return read_attrs(handle)


def dataset(handle: h5py.File, name: str, path: str | Path, dims: int | None = None) -> h5py.Dataset:
    """``handle[name]``, checked to be a numeric dataset (of ``dims`` dimensions), or a 'damaged' error."""
    if name not in handle:
        raise damaged(path, f"it has no {name}")
    item = handle[name]
    if not isinstance(item, h5py.Dataset):
        raise damaged(path, f"{name} is a group, not an array")
    if not (np.issubdtype(item.dtype, np.number) or item.dtype == np.bool_):
        raise damaged(path, f"{name} holds {item.dtype} values, not numbers")
    if dims is not None and item.ndim != dims:
        raise damaged(path, f"{name} has {item.ndim} dimensions, not {dims}")
    return item


def same_file(a: str | Path, b: str | Path) -> bool:
    """True if both names reach the same file (or would, for files not created yet)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def settings_mismatch(
    attrs: Mapping[str, Any], expected: Mapping[str, Any], keys: Sequence[str]
) -> tuple[str, str, str] | None:
    """The first of ``keys`` whose recorded value differs from ``expected``: (key, recorded, expected)."""
    for key in keys:
        theirs, ours = _as_text(attrs.get(key, "")), _as_text(expected.get(key, ""))
        if theirs != ours:
            return key, theirs, ours
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return str(value)


# -- creating --------------------------------------------------------------------------------
def check_space(path: str | Path, needed: int, what: str = "the file") -> None:
    """Refuse, in one line, to start writing ``needed`` bytes that the disk under ``path`` cannot hold."""
    folder = Path(path).resolve().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # unknown: the write itself will tell
    if needed + SPACE_MARGIN > free:
        raise LandscapeError(
            f"{what} needs {_size(needed + SPACE_MARGIN)} but {folder} has {_size(free)} free; "
            "make it smaller, free some space, or write it elsewhere"
        )


def _size(nbytes: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path``, renamed onto it when the block succeeds.

    A killed or failing writer leaves the old file (or none), never half a file;
    a write error becomes one line that names the file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # h5py raises RuntimeError for some failed writes
        raise write_error(path, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def write_error(path: Path, exc: BaseException) -> LandscapeError:
    """One line for a failed write; a full disk says so."""
    text = str(exc)
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text or "errno = 28" in text:
        return LandscapeError(f"cannot write {path}: the disk is full; free some space or write it elsewhere")
    reason = getattr(exc, "strerror", None) or one_line(exc)
    return LandscapeError(f"cannot write {path}: {reason}")


def create_file(path: str | Path, layout: Layout) -> Path:
    """Write a complete new result file atomically; see the module docstring."""
    from engine.io.store.logs import create_log
    from engine.io.store.tensors import write_tensor_group

    path = Path(path)
    if path.is_dir():
        raise LandscapeError(f"--out {path} is a folder; name a .h5 file")
    estimate = layout.nbytes()
    check_space(path, estimate, f"{path.name}")

    def fill(handle: h5py.File) -> None:
        root = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": layout.kind, **layout.attrs}
        for key, value in root.items():
            handle.attrs[key] = attr_value(value)
        for key, width in layout.placeholders.items():
            handle.attrs.create(key, np.array(str(root.get(key, "")).encode(), dtype=f"S{width}"))
        for name, data in layout.arrays.items():
            if isinstance(data, ArraySpec):
                # Contiguous, allocated and filled by HDF5 now (no array of that size in memory):
                # later writes touch only raw data.
                early = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                early.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
                handle.create_dataset(name, shape=data.shape, dtype=data.dtype, fillvalue=data.fill, dcpl=early,
                                      fill_time="alloc")
            else:
                handle.create_dataset(name, data=data)
        for group, members in layout.tensors.items():
            write_tensor_group(handle, group, members)
        for name, spec in layout.logs.items():
            create_log(handle, name, spec)

    if estimate <= IMAGE_LIMIT:
        with h5py.File(f"{path.name}.image", "w", driver="core", backing_store=False) as handle:
            fill(handle)
            handle.flush()
            image = handle.id.get_file_image()
        with atomic_path(path) as tmp:
            with open(tmp, "xb") as out:
                out.write(image)
                out.flush()
                os.fsync(out.fileno())
    else:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
            fill(handle)
    return path


def attr_value(value: Any) -> Any:
    """An attribute as :func:`read_attrs` gives it back, in what h5py stores (dicts as JSON, lists as arrays)."""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    return "" if value is None else value


def set_placeholder(handle: h5py.File, key: str, value: str) -> None:
    """Fill a fixed-width string attribute in place (no new metadata: safe on a full disk, and under a kill)."""
    stored = handle.attrs.get_id(key).dtype if key in handle.attrs else None
    if stored is None or stored.kind != "S":  # written before the attribute had a reserved place
        handle.attrs[key] = value
        return
    width = stored.itemsize
    encoded = value.encode()
    if len(encoded) > width:
        raise LandscapeError(f"internal: '{value}' does not fit the {width}-byte attribute {key}")
    handle.attrs.modify(key, np.array(encoded, dtype=f"S{width}"))
