"""Tests for xlstm_edu.experiments.slstm (chapter 04_slstm)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xlstm_edu import official, slstm
from xlstm_edu.experiments import slstm as ex


def test_random_inputs_shapes_dtype_and_seed():
    gates, R = ex.random_inputs(2, 3, 7, 5, seed=4, dtype=np.float32, fgate_bias=1.0)
    assert len(gates) == 4
    for g in gates:
        assert g.shape == (2, 3, 7, 5) and g.dtype == np.float32
    assert R.shape == (3, 5, 4, 5) and R.dtype == np.float32
    gates2, R2 = ex.random_inputs(2, 3, 7, 5, seed=4, dtype=np.float32, fgate_bias=1.0)
    np.testing.assert_array_equal(R, R2)
    np.testing.assert_array_equal(gates[1], gates2[1])
    assert gates[1].mean() > gates[0].mean() + 0.5  # the forget bias is applied


def test_full_recurrent_matrix_is_block_diagonal_and_reproduces_a_step():
    B, NH, DH = 2, 3, 4
    gates, R = ex.random_inputs(B, NH, 1, DH, seed=1)
    M = ex.full_recurrent_matrix(R)
    assert M.shape == (NH * DH, 4 * NH * DH)
    blocks = M.reshape(NH, DH, 4, NH, DH)  # (head_in, d_in, gate, head_out, d_out)
    for a in range(NH):
        for b in range(NH):
            if a != b:
                assert not blocks[a, :, :, b, :].any()
    # One step with R equals one step without R whose pre-activations get h_{t-1} @ M added.
    rng = np.random.default_rng(2)
    h, c, n = rng.standard_normal((3, B, NH, DH))
    n = np.abs(n) + 0.5
    m = rng.standard_normal((B, NH, DH))
    pre = [g[:, :, 0] for g in gates]
    h_with_R, _ = slstm.step_numpy(h, c, n, m, *pre, R)
    ry = (h.reshape(B, NH * DH) @ M).reshape(B, 4, NH, DH)  # gate-major columns
    h_manual, _ = slstm.step_numpy(h, c, n, m, *[pre[g] + ry[:, g] for g in range(4)], None)
    np.testing.assert_allclose(h_with_R, h_manual, rtol=0, atol=1e-13)


def test_impulse_response_stays_inside_pulsed_heads():
    _, R = ex.random_inputs(1, 4, 1, 5, seed=0, r_scale=3.0)
    pulses = ((0, 0), (2, 3))
    h_mix = ex.impulse_response(R, S=30, pulses=pulses)
    h_none = ex.impulse_response(np.zeros_like(R), S=30, pulses=pulses)
    assert h_mix.shape == h_none.shape == (4, 30, 5)
    touched = np.abs(h_mix).max(axis=1) > 0  # (NH, DH)
    assert touched[0].all() and touched[2].all()  # R spreads the pulse through its head
    assert not touched[1].any() and not touched[3].any()  # and never to another head
    lit = np.abs(h_none).max(axis=1) > 0
    expected = np.zeros((4, 5), dtype=bool)
    expected[0, 0] = expected[2, 3] = True
    np.testing.assert_array_equal(lit, expected)  # without R only the pulsed units move
    assert np.abs(h_none[:, :5]).max() == 0.0  # nothing before the pulse


def test_time_recurrent_paths_and_table():
    threads = torch.get_num_threads()
    per_step = ex.time_recurrent_paths(B=1, NH=2, DH=4, S=16, S_loop=8, repeats=1, warmup=1)
    assert torch.get_num_threads() == threads  # restored
    assert {"numpy reference loop", "numba kernel", "torch loop (1 thread)"} <= set(per_step)
    assert len(per_step) == (3 if threads == 1 else 4)
    assert all(t > 0 for t in per_step.values())
    table = ex.speed_table({"DH=4": per_step, "again": per_step})
    lines = table.splitlines()
    assert len(lines) == 1 + len(per_step) and "numba kernel" in table
    assert lines[1].count("1.00x") == 2  # the reference against itself, in both columns


def test_max_differences_rows_and_table():
    gates, R = ex.random_inputs(1, 2, 9, 3, seed=3, fgate_bias=1.0)
    other, _ = ex.random_inputs(1, 2, 4, 3, seed=4)
    _, state = slstm.recurrent(*other, R, return_state=True)
    errors = ex.max_differences(gates, R, state, cut=5, with_official=False)
    assert list(errors) == [
        "numba - reference, zero state", "torch - reference, zero state",
        "numba - reference, carried-in state", "torch - reference, carried-in state",
        "numba: split run - one run", "torch: split run - one run"]
    for row in errors.values():
        assert list(row) == ["float64", "float32"]
        assert row["float64"] < 1e-12 and row["float32"] < 1e-5
    table = ex.difference_table(errors).splitlines()
    assert len(table) == 1 + len(errors) and table[0].split()[-2:] == ["float64", "float32"]
    only64 = ex.max_differences(gates, R, state, cut=5, dtypes=(np.float64,), with_official=False)
    assert list(next(iter(only64.values()))) == ["float64"]


def test_time_training_paths_and_table():
    threads = torch.get_num_threads()
    times = ex.time_training_paths(B=1, NH=2, DH=3, S=5, rounds=1, repeats=1, warmup=1,
                                   with_official=False)
    assert torch.get_num_threads() == threads  # restored
    assert list(times) == ["fused kernels", "torch reference loop"]
    assert all(t > 0 for t in times.values())
    forward = ex.time_training_paths(B=1, NH=2, DH=3, S=5, rounds=1, repeats=1, backward=False,
                                     with_official=False)
    assert list(forward) == list(times)
    table = ex.training_speed_table(times).splitlines()
    assert len(table) == 1 + len(times) and table[1].endswith("1.0x")


def test_official_vanilla_autograd_equals_the_adapter():
    if not official.available("xlstm"):
        pytest.skip("xlstm not installed")
    gates, R = ex.random_inputs(2, 2, 6, 3, seed=5)
    h_adapter = official.vanilla_slstm(*gates, R)
    leaves = [torch.from_numpy(a).requires_grad_(True) for a in (*gates, R)]
    h = ex.official_vanilla_autograd(*leaves)
    np.testing.assert_allclose(h.detach().numpy(), h_adapter, rtol=0, atol=1e-14)
    h.sum().backward()
    assert all(x.grad is not None for x in leaves)


def test_gradient_differences_rows():
    errors = ex.gradient_differences(B=1, NH=2, S=6, DH=3, with_official=False)
    assert list(errors) == ["fused - autograd through recurrent_torch"]
    row = errors["fused - autograd through recurrent_torch"]
    assert list(row) == list(ex.GRADIENT_INPUTS) and max(row.values()) < 1e-10
    with pytest.raises(ValueError, match="regime"):
        ex.gradient_differences(regime="easy")
