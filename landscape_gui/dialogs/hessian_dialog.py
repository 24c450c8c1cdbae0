"""Compute ▸ Hessian Spectrum…: ``HessianDialog`` -> ``engine.jobs.hessian.HessianRequest``.

A checkpoint, the model and data to take the loss with (prefilled from the checkpoint as
File ▸ Open Checkpoint does, with the same recent entries), what to compute (the largest and
smallest eigenvalues, the trace, the spectral density, the overparameterization report that
needs all of them), how (BatchNorm mode, seed, data subset, device) and the output file. The
dialog only gathers choices; the window submits the request to its job runner, like a surface's.

The choices are remembered; the map's right-click **Hessian here** computes with them too
(:func:`stored_options`, :func:`hessian_here_request`), at a point of the surface shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
from engine.jobs.hessian import HessianRequest
from engine.numerics.problem import resolve_device
from landscape_gui.dialogs.compute_dialog import ContentScroll, _inline_label, device_choices
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
from landscape_gui.dialogs.path_dialog import CHECKPOINT_FILTER, DATA_FILTER, TEST_DATA_PLACEHOLDER, default_test_data
from landscape_gui.state import HESSIAN_HERE_TAG

KEY_PREFIX = "hessian_dialog/"
# What is computed, and how: the engine's defaults (the report on: the numbers people cite, side by side)
DEFAULTS: dict[str, Any] = {
    "top_k": 1, "bottom_k": 1, "eigenvectors": False, "max_iter": 100, "trace": True, "trace_tol": 0.01,
    "trace_max_probes": 1000, "density": True, "density_probes": 5, "density_steps": 80, "report": True,
    "seed": 0, "mode": "eval",
}
MODES = {"eval": "eval: BatchNorm uses its running statistics", "train": "train: batch statistics"}
MAX_K = 1000
SEED_MAX = 2**31 - 1


def default_out(checkpoint: Path) -> str:
    """DIR/spectrum.h5 beside DIR/model.pt (a recipe's layout: one run per folder); else DIR/<stem>_spectrum.h5."""
    if checkpoint.stem in ("model", "checkpoint"):
        return str(checkpoint.parent / "spectrum.h5")
    return str(checkpoint.parent / f"{checkpoint.stem}_spectrum.h5")


def _bool(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def stored_options(settings: QSettings | None) -> dict[str, Any]:
    """The what-and-how choices last made in the dialog (DEFAULTS the first time), as HessianRequest fields."""
    values = dict(DEFAULTS)
    if settings is not None:
        for key, default in DEFAULTS.items():
            raw = settings.value(KEY_PREFIX + key)
            if raw in (None, ""):
                continue
            try:
                if isinstance(default, bool):
                    values[key] = _bool(raw)
                elif isinstance(default, int):
                    values[key] = int(float(raw))
                elif isinstance(default, float):
                    values[key] = float(raw)
                else:
                    values[key] = str(raw)
            except (TypeError, ValueError):  # a hand-edited settings file
                pass
    if values["mode"] not in MODES:
        values["mode"] = DEFAULTS["mode"]
    return values


def store_options(settings: QSettings | None, values: Mapping[str, Any]) -> None:
    if settings is None:
        return
    for key in DEFAULTS:
        if key in values:
            settings.setValue(KEY_PREFIX + key, str(values[key]))


def format_coordinate(value: float) -> str:
    """A coordinate in a file name: 4 significant digits, no exponent for the usual plane range."""
    text = f"{value:.4g}"
    return "0" if text in ("-0", "0") else text


def hessian_here_out(surface_path: Path, point: tuple[float, ...]) -> Path:
    """``<surface stem>-hessian-x<x>-y<y>.h5`` beside the surface."""
    names = "-".join(f"{axis}{format_coordinate(v)}" for axis, v in zip("xy", point))
    return surface_path.parent / f"{surface_path.stem}{HESSIAN_HERE_TAG}{names}.h5"


def hessian_here_request(surface_path: str | Path, attrs: Mapping[str, Any], point: tuple[float, ...],
                         options: Mapping[str, Any] | None = None) -> HessianRequest:
    """The Hessian at ``point`` of a surface file: the checkpoint, data, model, loss, mode and data subset its
    attributes record, the remembered dialog choices (``options``), the report on, into a file beside it."""
    surface_path = Path(surface_path)
    if attrs.get("format", "landscape") != "landscape" or attrs.get("kind", "surface") != "surface":
        raise LandscapeError("the Hessian at a point needs a Landscape surface file (this one records no checkpoint)")
    checkpoint = str(attrs.get("checkpoint") or "")
    if not checkpoint:
        raise LandscapeError(f"{surface_path.name} records no checkpoint: the Hessian cannot be taken at its points")
    if not Path(checkpoint).is_file():
        raise LandscapeError(f"the checkpoint of {surface_path.name} is gone: {checkpoint}")
    data = str(attrs.get("data") or "")
    if not data:
        raise LandscapeError(f"{surface_path.name} records no data")
    model = str(attrs.get("model") or "")
    try:
        kwargs = json.loads(attrs.get("model_kwargs") or "{}") or None
    except (TypeError, ValueError):
        kwargs = None
    max_samples = int(attrs.get("max_samples", -1) or -1)
    # what to compute from the dialog's choices; where and how (data subset, BatchNorm mode) from the map's own
    chosen = {**stored_options(None), **(options or {})}
    chosen.update(report=True, mode=str(attrs.get("mode") or chosen["mode"]))
    test = default_test_data(Path(checkpoint), data)
    return HessianRequest(
        checkpoint=checkpoint, data=data, out=str(hessian_here_out(surface_path, point)), test_data=test or None,
        model=None if not model or model.startswith("<") else model, model_kwargs=kwargs,
        loss=str(attrs.get("loss") or "auto"), at=str(surface_path.resolve()), point=tuple(float(v) for v in point),
        max_samples=None if max_samples < 0 else max_samples, **{k: chosen[k] for k in DEFAULTS},
    )


def _spin(low: int, high: int, tip: str, suffix: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setToolTip(tip)
    if suffix:
        box.setSuffix(suffix)
    return box


class HessianDialog(RequestDialog):
    """The settings of a Hessian spectrum at a checkpoint; :meth:`request` gives the HessianRequest."""

    def __init__(self, checkpoint: str | Path | None = None, settings: QSettings | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Hessian spectrum")
        self._settings = settings
        self._out_auto = True  # the output name follows the checkpoint until the user edits it
        self._prefilled_for: str | None = None
        self._needs_pickle = False

        # the checkpoint
        self.checkpoint_edit = QLineEdit()
        self.checkpoint_edit.setPlaceholderText("the checkpoint whose Hessian to take")
        self.checkpoint_browse = browse_button()
        where_box = QGroupBox("Checkpoint")
        where_form = QFormLayout(where_box)
        where_form.addRow("Checkpoint:", row(self.checkpoint_edit, self.checkpoint_browse))

        # model and data, as File ▸ Open Checkpoint asks them (the same recent entries)
        from engine.builtin.datasets import DATASETS

        samples = [f"sample:{name}" for name in DATASETS]
        self.model_edit = RecentCombo(load_recent(settings, KEY_RECENT_MODELS),
                                      placeholder="the checkpoint's own, or module.path:callable / file.py:callable")
        self.kwargs_edit = RecentCombo(load_recent(settings, KEY_RECENT_KWARGS),
                                       placeholder='the checkpoint\'s own, or {"width": 200} / width=200')
        self.data_edit = RecentCombo(load_recent(settings, KEY_RECENT_DATA), suggestions=samples,
                                     placeholder="training data: .npz / .pt / .h5, sample:NAME or module:callable")
        self.data_edit.setToolTip("The Hessian is of the mean loss over all of this data (or the subset below)")
        self.data_browse = browse_button()
        self.test_edit = RecentCombo(load_recent(settings, KEY_RECENT_DATA), suggestions=samples,
                                     placeholder=TEST_DATA_PLACEHOLDER)
        self.test_edit.setToolTip("The report's test loss (and accuracy) are measured on it; leave empty to skip")
        self.test_browse = browse_button()
        self.trust_box = QCheckBox("I trust this file: allow running pickled code from it")
        self.trust_box.setVisible(False)
        self.check_button = QPushButton("Check model")
        self.check_button.setAutoDefault(False)
        self.check_button.setToolTip("Build the model with these settings and load the checkpoint's weights into it")
        self.model_note = ErrorLabel()
        model_box = QGroupBox("Model and data")
        model_form = QFormLayout(model_box)
        model_form.addRow("Model:", self.model_edit)
        model_form.addRow("Model kwargs:", self.kwargs_edit)
        model_form.addRow("Training data:", row(self.data_edit, self.data_browse))
        model_form.addRow("Test data:", row(self.test_edit, self.test_browse))
        model_form.addRow("", row(self.trust_box, QWidget(), self.check_button, stretch_first=False))
        model_form.addRow(self.model_note)

        # what to compute
        self.report = QCheckBox("Overparameterization report")
        self.report.setToolTip("p, n, p/n, train and test loss, whether the model interpolates, λmax, λmin, the "
                               "trace, the negative spectral mass and the effective dimensionality N_eff: it needs "
                               "the extreme eigenvalues, the trace and the density")
        self.top_k = _spin(0, MAX_K, "how many of the largest eigenvalues (Lanczos)", " largest")
        self.bottom_k = _spin(0, MAX_K, "how many of the smallest (most negative) eigenvalues", " smallest")
        self.eigenvectors = QCheckBox("Store eigenvectors")
        self.eigenvectors.setToolTip("keep the eigenvectors in the file, keyed by parameter name")
        self.max_iter = _spin(1, 100_000, "most Hessian-vector products the Lanczos iteration may take", " steps")
        self.trace = QCheckBox("Hutch++")
        self.trace.setToolTip("the trace, the sum of all eigenvalues, by Hutch++ (Meyer et al. 2021)")
        self.trace_tol = QDoubleSpinBox()
        self.trace_tol.setRange(0.01, 100.0)
        self.trace_tol.setDecimals(2)
        self.trace_tol.setSingleStep(0.5)
        self.trace_tol.setSuffix(" %")
        self.trace_tol.setKeyboardTracking(False)
        self.trace_tol.setToolTip("stop when the trace's standard error is below this share of it")
        self.trace_max_probes = _spin(2, 1_000_000, "most random samples of the trace", " samples")
        self.density = QCheckBox("Stochastic Lanczos quadrature")
        self.density.setToolTip("the spectral density (Ghorbani et al. 2019): redrawn at any width σ afterwards "
                                "without new products")
        self.density_probes = _spin(1, 10_000, "random probe vectors n_v", " probes")
        self.density_steps = _spin(2, 100_000, "Lanczos steps per probe m", " steps")
        what_box = QGroupBox("What to compute")
        what_form = QFormLayout(what_box)
        what_form.addRow("Report:", self.report)
        what_form.addRow("Eigenvalues:", row(self.top_k, self.bottom_k, _inline_label("at most", self.max_iter),
                                             self.max_iter, self.eigenvectors, QWidget(), stretch_first=False))
        what_form.addRow("Trace:", row(self.trace, _inline_label("to", self.trace_tol), self.trace_tol,
                                       _inline_label("at most", self.trace_max_probes), self.trace_max_probes,
                                       QWidget(), stretch_first=False))
        what_form.addRow("Density:", row(self.density, self.density_probes, self.density_steps, QWidget(),
                                         stretch_first=False))

        # how
        self.mode = QComboBox()
        for key, label in MODES.items():
            self.mode.addItem(label, key)
        self.seed = _spin(0, SEED_MAX, "seed of every random vector (Lanczos start, trace and density probes)")
        self.max_samples = QSpinBox()
        self.max_samples.setRange(0, 2**31 - 1)
        self.max_samples.setSpecialValueText("all samples")
        self.max_samples.setSuffix(" samples")
        self.max_samples.setToolTip("take the loss over a fixed random subset of this many samples (all: the whole "
                                    "data set)")
        self.device = QComboBox()
        self.device.setEditable(True)
        self.device.addItems(device_choices())
        self.device.setCurrentText("auto")
        self.device.setToolTip("auto picks CUDA when this machine has it, else the CPU")
        how_box = QGroupBox("Evaluation")
        how_form = QFormLayout(how_box)
        how_form.addRow("Mode:", row(self.mode, _inline_label("Seed:", self.seed), self.seed, QWidget(),
                                     stretch_first=False))
        how_form.addRow("Data subset:", row(self.max_samples, _inline_label("Device:", self.device), self.device,
                                            QWidget(), stretch_first=False))

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

        forms = (where_form, model_form, what_form, how_form, out_form)
        for form in forms:
            form.setFieldGrowthPolicy(QFormLayout.ExpandingFieldsGrow)
        align_label_columns(*forms)

        self.error = ErrorLabel()
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.ok_button().setText("Compute")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        intro = QLabel("The curvature of the loss at a checkpoint, from Hessian-vector products over the whole data: "
                       "its extreme eigenvalues, its trace and its spectral density, and a report of the numbers the "
                       "overparameterization literature cites. The Spectrum tab shows it.")
        intro.setWordWrap(True)
        intro.setStyleSheet(f"color: {ErrorLabel.COLORS['info']};")

        content = QWidget()
        content_layout = QVBoxLayout(content)
        content_layout.setContentsMargins(0, 0, 0, 0)
        for widget in (intro, where_box, model_box, what_box, how_box, out_box):
            content_layout.addWidget(widget)
        content_layout.addStretch(1)
        self.scroll = ContentScroll(content)
        layout = QVBoxLayout(self)
        layout.addWidget(self.scroll, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.buttons)

        self._restore()
        if checkpoint:
            self.checkpoint_edit.setText(str(checkpoint))
        self._checkpoint_changed()
        self.checkpoint_edit.textChanged.connect(self._checkpoint_changed)
        self.out_edit.textChanged.connect(self._changed)
        for combo in (self.model_edit, self.kwargs_edit, self.data_edit, self.test_edit):
            combo.editTextChanged.connect(self._changed)
        self.mode.currentIndexChanged.connect(self._changed)
        self.device.editTextChanged.connect(self._changed)
        for box in (self.top_k, self.bottom_k, self.max_iter, self.trace_max_probes, self.density_probes,
                    self.density_steps, self.seed, self.max_samples, self.trace_tol):
            box.valueChanged.connect(self._changed)
        for box in (self.report, self.trace, self.density, self.eigenvectors, self.trust_box, self.overwrite):
            box.toggled.connect(self._changed)
        self.out_edit.textEdited.connect(self._out_edited)
        self.checkpoint_browse.clicked.connect(self._browse_checkpoint)
        self.data_browse.clicked.connect(lambda: self._browse_data(self.data_edit))
        self.test_browse.clicked.connect(lambda: self._browse_data(self.test_edit))
        self.out_browse.clicked.connect(self._browse_out)
        self.check_button.clicked.connect(self.check)
        self._changed()
        self.resize(max(self.sizeHint().width(), 680), self.sizeHint().height())

    # -- public -----------------------------------------------------------------------------
    def ok_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.Ok)

    FIELDS = ("checkpoint", "model", "model_kwargs", "data", "test_data", "top_k", "bottom_k", "eigenvectors",
              "max_iter", "trace", "trace_tol", "trace_max_probes", "density", "density_probes", "density_steps",
              "report", "seed", "mode", "max_samples", "device", "out", "overwrite", "trust_pickle")

    def set_values(self, **values: Any) -> None:
        """Set fields by HessianRequest names (tests, the app): see ``FIELDS`` (``trace_tol`` as a fraction)."""
        unknown = set(values) - set(self.FIELDS)
        if unknown:
            raise TypeError(f"unknown field(s): {', '.join(sorted(unknown))}")
        if "checkpoint" in values:
            self.checkpoint_edit.setText(str(values["checkpoint"]))
        if "model" in values:
            self.model_edit.setText(values["model"] or "")
        if "model_kwargs" in values:
            kwargs = values["model_kwargs"]
            self.kwargs_edit.setText(kwargs if isinstance(kwargs, str) else format_kwargs(kwargs))
        if "data" in values:
            self.data_edit.setText(str(values["data"]))
        if "test_data" in values:
            self.test_edit.setText(str(values["test_data"] or ""))
        if "report" in values:
            self.report.setChecked(bool(values["report"]))
        for key, box in (("top_k", self.top_k), ("bottom_k", self.bottom_k), ("max_iter", self.max_iter),
                         ("trace_max_probes", self.trace_max_probes), ("density_probes", self.density_probes),
                         ("density_steps", self.density_steps), ("seed", self.seed)):
            if key in values and values[key] is not None:
                box.setValue(int(values[key]))
        for key, box in (("eigenvectors", self.eigenvectors), ("trace", self.trace), ("density", self.density),
                         ("overwrite", self.overwrite), ("trust_pickle", self.trust_box)):
            if key in values:
                box.setChecked(bool(values[key]))
        if "trace_tol" in values:
            self.trace_tol.setValue(100.0 * float(values["trace_tol"]))
        if "mode" in values:
            index = self.mode.findData(values["mode"])
            if index < 0:
                raise ValueError(f"mode {values['mode']!r} is not one of {', '.join(MODES)}")
            self.mode.setCurrentIndex(index)
        if "max_samples" in values:
            self.max_samples.setValue(int(values["max_samples"] or 0))
        if "device" in values:
            self.device.setCurrentText(str(values["device"] or "auto"))
        if "out" in values:
            self._out_auto = values["out"] is None
            if values["out"] is not None:
                self.out_edit.setText(str(values["out"]))
        self._changed()

    def choice(self) -> ModelChoice:
        """The model and data fields as File ▸ Open Checkpoint's choice (relative files made absolute)."""
        folder = self._checkpoint().absolute().parent
        model = None
        if self.model_edit.text():
            model, _note = resolve_field(self.model_edit.text(), folder)
        data = self.data_edit.text()
        if not data:
            raise LandscapeError("name the training data (a file, sample:NAME or module:callable)")
        data, _note = resolve_field(data, folder, data_field=True)
        return ModelChoice(model=model, model_kwargs=parse_kwargs_text(self.kwargs_edit.text()), data=data,
                           trust_pickle=self._needs_pickle and self.trust_box.isChecked())

    def options(self) -> dict[str, Any]:
        """What to compute and how, as HessianRequest fields (remembered for the next time, and Hessian here)."""
        return {"top_k": self.top_k.value(), "bottom_k": self.bottom_k.value(),
                "eigenvectors": self.eigenvectors.isChecked(), "max_iter": self.max_iter.value(),
                "trace": self.trace.isChecked(), "trace_tol": round(self.trace_tol.value() / 100.0, 6),
                "trace_max_probes": self.trace_max_probes.value(), "density": self.density.isChecked(),
                "density_probes": self.density_probes.value(), "density_steps": self.density_steps.value(),
                "report": self.report.isChecked(), "seed": self.seed.value(), "mode": self.mode.currentData()}

    def request(self) -> HessianRequest:
        """The HessianRequest of the fields; a one-line LandscapeError when they do not make one."""
        checkpoint = self._checkpoint()
        choice = self.choice()
        test = self.test_edit.text()
        if test:
            test, _note = resolve_field(test, checkpoint.absolute().parent, data_field=True)
        options = self.options()
        if not (options["report"] or options["top_k"] or options["bottom_k"] or options["trace"]
                or options["density"]):
            raise LandscapeError("choose something to compute: eigenvalues, the trace, the density or the report")
        device = self.device.currentText().strip() or "auto"
        resolve_device(device)
        out = self.out_edit.text().strip()
        if not out:
            raise LandscapeError("choose the output file")
        out_path = Path(out).expanduser()
        if out_path.is_dir():
            raise LandscapeError(f"{out} is a folder; choose a file name like spectrum.h5")
        if out_path.suffix.lower() not in (".h5", ".hdf5"):
            raise LandscapeError(f"{out_path.name}: a spectrum file ends in .h5")
        if out_path.exists() and out_path.resolve() == checkpoint.resolve():
            raise LandscapeError("the output file is the checkpoint; choose another name")
        return HessianRequest(
            checkpoint=str(checkpoint), data=choice.data, out=str(out_path), test_data=test or None,
            model=choice.model, model_kwargs=choice.model_kwargs, max_samples=self.max_samples.value() or None,
            device=None if device == "auto" else device, trust_pickle=choice.trust_pickle,
            overwrite=out_path.exists() and self.overwrite.isChecked(), **options,
        )

    def check(self) -> bool:
        """Build the model with the model fields (as File ▸ Open Checkpoint's Check); say the result inline."""
        try:
            message = check_choice(self._checkpoint(), self.choice())
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
        store_options(self._settings, self.options())

    # -- internals --------------------------------------------------------------------------
    def _checkpoint(self) -> Path:
        text = self.checkpoint_edit.text().strip()
        if not text:
            raise LandscapeError("choose the checkpoint")
        path = Path(text).expanduser()
        if not path.is_file():
            raise LandscapeError(f"no such checkpoint: {text}")
        return path

    def _checkpoint_changed(self, *_args: Any) -> None:
        """A new checkpoint: its own model, kwargs, data and test data fill the fields."""
        text = self.checkpoint_edit.text().strip()
        path = Path(text).expanduser() if text else None
        if path is None or not path.is_file() or text == self._prefilled_for:
            self._changed()
            return
        self._prefilled_for = text
        probe = probe_checkpoint(path)
        prefill = prefill_from_checkpoint(path, probe)
        self.model_edit.setText(prefill.model or "")
        self.kwargs_edit.setText(format_kwargs(prefill.model_kwargs))
        self.data_edit.setText(prefill.data)
        self.test_edit.setText(default_test_data(path, prefill.data))
        self._needs_pickle = probe.needs_pickle
        self.trust_box.setVisible(probe.needs_pickle)
        self.trust_box.setChecked(False)
        self.model_note.show_message(probe.error or "", "error")
        self._changed()

    def _changed(self, *_args: Any) -> None:
        report = self.report.isChecked()
        for box in (self.trace, self.density):  # the report needs them: shown ticked, not untickable
            box.setEnabled(not report)
            if report and not box.isChecked():
                box.blockSignals(True)
                box.setChecked(True)
                box.blockSignals(False)
        self.trace_tol.setEnabled(self.trace.isChecked())
        self.trace_max_probes.setEnabled(self.trace.isChecked())
        self.density_probes.setEnabled(self.density.isChecked())
        self.density_steps.setEnabled(self.density.isChecked())
        for box in (self.top_k, self.bottom_k):
            box.setMinimum(1 if report else 0)
        if self._out_auto:
            text = self.checkpoint_edit.text().strip()
            if text:
                out = default_out(Path(text).expanduser())
                if self.out_edit.text() != out:
                    self.out_edit.blockSignals(True)
                    self.out_edit.setText(out)
                    self.out_edit.blockSignals(False)
        self._update_out_note()
        try:
            self.request()
        except LandscapeError as exc:
            self._show_error(one_line(exc))
        else:
            self._show_error("")

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
            self.out_note.show_message("This file exists: it is resumed (products already computed are kept) if its "
                                       "settings match these; otherwise computing stops with a message.", "info")

    def _browse_checkpoint(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Checkpoint", self.checkpoint_edit.text().strip(),
                                              CHECKPOINT_FILTER)
        if path:
            self.checkpoint_edit.setText(path)

    def _browse_data(self, combo: RecentCombo) -> None:
        current = combo.text()
        start = (current if current and Path(current).suffix.lower() in DATA_SUFFIXES
                 else self.checkpoint_edit.text().strip())
        path, _ = QFileDialog.getOpenFileName(self, "Data file with arrays x and y", start, DATA_FILTER)
        if path:
            combo.setText(path)

    def _browse_out(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Spectrum file", self.out_edit.text().strip(),
                                              "Spectrum files (*.h5)", options=QFileDialog.DontConfirmOverwrite)
        if path:
            if not path.lower().endswith((".h5", ".hdf5")):
                path += ".h5"
            self._out_auto = False
            self.out_edit.setText(path)

    def _restore(self) -> None:
        """Last time's choices (the engine's defaults, with the report, the first time)."""
        values = stored_options(self._settings)
        self.report.setChecked(values["report"])
        self.top_k.setValue(values["top_k"])
        self.bottom_k.setValue(values["bottom_k"])
        self.eigenvectors.setChecked(values["eigenvectors"])
        self.max_iter.setValue(values["max_iter"])
        self.trace.setChecked(values["trace"])
        self.trace_tol.setValue(100.0 * values["trace_tol"])
        self.trace_max_probes.setValue(values["trace_max_probes"])
        self.density.setChecked(values["density"])
        self.density_probes.setValue(values["density_probes"])
        self.density_steps.setValue(values["density_steps"])
        self.seed.setValue(values["seed"])
        self.mode.setCurrentIndex(max(0, self.mode.findData(values["mode"])))


__all__ = ["DEFAULTS", "HessianDialog", "default_out", "hessian_here_out", "hessian_here_request", "store_options",
           "stored_options"]
