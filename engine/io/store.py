"""The surface file: the one module that reads and writes Landscape's HDF5 format.

Layout (format_version 1; dataset names follow Li et al.'s loss-landscape files
so their plotting scripts read ours):

* ``xcoordinates`` (nx,), ``ycoordinates`` (ny,) for 2D surfaces;
* ``train_loss`` and, for classification, ``train_acc`` (percent): shape (nx,) in
  1D and (ny, nx) in 2D, ``train_loss[j, i]`` being the value at
  (``xcoordinates[i]``, ``ycoordinates[j]``); NaN/inf are real results;
* ``done``: uint8 mask of the same shape marking computed points;
* ``directions/x/<name>``, ``directions/y/<name>``: the direction tensors (float32);
* ``trajectory/x``, ``trajectory/y``, ``trajectory/names`` for PCA surfaces;
* root attributes: format, format_version, kind and provenance (see SurfaceFile.create).

Writes are crash-safe: the file is created complete under a temporary name and
renamed; afterwards only the pre-allocated value arrays change, each flush opening
and closing the file, so a killed process leaves a readable file that has lost
only the points in flight.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

import h5py
import numpy as np
import torch

from engine import __version__
from engine.numerics.directions import Basis, Direction
from engine.errors import LandscapeError

FORMAT = "landscape"
WRITE_ATTEMPTS = 8  # ~1.4 s of patience for a reader in this process to close the file
FORMAT_VERSION = 1
AXES = ("x", "y")
VALUE_DATASETS = ("train_loss", "train_acc", "test_loss", "test_acc")
# Attributes that decide the numbers: a file is resumed only if all of them match.
SETTINGS_KEYS = (
    "checkpoint_sha256", "model", "model_kwargs", "data_sha256", "loss", "metrics",
    "norm", "ignore", "seed", "directions", "directions_source_sha256", "line",
)


@dataclass
class Surface:
    """A surface read from disk (Landscape's or Li et al.'s format), ready to plot."""

    path: Path
    format: str  # "landscape" or "li2018"
    x: np.ndarray
    y: np.ndarray | None
    values: dict[str, np.ndarray]  # train_loss, train_acc, ...: shape (nx,) or (ny, nx)
    done: np.ndarray  # bool, same shape
    attrs: dict[str, Any] = field(default_factory=dict)
    trajectory: dict[str, np.ndarray] | None = None
    trajectory_names: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.done.shape

    @property
    def dimensions(self) -> int:
        return 1 if self.y is None else 2


def _json_attr(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _read_attrs(handle: h5py.File) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for key, value in handle.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        attrs[key] = value
    return attrs


def open_h5(path: str | Path, mode: str = "r") -> h5py.File:
    """Open an HDF5 file, turning every failure into one line that says what to do."""
    path = Path(path)
    if mode == "r" and not path.exists():
        raise LandscapeError(f"no such file: {path}")
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder, not an HDF5 file; name a .h5 file")
    try:
        # No HDF5 file locks: a file that a running job is writing can be looked at, and HDF5
        # refuses, within one process, to open a file twice with different locking flags (the
        # GUI reads while its job thread writes). One writer per file is the engine's own rule:
        # files are created atomically and only their value arrays change afterwards.
        return h5py.File(path, mode, locking=False)
    except OSError as exc:
        reason = str(exc).split("(")[-1].rstrip(")") if "(" in str(exc) else str(exc)
        reason = " ".join(reason.split())  # HDF5 errno texts span lines
        raise LandscapeError(
            f"{path} is not a readable HDF5 file ({reason.strip()}); it may be corrupt or still being written: "
            "delete it, or pass --overwrite to recompute"
        ) from exc


def is_landscape_file(path: str | Path) -> bool:
    with open_h5(path) as handle:
        return handle.attrs.get("format") in (FORMAT, FORMAT.encode())


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
    except OSError as exc:
        raise LandscapeError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_directions(handle: h5py.File, directions: list[Direction]) -> None:
    group = handle.create_group("directions")
    for axis, direction in zip(AXES, directions):
        axis_group = group.create_group(axis)
        for name, tensor in direction.items():
            axis_group.create_dataset(name, data=tensor.detach().cpu().float().numpy())


def _write_trajectory(handle: h5py.File, trajectory: Mapping[str, np.ndarray], names: list[str]) -> None:
    group = handle.create_group("trajectory")
    group.create_dataset("x", data=np.asarray(trajectory["x"], dtype=np.float64))
    group.create_dataset("y", data=np.asarray(trajectory["y"], dtype=np.float64))
    group.create_dataset("names", data=np.array(names, dtype=h5py.string_dtype()))


class SurfaceFile:
    """Creates a Landscape surface file and writes its values as they come in."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- creation ---------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        x: np.ndarray,
        y: np.ndarray | None,
        metrics: list[str],
        basis: Basis,
        attrs: Mapping[str, Any],
    ) -> "SurfaceFile":
        """Write a complete, empty surface file atomically (temp file + rename)."""
        path = Path(path)
        if path.is_dir():
            raise LandscapeError(f"--out {path} is a folder; name a .h5 file")
        if len(basis.directions) != (1 if y is None and not attrs.get("line") else 2):
            raise LandscapeError("internal: the number of directions does not match the grid")
        shape = (len(x),) if y is None else (len(y), len(x))
        root = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": "surface",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "engine_version": __version__,
            "dimensions": 1 if y is None else 2,
            "metrics": ",".join(metrics),
            "norm": basis.norm,
            "ignore": basis.ignore,
            "directions": basis.kind,
            "directions_source": basis.source or "",
            **attrs,
        }
        if basis.explained_variance_ratio is not None:
            root["explained_variance_ratio"] = list(basis.explained_variance_ratio)
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
            for key, value in root.items():
                handle.attrs[key] = _attr_value(value)
            handle.create_dataset("xcoordinates", data=np.asarray(x, dtype=np.float64))
            if y is not None:
                handle.create_dataset("ycoordinates", data=np.asarray(y, dtype=np.float64))
            for metric in metrics:
                # Contiguous and allocated now: later writes touch only raw data.
                handle.create_dataset(f"train_{metric}", data=np.full(shape, np.nan, dtype=np.float64))
            handle.create_dataset("done", data=np.zeros(shape, dtype=np.uint8))
            _write_directions(handle, basis.directions)
            if basis.trajectory is not None:
                _write_trajectory(handle, basis.trajectory, basis.trajectory_names)
        return cls(path)

    # -- incremental writes -------------------------------------------------------------
    def write_values(self, values: Mapping[str, np.ndarray], done: np.ndarray, attrs: Mapping[str, Any] | None = None) -> None:
        """Store the whole value arrays, then the done mask (so done never runs ahead of values).

        A reader in this process holding the file open for a moment (HDF5 refuses a second,
        writable open then) is waited for, a few times, before the error is raised.
        """
        for attempt in range(WRITE_ATTEMPTS):
            try:
                handle = open_h5(self.path, "r+")
                break
            except LandscapeError:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        with handle:
            for metric, array in values.items():
                handle[f"train_{metric}"][...] = array.reshape(handle[f"train_{metric}"].shape)
            handle.flush()
            handle["done"][...] = done.reshape(handle["done"].shape).astype(np.uint8)
            for key, value in (attrs or {}).items():
                handle.attrs[key] = value


