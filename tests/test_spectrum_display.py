"""What the Spectrum tab draws and lists (engine.display.spectra), against closed forms and real spectrum
files, and the spectrum's state object; all without Qt."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.display.spectra import (
    BOTTOM,
    FLOOR_RATIO,
    TOP,
    LiveSpectrum,
    ReportColumn,
    SigmaScale,
    curve_grid,
    density_curve,
    eigen_sticks,
    file_progress,
    format_number,
    label_rows,
    log_safe,
    ordered_columns,
    point_text,
    report_of,
    report_table,
    spectrum_status,
    weighted_quantiles,
    x_range,
)
from engine.io.store.spectra import read_spectrum
from engine.jobs.hessian import HessianJob, HessianProgress, HessianRequest
from engine.numerics.density import gaussian_density

# Enough to draw and report in a second or two on a tiny model (the engine's own tests check the numbers)
FAST = {"report": True, "density_probes": 2, "density_steps": 20, "trace_max_probes": 20, "trace_sketch": 2,
        "trace_tol": 0.2, "max_iter": 30}


@pytest.fixture(scope="module")
def spectra(tmp_path_factory) -> dict[int, Path]:
    """Spectrum files with the report of two trained mlp-sine models, widths 4 and 12 (and their test data)."""
    from samples.registry import train

    files = {}
    for width in (4, 12):
        out = tmp_path_factory.mktemp(f"w{width}")
        run = train("mlp-sine", out, seed=0, width=width, epochs=10)
        engine.hessian(run.checkpoints[0], out / "train.npz", out=out / "spectrum.h5", test_data=str(out / "test.npz"),
                       progress=False, **FAST)
        files[width] = out / "spectrum.h5"
    return files


def test_the_spectrum_numerics_and_state_never_import_qt():
    """In a fresh interpreter (pytest-qt may have imported Qt into this one)."""
    import subprocess

    from tests.conftest import ROOT, run_cli_env

    code = ("import sys, engine.display.spectra, landscape_gui.state; "
            "print(sorted(n for n in sys.modules if n.startswith(('PySide6', 'PyQt', 'pyqtgraph'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_cli_env(), cwd=ROOT,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- the density ---------------------------------------------------------------------------------------
def test_log_safe_raises_zeros_underflow_and_nan_to_a_floor_below_the_peak():
    density = np.array([0.0, 1e-300, 2.0, 0.5, np.nan, -0.0, 1e-9])
    shown, floor = log_safe(density)
    assert floor == 2.0 * FLOOR_RATIO
    np.testing.assert_array_equal(shown, [floor, floor, 2.0, 0.5, floor, floor, floor])
    assert np.all(np.isfinite(np.log10(shown)))
    shown, floor = log_safe(np.array([3.0, 1e-3, 0.0]), floor_ratio=1e-2)
    np.testing.assert_array_equal(shown, [3.0, 0.03, 0.03])
    # nothing to draw: a flat line at 1, still drawable on a log axis
    shown, floor = log_safe(np.zeros(4))
    assert floor == 1.0 and np.all(shown == 1.0)


def test_density_curve_of_one_node_is_a_normalized_gaussian():
    values, weights = np.array([[2.0, np.nan]]), np.array([[1.0, np.nan]])  # one probe, one node, NaN padding
    sigma = 0.1
    grid = curve_grid([(1.0, 3.0)], points=2001)
    curve = density_curve(values, weights, sigma, grid)
    peak = curve.density[np.argmin(np.abs(grid - 2.0))]
    assert peak == pytest.approx(1 / (sigma * math.sqrt(2 * math.pi)), rel=1e-12)
    assert np.trapezoid(curve.density, grid) == pytest.approx(1.0, rel=1e-6)
    assert curve.peak == pytest.approx(peak) and curve.floor == pytest.approx(peak * FLOOR_RATIO)
    assert curve.shown.min() == pytest.approx(curve.floor)  # the tails, clipped
    # two probes average: a probe at 0 and a probe at 2 give half the mass each
    two = density_curve(np.array([[0.0], [2.0]]), np.array([[1.0], [1.0]]), sigma, grid)
    np.testing.assert_allclose(two.density, 0.5 * gaussian_density(np.array([0.0, 2.0]), np.ones(2), grid, sigma))


def test_curve_grid_merges_a_fine_bulk_grid_into_the_whole_one():
    grid = curve_grid([(-1.0, 9.0), (-0.1, 0.1)], points=101)
    assert grid[0] == -1.0 and grid[-1] == 9.0 and np.all(np.diff(grid) > 0)
    assert np.sum((grid >= -0.1) & (grid <= 0.1)) >= 101  # the bulk is sampled finely
    assert len(curve_grid([(2.0, 2.0)])) == 1


def test_redrawing_at_another_sigma_equals_the_engines_density(spectra):
    spectrum = read_spectrum(spectra[12])
    values, weights = spectrum.probes
    # at the file's own sigma on its own grid: the density the job stored
    stored = density_curve(values, weights, spectrum.sigma, spectrum.density_grid)
    np.testing.assert_allclose(stored.density, spectrum.density, rtol=1e-12, atol=0)
    # at another sigma, anywhere: Spectrum.density_at (no new Hessian-vector products)
    sigma = spectrum.sigma / 7.0
    grid = curve_grid([x_range("all", values, weights, sigma, spectrum.top_eigenvalues)])
    curve = density_curve(values, weights, sigma, grid)
    _, expected = spectrum.density_at(sigma, grid)
    np.testing.assert_allclose(curve.density, expected, rtol=1e-12, atol=0)
    assert read_spectrum(spectra[12]).hvp_count == spectrum.hvp_count


def test_x_range_all_holds_every_node_and_eigenvalue_and_bulk_leaves_out_a_small_outlier():
    rng = np.random.default_rng(0)
    bulk = rng.normal(0.0, 0.01, size=(3, 40))
    values = np.concatenate([bulk, np.full((3, 1), 10.0)], axis=1)  # an outlier node in every probe
    weights = np.concatenate([np.full((3, 40), 0.999 / 40), np.full((3, 1), 0.001)], axis=1)
    sigma = 0.02
    lo, hi = x_range("all", values, weights, sigma, eigenvalues=[10.0, -0.5, float("nan")])
    assert lo == pytest.approx(-0.5 - 5 * sigma) and hi == pytest.approx(10.0 + 5 * sigma)
    lo, hi = x_range("bulk", values, weights, sigma, eigenvalues=[10.0])
    assert lo < bulk.min() + 0.01 and hi < 1.0 and hi > bulk.max() - 0.01
    assert lo < 0 < hi
    with pytest.raises(ValueError):
        x_range("everything", values, weights, sigma)


def test_weighted_quantiles_of_a_discrete_measure():
    values = np.array([3.0, 1.0, 2.0, 4.0])
    weights = np.array([0.1, 0.1, 0.7, 0.1])
    assert weighted_quantiles(values, weights, (0.05, 0.1, 0.5, 0.85, 0.95)) == (1.0, 1.0, 2.0, 3.0, 4.0)


# -- the eigenvalues -----------------------------------------------------------------------------------
def test_sticks_stand_at_the_eigenvalues_from_the_floor_to_the_peak():
    sticks = eigen_sticks([5.0, 4.5, float("nan")], [-1.0], floor=1e-6, peak=20.0, span=(-2.0, 6.0))
    assert [(s.x, s.kind, s.index) for s in sticks] == [(5.0, TOP, 0), (4.5, TOP, 1), (-1.0, BOTTOM, 0)]
    assert [s.label for s in sticks] == ["λmax = 5", "λ2 = 4.5", "λmin = -1"]
    assert all(s.bottom == 1e-6 and s.top == 20.0 for s in sticks)
    # 5 and 4.5 are closer than the gap: their labels are on two rows, one lower than the other
    rows = {s.x: s.label_y for s in sticks}
    assert rows[5.0] != rows[4.5] and max(rows[5.0], rows[4.5]) == 20.0 and rows[-1.0] == 20.0
    assert all(1e-6 <= s.label_y <= 20.0 for s in sticks)
    assert [s.label for s in eigen_sticks([], [-3.0, -2.0], 1e-3, 1.0)] == ["λmin = -3", "λ(p-1) = -2"]
    assert eigen_sticks([], [], 1e-3, 1.0) == []


def test_label_rows_keep_labels_on_one_row_apart():
    intervals = [(0.0, 0.3), (0.2, 0.4), (0.35, 0.6), (0.5, 0.7), (0.65, 0.9), (1.0, 1.2)]
    rows = label_rows(intervals)
    for r in set(rows):
        on_row = sorted(iv for iv, row in zip(intervals, rows) if row == r)
        assert all(a[1] <= b[0] for a, b in zip(on_row, on_row[1:]))  # no overlap on a row
    assert rows == [0, 1, 0, 1, 0, 0]
    # more overlapping labels than rows: the last rows are reused, never more than LABEL_ROWS
    crowded = label_rows([(0.0, 1.0)] * 6)
    assert max(crowded) == 3 and crowded[:4] == [0, 1, 2, 3]


def test_sticks_labels_that_would_overlap_go_on_rows_by_their_measured_width():
    # a top label hangs left of its stick, a bottom one right: λmin at 0 and λ3 at 2 meet when wide
    def wide(text: str) -> float:
        return 1.5

    def narrow(text: str) -> float:
        return 0.5

    rows = {s.label.split(" =")[0]: s.label_y for s in eigen_sticks([10.0, 2.0], [0.0], 1e-6, 1.0, text_width=wide)}
    assert rows["λmin"] != rows["λ2"] and rows["λmax"] == 1.0
    rows = {s.label.split(" =")[0]: s.label_y for s in eigen_sticks([10.0, 2.0], [0.0], 1e-6, 1.0, text_width=narrow)}
    assert rows["λmin"] == rows["λ2"] == rows["λmax"] == 1.0
    assert all(s.label.endswith(" (estimate)") for s in eigen_sticks([1.0], [0.0], 1e-6, 1.0, estimates=True))


# -- σ ---------------------------------------------------------------------------------------------------
def test_sigma_scale_is_log_spaced_and_round_trips():
    values = np.array([[-1.0, 0.0, 3.0, np.nan]])
    scale = SigmaScale.for_nodes(values, stored=0.04)
    assert scale.low == pytest.approx(4e-4) and scale.high == pytest.approx(1.0)
    sigmas = np.array([scale.sigma(k) for k in range(scale.steps + 1)])
    assert sigmas[0] == pytest.approx(scale.low) and sigmas[-1] == pytest.approx(scale.high)
    np.testing.assert_allclose(sigmas[1:] / sigmas[:-1], (scale.high / scale.low) ** (1 / scale.steps))
    assert all(scale.position(scale.sigma(k)) == k for k in range(0, scale.steps + 1, 7))
    assert scale.sigma(scale.position(0.04)) == pytest.approx(0.04, rel=0.02)
    assert scale.position(1e9) == scale.steps and scale.position(1e-12) == 0
    # a stored sigma outside the usual span widens it; one node alone still gives a usable scale
    assert SigmaScale.for_nodes(values, stored=5.0).high == 5.0
    lone = SigmaScale.for_nodes(np.array([[2.0]]))
    assert 0 < lone.low < lone.high


# -- the report ----------------------------------------------------------------------------------------------
def test_report_table_lists_two_files_side_by_side(spectra):
    small, large = read_spectrum(spectra[4]), read_spectrum(spectra[12])
    columns = ordered_columns([ReportColumn("w12", large.report, large.attrs), ReportColumn("w4", small.report,
                                                                                             small.attrs)])
    assert [c.name for c in columns] == ["w4", "w12"]  # the smaller model first
    rows = {r.key: r for r in report_table(columns)}
    for key in ("n_params", "n_samples", "params_per_sample", "interpolates", "train_loss", "test_loss",
                "top_eigenvalue", "bottom_eigenvalue", "trace", "trace_per_param", "negative_mass"):
        assert key in rows, key
        assert rows[key].values == (small.report[key], large.report[key])
    assert "train_acc" not in rows and "test_acc" not in rows  # a regression model
    assert rows["n_params"].cells == (f"{small.report['n_params']:,}", f"{large.report['n_params']:,}")
    assert rows["top_eigenvalue"].cells == tuple(format_number(r.report["top_eigenvalue"]) for r in (small, large))
    assert float(rows["top_eigenvalue"].cells[1]) == pytest.approx(large.top_eigenvalues[0], rel=1e-3)
    assert rows["trace"].cells[0].startswith(format_number(small.trace) + " ± ")
    assert rows["where"].cells == ("checkpoint", "checkpoint")
    assert rows["interpolates"].cells[0] in ("yes", "no")
    alphas = [k for k in rows if k.startswith("n_eff_fraction:")]
    assert alphas == [f"n_eff_fraction:{a}" for a in ("0.001", "0.01", "0.1", "1.0")]
    assert rows["n_eff_fraction:0.01"].values == (small.report["n_eff_fraction"]["0.01"],
                                                  large.report["n_eff_fraction"]["0.01"])


def test_a_file_without_report_shows_what_it_has(tmp_path, spectra):
    attrs = read_spectrum(spectra[4]).attrs
    out = tmp_path / "eig.h5"
    engine.hessian(attrs["checkpoint"], attrs["data"], out=out, top_k=2, max_iter=30, progress=False)
    spectrum = read_spectrum(out)
    assert spectrum.report == {}
    partial = report_of(spectrum)
    assert partial["top_eigenvalue"] == spectrum.top_eigenvalues[0] and partial["n_params"] == attrs["n_params"]
    assert "trace" not in partial and "bottom_eigenvalue" not in partial
    rows = {r.key: r for r in report_table([ReportColumn("eig", partial, spectrum.attrs)])}
    assert set(rows) == {"where", "n_params", "top_eigenvalue"}
    assert file_progress(spectrum) == (2, 2)  # the eigenpairs and the results


def test_point_text_names_the_point_of_a_surface():
    assert point_text({"point": ""}) == "checkpoint"
    assert point_text({"point": "0.5,-0.25"}) == "x 0.5, y -0.25"
    assert point_text({"point": "0.125"}) == "x 0.125"


# -- progress ----------------------------------------------------------------------------------------------
def test_file_progress_of_a_finished_and_of_an_interrupted_file(spectra, tmp_path):
    spectrum = read_spectrum(spectra[4])
    assert file_progress(spectrum) == (1 + 1 + 2 + 1 + 1,) * 2  # eigenpairs, trace, 2 probes, drawn, results
    attrs = spectrum.attrs
    out = tmp_path / "partial.h5"
    job = HessianJob(HessianRequest(checkpoint=attrs["checkpoint"], data=attrs["data"], out=str(out), **FAST))
    steps = []
    for step in job.run():
        steps.append(step)
        if step.stage == "density":  # the eigenpairs and the trace are in the file, the density is not
            job.cancel()
    done, total = file_progress(read_spectrum(out))
    assert (done, total) == (2, 6)


def test_live_estimates_and_their_status_line():
    live = LiveSpectrum()
    assert not live.active and live.text() == ""
    live.add("eigenpairs", {"top": [3.25], "bottom": [-0.5]}, 4, 90)
    assert live.active and live.top == [3.25] and (live.done, live.total) == (4, 90) and not live.eigen_final
    assert live.text() == "eigenvalues: λmax ≈ 3.25, λmin ≈ -0.5"
    live.add("trace", {"exact": 1.0}, 30, 80)
    assert live.text() == "trace: sketching; λmax ≈ 3.25, λmin ≈ -0.5" and live.eigen_final
    live.add("trace", {"trace": 4.25, "stderr": 0.5}, 31, 80)
    assert spectrum_status("trace", live) == "trace ≈ 4.25 ± 0.5"
    live.add("trace", {"trace": 4.25, "stderr": float("inf")}, 31, 80)
    assert spectrum_status("trace", live) == "trace ≈ 4.25"
    assert live.text() == "trace ≈ 4.25; λmax ≈ 3.25, λmin ≈ -0.5"  # with what the eigenvalue stage found
    live.add("density", {"probe": 1, "probes": 5}, 50, 80)
    assert spectrum_status("density", live) == "density: probe 2/5" and live.top == [3.25]  # earlier ones are kept
    assert live.text() == "density: probe 2/5; λmax ≈ 3.25, λmin ≈ -0.5; trace ≈ 4.25"
    assert spectrum_status("eigenpairs", LiveSpectrum(values=[2.0, 1.0])).startswith("eigenvalues (power iteration)")


def test_spectrum_state_opens_folds_in_a_jobs_steps_and_keeps_its_sigma(spectra):
    from landscape_gui.state import AppState, SpectrumLandscape, open_result

    landscape = open_result(spectra[4])
    assert isinstance(landscape, SpectrumLandscape) and landscape.kind == "spectrum"
    assert landscape.name == "spectrum (width 4, seed 0)" or landscape.name.endswith("/spectrum (width 4, seed 0)")
    assert landscape.surface.dimensions == 0 and not landscape.is_line and landscape.metrics == []
    assert landscape.complete and landscape.progress == file_progress(landscape.result)
    assert landscape.shown_sigma == landscape.result.sigma == landscape.file_sigma
    state = AppState()
    changed = []
    state.sigma_changed.connect(changed.append)
    state.add(landscape)
    assert state.spectra() == [landscape] and state.compared == []
    state.set_sigma(landscape, 0.01)
    assert landscape.shown_sigma == 0.01 and changed == [landscape]
    state.set_sigma(landscape, 0.01)  # no change, no event
    assert changed == [landscape]
    with pytest.raises(ValueError):
        state.set_sigma(landscape, -1.0)
    state.set_sigma(landscape, None)
    assert landscape.shown_sigma == landscape.file_sigma and len(changed) == 2
    landscape.computing = True
    landscape.apply(HessianProgress(kind="spectrum", path=landscape.path, phase="computing", done=3, total=50,
                                    computed=3, elapsed=0.1, eta=None, stage="eigenpairs",
                                    estimate={"top": [1.5], "bottom": [-0.1]}))
    assert landscape.progress == (3, 50) and landscape.live.top == [1.5]
    landscape.computing = False
    landscape.reload()
    assert not landscape.live.active and landscape.progress == file_progress(landscape.result)
    again = state.add(open_result(landscape.path))  # reopened: the same entry
    assert again is landscape and len(state.landscapes) == 1


def test_a_running_jobs_finished_probes_draw_the_density_before_the_file_has_one(spectra, tmp_path):
    """The job reports each finished probe's quadrature; a spectrum whose file has no probe yet draws from them,
    and the result equals the engine's density of those probes."""
    from landscape_gui.state import open_result

    source = read_spectrum(spectra[4])
    job = HessianJob(HessianRequest(checkpoint=source.attrs["checkpoint"], data=source.attrs["data"],
                                    out=str(tmp_path / "live.h5"), density=True, density_probes=2, density_steps=20))
    job.prepare()
    landscape = open_result(tmp_path / "live.h5")
    landscape.computing = True
    assert not np.isfinite(landscape.probes[0]).any() and landscape.shown_sigma is None
    reported = []
    for step in job.run():
        if "nodes" in step.estimate:
            landscape.apply(step)
            reported.append((step.estimate["nodes"], step.estimate["weights"]))
            values, weights = landscape.probes
            assert values.shape[0] == len(reported)
            np.testing.assert_array_equal(values[-1, :len(reported[-1][0])], reported[-1][0])
    assert len(reported) == 2
    final = read_spectrum(tmp_path / "live.h5")
    live_values, live_weights = landscape.live.probe_arrays()  # what was drawn is what the file holds
    np.testing.assert_array_equal(live_values, final.ritz_values)
    np.testing.assert_array_equal(live_weights, final.ritz_weights)
