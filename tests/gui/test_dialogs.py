"""The model, compute and train dialogs, with real widgets, real checkpoints and real training runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import QSettings, Qt

from engine.io.checkpoints import save_checkpoint
from engine.jobs.surface import SurfaceRequest
from landscape_gui.dialogs.compute_dialog import ComputeDialog
from landscape_gui.dialogs.model_dialog import (
    KEY_RECENT_DATA,
    KEY_RECENT_KWARGS,
    KEY_RECENT_MODELS,
    ModelChoice,
    ModelDialog,
    automatic_choice,
    parse_kwargs_text,
    prefill_from_checkpoint,
)
from landscape_gui.dialogs.train_dialog import TrainSampleDialog
from samples.training import TrainResult

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import reference_models  # noqa: E402


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    return QSettings(str(tmp_path / "landscape.ini"), QSettings.IniFormat)


def _show(qtbot, dialog):
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


# -- ModelDialog --------------------------------------------------------------------------------


def test_model_dialog_check_builds_a_good_model_and_ok_returns_the_choice(qtbot, settings, classification_case):
    case = classification_case
    dialog = _show(qtbot, ModelDialog(case["checkpoint"], settings))
    assert dialog.trust_box.isHidden()
    dialog.set_values(model=case["model"], model_kwargs="", data=case["data"])
    assert dialog.check()
    assert dialog.status.kind == "ok" and "parameters" in dialog.status.text()
    assert dialog.ok_button().isEnabled()
    with qtbot.waitSignal(dialog.accepted, timeout=2000):
        qtbot.mouseClick(dialog.ok_button(), Qt.LeftButton)
    assert dialog.choice() == ModelChoice(model=case["model"], model_kwargs=None, data=case["data"], trust_pickle=False)


def test_model_dialog_shows_one_line_error_for_wrong_reference_and_stays_open(qtbot, settings, classification_case):
    case = classification_case
    dialog = _show(qtbot, ModelDialog(case["checkpoint"], settings))
    dialog.set_values(model=case["model"].replace(":cnn_bn", ":no_such_model"), data=case["data"])
    qtbot.mouseClick(dialog.ok_button(), Qt.LeftButton)
    assert dialog.isVisible() and dialog.result() == 0
    assert dialog.status.kind == "error" and dialog.status.isVisible()
    assert "no_such_model" in dialog.status.text() and "\n" not in dialog.status.text()
    assert not dialog.ok_button().isEnabled()  # until something changes
    dialog.set_values(model=case["model"])
    assert dialog.ok_button().isEnabled()


def test_model_dialog_shows_one_line_error_for_kwargs_that_do_not_fit(qtbot, settings, classification_case):
    case = classification_case
    dialog = _show(qtbot, ModelDialog(case["checkpoint"], settings))
    dialog.set_values(model=case["model"], model_kwargs="channels=3", data=case["data"])
    qtbot.mouseClick(dialog.ok_button(), Qt.LeftButton)
    assert dialog.isVisible() and dialog.result() == 0
    assert "do not fit the model" in dialog.status.text() and "\n" not in dialog.status.text()
    dialog.set_values(model_kwargs='{"channels": 4}')
    assert dialog.check()


def test_model_dialog_malformed_kwargs_disable_ok_with_inline_error(qtbot, settings, classification_case):
    case = classification_case
    dialog = _show(qtbot, ModelDialog(case["checkpoint"], settings))
    dialog.set_values(model=case["model"], model_kwargs='{"channels": ', data=case["data"])
    assert not dialog.ok_button().isEnabled()
    assert dialog.status.kind == "error" and "JSON" in dialog.status.text()


def test_kwargs_text_accepts_json_and_key_value_pairs():
    assert parse_kwargs_text("") is None
    assert parse_kwargs_text('{"width": 10}') == {"width": 10}
    assert parse_kwargs_text("width=10, depth=2 act=relu flag=true sizes=[1, 2]") == {
        "width": 10, "depth": 2, "act": "relu", "flag": True, "sizes": [1, 2]}


def test_model_dialog_remembers_recent_choices_in_qsettings(qtbot, settings, classification_case, tmp_path):
    case = classification_case
    other_data = tmp_path / "copy.npz"
    other_data.write_bytes(Path(case["data"]).read_bytes())
    for data, kwargs in ((case["data"], "channels=4"), (str(other_data), '{"channels": 4}')):
        dialog = _show(qtbot, ModelDialog(case["checkpoint"], settings))
        dialog.set_values(model=case["model"], model_kwargs=kwargs, data=data)
        with qtbot.waitSignal(dialog.accepted, timeout=2000):
            dialog.accept()
    settings.sync()
    stored = QSettings(settings.fileName(), QSettings.IniFormat)
    assert json.loads(stored.value(KEY_RECENT_DATA)) == [str(other_data), case["data"]]
    assert json.loads(stored.value(KEY_RECENT_KWARGS)) == ['{"channels": 4}', "channels=4"]
    assert json.loads(stored.value(KEY_RECENT_MODELS)) == [case["model"]]
    reopened = _show(qtbot, ModelDialog(case["checkpoint"], stored))
    assert reopened.data_edit.items()[:2] == [str(other_data), case["data"]]
    assert reopened.model_edit.items() == [case["model"]]


def test_pickle_checkbox_appears_only_for_a_pickle_that_needs_trust(qtbot, settings, regression_case, tmp_path):
    plain = _show(qtbot, ModelDialog(regression_case["checkpoint"], settings))
    assert not plain.needs_pickle and plain.trust_box.isHidden()

    torch.manual_seed(0)
    pickled = tmp_path / "whole_model.pt"
    torch.save(reference_models.mlp(d=4, width=16, out=1), pickled)  # a full nn.Module: needs unpickling
    dialog = _show(qtbot, ModelDialog(pickled, settings))
    assert dialog.needs_pickle and dialog.trust_box.isVisible() and not dialog.trust_box.isChecked()
    dialog.set_values(data=regression_case["data"])
    assert not dialog.ok_button().isEnabled() and "trust" in dialog.status.text()
    dialog.set_values(trust_pickle=True)
    assert dialog.ok_button().isEnabled()
    assert dialog.check(), dialog.status.text()  # the module comes with the file: no model reference needed
    assert dialog.choice() == ModelChoice(model=None, model_kwargs=None, data=regression_case["data"], trust_pickle=True)


def test_prefill_uses_factory_kwargs_and_training_data_a_checkpoint_names(qtbot, settings, tmp_path):
    torch.manual_seed(0)
    from engine.builtin.models import mlp

    kwargs = {"in_dim": 20, "width": 5, "depth": 1, "out_dim": 1}
    path = save_checkpoint(tmp_path / "model.pt", model_factory="engine.builtin.models:mlp", model_kwargs=kwargs,
                           state_dict=mlp(**kwargs).state_dict(), metadata={"train_data": "sample:sine"})
    expected = ModelChoice(model="engine.builtin.models:mlp", model_kwargs=kwargs, data="sample:sine")
    assert prefill_from_checkpoint(path) == expected
    assert automatic_choice(path) == expected
    dialog = _show(qtbot, ModelDialog(path, settings))
    assert dialog.model_edit.text() == "engine.builtin.models:mlp" and dialog.data_edit.text() == "sample:sine"
    assert dialog.choice() == expected and dialog.check()


# -- ComputeDialog ------------------------------------------------------------------------------


def _compute(qtbot, case, settings) -> ComputeDialog:
    choice = ModelChoice(model=case["model"], model_kwargs=None, data=case["data"])
    return _show(qtbot, ComputeDialog(case["checkpoint"], choice, settings))


def test_compute_request_matches_the_fields_for_a_2d_random_plane(qtbot, settings, regression_case, tmp_path):
    dialog = _compute(qtbot, regression_case, settings)
    out = tmp_path / "plane.h5"
    dialog.set_values(x="-0.5:0.5:11", y="-2:2:7", directions="random", norm="layer", ignore="none", seed=3,
                      max_samples=32, device="cpu", out=str(out))
    assert dialog.ok_button().isEnabled() and dialog.error_text() == ""
    assert dialog.request() == SurfaceRequest(
        checkpoint=regression_case["checkpoint"], data=regression_case["data"], x="-0.5:0.5:11", y="-2:2:7",
        out=str(out), model=regression_case["model"], model_kwargs=None, norm="layer", ignore="none", seed=3,
        directions="random", max_samples=32, device="cpu", trust_pickle=False, overwrite=False)


def test_compute_interpolation_forces_a_1d_line_to_the_second_checkpoint(qtbot, settings, regression_case, tmp_path):
    second = tmp_path / "second.pt"
    torch.save(reference_models.mlp(d=4, width=16, out=1).state_dict(), second)
    dialog = _compute(qtbot, regression_case, settings)
    dialog.set_values(directions="interpolate", to=str(second), x="-0.25:1.25:13")
    assert dialog.dim1.isChecked() and not dialog.dim2.isEnabled() and not dialog.y_axis.isEnabled()
    request = dialog.request()
    assert (request.directions, request.to, request.y, request.x) == ("interpolate", str(second), None, "-0.25:1.25:13")
    assert request.device is None  # auto


def test_compute_pca_forces_a_2d_plane_from_the_trajectory(qtbot, settings, regression_case, tmp_path):
    trajectory = tmp_path / "trajectory"
    trajectory.mkdir()
    for epoch in range(3):
        torch.save(reference_models.mlp(d=4, width=16, out=1).state_dict(), trajectory / f"epoch_{epoch}.pt")
    dialog = _compute(qtbot, regression_case, settings)
    dialog.set_values(dims=1)
    dialog.set_values(directions="pca", trajectory=str(trajectory / "epoch_*.pt"))
    assert dialog.dim2.isChecked() and not dialog.dim1.isEnabled()
    request = dialog.request()
    assert (request.directions, request.trajectory) == ("pca", str(trajectory / "epoch_*.pt"))
    assert request.y == "-1:1:51"


def test_compute_invalid_range_disables_ok_and_shows_the_error(qtbot, settings, regression_case):
    dialog = _compute(qtbot, regression_case, settings)
    dialog.set_values(x="1:-1:11")
    assert not dialog.ok_button().isEnabled()
    assert "MAX must be greater than MIN" in dialog.error_text() and dialog.error.isVisible()
    dialog.accept()
    assert dialog.isVisible()
    dialog.x_axis.low.setText("abc")
    assert "must be numbers" in dialog.error_text()
    dialog.set_values(x="-1:1:11")
    assert dialog.ok_button().isEnabled() and dialog.error_text() == ""


def test_compute_default_output_is_a_readable_name_next_to_the_checkpoint(qtbot, settings, regression_case):
    dialog = _compute(qtbot, regression_case, settings)
    folder = Path(regression_case["checkpoint"]).parent
    dialog.set_values(x="-1:1:21", y="-1:1:11")
    assert dialog.request().out == str(folder / "mlp_random_21x11.h5")
    dialog.set_values(dims=1, x="-1:1:31")
    assert dialog.request().out == str(folder / "mlp_random_31.h5")


def test_compute_existing_output_is_resumed_unless_overwrite_is_ticked(qtbot, settings, regression_case):
    dialog = _compute(qtbot, regression_case, settings)
    out = Path(dialog.request().out)
    assert dialog.overwrite.isHidden()
    out.write_bytes(b"")  # the engine decides whether it can resume; the dialog only says so
    dialog.set_values(out=str(out))
    assert dialog.overwrite.isVisible() and "resumed" in dialog.out_note.text()
    assert dialog.request().overwrite is False
    dialog.set_values(overwrite=True)
    assert dialog.request().overwrite is True


def test_compute_remembers_the_last_choices(qtbot, settings, regression_case):
    dialog = _compute(qtbot, regression_case, settings)
    dialog.set_values(dims=1, x="-2:2:5", norm="weight", seed=7, max_samples=10)
    dialog.accept()
    again = _compute(qtbot, regression_case, settings)
    request = again.request()
    assert (request.x, request.y, request.norm, request.seed, request.max_samples) == ("-2:2:5", None, "weight", 7, 10)


# -- TrainSampleDialog ----------------------------------------------------------------------------


def _train_dialog(qtbot, tmp_path, settings, **kw) -> TrainSampleDialog:
    dialog = _show(qtbot, TrainSampleDialog(tmp_path / "runs", settings, **kw))
    return dialog


def test_train_dialog_trains_shows_progress_and_emits_the_result(qtbot, settings, tmp_path):
    dialog = _train_dialog(qtbot, tmp_path, settings)
    dialog.set_values(recipe="mlp-sine", width=10, epochs=30, seed=1)
    assert dialog.out_edit.text() == str(tmp_path / "runs" / "mlp-sine-w10-s1")
    with qtbot.waitSignal(dialog.trained, timeout=15000) as blocker:
        assert dialog.start()
        assert dialog.is_training() and not dialog.train_button.isEnabled()
    result = blocker.args[0]
    assert isinstance(result, TrainResult) and not result.cancelled
    assert result.checkpoint.is_file() and result.out == tmp_path / "runs" / "mlp-sine-w10-s1"
    assert dialog.result() is result and dialog.result_value() is result
    assert dialog.progress.maximum() == 30 and dialog.progress.value() == 30
    xs, ys = dialog.curve.getData()
    assert xs is not None and len(xs) >= 2
    qtbot.waitUntil(lambda: not dialog.is_training(), timeout=5000)
    assert dialog.isVisible() and dialog.surface_button.isVisible()  # the finished curve stays in view
    with qtbot.waitSignal(dialog.accepted, timeout=2000):
        qtbot.mouseClick(dialog.surface_button, Qt.LeftButton)  # the app then opens the checkpoint
    assert dialog.result_value() is result


def test_train_dialog_cancel_keeps_the_reached_epoch_and_stays_usable(qtbot, settings, tmp_path):
    dialog = _train_dialog(qtbot, tmp_path, settings)
    dialog.set_values(width=10, epochs=20000)
    emitted = []
    dialog.trained.connect(emitted.append)
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.progress.maximum() == 20000, timeout=10000)
    qtbot.mouseClick(dialog.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_training(), timeout=10000)
    result = dialog.result()
    assert result is not None and result.cancelled and result.checkpoint.is_file()
    assert emitted == [] and dialog.surface_button.isHidden()  # a cancelled run is not "trained"
    assert dialog.isVisible() and dialog.train_button.isEnabled() and not dialog.cancel_button.isEnabled()
    assert dialog.status.kind == "note" and "Cancelled at epoch" in dialog.status.text()
    dialog.set_values(epochs=3)  # usable again
    with qtbot.waitSignal(dialog.trained, timeout=10000):
        dialog.start()


def test_train_dialog_closing_while_training_cancels_and_waits(qtbot, settings, tmp_path):
    dialog = _train_dialog(qtbot, tmp_path, settings)
    dialog.set_values(width=10, epochs=20000)
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.progress.maximum() == 20000, timeout=10000)
    dialog.close()  # returns once the training thread has stopped, its folder complete
    assert not dialog.isVisible()
    recipe = json.loads((Path(dialog.out_edit.text()) / "recipe.json").read_text())
    assert recipe["cancelled"] and recipe["epoch"] < 20000  # it kept the epoch it reached


def test_train_dialog_invalid_option_shows_the_error_without_training(qtbot, settings, tmp_path):
    dialog = _train_dialog(qtbot, tmp_path, settings)
    dialog.set_values(lr=0.0)
    qtbot.mouseClick(dialog.train_button, Qt.LeftButton)
    assert not dialog.is_training()
    assert dialog.error_text() == "mlp-sine option --lr must be greater than 0, got 0.0"
    assert dialog.status.isVisible() and dialog.train_button.isEnabled()


def test_train_dialog_error_in_the_worker_is_one_line_with_details(qtbot, settings, tmp_path):
    blocker_file = tmp_path / "not-a-folder"
    blocker_file.write_text("x")
    dialog = _train_dialog(qtbot, tmp_path, settings)
    dialog.set_values(width=10, epochs=5, out=str(blocker_file))
    assert dialog.start()
    qtbot.waitUntil(lambda: not dialog.is_training(), timeout=10000)
    assert "is a file" in dialog.error_text() and "\n" not in dialog.error_text()
    assert dialog.details_button.isVisible()
    dialog.details_button.click()
    assert dialog.details.isVisible() and "Traceback" in dialog.details.toPlainText()


def test_train_dialog_form_follows_the_recipe_option_specs(qtbot, settings, tmp_path):
    from samples.registry import RECIPES

    dialog = _train_dialog(qtbot, tmp_path, settings)
    dialog.set_values(recipe="digits-cnn")
    recipe = RECIPES["digits-cnn"]
    assert dialog.option_values() == recipe.defaults()
    optimizer = dialog.option_widget("optimizer")
    assert [optimizer.itemData(i) for i in range(optimizer.count())] == ["adam", "sgd"]
    assert dialog.option_widget("channels").minimum() == 1
    assert "channels of both conv layers" in dialog.option_widget("channels").toolTip()
    assert dialog.description.text() == recipe.description
    assert dialog.out_edit.text().endswith("digits-cnn-c16-s0")


def test_train_dialog_empty_plot_shows_no_ticks_until_the_curve_comes(qtbot, settings, tmp_path):
    dialog = _train_dialog(qtbot, tmp_path, settings)
    left, bottom = dialog.plot.getAxis("left"), dialog.plot.getAxis("bottom")
    assert not left.style["showValues"] and not bottom.style["showValues"]  # no log decade 2…9 over nothing
    assert dialog.placeholder.isVisible() and "appears here" in dialog.placeholder.textItem.toPlainText()
    dialog.set_values(recipe="mlp-sine", width=10, epochs=20)
    with qtbot.waitSignal(dialog.trained, timeout=15000):
        dialog.start()
    assert left.style["showValues"] and bottom.style["showValues"] and not dialog.placeholder.isVisible()


def test_train_dialog_runs_go_to_a_visible_folder_then_where_the_last_run_went(qtbot, settings, tmp_path,
                                                                              monkeypatch):
    from landscape_gui.dialogs.train_dialog import DEFAULT_RUNS
    from landscape_gui.first_run import cache_root
    from landscape_gui.settings import AppSettings

    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    (cache_root() / "runs").mkdir(parents=True, exist_ok=True)
    AppSettings(settings).set_last_folder("samples", cache_root() / "runs")  # what earlier versions remembered
    first = _show(qtbot, TrainSampleDialog(settings=settings))
    assert Path(first.out_edit.text()).parent == DEFAULT_RUNS
    assert not any(part.startswith(".") for part in DEFAULT_RUNS.relative_to(Path.home()).parts)
    first.set_values(recipe="mlp-sine", width=10, epochs=3, out=str(tmp_path / "mine" / "run1"))
    with qtbot.waitSignal(first.trained, timeout=15000):
        first.start()
    assert AppSettings(settings).last_folder("samples") == str(tmp_path / "mine")
    again = _show(qtbot, TrainSampleDialog(settings=settings))
    assert Path(again.out_edit.text()).parent == tmp_path / "mine"


def test_train_dialog_fits_its_screen_with_the_title_bar_inside(qtbot, settings, tmp_path):
    """Taller than the screen it opens on, it shrinks to the free area instead of opening at y = 0."""
    from PySide6.QtWidgets import QWidget

    parent = QWidget()
    qtbot.addWidget(parent)
    parent.setGeometry(100, 120, 500, 400)
    parent.show()
    dialog = TrainSampleDialog(tmp_path / "runs", settings, parent=parent)
    qtbot.addWidget(dialog)
    screen = dialog.screen().availableGeometry()
    dialog.resize(600, screen.height() + 300)
    dialog.show()
    frame = dialog.frameGeometry()
    assert screen.contains(frame)  # title bar included: move() placed the frame
    assert frame.height() <= screen.height() - 40
    assert abs(frame.center().x() - parent.frameGeometry().center().x()) <= 4  # the frame is not known before


# -- files named relative to the checkpoint, and where pickers start ----------------------------------------


def _weights_only(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(reference_models.mlp(d=4, width=16, out=1).state_dict(), folder / "weights.pt")
    return folder / "weights.pt"


def test_relative_model_file_is_found_next_to_the_checkpoint_first_then_in_the_working_directory(
        qtbot, settings, regression_case, tmp_path, monkeypatch):
    checkpoint = _weights_only(tmp_path / "run")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    source = Path(reference_models.__file__).read_text()
    for folder in (checkpoint.parent, work):
        (folder / "models.py").write_text(source)
    dialog = _show(qtbot, ModelDialog(checkpoint, settings))
    dialog.set_values(model="models.py:mlp", data=regression_case["data"])
    assert dialog.choice().model == f"{checkpoint.parent / 'models.py'}:mlp"
    assert "next to the checkpoint" in dialog.note.text() and dialog.note.kind == "info"
    assert dialog.check(), dialog.status.text()

    (checkpoint.parent / "models.py").unlink()
    dialog.set_values(model="")
    dialog.set_values(model="models.py:mlp")  # typed again: the note follows the files now there
    assert dialog.choice().model == f"{work / 'models.py'}:mlp"
    assert "in the working directory" in dialog.note.text()

    (work / "models.py").unlink()
    dialog.set_values(model="")
    dialog.set_values(model="models.py:mlp")  # typed again: the note follows the files now there
    assert not dialog.ok_button().isEnabled() and dialog.status.kind == "error"
    assert str(checkpoint.parent) in dialog.status.text() and str(work) in dialog.status.text()


def test_relative_data_file_is_found_next_to_the_checkpoint(qtbot, settings, regression_case, tmp_path, monkeypatch):
    checkpoint = _weights_only(tmp_path / "run")
    (checkpoint.parent / "my_data.npz").write_bytes(Path(regression_case["data"]).read_bytes())
    monkeypatch.chdir(tmp_path)
    dialog = _show(qtbot, ModelDialog(checkpoint, settings))
    dialog.set_values(model=regression_case["model"], data="my_data.npz")
    assert dialog.choice().data == str(checkpoint.parent / "my_data.npz")
    assert "my_data.npz: the one next to the checkpoint" in dialog.note.text()


def test_empty_data_field_shows_guidance_until_the_user_tries(qtbot, settings, regression_case, tmp_path):
    checkpoint = _weights_only(tmp_path / "run")  # no train.npz nearby: the data field starts empty
    dialog = _show(qtbot, ModelDialog(checkpoint, settings))
    dialog.set_values(model=regression_case["model"])
    assert dialog.data_edit.text() == ""
    assert dialog.status.kind == "info" and "Name the data" in dialog.status.text()
    qtbot.mouseClick(dialog.ok_button(), Qt.LeftButton)  # trying
    assert dialog.isVisible() and dialog.result() == 0
    assert dialog.status.kind == "error" and "name the data" in dialog.status.text()


def test_trusted_pickled_model_loads_with_its_models_py_named_relative_to_the_working_directory(
        qtbot, settings, tmp_path, monkeypatch):
    from tests.test_pickled_models import make_project

    files = make_project(tmp_path / "project")  # models.py in src/, the pickle in runs/
    monkeypatch.chdir(files["models"].parent)
    np.savez(tmp_path / "data.npz", x=torch.load(files["expected"])["x"].numpy(), y=np.arange(24) % 10)
    dialog = _show(qtbot, ModelDialog(files["checkpoint"], settings))
    assert dialog.needs_pickle
    dialog.set_values(model="models.py:build", data=str(tmp_path / "data.npz"), trust_pickle=True)
    assert "in the working directory" in dialog.note.text()
    assert dialog.check(), dialog.status.text()
    assert "ResNetish" in dialog.status.text() and "models" not in sys.modules
    assert dialog.choice().model == f"{files['models']}:build" and dialog.choice().trust_pickle


def _answer_file_dialog(qtbot, answer) -> list:
    """Run ``answer(dialog)`` on the next modal QFileDialog (a static QFileDialog.get… call); returns its folders."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QFileDialog

    seen: list = []

    def look() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QFileDialog):
            QTimer.singleShot(20, look)
            return
        seen.append(Path(dialog.directory().absolutePath()))
        answer(dialog)

    QTimer.singleShot(0, look)
    return seen


