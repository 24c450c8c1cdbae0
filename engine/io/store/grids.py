"""The grid schema: surfaces and slice lines (format_version 1, Li et al.-compatible names).

* ``xcoordinates`` (nx,), ``ycoordinates`` (ny,) for 2D surfaces;
* ``train_loss`` and, for classification, ``train_acc`` (percent): shape (nx,) in
  1D and (ny, nx) in 2D, ``train_loss[j, i]`` being the value at
  (``xcoordinates[i]``, ``ycoordinates[j]``); NaN/inf are real results;
* ``done``: uint8 mask of the same shape marking computed points;
* ``directions/x/<name>``, ``directions/y/<name>``: the direction tensors (float32),
  each axis with the ``sha256`` of its tensors (:mod:`engine.io.store.tensors`);
* ``trajectory/x``, ``trajectory/y``, ``trajectory/names`` for PCA surfaces;
* ``overlay/points`` (P, 2) with ``overlay/point_names``, and ``overlay/lines/<name>``
  (M, 2): marks and polylines in the plane's coordinates (a mode-connectivity plane's
  endpoints, bend, straight segment and curve);
* root attributes: format, format_version, kind and provenance.

Li et al.'s own files (meshgrid ravel order, unfinished points <= 0) read as well.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

import h5py
import numpy as np
import torch

from engine import __version__
from engine.errors import LandscapeError
from engine.io.store.files import (
    FORMAT, FORMAT_VERSION, ArraySpec, Layout, atomic_path, attr_value, damaged, dataset, open_h5, read_attrs,
    same_file, set_placeholder, write_error,
)
from engine.io.store.tensors import TensorSet, read_tensor_group, write_tensor_group

KIND = "surface"
AXES = ("x", "y")
VALUE_DATASETS = ("train_loss", "train_acc", "test_loss", "test_acc")
WRITE_ATTEMPTS = 8  # ~1.4 s of patience for a reader in this process to close the file
STRATEGY_WIDTH = 16  # bytes kept for evaluation_strategy, decided after creation
ROW_BLOCK = 1 << 20  # points read at a time when scanning a grid's values


@dataclass
class Overlay:
    """Named points and polylines drawn over a surface, in its (x, y) coordinates."""

    points: dict[str, tuple[float, float]]  # "A", "B", "bend 1", ...
    lines: dict[str, np.ndarray]  # "straight", "curve": (M, 2) arrays


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
    overlay: Overlay | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.done.shape

    @property
    def dimensions(self) -> int:
        return 1 if self.y is None else 2


def grid_shape(nx: int, ny: int | None) -> tuple[int, ...]:
    return (nx,) if ny is None else (ny, nx)


def grid_nbytes(points: int, metrics: int) -> int:
    """Bytes of a grid's value arrays and done mask: what must fit on disk before anything else."""
    return points * (8 * metrics + 1)


def grid_layout(
    *,
    x: np.ndarray,
    y: np.ndarray | None,
    metrics: list[str],
    directions: list[Mapping[str, torch.Tensor]],
    attrs: Mapping[str, Any],
    trajectory: Mapping[str, np.ndarray] | None = None,
    trajectory_names: list[str] | None = None,
    overlay: Overlay | None = None,
) -> Layout:
    """A new, empty grid file: coordinates, NaN values, an empty done mask, directions, trajectory."""
    shape = grid_shape(len(x), None if y is None else len(y))
    arrays: dict[str, np.ndarray | ArraySpec] = {"xcoordinates": np.asarray(x, dtype=np.float64)}
    if y is not None:
        arrays["ycoordinates"] = np.asarray(y, dtype=np.float64)
    for metric in metrics:
        arrays[f"train_{metric}"] = ArraySpec(shape, np.float64, np.nan)
    arrays["done"] = ArraySpec(shape, np.uint8, 0)
    if trajectory is not None:
        arrays["trajectory/x"] = np.asarray(trajectory["x"], dtype=np.float64)
        arrays["trajectory/y"] = np.asarray(trajectory["y"], dtype=np.float64)
        arrays["trajectory/names"] = np.array(list(trajectory_names or []), dtype=h5py.string_dtype())
    if overlay is not None:
        arrays.update(overlay_arrays(overlay))
    root = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "engine_version": __version__,
        "dimensions": 1 if y is None else 2,
        "metrics": ",".join(metrics),
        **attrs,
    }
    members = {axis: {n: t.detach().cpu().float() for n, t in d.items()} for axis, d in zip(AXES, directions)}
    return Layout(kind=KIND, attrs=root, arrays=arrays, tensors={"directions": members},
                  placeholders={"evaluation_strategy": STRATEGY_WIDTH})


