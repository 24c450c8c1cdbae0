"""What a view draws from a surface: display values, color levels, contour levels, point status.

Pure numpy, so the GUI holds no numerics: it asks for a :class:`DisplayGrid` once
per surface (and again only when new points arrive), then switches scale, color
limits and colormap by picking cached arrays and levels, never by recomputing the data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine.numerics.grid import refinement_levels

SCALES = ("linear", "log")
LIMIT_MODES = ("auto", "percentiles", "values")
# Automatic limits on a log scale: the few lowest points of an interpolating minimum (loss 1e-15
# where its neighbours have 1e-3) would take most of the colormap. The lowest point, or at most
# this share of the points, is left below the colormap, and only when a gap wider than
# LOG_OUTLIER_GAP of the range separates them from the rest: a smooth basin keeps its minimum.
LOG_OUTLIER_SHARE = 0.005
LOG_OUTLIER_GAP = 0.25
CONTOUR_SPACINGS = ("even", "log")  # contour levels evenly spaced in display units, or in log(value - min)
LOG_LEVEL_DECADES = 3.0  # log-spaced contours start this many decades of the value range above the minimum
PREVIEWS_KEPT = 4  # previews a display grid keeps, for as many colour ranges (one is what every view uses)
AUTO_LIMITS_TEXT = (
    "Automatic: from the lowest to the highest computed value. On a log scale, the lowest point, or a few "
    f"(at most {100 * LOG_OUTLIER_SHARE:g}% of them), lying more than {LOG_OUTLIER_GAP:.0%} of the range "
    "below all the others, are left below the colormap, so that a single interpolating minimum does not take it."
)
# Status codes drawn under the colored image: computed points are colored by value.
COMPUTED, PENDING, NONFINITE = 0, 1, 2


@dataclass(frozen=True)
class ColorLimits:
    """How the color range is chosen: ``mode`` is one of LIMIT_MODES.

    "percentiles": ``low`` and ``high`` are percentiles (0..100) of the computed values.
    "values": ``low`` and ``high`` are values in the metric's own units (not log10), and
    None leaves that end automatic (as does a value <= 0 on a log scale).
    """

    mode: str = "auto"
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in LIMIT_MODES:
            raise ValueError(f"unknown color limits '{self.mode}'; choose one of {', '.join(LIMIT_MODES)}")


AUTO = ColorLimits()


def display_values(values: np.ndarray, done: np.ndarray, scale: str) -> np.ndarray:
    """float32, C-contiguous values to color; NaN where not computed, non-finite, or <= 0 on a log scale."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale '{scale}'; choose one of {', '.join(SCALES)}")
    out = np.array(values, dtype=np.float64, copy=True)
    out[~np.asarray(done, dtype=bool)] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        out[~np.isfinite(out)] = np.nan
        if scale == "log":
            out = np.where(out > 0, np.log10(np.where(out > 0, out, 1.0)), np.nan)
    return np.ascontiguousarray(out, dtype=np.float32)


def to_display_units(value: float | None, scale: str) -> float | None:
    """A value in the metric's units as the colormap sees it (log10 on a log scale); None if it has no place there."""
    if value is None or not math.isfinite(value):
        return None
    if scale == "log":
        return math.log10(value) if value > 0 else None
    return float(value)


def to_metric_units(level: float, scale: str) -> float:
    """A display-unit level back in the metric's units (what a user reads and types)."""
    return 10.0**level if scale == "log" else level


# -- the coarse preview of a partial grid ------------------------------------------------------
def coarse_preview(image: np.ndarray, done: np.ndarray, levels: tuple[float, float] | None = None) -> np.ndarray:
    """A low-resolution picture of a grid computed coarse to fine, for drawing under the "pending" veil.

    Points are computed by repeated bisection of each axis (engine.numerics.grid), so the
    computed points are a complete coarse lattice plus part of the next one. Pending pixels
    are interpolated bilinearly in the finest lattice cell whose four corners are computed
    (the complete lattice everywhere, finer cells where they are complete); computed points
    keep their own value. A point's value therefore reaches at most the lattice cells around
    it, blended with its neighbours, and the preview never leaves the range of the computed
    values. Corners that are computed but non-finite are left out of the blend.

    ``levels``, the color range, clamps the values blended into pending pixels: a point
    left outside the colormap (an interpolating minimum twelve decades down) then tints its
    neighbours like the end of the colormap it is drawn with, not like its own extreme.

    The file, profiles and hover keep NaN at pending points; only the map draws this.
    """
    done = np.asarray(done, dtype=bool)
    if done.all() or not done.any():
        return image
    z = image.reshape(1, -1) if image.ndim == 1 else image
    mask = done.reshape(z.shape)
    blended = z if levels is None else np.clip(z, *levels)
    lx, ly = refinement_levels(z.shape[1]), refinement_levels(z.shape[0])
    point_level = np.maximum(ly[:, None], lx[None, :])
    complete = int(point_level[~mask].min()) - 1  # every point up to this level is computed
    out = _lattice_blend(blended, mask, lx, ly, max(complete, 0), complete_cells_only=False)
    for level in range(max(complete, 0) + 1, int(point_level[mask].max()) + 1):
        finer = _lattice_blend(blended, mask, lx, ly, level, complete_cells_only=True)
        out = np.where(np.isnan(finer), out, finer)
    out = np.where(mask, z, out)
    return np.ascontiguousarray(out.reshape(image.shape), dtype=np.float32)


