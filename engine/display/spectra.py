"""What the Spectrum tab draws and lists, computed without Qt.

A spectrum file (:mod:`engine.io.store.spectra`) holds the extreme eigenvalues of a Hessian,
its trace, and the stochastic Lanczos quadrature (SLQ) nodes and weights its density is drawn
from. This module turns them into what is shown:

* :func:`density_curve` (on a :func:`curve_grid`): the density at a Gaussian width σ over an x range, made safe for a
  log y axis (clipped at a floor :data:`FLOOR_RATIO` below its peak: a Gaussian's tails
  underflow to 0, whose logarithm cannot be drawn). It is
  ``engine.numerics.density.gaussian_density`` itself, so redrawing at another σ costs no
  Hessian-vector product and equals what ``Spectrum.density_at`` gives;
* :func:`eigen_sticks`: the top and bottom eigenvalues as vertical sticks from the floor to the
  curve's peak, labelled, with labels of close sticks staggered;
* :func:`x_range`: all eigenvalues (the outliers in sight), or the bulk (where almost all the
  spectral mass is);
* :class:`SigmaScale`: σ on a slider, log-spaced;
* :func:`report_table`: the overparameterization report of several files side by side;
* :func:`file_progress` and :class:`LiveSpectrum`: what a file holds, and what a running job reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.numerics.density import DEFAULT_GRID, default_sigma, gaussian_density

FLOOR_RATIO = 1e-8  # the log-safe curve is clipped this far below its peak (8 decades shown at most)
BULK_QUANTILES = (0.01, 0.99)  # the bulk: between these quantiles of the spectral measure ...
BULK_MARGIN_SIGMAS = 4.0  # ... with this many σ on each side
ALL_MARGIN_SIGMAS = 5.0  # all eigenvalues: every node and eigenvalue with this many σ to spare (the file's grid's)
RANGES = ("all", "bulk")
RANGE_LABELS = {"all": "All eigenvalues (outliers)", "bulk": "Bulk (most of the mass)"}
POINTS_PER_SIGMA = 5  # a drawn Gaussian of width σ gets this many grid points per σ ...
MAX_GRID = 20_000  # ... up to this many over the whole spectrum (the part on screen always gets DEFAULT_GRID)
SIGMA_SPAN = (1e-4, 0.25)  # σ from this fraction of the spread of the nodes to that one
SIGMA_STEPS = 400  # slider positions
LABEL_STEP_DECADES = 0.7  # staggered labels sit this much lower (in decades of density) per row
DEFAULT_LABEL_CHARS = 80  # without a measure, this many characters of a label fill the x range
LABEL_ROWS = 4
NO_NUMBER = ""
TOP, BOTTOM = "top", "bottom"


# -- the density ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DensityCurve:
    """The density on ``grid`` as computed, and as drawn on a log axis (``shown``, at least ``floor``)."""

    grid: np.ndarray
    density: np.ndarray
    shown: np.ndarray
    floor: float

    @property
    def peak(self) -> float:
        return float(self.shown.max()) if self.shown.size else 1.0


def log_safe(density: np.ndarray, floor_ratio: float = FLOOR_RATIO) -> tuple[np.ndarray, float]:
    """(values, floor): ``density`` with everything below ``floor_ratio`` x its peak (zeros, underflow,
    NaN) raised to that floor, so every value has a logarithm. An all-zero density is all 1."""
    density = np.asarray(density, dtype=np.float64)
    finite = density[np.isfinite(density) & (density > 0)]
    if not finite.size:
        return np.ones_like(density), 1.0
    floor = float(finite.max()) * floor_ratio
    shown = np.where(np.isfinite(density), np.maximum(density, floor), floor)
    return shown, floor


def curve_grid(ranges: Sequence[tuple[float, float]], points: int | Sequence[int] = DEFAULT_GRID) -> np.ndarray:
    """``points`` evenly spaced λ over each range (one count, or one per range), merged in order: the whole
    spectrum, and more finely the part on screen, in one curve."""
    counts = [int(points)] * len(ranges) if isinstance(points, (int, np.integer)) else [int(n) for n in points]
    parts = [np.linspace(float(lo), float(hi), n) if hi > lo else np.asarray([float(lo)])
             for (lo, hi), n in zip(ranges, counts)]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0)


def grid_points(lo: float, hi: float, sigma: float) -> int:
    """Points for a grid from ``lo`` to ``hi`` that resolves Gaussians of width ``sigma`` (POINTS_PER_SIGMA per σ),
    between DEFAULT_GRID and MAX_GRID."""
    if not (sigma > 0 and hi > lo):
        return DEFAULT_GRID
    return int(min(max(DEFAULT_GRID, math.ceil(POINTS_PER_SIGMA * (hi - lo) / sigma) + 1), MAX_GRID))


def density_curve(values: np.ndarray, weights: np.ndarray, sigma: float, grid: np.ndarray,
                  floor_ratio: float = FLOOR_RATIO) -> DensityCurve:
    """The SLQ density (``gaussian_density`` of the probes' nodes and weights, as ``Spectrum.density_at``) at
    width ``sigma`` on ``grid``, with its log-safe version."""
    grid = np.asarray(grid, dtype=np.float64)
    values, weights = np.asarray(values, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    density = gaussian_density(values, weights, grid, float(sigma)) if values.size else np.zeros(len(grid))
    shown, floor = log_safe(density, floor_ratio)
    return DensityCurve(grid, density, shown, floor)


def x_range(mode: str, values: np.ndarray, weights: np.ndarray, sigma: float,
            eigenvalues: Sequence[float] = ()) -> tuple[float, float]:
    """The λ range to show.

    ``"all"``: every quadrature node and computed eigenvalue, with ``ALL_MARGIN_SIGMAS`` σ to spare
    (the file's own density grid, stretched to eigenvalues the probes missed). ``"bulk"``: between
    the ``BULK_QUANTILES`` of the spectral measure (the probes' mean of Σ w_i δ(θ_i)), with
    ``BULK_MARGIN_SIGMAS`` σ on each side: the outliers, a tiny part of the mass, are left out.
    """
    if mode not in RANGES:
        raise ValueError(f"the x range is one of {RANGES}, not {mode!r}")
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    keep = np.isfinite(values) & np.isfinite(weights)
    eig = np.asarray([v for v in eigenvalues if v is not None and math.isfinite(v)], dtype=np.float64)
    nodes = values[keep]
    if mode == "bulk" and nodes.size:
        probes = values.shape[0] if values.ndim == 2 else 1
        lo, hi = weighted_quantiles(nodes, weights[keep] / max(probes, 1), BULK_QUANTILES)
        margin = BULK_MARGIN_SIGMAS * sigma
        return lo - margin, hi + margin
    every = np.concatenate([nodes, eig])
    if not every.size:
        return -1.0, 1.0
    margin = ALL_MARGIN_SIGMAS * sigma
    return float(every.min()) - margin, float(every.max()) + margin


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, quantiles: Sequence[float]) -> tuple[float, ...]:
    """Quantiles of the discrete measure Σ w_i δ(v_i) (normalized to its total): the smallest v_i whose
    cumulative weight reaches q."""
    order = np.argsort(values)
    v, w = values[order], np.clip(weights[order], 0.0, None)
    total = w.sum()
    if not total > 0:
        return tuple(float(np.quantile(v, q)) for q in quantiles)
    cumulative = np.cumsum(w) / total
    return tuple(float(v[min(int(np.searchsorted(cumulative, q)), len(v) - 1)]) for q in quantiles)


# -- the eigenvalues -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stick:
    """One eigenvalue drawn as a vertical stick from ``bottom`` to ``top`` at λ = ``x``; its label at ``label_y``."""

    x: float
    kind: str  # TOP or BOTTOM
    index: int  # 0 for λmax / λmin, 1 for the next one in, ...
    label: str
    bottom: float
    top: float
    label_y: float


def stick_name(kind: str, index: int) -> str:
    """λmax, λ2, λ3 ... for the top eigenvalues; λmin, λ(p-1), λ(p-2) ... for the bottom ones
    (eigenvalues counted from the largest, λ1 >= ... >= λp)."""
    if kind == TOP:
        return "λmax" if index == 0 else f"λ{index + 1}"
    return "λmin" if index == 0 else f"λ(p-{index})"


def eigen_sticks(top: Sequence[float], bottom: Sequence[float], floor: float, peak: float,
                 span: tuple[float, float] | None = None, text_width: Callable[[str], float] | None = None,
                 estimates: bool = False) -> list[Stick]:
    """Sticks for the finite ``top`` (descending) and ``bottom`` (ascending) eigenvalues, from ``floor``
    to ``peak`` (the curve's), labelled with name and value (and "(estimate)" while a job converges).

    Labels hang from the top of their stick, a top eigenvalue's to its left and a bottom one's to its
    right. ``text_width(label)`` is a label's width in λ units (the view measures it; by default
    ``DEFAULT_LABEL_CHARS`` characters fill ``span``, the x range shown); labels that would overlap
    go on successive rows, ``LABEL_STEP_DECADES`` lower each (:func:`label_rows`).
    """
    entries = [(float(v), TOP, k) for k, v in enumerate(top) if v is not None and math.isfinite(v)]
    entries += [(float(v), BOTTOM, k) for k, v in enumerate(bottom) if v is not None and math.isfinite(v)]
    if not entries:
        return []
    xs = np.asarray([e[0] for e in entries])
    lo, hi = span if span is not None else (float(xs.min()), float(xs.max()))
    per_char = ((hi - lo) or 1.0) / DEFAULT_LABEL_CHARS
    measure = text_width or (lambda text: per_char * len(text))
    suffix = " (estimate)" if estimates else ""
    labels = [f"{stick_name(kind, k)} = {format_number(x)}{suffix}" for x, kind, k in entries]
    intervals = []
    for (x, kind, _k), label in zip(entries, labels):
        width = float(measure(label))
        intervals.append((x - width, x) if kind == TOP else (x, x + width))
    rows = label_rows(intervals)
    peak = max(float(peak), float(floor))
    sticks = []
    for (x, kind, k), label, r in zip(entries, labels, rows):
        label_y = peak / 10 ** (LABEL_STEP_DECADES * r) if floor > 0 else peak
        sticks.append(Stick(x, kind, k, label, float(floor), peak, max(label_y, floor)))
    return sticks


def label_rows(intervals: Sequence[tuple[float, float]]) -> list[int]:
    """A row for each (start, end) interval such that intervals on one row do not overlap (greedy, by start;
    at most LABEL_ROWS rows, then the row whose last interval ends first)."""
    rows = [0] * len(intervals)
    ends: list[float] = []  # where the last interval placed on each row ends
    for i in sorted(range(len(intervals)), key=lambda k: intervals[k][0]):
        start, end = intervals[i]
        row = next((r for r, right in enumerate(ends) if start >= right), None)
        if row is None and len(ends) < LABEL_ROWS:
            row = len(ends)
            ends.append(end)
        elif row is None:  # every row is crowded here: the one with the most room
            row = int(np.argmin(ends))
        ends[row] = max(end, ends[row])
        rows[i] = row
    return rows


# -- σ ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SigmaScale:
    """σ between ``low`` and ``high`` on ``steps`` + 1 slider positions, evenly spaced in log σ."""

    low: float
    high: float
    steps: int = SIGMA_STEPS

    @classmethod
    def for_nodes(cls, values: np.ndarray, stored: float | None = None) -> "SigmaScale":
        """From ``SIGMA_SPAN`` of the nodes' spread (the file's σ is 1% of it), widened to hold ``stored``."""
        values = np.asarray(values, dtype=np.float64)
        finite = values[np.isfinite(values)]
        spread = float(finite.max() - finite.min()) if finite.size > 1 else 0.0
        if not spread > 0:
            spread = default_sigma(finite) / 0.01 if finite.size else 1.0
        low, high = SIGMA_SPAN[0] * spread, SIGMA_SPAN[1] * spread
        if stored is not None and math.isfinite(stored) and stored > 0:
            low, high = min(low, stored), max(high, stored)
        return cls(low, high)

    def position(self, sigma: float) -> int:
        sigma = min(max(float(sigma), self.low), self.high)
        return round(self.steps * math.log(sigma / self.low) / math.log(self.high / self.low))

    def sigma(self, position: int) -> float:
        position = min(max(int(position), 0), self.steps)
        return self.low * (self.high / self.low) ** (position / self.steps)


# -- the report ---------------------------------------------------------------------------------------
def format_number(value: Any, digits: int = 4) -> str:
    """``digits`` significant digits; NO_NUMBER for None, NaN or inf."""
    if value is None or isinstance(value, bool):
        return NO_NUMBER if value is None else ("yes" if value else "no")
    value = float(value)
    if not math.isfinite(value):
        return NO_NUMBER
    return f"{value:.{digits}g}"


def _integer(value: Any) -> str:
    return NO_NUMBER if value is None else f"{int(value):,}"


def _with_error(value: Any, error: Any) -> str:
    text = format_number(value)
    if text and error is not None and math.isfinite(float(error)):
        text += f" ± {float(error):.2g}"
    return text


def _percent(value: Any) -> str:
    return NO_NUMBER if value is None or not math.isfinite(float(value)) else f"{float(value):.2f}%"


@dataclass(frozen=True)
class ReportRow:
    """One line of the report table: a quantity, its cells (one per file) and the numbers they show."""

    key: str
    label: str
    tooltip: str
    cells: tuple[str, ...]
    values: tuple[Any, ...]


@dataclass(frozen=True)
class ReportColumn:
    """One file in the report table."""

    name: str
    report: Mapping[str, Any]
    attrs: Mapping[str, Any] = field(default_factory=dict)


# (key, label, tooltip, cell text of a report); rows that no file has a value for are left out
_ROWS: tuple[tuple[str, str, str, Any], ...] = (
    ("where", "at", "the checkpoint's weights, or a point (x, y) of a surface (Hessian here)",
     lambda r, a: point_text(a)),
    ("n_params", "parameters p", "trainable parameters of the model", lambda r, a: _integer(r.get("n_params"))),
    ("n_samples", "samples n", "training samples the loss is averaged over", lambda r, a: _integer(r.get("n_samples"))),
    ("params_per_sample", "p / n", "parameters per training sample: above 1 the model can interpolate",
     lambda r, a: format_number(r.get("params_per_sample"))),
    ("interpolates", "interpolates", "classification: every training sample right; regression: R² >= 0.999",
     lambda r, a: format_number(r.get("interpolates"))),
    ("train_loss", "train loss", "mean loss over the training data at these weights",
     lambda r, a: format_number(r.get("train_loss"))),
    ("test_loss", "test loss", "mean loss over the test data", lambda r, a: format_number(r.get("test_loss"))),
    ("train_acc", "train accuracy", "", lambda r, a: _percent(r.get("train_acc"))),
    ("test_acc", "test accuracy", "", lambda r, a: _percent(r.get("test_acc"))),
    ("top_eigenvalue", "λmax", "the largest eigenvalue of the Hessian: the sharpness",
     lambda r, a: format_number(r.get("top_eigenvalue"))),
    ("bottom_eigenvalue", "λmin", "the smallest eigenvalue: negative at a saddle",
     lambda r, a: format_number(r.get("bottom_eigenvalue"))),
    ("min_max_ratio", "|λmin / λmax|", "how negative the most negative curvature is, relative to the sharpest",
     lambda r, a: format_number(r.get("min_max_ratio"))),
    ("trace", "trace", "sum of all eigenvalues (Hutch++), ± its standard error",
     lambda r, a: _with_error(r.get("trace"), r.get("trace_stderr"))),
    ("trace_per_param", "trace / p", "the mean eigenvalue", lambda r, a: format_number(r.get("trace_per_param"))),
    ("negative_mass", "negative mass",
     "the fraction of the spectrum below zero (from the density), ± its standard error across probes",
     lambda r, a: _with_error(r.get("negative_mass"), r.get("negative_mass_stderr"))),
)
_N_EFF_TIP = ("effective dimensionality N_eff(α) = Σ λ_i / (λ_i + α) over the positive eigenvalues, as a fraction "
              "of p (Maddox, Benton & Wilson 2020): the share of directions the data determine at scale α")


def point_text(attrs: Mapping[str, Any]) -> str:
    """'checkpoint', or 'x 0.25, y -0.1' for the Hessian at a point of a surface."""
    point = str(attrs.get("point") or "")
    if not point:
        return "checkpoint"
    try:
        coordinates = [float(v) for v in point.split(",")]
    except ValueError:
        return point
    return ", ".join(f"{name} {value:.4g}" for name, value in zip("xy", coordinates))


def report_of(spectrum: Any) -> dict[str, Any]:
    """The file's report; for a file made without ``--report`` (or not finished), what it holds of one:
    p, the extreme eigenvalues and the trace."""
    report = dict(spectrum.report)
    if report:
        return report
    partial: dict[str, Any] = {}
    n_params = spectrum.results.get("n_params") or spectrum.attrs.get("n_params")
    if n_params:
        partial["n_params"] = int(n_params)
    for key, values in (("top_eigenvalue", spectrum.top_eigenvalues),
                        ("bottom_eigenvalue", spectrum.bottom_eigenvalues)):
        values = np.asarray(values, dtype=np.float64)
        if values.size and math.isfinite(float(values[0])):
            partial[key] = float(values[0])
    if spectrum.trace is not None:
        partial["trace"], partial["trace_stderr"] = spectrum.trace, spectrum.trace_stderr
        if partial.get("n_params"):
            partial["trace_per_param"] = spectrum.trace / partial["n_params"]
    return partial


def alpha_keys(reports: Sequence[Mapping[str, Any]]) -> list[str]:
    """The α of N_eff in any of the reports, ascending (keys as the file writes them: '0.01')."""
    keys = {k for r in reports for k in (r.get("n_eff_fraction") or {})}
    return sorted(keys, key=float)


def report_table(columns: Sequence[ReportColumn]) -> list[ReportRow]:
    """The report's rows for these files (one cell per column), quantities nobody has left out."""
    rows = []
    for key, label, tip, cell in _ROWS:
        cells = tuple(cell(c.report, c.attrs) if c.report or key == "where" else NO_NUMBER for c in columns)
        values = tuple((c.attrs.get("point") or "") if key == "where" else c.report.get(key) for c in columns)
        if key != "where" and all(v is None for v in values):
            continue
        rows.append(ReportRow(key, label, tip, cells, values))
    for alpha in alpha_keys([c.report for c in columns]):
        values = tuple((c.report.get("n_eff_fraction") or {}).get(alpha) for c in columns)
        rows.append(ReportRow(f"n_eff_fraction:{alpha}", f"N_eff / p (α {float(alpha):g})", _N_EFF_TIP,
                              tuple(format_number(v) for v in values), values))
    return rows


def ordered_columns(columns: Sequence[ReportColumn]) -> list[ReportColumn]:
    """Smallest model first (p, then p/n), so a width sweep reads from under- to overparameterized;
    files without a report last, in the order given."""
    def key(item: tuple[int, ReportColumn]) -> tuple:
        k, c = item
        p = c.report.get("n_params")
        ratio = c.report.get("params_per_sample")
        return (p is None, p or 0, ratio or 0, k)

    return [c for _k, c in sorted(enumerate(columns), key=key)]


# -- progress -------------------------------------------------------------------------------------------
def file_progress(spectrum: Any) -> tuple[int, int]:
    """(parts done, parts wanted) of a spectrum file: the eigenpairs, the trace, each density probe,
    the drawn density, and the results a finished run writes (with the report when asked for)."""
    a = spectrum.attrs
    done = total = 0
    if int(a.get("top_k", 0) or 0) or int(a.get("bottom_k", 0) or 0):
        total += 1
        done += bool(spectrum.eigen_done)
    if int(a.get("trace", 0) or 0):
        total += 1
        done += spectrum.trace is not None
    if int(a.get("density", 0) or 0):
        flags = np.asarray(spectrum.density_done, dtype=bool)
        total += flags.size + 1
        done += int(flags.sum()) + bool(spectrum.density.size and np.isfinite(spectrum.density).all())
    total += 1
    wants_report = bool(int(a.get("report", 0) or 0))
    done += bool(spectrum.results) and (not wants_report or "report" in spectrum.results)
    return done, total


@dataclass
class LiveSpectrum:
    """What a running hessian job has reported: the stage, its current estimates, products done.

    ``add`` takes a ``HessianProgress``'s fields; :meth:`text` says it in one line.
    """

    stage: str = ""
    top: list[float] = field(default_factory=list)
    bottom: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)  # power iteration: largest magnitude first
    trace: float | None = None
    stderr: float | None = None
    probe: int | None = None
    probes: int | None = None
    nodes: list[list[float]] = field(default_factory=list)  # finished probes' quadrature, as they arrive
    weights: list[list[float]] = field(default_factory=list)
    done: int = 0
    total: int = 0

    def add(self, stage: str, estimate: Mapping[str, Any], done: int = 0, total: int = 0) -> None:
        self.stage, self.done, self.total = stage, int(done), int(total)
        if "top" in estimate:
            self.top = [float(v) for v in estimate["top"]]
        if "bottom" in estimate:
            self.bottom = [float(v) for v in estimate["bottom"]]
        if "values" in estimate:
            self.values = [float(v) for v in estimate["values"]]
        if "trace" in estimate:
            self.trace = float(estimate["trace"])
            stderr = estimate.get("stderr")
            self.stderr = float(stderr) if stderr is not None else None
        if "probe" in estimate:
            self.probe, self.probes = int(estimate["probe"]), int(estimate.get("probes") or 0)
        if "nodes" in estimate:
            self.nodes.append([float(v) for v in estimate["nodes"]])
            self.weights.append([float(w) for w in estimate["weights"]])

    def probe_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The finished probes' nodes and weights as (probes, steps) arrays, NaN-padded like a file's."""
        steps = max((len(v) for v in self.nodes), default=0)
        values = np.full((len(self.nodes), steps), np.nan)
        weights = np.full((len(self.nodes), steps), np.nan)
        for i, (v, w) in enumerate(zip(self.nodes, self.weights)):
            values[i, :len(v)], weights[i, :len(w)] = v, w
        return values, weights

    @property
    def active(self) -> bool:
        return bool(self.stage)

    @property
    def eigen_final(self) -> bool:
        """The eigenvalue stage is over: the last estimates are the converged values the file holds."""
        return self.stage not in ("", "eigenpairs")

    def text(self) -> str:
        """The stage's status, then what earlier stages found (the eigenvalues, the trace)."""
        parts = [spectrum_status(self.stage, self)]
        if self.stage in ("trace", "density") and (self.top or self.bottom or self.values):
            parts.append(spectrum_status("eigenpairs", self).replace("eigenvalues: ", "", 1))
        if self.stage == "density" and self.trace is not None:
            parts.append(spectrum_status("trace", self))
        return "; ".join(p for p in parts if p)


def spectrum_status(stage: str, live: LiveSpectrum) -> str:
    """A running job's status line: the stage and its current estimates."""
    if stage == "eigenpairs":
        if live.values:
            return "eigenvalues (power iteration): " + ", ".join(format_number(v) for v in live.values)
        parts = []
        if live.top:
            parts.append(f"λmax ≈ {format_number(live.top[0], 6)}")
        if live.bottom:
            parts.append(f"λmin ≈ {format_number(live.bottom[0], 6)}")
        return "eigenvalues: " + (", ".join(parts) if parts else "starting")
    if stage == "trace":
        if live.trace is None:
            return "trace: sketching"
        error = "" if live.stderr is None or not math.isfinite(live.stderr) else f" ± {live.stderr:.2g}"
        return f"trace ≈ {format_number(live.trace)}{error}"
    if stage == "density":
        if live.probe is None:
            return "density"
        return f"density: probe {live.probe + 1}/{live.probes or '?'}"
    return f"{stage}…" if stage else ""


__all__ = [
    "BOTTOM", "DensityCurve", "FLOOR_RATIO", "LiveSpectrum", "RANGES", "RANGE_LABELS", "ReportColumn", "ReportRow",
    "SigmaScale", "Stick", "TOP", "alpha_keys", "curve_grid", "density_curve", "eigen_sticks", "file_progress",
    "format_number", "grid_points", "label_rows", "log_safe", "ordered_columns", "point_text", "report_of",
    "report_table", "spectrum_status", "stick_name", "weighted_quantiles", "x_range",
]
