"""Version 0.1's import path for reading surface files, kept for scripts written against it; see :mod:`engine.io.store`."""

from engine.io.store import Surface, read_surface, write_surface

__all__ = ["Surface", "read_surface", "write_surface"]