def settings_of(path: str | Path) -> dict[str, Any]:
    with open_h5(path) as handle:
        return _read_attrs(handle)


def read_directions(path: str | Path) -> list[Direction]:
    """The direction tensors of a Landscape surface file, x first."""
    with open_h5(path) as handle:
        if "directions" not in handle:
            raise LandscapeError(f"{path} holds no directions (is it a Landscape surface file?)")
        directions = []
        for axis in AXES:
            if axis in handle["directions"]:
                group = handle["directions"][axis]
                tensors: Direction = {}
                group.visititems(
                    lambda name, obj: tensors.__setitem__(name, torch.from_numpy(obj[()]))
                    if isinstance(obj, h5py.Dataset) else None
                )
                directions.append(tensors)
        if not directions:
            raise LandscapeError(f"{path} has an empty directions group")
        return directions


def read_surface(path: str | Path) -> Surface:
    """Read a Landscape surface file, or a surface file from Li et al.'s loss-landscape code."""
    path = Path(path)
    with open_h5(path) as handle:
        attrs = _read_attrs(handle)
        if "xcoordinates" not in handle:
            raise LandscapeError(f"{path} is an HDF5 file but not a surface file (no xcoordinates)")
        x = np.asarray(handle["xcoordinates"][()], dtype=np.float64).reshape(-1)
        y = np.asarray(handle["ycoordinates"][()], dtype=np.float64).reshape(-1) if "ycoordinates" in handle else None
        shape = (len(x),) if y is None else (len(y), len(x))
        raw = {name: np.asarray(handle[name][()], dtype=np.float64) for name in VALUE_DATASETS if name in handle}
        if not raw:
            raise LandscapeError(f"{path} holds no loss values (no train_loss or test_loss)")
        for name, array in raw.items():
            if array.size != int(np.prod(shape)):
                raise LandscapeError(f"{path}: {name} has {array.size} values but the coordinates make {shape}")
        if attrs.get("format") == FORMAT:
            version = attrs.get("format_version")
            if version != FORMAT_VERSION:
                raise LandscapeError(f"{path} has format_version {version}; this Landscape reads {FORMAT_VERSION}: upgrade")
            values = {name: array.reshape(shape) for name, array in raw.items()}
            done = np.asarray(handle["done"][()]).astype(bool).reshape(shape)
            trajectory, names = None, []
            if "trajectory" in handle:
                trajectory = {axis: np.asarray(handle["trajectory"][axis][()]) for axis in AXES}
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in handle["trajectory"]["names"][()]]
            return Surface(path, FORMAT, x, y, values, done, attrs, trajectory, names)
    # Li et al. fill a meshgrid(x, y) raveled (y-major) array of shape (nx, ny), start
    # from -1 and write each point's value once: the flat order is (ny, nx), whatever
    # the stored shape says, and values <= 0 are points they never computed.
    values = {name: array.ravel().reshape(shape) for name, array in raw.items()}
    reference = values.get("train_loss", values.get("test_loss"))
    done = reference > 0
    for array in values.values():
        array[~done] = np.nan
    attrs.setdefault("kind", "surface")
    return Surface(path, "li2018", x, y, values, done, attrs)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _attr_value(value: Any) -> Any:
    """An attribute as read by _read_attrs, back into what h5py stores (lists were arrays)."""
    if isinstance(value, dict):
        return _json_attr(value)
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    return "" if value is None else value


