"""What the Path tab and the plane's overlay draw (engine.display.paths), and log-spaced contour levels
(engine.display.levels), against closed forms; and the path's state object, all without Qt."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.display.levels import contour_levels, log_spaced_levels
from engine.display.paths import (
    BARRIER_COLUMNS,
    TrainingTrace,
    barrier_mark,
    barrier_rows,
    chord,
    computed_points,
    endpoint_lines,
    epoch_means,
    error_values,
    format_number,
    label_anchors,
    path_status,
    recorded_lengths,
    series_label,
)
from engine.numerics.barriers import path_barriers

T = np.linspace(0.0, 1.0, 11)


def bump(t: np.ndarray, a: float = 1.0, b: float = 3.0, height: float = 2.0) -> np.ndarray:
    """Endpoints a and b, and a parabola of ``height`` over the chord peaking at t = 0.5."""
    return (1 - t) * a + t * b + height * 4 * t * (1 - t)


def test_the_view_numerics_and_the_path_state_never_import_qt():
    """In a fresh interpreter (pytest-qt has imported Qt into this one)."""
    import subprocess

    from tests.conftest import ROOT, run_cli_env

    code = ("import sys, engine.display.paths, engine.display.levels, landscape_gui.state; "
            "print(sorted(n for n in sys.modules if n.startswith(('PySide6', 'PyQt', 'pyqtgraph'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_cli_env(), cwd=ROOT,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_chord_and_barrier_mark_of_a_parabola_over_a_sloped_chord():
    values = bump(T)
    done = np.ones_like(T, dtype=bool)
    np.testing.assert_allclose(chord(T, values, done), 1 + 2 * T)
    mark = barrier_mark(T, values, done)
    assert mark.t == pytest.approx(0.5) and mark.value == pytest.approx(2.0 + 2.0)
    assert mark.chord == pytest.approx(2.0) and mark.height == pytest.approx(2.0)


def test_barrier_mark_waits_for_both_endpoints_and_uses_computed_points_only():
    values = bump(T)
    done = np.zeros_like(T, dtype=bool)
    done[[0, 5]] = True  # A and the middle: B not yet (a job computes 0, then n-1, then the middle)
    assert barrier_mark(T, values, done) is None and chord(T, values, done) is None
    done[[10, 2]] = True
    values_with_junk = values.copy()
    values_with_junk[7] = 100.0  # not computed: must not count
    mark = barrier_mark(T, values_with_junk, done)
    assert mark.t == pytest.approx(0.5) and mark.height == pytest.approx(2.0)


def test_barrier_mark_on_a_widened_t_range_counts_only_0_to_1():
    from engine.numerics.curves import t_grid

    t = t_grid(11, -0.2, 1.2)  # as a job lays t out: 0 and 1 exactly on it
    values = bump(t) + np.where(t < 0, 50.0, 0.0)  # high outside: drawn, never the barrier
    mark = barrier_mark(t, values, np.ones_like(t, dtype=bool))
    assert 0.0 <= mark.t <= 1.0 and mark.height == pytest.approx(2.0)
    assert endpoint_lines(t) == [0.0, 1.0] and endpoint_lines(T) == []


def test_computed_points_and_error():
    values = np.arange(11.0)
    done = np.zeros(11, bool)
    done[[0, 10, 5]] = True
    x, y = computed_points(T, values, done)
    np.testing.assert_array_equal(x, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(y, [0.0, 5.0, 10.0])
    np.testing.assert_array_equal(error_values(np.array([100.0, 92.5, 0.0])), [0.0, 7.5, 100.0])


def test_barrier_rows_take_the_numbers_of_path_barriers_and_the_recorded_lengths():
    done = np.ones(11, bool)
    series = {
        "curve": {"train_loss": bump(T, height=0.5), "train_acc": 100 - bump(T, height=3.0),
                  "test_loss": bump(T, height=0.7), "test_acc": 100 - bump(T, height=4.0)},
        "linear": {"train_loss": bump(T, height=2.0), "train_acc": 100 - bump(T, height=30.0),
                   "test_loss": bump(T, height=2.5), "test_acc": 100 - bump(T, height=35.0)},
    }
    barriers = {name: path_barriers(T, {k: np.where(done, v, np.nan) for k, v in values.items()})
                for name, values in series.items()}
    attrs = {"curve": "bezier", "bends": 1, "barriers": json.dumps({"curve": {"length": 3.25}, "linear": {"length": 2}})}
    rows = barrier_rows(barriers, attrs)
    assert [r.label for r in rows] == ["straight line", "bezier curve", "straight line (test)", "bezier curve (test)"]
    assert len(rows[0].numbers) == len(BARRIER_COLUMNS)
    curve = rows[1]
    assert curve.numbers[0] == pytest.approx(0.5)  # interpolated barrier: the parabola's height
    # midpoint: max of L = 1 + 4t - 2t^2 over the endpoints' mean 2; the slope puts that max at B (3)
    assert curve.numbers[1] == pytest.approx(1.0)
    assert curve.numbers[2] == pytest.approx(0.5)
    assert curve.numbers[3] == pytest.approx(3.0)  # the error rises 3 points over its chord
    assert curve.numbers[4] == pytest.approx(barriers["curve"]["train_loss"]["mean"])
    assert curve.numbers[5] == 3.25 and rows[0].numbers[5] == 2.0 and rows[3].numbers[5] is None
    assert curve.cells == ("0.5", "1", "0.5", "3", format_number(curve.numbers[4]), "3.25")
    assert rows[2].numbers[0] == pytest.approx(2.5)


def test_a_regression_path_and_a_file_without_recorded_lengths_leave_cells_empty():
    barriers = {"linear": path_barriers(T, {"train_loss": bump(T)})}
    (row,) = barrier_rows(barriers, {"barriers": ""})
    assert row.cells[3] == "" and row.cells[5] == "" and row.cells[0] == "2"
    assert recorded_lengths({"barriers": "{not json"}) == {}
    assert recorded_lengths({"barriers": json.dumps({"curve": {"length": None}})}) == {}
    assert format_number(None) == "" and format_number(float("nan")) == "" and format_number(0.000123456) == "0.0001235"


def test_series_labels():
    attrs = {"curve": "polychain", "bends": 3}
    assert series_label("curve", attrs) == "polychain curve, 3 bends"
    assert series_label("curve", {"curve": "bezier", "bends": 1}) == "bezier curve, 1 bend"
    assert series_label("curve", attrs, short=True) == "polychain curve"
    assert series_label("linear_aligned") == "straight line, B aligned"
    assert series_label("linear_aligned", short=True) == "aligned line"


def test_training_trace_places_reports_on_the_epoch_axis():
    trace = TrainingTrace()
    assert trace.positions()[0].size == 0
    for loss in (4.0, 3.0):
        trace.add(0, loss, ends_epoch=False)
    x, _y = trace.positions()
    np.testing.assert_allclose(x, [1 / 3, 2 / 3])  # the first epoch: spread as the reports come
    trace.add(1, 2.5, ends_epoch=True)  # the job says epoch 1 is done, with the last report
    trace.add(1, 2.0, ends_epoch=False)  # the second epoch runs: as many reports as the first is expected
    trace.add(1, None, ends_epoch=False)  # no loss: nothing to draw
    x, y = trace.positions()
    np.testing.assert_allclose(x, [1 / 3, 2 / 3, 1.0, 1 + 1 / 3])
    np.testing.assert_array_equal(y, [4.0, 3.0, 2.5, 2.0])
    trace.add(2, 1.5, ends_epoch=True)
    x, _y = trace.positions()
    np.testing.assert_allclose(x[-2:], [1.5, 2.0])  # a finished epoch: its reports spread evenly over it
    assert np.all(np.diff(x) > 0)
    ex, _ey = epoch_means(np.array([3.0, 2.0, 1.0]))
    np.testing.assert_array_equal(ex, [1, 2, 3])
    assert epoch_means(None)[0].size == 0


def test_path_status_says_the_phase():
    assert path_status("training", epoch=2, epochs=20, loss=0.1234567) == "training the curve, epoch 3/20, loss 0.1235"
    assert path_status("training", epoch=20, epochs=20, loss=None) == "training the curve, epoch 20/20"
    text = path_status("evaluating", series="curve", attrs={"curve": "bezier", "bends": 1}, series_done=5, points=61)
    assert text == "evaluating the bezier curve, 1 bend, 5/61 points"
    assert path_status("preparing") == "preparing…"


def test_overlay_labels_point_away_from_the_middle():
    anchors = label_anchors({"A": (0.0, 0.0), "B": (1.0, 0.0), "bend 1": (0.6, 0.8)})
    assert anchors["A"] == (1.0, 0.0)  # left of A, below it
    assert anchors["B"] == (0.0, 0.0)  # right of B, below it
    assert anchors["bend 1"] == (0.0, 1.0)  # right of the bend, above it
    assert label_anchors({}) == {}


def test_log_spaced_levels_are_evenly_spaced_in_log_of_value_minus_min():
    levels = log_spaced_levels(2.0, 12.0, 4, decades=2)
    np.testing.assert_allclose(np.log10(levels - 2.0), 1 + np.array([-2.0, -1.5, -1.0, -0.5]))
    assert np.all((levels > 2.0) & (levels < 12.0))
    # on a log scale the levels are computed on the values, then given in log10 display units
    on_log = log_spaced_levels(np.log10(2.0), np.log10(12.0), 4, scale="log", decades=2)
    np.testing.assert_allclose(10.0 ** on_log, levels)
    np.testing.assert_allclose(contour_levels(0.0, 1.0, 4), [0.2, 0.4, 0.6, 0.8])  # "even" is unchanged
    np.testing.assert_allclose(contour_levels(2.0, 12.0, 4, "log"), log_spaced_levels(2.0, 12.0, 4))
    assert contour_levels(1.0, 1.0, 4, "log").size == 0 and contour_levels(0.0, 1.0, 0, "log").size == 0
    with pytest.raises(ValueError, match="contour spacing"):
        contour_levels(0.0, 1.0, 3, "cubic")


# -- the path's state object ------------------------------------------------------------------------------
def _path_file(tmp_path: Path) -> Path:
    """A small path file as a job lays it out, nothing computed: written with the store's own layout."""
    from engine.io.store import create_file
    from engine.io.store.paths import path_layout

    out = tmp_path / "p.h5"
    create_file(out, path_layout(t=T, main="linear", series=["linear"], names=["train_loss", "train_acc"], bends=[],
                                 optimizer_state={}, epochs=0, endpoint_b=None, permutations=None,
                                 attrs={"checkpoint": "a.pt", "b_checkpoint": "b.pt", "curve": "linear"}))
    return out


