"""Tests for the mLSTM associative-memory experiment and the memory explorer widget."""

import numpy as np
import pytest

from xlstm_edu import mlstm
from xlstm_edu.experiments import mlstm_memory as mm


def test_orthogonal_keys_retrieve_exactly():
    rng = np.random.default_rng(0)
    d = 16
    keys = mm.orthonormal_vectors(d, d, rng)  # N = d: the memory is full
    values = mm.random_unit_vectors((d, d), rng)
    retrieved, state = mm.store_and_retrieve(keys, values, return_state=True)
    assert mm.relative_error(retrieved, values).max() < 1e-5  # eps = 1e-6 and sigmoid(20) < 1
    # The state is Kohonen's correlation matrix memory sum_j k_j v_j^T.
    np.testing.assert_allclose(mm.memory_matrix(state), keys.T @ values, atol=1e-6)


def test_orthogonal_keys_exact_without_eps_float32():
    rng = np.random.default_rng(1)
    keys = mm.orthonormal_vectors(8, 32, rng).astype(np.float32)
    values = mm.random_unit_vectors((8, 24), rng).astype(np.float32)
    retrieved = mm.store_and_retrieve(keys, values, eps=0.0)
    assert retrieved.dtype == np.float32
    assert mm.relative_error(retrieved, values).max() < 1e-5


def test_reads_leave_memory_unchanged():
    rng = np.random.default_rng(2)
    N, d = 10, 8
    keys = mm.random_unit_vectors((N, d), rng)
    values = mm.random_unit_vectors((N, d), rng)
    f_pre = rng.uniform(1.0, 4.0, N)
    i_pre = rng.uniform(-2.0, 2.0, N)
    _, state = mm.store_and_retrieve(keys, values, igate_preact=i_pre, fgate_preact=f_pre,
                                     return_state=True)
    # Writes alone, straight through the cell:
    _, (c, n, m) = mlstm.recurrent(np.zeros((1, 1, N, d)), keys[None, None], values[None, None],
                                   i_pre[None, None], f_pre[None, None], return_state=True)
    np.testing.assert_allclose(mm.memory_matrix(state), mm.memory_matrix((c[0, 0], n[0, 0], m[0, 0])),
                               rtol=1e-12, atol=1e-12)


def test_batched_equals_single():
    rng = np.random.default_rng(3)
    keys = mm.random_unit_vectors((3, 12, 16), rng)
    values = mm.random_unit_vectors((3, 12, 16), rng)
    batched = mm.store_and_retrieve(keys, values)
    for b in range(3):
        np.testing.assert_allclose(batched[b], mm.store_and_retrieve(keys[b], values[b]), rtol=1e-12)


def test_error_grows_with_N_for_fixed_d():
    errors = mm.retrieval_error_curve([32], [4, 32, 256], seed=0, n_trials=4)[0]
    assert np.all(np.diff(errors) > 0), errors


def test_error_at_fixed_N_shrinks_with_d():
    errors = mm.retrieval_error_curve([16, 32, 64, 128], [32], seed=0, n_trials=4)[:, 0]
    assert np.all(np.diff(errors) < 0), errors


def test_error_follows_crosstalk_estimate():
    Ns, d = [16, 64, 256], 32
    errors = mm.retrieval_error_curve([d], Ns, seed=1, n_trials=8)[0]
    np.testing.assert_allclose(errors, mm.crosstalk_theory(Ns, d), rtol=0.25)


def test_capacity_interpolates_crossing():
    Ns = [2, 4, 8, 16]
    errors = np.array([[0.01, 0.02, 0.04, 0.08], [0.2, 0.3, 0.4, 0.5], [0.001, 0.002, 0.003, 0.004]])
    cap = mm.capacity(errors, Ns, threshold=0.03)
    assert cap[0] == pytest.approx(4 * 2**np.log2(1.5))  # geometric interpolation between 4 and 8
    assert cap[1] == 2
    assert np.isnan(cap[2])


def test_store_and_retrieve_rejects_mismatched_pairs():
    with pytest.raises(ValueError, match="agree"):
        mm.store_and_retrieve(np.zeros((5, 4)), np.zeros((6, 4)))
    with pytest.raises(ValueError, match="orthonormal"):
        mm.orthonormal_vectors(5, 4, np.random.default_rng(0))


def test_forgetting_matches_decay_for_one_hot_keys():
    data = mm.explorer_data(d=16, n_pairs=10, fgate_preact=2.0, keys="one-hot")
    f = 1.0 / (1.0 + np.exp(-2.0))
    np.testing.assert_allclose(data["relative_error"], 1.0 - f ** data["age"], atol=1e-5)
    np.testing.assert_allclose(data["forgetting_only"], 1.0 - f ** np.arange(9, -1, -1), rtol=1e-12)
    assert data["C"].shape == (16, 16)
    assert np.all(data["C"][10:] == 0)  # rows of unused one-hot keys stay empty


def test_make_pairs_keeps_old_pairs_and_checks_keys():
    k8, v8 = mm.make_pairs(8, 5, "random", seed=3)
    k12, v12 = mm.make_pairs(8, 12, "random", seed=3)
    np.testing.assert_array_equal(k12[:5], k8)  # adding pairs keeps the old ones
    np.testing.assert_array_equal(v12[:5], v8)
    k_hot, _ = mm.make_pairs(4, 6, "one-hot")
    np.testing.assert_array_equal(k_hot[4:], np.eye(4)[:2])  # pair j + d reuses the key of pair j
    with pytest.raises(ValueError, match="keys"):
        mm.make_pairs(4, 2, "orthogonal")


def test_strong_newest_write_dominates_random_keys():
    weak = mm.explorer_data(d=16, n_pairs=12, fgate_preact=8.0, newest_igate_preact=0.0, keys="random")
    strong = mm.explorer_data(d=16, n_pairs=12, fgate_preact=8.0, newest_igate_preact=5.0,
                              keys="random")
    assert strong["cosine_distance"][:-1].mean() > 2 * weak["cosine_distance"][:-1].mean()
    assert strong["relative_error"][-1] < 0.05  # the normalizer undoes the newest pair's strength


def test_queries_default_to_keys_and_read_is_affine():
    rng = np.random.default_rng(5)
    keys = mm.random_unit_vectors((6, 8), rng)
    values = mm.random_unit_vectors((6, 4), rng)
    np.testing.assert_array_equal(mm.store_and_retrieve(keys, values, queries=keys),
                                  mm.store_and_retrieve(keys, values))
    # The chapter's example: coefficients 1.5 and -0.5 put the read outside the stored values.
    read = mm.store_and_retrieve(np.eye(2), np.array([[0.2], [0.8]]), queries=np.array([[3.0, -1.0]]),
                                 fgate_preact=mm.READ_FGATE_PREACT, eps=0.0)
    assert read.shape == (1, 1)
    assert abs(read.item() + 0.1) < 1e-12
    # Several queries, batched: one read per query, the memory unchanged in between.
    queries = rng.standard_normal((3, 8))
    batched = mm.store_and_retrieve(keys[None].repeat(2, 0), values[None].repeat(2, 0),
                                    queries=queries[None].repeat(2, 0))
    assert batched.shape == (2, 3, 4)
    for j in range(3):
        single = mm.store_and_retrieve(keys, values, queries=queries[j:j + 1])[0]
        np.testing.assert_allclose(batched[0, j], single, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="queries"):
        mm.store_and_retrieve(keys, values, queries=queries[:, :5])
