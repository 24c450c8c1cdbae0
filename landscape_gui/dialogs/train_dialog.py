"""Train a sample model from the GUI: ``TrainSampleDialog`` runs ``samples.registry.train``.

The option form is built from the recipe's ``Option`` specs, so a new recipe or
option needs no GUI change. Training runs in a ``CallbackWorker``; its progress
callback feeds a live loss curve, a progress bar and an ETA. A finished run keeps the
dialog open on its curve, with "Compute its surface" (accepts: the caller opens the
checkpoint) and "Close". Cancel keeps the epoch training reached (the recipe writes a
complete folder for it). Closing the dialog while training cancels and waits for the worker.

Runs go to a visible folder, ``~/Landscape/runs`` until the user trains somewhere else,
which is then remembered.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.errors import LandscapeError
from engine.io.references import one_line
from landscape_gui.dialogs.model_dialog import ErrorLabel, browse_button, ScreenFittedDialog, row, start_folder
from landscape_gui.first_run import cache_root
from landscape_gui.settings import AppSettings
from landscape_gui.workers import CallbackWorker
from samples import registry
from samples.options import Option, check_seed, resolve
from samples.training import TrainResult

INT_MAX = 2**31 - 1
FLOAT_MAX = 1e12
REDRAW_MS = 50  # at most ~20 redraws a second, however fast training reports
FOLDER_TAGS = {"width": "w", "channels": "c"}  # options that name the default output folder

# Workers still running after a close timed out: kept alive (unparented) until their thread ends,
# so destroying the dialog never destroys a running QThread.
_ORPHANS: set[CallbackWorker] = set()

DEFAULT_RUNS = Path.home() / "Landscape" / "runs"
FOLDER_KIND = "samples"  # AppSettings' folder kind: where the last run's folder was

KEY_RECIPE = "train_dialog/recipe"
KEY_SEED = "train_dialog/seed"
KEY_OPTIONS = "train_dialog/options/"  # + recipe name: JSON {option: value}


class FloatSpinBox(QDoubleSpinBox):
    """A QDoubleSpinBox that shows 1e-05 rather than 0.000010 and steps by a tenth of the leading digit."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(15)
        self.setStepType(QAbstractSpinBox.AdaptiveDecimalStepType)
        self.setKeyboardTracking(False)

    def textFromValue(self, value: float) -> str:  # noqa: N802 - Qt override
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 - Qt override
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):  # noqa: D102 - Qt override
        stripped = text.strip()
        try:
            value = float(stripped)
        except ValueError:
            partial = stripped in ("", "-", "+", ".", "-.", "+.") or stripped.lower().endswith(("e", "e-", "e+"))
            return (QValidator.Intermediate if partial else QValidator.Invalid), text, pos
        if not math.isfinite(value) or value < self.minimum() or value > self.maximum():
            return QValidator.Intermediate, text, pos
        return QValidator.Acceptable, text, pos


def option_widget(spec: Option) -> QWidget:
    """A spin box or combo box for one recipe option, with its default, bounds and help."""
    if spec.choices is not None:
        widget: QWidget = QComboBox()
        for choice in spec.choices:
            widget.addItem(str(choice), choice)
        widget.setCurrentIndex(max(0, widget.findData(spec.default)))
    elif spec.type is int:
        widget = QSpinBox()
        low = -INT_MAX if spec.minimum is None else int(math.ceil(spec.minimum)) + (1 if spec.strict else 0)
        widget.setRange(low, INT_MAX)
        widget.setValue(int(spec.default))
        widget.setKeyboardTracking(False)
    elif spec.type is float:
        widget = FloatSpinBox()
        widget.setRange(-FLOAT_MAX if spec.minimum is None else float(spec.minimum), FLOAT_MAX)
        widget.setValue(float(spec.default))
    else:
        widget = QLineEdit(str(spec.default))
    bound = ""
    if spec.minimum is not None:
        bound = f"; must be {'greater than' if spec.strict else 'at least'} {spec.minimum:g}"
    widget.setToolTip(f"{spec.help} (default {spec.default}{bound})")
    widget.setObjectName(spec.name)
    return widget


def widget_value(widget: QWidget) -> Any:
    if isinstance(widget, QComboBox):
        return widget.currentData()
    if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
        return widget.value()
    return widget.text()


