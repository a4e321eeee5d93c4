"""Tests for the experiments of the chapter "Exponential gating and the stabilizer"
(``xlstm_edu.experiments.gating``) and its widget (``xlstm_edu.widgets.gating``)."""

from __future__ import annotations

import numpy as np
import pytest

from xlstm_edu import slstm
from xlstm_edu.experiments import gating as eg

# --- the revise task ---------------------------------------------------------------------------


def test_running_argmax_and_target():
    a = np.array([[0.5, 0.2, 0.9, 0.9, -1.0, 1.5, 0.0]])
    np.testing.assert_array_equal(eg.running_argmax(a), [[0, 0, 2, 2, 2, 5, 5]])  # first one on ties
    task = eg.revise_task(n_seq=8, S=20, seed=3)
    for n in range(8):
        for t in range(20):
            s = int(np.argmax(task.importance[n, : t + 1]))
            assert task.record[n, t] == s
            assert task.target[n, t] == task.values[n, s]
    assert np.abs(task.values).max() < 0.9


def test_exp_gated_cell_is_softmax_average():
    """With f = o = 1 the sLSTM output is the softmax(igate)-weighted average of the values."""
    rng = np.random.default_rng(0)
    i_pre = rng.normal(0, 3, size=(3, 15))
    values = rng.uniform(-0.9, 0.9, size=(3, 15))
    h = eg.exp_gated_cell(i_pre, values)
    for t in range(15):
        w = np.exp(i_pre[:, : t + 1] - i_pre[:, : t + 1].max(1, keepdims=True))
        expected = (w * values[:, : t + 1]).sum(1) / w.sum(1)
        np.testing.assert_allclose(h[:, t], expected, atol=1e-11)
    assert eg.exp_gated_cell(i_pre[0], values[0]).shape == (15,)


def test_sigmoid_gated_cell_by_hand():
    values = np.array([0.5, -0.5, 0.25])
    i_pre = np.array([0.0, 1.0, -2.0])
    f_pre = np.array([3.0, -1.0, 0.5])
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    c = n = 0.0
    expected_norm, expected_raw = [], []
    for t in range(3):
        c = sig(f_pre[t]) * c + sig(i_pre[t]) * values[t]
        n = sig(f_pre[t]) * n + sig(i_pre[t])
        expected_norm.append(c / n)
        expected_raw.append(c)
    np.testing.assert_allclose(eg.sigmoid_gated_cell(i_pre, f_pre, values), expected_norm, rtol=1e-14)
    np.testing.assert_allclose(eg.sigmoid_gated_cell(i_pre, f_pre, values, normalize=False),
                               expected_raw, rtol=1e-14)
    # n = 0 (all input gates underflow) gives 0, not nan
    h = eg.sigmoid_gated_cell(np.full(3, -800.0), 30.0, values)
    assert np.all(h == 0.0)


def test_exponential_cell_revises_where_sigmoid_cells_fail():
    comp = eg.revise_comparison(betas=(1, 10, 100), n_seq=64, S=32, seed=0)
    err = comp["errors"]
    exp_err = err[eg.REVISE_CELLS[0]]
    for name in eg.REVISE_CELLS[1:]:
        assert np.all(exp_err[1:] < 0.5 * err[name][1:]), (name, exp_err, err[name])
    assert exp_err[2] < exp_err[1] < exp_err[0]  # sharper exponential gates: smaller error
    assert exp_err[2] < 0.02
    assert comp["thresholds"].shape == (3,)


def test_exponential_cell_is_shift_invariant():
    """A constant added to all input-gate pre-activations cancels in c / n."""
    task = eg.revise_task(n_seq=4, S=16, seed=1)
    h0 = eg.exp_gated_cell(5.0 * task.importance, task.values)
    h1 = eg.exp_gated_cell(5.0 * task.importance + 500.0, task.values)
    np.testing.assert_allclose(h0, h1, atol=1e-12)


def test_new_records_leave_out_the_first_item():
    task = eg.ReviseTask(values=np.zeros((1, 6)), importance=np.array([[0.5, 0.2, 0.9, 0.9, -1.0, 1.5]]),
                         target=np.zeros((1, 6)), record=np.array([[0, 0, 2, 2, 2, 5]]))
    np.testing.assert_array_equal(eg.new_records(task), [[False, False, True, False, False, True]])


