"""Compute ▸ Mode Connectivity…: ``PathDialog`` -> ``engine.jobs.path.PathRequest``.

Two checkpoints A (t = 0) and B (t = 1) of one architecture, the model and data to measure
the loss with (prefilled from A as File ▸ Open Checkpoint does: its factory, kwargs and
training data; the same recent entries), the path (the straight line, or a Bezier curve or
polychain whose bends are trained), how it is evaluated (weight-matching alignment of B,
BatchNorm statistics, the points along t) and the output file. The dialog only gathers
choices; the window submits the request to its job runner, like a surface's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.errors import LandscapeError
from engine.io.references import one_line
from engine.jobs.path import ALIGNMENTS, BN_CHOICES, PathRequest
from engine.numerics.curve_training import OPTIMIZERS
from engine.numerics.curves import CURVES, t_grid
from landscape_gui.dialogs.compute_dialog import ContentScroll, _inline_label
from landscape_gui.dialogs.model_dialog import (
    DATA_SUFFIXES,
    KEY_RECENT_DATA,
    KEY_RECENT_KWARGS,
    KEY_RECENT_MODELS,
    ErrorLabel,
    ModelChoice,
    RecentCombo,
    RequestDialog,
    align_label_columns,
    browse_button,
    check_choice,
    format_kwargs,
    load_recent,
    parse_kwargs_text,
    prefill_from_checkpoint,
    probe_checkpoint,
    remember_recent,
    resolve_field,
    row,
)

CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.ckpt *.bin *.safetensors);;All files (*)"
DATA_FILTER = "Data (*.npz *.pt *.pth *.h5 *.hdf5);;All files (*)"
CURVE_LABELS = {"linear": "Straight line (nothing to train)", "bezier": "Bezier curve (Garipov et al.)",
                "polychain": "Polygonal chain (Garipov et al.)"}
ALIGN_LABELS = {"none": "None", "weight-matching": "Weight matching (Git Re-Basin)"}
BN_LABELS = {"auto": "Auto (when the model has BatchNorm)", "on": "Re-estimate at every point",
             "off": "Interpolate A's and B's"}
# Settings that train the bend of a small model in seconds (the samples' pairs: the MLP's barrier drops from 0.49
# to about 0.01, SGD at the CLI's defaults leaves 0.15); Garipov et al.'s for CIFAR networks, the CLI's defaults,
# are SGD, lr 0.015, batch 128 and hundreds of epochs. The last choices made are remembered over these.
DEFAULTS = {"curve": "bezier", "bends": 1, "epochs": 60, "lr": 0.01, "optimizer": "adam", "batch_size": 32,
            "points": 61, "t_min": 0.0, "t_max": 1.0, "align": "none", "bn_recompute": "auto", "seed": 0}
KEY_PREFIX = "path_dialog/"
MAX_POINTS = 10_001
SEED_MAX = 2**31 - 1
TEST_DATA_PLACEHOLDER = "optional: data to measure the test loss on (.npz, sample:NAME, module:callable)"


def default_b(a: Path) -> str:
    """B next to A in the layout the mlp-sine-pair recipe writes (DIR/a/model.pt and DIR/b/model.pt)."""
    folder = a.parent
    if folder.name in ("a", "b"):
        other = folder.parent / ("b" if folder.name == "a" else "a") / a.name
        if other.is_file():
            return str(other)
    return ""


def default_test_data(a: Path, data: str) -> str:
    """A's test data: its metadata's ``test_data``, else test.npz beside the training data's train.npz."""
    probe = probe_checkpoint(a) if a.is_file() else None
    named = probe.checkpoint.metadata.get("test_data") if probe is not None and probe.checkpoint is not None else None
    if isinstance(named, str) and named:
        return named
    if data and Path(data).name == "train.npz" and (Path(data).parent / "test.npz").is_file():
        return str(Path(data).parent / "test.npz")
    return ""


def default_out(a: Path, b: Path, curve: str, align: str) -> str:
    """DIR/path_<curve>[_aligned].h5 for DIR/a and DIR/b; else A's folder, named after both endpoints."""
    tag = curve + ("_aligned" if align != "none" else "")
    if a.parent.parent == b.parent.parent and a.parent != b.parent and a.parent.name and b.parent.name:
        if a.parent.name in ("a", "b") or a.stem == b.stem:
            return str(a.parent.parent / f"path_{tag}.h5")
        return str(a.parent.parent / f"{a.parent.name}_to_{b.parent.name}_{tag}.h5")
    return str(a.parent / f"{a.stem}_to_{b.stem}_{tag}.h5")


