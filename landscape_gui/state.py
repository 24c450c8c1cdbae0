"""The app's state as plain Python objects (no Qt), which views are given and tests drive.

``AppState`` holds the open results and the current one; ``ViewState`` holds how
they are shown (metric, scale, colour limits, colormap, contours, the slice line). Both emit
events; views subscribe and write back only through these objects, so a test can
set ``view.slice = ...`` and check what every view shows.

Results are of three kinds (``RESULT_STATES``, keyed by the file's ``kind``): a surface
(:class:`Landscape`: a map or a line), a path between two checkpoints
(:class:`PathLandscape`, drawn by the Path tab) and a Hessian spectrum
(:class:`SpectrumLandscape`, drawn by the Spectrum tab). All have a ``path``, a ``name``,
``progress``, ``apply(progress)`` for a running job's steps and ``reload()``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from engine.api import open as open_file
from engine.display.levels import CONTOUR_SPACINGS, LIMIT_MODES, SCALES, ColorLimits, DisplayGrid
from engine.display.paths import TRAINING, TrainingTrace
from engine.display.profile import nearest_node
from engine.display.spectra import RANGES, LiveSpectrum, file_progress
from engine.numerics.density import default_sigma
from engine.io.store import Surface, read_surface
from engine.io.store.paths import PathResult, read_path
from engine.io.store.spectra import Spectrum, read_spectrum
from engine.jobs.hessian import HessianProgress
from engine.jobs.path import PathProgress
from engine.jobs.surface import SurfaceProgress

Point = tuple[float, float]
AUTO_COMPARED = 6  # the first surfaces opened join the Compare tab by themselves; tick more in the list


class Event:
    """A list of callbacks: ``connect(f)``, ``emit(*args)`` calls each (napari's EventEmitter, minus Qt)."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> None:
        self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., Any]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            callback(*args)


@dataclass(eq=False)
class Landscape:
    """One open surface (file on disk, maybe still being computed) and its cached display grids."""

    surface: Surface
    name: str
    computing: bool = False
    _grids: dict[str, DisplayGrid] = field(default_factory=dict, repr=False)
    kind: ClassVar[str] = "surface"

    @classmethod
    def open(cls, path: str | Path) -> "Landscape":
        return cls.from_surface(read_surface(path))

    @classmethod
    def from_surface(cls, surface: Surface) -> "Landscape":
        return cls(surface=_pending_as_nan(surface), name=display_name(surface))

    @property
    def path(self) -> Path:
        return self.surface.path

    @property
    def metrics(self) -> list[str]:
        return list(self.surface.values)

    @property
    def progress(self) -> tuple[int, int]:
        return int(self.surface.done.sum()), int(self.surface.done.size)

    @property
    def complete(self) -> bool:
        done, total = self.progress
        return done == total

    def shown_metric(self, metric: str) -> str:
        """``metric`` if this surface has it, else its first one (a Li et al. file may hold test_loss only)."""
        return metric if metric in self.surface.values else self.metrics[0]

    def grid(self, metric: str) -> DisplayGrid:
        """Display arrays of ``metric`` (cached until new values arrive)."""
        metric = self.shown_metric(metric)
        if metric not in self._grids:
            self._grids[metric] = DisplayGrid(self.surface.values[metric], self.surface.done)
        return self._grids[metric]

    @property
    def is_line(self) -> bool:
        """A slice line computed in another surface's plane (shown in the 1D view, not as a map)."""
        return "line" in self.surface.attrs

    @property
    def line_of(self) -> Path | None:
        """For a slice line: the file of the 2D surface whose plane it was computed in."""
        source = self.surface.attrs.get("directions_source") if self.is_line else None
        return Path(source) if source else None

    def apply(self, progress: SurfaceProgress) -> None:
        """Fold a running job's progress step in: its points (flat indices j * nx + i) and values."""
        self.add_values(progress.indices, dict(progress.values))

    def add_values(self, indices: np.ndarray, values: dict[str, np.ndarray | None]) -> None:
        """Set computed points (flat indices j * nx + i) and drop stale caches."""
        done = self.surface.done.reshape(-1)
        for metric, array in values.items():
            if array is not None and metric in self.surface.values:
                self.surface.values[metric].reshape(-1)[indices] = array
        done[indices] = True
        self._grids.clear()

    def replace_surface(self, surface: Surface) -> None:
        """Show another reading of the same file (reopened, or finished by a job)."""
        self.surface = _pending_as_nan(surface)
        self._grids.clear()

    def reload(self) -> None:
        """Re-read the file (after a job finished), keeping the name."""
        self.replace_surface(read_surface(self.surface.path))

    def replace_from(self, other: "Result") -> None:
        """Show what another reading of the same file holds (AppState.add of an open file)."""
        self.replace_surface(other.surface)


