"""Colormaps and the colors of point status, shared by every view."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

# Perceptually uniform maps first: loss surfaces are read by their level sets.
COLORMAPS = ("viridis", "plasma", "inferno", "magma", "cividis", "turbo", "CET-L1", "CET-D1")

# RGBA drawn under the colored image for each engine.display.levels status code.
STATUS_LUT = np.array(
    [
        [0, 0, 0, 0],  # COMPUTED: the value image covers it
        [235, 235, 235, 110],  # PENDING: a veil over the preview where points are not computed yet
        [200, 30, 120, 255],  # NONFINITE: NaN or inf loss, masked in magenta
    ],
    dtype=np.uint8,
)


def colormap(name: str) -> pg.ColorMap:
    """A pyqtgraph colormap by name, falling back to viridis for unknown names (old settings)."""
    try:
        return pg.colormap.get(name)
    except Exception:  # unknown name or missing data file
        return pg.colormap.get("viridis")