def write_surface(
    path: str | Path,
    surface: Surface,
    directions: list[dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Write any :class:`Surface` (Landscape's or Li et al.'s, as read_surface returns it) as a Landscape file.

    The file has the layout SurfaceFile.create writes (format_version 1): coordinates,
    every value dataset of ``surface.values``, ``done``, ``directions/x|y/<name>``
    (from ``directions`` or, when not given, copied from a Landscape source file that
    has them), the PCA trajectory, and the source's attributes with ``format`` and
    ``format_version`` set. A file converted from Li et al.'s format also gets
    ``converted_from`` = JSON ``{"format": "li2018", "path": <source>}`` and the
    attributes a Landscape file always has (kind, dimensions, metrics, created,
    engine_version) when missing. Written atomically (temporary file in the same
    folder, then renamed); refuses to overwrite the file the surface was read from.
    """
    path = Path(path)
    source = Path(surface.path)
    if _same_file(path, source):
        raise LandscapeError(f"{path} is the file this surface was read from; write the copy under another name")
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder; name a .h5 file")
    if directions is not None and len(directions) != surface.dimensions:
        raise LandscapeError(
            f"internal: {len(directions)} directions for a {surface.dimensions}D surface"
        )
    shape = surface.shape
    for name, array in surface.values.items():
        if np.shape(array) != shape:
            raise LandscapeError(f"internal: {name} has shape {np.shape(array)}, the grid is {shape}")

    attrs: dict[str, Any] = dict(surface.attrs)
    if surface.format != FORMAT:
        attrs.setdefault("converted_from", {"format": surface.format, "path": str(source.resolve())})
        attrs.setdefault("kind", "surface")
        attrs.setdefault("dimensions", surface.dimensions)
        metrics = [name[len("train_"):] for name in surface.values if name.startswith("train_")]
        attrs.setdefault("metrics", ",".join(metrics))
        attrs.setdefault("created", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        attrs.setdefault("engine_version", __version__)
    attrs["format"] = FORMAT
    attrs["format_version"] = FORMAT_VERSION

    copy_directions = directions is None and surface.format == FORMAT and source.is_file()
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        for key, value in attrs.items():
            handle.attrs[key] = _attr_value(value)
        handle.create_dataset("xcoordinates", data=np.asarray(surface.x, dtype=np.float64))
        if surface.y is not None:
            handle.create_dataset("ycoordinates", data=np.asarray(surface.y, dtype=np.float64))
        for name, array in surface.values.items():
            handle.create_dataset(name, data=np.asarray(array, dtype=np.float64))
        handle.create_dataset("done", data=np.asarray(surface.done).astype(np.uint8))
        if directions is not None:
            _write_directions(handle, directions)
        elif copy_directions:
            with open_h5(source) as src:
                if "directions" in src:
                    src.copy(src["directions"], handle, "directions")
        if surface.trajectory is not None:
            _write_trajectory(handle, surface.trajectory, surface.trajectory_names)
    return path
