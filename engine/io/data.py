"""Load the data a landscape is measured on, as a data set that is read in chunks.

Sources: ``.npz``, ``.pt`` (weights_only) or ``.h5`` files holding arrays ``x`` and
``y``; ``sample:NAME`` for Landscape's built-in data sets; and ``module:callable``
or ``file.py:callable`` returning ``(x, y)`` or a ``torch.utils.data.Dataset``.

Data larger than memory is never loaded whole: ``.h5`` arrays are sliced, ``.pt``
files are memory-mapped when torch can, and a ``Dataset`` is read through a
``DataLoader`` (no shuffle, no workers). :func:`load_data` reads such a source once,
chunk by chunk, to hash it and to check it for NaN/inf; :class:`~engine.numerics.problem.Problem`
then keeps it on the device when it fits its memory budget and streams it otherwise.
"""

from __future__ import annotations

import hashlib
import pickle
import tempfile
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from engine.cancel import raise_if_cancelled
from engine.errors import LandscapeError
from engine.io.checkpoints import check_declared_sizes
from engine.io.references import one_line, resolve

# Rows per chunk when load_data hashes and checks a source: about this many bytes of x and y.
CHUNK_BYTES = 64 * 2**20

Chunk = tuple[torch.Tensor, torch.Tensor]


class Source(Protocol):
    """Where samples come from: consecutive chunks of (x, y) rows on the CPU, in order.

    ``keep`` (sorted sample indices) restricts the rows to a subset; chunk boundaries
    are then counted in kept rows.
    """

    def __len__(self) -> int: ...

    def chunks(self, rows: int, keep: np.ndarray | None) -> Iterator[Chunk]: ...


