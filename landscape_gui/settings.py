"""What persists between runs: recent files, last folders, display choices, window layout.

A thin layer over QSettings so tests can hand the window a QSettings on a temp
ini file and so every key lives in one place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "Landscape"
APPLICATION = "Landscape"
MAX_RECENT = 12


def default_settings() -> QSettings:
    return QSettings(QSettings.IniFormat, QSettings.UserScope, ORGANIZATION, APPLICATION)


class AppSettings:
    """Typed access to the app's QSettings."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else default_settings()

    # -- recent files ----------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        value = self.q.value("recent/files", [])
        files = [value] if isinstance(value, str) else list(value or [])
        return [f for f in files if f]

    def add_recent(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        files = [path] + [f for f in self.recent_files() if f != path]
        self.q.setValue("recent/files", files[:MAX_RECENT])

    def clear_recent(self) -> None:
        self.q.setValue("recent/files", [])

    def remove_recent(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        self.q.setValue("recent/files", [f for f in self.recent_files() if f != path])

    # -- folders ----------------------------------------------------------------------------
    def remembered_folder(self, kind: str) -> str | None:
        """Where the last file of this kind was chosen, if one was (and the folder still exists)."""
        folder = self.q.value(f"folders/{kind}")
        return str(folder) if folder and Path(str(folder)).is_dir() else None

    def last_folder(self, kind: str) -> str:
        """Where the last file of this kind was; else the folder of the most recent file; else home."""
        folder = self.remembered_folder(kind)
        if folder is not None:
            return folder
        recent = [Path(f).parent for f in self.recent_files() if Path(f).parent.is_dir()]
        return str(recent[0]) if recent else str(Path.home())

    def set_last_folder(self, kind: str, path: str | Path) -> None:
        path = Path(path)
        self.q.setValue(f"folders/{kind}", str(path if path.is_dir() else path.parent))

    # -- display ----------------------------------------------------------------------------
    def display(self) -> dict[str, Any]:
        """How surfaces were shown last (the view state's choices, the slice line excepted)."""
        try:
            value = json.loads(str(self.q.value("display/view", "{}")))
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def set_display(self, values: dict[str, Any]) -> None:
        self.q.setValue("display/view", json.dumps({k: v for k, v in values.items() if k != "slice"}))

    # -- the session: what was open when the app last closed ---------------------------------
    def restore_session_enabled(self) -> bool:
        return str(self.q.value("session/restore", "true")).lower() in ("true", "1")

    def set_restore_session(self, enabled: bool) -> None:
        self.q.setValue("session/restore", "true" if enabled else "false")

    def session(self) -> dict[str, Any]:
        """``files`` (open at close, in order), ``current``, ``tab`` and ``slice`` of the current surface."""
        try:
            value = json.loads(str(self.q.value("session/last", "{}")))
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def set_session(self, session: dict[str, Any]) -> None:
        self.q.setValue("session/last", json.dumps(session))

    # -- window layout -------------------------------------------------------------------
    def window(self) -> tuple[QByteArray | None, QByteArray | None]:
        return self.q.value("window/geometry"), self.q.value("window/state")

    def set_window(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)

    def sync(self) -> None:
        self.q.sync()
