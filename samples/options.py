"""Recipe options declared once, then validated and turned into CLI flags generically.

Each recipe lists its ``Option``s; ``resolve`` checks user values (one-line
LandscapeError on anything wrong) and ``add_arguments`` builds argparse flags, so
``python samples/X.py``, ``landscape train`` and the GUI accept the same options.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from engine.errors import LandscapeError


@dataclass(frozen=True)
class Option:
    """One recipe option: ``name`` is the Python keyword, ``flag`` the CLI spelling."""

    name: str
    type: type  # int, float or str
    default: Any
    help: str
    minimum: float | None = None  # lower bound for numbers
    strict: bool = False  # True: the value must be greater than minimum, not equal
    choices: tuple[Any, ...] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, recipe: str, value: Any) -> Any:
        """Return ``value`` converted to this option's type, or raise a one-line LandscapeError."""
        where = f"{recipe} option {self.flag}"
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, self.type):
            raise LandscapeError(f"{where} must be {self.type.__name__}, got {value!r}")
        if self.type is float and not math.isfinite(value):
            raise LandscapeError(f"{where} must be a finite number, got {value!r}")
        if self.minimum is not None and (value <= self.minimum if self.strict else value < self.minimum):
            bound = "greater than" if self.strict else "at least"
            raise LandscapeError(f"{where} must be {bound} {self.minimum:g}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise LandscapeError(f"{where} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        return value


def resolve(recipe: str, specs: Iterable[Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``given``; a value of None means "use the default".

    Accepts ``n_train`` and ``n-train`` alike so CLI and Python spellings both work.
    """
    specs = {spec.name: spec for spec in specs}
    values = {name: spec.default for name, spec in specs.items()}
    for key, value in given.items():
        name = key.lstrip("-").replace("-", "_")
        if name not in specs:
            valid = ", ".join(spec.flag for spec in specs.values())
            raise LandscapeError(f"{recipe} has no option '{key}'; valid options: {valid}")
        if value is not None:
            values[name] = specs[name].check(recipe, value)
    return values


def check_seed(seed: Any) -> int:
    """Seeds are non-negative integers (the pair recipe also uses seed + 1)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise LandscapeError(f"seed must be a non-negative integer, got {seed!r}")
    return seed


def add_arguments(parser: argparse.ArgumentParser, specs: Iterable[Option]) -> None:
    """Add one flag per option, defaulting to None so ``resolve`` fills in recipe defaults."""
    for spec in specs:
        parser.add_argument(
            spec.flag,
            dest=spec.name,
            type=spec.type,
            default=None,
            choices=spec.choices,
            metavar=spec.name.upper() if spec.choices is None else None,
            help=f"{spec.help} (default: {spec.default})",
        )