class GridWriter:
    """Writes computed points into an existing grid file: values first, then their done flags.

    Points are written by element selection, so a flush costs what it writes, not the
    size of the grid, and nothing of the grid needs to be held in memory.
    """

    def __init__(self, path: str | Path, datasets: list[str], done: str = "done") -> None:
        self.path = Path(path)
        self.datasets = list(datasets)  # "train_loss", "train_acc"
        self.done = done  # the mask the written points are flagged in (a path's baselines have their own)
        self._pending: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        self._attrs: dict[str, str] = {}

    @property
    def pending(self) -> int:
        return sum(len(indices) for indices, _ in self._pending)

    def put(self, indices: np.ndarray, values: Mapping[str, np.ndarray]) -> None:
        """Queue flat indices (j * nx + i) and their values until the next :meth:`flush`."""
        self._pending.append((np.asarray(indices, dtype=np.int64),
                              {d: np.asarray(values[d], dtype=np.float64) for d in self.datasets}))

    def set_strategy(self, strategy: str) -> None:
        self._attrs["evaluation_strategy"] = strategy

    def flush(self) -> None:
        if not self._pending and not self._attrs:
            return
        indices = np.concatenate([i for i, _ in self._pending]) if self._pending else np.zeros(0, np.int64)
        order = np.argsort(indices, kind="stable")
        indices = indices[order]
        values = {d: np.concatenate([v[d] for _, v in self._pending])[order] for d in self.datasets} \
            if self._pending else {}
        try:
            with self._open() as handle:
                for key, value in self._attrs.items():
                    set_placeholder(handle, key, value)
                if len(indices):
                    for name in self.datasets:
                        _write_points(handle[name], indices, values[name])
                    handle.flush()  # values reach the file before the flags that say they are there
                    _write_points(handle[self.done], indices, np.ones(len(indices), dtype=np.uint8))
        except (OSError, RuntimeError) as exc:
            raise write_error(self.path, exc) from exc
        self._pending.clear()
        self._attrs.clear()

    def _open(self) -> h5py.File:
        """Open for writing; a reader in this process holding the file a moment is waited for."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return open_h5(self.path, "r+")
            except LandscapeError:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")


def _write_points(target: h5py.Dataset, flat: np.ndarray, values: np.ndarray) -> None:
    coords = np.stack(np.unravel_index(flat, target.shape), axis=1).astype(np.uint64)
    space = target.id.get_space()
    space.select_elements(coords)
    memory = h5py.h5s.create_simple((len(flat),))
    target.id.write(memory, space, np.ascontiguousarray(values, dtype=target.dtype))


def overlay_arrays(overlay: Overlay) -> dict[str, np.ndarray]:
    """The datasets that store an overlay (see the module docstring)."""
    arrays = {"overlay/points": np.array(list(overlay.points.values()), dtype=np.float64).reshape(-1, 2),
              "overlay/point_names": np.array(list(overlay.points), dtype=h5py.string_dtype())}
    for name, line in overlay.lines.items():
        arrays[f"overlay/lines/{name}"] = np.asarray(line, dtype=np.float64).reshape(-1, 2)
    return arrays


def _read_overlay(handle: h5py.File, path: Path) -> Overlay | None:
    if "overlay" not in handle:
        return None
    points = np.asarray(dataset(handle, "overlay/points", path, dims=2)[()], dtype=np.float64)
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in handle["overlay/point_names"][()]] \
        if "overlay/point_names" in handle else []
    if points.shape[1:] != (2,) or len(names) != len(points):
        raise damaged(path, "overlay/points and overlay/point_names do not match")
    lines = {}
    if "overlay/lines" in handle:
        for name in handle["overlay/lines"]:
            line = np.asarray(dataset(handle, f"overlay/lines/{name}", path, dims=2)[()], dtype=np.float64)
            if line.shape[1:] != (2,):
                raise damaged(path, f"overlay/lines/{name} is not a list of (x, y) points")
            lines[name] = line
    return Overlay({n: (float(p[0]), float(p[1])) for n, p in zip(names, points)}, lines)


# -- reading ---------------------------------------------------------------------------------
def read_directions(path: str | Path) -> list[TensorSet]:
    """The direction tensors of a Landscape surface file, x first (checked against their digests)."""
    members = read_tensor_group(path, "directions", list(AXES))
    if not members:
        raise LandscapeError(f"{path} has no directions (is it a Landscape surface file?)")
    return [members[axis] for axis in AXES if axis in members]


def read_axes(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A grid file's x (and y) coordinates, without reading its values."""
    with open_h5(path) as handle:
        x = np.asarray(dataset(handle, "xcoordinates", path)[()], dtype=np.float64).reshape(-1)
        y = np.asarray(dataset(handle, "ycoordinates", path)[()], dtype=np.float64).reshape(-1) \
            if "ycoordinates" in handle else None
    return x, y