def _lattice_blend(z: np.ndarray, done: np.ndarray, lx: np.ndarray, ly: np.ndarray, level: int,
                   complete_cells_only: bool) -> np.ndarray:
    """Bilinear interpolation of the lattice of ``level`` onto every pixel, over its computed finite corners.

    With ``complete_cells_only`` pixels of cells with a pending corner are NaN; otherwise
    they blend whatever corners are computed, and pixels with none take the mean of the
    lattice's computed values (the first moments of a job, before its four corners are in).
    """
    cx, cy = np.flatnonzero(lx <= level), np.flatnonzero(ly <= level)
    ki, ti = _cells(cx, z.shape[1])
    kj, tj = _cells(cy, z.shape[0])
    corners = z[np.ix_(cy, cx)].astype(np.float64)
    corner_done = done[np.ix_(cy, cx)]
    usable = corner_done & np.isfinite(corners)
    values = np.where(usable, corners, 0.0)
    total = np.zeros(z.shape)
    weight = np.zeros(z.shape)
    cell_done = np.ones(z.shape, dtype=bool)
    for dj, wj in ((0, 1.0 - tj), (1, tj)):
        rows = np.minimum(kj + dj, len(cy) - 1)
        for di, wi in ((0, 1.0 - ti), (1, ti)):
            cols = np.minimum(ki + di, len(cx) - 1)
            w = wj[:, None] * wi[None, :]
            total += w * values[np.ix_(rows, cols)]
            weight += w * usable[np.ix_(rows, cols)]
            cell_done &= corner_done[np.ix_(rows, cols)]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(weight > 0, total / weight, np.nan)
    if complete_cells_only:
        return np.where(cell_done, out, np.nan)
    if usable.any():
        out = np.where(weight > 0, out, corners[usable].mean())
    return out


