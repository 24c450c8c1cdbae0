"""Exporting a surface's grid: HDF5 (Landscape's format), CSV, or ParaView PolyData (.vtp).

``export_grid(surface, path)`` picks the format from the suffix of ``path``:

* ``.h5`` / ``.hdf5``: :func:`engine.io.store.write_surface` (every value dataset,
  ``done``, directions, trajectory, attributes).
* ``.csv``: :func:`write_csv`. A header ``x,y,<value datasets...>,done`` (``x,...`` in
  1D), then one row per grid point, x varying fastest (row ``j * nx + i`` is
  (x[i], y[j])). Floats are written with Python's ``repr``: the shortest text that
  reads back as exactly the same float64. A point that was not computed
  (``done`` = 0) has *empty* value fields; a computed point whose value is NaN or
  infinite has ``nan`` / ``inf`` / ``-inf`` (so "missing" and "NaN" stay distinct,
  as in the HDF5 file). ``done`` is ``0`` or ``1``. Every value dataset is written;
  ``metric`` does not apply.
* ``.vtp``: :func:`write_vtp`, the ParaView XML PolyData that Li et al.'s ``h52vtp.py``
  writes, in ASCII: points (x, y, z) with z = ``metric``, clipped at ``zmax`` and then
  log10'd when asked (Li et al. take ln(z + 0.1); we take log10(z) so the height
  reads as orders of magnitude); a 2D surface is a quad between every four grid
  neighbours, a 1D surface is a polyline at (x, 0, z). Only points that were computed
  and whose value and z are finite become points; quads (and line segments) touching
  any other point are left out, so a partial or diverged grid has holes, never
  spikes or NaN coordinates. Point data: ``zvalue`` (the height, the active scalars,
  as in Li et al.) and the raw ``metric`` values under its own name; 2D cell data:
  ``averaged zvalue`` (mean height of each quad's corners, as in Li et al.).
  All numbers are Float64/Int64 written with ``repr`` (exact).

Every writer is atomic (temporary file in the same folder, then renamed) and refuses
to overwrite the file the surface was read from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from engine.errors import LandscapeError
from engine.io.store import Surface, atomic_path, same_file, write_surface

HDF5_SUFFIXES = (".h5", ".hdf5")
SUFFIXES = HDF5_SUFFIXES + (".csv", ".vtp")


def export_grid(
    surface: Surface,
    path: str | Path,
    metric: str = "train_loss",
    *,
    log: bool = False,
    zmax: float | None = None,
) -> Path:
    """Write ``surface`` to ``path`` in the format its suffix names (.h5/.hdf5, .csv or .vtp).

    ``metric``, ``log`` and ``zmax`` shape the .vtp height; .h5 and .csv carry every
    value dataset unchanged, so ``log``/``zmax`` with them are an error (``metric``
    is ignored).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise LandscapeError(
            f"cannot export to '{path.name}': name a file ending in {', '.join(SUFFIXES)} "
            "(HDF5 surface file, CSV table, or ParaView .vtp)"
        )
    if suffix == ".vtp":
        return write_vtp(surface, path, metric, log=log, zmax=zmax)
    if log or zmax is not None:
        raise LandscapeError(f"--log and --zmax shape the .vtp height only; {suffix} files keep the values as they are")
    if suffix == ".csv":
        return write_csv(surface, path)
    return write_surface(path, surface)


# -- CSV ------------------------------------------------------------------------------------
def write_csv(surface: Surface, path: str | Path) -> Path:
    """One row per grid point, x fastest; see the module docstring for the conventions."""
    path = _check_target(surface, Path(path), ".csv")
    done = np.asarray(surface.done, dtype=bool).ravel()
    nx = len(surface.x)
    columns: list[list[str]] = []
    header = ["x"]
    if surface.y is None:
        columns.append(_reprs(surface.x))
    else:
        ny = len(surface.y)
        columns.append(_reprs(np.tile(np.asarray(surface.x, dtype=np.float64), ny)))
        columns.append(_reprs(np.repeat(np.asarray(surface.y, dtype=np.float64), nx)))
        header.append("y")
    missing = np.flatnonzero(~done).tolist()
    for name, values in surface.values.items():
        column = _reprs(values)
        for k in missing:
            column[k] = ""
        columns.append(column)
        header.append(name)
    columns.append(np.where(done, "1", "0").tolist())
    header.append("done")
    lines = [",".join(header)]
    lines.extend(map(",".join, zip(*columns)))
    _write_text(path, "\n".join(lines) + "\n")
    return path


