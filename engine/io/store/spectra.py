"""The spectrum schema: eigenvalues, trace and spectral density of a Hessian at one point.

Root datasets (allocated at creation, NaN until computed):

* ``top_eigenvalues`` (k,) descending and ``bottom_eigenvalues`` (k,) ascending, with
  ``top_residuals`` / ``bottom_residuals`` (|H u - λ u|); ``eigen_done`` (1,) uint8;
* ``eigenvectors/top_<i>/<parameter>``, ``eigenvectors/bottom_<i>/<parameter>`` (when asked):
  unit eigenvectors keyed by parameter name, as any tensor group (digest per member);
* ``lanczos/basis`` (capacity, p): the Lanczos vectors so far, and ``logs/lanczos``
  (step, alpha, beta) its coefficients, one row per product: a resume continues from
  the last saved iteration (the basis is kept only up to ``BASIS_FILE_LIMIT`` bytes;
  larger models restart the iterations on resume);
* ``trace``, ``trace_stderr`` (1,) and ``logs/trace`` (index, sample): Hutchinson samples;
* ``ritz_values``, ``ritz_weights`` (n_v, m): stochastic Lanczos quadrature nodes and
  weights per probe, ``density_done`` (n_v,), and ``density_grid`` / ``density`` (G,) drawn
  at the ``sigma`` attribute (redraw at any other with :meth:`Spectrum.density_at`);
* ``hvp_count`` (1,): Hessian-vector products spent on the file, all runs;
* attributes: provenance, the request, ``hvp_method_used``, and ``results`` (JSON: the
  overparameterization report and every scalar ``--json`` prints), filled when a run ends.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np
import torch

from engine import __version__
from engine.errors import LandscapeError
from engine.io.store.files import (
    FORMAT, FORMAT_VERSION, ArraySpec, Layout, LogSpec, damaged, dataset, open_h5, read_attrs, set_placeholder,
    write_error,
)
from engine.io.store.logs import LogTable, append_log, read_log
from engine.io.store.tensors import TensorSet, overwrite_tensor_group, read_tensor_group
from engine.numerics.density import gaussian_density

KIND = "spectrum"
LANCZOS_COLUMNS = ("step", "alpha", "beta")
TRACE_COLUMNS = ("index", "sample")
RESULTS_WIDTH = 16384
HVP_METHOD_WIDTH = 32
BASIS_FILE_LIMIT = 256 * 2**20


@dataclass
class Spectrum:
    """A spectrum file, read: what ``engine.hessian`` returns and the app draws."""

    path: Path
    attrs: dict[str, Any]
    top_eigenvalues: np.ndarray
    top_residuals: np.ndarray
    bottom_eigenvalues: np.ndarray
    bottom_residuals: np.ndarray
    eigen_done: bool
    trace: float | None
    trace_stderr: float | None
    trace_samples: np.ndarray
    ritz_values: np.ndarray  # (n_v, m), NaN past a probe's last node and for probes not done
    ritz_weights: np.ndarray
    density_done: np.ndarray  # (n_v,) bool
    density_grid: np.ndarray
    density: np.ndarray
    sigma: float
    hvp_count: int
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def report(self) -> dict[str, Any]:
        """The overparameterization report (empty unless the file was made with --report)."""
        return dict(self.results.get("report") or {})

    @property
    def probes(self) -> tuple[np.ndarray, np.ndarray]:
        """Nodes and weights of the finished probes only."""
        return self.ritz_values[self.density_done], self.ritz_weights[self.density_done]

    def density_at(self, sigma: float, grid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(grid, density) redrawn at another Gaussian width from the stored nodes: no new products."""
        from engine.numerics.density import density_grid

        values, weights = self.probes
        grid = density_grid(values, sigma, len(self.density_grid) or 1000) if grid is None else np.asarray(grid)
        return grid, gaussian_density(values, weights, grid, sigma)

    def eigenvectors(self) -> dict[str, TensorSet]:
        """``top_1``, ..., ``bottom_1``, ... -> parameter name -> tensor (files made with --eigenvectors)."""
        with open_h5(self.path) as handle:
            if "eigenvectors" not in handle:
                raise LandscapeError(f"{self.path} holds no eigenvectors; compute it with --eigenvectors")
        return read_tensor_group(self.path, "eigenvectors")