def test_path_state_folds_in_a_jobs_steps(tmp_path):
    from engine.jobs.path import PathProgress
    from landscape_gui.state import AppState, PathLandscape, open_result

    landscape = open_result(_path_file(tmp_path))
    assert isinstance(landscape, PathLandscape) and landscape.progress == (0, 11) and not landscape.complete
    assert landscape.surface.dimensions == 0 and not landscape.is_line  # neither a map nor a line
    step = PathProgress(kind="path", path=landscape.path, phase="evaluating", done=1, total=11, computed=1,
                        elapsed=0.1, eta=None, series="linear", indices=np.array([5]),
                        values={"train_loss": np.array([0.25]), "train_acc": np.array([90.0])})
    landscape.apply(step)
    series = landscape.result.series["linear"]
    assert series.done.sum() == 1 and series.values["train_loss"][5] == 0.25 and series.values["train_acc"][5] == 90
    assert np.isnan(series.values["train_loss"][4])
    landscape.apply(PathProgress(kind="path", path=landscape.path, phase="training", done=1, total=11, computed=1,
                                 elapsed=0.2, eta=None, epoch=0, epochs=3, loss=1.5))
    assert len(landscape.training) == 1
    state = AppState()
    state.add(landscape)
    assert state.current is landscape and state.compared == [] and state.paths() == [landscape]
    again = state.add(open_result(landscape.path))  # reopened: the same entry, the file's values
    assert again is landscape and len(state.landscapes) == 1 and landscape.result.series["linear"].done.sum() == 0
