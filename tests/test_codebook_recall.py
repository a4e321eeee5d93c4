"""codebook_recall (the opening chapter and chapter 10): scalar cells against a matrix memory."""

import numpy as np
import pytest

from xlstm_edu.experiments import mlstm_memory


def test_one_pair_always_comes_back():
    # One pair in any memory: the read is the stored value (up to the normalizer's scale).
    for key_dim in (1, 4, 16):
        assert mlstm_memory.codebook_recall(key_dim, 16, [1], trials=32, seed=0)[0] == 1.0


def test_scalar_cells_hold_one_pair_a_matrix_holds_many():
    Ns = [2, 8, 16]
    scalar = mlstm_memory.codebook_recall(1, 32, Ns, trials=32, seed=1)
    matrix = mlstm_memory.codebook_recall(32, 32, Ns, trials=32, seed=1)
    assert scalar.max() < 0.9  # two pairs already collide in one row of cells
    assert matrix.min() > 0.95  # 16 random pairs in a 32 x 32 memory
    assert np.all(matrix > scalar)


def test_two_pairs_in_scalar_cells():
    # key_dim = 1: the keys are +1 or -1. Equal keys (half the memories): the read is the mean of
    # the two values, the closest entry one of them at random (1/2 right). Opposite keys: n = 0, the
    # read is v_1 - v_2 for the first key, whose closest entry is v_1 (all right). About 3/4.
    acc = mlstm_memory.codebook_recall(1, 64, [2], trials=512, seed=2)[0]
    assert 0.68 < acc < 0.82


def test_deterministic_for_a_seed():
    a = mlstm_memory.codebook_recall(4, 8, [2, 4], trials=8, seed=3)
    b = mlstm_memory.codebook_recall(4, 8, [2, 4], trials=8, seed=3)
    np.testing.assert_array_equal(a, b)


def test_state_numbers():
    assert mlstm_memory.state_numbers(1, 32) == 32 + 1 + 1
    assert mlstm_memory.state_numbers(32, 32) == 32 * 32 + 32 + 1


@pytest.mark.parametrize("kwargs", [dict(key_dim=0, value_dim=4, Ns=[1]),
                                    dict(key_dim=2, value_dim=4, Ns=[0]),
                                    dict(key_dim=2, value_dim=4, Ns=[65]),
                                    dict(key_dim=2, value_dim=4, Ns=[2], trials=0)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        mlstm_memory.codebook_recall(**kwargs)