def test_record_report_by_hand():
    """Records at steps 2 and 4; an item above the threshold but no record at step 3."""
    a = np.array([[0.0, -1.0, 2.0, 1.5, 3.0, -2.0]])
    z = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    record = eg.running_argmax(a)
    task = eg.ReviseTask(z, a, np.take_along_axis(z, record, axis=1), record)
    th = 1.0
    out = eg.revise_outputs(task, 1000.0, threshold=th)  # sharp gates: the overwrite cell is exact
    rep = eg.record_report(task, out, th, index=0)
    np.testing.assert_array_equal(rep["record_steps"], [2, 4])
    np.testing.assert_array_equal(rep["overwrite_steps"], [3])
    np.testing.assert_array_equal(rep["followed_at"][eg.REVISE_CELLS[2]], [True, True])
    assert rep["followed"][eg.REVISE_CELLS[0]] == 1.0 and rep["followed"][eg.REVISE_CELLS[2]] == 1.0
    # the overwrite cell's error: steps 0, 1 hold nothing (|0 - 0.1|), step 3 holds 0.4 for 0.3
    shares = rep["overwrite_error"]
    assert shares["nothing yet"] == pytest.approx(0.2 / 0.3, abs=1e-9)
    assert shares["later, less important item"] == pytest.approx(0.1 / 0.3, abs=1e-9)
    assert shares["rest"] == pytest.approx(0.0, abs=1e-9)
    assert rep["overwrite_error_index"] == pytest.approx(shares)


@pytest.mark.parametrize("spike, fgate_preact", [(20.0, 0.0), (10.0, 1.0), (60.0, 3.0)])
def test_lock_in_matches_the_formulas(spike, fgate_preact):
    rep = eg.lock_in(spike, fgate_preact)
    f = 1.0 / (1.0 + np.exp(-fgate_preact))
    assert rep["log_f"] == pytest.approx(np.log(f))
    assert rep["predicted"] == pytest.approx(spike / -np.log(f))
    assert rep["predicted_dominance"] == pytest.approx((spike + np.log(1 - f)) / -np.log(f))
    assert abs(rep["stabilizer_steps"] - rep["predicted"]) < 1
    assert abs(rep["dominance_steps"] - rep["predicted_dominance"]) < 1


def test_revise_error_counts_nonfinite():
    assert eg.revise_error(np.array([0.5, np.nan]), np.array([0.0, 0.0])) == pytest.approx(1.25)


# --- the normalizer ----------------------------------------------------------------------------


def test_average_weights_reproduce_slstm():
    rng = np.random.default_rng(2)
    S = 30
    i_pre, f_pre = rng.normal(0, 4, S), rng.normal(1, 2, S)
    z_pre, o_pre = rng.normal(size=S), rng.normal(size=S)
    w = eg.average_weights(i_pre, f_pre)
    assert np.allclose(np.triu(w, 1), 0.0) and np.allclose(w.sum(1), 1.0)
    h = slstm.recurrent(*(g[None, None, :, None] for g in (i_pre, f_pre, z_pre, o_pre)))[0, 0, :, 0]
    np.testing.assert_allclose(h, (w @ np.tanh(z_pre)) / (1 + np.exp(-o_pre)), atol=1e-12)


# --- overflow ----------------------------------------------------------------------------------


def test_first_nonfinite_and_wrong_step():
    h = np.zeros((2, 1, 10, 3))
    assert eg.first_nonfinite_step(h, axis=2) is None
    h[1, 0, 7, 2] = np.nan
    h[0, 0, 9, 0] = np.inf
    assert eg.first_nonfinite_step(h, axis=2) == 7
    assert eg.first_nonfinite_step(np.array([0.0, 1.0, -np.inf])) == 2
    ref = np.zeros_like(h)
    h2 = ref.copy()
    h2[0, 0, 4, 1] = 0.1
    assert eg.first_wrong_step(h2, ref, atol=1e-3, axis=2) == 4
    assert eg.first_wrong_step(h2, ref, atol=0.2, axis=2) is None
    assert eg.first_wrong_step(h, ref, atol=1.0, axis=2) == 7  # nan counts as wrong


def test_overflow_report_finds_the_constructed_step():
    """An input-gate jump to 100 at step 7 (float32 overflow) and to 12 at step 3 (float16)."""
    S = 12
    shape = (1, 2, S, 2)
    f = np.full(shape, 1.0)
    z = np.full(shape, 0.3)
    o = np.zeros(shape)
    i32 = np.zeros(shape)
    i32[:, :, 7] = 100.0
    (row32,) = eg.overflow_report(i32, f, z, o, dtypes=(np.float32,))
    assert row32["exp_overflow_step"] == 7
    assert row32["textbook_first_nonfinite"] == 7
    assert row32["textbook_first_wrong"] == 7
    assert row32["silent_units"] == 0 and row32["units"] == 4
    assert row32["stabilized_finite"] and row32["stabilized_max_abs_diff"] < 1e-6

    i16 = np.zeros(shape)
    i16[:, :, 3] = 12.0
    (row16,) = eg.overflow_report(i16, f, z, o, dtypes=(np.float16,))
    assert row16["log_max"] == pytest.approx(np.log(65504.0), abs=1e-3)
    assert row16["exp_overflow_step"] == 3
    assert row16["textbook_first_nonfinite"] == 3
    assert row16["stabilized_finite"] and row16["stabilized_max_abs_diff"] < 1e-2

    below = np.full(shape, 11.0)  # under float16's limit at every step: no overflow predicted
    (row,) = eg.overflow_report(below, f, z, o, dtypes=(np.float16,))
    assert row["exp_overflow_step"] is None