@dataclass(frozen=True)
class NoGrid:
    """What a result without a grid (a path) answers where views ask every open result for its surface.

    The surface views (map, profile, 3D, Compare) look at ``surface.dimensions`` of each open
    result: 0 is neither a map (2) nor a line (1), so they leave it out, and nothing else is read.
    """

    path: Path
    attrs: dict[str, Any]
    format: str = "landscape"
    dimensions: int = 0
    trajectory: None = None
    trajectory_names: tuple[str, ...] = ()
    overlay: None = None


@dataclass(eq=False)
class PathLandscape:
    """One open path file (maybe still being computed): its series along t and the curve's training so far.

    ``training`` holds the live training loss a running job reports (the file keeps each
    epoch's mean only: ``result.training``).
    """

    result: PathResult
    name: str
    computing: bool = False
    training: TrainingTrace = field(default_factory=TrainingTrace)
    kind: ClassVar[str] = "path"
    is_line: ClassVar[bool] = False
    line_of: ClassVar[Path | None] = None

    @classmethod
    def open(cls, path: str | Path) -> "PathLandscape":
        return cls.from_result(read_path(path))

    @classmethod
    def from_result(cls, result: PathResult) -> "PathLandscape":
        return cls(result=_pending_path_as_nan(result), name=path_display_name(result))

    @property
    def path(self) -> Path:
        return self.result.path

    @property
    def surface(self) -> NoGrid:
        return NoGrid(self.result.path, self.result.attrs)

    @property
    def metrics(self) -> list[str]:
        return list(self.result.values)

    @property
    def epochs(self) -> int:
        """Epochs of curve training the file asks for (0 for a straight line)."""
        return int(self.result.attrs.get("epochs", 0) or 0) if self.result.bends else 0

    @property
    def progress(self) -> tuple[int, int]:
        """(done, total) steps as the job counts them: points of every series, and training epochs."""
        points = sum(int(s.done.sum()) for s in self.result.series.values())
        total = sum(int(s.done.size) for s in self.result.series.values())
        epochs = self.epochs
        trained = min(int(self.result.bends_epoch), epochs) if epochs else 0
        return points + trained, total + epochs

    @property
    def complete(self) -> bool:
        return all(bool(s.done.all()) for s in self.result.series.values())

    @property
    def has_training(self) -> bool:
        """The file trains a curve (its epochs' losses, and a running job's live loss, are shown)."""
        return bool(self.result.bends)

    def apply(self, progress: PathProgress) -> None:
        """Fold a running job's step in: points of a series along t, or the curve's training loss."""
        if progress.phase == TRAINING:
            self.training.add(progress.epoch, progress.loss, progress.epoch_loss is not None)
            if progress.epoch_loss is not None:
                self.result.bends_epoch = max(self.result.bends_epoch, int(progress.epoch))
            return
        series = self.result.series.get(progress.series)
        if series is None or not len(progress.indices):
            return
        for name, array in progress.values.items():
            if name in series.values and array is not None:
                series.values[name][progress.indices] = array
        series.done[progress.indices] = True

    def replace_result(self, result: PathResult) -> None:
        self.result = _pending_path_as_nan(result)

    def replace_from(self, other: "Result") -> None:
        self.replace_result(other.result)

    def reload(self) -> None:
        """Re-read the file (after a job ended): the barriers and lengths it recorded, its training log."""
        self.replace_result(read_path(self.result.path))