def read_done(path: str | Path) -> np.ndarray:
    """The flat done mask of a Landscape grid file (bool), without reading its values."""
    with open_h5(path) as handle:
        return np.asarray(dataset(handle, "done", path)[()]).astype(bool).reshape(-1)


def value_ranges(path: str | Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """min, max (finite values) and count of non-finite values of computed points, read in blocks."""
    ranges = {n: {"min": None, "max": None, "nonfinite": 0} for n in names}
    for done, blocks in _blocks(path, names):
        for name, block in blocks.items():
            picked = block[done]
            finite = picked[np.isfinite(picked)]
            entry = ranges[name]
            entry["nonfinite"] += int(picked.size - finite.size)
            if finite.size:
                low, high = float(finite.min()), float(finite.max())
                entry["min"] = low if entry["min"] is None else min(entry["min"], low)
                entry["max"] = high if entry["max"] is None else max(entry["max"], high)
    return ranges


def _blocks(path: str | Path, names: list[str]) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(done, values) over about ROW_BLOCK points at a time, whole rows of a 2D grid."""
    with open_h5(path) as handle:
        done = dataset(handle, "done", path)
        arrays = {n: dataset(handle, n, path) for n in names}
        per_row = int(np.prod(done.shape[1:], dtype=np.int64))
        step = max(1, ROW_BLOCK // per_row)
        for start in range(0, done.shape[0], step):
            rows = slice(start, start + step)
            yield done[rows].astype(bool).ravel(), {n: a[rows].ravel() for n, a in arrays.items()}


def read_surface(path: str | Path) -> Surface:
    """Read a Landscape surface file, or a surface file from Li et al.'s loss-landscape code."""
    path = Path(path)
    with open_h5(path) as handle:
        attrs = read_attrs(handle)
        if "xcoordinates" not in handle:
            if attrs.get("format") == FORMAT:
                raise damaged(path, "it has no xcoordinates")
            raise LandscapeError(f"{path} is an HDF5 file but not a surface file (no xcoordinates)")
        x = np.asarray(dataset(handle, "xcoordinates", path)[()], dtype=np.float64).reshape(-1)
        y = np.asarray(dataset(handle, "ycoordinates", path)[()], dtype=np.float64).reshape(-1) \
            if "ycoordinates" in handle else None
        if x.size == 0 or (y is not None and y.size == 0):
            raise damaged(path, "its coordinates are empty")
        shape = grid_shape(len(x), None if y is None else len(y))
        raw = {name: np.asarray(dataset(handle, name, path)[()], dtype=np.float64)
               for name in VALUE_DATASETS if name in handle}
        if not raw:
            raise LandscapeError(f"{path} holds no loss values (no train_loss or test_loss)")
        for name, array in raw.items():
            if array.size != int(np.prod(shape)):
                raise damaged(path, f"{name} has {array.size} values but the coordinates make {shape}")
        if attrs.get("format") == FORMAT:
            return _landscape_surface(path, handle, attrs, x, y, shape, raw)
    return _li_surface(path, attrs, x, y, shape, raw)


def _landscape_surface(path: Path, handle: h5py.File, attrs: dict[str, Any], x: np.ndarray, y: np.ndarray | None,
                       shape: tuple[int, ...], raw: dict[str, np.ndarray]) -> Surface:
    version = attrs.get("format_version")
    if version != FORMAT_VERSION:
        raise LandscapeError(f"{path} has format_version {version}; this Landscape reads {FORMAT_VERSION}: upgrade")
    done = np.asarray(dataset(handle, "done", path)[()])
    if done.size != int(np.prod(shape)):
        raise damaged(path, f"done has {done.size} flags but the coordinates make {shape}")
    values = {name: array.reshape(shape) for name, array in raw.items()}
    trajectory, names = None, []
    if "trajectory" in handle:
        trajectory = {axis: np.asarray(dataset(handle, f"trajectory/{axis}", path)[()], dtype=np.float64)
                      for axis in AXES}
        if "trajectory/names" in handle:
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in handle["trajectory/names"][()]]
    return Surface(path, FORMAT, x, y, values, done.astype(bool).reshape(shape), attrs, trajectory, names,
                   _read_overlay(handle, path))


