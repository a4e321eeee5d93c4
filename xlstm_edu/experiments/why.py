"""The teaser of the opening chapter "Why xLSTM": scalar cells against a matrix memory.

The xLSTM paper's mLSTM enlarges the LSTM's memory cell from a scalar ``c`` to a matrix ``C``
(Beck et al. 2024, section 2.3). The package's mLSTM cell shows both: with key dimension
``DHQK = 1`` its memory ``C`` is one row of ``DHV`` numbers, i.e. ``DHV`` scalar cells
``c_j <- f c_j + i k v_j`` that share their gates, the key ``k`` a single number; with ``DHQK = d``
it is the ``d x DHV`` matrix of chapter 05. :func:`codebook_recall` writes ``N`` key-value pairs into
such a memory and counts how many come back right, as chapter 10 does: every value is an entry of a
codebook of random unit vectors (the value tokens), and a read is right when the codebook entry
closest to it (largest dot product, what an output layer computes) is the stored one.

Writes and reads go through :func:`xlstm_edu.experiments.mlstm_memory.store_and_retrieve`, so the
memory under test is the package cell itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._checks import check_int
from .mlstm_memory import random_unit_vectors, store_and_retrieve


def codebook_recall(key_dim: int, value_dim: int, Ns: Sequence[int], *, codebook_size: int = 64,
                    trials: int = 64, seed: int = 0) -> np.ndarray:
    """Recall accuracy of one mLSTM memory with key dimension ``key_dim``, for each count in ``Ns``.

    For every ``N``: ``trials`` independent memories, each with its own codebook of
    ``codebook_size`` random unit vectors of length ``value_dim``; ``N`` distinct entries are stored
    under random unit keys of length ``key_dim`` (input gate 1, forget gate ~1), then read back with
    their keys. ``key_dim = 1``: the keys are ``+1`` or ``-1``.

    Returns:
        ``accuracy (len(Ns),)``: the fraction of the ``trials * N`` reads whose closest codebook
        entry is the stored value (chance: ``1 / codebook_size``).
    """
    check_int("key_dim", key_dim, minimum=1)
    check_int("value_dim", value_dim, minimum=1)
    check_int("codebook_size", codebook_size, minimum=1)
    check_int("trials", trials, minimum=1)
    for n in Ns:
        check_int("N", n, minimum=1)
        if n > codebook_size:
            raise ValueError(f"N = {n} pairs need N distinct values, the codebook has {codebook_size}")
    rng = np.random.default_rng(seed)
    accuracy = np.empty(len(Ns))
    for a, n in enumerate(Ns):
        codebook = random_unit_vectors((trials, codebook_size, value_dim), rng)
        keys = random_unit_vectors((trials, n, key_dim), rng)  # (trials, N, key_dim)
        which = rng.random((trials, codebook_size)).argsort(axis=1)[:, :n]  # (trials, N) distinct
        values = np.take_along_axis(codebook, which[..., None], axis=1)  # (trials, N, value_dim)
        h = store_and_retrieve(keys, values)  # (trials, N, value_dim): the cell's reads
        guess = np.einsum("tnd,tvd->tnv", h, codebook).argmax(-1)  # (trials, N): closest entry
        accuracy[a] = float((guess == which).mean())
    return accuracy


def state_numbers(key_dim: int, value_dim: int) -> int:
    """Numbers in the state of one mLSTM head: ``C`` (``key_dim x value_dim``), ``n`` (``key_dim``)
    and the stabilizer ``m`` (1)."""
    check_int("key_dim", key_dim, minimum=1)
    check_int("value_dim", value_dim, minimum=1)
    return key_dim * value_dim + key_dim + 1
