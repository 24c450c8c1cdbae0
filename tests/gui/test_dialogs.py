"""The model, compute and train dialogs, with real widgets, real checkpoints and real training runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
    assert not dialog.isVisible()  # accepted, as when run from the app


def test_train_dialog_cancel_keeps_the_reached_epoch_and_stays_usable(qtbot, settings, tmp_path):
    dialog = _train_dialog(qtbot, tmp_path, settings, accept_on_success=False)
    dialog.set_values(width=10, epochs=20000)
    emitted = []
    dialog.trained.connect(emitted.append)
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.progress.maximum() == 20000, timeout=10000)
    qtbot.mouseClick(dialog.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not dialog.is_training(), timeout=10000)
    result = dialog.result()
    assert result is not None and result.cancelled and result.checkpoint.is_file()
    assert emitted == []  # a cancelled run is not "trained"
    assert dialog.isVisible() and dialog.train_button.isEnabled() and not dialog.cancel_button.isEnabled()
    assert dialog.status.kind == "note" and "Cancelled at epoch" in dialog.status.text()
    dialog.set_values(epochs=3)  # usable again
    with qtbot.waitSignal(dialog.trained, timeout=10000):
        dialog.start()


def test_train_dialog_closing_while_training_cancels_and_waits(qtbot, settings, tmp_path):
    dialog = _train_dialog(qtbot, tmp_path, settings)
    dialog.set_values(width=10, epochs=20000)
    assert dialog.start()
    worker = dialog._worker
    qtbot.waitUntil(lambda: dialog.progress.maximum() == 20000, timeout=10000)
    dialog.close()
    assert worker.isFinished() and worker.cancelled
    assert not dialog.isVisible()


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