def _double(low: float, high: float, decimals: int, step: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setKeyboardTracking(False)
    return box


class PathDialog(RequestDialog):
    """The settings of a path between two checkpoints; :meth:`request` gives the PathRequest."""

    def __init__(self, a: str | Path | None = None, b: str | Path | None = None, settings: QSettings | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Mode connectivity")
        self._settings = settings
        self._out_auto = True  # the output name follows the settings until the user edits it
        self._prefilled_for: str | None = None  # the A whose model/data fill the fields now
        self._needs_pickle = False  # A is a pickle that loads only if trusted (the trust box shows)

        # endpoints
        self.a_edit, self.b_edit = QLineEdit(), QLineEdit()
        self.a_edit.setPlaceholderText("checkpoint at t = 0")
        self.b_edit.setPlaceholderText("checkpoint at t = 1, the same architecture")
        self.a_browse, self.b_browse = browse_button(), browse_button()
        ends_box = QGroupBox("Endpoints")
        ends_form = QFormLayout(ends_box)
        ends_form.addRow("A:", row(self.a_edit, self.a_browse))
        ends_form.addRow("B:", row(self.b_edit, self.b_browse))

        # model and data, as File ▸ Open Checkpoint asks them (the same recent entries)
        from engine.builtin.datasets import DATASETS

        self.model_edit = RecentCombo(load_recent(settings, KEY_RECENT_MODELS),
                                      placeholder="the checkpoint's own, or module.path:callable / file.py:callable")
        self.kwargs_edit = RecentCombo(load_recent(settings, KEY_RECENT_KWARGS),
                                       placeholder='the checkpoint\'s own, or {"width": 200} / width=200')
        samples = [f"sample:{name}" for name in DATASETS]
        self.data_edit = RecentCombo(load_recent(settings, KEY_RECENT_DATA), suggestions=samples,
                                     placeholder="training data: .npz / .pt / .h5, sample:NAME or module:callable")
        self.data_edit.setToolTip("The curve is trained, and the train loss measured, on this data")
        self.data_browse = browse_button()
        self.test_edit = RecentCombo(load_recent(settings, KEY_RECENT_DATA), suggestions=samples,
                                     placeholder=TEST_DATA_PLACEHOLDER)
        self.test_edit.setToolTip("Evaluated at every point too (test loss and error, dashed); leave empty to skip")
        self.test_browse = browse_button()
        self.trust_box = QCheckBox("I trust these files: allow running pickled code from them")
        self.trust_box.setVisible(False)
        self.check_button = QPushButton("Check model")
        self.check_button.setAutoDefault(False)
        self.check_button.setToolTip("Build the model with these settings and load A's weights into it")
        self.model_note = ErrorLabel()
        model_box = QGroupBox("Model and data")
        model_form = QFormLayout(model_box)
        model_form.addRow("Model:", self.model_edit)
        model_form.addRow("Model kwargs:", self.kwargs_edit)
        model_form.addRow("Training data:", row(self.data_edit, self.data_browse))
        model_form.addRow("Test data:", row(self.test_edit, self.test_browse))
        model_form.addRow("", row(self.trust_box, QWidget(), self.check_button, stretch_first=False))
        model_form.addRow(self.model_note)

        # the path
        self.curve = QComboBox()
        for kind in CURVES:
            self.curve.addItem(CURVE_LABELS.get(kind, kind), kind)
        self.bends = QSpinBox()
        self.bends.setRange(1, 20)
        self.bends.setToolTip("bends of the curve: 1 is a quadratic Bezier curve, a polychain of two segments")
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 100_000)
        self.epochs.setToolTip("epochs of training the bends (the endpoints stay fixed)")
        self.lr = _double(0.00001, 100.0, 5, 0.005)
        self.lr.setToolTip("learning rate of curve training (Garipov et al.'s schedule: constant to 50%, "
                           "then down to 1% by 90% of the epochs)")
        self.optimizer = QComboBox()
        self.optimizer.addItems(list(OPTIMIZERS))
        self.batch_size = QSpinBox()
        self.batch_size.setRange(1, 1_000_000)
        self.batch_size.setToolTip("training minibatch size")
        curve_box = QGroupBox("Path")
        curve_form = QFormLayout(curve_box)
        curve_form.addRow("Curve:", row(self.curve, _inline_label("Bends:", self.bends), self.bends, QWidget(),
                                        stretch_first=False))
        self.training_row = row(self.epochs, _inline_label("Learning rate:", self.lr), self.lr,
                                _inline_label("Optimizer:", self.optimizer), self.optimizer, QWidget(),
                                stretch_first=False)
        curve_form.addRow("Epochs:", self.training_row)
        curve_form.addRow("Batch size:", row(self.batch_size, QWidget(), stretch_first=False))

        # evaluation
        self.align = QComboBox()
        for key in ALIGNMENTS:
            self.align.addItem(ALIGN_LABELS.get(key, key), key)
        self.align.setToolTip("Permute B's hidden units to match A's first: the straight line to the aligned B "
                              "is drawn too")
        self.bn = QComboBox()
        for key in BN_CHOICES:
            self.bn.addItem(BN_LABELS.get(key, key), key)
        self.bn.setToolTip("BatchNorm running statistics at each point: re-estimated on the training data "
                           "(Garipov et al.), or interpolated between A's and B's")
        self.points = QSpinBox()
        self.points.setRange(2, MAX_POINTS)
        self.points.setSuffix(" points")
        self.points.setToolTip("values of t from A (0) to B (1), both included")
        self.t_min = _double(-5.0, 0.0, 2, 0.1)
        self.t_max = _double(1.0, 6.0, 2, 0.1)
        for box in (self.t_min, self.t_max):
            box.setToolTip("look past the endpoints with the same spacing (0 to 1: from A to B)")
        self.seed = QSpinBox()
        self.seed.setRange(0, SEED_MAX)
        self.seed.setToolTip("seed of curve training, BatchNorm subsets and alignment")
        eval_box = QGroupBox("Evaluation")
        eval_form = QFormLayout(eval_box)
        eval_form.addRow("Align B:", self.align)
        eval_form.addRow("BatchNorm:", self.bn)
        eval_form.addRow("Along t:", row(self.points, _inline_label("from", self.t_min), self.t_min, QLabel("to"),
                                         self.t_max, _inline_label("Seed:", self.seed), self.seed, QWidget(),
                                         stretch_first=False))

        # output
        self.out_edit = QLineEdit()
        self.out_browse = browse_button()
        self.overwrite = QCheckBox("Overwrite existing file")
        self.overwrite.setToolTip("start over: delete what the existing file holds")
        self.out_note = ErrorLabel()
        out_box = QGroupBox("Output")
        out_form = QFormLayout(out_box)
        out_form.addRow("File:", row(self.out_edit, self.out_browse))
        out_form.addRow("", self.overwrite)
        out_form.addRow(self.out_note)

        forms = (ends_form, model_form, curve_form, eval_form, out_form)
        for form in forms:
            form.setFieldGrowthPolicy(QFormLayout.ExpandingFieldsGrow)
        align_label_columns(*forms)

        self.error = ErrorLabel()
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.ok_button().setText("Compute")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        intro = QLabel("The loss along a path from checkpoint A to checkpoint B: the straight line, or a curve "
                       "whose bends are trained so that the loss stays low all along (Garipov et al. 2018).")
        intro.setWordWrap(True)
        intro.setStyleSheet(f"color: {ErrorLabel.COLORS['info']};")

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        for widget in (intro, ends_box, model_box, curve_box, eval_box, out_box):
            content_layout.addWidget(widget)
        content_layout.addStretch(1)
        self.scroll = ContentScroll(content)
        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

        self._restore()
        if a:
            self.a_edit.setText(str(a))
        if b or a:
            self.b_edit.setText(str(b) if b else default_b(Path(str(a))))
        self._a_changed()
        self.a_edit.textChanged.connect(self._a_changed)
        for edit in (self.b_edit, self.out_edit):
            edit.textChanged.connect(self._changed)
        for combo in (self.model_edit, self.kwargs_edit, self.data_edit, self.test_edit):
            combo.editTextChanged.connect(self._changed)
        for combo in (self.curve, self.optimizer, self.align, self.bn):
            combo.currentIndexChanged.connect(self._changed)
        for box in (self.bends, self.epochs, self.batch_size, self.points, self.seed):
            box.valueChanged.connect(self._changed)
        for box in (self.lr, self.t_min, self.t_max):
            box.valueChanged.connect(self._changed)
        self.trust_box.toggled.connect(self._changed)
        self.overwrite.toggled.connect(self._changed)
        self.out_edit.textEdited.connect(self._out_edited)
        self.a_browse.clicked.connect(lambda: self._browse_checkpoint(self.a_edit, "Checkpoint A (t = 0)"))
        self.b_browse.clicked.connect(lambda: self._browse_checkpoint(self.b_edit, "Checkpoint B (t = 1)"))
        self.data_browse.clicked.connect(lambda: self._browse_data(self.data_edit))
        self.test_browse.clicked.connect(lambda: self._browse_data(self.test_edit))
        self.out_browse.clicked.connect(self._browse_out)
        self.check_button.clicked.connect(self.check)
        self._changed()
        self.resize(max(self.sizeHint().width(), 680), self.sizeHint().height())

    # -- public -----------------------------------------------------------------------------
    def ok_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.Ok)

    def set_values(self, **values: Any) -> None:
        """Set fields by PathRequest names (tests, the app): ``a``, ``b``, ``model``, ``model_kwargs``, ``data``,
        ``test_data``, ``curve``, ``bends``, ``epochs``, ``lr``, ``optimizer``, ``batch_size``, ``points``,
        ``t_range``, ``align``, ``bn_recompute``, ``seed``, ``out``, ``overwrite``, ``trust_pickle``."""
        known = {"a", "b", "model", "model_kwargs", "data", "test_data", "curve", "bends", "epochs", "lr", "optimizer",
                 "batch_size", "points", "t_range", "align", "bn_recompute", "seed", "out", "overwrite",
                 "trust_pickle"}
        unknown = set(values) - known
        if unknown:
            raise TypeError(f"unknown field(s): {', '.join(sorted(unknown))}")
        if "a" in values:
            self.a_edit.setText(str(values["a"]))
        if "b" in values:
            self.b_edit.setText(str(values["b"]))
        if "model" in values:
            self.model_edit.setText(values["model"] or "")
        if "model_kwargs" in values:
            kwargs = values["model_kwargs"]
            self.kwargs_edit.setText(kwargs if isinstance(kwargs, str) else format_kwargs(kwargs))
        if "data" in values:
            self.data_edit.setText(str(values["data"]))
        if "test_data" in values:
            self.test_edit.setText(str(values["test_data"] or ""))
        for key, combo in (("curve", self.curve), ("align", self.align), ("bn_recompute", self.bn)):
            if key in values:
                index = combo.findData(values[key])
                if index < 0:
                    raise ValueError(f"{key} {values[key]!r} is not one of the choices")
                combo.setCurrentIndex(index)
        if "optimizer" in values:
            self.optimizer.setCurrentText(str(values["optimizer"]))
        for key, box in (("bends", self.bends), ("epochs", self.epochs), ("batch_size", self.batch_size),
                         ("points", self.points), ("seed", self.seed)):
            if key in values and values[key] is not None:
                box.setValue(int(values[key]))
        if "lr" in values:
            self.lr.setValue(float(values["lr"]))
        if "t_range" in values:
            low, high = values["t_range"]
            self.t_min.setValue(float(low))
            self.t_max.setValue(float(high))
        if "out" in values:
            self._out_auto = values["out"] is None
            if values["out"] is not None:
                self.out_edit.setText(str(values["out"]))
        if "overwrite" in values:
            self.overwrite.setChecked(bool(values["overwrite"]))
        if "trust_pickle" in values:
            self.trust_box.setChecked(bool(values["trust_pickle"]))
        self._changed()

    def choice(self) -> ModelChoice:
        """The model and data fields as File ▸ Open Checkpoint's choice (relative files made absolute)."""
        folder = self._a_path().absolute().parent
        model = None
        if self.model_edit.text():
            model, _note = resolve_field(self.model_edit.text(), folder)
        data = self.data_edit.text()
        if not data:
            raise LandscapeError("name the training data (a file, sample:NAME or module:callable)")
        data, _note = resolve_field(data, folder, data_field=True)
        return ModelChoice(model=model, model_kwargs=parse_kwargs_text(self.kwargs_edit.text()), data=data,
                           trust_pickle=self._needs_pickle and self.trust_box.isChecked())

    def request(self) -> PathRequest:
        """The PathRequest of the fields; a one-line LandscapeError when they do not make one."""
        a, b = self._a_path(), self._checkpoint(self.b_edit, "B")
        if a.resolve() == b.resolve():
            raise LandscapeError("A and B are the same checkpoint; choose two different ones")
        choice = self.choice()
        test = self.test_edit.text()
        if test:
            test, _note = resolve_field(test, a.absolute().parent, data_field=True)
        curve = self.curve.currentData()
        t_range = (float(self.t_min.value()), float(self.t_max.value()))
        t_grid(self.points.value(), *t_range)
        out = self.out_edit.text().strip()
        if not out:
            raise LandscapeError("choose the output file")
        out_path = Path(out).expanduser()
        if out_path.is_dir():
            raise LandscapeError(f"{out} is a folder; choose a file name like path.h5")
        if out_path.suffix.lower() not in (".h5", ".hdf5"):
            raise LandscapeError(f"{out_path.name}: a path file ends in .h5")
        if out_path.exists() and out_path.resolve() in (a.resolve(), b.resolve()):
            raise LandscapeError("the output file is one of the checkpoints; choose another name")
        request = PathRequest(
            a=str(a), b=str(b), data=choice.data, out=str(out_path), test_data=test or None, model=choice.model,
            model_kwargs=choice.model_kwargs, curve=curve, bends=self.bends.value() if curve != "linear" else None,
            epochs=self.epochs.value(), lr=float(self.lr.value()), optimizer=self.optimizer.currentText(),
            batch_size=self.batch_size.value(), points=self.points.value(), t_range=t_range,
            align=self.align.currentData(), bn_recompute=self.bn.currentData(), seed=self.seed.value(),
            trust_pickle=choice.trust_pickle, overwrite=out_path.exists() and self.overwrite.isChecked(),
        )
        if curve != "linear":
            request.training().check()
        return request

    def check(self) -> bool:
        """Build the model for A with the model fields (as File ▸ Open Checkpoint's Check); say the result inline."""
        try:
            a = self._a_path()
            choice = self.choice()
            message = check_choice(a, choice)
        except LandscapeError as exc:
            self.model_note.show_message(one_line(exc), "error")
            return False
        except Exception as exc:  # noqa: BLE001 - user model code may raise anything
            self.model_note.show_message(f"{type(exc).__name__}: {one_line(exc)}", "error")
            return False
        self.model_note.show_message(message, "ok")
        return True

    def _remember(self) -> None:
        choice = self.choice()
        remember_recent(self._settings, KEY_RECENT_MODELS, choice.model or "")
        remember_recent(self._settings, KEY_RECENT_KWARGS, self.kwargs_edit.text())
        remember_recent(self._settings, KEY_RECENT_DATA, choice.data)
        if self.test_edit.text():
            remember_recent(self._settings, KEY_RECENT_DATA, self.test_edit.text())
        self._save()

    # -- internals --------------------------------------------------------------------------
    @staticmethod
    def _checkpoint(edit: QLineEdit, name: str) -> Path:
        text = edit.text().strip()
        if not text:
            raise LandscapeError(f"choose checkpoint {name}")
        path = Path(text).expanduser()
        if not path.is_file():
            raise LandscapeError(f"no such checkpoint ({name}): {text}")
        return path

    def _a_path(self) -> Path:
        return self._checkpoint(self.a_edit, "A")

    def _a_changed(self, *_args: Any) -> None:
        """A new A: its own model, kwargs and data fill the fields (as File ▸ Open Checkpoint prefills them)."""
        text = self.a_edit.text().strip()
        a = Path(text).expanduser() if text else None
        if a is None or not a.is_file() or text == self._prefilled_for:
            self._changed()
            return
        self._prefilled_for = text
        probe = probe_checkpoint(a)
        prefill = prefill_from_checkpoint(a, probe)
        self.model_edit.setText(prefill.model or "")
        self.kwargs_edit.setText(format_kwargs(prefill.model_kwargs))
        self.data_edit.setText(prefill.data)
        self.test_edit.setText(default_test_data(a, prefill.data))
        self._needs_pickle = probe.needs_pickle
        self.trust_box.setVisible(probe.needs_pickle)
        self.trust_box.setChecked(False)
        if not self.b_edit.text().strip():
            self.b_edit.setText(default_b(a))
        self.model_note.show_message(probe.error or "", "error")
        self._changed()

    def _changed(self, *_args: Any) -> None:
        training = self.curve.currentData() != "linear"
        for widget in (self.bends, self.epochs, self.lr, self.optimizer, self.batch_size):
            widget.setEnabled(training)
        if self._out_auto:
            self._set_default_out()
        self._update_out_note()
        try:
            self.request()
        except LandscapeError as exc:
            self._show_error(one_line(exc))
        else:
            self._show_error("")

    def _set_default_out(self) -> None:
        a, b = self.a_edit.text().strip(), self.b_edit.text().strip()
        if not a or not b:
            return
        out = default_out(Path(a).expanduser(), Path(b).expanduser(), self.curve.currentData(),
                          self.align.currentData())
        if self.out_edit.text() != out:
            self.out_edit.setText(out)

    def _out_edited(self, _text: str) -> None:
        self._out_auto = False

    def _update_out_note(self) -> None:
        out = self.out_edit.text().strip()
        exists = bool(out) and Path(out).expanduser().is_file()
        if exists != self.overwrite.isVisible() and self.placed:
            QTimer.singleShot(0, self._grow)
        self.overwrite.setVisible(exists)
        if not exists:
            self.out_note.clear_message()
        elif self.overwrite.isChecked():
            self.out_note.show_message("This file exists and will be replaced: what it holds is deleted.", "note")
        else:
            self.out_note.show_message("This file exists: it is resumed (epochs and points already computed are "
                                       "kept) if its settings match these; otherwise computing stops with a message.",
                                       "info")

    def _browse_checkpoint(self, edit: QLineEdit, caption: str) -> None:
        start = edit.text().strip() or self.a_edit.text().strip()
        path, _ = QFileDialog.getOpenFileName(self, caption, start, CHECKPOINT_FILTER)
        if path:
            edit.setText(path)

    def _browse_data(self, combo: RecentCombo) -> None:
        current = combo.text()
        start = current if current and Path(current).suffix.lower() in DATA_SUFFIXES else self.a_edit.text().strip()
        path, _ = QFileDialog.getOpenFileName(self, "Data file with arrays x and y", start, DATA_FILTER)
        if path:
            combo.setText(path)

    def _browse_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Path file", self.out_edit.text().strip(), "Path files (*.h5)",
                                              options=QFileDialog.DontConfirmOverwrite)
        if path:
            if not path.lower().endswith((".h5", ".hdf5")):
                path += ".h5"
            self._out_auto = False
            self.out_edit.setText(path)

    # -- settings ---------------------------------------------------------------------------
    def _values(self) -> dict[str, Any]:
        return {"curve": self.curve.currentData(), "bends": self.bends.value(), "epochs": self.epochs.value(),
                "lr": self.lr.value(), "optimizer": self.optimizer.currentText(),
                "batch_size": self.batch_size.value(), "points": self.points.value(), "t_min": self.t_min.value(),
                "t_max": self.t_max.value(), "align": self.align.currentData(),
                "bn_recompute": self.bn.currentData(), "seed": self.seed.value()}

    def _save(self) -> None:
        if self._settings is None:
            return
        for key, value in self._values().items():
            self._settings.setValue(KEY_PREFIX + key, str(value))

    def _restore(self) -> None:
        """Last time's choices (Garipov et al.'s defaults the first time); a hand-edited value is skipped."""
        stored = dict(DEFAULTS)
        if self._settings is not None:
            for key, default in DEFAULTS.items():
                value = self._settings.value(KEY_PREFIX + key)
                if value in (None, ""):
                    continue
                try:
                    stored[key] = type(default)(float(value)) if isinstance(default, (int, float)) else str(value)
                except (TypeError, ValueError):
                    pass
        for key, combo in (("curve", self.curve), ("align", self.align), ("bn_recompute", self.bn)):
            combo.setCurrentIndex(max(0, combo.findData(stored[key])))
        self.optimizer.setCurrentText(stored["optimizer"] if stored["optimizer"] in OPTIMIZERS else "sgd")
        self.bends.setValue(int(stored["bends"]))
        self.epochs.setValue(int(stored["epochs"]))
        self.lr.setValue(float(stored["lr"]))
        self.batch_size.setValue(int(stored["batch_size"]))
        self.points.setValue(int(stored["points"]))
        self.t_min.setValue(float(stored["t_min"]))
        self.t_max.setValue(float(stored["t_max"]))
        self.seed.setValue(int(stored["seed"]))



__all__ = ["PathDialog", "default_b", "default_out", "default_test_data"]
