"""Tests for the parallel/chunkwise-forms experiment module (chapter 06)."""

import functools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from xlstm_edu import bench, mlstm, timing
from xlstm_edu.experiments import parallel_forms as pf


def test_loglog_slope_recovers_known_exponent():
    x = np.array([128, 256, 512, 1024, 2048])
    for exponent, a in [(1.0, 0.5), (2.0, 3e-6), (1.37, 42.0)]:
        slope, a_fit = pf.loglog_slope(x, a * x.astype(float) ** exponent)
        assert slope == pytest.approx(exponent, abs=1e-10)
        assert a_fit == pytest.approx(a, rel=1e-9)


def test_loglog_slope_rejects_bad_input():
    with pytest.raises(ValueError):
        pf.loglog_slope([1, 2], [1.0, 0.0])
    with pytest.raises(ValueError):
        pf.loglog_slope([1], [1.0])
    with pytest.raises(ValueError):
        pf.loglog_slope([1, 2, 3], [1.0, 2.0])


def test_fitted_slopes_respects_min_S():
    sweep = {"a": {"S": [1, 10, 100, 1000], "y": [5.0, 5.0, 100.0, 1000.0]}}
    assert pf.fitted_slopes(sweep, "y", min_S=100)["a"] == pytest.approx(1.0)
    assert pf.fitted_slopes(sweep, "y")["a"] < 0.9
    assert pf.fitted_slopes(sweep, "y", min_S=1000) == {}  # one point: no fit


def test_hard_gates_ranges_and_seed():
    i, f = pf.hard_gates(2, 3, 500, seed=1)
    assert i.shape == f.shape == (2, 3, 500) and i.dtype == torch.float64
    assert -15 <= float(i.min()) and float(i.max()) <= 15 and float(i.max() - i.min()) > 25
    assert 2.5 < float(f.std()) < 3.5
    i2, f2 = pf.hard_gates(2, 3, 500, seed=1)
    assert torch.equal(i, i2) and torch.equal(f, f2)
    i32, _ = pf.hard_gates(1, 1, 8, dtype=torch.float32)
    assert i32.dtype == torch.float32


def test_parallel_with_difference_builder_is_exact_in_float64():
    i, f = pf.hard_gates(1, 2, 64, seed=5)
    q, k, v = pf.qkv(1, 2, 64, 8, 8, seed=6)
    diff = mlstm.log_decay_matrix_cumsum_difference
    h_diff = mlstm.parallel_torch(q, k, v, i, f, log_decay_fn=diff)
    h_rec = mlstm.recurrent(q, k, v, i, f, eps=0.0)
    h_diff0 = mlstm.parallel_torch(q, k, v, i, f, eps=0.0, log_decay_fn=diff)
    assert float((h_diff0 - h_rec).abs().max() / h_rec.abs().max()) < 1e-10
    assert h_diff.shape == (1, 2, 64, 8)


def test_float32_pitfall_shows_the_difference_construction_is_worse():
    rows = pf.float32_pitfall((256, 1024), DH=16)
    assert [r["S"] for r in rows] == [256, 1024]
    stable, diff = pf.LOG_D_BUILDERS
    for r in rows:
        assert r["logd_err"][stable] < 2e-5  # a few float32 ulps of numbers of size ~30
        assert r["logd_err"][diff] > 5 * r["logd_err"][stable]
        assert r["cumsum_range"] > 0.5 * r["S"]  # the partial sums grow with S
    # the difference construction degrades with S (partial sums grow), the stable one does not
    assert rows[1]["logd_err"][diff] > 2 * rows[0]["logd_err"][diff]


def test_stabilizer_trajectory_matches_parallel_row_max():
    i, f = pf.hard_gates(2, 3, 50, seed=7)
    log_d = mlstm.log_decay_matrix(F.logsigmoid(f), i)
    m_par = log_d.amax(-1)  # parallel form: no initial state
    m_rec = pf.stabilizer_trajectory(i, f)  # recurrent form: m_0 = 0
    b = F.logsigmoid(f).cumsum(-1)  # log of the decay of the initial state
    torch.testing.assert_close(m_rec, torch.maximum(m_par, b), rtol=0, atol=1e-12)
    torch.testing.assert_close(pf.stabilizer_trajectory(i, f, -math.inf), m_par, rtol=0, atol=1e-12)
    q, k, v = pf.qkv(2, 3, 50, 4, 4)
    _, (_, _, m_final) = mlstm.recurrent(q, k, v, i, f, return_state=True)
    torch.testing.assert_close(m_rec[..., -1], m_final, rtol=0, atol=1e-12)
    m_np = pf.stabilizer_trajectory(i.numpy(), f.numpy())
    assert isinstance(m_np, np.ndarray)
    np.testing.assert_allclose(m_np, m_rec.numpy(), atol=1e-12)