def spectrum_layout(
    *,
    top_k: int,
    bottom_k: int,
    eigenvector_like: Mapping[str, torch.Tensor] | None,
    basis_shape: tuple[int, int] | None,
    basis_dtype: Any,
    lanczos_capacity: int,
    trace_capacity: int,
    probes: int,
    steps: int,
    grid_points: int,
    attrs: Mapping[str, Any],
) -> Layout:
    """A new spectrum file with every array allocated (see the module docstring)."""
    nan = np.nan
    arrays: dict[str, np.ndarray | ArraySpec] = {
        "top_eigenvalues": ArraySpec((top_k,), np.float64, nan), "top_residuals": ArraySpec((top_k,), np.float64, nan),
        "bottom_eigenvalues": ArraySpec((bottom_k,), np.float64, nan),
        "bottom_residuals": ArraySpec((bottom_k,), np.float64, nan),
        "eigen_done": ArraySpec((1,), np.uint8, 0), "trace": ArraySpec((1,), np.float64, nan),
        "trace_stderr": ArraySpec((1,), np.float64, nan), "ritz_values": ArraySpec((probes, steps), np.float64, nan),
        "ritz_weights": ArraySpec((probes, steps), np.float64, nan), "density_done": ArraySpec((probes,), np.uint8, 0),
        "density_grid": ArraySpec((grid_points if probes else 0,), np.float64, nan),
        "density": ArraySpec((grid_points if probes else 0,), np.float64, nan), "hvp_count": np.zeros(1, np.int64),
    }
    if basis_shape is not None:
        arrays["lanczos/basis"] = ArraySpec(basis_shape, basis_dtype, 0)
    tensors: dict[str, dict[str, Mapping[str, torch.Tensor]]] = {}
    if eigenvector_like is not None:
        zeros = {n: torch.zeros_like(t, device="cpu") for n, t in eigenvector_like.items()}
        members = {f"top_{i + 1}": zeros for i in range(top_k)} | {f"bottom_{i + 1}": zeros for i in range(bottom_k)}
        if members:
            tensors["eigenvectors"] = members
    logs = {"lanczos": LogSpec(LANCZOS_COLUMNS, max(lanczos_capacity, 1)),
            "trace": LogSpec(TRACE_COLUMNS, max(trace_capacity, 1))}
    root = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "engine_version": __version__,
            "results": "", "hvp_method_used": "", **attrs}
    return Layout(kind=KIND, attrs=root, arrays=arrays, tensors=tensors, logs=logs,
                  placeholders={"results": RESULTS_WIDTH, "hvp_method_used": HVP_METHOD_WIDTH})


def basis_fits_file(capacity: int, dim: int, itemsize: int) -> bool:
    return capacity * dim * itemsize <= BASIS_FILE_LIMIT


# -- writing (the job's one writer) ---------------------------------------------------------------
def save_lanczos(path: str | Path, basis: torch.Tensor | None, first_row: int, rows: np.ndarray, products: int) -> None:
    """Basis rows from ``first_row`` on (when the file keeps the basis), then their log rows, then the count."""
    try:
        with open_h5(path, "r+") as handle:
            if basis is not None and "lanczos/basis" in handle and len(basis):
                handle["lanczos/basis"][first_row:first_row + len(basis)] = basis.detach().cpu().numpy()
                handle.flush()
            if len(rows):
                append_log(handle, "lanczos", rows)
            _add_products(handle, products)
    except (OSError, RuntimeError) as exc:
        raise write_error(Path(path), exc) from exc


