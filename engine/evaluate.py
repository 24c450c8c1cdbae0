"""Version 0.1's import path of :class:`PointEvaluator`, kept for scripts written against it; see :mod:`engine.numerics.evaluate`."""

from engine.numerics.evaluate import PointEvaluator

__all__ = ["PointEvaluator"]