def _cells(lattice: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For each index 0..n-1: its lattice cell (index of the cell's lower node) and its position t in [0, 1]."""
    pixels = np.arange(n)
    k = np.clip(np.searchsorted(lattice, pixels, side="right") - 1, 0, max(len(lattice) - 2, 0))
    lo, hi = lattice[k], lattice[np.minimum(k + 1, len(lattice) - 1)]
    t = np.where(hi > lo, (pixels - lo) / np.maximum(hi - lo, 1), 0.0)
    return k, t


# -- status, color and contour levels ----------------------------------------------------------
def status_codes(values: np.ndarray, done: np.ndarray) -> np.ndarray:
    """uint8 per point: COMPUTED, PENDING (not computed yet) or NONFINITE (computed, NaN/inf)."""
    done = np.asarray(done, dtype=bool)
    codes = np.full(done.shape, PENDING, dtype=np.uint8)
    codes[done] = COMPUTED
    codes[done & ~np.isfinite(values)] = NONFINITE
    return codes


def veil_codes(status: np.ndarray) -> np.ndarray:
    """The status codes a map draws: PENDING also over computed points next to a pending one.

    While a grid fills in coarse to fine, its computed points are scattered through pending
    ones; unveiled one by one they would speckle the preview. Veiled with their pending
    neighbours, the partly computed region reads as one preview, and the veil lifts where
    the picture is complete. NONFINITE points keep their own code.
    """
    pending = status == PENDING
    near = pending.copy()
    for axis in range(status.ndim):
        head = [slice(None)] * status.ndim
        tail = [slice(None)] * status.ndim
        head[axis], tail[axis] = slice(1, None), slice(None, -1)
        near[tuple(head)] |= pending[tuple(tail)]
        near[tuple(tail)] |= pending[tuple(head)]
    return np.where(near & (status == COMPUTED), PENDING, status).astype(np.uint8)


def color_levels(display: np.ndarray, scale: str = "linear", limits: ColorLimits = AUTO) -> tuple[float, float]:
    """(low, high) for the colormap in display units, from the finite values of ``display`` as ``limits`` says.

    Automatic: see AUTO_LIMITS_TEXT. A typed end with no place on the scale (None, or
    <= 0 on a log scale) stays automatic. With no finite value yet the levels are (0, 1);
    an empty or flat range gets a small width above its low end.
    """
    finite = np.sort(display[np.isfinite(display)], axis=None)
    if finite.size == 0:
        return 0.0, 1.0
    low = _log_floor(finite) if scale == "log" else float(finite[0])
    high = float(finite[-1])
    if limits.mode == "percentiles":
        bounds = np.clip([0.0 if limits.low is None else limits.low, 100.0 if limits.high is None else limits.high],
                         0.0, 100.0)
        low, high = (float(v) for v in np.percentile(finite, np.sort(bounds)))
    elif limits.mode == "values":
        typed_low, typed_high = to_display_units(limits.low, scale), to_display_units(limits.high, scale)
        low = low if typed_low is None else typed_low
        high = high if typed_high is None else typed_high
    if not high > low:
        high = low + (abs(low) * 1e-6 or 1.0)
    return low, high


def _log_floor(ascending: np.ndarray) -> float:
    """The low end of the automatic range on a log scale: the minimum, unless isolated outliers lie below."""
    candidates = math.ceil(LOG_OUTLIER_SHARE * ascending.size)  # at least the lowest point
    span = float(ascending[-1] - ascending[0])
    gaps = np.diff(ascending[: candidates + 1])
    if gaps.size == 0 or span <= 0:
        return float(ascending[0])
    widest = int(np.argmax(gaps))
    floor = float(ascending[widest + 1])
    return floor if gaps[widest] > LOG_OUTLIER_GAP * span and floor < ascending[-1] else float(ascending[0])


def contour_levels(low: float, high: float, count: int, spacing: str = "even", scale: str = "linear") -> np.ndarray:
    """``count`` levels strictly inside (low, high), in display units (log10 on a log scale).

    ``spacing`` "even": evenly spaced in display units. "log": see :func:`log_spaced_levels`.
    """
    if spacing not in CONTOUR_SPACINGS:
        raise ValueError(f"unknown contour spacing '{spacing}'; choose one of {', '.join(CONTOUR_SPACINGS)}")
    if count <= 0 or not high > low:
        return np.zeros(0)
    if spacing == "log":
        return log_spaced_levels(low, high, count, scale)
    return np.linspace(low, high, count + 2)[1:-1]


def log_spaced_levels(low: float, high: float, count: int, scale: str = "linear",
                      decades: float = LOG_LEVEL_DECADES) -> np.ndarray:
    """``count`` levels crowding towards the low end: evenly spaced in log(value - min).

    As in Garipov et al.'s mode-connectivity planes (``levels = min + exp(log_alpha + k log_gamma)``):
    in the metric's own units, with ``span = max - min``, level k (0 .. count-1) is
    ``min + span * 10**(-decades * (1 - k / count))``, so the lowest lies ``decades`` decades of
    the span above the minimum and the highest one step below the maximum. The basin around a
    minimum and the low valley of a curve between two minima get most of the lines, where even
    spacing puts one or none. ``low``/``high`` and the result are in display units of ``scale``
    (log10 of the value on a log scale; the levels are computed on the values themselves either way).

    >>> log_spaced_levels(0.0, 1.0, 3, decades=3).round(6).tolist()
    [0.001, 0.01, 0.1]
    """
    if count <= 0 or not high > low:
        return np.zeros(0)
    vmin, vmax = to_metric_units(low, scale), to_metric_units(high, scale)
    span = vmax - vmin
    if not (math.isfinite(span) and span > 0):
        return np.zeros(0)
    levels = vmin + span * 10.0 ** (-decades * (1.0 - np.arange(count) / count))
    if scale == "log":
        levels = np.log10(levels)
    return levels[(levels > low) & (levels < high)]


@dataclass
class DisplayGrid:
    """Cached display arrays of one value grid (say train_loss) for each scale."""

    values: np.ndarray
    done: np.ndarray
    status: np.ndarray = field(init=False)
    veil: np.ndarray = field(init=False)  # what the map draws over the preview (veil_codes)
    _by_scale: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)
    _previews: dict[tuple[str, tuple[float, float] | None], np.ndarray] = field(default_factory=dict, init=False,
                                                                                 repr=False)

    def __post_init__(self) -> None:
        self.status = status_codes(self.values, self.done)
        self.veil = veil_codes(self.status)

    def image(self, scale: str) -> np.ndarray:
        if scale not in self._by_scale:
            self._by_scale[scale] = display_values(self.values, self.done, scale)
        return self._by_scale[scale]

    def preview(self, scale: str, levels: tuple[float, float] | None = None) -> np.ndarray:
        """What the map draws: the image, pending points interpolated from the computed lattice.

        Give the color ``levels`` the preview is drawn with (see :func:`coarse_preview`);
        the last preview is cached per scale and levels.
        """
        key = (scale, levels)  # the map, Compare and the 3D view ask with the same levels: one preview
        if key not in self._previews:
            if len(self._previews) >= PREVIEWS_KEPT:  # colour limits being edited: keep the latest few
                del self._previews[next(iter(self._previews))]
            self._previews[key] = coarse_preview(self.image(scale), self.done, levels)
        return self._previews[key]

    def levels(self, scale: str, limits: ColorLimits = AUTO) -> tuple[float, float]:
        """Color levels from the computed points only (never from the preview's interpolated pixels)."""
        return color_levels(self.image(scale), scale, limits)


def shared_levels(grids: list[DisplayGrid], scale: str, limits: ColorLimits = AUTO) -> tuple[float, float]:
    """One color range for several surfaces (side-by-side comparison on one scale)."""
    finite = [g.image(scale)[np.isfinite(g.image(scale))] for g in grids]
    stacked = np.concatenate(finite) if finite else np.zeros(0, dtype=np.float32)
    return color_levels(stacked, scale, limits)