def read_lanczos(path: str | Path) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(basis rows or None when not kept, alpha, beta) as saved."""
    log = read_log(path, "lanczos")
    with open_h5(path) as handle:
        basis = None
        if "lanczos/basis" in handle:
            rows = min(len(log.rows) + 1, handle["lanczos/basis"].shape[0])
            basis = np.asarray(dataset(handle, "lanczos/basis", path, dims=2)[:rows])
    return basis, log.column("alpha"), log.column("beta")


def reset_lanczos(path: str | Path) -> None:
    """Forget the saved iterations (a resume that cannot continue them starts over)."""
    with open_h5(path, "r+") as handle:
        handle["logs"]["lanczos"]["count"][0] = 0


def save_eigenpairs(path: str | Path, top: tuple[np.ndarray, np.ndarray], bottom: tuple[np.ndarray, np.ndarray],
                    vectors: Mapping[str, Mapping[str, torch.Tensor]] | None) -> None:
    """Eigenvalues and residuals (and eigenvectors), then ``eigen_done``."""
    try:
        with open_h5(path, "r+") as handle:
            for name, (values, residuals) in (("top", top), ("bottom", bottom)):
                handle[f"{name}_eigenvalues"][...] = values
                handle[f"{name}_residuals"][...] = residuals
            if vectors and "eigenvectors" in handle:
                overwrite_tensor_group(handle, "eigenvectors", vectors)
            handle.flush()
            handle["eigen_done"][0] = 1
    except (OSError, RuntimeError) as exc:
        raise write_error(Path(path), exc) from exc


def save_trace_samples(path: str | Path, rows: np.ndarray, products: int) -> None:
    try:
        with open_h5(path, "r+") as handle:
            if len(rows):
                append_log(handle, "trace", rows)
            _add_products(handle, products)
    except (OSError, RuntimeError) as exc:
        raise write_error(Path(path), exc) from exc


def save_trace(path: str | Path, value: float, stderr: float) -> None:
    with open_h5(path, "r+") as handle:
        handle["trace"][0] = value
        handle["trace_stderr"][0] = stderr


def save_probe(path: str | Path, index: int, values: np.ndarray, weights: np.ndarray, products: int) -> None:
    """One finished SLQ probe: its nodes and weights, then its done flag."""
    try:
        with open_h5(path, "r+") as handle:
            steps = handle["ritz_values"].shape[1]
            row_v, row_w = np.full(steps, np.nan), np.full(steps, np.nan)
            row_v[:len(values)], row_w[:len(weights)] = values, weights
            handle["ritz_values"][index] = row_v
            handle["ritz_weights"][index] = row_w
            _add_products(handle, products)
            handle.flush()
            handle["density_done"][index] = 1
    except (OSError, RuntimeError) as exc:
        raise write_error(Path(path), exc) from exc


def save_density(path: str | Path, grid: np.ndarray, density: np.ndarray, sigma: float) -> None:
    with open_h5(path, "r+") as handle:
        if handle["density_grid"].shape != grid.shape:
            raise LandscapeError("internal: the density grid does not fit the file")
        handle["density_grid"][...] = grid
        handle["density"][...] = density
        handle.attrs.modify("sigma", float(sigma))


def save_results(path: str | Path, results: Mapping[str, Any], method: str) -> None:
    """The JSON of scalars and the report, and the Hessian-vector method that was used."""
    text = json.dumps(results, sort_keys=True, allow_nan=False, default=lambda _: None)
    if len(text.encode()) > RESULTS_WIDTH:
        raise LandscapeError("internal: the spectrum results do not fit their attribute")
    try:
        with open_h5(path, "r+") as handle:
            set_placeholder(handle, "results", text)
            set_placeholder(handle, "hvp_method_used", method)
    except (OSError, RuntimeError) as exc:
        raise write_error(Path(path), exc) from exc


def _add_products(handle: h5py.File, products: int) -> None:
    if products:
        handle["hvp_count"][0] = int(handle["hvp_count"][0]) + int(products)


# -- reading ----------------------------------------------------------------------------------------
def read_spectrum(path: str | Path) -> Spectrum:
    """Read a spectrum file written by a hessian job (complete or not)."""
    path = Path(path)
    with open_h5(path) as handle:
        attrs = read_attrs(handle)
        if attrs.get("kind") != KIND:
            raise LandscapeError(f"{path} is not a spectrum file (its kind is '{attrs.get('kind', 'unknown')}')")
        if attrs.get("format_version") != FORMAT_VERSION or attrs.get("format") != FORMAT:
            raise LandscapeError(f"{path} has format_version {attrs.get('format_version')}; this Landscape reads "
                                 f"{FORMAT_VERSION}: upgrade")

        def array(name: str, dims: int = 1) -> np.ndarray:
            return np.asarray(dataset(handle, name, path, dims=dims)[()], dtype=np.float64)

        ritz_values, ritz_weights = array("ritz_values", 2), array("ritz_weights", 2)
        done = np.asarray(dataset(handle, "density_done", path, dims=1)[()]).astype(bool)
        if ritz_values.shape != ritz_weights.shape or done.shape != ritz_values.shape[:1]:
            raise damaged(path, "its Ritz values, weights and done flags do not match")
        top, top_res = array("top_eigenvalues"), array("top_residuals")
        bottom, bottom_res = array("bottom_eigenvalues"), array("bottom_residuals")
        trace, stderr = array("trace"), array("trace_stderr")
        grid, density = array("density_grid"), array("density")
        eigen_done = bool(np.asarray(dataset(handle, "eigen_done", path)[()]).reshape(-1)[0])
        hvp_count = int(np.asarray(dataset(handle, "hvp_count", path)[()]).reshape(-1)[0])
    try:
        results = json.loads(attrs.get("results") or "{}")
    except json.JSONDecodeError:
        raise damaged(path, "its results attribute is not JSON") from None
    trace_log: LogTable = read_log(path, "trace")
    return Spectrum(
        path=path, attrs=attrs, top_eigenvalues=top, top_residuals=top_res, bottom_eigenvalues=bottom,
        bottom_residuals=bottom_res, eigen_done=eigen_done,
        trace=_finite(trace), trace_stderr=_finite(stderr), trace_samples=trace_log.column("sample"),
        ritz_values=ritz_values, ritz_weights=ritz_weights, density_done=done, density_grid=grid, density=density,
        sigma=float(attrs.get("sigma", float("nan"))), hvp_count=hvp_count, results=results,
    )


def _finite(array: np.ndarray) -> float | None:
    value = float(array.reshape(-1)[0]) if array.size else float("nan")
    return value if np.isfinite(value) else None


__all__ = [
    "BASIS_FILE_LIMIT", "KIND", "LANCZOS_COLUMNS", "Spectrum", "TRACE_COLUMNS", "basis_fits_file", "read_lanczos",
    "read_spectrum", "reset_lanczos", "save_density", "save_eigenpairs", "save_lanczos", "save_probe",
    "save_results", "save_trace", "save_trace_samples", "spectrum_layout",
]
