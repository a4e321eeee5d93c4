"""The mLSTM matrix memory as an associative memory (chapter "mLSTM: matrix memory").

Store ``N`` key-value pairs in the memory ``C`` of the package's mLSTM cell
(:func:`xlstm_edu.mlstm.recurrent`), then read each value back by querying with its key, and measure
how much of the stored value comes back. With input gate 1 and forget gate ~1 the state is
Kohonen's correlation matrix memory ``C = sum_j k_j v_j^T``; reading with a key ``k_j`` returns
``v_j + sum_{l != j} (k_j . k_l) v_l``: exact for orthogonal keys, with crosstalk of size about
``sqrt(N / d)`` for random unit keys in ``d`` dimensions.

Writes and reads are both ordinary mLSTM steps in one sequence (``N`` writes, then the reads):

* write step ``j``: ``k = k_j``, ``v = v_j``, gate pre-activations ``igate_preact[j]`` and
  ``fgate_preact[j]``; its query (zero) and output are ignored;
* read step ``j``: ``q = sqrt(DHQK) k_j``, or ``sqrt(DHQK)`` times query ``j`` (undoes the
  ``1/sqrt(DHQK)`` the cell applies to q), ``k = v = 0`` (nothing is written) and forget
  pre-activation :data:`READ_FGATE_PREACT` (``sigmoid(40) = 1`` in floating point: nothing is
  forgotten). Its output ``h`` is the retrieved value.

So the memory under test is the package cell itself, not a re-implementation.

:func:`codebook_recall` scores reads the way a trained model's output layer would, against a codebook
of value vectors (chapter "Associative recall" and the opening chapter "Why xLSTM": with key dimension
1 the memory is a row of scalar cells sharing their gates, the LSTM's kind of memory);
:func:`state_numbers` counts one head's state.

:func:`make_pairs` and :func:`explorer_data` compute what the chapter's memory explorer shows
(:mod:`xlstm_edu.widgets.memory`); the figures are in :mod:`xlstm_edu.figures.mlstm`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import mlstm
from .._checks import check_int
from ..gating import sigmoid

#: Forget-gate pre-activation of the read steps: ``log sigmoid(40) ~ -4e-18``, so ``f' = exp(.)`` is
#: exactly 1.0 in float32 and float64 and the reads leave the memory unchanged.
READ_FGATE_PREACT = 40.0

#: Forget-gate pre-activation of the write steps in the capacity experiment:
#: ``sigmoid(20) = 1 - 2e-9``, i.e. practically no forgetting over a few thousand steps.
STORE_FGATE_PREACT = 20.0


def random_unit_vectors(shape, rng):
    """Random directions: Gaussian vectors normalized to unit length along the last axis."""
    x = rng.standard_normal(shape)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def orthonormal_vectors(n, d, rng):
    """``n <= d`` random orthonormal vectors in ``R^d`` as rows ``(n, d)`` (QR of a Gaussian matrix)."""
    if n > d:
        raise ValueError(f"at most d = {d} orthonormal vectors exist in R^{d}, asked for n = {n}")
    q, _ = np.linalg.qr(rng.standard_normal((d, n)))  # (d, n), orthonormal columns
    return np.ascontiguousarray(q.T)


def _per_pair(x, batch, N, dtype):
    """A gate pre-activation given as a scalar, ``(N,)`` or ``(batch, N)`` -> array ``(batch, N)``."""
    return np.broadcast_to(np.asarray(x, dtype=dtype), (batch, N)).copy()


def store_and_retrieve(keys, values, *, queries=None, igate_preact=0.0, fgate_preact=STORE_FGATE_PREACT,
                       eps=1e-6, return_state=False):
    """Write the pairs ``(keys[j], values[j])`` into an mLSTM memory, then query it with every key
    (or with ``queries``).

    Args:
        keys: ``(N, DHQK)`` or ``(B, N, DHQK)`` (``B`` independent memories, e.g. trials).
        values: ``(N, DHV)`` or ``(B, N, DHV)``.
        queries: ``(M, DHQK)`` or ``(B, M, DHQK)``, read one after another after all writes, each as
            the cell sees it (``q^T k`` with the stored keys, the ``1/sqrt(DHQK)`` undone); default:
            the keys (``M = N``).
        igate_preact: input-gate pre-activation of each write, scalar or ``(N,)`` or ``(B, N)``;
            0 means input gate ``exp(0) = 1``.
        fgate_preact: forget-gate pre-activation of each write (scalar, ``(N,)`` or ``(B, N)``);
            the default 20 gives ``sigmoid(20) = 1 - 2e-9``, practically no forgetting.
        eps: the cell's ``eps`` (added to the normalizer).
        return_state: also return the memory state ``(c_state (B, DHQK, DHV), n_state (B, DHQK),
            m_state (B,))`` after the reads (equal to the state after the writes).

    Returns:
        ``retrieved (..., M, DHV)`` (shaped like ``values`` for the default queries):
        ``retrieved[..., j, :]`` is the cell's output ``h`` when queried with ``queries[..., j, :]``
        after all ``N`` writes. With ``return_state``: ``(retrieved, state)``.
    """
    keys = np.asarray(keys)
    values = np.asarray(values)
    queries = keys if queries is None else np.asarray(queries)
    single = keys.ndim == 2
    if single:
        keys, values, queries = keys[None], values[None], queries[None]
    if keys.ndim != 3 or values.ndim != 3 or keys.shape[:2] != values.shape[:2]:
        raise ValueError("keys (B, N, DHQK) and values (B, N, DHV) must agree in B and N, "
                         f"got {keys.shape} and {values.shape}")
    if queries.ndim != 3 or queries.shape[0] != keys.shape[0] or queries.shape[2] != keys.shape[2]:
        raise ValueError(f"queries must be (B, M, DHQK) like keys {keys.shape}, got {queries.shape}")
    dtype = np.result_type(keys.dtype, values.dtype, queries.dtype, np.float32)
    B, N, DHQK = keys.shape
    M, DHV = queries.shape[1], values.shape[-1]
    # One sequence of N + M steps per memory: N writes, then M reads. NH = 1 head.
    q = np.zeros((B, 1, N + M, DHQK), dtype)
    k = np.zeros((B, 1, N + M, DHQK), dtype)
    v = np.zeros((B, 1, N + M, DHV), dtype)
    i_pre = np.zeros((B, 1, N + M), dtype)
    f_pre = np.full((B, 1, N + M), READ_FGATE_PREACT, dtype)
    k[:, 0, :N] = keys  # writes: k_j, v_j
    v[:, 0, :N] = values
    i_pre[:, 0, :N] = _per_pair(igate_preact, B, N, dtype)
    f_pre[:, 0, :N] = _per_pair(fgate_preact, B, N, dtype)
    q[:, 0, N:] = queries * math.sqrt(DHQK)  # reads: q = sqrt(DHQK) k_j (or query j), k = v = 0
    h, (c, n, m) = mlstm.recurrent(q, k, v, i_pre, f_pre, return_state=True, eps=eps)
    retrieved = h[:, 0, N:]  # (B, N, DHV)
    state = (c[:, 0], n[:, 0], m[:, 0])
    if single:
        retrieved = retrieved[0]
        state = tuple(s[0] for s in state)
    return (retrieved, state) if return_state else retrieved


def memory_matrix(state):
    """The memory ``C = exp(m) C~`` in true (unstabilized) units from a state ``(c, n, m)``."""
    c, _, m = state
    return c * np.exp(np.asarray(m))[..., None, None]


def relative_error(retrieved, values):
    """``||h_j - v_j|| / ||v_j||`` for every pair (last axis is the value dimension)."""
    return np.linalg.norm(retrieved - values, axis=-1) / np.linalg.norm(values, axis=-1)


def cosine_distance(retrieved, values):
    """``1 - cos(h_j, v_j)`` for every pair: 0 for the right direction, whatever the length."""
    num = np.sum(retrieved * values, axis=-1)
    den = np.linalg.norm(retrieved, axis=-1) * np.linalg.norm(values, axis=-1)
    return 1.0 - num / den


def crosstalk_theory(N, d):
    """Expected cosine distance for ``N`` random unit keys in ``d`` dims (values random, unit).

    Reading with ``k_j`` gives ``v_j + e`` with ``E ||e||^2 = (N - 1) / d`` (each ``k_j . k_l`` has
    variance ``1/d``), so ``cos ~ 1 / sqrt(1 + (N - 1) / d)``. An approximation (it averages the
    norm before the ratio), good enough to show that the error depends on ``N / d``.
    """
    N = np.asarray(N, dtype=float)
    return 1.0 - 1.0 / np.sqrt(1.0 + (N - 1.0) / d)


def retrieval_error_curve(ds, Ns, seed=0, n_trials=8, min_samples=1024, metric="cosine"):
    """Mean retrieval error for random unit keys and values, for each head dim ``d`` and count ``N``.

    Args:
        ds: head dimensions (``DHQK = DHV = d``).
        Ns: numbers of stored pairs.
        seed: seed of the numpy generator (keys and values).
        n_trials: independent memories per ``(d, N)``, run as one batch; at least this many, and
            more for small ``N``, so that each setting averages over ``>= min_samples`` retrievals.
        min_samples: minimum number of retrieved pairs averaged per setting.
        metric: ``"cosine"`` (:func:`cosine_distance`) or ``"relative"`` (:func:`relative_error`).

    Returns:
        ``errors (len(ds), len(Ns))``: the error averaged over pairs and trials.
    """
    metrics = {"cosine": cosine_distance, "relative": relative_error}
    if metric not in metrics:
        raise ValueError(f"metric must be one of {sorted(metrics)}, got {metric!r}")
    rng = np.random.default_rng(seed)
    errors = np.empty((len(ds), len(Ns)))
    for a, d in enumerate(ds):
        for b, N in enumerate(Ns):
            trials = max(n_trials, -(-min_samples // N))  # ceil(min_samples / N)
            keys = random_unit_vectors((trials, N, d), rng)
            values = random_unit_vectors((trials, N, d), rng)
            errors[a, b] = metrics[metric](store_and_retrieve(keys, values), values).mean()
    return errors


def capacity(errors, Ns, threshold):
    """Per row of ``errors (len(ds), len(Ns))``: the ``N`` where the error first reaches ``threshold``.

    Interpolated linearly in ``log N`` and ``log error`` between the two grid points around the
    crossing; ``nan`` where the row never crosses. ``Ns`` must be increasing.
    """
    logN = np.log(np.asarray(Ns, dtype=float))
    out = np.full(len(errors), np.nan)
    for a, row in enumerate(np.asarray(errors, dtype=float)):
        above = np.nonzero(row >= threshold)[0]
        if len(above) == 0:
            continue
        b = above[0]
        if b == 0:
            out[a] = Ns[0]
            continue
        e0, e1 = np.log(row[b - 1]), np.log(row[b])
        w = (np.log(threshold) - e0) / (e1 - e0)
        out[a] = np.exp(logN[b - 1] + w * (logN[b] - logN[b - 1]))
    return out


# --- the chapter's memory explorer --------------------------------------------------------------------


def make_pairs(d, n_pairs, keys="one-hot", seed=0):
    """Keys ``(n_pairs, d)`` and values ``(n_pairs, d)`` for the memory explorer.

    ``keys="one-hot"``: pair ``j`` has key ``e_{j mod d}`` (orthogonal while ``n_pairs <= d``; after
    that, pair ``j + d`` shares its key with pair ``j`` and the two values add up in the same row of C).
    ``keys="random"``: random unit keys. Values are random unit vectors. The first pairs do not depend on
    ``n_pairs``, so adding pairs keeps the old ones.
    """
    if keys not in ("one-hot", "random"):
        raise ValueError(f"keys must be 'one-hot' or 'random', got {keys!r}")
    rng = np.random.default_rng(seed)
    # Draw a fixed pool (4d pairs, or more if asked) so the first pairs never change with n_pairs.
    pool = max(4 * d, n_pairs)
    values = random_unit_vectors((pool, d), rng)[:n_pairs]
    if keys == "one-hot":
        k = np.eye(d)[np.arange(n_pairs) % d]
    else:
        k = random_unit_vectors((pool, d), rng)[:n_pairs]
    return k, values


def explorer_data(d=16, n_pairs=8, fgate_preact=3.0, newest_igate_preact=0.0, keys="one-hot", seed=0):
    """Store ``n_pairs`` pairs (input gate pre-activation 0, the newest one ``newest_igate_preact``;
    forget pre-activation ``fgate_preact`` for all), read each back with its key.

    Returns a dict with ``C (d, d)`` (the memory in true units, rows = key dims, columns = value dims),
    ``relative_error (n_pairs,)``, ``cosine_distance (n_pairs,)``, ``age (n_pairs,)`` (writes after
    pair ``j``: ``n_pairs - 1 - j``), ``forget`` (``sigmoid(fgate_preact)``) and ``forgetting_only``
    (``1 - forget^age``: the relative error that forgetting alone causes, with orthogonal keys).
    """
    k, v = make_pairs(d, n_pairs, keys, seed)
    i_pre = np.zeros(n_pairs)
    i_pre[-1] = newest_igate_preact
    retrieved, state = store_and_retrieve(k, v, igate_preact=i_pre, fgate_preact=fgate_preact,
                                          return_state=True)
    age = np.arange(n_pairs)[::-1]
    forget = float(sigmoid(np.float64(fgate_preact)))
    return dict(
        C=memory_matrix(state),
        relative_error=relative_error(retrieved, v),
        cosine_distance=cosine_distance(retrieved, v),
        age=age,
        forget=forget,
        forgetting_only=1.0 - forget ** age,
    )


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
