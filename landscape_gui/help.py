"""The Help menu's windows: the tour (the README), the keyboard shortcuts, and About.

The tour is the README as installed with the package (its metadata carries it), so it
is the same text as on the project page; the shortcut list is read from the window's
own actions, so it is never out of date.
"""

from __future__ import annotations

import platform
import re
import sys
from importlib import metadata

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMenuBar, QTableWidget, QTableWidgetItem, QTextBrowser, QVBoxLayout, QWidget

DISTRIBUTION = "landscape"


def tour_text() -> str:
    """The README in Markdown, from the installed package's metadata (its screenshot left out:
    the app itself is on the screen, and the picture would only overflow the window)."""
    try:
        text = metadata.metadata(DISTRIBUTION).get_payload()  # type: ignore[attr-defined]
    except metadata.PackageNotFoundError:
        text = ""
    if not text:
        return "The tour is the project's README.md; this installation does not carry it."
    return re.sub(r"^!\[[^\]]*\]\([^)]*\)\s*$", "", text, flags=re.M)


def versions() -> dict[str, str]:
    """Versions a bug report needs: Landscape, Python, torch, Qt (binding and runtime), pyqtgraph, numpy, h5py."""
    import h5py
    import numpy
    import pyqtgraph
    import PySide6
    import torch
    from PySide6.QtCore import qVersion

    import engine

    return {
        "Landscape": engine.__version__,
        "Python": f"{platform.python_version()} ({sys.platform})",
        "torch": f"{torch.__version__} ({'CUDA ' + torch.version.cuda if torch.cuda.is_available() else 'CPU'})",
        "PySide6 / Qt": f"{PySide6.__version__} / {qVersion()}",
        "pyqtgraph": pyqtgraph.__version__,
        "numpy": numpy.__version__,
        "h5py": f"{h5py.__version__} (HDF5 {h5py.version.hdf5_version})",
    }


def shortcuts(menu_bar: QMenuBar) -> list[tuple[str, str, str]]:
    """(menu, action, key) for every action of the menus that has a shortcut."""
    rows = []
    for menu_action in menu_bar.actions():
        menu = menu_action.menu()
        if menu is None:
            continue
        for action in _actions(menu.actions()):
            key = action.shortcut().toString(QKeySequence.NativeText)
            if key:
                rows.append((_plain(menu_action.text()), _plain(action.text()), key))
    return rows


def _actions(actions: list[QAction]) -> list[QAction]:
    found = []
    for action in actions:
        if action.menu() is not None:
            found += _actions(action.menu().actions())
        elif not action.isSeparator():
            found.append(action)
    return found


def _plain(text: str) -> str:
    return text.replace("&", "").replace("…", "")


class HelpDialog(QDialog):
    """A closable window around one widget (the tour's text, the shortcut table, About)."""

    def __init__(self, title: str, body: QWidget, parent: QWidget | None = None, size: tuple[int, int] = (720, 560)):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.body = body
        layout = QVBoxLayout(self)
        layout.addWidget(body)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(*size)


def tour_dialog(parent: QWidget | None = None) -> HelpDialog:
    browser = QTextBrowser()
    browser.setOpenExternalLinks(True)
    browser.setMarkdown(tour_text())
    return HelpDialog("Landscape: a tour", browser, parent)


def shortcuts_dialog(menu_bar: QMenuBar, parent: QWidget | None = None) -> HelpDialog:
    rows = shortcuts(menu_bar)
    table = QTableWidget(len(rows), 3)
    table.setHorizontalHeaderLabels(["Menu", "Command", "Keys"])
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            item = QTableWidgetItem(text)
            item.setFlags(item.flags() & ~Qt.ItemIsEditable)
            table.setItem(r, c, item)
    table.resizeColumnsToContents()
    table.horizontalHeader().setStretchLastSection(True)
    table.verticalHeader().setVisible(False)
    return HelpDialog("Keyboard shortcuts", table, parent, size=(520, 480))


def about_dialog(parent: QWidget | None = None) -> HelpDialog:
    browser = QTextBrowser()
    lines = "".join(f"<tr><td><b>{name}</b></td><td>{version}</td></tr>" for name, version in versions().items())
    browser.setHtml(
        "<h3>Landscape</h3><p>See the loss landscape around PyTorch checkpoints: filter-normalized slices, "
        "stored point by point in HDF5, resumable, safe with checkpoints you did not write.</p>"
        f"<table cellspacing='6'>{lines}</table>"
    )
    return HelpDialog("About Landscape", browser, parent, size=(480, 360))