def test_overflow_report_detects_silent_failure():
    """n overflows (inf) one step before c when z has both signs: h = c / inf = 0, finite but wrong."""
    S = 16
    i = np.arange(S, dtype=np.float64)[None, None, :, None]
    rng = np.random.default_rng(0)
    f, z, o = (rng.normal(size=(1, 1, S, 1)) for _ in range(3))
    (row,) = eg.overflow_report(i, f, z, o, dtypes=(np.float16,))
    assert row["textbook_first_wrong"] == 11 < row["textbook_first_nonfinite"] == 12
    assert row["silent_units"] == 1


def test_stabilized_in_dtype():
    rng = np.random.default_rng(4)
    gates = [rng.normal(size=(1, 1, 5, 2)) for _ in range(4)]
    gates[0][..., 2, :] = 50.0
    for dt in (np.float16, np.float32, np.float64):
        h = eg.stabilized_in_dtype(*gates, dt)
        assert isinstance(h, np.ndarray) and h.dtype == dt and np.isfinite(h).all()


# --- traces and the widget ---------------------------------------------------------------------


def test_slstm_trace_states_and_bounds():
    rng = np.random.default_rng(5)
    shape = (2, 2, 20, 3)
    gates = [rng.normal(0, 5, shape), rng.normal(1, 2, shape), rng.normal(size=shape),
             rng.normal(size=shape)]
    tr = eg.slstm_trace(*gates)
    h, (_, c, n, m) = slstm.recurrent(*gates, return_state=True)
    np.testing.assert_allclose(tr["h"], h, atol=1e-12)
    np.testing.assert_allclose(tr["c"][:, :, -1], c, atol=1e-12)
    np.testing.assert_allclose(tr["n"][:, :, -1], n, atol=1e-12)
    np.testing.assert_allclose(tr["m"][:, :, -1], m, atol=1e-12)
    t = np.arange(1, 21)[None, None, :, None]
    assert (tr["n"] >= 1.0).all() and (tr["n"] <= t + 1e-9).all()
    assert np.all(tr["m"] <= tr["log_n_true"] + 1e-12)
    one = eg.slstm_trace(*(g[0, 0, :, 0] for g in gates))
    np.testing.assert_allclose(one["h"], h[0, 0, :, 0], atol=1e-12)


def test_gate_traces_spike():
    calm = eg.gate_traces(S=20, spike_height=0.0, textbook_dtype="float32")
    assert np.isfinite(calm["h_textbook"]).all()
    np.testing.assert_allclose(calm["h_textbook"], calm["trace"]["h"], atol=1e-5)
    spiky = eg.gate_traces(S=20, spike_step=5, spike_height=100.0, textbook_dtype="float32")
    assert eg.first_nonfinite_step(spiky["h_textbook"]) == 5
    assert np.isfinite(spiky["trace"]["h"]).all()
    assert spiky["trace"]["m"][5] == pytest.approx(spiky["igate_preact"][5])


def test_overflow_traces_one_unit():
    S = 20
    i = np.zeros((1, 2, S, 1))
    i[0, 1, :, 0] = np.arange(S) * 10.0  # unit (0, 1, 0): exp(10 t) passes log(max) of both dtypes
    ones, zeros = np.ones_like(i), np.zeros_like(i)
    data = eg.overflow_traces(i, zeros, ones, zeros, unit=(0, 1, 0))
    np.testing.assert_array_equal(data["igate_preact"], np.arange(S) * 10.0)
    np.testing.assert_allclose(data["h_stabilized"], slstm.recurrent(i, zeros, ones, zeros)[0, 1, :, 0])
    assert data["first_over"] == {"float32": 9, "float16": 2}  # log(max) = 88.7 and 11.1
    assert data["log_max"]["float16"] == pytest.approx(np.log(65504.0))
    for name, step in data["first_over"].items():
        h = data["textbook"][name]
        assert np.isfinite(h[:step]).all() and not np.isfinite(h[step])
    other = eg.overflow_traces(i, zeros, ones, zeros, unit=(0, 0, 0))  # gates 0: no overflow
    assert other["first_over"] == {"float32": None, "float16": None}
