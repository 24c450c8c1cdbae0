"""The store: the only code that reads or writes Landscape's HDF5 result files.

Every kind of result (surfaces and slice lines today; paths, spectra next) is one
HDF5 file with root attributes ``format="landscape"``, ``format_version``, ``kind``
and its provenance. The store provides what every kind builds on:

* :mod:`.files`: opening with one-line errors, atomic creation that survives a full
  disk, damaged-file checks, settings compared on resume;
* :mod:`.lock`: one writer per file, across processes;
* :mod:`.tensors`: groups of parameter-shaped tensors with a content digest each;
* :mod:`.logs`: preallocated, appendable tables for long jobs that resume;
* :mod:`.grids`: the grid schema of surfaces (Li et al.-compatible dataset names).
"""

from engine.io.store.files import (
    FORMAT, FORMAT_VERSION, ArraySpec, Layout, LogSpec, atomic_path, check_space, create_file, damaged, open_h5,
    read_attrs, same_file, settings_mismatch, settings_of,
)
from engine.io.store.grids import (
    AXES, VALUE_DATASETS, GridWriter, Overlay, Surface, grid_layout, grid_nbytes, grid_shape, read_axes, read_directions,
    read_done, read_surface, value_ranges, write_surface,
)
from engine.io.store.lock import WriterLock, writer_of
from engine.io.store.logs import LogTable, append_log, read_log
from engine.io.store.tensors import read_tensor_group, tensor_digest, tensor_group_digests

__all__ = [
    "AXES", "FORMAT", "FORMAT_VERSION", "VALUE_DATASETS", "ArraySpec", "GridWriter", "Layout", "LogSpec", "LogTable", "Overlay",
    "Surface", "WriterLock", "append_log", "atomic_path", "check_space", "create_file", "damaged", "grid_layout",
    "grid_nbytes", "grid_shape", "open_h5", "read_attrs", "read_axes", "read_directions", "read_done", "read_log",
    "read_surface", "read_tensor_group", "same_file", "settings_mismatch", "settings_of", "tensor_digest",
    "tensor_group_digests", "value_ranges", "write_surface", "writer_of",
]
