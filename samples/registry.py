"""All recipes by name, for ``landscape train RECIPE`` and the GUI.

A front end needs only ``RECIPES`` (names, one-line descriptions, option specs to
build flags or forms from) and :func:`train`, which validates everything first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.errors import LandscapeError
from samples import digits_cnn, mlp_sine, mlp_sine_pair
from samples.options import Option
from samples.training import Progress, TrainResult


@dataclass(frozen=True)
class Recipe:
    """A named training recipe; ``script`` is its runnable file."""

    name: str
    description: str
    options: tuple[Option, ...]
    module: ModuleType

    @property
    def script(self) -> Path:
        return Path(self.module.__file__)

    def defaults(self) -> dict[str, Any]:
        return {option.name: option.default for option in self.options}

    def train(self, out: Path | str, seed: int = 0, progress: Progress | None = None, **options: Any) -> TrainResult:
        """Validate the options (one-line LandscapeError) and train into ``out``."""
        return self.module.train(out, seed=seed, progress=progress, **options)


RECIPES: dict[str, Recipe] = {
    module.NAME: Recipe(module.NAME, module.DESCRIPTION, tuple(module.OPTIONS), module)
    for module in (mlp_sine, mlp_sine_pair, digits_cnn)
}


def get(name: str) -> Recipe:
    """The recipe called ``name``, or a LandscapeError listing the valid names."""
    try:
        return RECIPES[name]
    except (KeyError, TypeError):
        raise LandscapeError(f"unknown recipe '{name}'; choose one of {', '.join(RECIPES)}") from None


def train(recipe_name: str, out: Path | str, seed: int = 0, progress: Progress | None = None,
          **options: Any) -> TrainResult:
    """Train recipe ``recipe_name`` into ``out``; bad names and options raise LandscapeError."""
    return get(recipe_name).train(out, seed=seed, progress=progress, **options)
