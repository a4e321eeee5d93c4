"""The mLSTM in its parallel form: all time steps at once, like attention with a decay mask.

Unrolling the recurrence gives ``h_t = sum_s D_ts (q_t . k_s / sqrt(d)) v_s / normalizer`` with the
gate decay matrix (Beck et al. 2024, appendix)::

    log D_ts = sum_{r=s+1..t} logsigmoid(fgate_preact_r) + igate_preact_s   for s <= t, -inf otherwise

The stabilizer is the row maximum ``m_t = max_s log D_ts``; ``D' = exp(log D - m)`` is at most 1.
The parallel form has no initial state (``m_0 = -inf``). Memory and time grow as ``S^2``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..gating import log_sigmoid, normalizer
from ._validate import validate_qkv_gates


def log_decay_matrix(log_fgate, igate_preact):
    """``log D`` with shape ``(..., S, S)`` from ``log_fgate, igate_preact`` of shape ``(..., S)``.

    The stable construction: entry ``(t, s)`` is a cumulative sum over exactly the terms
    ``r = s+1..t``, taken down the columns of a strictly lower-triangular matrix, so no large
    partial sums are ever subtracted (compare :func:`log_decay_matrix_cumsum_difference`).
    """
    S = log_fgate.shape[-1]
    if isinstance(log_fgate, torch.Tensor):
        strict_lower = torch.ones(S, S, dtype=torch.bool, device=log_fgate.device).tril(-1)
        lower = torch.ones(S, S, dtype=torch.bool, device=log_fgate.device).tril()
        # entry (r, s) = log f_r for r > s: (..., S, S); cumsum over r gives sum_{r=s+1..t}
        lf_rows = torch.where(strict_lower, log_fgate[..., :, None], 0.0)
        log_d = lf_rows.cumsum(-2) + igate_preact[..., None, :]
        return torch.where(lower, log_d, -math.inf)
    strict_lower = np.tri(S, S, -1, dtype=bool)
    lower = np.tri(S, S, 0, dtype=bool)
    lf_rows = np.where(strict_lower, log_fgate[..., :, None], 0.0).astype(log_fgate.dtype)
    log_d = np.cumsum(lf_rows, axis=-2) + igate_preact[..., None, :]
    return np.where(lower, log_d, -np.inf).astype(log_fgate.dtype)


def log_decay_matrix_cumsum_difference(log_fgate, igate_preact):
    """The cheaper but inaccurate ``log D``: ``F_t - F_s + igate_preact_s`` with ``F = cumsum(log f)``.

    ``F_t`` grows like ``t * mean(log f)``; subtracting two large, nearly equal sums loses the small
    difference in float32. Kept to show the pitfall; the package uses :func:`log_decay_matrix`.
    """
    S = log_fgate.shape[-1]
    if isinstance(log_fgate, torch.Tensor):
        cum = log_fgate.cumsum(-1)
        lower = torch.ones(S, S, dtype=torch.bool, device=log_fgate.device).tril()
        log_d = cum[..., :, None] - cum[..., None, :] + igate_preact[..., None, :]
        return torch.where(lower, log_d, -math.inf)
    cum = np.cumsum(log_fgate, axis=-1)
    log_d = cum[..., :, None] - cum[..., None, :] + igate_preact[..., None, :]
    return np.where(np.tri(S, S, 0, dtype=bool), log_d, -np.inf).astype(log_fgate.dtype)


def parallel_numpy(q, k, v, igate_preact, fgate_preact, eps=1e-6):
    """Reference parallel form in numpy. Returns ``h (B, NH, S, DHV)``."""
    DHQK = q.shape[-1]
    log_d = log_decay_matrix(log_sigmoid(fgate_preact), igate_preact)  # (B, NH, S, S)
    m = log_d.max(axis=-1, keepdims=True)  # (B, NH, S, 1) stabilizer
    d_stab = np.exp(log_d - m)  # D' <= 1
    c_tilde = (q @ np.swapaxes(k, -1, -2)) / math.sqrt(DHQK) * d_stab  # (B, NH, S, S)
    return (c_tilde / normalizer(c_tilde.sum(-1, keepdims=True), m, eps)) @ v


def parallel_torch(q, k, v, igate_preact, fgate_preact, eps=1e-6, log_decay_fn=None):
    """Parallel form in torch (differentiable, any device/dtype). Returns ``h (B, NH, S, DHV)``.

    ``log_decay_fn(log_fgate, igate_preact) -> log D`` defaults to :func:`log_decay_matrix`; the
    book passes :func:`log_decay_matrix_cumsum_difference` to show its float32 error.
    """
    DHQK = q.shape[-1]
    log_decay_fn = log_decay_matrix if log_decay_fn is None else log_decay_fn
    log_d = log_decay_fn(F.logsigmoid(fgate_preact), igate_preact)  # (B, NH, S, S)
    m = log_d.amax(dim=-1, keepdim=True)  # (B, NH, S, 1)
    c_tilde = (q @ k.transpose(-1, -2)) * (DHQK**-0.5) * torch.exp(log_d - m)  # (B, NH, S, S)
    return (c_tilde / normalizer(c_tilde.sum(-1, keepdim=True), m, eps)) @ v


def parallel(q, k, v, igate_preact, fgate_preact, *, eps=1e-6):
    """mLSTM, parallel form (no initial state). Same shapes and conventions as
    :func:`xlstm_edu.mlstm.recurrent`; returns ``h (B, NH, S, DHV)``.

    Torch in gives torch out (differentiable); numpy in gives numpy out. Memory grows as ``S^2``:
    use :func:`xlstm_edu.mlstm.chunkwise` for long sequences.
    """
    backend = validate_qkv_gates(q, k, v, igate_preact, fgate_preact)
    if backend == "torch":
        return parallel_torch(q, k, v, igate_preact, fgate_preact, eps)
    return parallel_numpy(q, k, v, igate_preact, fgate_preact, eps)