class DataSet:
    """Inputs and targets, where they came from, and a way to read them in chunks.

    ``DataSet(x, y, reference, sha256, total_samples)`` wraps tensors in memory;
    :func:`load_data` also makes data sets backed by a file or a ``Dataset`` that are
    read chunk by chunk (:meth:`chunks`) and never held whole. ``x`` and ``y`` read
    everything into memory: meant for small data and tests, not for streaming.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, reference: str, sha256: str, total_samples: int) -> None:
        self._setup(_Tensors(x, y), None, reference, sha256, total_samples, None)

    @classmethod
    def from_source(
        cls,
        source: Source,
        reference: str,
        sha256: str,
        total_samples: int,
        keep: np.ndarray | None = None,
        label_range: tuple[int, int] | None = None,
    ) -> DataSet:
        """A data set read chunk by chunk from ``source`` (rows ``keep`` of it, if given)."""
        data = cls.__new__(cls)
        data._setup(source, keep, reference, sha256, total_samples, label_range)
        return data

    def _setup(self, source: Source, keep: np.ndarray | None, reference: str, sha256: str, total_samples: int,
               label_range: tuple[int, int] | None) -> None:
        self._source, self._keep = source, keep
        self.reference = reference
        self.sha256 = sha256
        self.total_samples = int(total_samples)  # before any --max-samples subset
        self._label_range = label_range

    def __len__(self) -> int:
        return len(self._keep) if self._keep is not None else len(self._source)

    def chunks(self, rows: int) -> Iterator[Chunk]:
        """Consecutive chunks of ``rows`` samples (the last one shorter), as CPU tensors, in order."""
        return self._source.chunks(max(1, int(rows)), self._keep)

    def head(self, rows: int = 2) -> Chunk:
        """The first ``rows`` samples: shapes, dtypes and a probe input, without reading the rest."""
        return next(iter(self.chunks(rows)))

    @cached_property
    def _whole(self) -> Chunk:
        pieces = list(self.chunks(len(self)))
        return pieces[0] if len(pieces) == 1 else (torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces]))

    @property
    def x(self) -> torch.Tensor:
        """All inputs in memory (reads a streamed source whole)."""
        return self._whole[0]

    @property
    def y(self) -> torch.Tensor:
        """All targets in memory (reads a streamed source whole)."""
        return self._whole[1]

    def label_range(self) -> tuple[int, int]:
        """Smallest and largest target (class labels), from load_data's pass when there was one."""
        if self._label_range is None:
            ranges = [(int(y.min()), int(y.max())) for _, y in self.chunks(_rows_per_chunk(self._source, self._keep))
                      if y.numel()]
            self._label_range = (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else (0, 0)
        return self._label_range


def tensor_sha256(*tensors: torch.Tensor) -> str:
    """Hash of the values, shapes and dtypes: the same data hashes the same from any source."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(_header(t, t.shape[0] if t.dim() else 0))
        digest.update(_payload(t))
    return digest.hexdigest()


def _header(t: torch.Tensor, n: int) -> bytes:
    """What tensor_sha256 hashes before the values of a tensor of ``n`` rows shaped like ``t``."""
    shape = (n,) + tuple(t.shape[1:]) if t.dim() else ()
    return f"{t.dtype}{shape}".encode()


def _payload(t: torch.Tensor) -> bytes:
    t = t.detach().cpu().contiguous()
    return t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes()


def load_data(reference: str, max_samples: int | None = None, subset_seed: int = 0) -> DataSet:
    """Open the data a reference names; ``max_samples`` takes a fixed, seeded subset.

    The data is read once, chunk by chunk, to hash it (the same hash as
    :func:`tensor_sha256` of the whole tensors) and to refuse NaN/inf values.
    """
    source = _open(reference)
    total = len(source)
    if total == 0:
        raise LandscapeError(f"{reference} holds no samples")
    keep = None
    if max_samples is not None:
        if max_samples < 1:
            raise LandscapeError("--max-samples must be at least 1")
        if max_samples < total:
            generator = torch.Generator().manual_seed(subset_seed)
            keep = torch.randperm(total, generator=generator)[:max_samples].sort().values.numpy()
    sha256, label_range = _scan(source, keep, reference)
    return DataSet.from_source(source, reference, sha256, total, keep, label_range)


def _rows_per_chunk(source: Source, keep: np.ndarray | None) -> int:
    """Rows of about CHUNK_BYTES, from the size of the first sample."""
    x, y = next(iter(source.chunks(1, keep)))
    return max(1, CHUNK_BYTES // max(1, x.nbytes + y.nbytes))


def _scan(source: Source, keep: np.ndarray | None, reference: str) -> tuple[str, tuple[int, int] | None]:
    """One pass over the data: its sha256, its label range (integer y) and a NaN/inf check.

    x's bytes go straight into the digest; y's wait in a spooled file, because
    tensor_sha256 hashes all of x before y.
    """
    digest = hashlib.sha256()
    first: Chunk | None = None
    n = len(keep) if keep is not None else len(source)
    bad = {"x": [0, -1], "y": [0, -1]}  # count of non-finite values, first sample holding one
    low = high = None
    row = 0
    with tempfile.SpooledTemporaryFile(max_size=CHUNK_BYTES) as y_bytes:
        for x, y in source.chunks(_rows_per_chunk(source, keep), keep):
            raise_if_cancelled()  # a job closed while its large data set is read stops here
            if first is None:
                first = (x, y)
                digest.update(_header(x, n))
            elif x.shape[1:] != first[0].shape[1:] or y.shape[1:] != first[1].shape[1:] or (x.dtype, y.dtype) != (
                first[0].dtype, first[1].dtype
            ):
                raise LandscapeError(f"{reference}: samples differ in shape or dtype (sample {_sample(row, keep)} "
                                     f"has x {tuple(x.shape[1:])}, first had {tuple(first[0].shape[1:])})")
            digest.update(_payload(x))
            y_bytes.write(_payload(y))
            for name, t in (("x", x), ("y", y)):
                _count_nonfinite(t, row, bad[name])
            if not y.is_floating_point() and not y.is_complex() and y.numel():
                low = int(y.min()) if low is None else min(low, int(y.min()))
                high = int(y.max()) if high is None else max(high, int(y.max()))
            row += len(x)
        if first is None or row != n:
            raise LandscapeError(f"{reference}: read {row} samples but it says it holds {n}")
        problems = [
            f"{name} holds {count} NaN/inf values (first in sample {_sample(at, keep)})"
            for name, (count, at) in bad.items() if count
        ]
        if problems:
            raise LandscapeError(f"{reference}: {'; '.join(problems)}; clean the data or drop those samples")
        digest.update(_header(first[1], n))
        y_bytes.seek(0)
        while block := y_bytes.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest(), (low, high) if low is not None else None


def _count_nonfinite(t: torch.Tensor, row: int, tally: list[int]) -> None:
    if not (t.is_floating_point() or t.is_complex()) or not t.numel():
        return
    bad = ~torch.isfinite(t.reshape(len(t), -1))
    count = int(bad.sum())
    if count and tally[1] < 0:
        tally[1] = row + int(bad.any(dim=1).nonzero()[0, 0])
    tally[0] += count


def _sample(row: int, keep: np.ndarray | None) -> int:
    """The source's own number of a (possibly subset) row, so the user can find it."""
    return int(keep[row]) if keep is not None else row


# -- sources ------------------------------------------------------------------------------------


class _Tensors:
    """Tensors in memory, or memory-mapped from a ``.pt`` file (rows are read when sliced)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def chunks(self, rows: int, keep: np.ndarray | None) -> Iterator[Chunk]:
        n = len(keep) if keep is not None else len(self)
        for start in range(0, n, rows):
            if keep is None:
                yield self.x[start:start + rows], self.y[start:start + rows]
            else:
                index = torch.from_numpy(keep[start:start + rows])
                yield self.x[index], self.y[index]


class _H5:
    """Arrays ``x`` and ``y`` of an HDF5 file, sliced chunk by chunk (the file is reopened per pass)."""

    def __init__(self, path: Path, n: int) -> None:
        self.path, self.n = path, n

    def __len__(self) -> int:
        return self.n

    def chunks(self, rows: int, keep: np.ndarray | None) -> Iterator[Chunk]:
        import h5py

        reference = str(self.path)
        n = len(keep) if keep is not None else self.n
        with h5py.File(self.path, "r") as handle:
            x, y = handle["x"], handle["y"]
            for start in range(0, n, rows):
                index = slice(start, start + rows) if keep is None else keep[start:start + rows]
                yield _as_tensor(x[index], "x", reference), _as_tensor(y[index], "y", reference)


class _Items:
    """A map-style ``torch.utils.data.Dataset``, read through a DataLoader (no shuffle, no workers)."""

    def __init__(self, dataset: torch.utils.data.Dataset, reference: str, n: int) -> None:
        self.dataset, self.reference, self.n = dataset, reference, n

    def __len__(self) -> int:
        return self.n

    def chunks(self, rows: int, keep: np.ndarray | None) -> Iterator[Chunk]:
        dataset = self.dataset if keep is None else torch.utils.data.Subset(self.dataset, keep.tolist())
        loader = torch.utils.data.DataLoader(dataset, batch_size=rows, shuffle=False, num_workers=0)
        try:
            for batch in loader:
                if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                    raise LandscapeError(f"{self.reference}: each Dataset item must be (input, target)")
                yield torch.as_tensor(batch[0]), torch.as_tensor(batch[1])
        except LandscapeError:
            raise
        except Exception as exc:  # noqa: BLE001 - user code, or items that do not stack
            raise LandscapeError(
                f"reading the Dataset from {self.reference} failed: {type(exc).__name__}: {one_line(exc)}"
            ) from exc


# -- opening references -------------------------------------------------------------------------


def _open(reference: str) -> Source:
    if reference.startswith("sample:"):
        return _pair(_load_sample(reference[len("sample:"):]), reference)
    path = Path(reference)
    suffix = path.suffix.lower()
    if suffix in {".npz", ".pt", ".pth", ".h5", ".hdf5"}:
        if path.is_dir():
            raise LandscapeError(f"{path} is a folder; pass a data file with arrays x and y")
        if not path.is_file():
            raise LandscapeError(f"no such data file: {path}")
        if suffix in {".h5", ".hdf5"}:
            return _open_h5(path)
        return _pair(_load_npz(path) if suffix == ".npz" else _load_pt(path), reference)
    if ":" in reference:
        return _open_callable(reference)
    raise LandscapeError(
        f"cannot read data '{reference}': use a .npz/.pt/.h5 file with arrays x and y, sample:NAME, or module:callable"
    )


def _pair(xy: tuple[Any, Any], reference: str) -> _Tensors:
    x, y = _as_tensor(xy[0], "x", reference), _as_tensor(xy[1], "y", reference)
    if x.dim() == 0 or y.dim() == 0 or x.shape[0] != y.shape[0]:
        raise LandscapeError(f"{reference}: x has {_rows(x)} samples but y has {_rows(y)}")
    return _Tensors(x, y)


def _rows(t: torch.Tensor) -> str:
    return str(t.shape[0]) if t.dim() else "no sample axis (a scalar)"


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
    """x and y of a torch.save file; memory-mapped (rows read when used) unless it is a legacy file."""
    check_declared_sizes(path)  # a file declaring more than it holds is refused before torch allocates it
    try:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            obj = torch.load(str(path), map_location="cpu", weights_only=True)  # legacy (pre-zip) format
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


def _open_h5(path: Path) -> _H5:
    """Check an HDF5 file's x and y (presence, dtype, lengths) without reading their values."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            _require_xy(handle.keys(), path)
            for name in ("x", "y"):
                if not isinstance(handle[name], h5py.Dataset):
                    raise LandscapeError(f"{path}: {name} is an HDF5 group, not an array")
                if handle[name].ndim == 0:
                    raise LandscapeError(f"{path}: {name} is a scalar, not an array of samples")
                _as_tensor(handle[name][0:0], name, str(path))  # refuses non-numeric dtypes
            n, ny = handle["x"].shape[0], handle["y"].shape[0]
    except OSError as exc:
        raise LandscapeError(f"{path} is not a readable HDF5 file ({one_line(exc)})") from exc
    if n != ny:
        raise LandscapeError(f"{path}: x has {n} samples but y has {ny}")
    return _H5(path, int(n))


def _open_callable(reference: str) -> Source:
    factory = resolve(reference)
    try:
        result = factory()
    except Exception as exc:  # noqa: BLE001 - user code
        raise LandscapeError(f"calling {reference} failed: {type(exc).__name__}: {one_line(exc)}") from exc
    if isinstance(result, (tuple, list)) and len(result) == 2:
        return _pair((result[0], result[1]), reference)
    if isinstance(result, torch.utils.data.Dataset):
        try:
            n = len(result)  # type: ignore[arg-type]
        except TypeError as exc:
            raise LandscapeError(f"{reference} returned a Dataset without a length; return (x, y) tensors instead") from exc
        if n == 0:
            raise LandscapeError(f"{reference} returned an empty Dataset")
        return _Items(result, reference, int(n))
    raise LandscapeError(f"{reference} returned a {type(result).__name__}; return (x, y) tensors or a Dataset")


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
