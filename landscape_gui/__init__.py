"""Landscape's desktop app: PySide6 + pyqtgraph views over the engine (which never imports Qt)."""