def test_data_picker_starts_where_the_last_data_file_was_and_remembers_the_next(
        qtbot, settings, regression_case, tmp_path):
    from landscape_gui.settings import AppSettings

    checkpoint = _weights_only(tmp_path / "run")
    last = tmp_path / "datasets"
    last.mkdir()
    AppSettings(settings).set_last_folder("data", last)
    chosen = tmp_path / "elsewhere" / "d.npz"
    chosen.parent.mkdir()
    chosen.write_bytes(Path(regression_case["data"]).read_bytes())
    dialog = _show(qtbot, ModelDialog(checkpoint, settings))

    def choose(file_dialog) -> None:
        file_dialog.selectFile(str(chosen))
        file_dialog.accept()

    seen = _answer_file_dialog(qtbot, choose)
    dialog.data_browse.click()
    assert seen == [last] and dialog.data_edit.text() == str(chosen)
    assert AppSettings(settings).last_folder("data") == str(chosen.parent)
    seen = _answer_file_dialog(qtbot, lambda file_dialog: file_dialog.reject())
    dialog.model_browse.click()
    assert seen == [checkpoint.parent]  # no model file chosen yet: the checkpoint's folder


# -- ComputeDialog on a small screen ---------------------------------------------------------------------


def test_compute_dialog_scrolls_its_settings_and_keeps_error_and_buttons_in_view(qtbot, settings, regression_case,
                                                                                tmp_path):
    dialog = _compute(qtbot, regression_case, settings)
    Path(dialog.request().out).write_bytes(b"")  # every optional row shown: overwrite box and note
    dialog.set_values(directions="pca", trajectory=str(tmp_path / "missing"), overwrite=True)
    assert dialog.error_text()
    dialog.resize(dialog.width(), 300)  # a screen far smaller than the settings
    qtbot.waitUntil(lambda: dialog.height() <= 300)
    assert dialog.scroll.verticalScrollBar().maximum() > 0
    inside = dialog.rect()
    for widget in (dialog.error, dialog.ok_button(), dialog.buttons.button(dialog.buttons.StandardButton.Cancel)):
        top_left = widget.mapTo(dialog, widget.rect().topLeft())
        assert widget.isVisible() and inside.contains(top_left) and inside.contains(
            widget.mapTo(dialog, widget.rect().bottomRight())), widget


def test_compute_dialog_counts_the_points_it_will_evaluate(qtbot, settings, regression_case):
    dialog = _compute(qtbot, regression_case, settings)
    dialog.set_values(x="-1:1:21", y="-1:1:11")
    assert dialog.points_note.text() == "231 points"
    dialog.set_values(dims=1)
    assert dialog.points_note.text() == "21 points"
