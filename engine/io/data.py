"""Load the data a landscape is measured on, as two tensors that stay on the device.

Sources: ``.npz``, ``.pt`` (weights_only) or ``.h5`` files holding arrays ``x`` and
``y``; ``sample:NAME`` for Landscape's built-in data sets; and ``module:callable``
or ``file.py:callable`` returning ``(x, y)`` or a ``torch.utils.data.Dataset``.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import LandscapeError
from engine.io.references import one_line, resolve


@dataclass(frozen=True)
class DataSet:
    """Inputs and targets, plus what is needed to say where they came from."""

    x: torch.Tensor
    y: torch.Tensor
    reference: str
    sha256: str
    total_samples: int  # before any --max-samples subset

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> "DataSet":
        return DataSet(self.x.to(device), self.y.to(device), self.reference, self.sha256, self.total_samples)


def tensor_sha256(*tensors: torch.Tensor) -> str:
    """Hash of the values, shapes and dtypes: the same data hashes the same from any source."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return digest.hexdigest()


def load_data(reference: str, max_samples: int | None = None, subset_seed: int = 0) -> DataSet:
    """Load the data a reference names; ``max_samples`` takes a fixed, seeded subset."""
    x, y = _load_xy(reference)
    x, y = _as_tensor(x, "x", reference), _as_tensor(y, "y", reference)
    if x.shape[0] != y.shape[0]:
        raise LandscapeError(f"{reference}: x has {x.shape[0]} samples but y has {y.shape[0]}")
    if x.shape[0] == 0:
        raise LandscapeError(f"{reference} holds no samples")
    total = int(x.shape[0])
    if max_samples is not None:
        if max_samples < 1:
            raise LandscapeError("--max-samples must be at least 1")
        if max_samples < total:
            generator = torch.Generator().manual_seed(subset_seed)
            keep = torch.randperm(total, generator=generator)[:max_samples].sort().values
            x, y = x[keep], y[keep]
    return DataSet(x=x, y=y, reference=reference, sha256=tensor_sha256(x, y), total_samples=total)


def _load_xy(reference: str) -> tuple[Any, Any]:
    if reference.startswith("sample:"):
        return _load_sample(reference[len("sample:"):])
    path = Path(reference)
    suffix = path.suffix.lower()
    if suffix in {".npz", ".pt", ".pth", ".h5", ".hdf5"}:
        if path.is_dir():
            raise LandscapeError(f"{path} is a folder; pass a data file with arrays x and y")
        if not path.is_file():
            raise LandscapeError(f"no such data file: {path}")
        return {".npz": _load_npz, ".pt": _load_pt, ".pth": _load_pt, ".h5": _load_h5, ".hdf5": _load_h5}[suffix](path)
    if ":" in reference:
        return _load_callable(reference)
    raise LandscapeError(
        f"cannot read data '{reference}': use a .npz/.pt/.h5 file with arrays x and y, sample:NAME, or module:callable"
    )


def _load_sample(name: str) -> tuple[Any, Any]:
    from engine.builtin.datasets import load_dataset

    return load_dataset(name)


def _require_xy(keys, path: Path) -> None:
    missing = [k for k in ("x", "y") if k not in keys]
    if missing:
        raise LandscapeError(f"{path} has no array {' or '.join(missing)} (found: {', '.join(sorted(keys)) or 'nothing'})")


def _load_npz(path: Path) -> tuple[Any, Any]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            _require_xy(archive.files, path)
            return archive["x"], archive["y"]
    except (ValueError, OSError) as exc:
        if "Object arrays" in str(exc):
            reason = "it holds object arrays, which would need unpickling; save numeric arrays"
        elif "pickled" in str(exc):  # numpy's guess for any file that is neither a zip nor .npy
            reason = "it is not a numpy.savez archive"
        else:
            reason = one_line(exc) or type(exc).__name__
        raise LandscapeError(f"{path} is not a readable .npz file ({reason})") from exc


def _load_pt(path: Path) -> tuple[Any, Any]:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):  # a broken pickle stream, not a forbidden object
            raise LandscapeError(f"{path} is not a readable .pt file (it is damaged or not a torch.save file)") from exc
        raise LandscapeError(f"{path} needs arbitrary unpickling; save the data as plain tensors {{'x': ..., 'y': ...}}") from exc
    except Exception as exc:  # noqa: BLE001 - weights_only runs no code, so any failure means a damaged file
        raise LandscapeError(f"{path} is not a readable .pt file ({type(exc).__name__}: {one_line(exc, 200)})") from exc
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        return obj[0], obj[1]
    if isinstance(obj, dict):
        _require_xy(obj.keys(), path)
        return obj["x"], obj["y"]
    raise LandscapeError(f"{path} holds a {type(obj).__name__}; expected a dict with tensors x and y")


def _load_h5(path: Path) -> tuple[Any, Any]:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            _require_xy(handle.keys(), path)
            for name in ("x", "y"):
                if not isinstance(handle[name], h5py.Dataset):
                    raise LandscapeError(f"{path}: {name} is an HDF5 group, not an array")
            return handle["x"][()], handle["y"][()]
    except OSError as exc:
        raise LandscapeError(f"{path} is not a readable HDF5 file ({one_line(exc)})") from exc


def _load_callable(reference: str) -> tuple[Any, Any]:
    factory = resolve(reference)
    try:
        result = factory()
    except Exception as exc:  # noqa: BLE001 - user code
        raise LandscapeError(f"calling {reference} failed: {type(exc).__name__}: {one_line(exc)}") from exc
    if isinstance(result, (tuple, list)) and len(result) == 2:
        return result[0], result[1]
    if isinstance(result, torch.utils.data.Dataset):
        return _stack_dataset(result, reference)
    raise LandscapeError(f"{reference} returned a {type(result).__name__}; return (x, y) tensors or a Dataset")


def _stack_dataset(dataset: torch.utils.data.Dataset, reference: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Materialize a map-style Dataset once, so evaluation never loops over samples in Python."""
    try:
        n = len(dataset)  # type: ignore[arg-type]
    except TypeError as exc:
        raise LandscapeError(f"{reference} returned a Dataset without a length; return (x, y) tensors instead") from exc
    if n == 0:
        raise LandscapeError(f"{reference} returned an empty Dataset")
    loader = torch.utils.data.DataLoader(dataset, batch_size=min(max(n, 1), 1024), shuffle=False)
    xs, ys = [], []
    try:
        for batch in loader:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise LandscapeError(f"{reference}: each Dataset item must be (input, target)")
            xs.append(torch.as_tensor(batch[0]))
            ys.append(torch.as_tensor(batch[1]))
        return torch.cat(xs), torch.cat(ys)
    except LandscapeError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code, or items that do not stack
        raise LandscapeError(
            f"reading the Dataset from {reference} failed: {type(exc).__name__}: {one_line(exc)}"
        ) from exc


def _as_tensor(value: Any, name: str, reference: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        try:
            array = np.asarray(value)
        except Exception as exc:  # noqa: BLE001
            raise LandscapeError(f"{reference}: {name} is not an array ({one_line(exc)})") from exc
        if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise LandscapeError(f"{reference}: {name} has dtype {array.dtype}; expected numbers")
        if not array.dtype.isnative:  # e.g. big-endian arrays; torch only takes native byte order
            array = array.astype(array.dtype.newbyteorder("="))
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor
