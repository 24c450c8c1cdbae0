"""Landscape's engine: loss landscapes of PyTorch checkpoints, with no GUI dependency.

The engine loads checkpoints, models and data (:mod:`engine.io`), computes in
weight space (:mod:`engine.numerics`), runs long computations as resumable jobs
(:mod:`engine.jobs`) and stores results in HDF5 (:mod:`engine.io.store`). The
``landscape`` CLI, the Python API below and the desktop app drive the same jobs::

    import engine
    s = engine.surface(checkpoint="model.pt", data="train.npz", x="-1:1:51", y="-1:1:51", out="s.h5")
    s = engine.open("s.h5")
    p = engine.path("a.pt", "b.pt", data="train.npz", curve="bezier", out="p.h5")
"""

__version__ = "0.2.0"

from engine.errors import LandscapeError  # noqa: E402
from engine.api import hessian, open, path, run, surface  # noqa: E402
from engine.io.store import Surface  # noqa: E402
from engine.io.store.paths import PathResult  # noqa: E402
from engine.io.store.spectra import Spectrum  # noqa: E402
from engine.jobs.hessian import HessianJob, HessianRequest  # noqa: E402
from engine.jobs.path import PathJob, PathRequest  # noqa: E402
from engine.jobs.surface import SurfaceJob, SurfaceRequest  # noqa: E402

__all__ = ["HessianJob", "HessianRequest", "LandscapeError", "PathJob", "PathRequest", "PathResult", "Spectrum",
           "Surface", "SurfaceJob", "SurfaceRequest", "__version__", "hessian", "open", "path", "run", "surface"]
