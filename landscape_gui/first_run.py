"""The landscape a new user sees first: the mlp-sine sample, trained once and cached.

Qt-free, so the GUI's first launch and a test share it: :func:`plan` says where the
cached run lives, whether it must be trained, and which surface to compute on it.
The cache survives between launches; a cancelled or half-written run is retrained.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.jobs.surface import SurfaceRequest

RECIPE = "mlp-sine"
OPTIONS: dict[str, Any] = {"width": 50}
SEED = 0
GRID = "-1:1:101"  # 10201 points of a 2-layer MLP: about a second on two cores, filled in coarse to fine


def cache_root() -> Path:
    """``$LANDSCAPE_CACHE``, else ``$XDG_CACHE_HOME/landscape``, else ``~/.cache/landscape``."""
    if os.environ.get("LANDSCAPE_CACHE"):
        return Path(os.environ["LANDSCAPE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "landscape"


@dataclass(frozen=True)
class FirstRun:
    """Where the sample lives and what is left to do for it."""

    folder: Path
    recipe: str = RECIPE
    seed: int = SEED
    options: dict[str, Any] = field(default_factory=lambda: dict(OPTIONS))

    @property
    def checkpoint(self) -> Path:
        return self.folder / "model.pt"

    @property
    def surface(self) -> Path:
        return self.folder / "surface.h5"

    def needs_training(self) -> bool:
        """True unless a finished run with these options is on disk."""
        try:
            recipe = json.loads((self.folder / "recipe.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return True
        same = recipe.get("recipe") == self.recipe and recipe.get("seed") == self.seed and all(
            recipe.get("options", {}).get(k) == v for k, v in self.options.items()
        )
        return not (same and not recipe.get("cancelled") and self.checkpoint.is_file())

    def surface_request(self) -> SurfaceRequest:
        """The sample's 2D random-direction surface; an existing file is resumed, not recomputed."""
        return SurfaceRequest(checkpoint=str(self.checkpoint), data=str(self.folder / "train.npz"),
                              x=GRID, y=GRID, out=str(self.surface))


def plan(root: Path | None = None) -> FirstRun:
    width = OPTIONS["width"]
    return FirstRun(folder=(root or cache_root()) / "samples" / f"{RECIPE}-w{width}-s{SEED}")
