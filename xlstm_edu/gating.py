"""Exponential gating and the stabilizer, shared by the sLSTM and the mLSTM.

The xLSTM input gate is ``i_t = exp(igate_preact)`` and the forget gate ``f_t = sigmoid(fgate_preact)``
(used in log space, ``log f_t = logsigmoid(fgate_preact)``). Exponentials overflow, so the cells carry a
stabilizer state ``m_t`` (Beck et al. 2024, eq. 15-17)::

    m_t  = max(log f_t + m_{t-1}, igate_preact_t)
    i'_t = exp(igate_preact_t - m_t)
    f'_t = exp(log f_t + m_{t-1} - m_t)

``i'`` and ``f'`` are at most 1, so nothing overflows; the states are scaled by ``exp(-m_t)`` and every
output is unchanged in exact arithmetic. The mLSTM reads its memory out through the stabilized
normalizer :func:`normalizer` (the paper's ``max(|n^T q|, 1)`` in the same scaled units).

Every formula is written once for arrays (numpy or torch, chosen by the input) and, by design, once
more as a scalar numba function (``*_scalar``) for the compiled cell loops; the tests check each
pair equal.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit


def sigmoid(x):
    """``1 / (1 + exp(-x))`` without overflow, for numpy arrays (dtype kept) or torch tensors."""
    if isinstance(x, torch.Tensor):
        return torch.sigmoid(x)
    x = np.asarray(x)
    return np.exp(-np.logaddexp(0.0, -x)).astype(x.dtype if x.dtype.kind == "f" else np.float64,
                                                  copy=False)


def log_sigmoid(x):
    """``log(sigmoid(x))`` computed without overflow, for numpy arrays or torch tensors."""
    if isinstance(x, torch.Tensor):
        return F.logsigmoid(x)
    return -np.logaddexp(0.0, -x)


def stabilized_gates(igate_preact, log_fgate, m_prev):
    """One stabilizer step. Returns ``(i_act, f_act, m_new)`` = ``(i'_t, f'_t, m_t)``.

    All arguments broadcast together (numpy or torch). ``log f + m_prev`` is formed first so that
    ``i'`` and ``f'`` are at most 1 exactly, also in floating point (``x - max(x, y) <= 0``).
    ``m_prev = -inf`` (no state yet) gives ``m_new = igate_preact`` and ``f_act = 0``.
    """
    logf_plus_m = log_fgate + m_prev
    if isinstance(igate_preact, torch.Tensor):
        m_new = torch.maximum(logf_plus_m, igate_preact)
        return torch.exp(igate_preact - m_new), torch.exp(logf_plus_m - m_new), m_new
    m_new = np.maximum(logf_plus_m, igate_preact)
    return np.exp(igate_preact - m_new), np.exp(logf_plus_m - m_new), m_new


def normalizer(qn, m, eps):
    """The mLSTM readout denominator ``max(|q . n|, exp(-m)) + eps`` (numpy or torch).

    ``qn`` is ``q . n`` in stabilized units (``n`` scaled by ``exp(-m)``): the floor ``exp(-m)`` is the
    paper's ``1`` in those units. ``eps`` sits outside the max, as in the official ``mlstm_kernels``.
    """
    if isinstance(qn, torch.Tensor):
        return torch.maximum(qn.abs(), torch.exp(-m)) + eps
    return np.maximum(np.abs(qn), np.exp(-m)) + eps


def unstabilized_gates(igate_preact, fgate_preact):
    """The textbook gates ``(exp(igate_preact), sigmoid(fgate_preact))``: overflow for large inputs.

    ``exp`` overflows float32 above ~88.7 and float16 above ~11.1; shown in the book, never used by
    the cells.
    """
    if isinstance(igate_preact, torch.Tensor):
        return torch.exp(igate_preact), sigmoid(fgate_preact)
    with np.errstate(over="ignore"):
        return np.exp(igate_preact), sigmoid(fgate_preact)


# --- numba scalar versions, called from the compiled cell loops ------------------------------------


@njit(cache=True, inline="always")
def sigmoid_scalar(x):
    """Scalar :func:`sigmoid` for numba code."""
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, inline="always")
def log_sigmoid_scalar(x):
    """Scalar ``log(sigmoid(x))`` for numba code: ``-log1p(exp(-x))``, rearranged for x < 0."""
    if x >= 0:
        return -math.log1p(math.exp(-x))
    return x - math.log1p(math.exp(x))


@njit(cache=True, inline="always")
def stabilized_gates_scalar(igate_preact, log_fgate, m_prev):
    """Scalar :func:`stabilized_gates` for numba code. Returns ``(i_act, f_act, m_new)``."""
    logf_plus_m = log_fgate + m_prev
    m_new = max(logf_plus_m, igate_preact)
    return math.exp(igate_preact - m_new), math.exp(logf_plus_m - m_new), m_new


@njit(cache=True, inline="always")
def normalizer_scalar(qn, m, eps):
    """Scalar :func:`normalizer` for numba code."""
    return max(abs(qn), math.exp(-m)) + eps
