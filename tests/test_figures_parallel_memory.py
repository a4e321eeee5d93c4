"""Tests for the training-cost figure of chapter 06 (xlstm_edu.figures.parallel_forms): it draws
exactly the counts and times it is given, with their fitted slopes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import legend_labels  # noqa: E402

from xlstm_edu.experiments import parallel_forms as pf  # noqa: E402
from xlstm_edu.figures import parallel_forms as fpf  # noqa: E402

pytestmark = pytest.mark.usefixtures("close_figures")


def test_training_cost_figure_draws_saved_mib_and_times_with_slopes():
    saved = {"recurrent": {"S": [8, 16, 32], "bytes": [2**20, 2**21, 2**22]},
             "parallel": {"S": [8, 16], "bytes": [2**20, 2**22]}}
    times = {"chunkwise": {"S": [8, 16, 32], "seconds": [1.0, 1.0, 2.0]}}
    fig = fpf.plot_training_cost(saved, times, time_min_S=16)
    ax_m, ax_t = fig.axes
    assert legend_labels(ax_m) == ["recurrent  (slope 1.00)", "parallel  (slope 2.00)"]
    rec, rec_fit, par, _ = ax_m.get_lines()
    np.testing.assert_array_equal(rec.get_ydata(), [1.0, 2.0, 4.0])  # bytes drawn in MiB
    np.testing.assert_array_equal(par.get_xdata(), [8, 16])
    np.testing.assert_allclose(rec_fit.get_ydata(), [1.0, 2.0, 4.0])
    assert "MiB" in ax_m.get_ylabel() and "backward" in ax_t.get_ylabel()
    assert legend_labels(ax_t) == ["chunkwise  (slope 1.00)"]  # fitted on S >= 16 only
    measured, fit = ax_t.get_lines()
    np.testing.assert_array_equal(measured.get_ydata(), [1.0, 1.0, 2.0])
    np.testing.assert_array_equal(fit.get_xdata(), [16, 32])


def test_training_cost_figure_of_a_real_tiny_sweep():
    """Smoke test on the experiment's own output (tiny sizes)."""
    kw = dict(NH=1, DH=4, chunk_size=4)
    saved = pf.training_saved_bytes((8, 16), **kw)
    times = pf.training_times((8, 16), rounds=1, repeats=1, **kw)
    fig = fpf.plot_training_cost(saved, times)
    assert [len(ax.get_lines()) for ax in fig.axes] == [6, 6]  # 3 forms, each points + fit


def test_pitfall_figure_of_two_regimes_names_each_line():
    names = list(pf.LOG_D_BUILDERS)

    def rows(scale):
        return [{"S": S, "cumsum_range": scale * S, "cumsum_spacing": scale * S * 1e-7,
                 "logd_err": {names[0]: 1e-6, names[1]: scale * 1e-6},
                 "h_err": {names[0]: 2e-6, names[1]: scale * 2e-6}} for S in (8, 16)]

    fig = fpf.plot_pitfall({"realistic": rows(1.0), "hard": rows(100.0)})
    ax_d, ax_h = fig.axes
    assert legend_labels(ax_h) == [f"{n}, {r} gates" for r in ("realistic", "hard") for n in names]
    lines = ax_d.get_lines()  # per regime: masked, difference, spacing
    np.testing.assert_allclose(lines[4].get_ydata(), [1e-4, 1e-4])  # hard, difference
    np.testing.assert_allclose(lines[5].get_ydata(), [8e-5, 16e-5])  # hard, spacing


def test_scaling_figure_names_a_counted_memory_panel():
    times = {"parallel": {"S": [8, 16], "seconds": [1.0, 4.0]}}
    largest = pf.to_mib({"parallel": {"S": [8, 16], "bytes": [2**20, 2**22]}})
    assert largest == {"parallel": {"S": [8, 16], "MiB": [1.0, 4.0]}}
    fig = fpf.plot_scaling(times, largest, memory_label="largest tensor (MiB)", memory_title="counted")
    ax_m = fig.axes[1]
    assert ax_m.get_ylabel() == "largest tensor (MiB)" and ax_m.get_title() == "counted"
    np.testing.assert_array_equal(ax_m.get_lines()[0].get_ydata(), [1.0, 4.0])