@pytest.mark.parametrize("S, L", [(32, 8), (10, 4), (7, 7), (5, 9), (6, 1)])
def test_chunk_structure(S, L):
    st = pf.chunk_structure(S, L)
    assert st.shape == (S, S)
    t, s = np.indices((S, S))
    assert np.all((st == pf.FUTURE) == (s > t))
    assert np.all((st == pf.INTRA) == ((s <= t) & (t // L == s // L)))
    n_chunks = -(-S // L)
    sizes = [min(L, S - c * L) for c in range(n_chunks)]
    assert (st == pf.INTRA).sum() == sum(n * (n + 1) // 2 for n in sizes)
    if L >= S:
        assert not np.any(st == pf.INTER)
    if L == 1:
        assert not np.any((st == pf.INTRA) & (s < t))
    with pytest.raises(ValueError):
        pf.chunk_structure(S, 0)


def test_scaling_sweep_tiny():
    out = pf.scaling_sweep((16, 32), max_S={"parallel": 16}, NH=2, DH=8, chunk_size=8, repeats=2,
                           rounds=2, warmup=1)
    assert set(out) == set(pf.FORMS)
    assert out["parallel"]["S"] == [16]
    assert out["chunkwise"]["S"] == out["recurrent"]["S"] == [16, 32]
    assert [len(d["seconds"]) for d in out.values()] == [len(d["S"]) for d in out.values()]
    with pytest.raises(ValueError):
        pf.scaling_sweep((16,), forms=("quadratic",))


def test_memory_sweep_has_a_point_per_form_and_size():
    """The sweep's shape (the values are measurements: printed by the chapter, never asserted)."""
    out = pf.memory_sweep((128, 256), forms=("parallel", "chunkwise"), max_S={"parallel": 128}, NH=2,
                          DH=16, workers=2)
    assert out["parallel"]["S"] == [128] and out["chunkwise"]["S"] == [128, 256]
    assert all(isinstance(v, float) for d in out.values() for v in d["MiB"])


def test_counted_costs_of_the_parallel_and_chunkwise_forms():
    """Counted, so exact: the parallel form's two S x S products and its (NH, S, S) decay matrix; the
    chunkwise form's products grow linearly (twice S: about twice the FLOPs, once there are more than
    CHUNK_GROUP chunks) and cover at least the terms bench.chunkwise_flops counts."""
    NH, DH, L = 1, 8, 8
    out = pf.counted_costs((512, 1024), NH=NH, DH=DH, chunk_size=L)
    for S, flops, largest in zip(out["parallel"]["S"], out["parallel"]["flops"],
                                 out["parallel"]["largest_bytes"]):
        assert flops == NH * 2 * (2 * S * S * DH)  # Q K^T and C' V, 2 FLOPs per multiply-add
        assert largest == NH * S * S * 4  # one float32 (NH, S, S) matrix
    chunk = out["chunkwise"]
    counted_terms = [bench.chunkwise_flops(1, NH, S, DH, DH, L) for S in chunk["S"]]
    assert all(f >= c for f, c in zip(chunk["flops"], counted_terms))
    assert 1.9 < chunk["flops"][1] / chunk["flops"][0] < 2.2
    assert chunk["largest_bytes"][1] < out["parallel"]["largest_bytes"][1] / 4
    with pytest.raises(ValueError, match="recurrent form runs in numba"):
        pf.counted_costs((64,), forms=("recurrent",))


def test_stabilized_decay_matrix_rows_peak_at_one():
    i, f = pf.hard_gates(1, 1, 16, seed=3)
    log_d = mlstm.log_decay_matrix(F.logsigmoid(f), i)[0, 0]  # (S, S)
    d_stab, m = pf.stabilized_decay_matrix(log_d)
    np.testing.assert_array_equal(m, log_d.amax(-1).numpy())
    np.testing.assert_array_equal(d_stab.max(-1), 1.0)
    assert np.all(np.triu(d_stab, 1) == 0)  # the future: exp(-inf) = 0
    np.testing.assert_allclose(d_stab * np.exp(m)[:, None], np.exp(log_d.numpy()), rtol=1e-12)


def test_fitted_power_laws_give_slope_prefactor_and_points():
    sweep = {"a": {"S": [10, 100, 1000], "y": [3.0, 300.0, 30000.0]}, "b": {"S": [10], "y": [1.0]}}
    fits = pf.fitted_power_laws(sweep, "y", min_S=10)
    assert set(fits) == {"a"}  # one point: no fit
    slope, a, S_fit = fits["a"]
    assert slope == pytest.approx(2.0) and a == pytest.approx(0.03) and S_fit == [10, 100, 1000]
    assert pf.fitted_power_laws(sweep, "y", min_S=100)["a"][2] == [100, 1000]


def test_float32_pitfall_reports_the_spacing_at_the_cumsum_size():
    (row,) = pf.float32_pitfall((64,), DH=4)
    assert row["cumsum_spacing"] == float(np.spacing(np.float32(row["cumsum_range"])))


def test_scaling_table():
    times = {"recurrent": {"S": [8, 16], "seconds": [0.001, 0.002]},
             "parallel": {"S": [8], "seconds": [0.004]}}
    memory = {"parallel": {"S": [8, 16], "MiB": [1.5, 6.0]}}
    lines = pf.scaling_table(times, memory).splitlines()
    assert len(lines) == 3 and "recurrent ms" in lines[0] and "parallel MiB" in lines[0]
    assert lines[1].split() == ["8", "1.00", "4.00", "1.50"]
    assert lines[2].split() == ["16", "2.00", "-", "6.00"]


@pytest.mark.parametrize("S, B, NH, DHQK, DHV", [(1, 1, 1, 3, 5), (7, 2, 3, 4, 6), (40, 1, 2, 8, 3)])
def test_training_saved_bytes_of_the_recurrent_form_equal_the_count_by_hand(S, B, NH, DHQK, DHV):
    inputs = bench.mlstm_inputs(B=B, NH=NH, S=S, DHQK=DHQK, DHV=DHV, requires_grad=True)
    counted = timing.saved_tensor_bytes(lambda: mlstm.recurrent(*inputs), exclude=inputs)
    assert counted == pf.recurrent_saved_bytes(S, B=B, NH=NH, DHQK=DHQK, DHV=DHV)
    if DHQK == DHV:  # the experiment counts the same thing (it has one head dimension DH)
        out = pf.training_saved_bytes((S,), forms=("recurrent",), B=B, NH=NH, DH=DHQK)
        assert out["recurrent"] == {"S": [S], "bytes": [counted]}


def test_training_saved_bytes_of_the_parallel_form_are_S_by_S_matrices_plus_vectors():
    """The storages of shape (..., S, S) hold exactly c * S^2 bytes with the same c at every S (five
    float32 matrices per head and two boolean masks); the rest is exactly linear in S."""
    B, NH, DHQK, DHV = 1, 2, 3, 5
    square, rest = {}, {}
    for S in (32, 64):
        inputs = bench.mlstm_inputs(B=B, NH=NH, S=S, DHQK=DHQK, DHV=DHV, requires_grad=True)
        rows = timing.saved_tensor_storages(functools.partial(mlstm.parallel, *inputs), exclude=inputs)
        square[S] = sum(n for shape, n in rows if shape[-2:] == (S, S))
        rest[S] = sum(n for shape, n in rows if shape[-2:] != (S, S))
    assert square[32] / 32**2 == square[64] / 64**2 == 5 * B * NH * 4 + 2
    assert rest[64] == 2 * rest[32] > 0


def test_training_saved_bytes_of_the_chunkwise_form_are_linear_in_S():
    """Exactly linear once the chunks fill whole groups of CHUNK_GROUP, and per chunk a few L x L,
    L x DH and DHQK x DHV tensors."""
    B, NH, D, L = 1, 2, 4, 4
    step = L * mlstm.chunkwise_form.CHUNK_GROUP  # one group of chunks
    out = pf.training_saved_bytes((step, 2 * step, 3 * step), forms=("chunkwise",), B=B, NH=NH, DH=D,
                                  chunk_size=L)
    b1, b2, b3 = out["chunkwise"]["bytes"]
    assert b3 - b2 == b2 - b1 > 0
    per_chunk = (b2 - b1) / mlstm.chunkwise_form.CHUNK_GROUP / (B * NH * 4)  # float32 numbers per head
    assert L * L + D * (D + 1) < per_chunk < 8 * (L * L + 2 * L * D + D * (D + 1))


def test_training_saved_bytes_respects_max_S_and_rejects_unknown_forms():
    out = pf.training_saved_bytes((8, 16), max_S={"parallel": 8}, NH=1, DH=4, chunk_size=4)
    assert out["parallel"]["S"] == [8] and out["chunkwise"]["S"] == out["recurrent"]["S"] == [8, 16]
    with pytest.raises(ValueError):
        pf.training_saved_bytes((8,), forms=("quadratic",))


def test_training_times_shape():
    """The sweep's shape (the values are measurements: printed by the chapter, never asserted)."""
    out = pf.training_times((8, 16), max_S={"recurrent": 8}, NH=1, DH=4, chunk_size=4, rounds=2,
                            repeats=1)
    assert out["recurrent"]["S"] == [8] and out["parallel"]["S"] == [8, 16]
    assert all(isinstance(t, float) and t > 0 for d in out.values() for t in d["seconds"])


@pytest.mark.parametrize("regime", sorted(pf.GATE_REGIMES))
def test_float32_pitfall_regimes(regime):
    (row,) = pf.float32_pitfall((128,), regime=regime, DH=8)
    assert row["regime"] == regime
    stable, diff = pf.LOG_D_BUILDERS
    assert row["h_err"][stable] < 1e-3 and row["logd_err"][stable] < 2e-5
    if regime == "realistic":  # sum log f over 128 steps is about -1.4: both are float32 rounding
        assert row["cumsum_range"] < 5 and row["logd_err"][diff] < 2e-6
    with pytest.raises(ValueError, match="gate regime"):
        pf.float32_pitfall((8,), regime="soft")


def test_realistic_gates_are_near_the_official_init():
    i, f = pf.realistic_gates(2, 3, 4000, seed=1)
    assert i.shape == f.shape == (2, 3, 4000) and i.dtype == torch.float64
    assert abs(float(f.mean()) - 4.5) < 0.05 and abs(float(f.std()) - 1) < 0.05
    assert abs(float(i.mean())) < 0.05 and abs(float(i.std()) - 1) < 0.05
