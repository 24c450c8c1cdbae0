"""Choose a new surface around an open checkpoint: ``ComputeDialog`` -> ``engine.jobs.surface.SurfaceRequest``.

The dialog only gathers choices; grid strings are checked with ``engine.numerics.grid.parse_axis``
and the device with ``engine.numerics.problem.resolve_device``, and the request is handed to the
engine as it is. An output file that exists already is resumed by the engine when its
settings match; it is replaced only if the user ticks "Overwrite existing file".
"""

from __future__ import annotations

import glob
import html
import json
from pathlib import Path
from typing import Any

import torch
from PySide6.QtCore import QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.errors import LandscapeError
from engine.io.references import one_line
from engine.jobs.surface import SurfaceRequest
from engine.numerics.directions import IGNORES, NORMS
from engine.numerics.grid import parse_axis
from engine.numerics.problem import resolve_device
from landscape_gui.dialogs.model_dialog import (
    ErrorLabel,
    ModelChoice,
    RequestDialog,
    align_label_columns,
    browse_button,
    row,
)

# Direction kinds as the dialog names them; "file" becomes the .h5 path in the request.
DIRECTIONS = {
    "random": "Random (filter-normalized)",
    "pca": "PCA of a training trajectory",
    "interpolate": "Interpolate to a second checkpoint",
    "file": "From an earlier surface file",
}
SOURCE_LABELS = {"pca": "Trajectory:", "interpolate": "Second checkpoint:", "file": "Surface file:"}
SOURCE_PLACEHOLDERS = {
    "pca": "folder of checkpoints, or a glob like run/trajectory/epoch_*.pt",
    "interpolate": "the checkpoint at the other end of the line",
    "file": "an earlier surface .h5 whose directions to reuse",
}
MAX_POINTS = 100_001
SEED_MAX = 2**31 - 1

KEY_PREFIX = "compute_dialog/"
SETTINGS_FIELDS = ("dims", "x", "y", "directions", "norm", "ignore", "seed", "max_samples", "device")


def _glob_chars(text: str) -> bool:
    return any(c in text for c in "*?[")


def device_choices() -> list[str]:
    """auto and cpu always; cuda (and cuda:N) or mps only where this machine has them."""
    choices = ["auto", "cpu"]
    if torch.cuda.is_available():
        choices.append("cuda")
        if torch.cuda.device_count() > 1:
            choices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        choices.append("mps")
    return choices


class AxisRow(QWidget):
    """``MIN to MAX, N points`` for one grid axis; :meth:`text` gives ``'MIN:MAX:N'``."""

    changed = Signal()

    def __init__(self, low: str = "-1", high: str = "1", points: int = 51, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.low = QLineEdit(low)
        self.high = QLineEdit(high)
        for edit, tip in ((self.low, "smallest coordinate along this direction"),
                          (self.high, "largest coordinate along this direction")):
            edit.setMaximumWidth(90)
            edit.setAlignment(Qt.AlignRight)
            edit.setToolTip(tip)
            edit.textChanged.connect(self.changed)
        self.points = QSpinBox()
        self.points.setRange(1, MAX_POINTS)
        self.points.setValue(points)
        self.points.setSuffix(" points")
        self.points.setToolTip("number of evenly spaced coordinates, both ends included")
        self.points.setMinimumWidth(110)
        self.points.valueChanged.connect(self.changed)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.low)
        layout.addWidget(QLabel("to"))
        layout.addWidget(self.high)
        layout.addSpacing(8)
        layout.addWidget(self.points)
        layout.addStretch(1)

    def text(self) -> str:
        return f"{self.low.text().strip()}:{self.high.text().strip()}:{self.points.value()}"

    def set_text(self, value: str | tuple | list) -> None:
        parts = list(value) if isinstance(value, (tuple, list)) else str(value).split(":")
        if len(parts) != 3:
            raise ValueError(f"an axis is MIN:MAX:N, got {value!r}")
        low, high, count = parts
        self.low.setText(f"{low:g}" if isinstance(low, float) else str(low).strip())
        self.high.setText(f"{high:g}" if isinstance(high, float) else str(high).strip())
        self.points.setValue(int(count))