def _li_surface(path: Path, attrs: dict[str, Any], x: np.ndarray, y: np.ndarray | None, shape: tuple[int, ...],
                raw: dict[str, np.ndarray]) -> Surface:
    """Li et al. fill a meshgrid(x, y) raveled (y-major) array of shape (nx, ny), start from -1
    and write each point's value once: the flat order is (ny, nx), whatever the stored shape
    says, and values <= 0 are points they never computed."""
    values = {name: array.ravel().reshape(shape) for name, array in raw.items()}
    reference = values.get("train_loss", values.get("test_loss"))
    done = reference > 0
    for array in values.values():
        array[~done] = np.nan
    attrs.setdefault("kind", KIND)
    return Surface(path, "li2018", x, y, values, done, attrs)


# -- converting -------------------------------------------------------------------------------
def write_surface(path: str | Path, surface: Surface, directions: list[Mapping[str, torch.Tensor]] | None = None) -> Path:
    """Write any :class:`Surface` (Landscape's or Li et al.'s, as read_surface returns it) as a Landscape file.

    The file has the layout a surface job writes: coordinates, every value dataset of
    ``surface.values``, ``done``, ``directions/x|y/<name>`` (from ``directions`` or,
    when not given, copied from a Landscape source file that has them), the PCA
    trajectory, and the source's attributes with ``format`` and ``format_version``
    set. A file converted from Li et al.'s format also gets ``converted_from`` = JSON
    ``{"format": "li2018", "path": <source>}`` and the attributes a Landscape file
    always has (kind, dimensions, metrics, created, engine_version) when missing.
    Written atomically; refuses to overwrite the file the surface was read from.
    """
    path = Path(path)
    source = Path(surface.path)
    if same_file(path, source):
        raise LandscapeError(f"{path} is the file this surface was read from; write the copy under another name")
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder; name a .h5 file")
    if directions is not None and len(directions) != surface.dimensions:
        raise LandscapeError(f"internal: {len(directions)} directions for a {surface.dimensions}D surface")
    for name, array in surface.values.items():
        if np.shape(array) != surface.shape:
            raise LandscapeError(f"internal: {name} has shape {np.shape(array)}, the grid is {surface.shape}")

    attrs: dict[str, Any] = dict(surface.attrs)
    if surface.format != FORMAT:
        attrs.setdefault("converted_from", {"format": surface.format, "path": str(source.resolve())})
        attrs.setdefault("kind", KIND)
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
            handle.attrs[key] = attr_value(value)
        handle.create_dataset("xcoordinates", data=np.asarray(surface.x, dtype=np.float64))
        if surface.y is not None:
            handle.create_dataset("ycoordinates", data=np.asarray(surface.y, dtype=np.float64))
        for name, array in surface.values.items():
            handle.create_dataset(name, data=np.asarray(array, dtype=np.float64))
        handle.create_dataset("done", data=np.asarray(surface.done).astype(np.uint8))
        if directions is not None:
            write_tensor_group(handle, "directions",
                               {axis: {n: t.detach().cpu().float() for n, t in d.items()}
                                for axis, d in zip(AXES, directions)})
        elif copy_directions:
            with open_h5(source) as src:
                if "directions" in src:
                    src.copy(src["directions"], handle, "directions")
        if surface.trajectory is not None:
            group = handle.create_group("trajectory")
            group.create_dataset("x", data=np.asarray(surface.trajectory["x"], dtype=np.float64))
            group.create_dataset("y", data=np.asarray(surface.trajectory["y"], dtype=np.float64))
            group.create_dataset("names", data=np.array(surface.trajectory_names, dtype=h5py.string_dtype()))
        if surface.overlay is not None:
            for name, array in overlay_arrays(surface.overlay).items():
                handle.create_dataset(name, data=array)
    return path

