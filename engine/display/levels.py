"""What a view draws from a surface: display values, color levels, contour levels, point status.

Pure numpy, so the GUI holds no numerics: it asks for a :class:`DisplayGrid` once
per surface (and again only when new points arrive), then switches scale, clip and
colormap by picking cached arrays and levels, never by recomputing the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCALES = ("linear", "log")
# On a log scale the few points at an interpolating minimum (loss 1e-15 where its neighbours
# have 1e-3) would take most of the colormap; the low end starts at this percentile instead.
LOG_FLOOR_PERCENTILE = 0.5
# Status codes drawn under the colored image: computed points are colored by value.
COMPUTED, PENDING, NONFINITE = 0, 1, 2


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


def coarse_preview(image: np.ndarray, done: np.ndarray) -> np.ndarray:
    """Pending points filled with the nearest computed point's value, so a grid computed coarse
    to fine looks like a low-resolution picture that sharpens, not like scattered dots.

    Only for drawing under the "pending" veil: the file, profiles and hover keep NaN there.
    """
    done = np.asarray(done, dtype=bool)
    if done.all() or not done.any():
        return image
    from scipy.ndimage import distance_transform_edt

    rows, cols = distance_transform_edt(~done, return_distances=False, return_indices=True)
    return np.ascontiguousarray(image[rows, cols])


def status_codes(values: np.ndarray, done: np.ndarray) -> np.ndarray:
    """uint8 per point: COMPUTED, PENDING (not computed yet) or NONFINITE (computed, NaN/inf)."""
    done = np.asarray(done, dtype=bool)
    codes = np.full(done.shape, PENDING, dtype=np.uint8)
    codes[done] = COMPUTED
    codes[done & ~np.isfinite(values)] = NONFINITE
    return codes


def color_levels(display: np.ndarray, clip_percentile: float = 100.0, floor_percentile: float = 0.0) -> tuple[float, float]:
    """(low, high) for the colormap: the floor_percentile-th and clip_percentile-th percentiles of finite values.

    Loss surfaces span orders of magnitude away from the minimum; clipping the top
    (say at the 95th percentile) spends the colormap on the basin. With no finite
    value yet the levels are (0, 1); a flat surface gets a unit-wide range.
    """
    finite = display[np.isfinite(display)]
    if finite.size == 0:
        return 0.0, 1.0
    low = float(np.percentile(finite, floor_percentile)) if floor_percentile > 0 else float(finite.min())
    high = float(np.percentile(finite, np.clip(clip_percentile, 0.0, 100.0))) if clip_percentile < 100 else float(finite.max())
    if not high > low:
        high = low + (abs(low) * 1e-6 or 1.0)
    return low, high


def contour_levels(low: float, high: float, count: int) -> np.ndarray:
    """``count`` evenly spaced levels strictly inside (low, high), in display units (log10 on a log scale)."""
    if count <= 0 or not high > low:
        return np.zeros(0)
    return np.linspace(low, high, count + 2)[1:-1]


def contour_field(display: np.ndarray, high: float) -> np.ndarray:
    """The display grid with holes (NaN) set just above ``high``, so contour tracing never meets NaN."""
    filled = np.where(np.isfinite(display), np.minimum(display, high), high + abs(high) * 1e-3 + 1e-3)
    return np.ascontiguousarray(filled, dtype=np.float32)


@dataclass
class DisplayGrid:
    """Cached display arrays of one value grid (say train_loss) for each scale."""

    values: np.ndarray
    done: np.ndarray
    status: np.ndarray = field(init=False)
    _by_scale: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.status = status_codes(self.values, self.done)

    def image(self, scale: str) -> np.ndarray:
        if scale not in self._by_scale:
            self._by_scale[scale] = display_values(self.values, self.done, scale)
        return self._by_scale[scale]

    def preview(self, scale: str) -> np.ndarray:
        """What the map draws: the image, with pending points showing their nearest computed value."""
        key = f"preview:{scale}"
        if key not in self._by_scale:
            self._by_scale[key] = coarse_preview(self.image(scale), self.done)
        return self._by_scale[key]

    def levels(self, scale: str, clip_percentile: float = 100.0) -> tuple[float, float]:
        return color_levels(self.image(scale), clip_percentile, LOG_FLOOR_PERCENTILE if scale == "log" else 0.0)


def shared_levels(grids: list[DisplayGrid], scale: str, clip_percentile: float = 100.0) -> tuple[float, float]:
    """One color range for several surfaces (side-by-side comparison on one scale)."""
    finite = [g.image(scale)[np.isfinite(g.image(scale))] for g in grids]
    stacked = np.concatenate(finite) if finite else np.zeros(0, dtype=np.float32)
    return color_levels(stacked, clip_percentile, LOG_FLOOR_PERCENTILE if scale == "log" else 0.0)