# -- VTP ------------------------------------------------------------------------------------
def write_vtp(
    surface: Surface,
    path: str | Path,
    metric: str = "train_loss",
    *,
    log: bool = False,
    zmax: float | None = None,
) -> Path:
    """ParaView XML PolyData (ASCII) of one value dataset; see the module docstring."""
    path = _check_target(surface, Path(path), ".vtp")
    if metric not in surface.values:
        raise LandscapeError(
            f"{surface.path} has no {metric}; choose one of: {', '.join(surface.values)}"
        )
    values = np.asarray(surface.values[metric], dtype=np.float64).ravel()
    z = values.copy()
    if zmax is not None:
        z = np.minimum(z, float(zmax))
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log10(z)
    valid = np.asarray(surface.done, dtype=bool).ravel() & np.isfinite(values) & np.isfinite(z)
    if not valid.any():
        why = " (log10 needs values above 0)" if log else ""
        raise LandscapeError(f"{surface.path} has no computed, finite {metric} values to export{why}")
    new_index = np.cumsum(valid) - 1  # position of each valid grid point among the written points

    x = np.asarray(surface.x, dtype=np.float64)
    if surface.y is None:
        px, py = x[valid], np.zeros(int(valid.sum()))
        connectivity, offsets = _polylines(valid, new_index)
        cell_kind, cell_data = "Lines", None
    else:
        ny, nx = surface.shape
        xs, ys = np.meshgrid(x, np.asarray(surface.y, dtype=np.float64))
        px, py = xs.ravel()[valid], ys.ravel()[valid]
        grid_valid = valid.reshape(ny, nx)
        corners_ok = grid_valid[:-1, :-1] & grid_valid[:-1, 1:] & grid_valid[1:, 1:] & grid_valid[1:, :-1]
        jj, ii = np.nonzero(corners_ok)
        k = jj * nx + ii
        corners = np.stack([k, k + 1, k + nx + 1, k + nx], axis=1)  # counter-clockwise seen from +z
        connectivity = new_index[corners].ravel()
        offsets = 4 * np.arange(1, len(k) + 1)
        cell_kind, cell_data = "Polys", z[corners].mean(axis=1)
    pz = z[valid]
    n_points, n_cells = int(valid.sum()), len(offsets)
    counts = {"Verts": 0, "Lines": 0, "Strips": 0, "Polys": 0}
    counts[cell_kind] = n_cells

    parts = [
        '<?xml version="1.0"?>',
        '<VTKFile type="PolyData" version="1.0" byte_order="LittleEndian" header_type="UInt64">',
        "  <PolyData>",
        f'    <Piece NumberOfPoints="{n_points}" NumberOfVerts="0" NumberOfLines="{counts["Lines"]}" '
        f'NumberOfStrips="0" NumberOfPolys="{counts["Polys"]}">',
        '      <PointData Scalars="zvalue">',
        _data_array("Float64", "zvalue", 1, _reprs(pz), 6),
        _data_array("Float64", _xml_name(metric), 1, _reprs(values[valid]), 6),
        "      </PointData>",
    ]
    if cell_data is not None:
        parts += [
            '      <CellData Scalars="averaged zvalue">',
            _data_array("Float64", "averaged zvalue", 1, _reprs(cell_data), 6),
            "      </CellData>",
        ]
    parts += [
        "      <Points>",
        _data_array("Float64", "Points", 3, _reprs(np.stack([px, py, pz], axis=1)), 3),
        "      </Points>",
        f"      <{cell_kind}>",
        _data_array("Int64", "connectivity", 1, list(map(str, connectivity.tolist())), 4 if cell_kind == "Polys" else 8),
        _data_array("Int64", "offsets", 1, list(map(str, offsets.tolist())), 8),
        f"      </{cell_kind}>",
        "    </Piece>",
        "  </PolyData>",
        "</VTKFile>",
    ]
    _write_text(path, "\n".join(parts) + "\n")
    return path


def _polylines(valid: np.ndarray, new_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of consecutive valid points, each of two or more points, as VTK polylines."""
    starts = valid & ~np.concatenate([[False], valid[:-1]])
    run = np.cumsum(starts) - 1  # run number of each point (meaningful where valid)
    lengths = np.bincount(run[valid], minlength=int(starts.sum()))
    keep = lengths >= 2
    members = valid & keep[np.where(valid, run, 0)]
    return new_index[members], np.cumsum(lengths[keep])


# -- helpers --------------------------------------------------------------------------------
def _reprs(values: Iterable[float] | np.ndarray) -> list[str]:
    """Exact (shortest round-trip) decimal text of each float64."""
    return list(map(repr, np.asarray(values, dtype=np.float64).ravel().tolist()))


def _xml_name(name: str) -> str:
    return name.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _data_array(dtype: str, name: str, components: int, items: list[str], per_line: int) -> str:
    per_line *= components
    indent = "          "
    rows = [indent + " ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    head = f'        <DataArray type="{dtype}" Name="{name}" NumberOfComponents="{components}" format="ascii">'
    return "\n".join([head, *rows, "        </DataArray>"])


def _check_target(surface: Surface, path: Path, suffix: str) -> Path:
    if path.suffix.lower() != suffix:
        raise LandscapeError(f"internal: {path} does not end in {suffix}")
    if same_file(path, Path(surface.path)):
        raise LandscapeError(f"{path} is the file this surface was read from; export under another name")
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder; name a {suffix} file")
    return path


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