def set_widget_value(widget: QWidget, value: Any) -> None:
    if isinstance(widget, QComboBox):
        index = widget.findData(value)
        if index < 0:
            raise ValueError(f"{widget.objectName()} must be one of {[widget.itemData(i) for i in range(widget.count())]}")
        widget.setCurrentIndex(index)
    elif isinstance(widget, QSpinBox):
        widget.setValue(int(value))
    elif isinstance(widget, QDoubleSpinBox):
        widget.setValue(float(value))
    else:
        widget.setText(str(value))


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def default_base(settings: AppSettings | None) -> Path:
    """Where runs go: the folder of the last run, else ``DEFAULT_RUNS``.

    Earlier versions trained into the hidden cache folder and remembered it; that folder was never
    the user's choice, so it gives way to the visible default.
    """
    remembered = Path(start_folder(settings, FOLDER_KIND, DEFAULT_RUNS))
    return DEFAULT_RUNS if remembered.is_relative_to(cache_root()) else remembered


class TrainSampleDialog(ScreenFittedDialog):
    """Pick a recipe and its options, train it with live progress; ``trained`` carries the TrainResult.

    ``base_folder`` holds the runs; None: where the last run went (``settings``), else ``DEFAULT_RUNS``.
    """

    trained = Signal(object)  # TrainResult of a run that finished (not cancelled, no error)

    def __init__(self, base_folder: str | Path | None = None, settings: QSettings | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train a sample model")
        self._settings = settings
        self._folders = AppSettings(settings) if settings is not None else None
        self._base = Path(base_folder) if base_folder is not None else default_base(self._folders)
        self._option_widgets: dict[str, QWidget] = {}
        self._out_auto = True
        self._worker: CallbackWorker | None = None
        self._result: TrainResult | None = None
        self._closing = False
        self._epochs: list[float] = []
        self._losses: list[float] = []
        self._latest: tuple[int, int, float] | None = None
        self._started = 0.0
        self._dirty = False

        self.recipe = QComboBox()
        for name in registry.RECIPES:
            self.recipe.addItem(name, name)
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.description.setMinimumWidth(300)
        self.options_box = QGroupBox("Options")
        self.options_form = QFormLayout(self.options_box)
        self.options_form.setFieldGrowthPolicy(QFormLayout.ExpandingFieldsGrow)
        self.seed = QSpinBox()
        self.seed.setRange(0, INT_MAX)
        self.seed.setToolTip("seed of initialization and data order (the pair recipe also uses seed + 1)")
        self.out_edit = QLineEdit()
        self.out_browse = browse_button()
        self.out_note = ErrorLabel()

        top = QFormLayout()
        top.setFieldGrowthPolicy(QFormLayout.ExpandingFieldsGrow)
        top.addRow("Recipe:", row(self.recipe, QWidget()))
        top.addRow("", self.description)  # its own row: wrapped next to the combo it was clipped

        run_form = QFormLayout()
        run_form.setFieldGrowthPolicy(QFormLayout.ExpandingFieldsGrow)
        run_form.addRow("Output folder:", row(self.out_edit, self.out_browse))
        run_form.addRow("", self.out_note)
        self._label_forms = (top, self.options_form, run_form)

        # progress
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(160)
        for side in ("left", "bottom"):
            self.plot.getAxis(side).enableAutoSIPrefix(False)
        self.plot.setBackground(self.palette().base().color())
        text_color = self.palette().text().color()
        for side in ("left", "bottom"):
            axis = self.plot.getAxis(side)
            axis.setPen(text_color)
            axis.setTextPen(text_color)
        self.plot.setLabel("bottom", "epoch")
        self.plot.setLabel("left", "train loss")
        self.plot.setLogMode(x=False, y=True)
        self.plot.setMenuEnabled(False)
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#1f77b4", width=2))
        self.placeholder = pg.TextItem("the loss of each epoch appears here while training", color=text_color,
                                       anchor=(0.5, 0.5))
        self.plot.addItem(self.placeholder, ignoreBounds=True)
        self.placeholder.setPos(0.5, 0.5)  # the middle of an empty plot's range
        self._show_axes(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("not started")
        self.eta = QLabel(" ")
        self.eta.setMinimumWidth(220)
        self.eta.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.eta)

        self.status = ErrorLabel()
        self.details_button = QPushButton("Details…")
        self.details_button.setCheckable(True)
        self.details_button.setAutoDefault(False)
        self.details_button.hide()
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.details.setMaximumHeight(160)
        self.details.hide()
        status_row = QHBoxLayout()
        status_row.addWidget(self.status, 1)
        status_row.addWidget(self.details_button, 0, Qt.AlignTop)

        self.buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.train_button = self.buttons.addButton("Train", QDialogButtonBox.ActionRole)
        self.train_button.setDefault(True)
        self.cancel_button = self.buttons.addButton("Cancel training", QDialogButtonBox.ActionRole)
        self.cancel_button.setAutoDefault(False)
        self.cancel_button.setEnabled(False)
        self.surface_button = self.buttons.addButton("Compute its surface", QDialogButtonBox.AcceptRole)
        self.surface_button.setToolTip("Open the trained checkpoint in the New Surface dialog")
        self.surface_button.hide()
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.options_box)
        layout.addLayout(run_form)
        layout.addWidget(self.plot, 1)
        layout.addLayout(progress_row)
        layout.addLayout(status_row)
        layout.addWidget(self.details)
        layout.addWidget(self.buttons)

        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._redraw)

        self._restore_recipe()
        self._build_options()
        self.recipe.currentIndexChanged.connect(self._recipe_changed)
        self.seed.valueChanged.connect(self._update_out)
        self.out_edit.textEdited.connect(self._out_edited)
        self.out_edit.textChanged.connect(self._update_out_note)
        self.out_browse.clicked.connect(self._browse_out)
        self.train_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.details_button.toggled.connect(self.details.setVisible)
        self._update_out()
        self.resize(max(self.sizeHint().width(), 600), max(self.sizeHint().height(), 720))

    # -- public -----------------------------------------------------------------------------
    def recipe_name(self) -> str:
        return self.recipe.currentData()

    def option_values(self) -> dict[str, Any]:
        """The option form's values, by option name (not validated)."""
        return {name: widget_value(widget) for name, widget in self._option_widgets.items()}

    def option_widget(self, name: str) -> QWidget:
        return self._option_widgets[name]

    def set_values(self, **values: Any) -> None:
        """Set ``recipe``, ``seed``, ``out`` and recipe options by name (tests, the app)."""
        if "recipe" in values:
            index = self.recipe.findData(values.pop("recipe"))
            if index < 0:
                raise ValueError(f"unknown recipe; choose one of {', '.join(registry.RECIPES)}")
            self.recipe.setCurrentIndex(index)
        if "seed" in values:
            self.seed.setValue(int(values.pop("seed")))
        out = values.pop("out", None)
        for name, value in values.items():
            if name not in self._option_widgets:
                raise TypeError(f"{self.recipe_name()} has no option '{name}'")
            set_widget_value(self._option_widgets[name], value)
        if out is not None:
            self._out_auto = False
            self.out_edit.setText(str(out))
        self._update_out()

    def is_training(self) -> bool:
        return self._worker is not None

    def result(self) -> TrainResult | None:  # type: ignore[override] - the run's result, not the dialog code
        """The last run's TrainResult (cancelled runs too), or None before one ended."""
        return self._result

    def result_value(self) -> TrainResult | None:
        """Same as :meth:`result`, under a name that does not shadow ``QDialog.result()``."""
        return self._result

    def error_text(self) -> str:
        return self.status.text() if self.status.kind == "error" else ""

    def start(self) -> bool:
        """Validate the form and start training in a worker; False (with the error shown) when invalid."""
        if self._worker is not None:
            return False
        name = self.recipe_name()
        recipe = registry.get(name)
        options = self.option_values()
        seed = self.seed.value()
        out = self.out_edit.text().strip()
        try:
            resolve(name, recipe.options, options)
            check_seed(seed)
            if not out:
                raise LandscapeError("choose an output folder")
        except LandscapeError as exc:
            self._show_error(one_line(exc), "")
            return False
        self._save(name, seed, options)
        self._closing = False
        self._result = None
        self._epochs, self._losses, self._latest = [], [], None
        self.curve.setData([], [])
        self._show_axes(False)
        self.plot.enableAutoRange()
        self.surface_button.hide()
        self.train_button.setDefault(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m epochs")
        self.eta.setText("starting…")
        self.status.show_message(f"Training {name} into {out}", "info")
        self.details_button.hide()
        self.details_button.setChecked(False)

        def work(report):
            return registry.train(name, out, seed=seed, progress=report, **options)

        worker = CallbackWorker(work, self)
        worker.progress.connect(self._on_progress)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._set_running(True)
        self._started = time.perf_counter()
        self._timer.start()
        worker.start()
        return True

    def cancel(self) -> None:
        """Stop training at its next progress report; the folder keeps the epoch it reached."""
        if self._worker is not None:
            self._worker.cancel()
            self.cancel_button.setEnabled(False)
            self.eta.setText("cancelling…")

    def done(self, code: int) -> None:  # noqa: D102 - closing while training cancels and waits
        if self._worker is not None:
            self._closing = True
            worker = self._worker
            if not worker.stop_and_wait():
                worker.setParent(None)
                _ORPHANS.add(worker)
                worker.finished.connect(lambda: _ORPHANS.discard(worker))
        self._timer.stop()
        super().done(code)

    # -- worker signals ---------------------------------------------------------------------
    def _on_progress(self, args: tuple) -> None:
        epoch, total, loss = args
        self._latest = (int(epoch), int(total), float(loss))
        self._epochs.append(float(epoch))
        self._losses.append(float(loss))
        self._dirty = True

    def _on_returned(self, result: TrainResult) -> None:
        self._result = result
        self._dirty = True
        self._redraw()
        if result.cancelled:
            epochs = result.history.get("epoch") or ([self._latest[0]] if self._latest else [0])
            epoch = epochs[-1]
            self.status.show_message(f"Cancelled at epoch {epoch}: {result.out} holds the model of that epoch.",
                                     "note")
            self.eta.setText(f"cancelled after {_clock(result.seconds)}")
            return
        facts = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items())
        self.status.show_message(f"Trained in {result.seconds:.1f} s{': ' + facts if facts else ''} → {result.out}",
                                 "ok")
        self.eta.setText(f"done in {_clock(result.seconds)}")
        if self._folders is not None:
            self._folders.set_last_folder(FOLDER_KIND, result.out.parent)  # the next run's default goes there too
        if self._closing:
            return
        self.surface_button.show()
        self.surface_button.setDefault(True)
        self.trained.emit(result)

    def _on_errored(self, message: str, details: str) -> None:
        self._redraw()
        self._show_error(message, details)
        self.eta.setText("failed")

    def _on_finished(self) -> None:
        worker, self._worker = self._worker, None
        self._timer.stop()
        self._set_running(False)
        if worker is not None:
            worker.deleteLater()

    # -- internals --------------------------------------------------------------------------
    def _show_error(self, message: str, details: str) -> None:
        self.status.show_message(message, "error")
        self.details.setPlainText(details or message)
        self.details_button.setVisible(bool(details))
        if not details:
            self.details_button.setChecked(False)

    def _set_running(self, running: bool) -> None:
        self.train_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for widget in (self.recipe, self.options_box, self.seed, self.out_edit, self.out_browse):
            widget.setEnabled(not running)

    def _redraw(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        if self._latest is not None:
            epoch, total, _loss = self._latest
            if self.progress.maximum() != total:
                self.progress.setRange(0, total)
                self.plot.setXRange(0, max(total, 1), padding=0.02)  # the curve grows across the plot
            self.progress.setValue(epoch)
            elapsed = time.perf_counter() - self._started
            if 0 < epoch < total:
                left = elapsed * (total - epoch) / epoch
                self.eta.setText(f"{_clock(elapsed)} elapsed · about {_clock(left)} left")
            elif self._worker is not None:
                self.eta.setText(f"{_clock(elapsed)} elapsed")
        x = np.asarray(self._epochs, dtype=float)
        y = np.asarray(self._losses, dtype=float)
        keep = np.isfinite(y) & (y > 0)  # a log axis shows positive values only
        self.curve.setData(x[keep], y[keep])
        self._show_axes(bool(keep.any()))

    def _show_axes(self, has_data: bool) -> None:
        """Ticks and grid only over a curve: an empty log plot would show 2…9 of a decade nothing is in."""
        for side in ("left", "bottom"):
            self.plot.getAxis(side).setStyle(showValues=has_data)
        self.plot.showGrid(x=has_data, y=has_data, alpha=0.2)
        self.placeholder.setVisible(not has_data)

    def _recipe_changed(self, *_args: Any) -> None:
        self._build_options()
        self._update_out()

    def _build_options(self) -> None:
        recipe = registry.get(self.recipe_name())
        self.description.setText(recipe.description)
        while self.options_form.rowCount():
            if self.options_form.itemAt(0, QFormLayout.FieldRole).widget() is self.seed:
                taken = self.options_form.takeRow(0)  # the seed box is kept and re-added last
                if taken.labelItem is not None and taken.labelItem.widget() is not None:
                    taken.labelItem.widget().deleteLater()
                continue
            self.options_form.removeRow(0)
        stored = self._stored_options(recipe.name)
        self._option_widgets = {}
        for spec in recipe.options:
            widget = option_widget(spec)
            if spec.name in stored:
                try:
                    set_widget_value(widget, stored[spec.name])
                except (ValueError, TypeError):
                    pass
            label = (spec.name.upper() if len(spec.name) <= 3 else spec.name.replace("_", " ").capitalize()) + ":"
            widget.setMinimumWidth(140)
            self.options_form.addRow(label, widget)
            self._option_widgets[spec.name] = widget
            if spec.name in FOLDER_TAGS:
                signal = getattr(widget, "valueChanged", None)
                if signal is not None:
                    signal.connect(self._update_out)
        self.seed.setMinimumWidth(140)
        self.options_form.addRow("Seed:", self.seed)
        self._align_labels()

    def _align_labels(self) -> None:
        labels = []
        for form in self._label_forms:
            for i in range(form.rowCount()):
                item = form.itemAt(i, QFormLayout.LabelRole)
                if item is not None and isinstance(item.widget(), QLabel):
                    labels.append(item.widget())
        for label in labels:
            label.setMinimumWidth(0)
        width = max(label.sizeHint().width() for label in labels)
        for label in labels:
            label.setMinimumWidth(width)
            label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)

    def default_out(self) -> Path:
        """``<base>/<recipe>-w<width>-s<seed>`` (the tags are the recipe's size options)."""
        parts = [self.recipe_name()]
        for name, tag in FOLDER_TAGS.items():
            if name in self._option_widgets:
                parts.append(f"{tag}{widget_value(self._option_widgets[name])}")
        parts.append(f"s{self.seed.value()}")
        return self._base / "-".join(parts)

    def _update_out(self, *_args: Any) -> None:
        if self._out_auto:
            self.out_edit.setText(str(self.default_out()))
        self._update_out_note()

    def _out_edited(self, _text: str) -> None:
        self._out_auto = False

    def _update_out_note(self, *_args: Any) -> None:
        out = Path(self.out_edit.text().strip()) if self.out_edit.text().strip() else None
        if out is not None and out.is_file():
            self.out_note.show_message("This is a file; choose a folder.", "error")
        elif out is not None and (out / "recipe.json").is_file():
            self.out_note.show_message("This folder holds an earlier run: training replaces its outputs.", "note")
        else:
            self.out_note.clear_message()

    def _browse_out(self) -> None:
        start = self.out_edit.text().strip() or str(self._base)
        path = QFileDialog.getExistingDirectory(self, "Output folder", str(Path(start).parent))
        if path:
            self._out_auto = False
            self.out_edit.setText(path)

    # -- settings ---------------------------------------------------------------------------
    def _stored_options(self, recipe: str) -> dict[str, Any]:
        if self._settings is None:
            return {}
        raw = self._settings.value(KEY_OPTIONS + recipe, "")
        try:
            value = json.loads(raw) if isinstance(raw, str) and raw else {}
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    def _restore_recipe(self) -> None:
        if self._settings is None:
            return
        index = self.recipe.findData(self._settings.value(KEY_RECIPE, ""))
        if index >= 0:
            self.recipe.setCurrentIndex(index)
        try:
            self.seed.setValue(int(self._settings.value(KEY_SEED, 0)))
        except (TypeError, ValueError):
            pass

    def _save(self, recipe: str, seed: int, options: dict[str, Any]) -> None:
        if self._settings is None:
            return
        self._settings.setValue(KEY_RECIPE, recipe)
        self._settings.setValue(KEY_SEED, str(seed))
        self._settings.setValue(KEY_OPTIONS + recipe, json.dumps(options))
