"""Version 0.1's import path of :class:`Problem`, kept for scripts written against it; see :mod:`engine.numerics.problem`."""

from engine.numerics.problem import Problem

__all__ = ["Problem"]
