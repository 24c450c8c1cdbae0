"""Name the architecture and the data of a checkpoint: ``ModelDialog`` -> :class:`ModelChoice`.

Shown when a checkpoint is not self-describing (it holds only weights), when it
needs trusting as a pickle, or when the user wants another model or data set.
"Check" (and OK) really builds the model with the engine, so a wrong reference or
kwargs that do not fit the weights show up here as the engine's one-line message,
not later in a half-started computation. A relative file in the model or data field
(``models.py:build``, ``train.npz``) is looked up next to the checkpoint first, then in
the working directory, and the dialog says which one it uses. Until the user first
presses Check or OK, an empty data field gets guidance, not an error.

Also holds the small widgets and helpers the other dialogs share (error label,
recent-entry combo boxes stored in QSettings, where file pickers start, fitting a
dialog on a small screen).
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from PySide6.QtCore import QPoint, QRect, QSettings, QSize, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from engine.io.checkpoints import Checkpoint, load_checkpoint, pickle_import_folders
from engine.errors import LandscapeError
from engine.io.models import build_model, parse_kwargs
from engine.io.references import is_trusted, one_line, resolve, split_reference
from landscape_gui.settings import AppSettings

RECENT_LIMIT = 10
SCREEN_MARGIN = 40  # pixels left free around a dialog fitted to a small screen (title bar, panel)
DATA_SUFFIXES = (".npz", ".pt", ".pth", ".h5", ".hdf5")
# engine.io.checkpoints words the refusal of a pickle that needs code this way.
_PICKLE_NEEDED = "needs arbitrary unpickling"

KEY_RECENT_MODELS = "model_dialog/recent_models"
KEY_RECENT_KWARGS = "model_dialog/recent_kwargs"
KEY_RECENT_DATA = "model_dialog/recent_data"
DATA_GUIDANCE = ("Name the data to measure the loss on: a .npz, .pt or .h5 file with arrays x and y, "
                 "a built-in sample:NAME, or module:callable.")


# -- shared helpers ---------------------------------------------------------------------------


class ErrorLabel(QLabel):
    """A one-line status message: red for errors, grey for notes, green for success; hidden when empty."""

    COLORS = {"error": "#c62828", "note": "#8a6d00", "ok": "#2e7d32", "info": "#5f6368"}

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)
        self.kind = ""
        self.hide()

    def show_message(self, text: str, kind: str = "error") -> None:
        self.kind = kind if text else ""
        self.setText(text)
        self.setStyleSheet(f"color: {self.COLORS.get(kind, '')};")
        self.setVisible(bool(text))

    def clear_message(self) -> None:
        self.show_message("", "")


def load_recent(settings: QSettings | None, key: str) -> list[str]:
    """A list of recent entries stored as JSON (robust to every QSettings backend)."""
    if settings is None:
        return []
    raw = settings.value(key, "")
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw else raw
    except json.JSONDecodeError:
        return []
    if not isinstance(value, list):
        return []
    return [str(v) for v in value if isinstance(v, str) and v][:RECENT_LIMIT]


def remember_recent(settings: QSettings | None, key: str, entry: str) -> list[str]:
    """Put ``entry`` first in the recent list ``key`` (deduplicated, at most RECENT_LIMIT)."""
    entries = load_recent(settings, key)
    if settings is None or not entry:
        return entries
    entries = [entry] + [e for e in entries if e != entry]
    entries = entries[:RECENT_LIMIT]
    settings.setValue(key, json.dumps(entries))
    return entries


class RecentCombo(QComboBox):
    """An editable combo box whose drop-down lists recent entries (plus fixed suggestions)."""

    def __init__(self, recent: Iterable[str] = (), suggestions: Iterable[str] = (), placeholder: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setEditable(True)
        self.setInsertPolicy(QComboBox.NoInsert)
        self.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(36)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.lineEdit().setPlaceholderText(placeholder)
        self.lineEdit().setClearButtonEnabled(True)
        seen: set[str] = set()
        for item in list(recent) + list(suggestions):
            if item and item not in seen:
                seen.add(item)
                self.addItem(item)
        self.setCurrentIndex(-1)
        self.setEditText("")

    def text(self) -> str:
        return self.currentText().strip()

    def setText(self, text: str) -> None:  # noqa: N802 - Qt naming
        self.setEditText(text)

    def items(self) -> list[str]:
        return [self.itemText(i) for i in range(self.count())]


def browse_button(text: str = "Browse…") -> QPushButton:
    button = QPushButton(text)
    button.setAutoDefault(False)
    return button


def start_folder(settings: AppSettings | None, kind: str, fallback: Path) -> str:
    """Where a file picker of ``kind`` opens: where the last such file was chosen, else ``fallback``
    (the checkpoint's folder beats home or an unrelated recent file)."""
    remembered = settings.remembered_folder(kind) if settings is not None else None
    return remembered or str(fallback)


def fit_on_screen(dialog: QWidget) -> None:
    """Shrink ``dialog`` to its screen's free area and centre it on its parent (or the screen), title bar inside.

    A dialog taller than a small screen is otherwise placed at y = 0 by the window manager, its title
    bar (and the only handle to move it) off the top.
    """
    parent = dialog.parentWidget()
    screen = (parent or dialog).screen().availableGeometry()
    size = dialog.size().boundedTo(QSize(screen.width() - SCREEN_MARGIN, screen.height() - 2 * SCREEN_MARGIN))
    dialog.resize(size.expandedTo(dialog.minimumSizeHint()))
    frame = QRect(QPoint(0, 0), dialog.size())
    frame.moveCenter(parent.frameGeometry().center() if parent is not None and parent.isVisible() else screen.center())
    x = min(max(frame.x(), screen.left()), screen.right() + 1 - frame.width())
    y = min(max(frame.y(), screen.top()), screen.bottom() + 1 - frame.height() - SCREEN_MARGIN)
    dialog.move(max(x, screen.left()), max(y, screen.top()))  # move() places the frame, title bar included


class ScreenFittedDialog(QDialog):
    """A dialog fitted to the screen it first opens on (:func:`fit_on_screen`), once: later moves are the user's."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.placed = False

    def showEvent(self, event) -> None:  # noqa: N802 - Qt naming
        if not self.placed:
            self.placed = True
            fit_on_screen(self)
        super().showEvent(event)


class RequestDialog(ScreenFittedDialog):
    """A dialog that builds a job's request: it closes with OK only when ``request()`` succeeds, and
    shows why not inline. Subclasses have ``error`` (a note), ``scroll`` and ``ok_button()``, build
    ``request()`` (raising LandscapeError) and remember their choices in ``_remember()``."""

    def error_text(self) -> str:
        """The inline error shown now ('' when the fields make a request)."""
        return self.error.text() if self.error.kind == "error" else ""

    def accept(self) -> None:  # noqa: D102 - refuses to close while invalid
        try:
            self.request()
        except LandscapeError as exc:
            self._show_error(one_line(exc))
            return
        self._remember()
        super().accept()

    def _remember(self) -> None:
        """Keep what was chosen for next time (called once the request is valid)."""

    def _show_error(self, text: str) -> None:
        self.error.show_message(text, "error")
        self.ok_button().setEnabled(not text)

    def _grow(self) -> None:
        self.scroll.updateGeometry()  # its size hint follows rows that appeared inside it
        grow_to_content(self)


def align_label_columns(*forms: QFormLayout) -> None:
    """One label column width in every group, so the fields line up down the dialog."""
    labels = []
    for form in forms:
        for i in range(form.rowCount()):
            item = form.itemAt(i, QFormLayout.LabelRole)
            if item is not None and isinstance(item.widget(), QLabel):
                labels.append(item.widget())
    width = max(label.sizeHint().width() for label in labels)
    for label in labels:
        label.setMinimumWidth(width)
        label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)


def grow_to_content(dialog: QWidget) -> None:
    """Make a shown dialog tall enough for rows that appeared, as far as its screen allows (it keeps its place
    unless the bottom would leave the screen)."""
    screen = dialog.screen().availableGeometry()
    height = min(dialog.sizeHint().height(), screen.height() - 2 * SCREEN_MARGIN)
    if height <= dialog.height():
        return
    dialog.resize(dialog.width(), height)
    top = min(dialog.frameGeometry().top(), screen.bottom() + 1 - dialog.frameGeometry().height() - SCREEN_MARGIN)
    dialog.move(dialog.frameGeometry().left(), max(top, screen.top()))


def row(*widgets: QWidget, stretch_first: bool = True) -> QWidget:
    """Widgets side by side in one form row, without extra margins."""
    holder = QWidget()
    layout = QHBoxLayout(holder)
    layout.setContentsMargins(0, 0, 0, 0)
    for index, widget in enumerate(widgets):
        layout.addWidget(widget, 1 if (index == 0 and stretch_first) else 0)
    return holder


# -- the choice -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    """Which architecture and data a checkpoint is evaluated with.

    ``model`` None: the checkpoint's own (its trusted factory, or the module it carries).
    ``model_kwargs`` None: the kwargs the checkpoint names (or none).
    These map one to one onto SurfaceRequest's fields of the same names.
    """

    model: str | None
    model_kwargs: dict[str, Any] | None
    data: str
    trust_pickle: bool = False


def parse_kwargs_text(text: str) -> dict[str, Any] | None:
    """``'{"width": 10}'`` (JSON) or ``'width=10, depth=2'`` -> dict; empty -> None (the checkpoint's own).

    In ``k=v`` form each value is read as JSON when it can be (numbers, true/false,
    null, lists, quoted strings), and as a plain string otherwise.
    """
    text = (text or "").strip()
    if not text:
        return None
    if text.startswith("{"):
        return parse_kwargs(text)
    keys = list(re.finditer(r"(?:^|[\s,;])([A-Za-z_]\w*)\s*=", text))
    if not keys or text[: keys[0].start(1)].strip(" ,;"):
        raise LandscapeError("model kwargs: write JSON like {\"width\": 200} or key=value pairs like width=200, depth=2")
    result: dict[str, Any] = {}
    for index, match in enumerate(keys):
        end = keys[index + 1].start(1) if index + 1 < len(keys) else len(text)
        raw = text[match.end():end].strip().rstrip(",;").strip()
        if not raw:
            raise LandscapeError(f"model kwargs: {match.group(1)}= has no value")
        lowered = raw.lower()
        if lowered in ("true", "false", "none", "null"):
            value: Any = {"true": True, "false": False}.get(lowered)
        else:
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw.strip("'\"")
        result[match.group(1)] = value
    return result


def format_kwargs(kwargs: dict[str, Any] | None) -> str:
    return json.dumps(kwargs) if kwargs else ""


@dataclass
class CheckpointProbe:
    """What loading a checkpoint without trusting it tells the dialogs."""

    path: Path
    checkpoint: Checkpoint | None  # None when it could not be read (see error / needs_pickle)
    needs_pickle: bool
    error: str | None


def probe_checkpoint(path: str | Path) -> CheckpointProbe:
    """Load ``path`` with ``trust_pickle=False``; note whether it is a pickle that needs trusting."""
    path = Path(path)
    try:
        return CheckpointProbe(path, load_checkpoint(path, trust_pickle=False), False, None)
    except LandscapeError as exc:
        message = one_line(exc)
        return CheckpointProbe(path, None, _PICKLE_NEEDED in message, None if _PICKLE_NEEDED in message else message)


def _default_data(checkpoint: Checkpoint | None, path: Path) -> str:
    """The data a checkpoint was trained on: metadata ``train_data``, else a recipe's train.npz nearby."""
    if checkpoint is not None:
        named = checkpoint.metadata.get("train_data")
        if isinstance(named, str) and named:
            return named
    for folder in (path.parent, path.parent.parent):  # OUT/model.pt and OUT/trajectory/epoch_N.pt
        candidate = folder / "train.npz"
        if candidate.is_file():
            return str(candidate)
    return ""


def prefill_from_checkpoint(path: str | Path, probe: CheckpointProbe | None = None) -> ModelChoice:
    """What a checkpoint says about itself: factory, kwargs and (from metadata) its training data.

    Fields the checkpoint does not name are left empty (``model`` None, ``data`` "").
    """
    path = Path(path)
    probe = probe or probe_checkpoint(path)
    checkpoint = probe.checkpoint
    model = checkpoint.model_factory if checkpoint is not None else None
    kwargs = dict(checkpoint.model_kwargs) if checkpoint is not None and checkpoint.model_kwargs else None
    return ModelChoice(model=model, model_kwargs=kwargs, data=_default_data(checkpoint, path),
                       trust_pickle=False)


def automatic_choice(path: str | Path) -> ModelChoice | None:
    """A choice needing no questions (self-describing, trusted factory, known data), else None.

    The app opens a checkpoint with this and shows :class:`ModelDialog` only when it returns None.
    """
    probe = probe_checkpoint(path)
    checkpoint = probe.checkpoint
    if checkpoint is None or checkpoint.model_factory is None:
        return None
    try:
        if not is_trusted(checkpoint.model_factory):
            return None
    except LandscapeError:
        return None
    choice = prefill_from_checkpoint(path, probe)
    return choice if choice.data else None


def locate(path: str, checkpoint_folder: Path) -> tuple[Path, str]:
    """A file named in a field: an absolute path as it is; a relative one next to the checkpoint
    first, then in the working directory. Returns the absolute path and where it was found."""
    named = Path(path).expanduser()
    if named.is_absolute():
        return named, ""
    places = ((checkpoint_folder, "next to the checkpoint"), (Path.cwd(), "in the working directory"))
    for folder, where in places:
        candidate = Path(os.path.normpath(folder.absolute() / named))
        if candidate.exists():
            return candidate, where
    raise LandscapeError(f"no such file: {path} (looked next to the checkpoint, in {checkpoint_folder.absolute()}, "
                         f"and in the working directory, {Path.cwd()})")


def resolve_field(text: str, checkpoint_folder: Path, data_field: bool = False) -> tuple[str, str]:
    """A model or data field with its relative file made absolute (see :func:`locate`), and a note
    saying which file was used ("" when nothing was relative). Module references stay as they are."""
    target, sep, attr = text.rpartition(":")
    if sep and target.lower().endswith(".py"):
        found, where = locate(target, checkpoint_folder)
        return f"{found}:{attr}", (f"{target}: the one {where}, {found}" if where else "")
    if data_field and not text.startswith("sample:") and Path(text).suffix.lower() in DATA_SUFFIXES:
        found, where = locate(text, checkpoint_folder)
        return str(found), (f"{text}: the one {where}, {found}" if where else "")
    return text, ""


def check_choice(path: str | Path, choice: ModelChoice) -> str:
    """Build the model for ``choice`` (and look at its data reference); a short success note or LandscapeError."""
    # a trusted whole-model pickle imports its classes from the folder of the model file named
    checkpoint = load_checkpoint(path, trust_pickle=choice.trust_pickle,
                                 import_from=pickle_import_folders(choice.model))
    model, ref, _kwargs = build_model(checkpoint, choice.model, choice.model_kwargs)
    data = choice.data
    suffix = Path(data).suffix.lower()
    if data.startswith("sample:"):
        from engine.builtin.datasets import DATASETS  # the engine's sample: names

        if data[len("sample:"):] not in DATASETS:
            raise LandscapeError(f"no built-in data set '{data}'; choose one of: "
                                 + ", ".join(f"sample:{n}" for n in DATASETS))
    elif suffix in DATA_SUFFIXES:
        if not Path(data).is_file():
            raise LandscapeError(f"no such data file: {data}")
    else:
        resolve(data)  # module:callable or file.py:callable; the engine calls it when computing
    n_params = sum(p.numel() for p in model.parameters())
    source = ref or f"the {checkpoint.kind} module in the file"
    return f"OK: {type(model).__name__} from {source}, {n_params:,} parameters; weights fit"


# -- the dialog ---------------------------------------------------------------------------------


class ModelDialog(QDialog):
    """Ask for model reference, kwargs and data of ``checkpoint``; :meth:`choice` after accept."""

    checked = Signal(bool, str)  # (ok, message) after every full check

    def __init__(self, checkpoint: str | Path, settings: QSettings | None = None,
                 initial: ModelChoice | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model and data")
        self._path = Path(checkpoint)
        self._settings = settings
        self._folders = AppSettings(settings) if settings is not None else None
        self._probe = probe_checkpoint(self._path)
        self._checked_choice: ModelChoice | None = None
        self._failed_choice: ModelChoice | None = None
        self._tried = False  # until Check or OK, a missing field gets guidance rather than an error
        initial = initial or prefill_from_checkpoint(self._path, self._probe)

        from engine.builtin.datasets import DATASETS

        self.model_edit = RecentCombo(load_recent(settings, KEY_RECENT_MODELS),
                                      placeholder="module.path:callable or path/to/file.py:callable")
        self.model_edit.setToolTip("The function or class that builds the architecture the weights belong to.\n"
                                   "Leave empty to use what the checkpoint names or carries.")
        self.model_browse = browse_button()
        self.kwargs_edit = RecentCombo(load_recent(settings, KEY_RECENT_KWARGS),
                                       placeholder='{"width": 200}  or  width=200, depth=2')
        self.kwargs_edit.setToolTip("Keyword arguments for the model callable, as JSON or key=value pairs.\n"
                                    "Leave empty for the checkpoint's own (or none).")
        self.data_edit = RecentCombo(load_recent(settings, KEY_RECENT_DATA),
                                     suggestions=[f"sample:{name}" for name in DATASETS],
                                     placeholder="data.npz / .pt / .h5, sample:NAME or module:callable")
        self.data_edit.setToolTip("Arrays x and y in a .npz/.pt/.h5 file, a built-in sample:NAME set,\n"
                                  "or module:callable returning (x, y) or a torch Dataset.")
        self.data_browse = browse_button()
        self.trust_box = QCheckBox("I trust this file: allow running pickled code from it")
        self.trust_box.setToolTip("This checkpoint is a pickle that stores Python objects; loading it runs code\n"
                                  "named in the file. Only tick this for files from a source you trust.")
        self.check_button = QPushButton("Check")
        self.check_button.setAutoDefault(False)
        self.check_button.setToolTip("Build the model with these settings and load the checkpoint's weights into it")
        self.status = ErrorLabel()
        self.note = ErrorLabel()

        header = QLabel(f"<b>{html.escape(self._path.name)}</b> — {html.escape(self._describe_checkpoint())}")
        header.setTextFormat(Qt.RichText)
        header.setWordWrap(True)
        header.setToolTip(str(self._path))

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.ExpandingFieldsGrow)
        form.addRow("Model:", row(self.model_edit, self.model_browse))
        form.addRow("Model kwargs:", self.kwargs_edit)
        form.addRow("Data:", row(self.data_edit, self.data_browse))
        form.addRow("", self.trust_box)

        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.addButton(self.check_button, QDialogButtonBox.ActionRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(header)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addWidget(self.status)
        layout.addStretch(1)
        layout.addWidget(self.buttons)

        self.trust_box.setVisible(self._probe.needs_pickle)
        self.set_choice(initial)
        for combo in (self.model_edit, self.kwargs_edit, self.data_edit):
            combo.editTextChanged.connect(self._revalidate)
        self.trust_box.toggled.connect(self._revalidate)
        self.model_browse.clicked.connect(self._browse_model)
        self.data_browse.clicked.connect(self._browse_data)
        self.check_button.clicked.connect(self.check)
        self._revalidate()
        self.resize(max(self.sizeHint().width(), 620), self.sizeHint().height())

    # -- public -----------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self._path

    @property
    def needs_pickle(self) -> bool:
        """True when the checkpoint is a pickle that loads only with trust (the checkbox is shown)."""
        return self._probe.needs_pickle

    def ok_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.Ok)

    def set_choice(self, choice: ModelChoice) -> None:
        """Fill the fields from ``choice`` (the trust box only where it applies)."""
        self.model_edit.setText(choice.model or "")
        self.kwargs_edit.setText(format_kwargs(choice.model_kwargs))
        self.data_edit.setText(choice.data)
        self.trust_box.setChecked(bool(choice.trust_pickle) and self._probe.needs_pickle)

    def set_values(self, *, model: str | None = None, model_kwargs: str | dict | None = None,
                   data: str | None = None, trust_pickle: bool | None = None) -> None:
        """Set some fields programmatically (tests, the app); None leaves a field as it is."""
        if model is not None:
            self.model_edit.setText(model)
        if model_kwargs is not None:
            self.kwargs_edit.setText(model_kwargs if isinstance(model_kwargs, str) else format_kwargs(model_kwargs))
        if data is not None:
            self.data_edit.setText(data)
        if trust_pickle is not None:
            self.trust_box.setChecked(trust_pickle)

    def choice(self) -> ModelChoice:
        """The fields as a ModelChoice, relative files made absolute; LandscapeError when not well-formed."""
        model, data, _notes = self._resolved()
        if not data:
            raise LandscapeError("name the data to measure the loss on (a file, sample:NAME or module:callable)")
        return ModelChoice(model=model, model_kwargs=parse_kwargs_text(self.kwargs_edit.text()), data=data,
                           trust_pickle=self._probe.needs_pickle and self.trust_box.isChecked())

    def _resolved(self) -> tuple[str | None, str, list[str]]:
        """Model and data with relative files found (checkpoint's folder, then working directory), and notes
        saying which files were used."""
        folder = self._path.absolute().parent
        model, notes = None, []
        if self.model_edit.text():
            split_reference(self.model_edit.text())
            model, note = resolve_field(self.model_edit.text(), folder)
            notes.append(note)
        data, note = resolve_field(self.data_edit.text(), folder, data_field=True)
        return model, data, [n for n in notes + [note] if n]

    def check(self) -> bool:
        """Build the model for the current fields; show the result inline. True when it works."""
        self._tried = True
        try:
            choice = self.choice()
        except LandscapeError as exc:
            self.status.show_message(one_line(exc), "error")
            return False
        QGuiApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            message = check_choice(self._path, choice)
        except LandscapeError as exc:
            ok, message = False, one_line(exc)
        except Exception as exc:  # noqa: BLE001 - user model code may raise anything
            ok, message = False, f"{type(exc).__name__}: {one_line(exc)}"
        else:
            ok = True
        finally:
            QGuiApplication.restoreOverrideCursor()
        self._checked_choice = choice if ok else None
        self._failed_choice = None if ok else choice
        self.status.show_message(message, "ok" if ok else "error")
        self.ok_button().setEnabled(ok)
        self.checked.emit(ok, message)
        return ok

    def accept(self) -> None:  # noqa: D102 - OK runs the check unless these fields passed it already
        self._tried = True
        try:
            choice = self.choice()
        except LandscapeError as exc:
            self.status.show_message(one_line(exc), "error")
            return
        if choice != self._checked_choice and not self.check():
            return
        remember_recent(self._settings, KEY_RECENT_MODELS, choice.model or "")
        remember_recent(self._settings, KEY_RECENT_KWARGS, self.kwargs_edit.text())
        remember_recent(self._settings, KEY_RECENT_DATA, choice.data)
        super().accept()

    # -- internals --------------------------------------------------------------------------
    def _describe_checkpoint(self) -> str:
        probe = self._probe
        if probe.needs_pickle:
            return "a pickle that stores Python objects: it loads only if you trust it"
        if probe.checkpoint is None:
            return "cannot be read"
        ckpt = probe.checkpoint
        n = sum(t.numel() for t in ckpt.state_dict.values())
        if ckpt.model_factory:
            what = f"names its model: {ckpt.model_factory}"
        elif ckpt.module is not None:
            what = "carries its own module"
        else:
            what = "holds only weights: name the model below"
        return f"{ckpt.kind} checkpoint, {len(ckpt.state_dict)} tensors ({n:,} values); {what}"

    def _static_note(self) -> tuple[str, str]:
        """The note above the status: the checkpoint's own problem, an untrusted factory, or which files are used."""
        probe = self._probe
        if probe.error:
            return probe.error, "error"
        model = self.model_edit.text()
        ckpt = probe.checkpoint
        if ckpt is not None and ckpt.model_factory and model == ckpt.model_factory:
            try:
                trusted = is_trusted(model)
            except LandscapeError:
                trusted = False
            if not trusted:
                return (f"The checkpoint names {model}, which is not one of Landscape's model factories: "
                        "importing it runs its code. Check or OK confirms that you trust it.", "note")
        try:
            _model, _data, found = self._resolved()
        except LandscapeError:
            found = []
        return ("Using " + "; ".join(found), "info") if found else ("", "")

    def _revalidate(self, *_args: Any) -> None:
        text, kind = self._static_note()
        self.note.show_message(text, kind)
        ok = self._probe.error is None
        message, kind = "", "error"
        if ok and self._probe.needs_pickle and not self.trust_box.isChecked():
            ok, message, kind = False, ("This checkpoint is a pickle: tick “I trust this file” to load it "
                                        "(it runs code from the file)."), "note"
        if ok and not self.data_edit.text() and not self._tried:
            self.status.show_message(DATA_GUIDANCE, "info")
            self.ok_button().setEnabled(True)  # OK then says what is missing
            self.check_button.setEnabled(True)
            return
        if ok:
            try:
                choice = self.choice()
            except LandscapeError as exc:
                ok, message = False, one_line(exc)
            else:
                if choice == self._failed_choice:
                    ok = False  # keep the failed check's message until something changes
                    message = self.status.text()
                elif choice == self._checked_choice:
                    message = self.status.text()
                    self.status.show_message(message, "ok")
                    self.ok_button().setEnabled(True)
                    return
        if self._probe.error is not None:
            message = ""  # already said by the note
        self.status.show_message(message, kind if message else "")
        self.ok_button().setEnabled(ok)
        self.check_button.setEnabled(self._probe.error is None and
                                     not (self._probe.needs_pickle and not self.trust_box.isChecked()))

    def _browse_model(self) -> None:
        start = start_folder(self._folders, "models", self._path.absolute().parent)
        path, _ = QFileDialog.getOpenFileName(self, "Python file that defines the model", start, "Python (*.py)")
        if path:
            self._remember_folder("models", path)
            self.model_edit.setText(f"{path}:")
            self.model_edit.setFocus()
            self.model_edit.lineEdit().setCursorPosition(len(self.model_edit.currentText()))
            self.status.show_message("Type the name of the function or class after the colon", "info")

    def _browse_data(self) -> None:
        current = self.data_edit.text()
        if current and Path(current).suffix.lower() in DATA_SUFFIXES and Path(current).is_file():
            start = current
        else:
            start = start_folder(self._folders, "data", self._path.absolute().parent)
        path, _ = QFileDialog.getOpenFileName(self, "Data file with arrays x and y", start,
                                              "Data (*.npz *.pt *.pth *.h5 *.hdf5);;All files (*)")
        if path:
            self._remember_folder("data", path)
            self.data_edit.setText(path)

    def _remember_folder(self, kind: str, path: str) -> None:
        if self._folders is not None:
            self._folders.set_last_folder(kind, path)
