"""Landscape's engine: loss landscapes of PyTorch checkpoints, with no GUI dependency.

The engine loads checkpoints, models and data, builds directions in weight space,
evaluates the loss on grids of weight points and stores the results in HDF5. The
desktop app (``landscape_gui``) and the ``landscape`` CLI both drive it.
"""

__version__ = "0.1.0"

from engine.errors import LandscapeError

__all__ = ["LandscapeError", "__version__"]