@dataclass(eq=False)
class SpectrumLandscape:
    """One open spectrum file (maybe still being computed) and how its density is drawn.

    ``sigma`` is the Gaussian width the Spectrum tab draws the density at (None: the file's
    own); changing it redraws from the stored quadrature nodes, no Hessian-vector product.
    ``live`` holds what a running job reports (current eigenvalue and trace estimates).
    """

    result: Spectrum
    name: str
    computing: bool = False
    sigma: float | None = None
    live: LiveSpectrum = field(default_factory=LiveSpectrum)
    kind: ClassVar[str] = "spectrum"
    is_line: ClassVar[bool] = False
    line_of: ClassVar[Path | None] = None

    @classmethod
    def open(cls, path: str | Path) -> "SpectrumLandscape":
        return cls.from_result(read_spectrum(path))

    @classmethod
    def from_result(cls, result: Spectrum) -> "SpectrumLandscape":
        return cls(result=result, name=display_name(result, generic=result.path.stem.split(HESSIAN_HERE_TAG)[0]))

    @property
    def path(self) -> Path:
        return self.result.path

    @property
    def surface(self) -> NoGrid:
        return NoGrid(self.result.path, self.result.attrs)

    @property
    def metrics(self) -> list[str]:
        return []

    @property
    def report(self) -> dict[str, Any]:
        return self.result.report

    @property
    def progress(self) -> tuple[int, int]:
        """Hessian-vector products while a job runs; else the parts of the file that are done
        (eigenpairs, trace, each density probe, the results)."""
        if self.computing and self.live.total:
            return self.live.done, self.live.total
        return file_progress(self.result)

    @property
    def complete(self) -> bool:
        done, total = file_progress(self.result)
        return done == total

    @property
    def file_sigma(self) -> float | None:
        """The σ the file's density was drawn at (None before it was)."""
        sigma = float(self.result.sigma)
        return sigma if math.isfinite(sigma) and sigma > 0 else None

    @property
    def shown_sigma(self) -> float | None:
        """The σ the density is drawn at now: the chosen one, else the file's (None with no probe done)."""
        if self.sigma is not None:
            return self.sigma
        if self.file_sigma is not None:
            return self.file_sigma
        values, _weights = self.probes
        return default_sigma(values) if np.isfinite(values).any() else None

    @property
    def probes(self) -> tuple[np.ndarray, np.ndarray]:
        """The density's nodes and weights: the file's, or while a job runs and the file has none yet,
        the probes it has reported (the density forms as they finish)."""
        values, weights = self.result.probes
        if self.computing and not np.isfinite(values).any() and self.live.nodes:
            return self.live.probe_arrays()
        return values, weights

    def apply(self, progress: HessianProgress) -> None:
        """Fold a running job's step in: its stage and current estimates (the file has the rest)."""
        self.live.add(progress.stage, progress.estimate, progress.done, progress.total)

    def replace_result(self, result: Spectrum) -> None:
        self.result = result

    def replace_from(self, other: "Result") -> None:
        self.replace_result(other.result)

    def reload(self) -> None:
        """Re-read the file (after a job ended): its eigenvalues, density and report are final now."""
        self.replace_result(read_spectrum(self.result.path))
        self.live = LiveSpectrum()


Result = Landscape | PathLandscape | SpectrumLandscape

# What the window shows for each kind of job result: the state object a job's file opens as.
RESULT_STATES: dict[str, Callable[[Any], Result]] = {"surface": Landscape.from_surface,
                                                     "path": PathLandscape.from_result,
                                                     "spectrum": SpectrumLandscape.from_result}


def open_result(path: str | Path) -> Result:
    """Read a result file of any kind (surface, Li et al.'s surface, path, spectrum) as the state object
    that shows it."""
    result = open_file(path)
    if isinstance(result, PathResult):
        return RESULT_STATES["path"](result)
    if isinstance(result, Spectrum):
        return RESULT_STATES["spectrum"](result)
    return RESULT_STATES["surface"](result)


def _pending_path_as_nan(result: PathResult) -> PathResult:
    """Values of points not computed are NaN (a file's are already; a job's first reading too)."""
    for series in result.series.values():
        for array in series.values.values():
            array[~series.done] = np.nan
    return result


def path_display_name(result: PathResult) -> str:
    """The file name; a generic one (path.h5) gets its folder's name in front."""
    stem = result.path.stem
    if stem in ("path", "p") and result.path.parent.name:
        return f"{result.path.parent.name}/{stem}"
    return stem


def _pending_as_nan(surface: Surface) -> Surface:
    """Values of points not computed are NaN, so views can use the arrays as they are."""
    for array in surface.values.values():
        array[~surface.done] = np.nan
    return surface


def value_label(metric: str, scale: str) -> str:
    """Axis and color bar label of displayed values."""
    return f"log10 {metric}" if scale == "log" else metric


def point_readout(landscape: Landscape, x: float, y: float, named: bool = True) -> str:
    """``[name: ]x .., y .., metric value, ...`` at the grid point nearest (x, y); '' outside the grid."""
    surface = landscape.surface
    node = nearest_node(surface.x, surface.y, x, y)
    if node is None:
        return ""
    i, j = node
    parts = [f"x {surface.x[i]:.4g}, y {surface.y[j]:.4g}"]
    if not surface.done[j, i]:
        parts.append("not computed yet")
    else:
        parts += [f"{metric} {values[j, i]:.6g}" + ("%" if metric.endswith("acc") else "")
                  for metric, values in surface.values.items()]
    return (f"{landscape.name}: " if named else "") + ",  ".join(parts)


HESSIAN_HERE_TAG = "-hessian-"  # <surface stem>-hessian-x..-y...h5: the Hessian at a point of a surface


def display_name(surface: Surface | Spectrum, generic: str | None = None) -> str:
    """A short label: the file name (a generic one with its folder's), plus the trainer's width and seed
    when recorded. ``generic``: the part of the name that decides whether it is generic (default all of it)."""
    label = surface.path.stem
    try:
        meta = json.loads(surface.attrs.get("checkpoint_metadata") or "{}")
    except (TypeError, ValueError):
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    extras = [f"{k} {meta[k]}" for k in ("width", "seed") if k in meta]
    if (generic or surface.path.stem) in ("surface", "model", "spectrum") and surface.path.parent.name:
        label = f"{surface.path.parent.name}/{label}"
    return f"{label} ({', '.join(extras)})" if extras else label


@dataclass
class Curve:
    """A pinned 1D curve shown in the profile view (a profile pinned from a surface's slice line).

    ``owner`` is the file of the surface it came from: it is shown with that surface only.
    """

    key: str
    label: str
    x: np.ndarray
    values: dict[str, np.ndarray]
    owner: Path | None = None

    def belongs_to(self, landscape: "Landscape | None") -> bool:
        return self.owner is None or (landscape is not None and self.owner.resolve() == landscape.path.resolve())


class ViewState:
    """How landscapes are shown; every setter emits ``changed(name)`` if the value changed.

    Color limits are plain values (JSON and QSettings friendly): ``color_limits`` is the
    mode ("auto", "percentiles" or "values"), ``percentile_low``/``percentile_high`` its
    percentiles, ``value_min``/``value_max`` its typed values in the metric's own units
    (None: that end automatic). :meth:`limits` turns them into what the engine takes.
    """

    DEFAULTS: dict[str, Any] = {
        "metric": "train_loss",
        "scale": "log",
        "color_limits": "auto",
        "percentile_low": 1.0,
        "percentile_high": 99.0,
        "value_min": None,
        "value_max": None,
        "colormap": "viridis",
        "contours": 10,
        "contour_spacing": "even",  # or "log": levels crowd towards the minimum (engine.display.levels)
        "slice": None,  # (start, end) in the plane's coordinates
        "show_trajectory": True,
        "spectrum_range": "all",  # the Spectrum tab's x range: every eigenvalue, or the bulk (engine.display.spectra)
    }
    # A change of any of these changes the color levels (views redraw, settings persist them).
    LIMIT_KEYS = ("color_limits", "percentile_low", "percentile_high", "value_min", "value_max")

    def __init__(self) -> None:
        self.changed = Event()
        self._values: dict[str, Any] = dict(ViewState.DEFAULTS)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("_values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ViewState.DEFAULTS:
            self.set(name, value)
        elif name in ("changed", "_values"):
            super().__setattr__(name, value)
        else:  # a typo (or a setting this version no longer has) must not pass silently
            raise AttributeError(f"ViewState has no setting '{name}'")

    def set(self, name: str, value: Any) -> None:
        if name not in self._values:
            raise AttributeError(name)
        value = self._checked(name, value)
        if self._values[name] == value:
            return
        self._values[name] = value
        self.changed.emit(name)

    @staticmethod
    def _checked(name: str, value: Any) -> Any:
        """``value`` as stored for ``name``; ValueError for one that has no meaning there."""
        if name == "scale" and value not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}")
        if name == "color_limits" and value not in LIMIT_MODES:
            raise ValueError(f"color_limits must be one of {LIMIT_MODES}")
        if name == "contour_spacing" and value not in CONTOUR_SPACINGS:
            raise ValueError(f"contour_spacing must be one of {CONTOUR_SPACINGS}")
        if name == "spectrum_range" and value not in RANGES:
            raise ValueError(f"spectrum_range must be one of {RANGES}")
        if name == "slice" and value is not None:
            (x0, y0), (x1, y1) = value
            return (float(x0), float(y0)), (float(x1), float(y1))
        if name in ("percentile_low", "percentile_high"):
            return float(min(100.0, max(0.0, float(value))))
        if name in ("value_min", "value_max") and value is not None:
            if not math.isfinite(float(value)):
                raise ValueError(f"{name} must be a finite number (or None for automatic)")
            return float(value)
        return value

    def limits(self) -> ColorLimits:
        """The color limits as engine.display.levels takes them."""
        mode = self.color_limits
        if mode == "percentiles":
            return ColorLimits(mode, self.percentile_low, self.percentile_high)
        if mode == "values":
            return ColorLimits(mode, self.value_min, self.value_max)
        return ColorLimits()

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