def _inline_label(text: str, buddy: QWidget) -> QLabel:
    """A label for a field placed beside another in one form row."""
    label = QLabel(text)
    label.setBuddy(buddy)
    label.setContentsMargins(12, 0, 0, 0)
    return label


class ContentScroll(QScrollArea):
    """A frameless vertical scroll area that asks for its content's whole size (QScrollArea caps it at
    24 lines), so a dialog opens without scrolling where the screen allows and scrolls where it does not."""

    def __init__(self, content: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidget(content)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt naming
        content = self.widget()
        hint = content.sizeHint()
        width = self.viewport().width() if self.isVisible() else hint.width()
        height = content.heightForWidth(width) if content.hasHeightForWidth() else -1  # wrapped labels
        height = max(height, hint.height(), content.minimumSizeHint().height())
        return QSize(hint.width() + self.verticalScrollBar().sizeHint().width(), height)


class ComputeDialog(RequestDialog):
    """Settings of a new surface around ``checkpoint``; :meth:`request` gives the SurfaceRequest."""

    def __init__(self, checkpoint: str | Path, choice: ModelChoice, settings: QSettings | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New surface")
        self._checkpoint = Path(checkpoint)
        self._choice = choice
        self._settings = settings
        self._out_auto = True  # the output name follows the settings until the user edits it
        self._setting_out = False

        # grid
        self.dim1 = QRadioButton("1D line")
        self.dim2 = QRadioButton("2D plane")
        self.dim2.setChecked(True)
        self._dims = QButtonGroup(self)
        self._dims.addButton(self.dim1, 1)
        self._dims.addButton(self.dim2, 2)
        self.x_axis = AxisRow()
        self.y_axis = AxisRow()
        grid_box = QGroupBox("Grid")
        grid_form = QFormLayout(grid_box)
        self.points_note = QLabel()
        self.points_note.setStyleSheet(f"color: {ErrorLabel.COLORS['info']};")
        self.points_note.setToolTip("how many times the model is evaluated on the data")
        grid_form.addRow("Dimensions:", row(self.dim1, self.dim2, QWidget(), self.points_note, stretch_first=False))
        grid_form.addRow("x:", self.x_axis)
        self.y_label = QLabel("y:")
        grid_form.addRow(self.y_label, self.y_axis)

        # directions
        self.directions = QComboBox()
        for key, label in DIRECTIONS.items():
            self.directions.addItem(label, key)
        self.source_label = QLabel("Source:")
        self.source_edit = QLineEdit()
        self.source_edit.setClearButtonEnabled(True)
        self.source_browse = browse_button()
        self.source_row = row(self.source_edit, self.source_browse)
        self.norm = QComboBox()
        self.norm.addItems(NORMS)
        self.norm.setCurrentText("filter")
        self.norm.setToolTip("How random directions are scaled to the weights (filter = Li et al. 2018)")
        self.ignore = QComboBox()
        self.ignore.addItems(IGNORES)
        self.ignore.setCurrentText("biasbn")
        self.ignore.setToolTip("biasbn: directions are zero on biases and BatchNorm parameters")
        self.seed = QSpinBox()
        self.seed.setRange(0, SEED_MAX)
        self.seed.setToolTip("seed of the random directions")
        dir_box = QGroupBox("Directions")
        dir_form = QFormLayout(dir_box)
        dir_form.addRow("Directions:", self.directions)
        dir_form.addRow(self.source_label, self.source_row)
        # related choices share a row, so the dialog fits a 700-pixel-high screen without scrolling
        dir_form.addRow("Normalization:", row(self.norm, _inline_label("Ignore:", self.ignore), self.ignore,
                                              _inline_label("Seed:", self.seed), self.seed, QWidget(),
                                              stretch_first=False))
        self._dir_form = dir_form

        # evaluation
        self.max_samples = QSpinBox()
        self.max_samples.setRange(0, 2**31 - 1)
        self.max_samples.setSpecialValueText("all samples")
        self.max_samples.setSuffix(" samples")
        self.max_samples.setToolTip("evaluate on a fixed random subset of this many samples (all: the whole data set)")
        self.device = QComboBox()
        self.device.setEditable(True)
        self.device.addItems(device_choices())
        self.device.setCurrentText("auto")
        self.device.setToolTip("auto picks CUDA when this machine has it, else the CPU; cuda:N picks one GPU")
        eval_box = QGroupBox("Evaluation")
        eval_form = QFormLayout(eval_box)
        eval_form.addRow("Data subset:", row(self.max_samples, _inline_label("Device:", self.device), self.device,
                                             QWidget(), stretch_first=False))

        # output
        self.out_edit = QLineEdit()
        self.out_browse = browse_button()
        self.out_note = ErrorLabel()
        self.overwrite = QCheckBox("Overwrite existing file")
        self.overwrite.setToolTip("start over: delete what the existing file holds")
        out_box = QGroupBox("Output")
        out_form = QFormLayout(out_box)
        out_form.addRow("File:", row(self.out_edit, self.out_browse))
        out_form.addRow("", self.overwrite)
        out_form.addRow(self.out_note)

        for form in (grid_form, dir_form, eval_form, out_form):
            form.setFieldGrowthPolicy(QFormLayout.ExpandingFieldsGrow)
            form.setLabelAlignment(Qt.AlignRight | Qt.AlignVCenter)
        align_label_columns(grid_form, dir_form, eval_form, out_form)

        self.error = ErrorLabel()
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.ok_button().setText("Compute")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        header = QLabel(self._header_text())
        header.setTextFormat(Qt.RichText)
        header.setWordWrap(True)
        header.setToolTip(str(self._checkpoint))

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        for widget in (header, grid_box, dir_box, eval_box, out_box):
            content_layout.addWidget(widget)
        content_layout.addStretch(1)
        # On a small screen the settings scroll; the error and the buttons below them stay in view.
        self.scroll = ContentScroll(content)

        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

        self._restore()
        self._dims.idToggled.connect(self._changed)
        self.x_axis.changed.connect(self._changed)
        self.y_axis.changed.connect(self._changed)
        self.directions.currentIndexChanged.connect(self._directions_changed)
        self.source_edit.textChanged.connect(self._changed)
        self.seed.valueChanged.connect(self._changed)
        for widget in (self.norm, self.ignore):
            widget.currentTextChanged.connect(self._changed)
        self.max_samples.valueChanged.connect(self._changed)
        self.device.editTextChanged.connect(self._changed)
        self.out_edit.textEdited.connect(self._out_edited)
        self.out_edit.textChanged.connect(self._changed)
        self.overwrite.toggled.connect(self._changed)
        self.source_browse.clicked.connect(self._browse_source)
        self.out_browse.clicked.connect(self._browse_out)
        self._directions_changed()
        self.resize(max(self.sizeHint().width(), 620), self.sizeHint().height())

    # -- public -----------------------------------------------------------------------------
    def ok_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.Ok)

    @property
    def checkpoint_path(self) -> Path:
        return self._checkpoint

    def direction_kind(self) -> str:
        """random, pca, interpolate or file."""
        return self.directions.currentData()

    def set_values(self, **values: Any) -> None:
        """Set fields by SurfaceRequest-like names (tests, the app).

        Keys: ``dims`` (1 or 2), ``x`` / ``y`` (``'MIN:MAX:N'`` or a 3-tuple; ``y=None`` means 1D),
        ``directions`` (random, pca, interpolate, file, or a surface .h5 path), ``to``,
        ``trajectory``, ``source`` (the surface file of ``file``), ``norm``, ``ignore``, ``seed``,
        ``max_samples`` (None = all), ``device``, ``out``, ``overwrite``.
        """
        unknown = set(values) - {"dims", "x", "y", "directions", "to", "trajectory", "source", "norm", "ignore",
                                 "seed", "max_samples", "device", "out", "overwrite"}
        if unknown:
            raise TypeError(f"unknown field(s): {', '.join(sorted(unknown))}")
        if "directions" in values:
            kind = values["directions"]
            if kind not in DIRECTIONS:  # a path: directions from that surface file
                values.setdefault("source", kind)
                kind = "file"
            self.directions.setCurrentIndex(self.directions.findData(kind))
        kind = self.direction_kind()
        for key in ("to", "trajectory", "source"):
            if key in values and values[key] is not None:
                wanted = {"to": "interpolate", "trajectory": "pca", "source": "file"}[key]
                if kind == wanted:
                    self.source_edit.setText(str(values[key]))
        if "y" in values and values["y"] is None:
            values.setdefault("dims", 1)
        if "dims" in values:
            (self.dim1 if int(values["dims"]) == 1 else self.dim2).setChecked(True)
        if "x" in values:
            self.x_axis.set_text(values["x"])
        if values.get("y") is not None:
            self.y_axis.set_text(values["y"])
            if "dims" not in values:
                self.dim2.setChecked(True)
        if "norm" in values:
            self.norm.setCurrentText(str(values["norm"]))
        if "ignore" in values:
            self.ignore.setCurrentText(str(values["ignore"]))
        if "seed" in values:
            self.seed.setValue(int(values["seed"]))
        if "max_samples" in values:
            self.max_samples.setValue(int(values["max_samples"] or 0))
        if "device" in values:
            self.device.setCurrentText(str(values["device"] or "auto"))
        if "out" in values:
            self._out_auto = values["out"] is None
            if values["out"] is not None:
                self._set_out(str(values["out"]))
        if "overwrite" in values:
            self.overwrite.setChecked(bool(values["overwrite"]))
        self._directions_changed()

    def request(self) -> SurfaceRequest:
        """The SurfaceRequest for the current fields; raises a one-line LandscapeError when invalid."""
        kind = self.direction_kind()
        two_d = self.dim2.isChecked()
        x = self.x_axis.text()
        parse_axis(x, "x")
        y = self.y_axis.text() if two_d else None
        if y is not None:
            parse_axis(y, "y")
        source = self.source_edit.text().strip()
        to = trajectory = None
        directions = kind
        if kind == "pca":
            if not source:
                raise LandscapeError("PCA directions need a trajectory: a folder of checkpoints or a glob like run/epoch_*.pt")
            if _glob_chars(source):
                if not glob.glob(source):
                    raise LandscapeError(f"no checkpoints match {source}")
            elif not Path(source).exists():
                raise LandscapeError(f"no such trajectory folder or file: {source}")
            trajectory = source
        elif kind == "interpolate":
            if not source:
                raise LandscapeError("interpolation needs a second checkpoint to draw the line to")
            if not Path(source).is_file():
                raise LandscapeError(f"no such checkpoint: {source}")
            to = source
        elif kind == "file":
            if not source:
                raise LandscapeError("choose the earlier surface .h5 file whose directions to reuse")
            if Path(source).suffix.lower() not in (".h5", ".hdf5"):
                raise LandscapeError(f"{source} is not a surface file (.h5)")
            if not Path(source).is_file():
                raise LandscapeError(f"no such surface file: {source}")
            directions = source
        device = self.device.currentText().strip() or "auto"
        resolve_device(device)
        out = self.out_edit.text().strip()
        if not out:
            raise LandscapeError("choose the output file")
        out_path = Path(out)
        if out_path.is_dir():
            raise LandscapeError(f"{out} is a folder; choose a file name like surface.h5")
        if out_path.exists() and self._same_file(out_path, self._checkpoint):
            raise LandscapeError("the output file is the checkpoint itself; choose another name")
        if kind == "file" and out_path.exists() and self._same_file(out_path, Path(source)):
            raise LandscapeError("the output file is the surface the directions come from; choose another name")
        max_samples = self.max_samples.value() or None
        return SurfaceRequest(
            checkpoint=str(self._checkpoint),
            data=self._choice.data,
            x=x,
            y=y,
            out=out,
            model=self._choice.model,
            model_kwargs=self._choice.model_kwargs,
            norm=self.norm.currentText(),
            ignore=self.ignore.currentText(),
            seed=self.seed.value(),
            directions=directions,
            to=to,
            trajectory=trajectory,
            max_samples=max_samples,
            device=None if device == "auto" else device,
            trust_pickle=self._choice.trust_pickle,
            overwrite=out_path.exists() and self.overwrite.isChecked(),
        )

    def _remember(self) -> None:
        self._save()

    # -- internals --------------------------------------------------------------------------
    def _header_text(self) -> str:
        c = self._choice
        facts = f"model {c.model or 'from the checkpoint'}"
        if c.model_kwargs:
            facts += " " + json.dumps(c.model_kwargs)
        if c.trust_pickle:
            facts += " (trusted pickle)"
        return (f"<b>{html.escape(self._checkpoint.name)}</b> — {html.escape(facts)}; "
                f"data {html.escape(c.data)}")

    @staticmethod
    def _same_file(a: Path, b: Path) -> bool:
        try:
            return a.resolve() == b.resolve()
        except OSError:
            return False

    def _default_source(self, kind: str) -> str:
        folder = self._checkpoint.parent
        if kind == "pca":  # a recipe's OUT/trajectory/ next to OUT/model.pt, or the folder of epoch_N.pt
            if (folder / "trajectory").is_dir():
                return str(folder / "trajectory")
            if folder.name == "trajectory":
                return str(folder)
        if kind == "interpolate" and folder.name in ("a", "b"):  # the mlp-sine-pair layout: a/ and b/
            other = folder.parent / ("b" if folder.name == "a" else "a") / self._checkpoint.name
            if other.is_file():
                return str(other)
        return ""

    def _directions_changed(self, *_args: Any) -> None:
        kind = self.direction_kind()
        has_source = kind != "random"
        self._dir_form.setRowVisible(self.source_row, has_source)
        if has_source:
            self.source_label.setText(SOURCE_LABELS[kind])
            self.source_edit.setPlaceholderText(SOURCE_PLACEHOLDERS[kind])
            if self._source_kind != kind:
                self.source_edit.setText(self._default_source(kind))
        elif self._source_kind != kind:
            self.source_edit.clear()
        self._source_kind = kind
        # PCA spans a plane, interpolation a line; the others can be either.
        self.dim1.setEnabled(kind != "pca")
        self.dim2.setEnabled(kind != "interpolate")
        if kind == "pca":
            self.dim2.setChecked(True)
        elif kind == "interpolate":
            self.dim1.setChecked(True)
        self.norm.setEnabled(kind == "random")
        self.ignore.setEnabled(kind in ("random", "pca"))
        self.seed.setEnabled(kind == "random")
        self._changed()

    _source_kind = "random"

    def _changed(self, *_args: Any) -> None:
        two_d = self.dim2.isChecked()
        self.y_axis.setEnabled(two_d)
        self.y_label.setEnabled(two_d)
        points = self.x_axis.points.value() * (self.y_axis.points.value() if two_d else 1)
        self.points_note.setText(f"{points:,} points")
        if self._out_auto:
            self._set_out(self._default_out())
        self._update_out_note()
        try:
            self.request()
        except LandscapeError as exc:
            self._show_error(one_line(exc))
        else:
            self._show_error("")

    def _default_out(self) -> str:
        kind = self.direction_kind()
        tag = {"random": "random", "pca": "pca", "interpolate": "interpolate", "file": "from"}[kind]
        if kind == "random" and self.seed.value():
            tag += f"-s{self.seed.value()}"
        if kind == "file" and self.source_edit.text().strip():
            tag += "-" + Path(self.source_edit.text().strip()).stem
        nx = self.x_axis.points.value()
        size = f"{nx}x{self.y_axis.points.value()}" if self.dim2.isChecked() else f"{nx}"
        return str(self._checkpoint.parent / f"{self._checkpoint.stem}_{tag}_{size}.h5")

    def _set_out(self, text: str) -> None:
        if self.out_edit.text() != text:
            self.out_edit.setText(text)

    def _out_edited(self, _text: str) -> None:
        self._out_auto = False

    def _update_out_note(self) -> None:
        out = self.out_edit.text().strip()
        exists = bool(out) and Path(out).is_file()
        if exists != self.overwrite.isVisible() and self.placed:
            QTimer.singleShot(0, self._grow)  # once the layout knows the new rows
        self.overwrite.setVisible(exists)
        if not exists:
            self.out_note.clear_message()
        elif self.overwrite.isChecked():
            self.out_note.show_message("This file exists and will be replaced: what it holds is deleted.", "note")
        else:
            self.out_note.show_message("This file exists: it is resumed (points already computed are kept) if its "
                                       "settings match these; otherwise computing stops with a message.", "info")

    def _browse_source(self) -> None:
        kind = self.direction_kind()
        start = self.source_edit.text().strip() or str(self._checkpoint.parent)
        if kind == "pca":
            path = QFileDialog.getExistingDirectory(self, "Folder of trajectory checkpoints", start)
        elif kind == "interpolate":
            path, _ = QFileDialog.getOpenFileName(self, "Second checkpoint", start,
                                                  "Checkpoints (*.pt *.pth *.ckpt *.bin *.safetensors);;All files (*)")
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Earlier surface file", start, "Surfaces (*.h5 *.hdf5)")
        if path:
            self.source_edit.setText(path)

    def _browse_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Surface file", self.out_edit.text().strip(),
                                              "Surfaces (*.h5)", options=QFileDialog.DontConfirmOverwrite)
        if path:
            if not path.lower().endswith((".h5", ".hdf5")):
                path += ".h5"
            self._out_auto = False
            self._set_out(path)

    # -- settings ---------------------------------------------------------------------------
    def _save(self) -> None:
        s = self._settings
        if s is None:
            return
        kind = self.direction_kind()
        values = {
            "dims": 2 if self.dim2.isChecked() else 1,
            "x": self.x_axis.text(),
            "y": self.y_axis.text(),
            "directions": kind,
            "norm": self.norm.currentText(),
            "ignore": self.ignore.currentText(),
            "seed": self.seed.value(),
            "max_samples": self.max_samples.value(),
            "device": self.device.currentText().strip() or "auto",
        }
        for key, value in values.items():
            s.setValue(KEY_PREFIX + key, str(value))

    def _restore(self) -> None:
        s = self._settings
        if s is None:
            return
        stored = {key: s.value(KEY_PREFIX + key) for key in SETTINGS_FIELDS}
        stored = {k: str(v) for k, v in stored.items() if v not in (None, "")}
        try:
            if "directions" in stored:
                kind = stored.pop("directions")
                # a PCA or interpolation source belongs to one checkpoint: only reuse the kind if one is at hand
                if kind in ("random",) or (kind in ("pca", "interpolate") and self._default_source(kind)):
                    self.directions.setCurrentIndex(self.directions.findData(kind))
            if "x" in stored:
                self.x_axis.set_text(stored["x"])
            if "y" in stored:
                self.y_axis.set_text(stored["y"])
            if "dims" in stored:
                (self.dim1 if stored["dims"] == "1" else self.dim2).setChecked(True)
            if stored.get("norm") in NORMS:
                self.norm.setCurrentText(stored["norm"])
            if stored.get("ignore") in IGNORES:
                self.ignore.setCurrentText(stored["ignore"])
            if "seed" in stored:
                self.seed.setValue(int(stored["seed"]))
            if "max_samples" in stored:
                self.max_samples.setValue(int(stored["max_samples"]))
            if "device" in stored:
                self.device.setCurrentText(stored["device"])
        except (ValueError, TypeError):
            pass  # a hand-edited settings file: keep the defaults for the rest