class AppState:
    """The open results (surfaces and paths), which one is current, which are compared, and pinned curves."""

    def __init__(self) -> None:
        self.landscapes: list[Result] = []
        self.current: Result | None = None
        self.compared: list[Landscape] = []
        self.curves: list[Curve] = []
        self.view = ViewState()
        self.opened = Event()  # (landscape)
        self.closed = Event()  # (landscape)
        self.current_changed = Event()  # (landscape | None)
        self.updated = Event()  # (landscape): new values
        self.compared_changed = Event()
        self.curves_changed = Event()
        self.sigma_changed = Event()  # (spectrum landscape): the density is drawn at another width

    def find(self, path: str | Path) -> Result | None:
        path = Path(path).resolve()
        return next((l for l in self.landscapes if l.path.resolve() == path), None)

    def paths(self) -> list[PathLandscape]:
        """The open path files."""
        return [l for l in self.landscapes if l.kind == "path"]

    def spectra(self) -> list[SpectrumLandscape]:
        """The open spectrum files."""
        return [l for l in self.landscapes if l.kind == "spectrum"]

    def set_sigma(self, landscape: SpectrumLandscape, sigma: float | None) -> None:
        """Draw ``landscape``'s density at width ``sigma`` (None: the file's); a redraw, never a job."""
        if sigma is not None and not (math.isfinite(float(sigma)) and float(sigma) > 0):
            raise ValueError("sigma must be a positive number")
        sigma = None if sigma is None else float(sigma)
        if landscape.sigma == sigma:
            return
        landscape.sigma = sigma
        self.sigma_changed.emit(landscape)

    def add(self, landscape: Result, make_current: bool = True) -> Result:
        """Add (or replace the open copy of the same file) and usually make it current."""
        existing = self.find(landscape.path)
        if existing is not None and existing.kind != landscape.kind:  # the file was rewritten as another kind
            self.remove(existing)
            existing = None
        if existing is not None:
            existing.replace_from(landscape)
            landscape = existing
            self.updated.emit(landscape)
        else:
            self.landscapes.append(landscape)
            self.opened.emit(landscape)
            if landscape.surface.dimensions == 2 and len(self.compared) < AUTO_COMPARED:
                self.compared.append(landscape)
                self.compared_changed.emit()
        if make_current:
            self.set_current(landscape)
        return landscape

    def set_current(self, landscape: Result | None) -> None:
        if landscape is self.current:
            return
        self.current = landscape
        if landscape is not None and landscape.surface.dimensions == 2:
            self.view.set("slice", default_slice(landscape.surface))
        self.current_changed.emit(landscape)

    def remove(self, landscape: Result) -> None:
        if landscape not in self.landscapes:
            return
        index = self.landscapes.index(landscape)
        self.landscapes.remove(landscape)
        if landscape in self.compared:
            self.compared.remove(landscape)
            self.compared_changed.emit()
        self.closed.emit(landscape)
        if self.current is landscape:
            self.set_current(self.landscapes[min(index, len(self.landscapes) - 1)] if self.landscapes else None)

    def set_compared(self, landscapes: list[Result]) -> None:
        self.compared = [l for l in landscapes if l in self.landscapes and l.surface.dimensions == 2]
        self.compared_changed.emit()

    def shown_curves(self) -> list[Curve]:
        """Pinned curves of the current surface (and curves that belong to none)."""
        return [c for c in self.curves if c.belongs_to(self.current)]

    def pin(self, curve: Curve) -> None:
        self.curves = [c for c in self.curves if c.key != curve.key] + [curve]
        self.curves_changed.emit()

    def unpin_all(self) -> None:
        self.curves = []
        self.curves_changed.emit()


def default_slice(surface: Surface) -> tuple[Point, Point]:
    """The x axis through the middle of the grid (the origin for symmetric ranges)."""
    y_mid = float(surface.y[len(surface.y) // 2]) if surface.y is not None else 0.0
    return (float(surface.x[0]), y_mid), (float(surface.x[-1]), y_mid)
