"""minGRU and minLSTM: recurrences whose gates do not read ``h_{t-1}``, so a scan computes them.

Feng et al. 2024 ("Were RNNs all we needed?") drop the hidden state from the gates and the tanh from
the candidate. With pre-activations ``k = W x_t + b`` given, ``D`` independent units per row::

    minGRU:   z_t = sigmoid(k_z)                       h~_t = g(k_h)
              h_t = (1 - z_t) h_{t-1} + z_t h~_t
    minLSTM:  f_t = sigmoid(k_f)   i_t = sigmoid(k_i)   h~_t = g(k_h)
              f'_t = f_t / (f_t + i_t)   i'_t = i_t / (f_t + i_t)
              h_t = f'_t h_{t-1} + i'_t h~_t

with ``g(x) = x + 1/2`` for ``x >= 0`` and ``sigmoid(x)`` else (positive, so ``log g`` exists).
Both are ``h_t = a_t h_{t-1} + b_t`` with ``a_t, b_t > 0`` known in advance, whose solution is::

    h_t = A_t h_0 + sum_{k <= t} (A_t / A_k) b_k,      A_t = a_1 ... a_t
    log-space:  a*_t = cumsum(log a)_t,   h_t = exp(a*_t) h_0 + exp(a*_t + logcumsumexp(log b - a*)_t)

(the paper's ``parallel_scan_log``): one cumulative sum and one ``logcumsumexp`` over the sequence, no
loop. The log gates are softplus expressions: ``log z = -softplus(-k_z)``, ``log(1 - z) =
-softplus(k_z)``; for minLSTM, with ``d = softplus(-k_f) - softplus(-k_i) = log(i / f)``,
``log f' = -softplus(d)`` and ``log i' = -softplus(-d)``.

``h_0`` (default 0) is taken *as given*, the state itself: the paper passes it through ``g``, which
would make the final state of one call differ from the initial state the next call needs. Here it
enters the scan linearly (the ``exp(a*_t) h_0`` term above), so any real ``h_0`` works and
``mingru(x[:, :a], return_state=True)`` chained into ``mingru(x[:, a:], initial_state=...)`` equals
one call on ``x``.

Forms: ``"sequential"`` is the recurrence as written (numpy: a numba loop; torch: a Python loop
over steps, differentiable); ``"parallel"`` is the log-space scan (numpy and torch; in torch on the
CPU the ``logcumsumexp`` runs forward and backward in numba, :class:`_LogCumSumExp`, elsewhere
``torch.logcumsumexp``). The sequential gates use stable sigmoids (``f' = sigmoid(log f - log i)``,
equal to ``f / (f + i)``) so that extreme pre-activations do not give ``0 / 0``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit
from torch.autograd.function import once_differentiable

from ._checks import backend_of, check_choice, check_float, check_ndim, check_same_dtype, check_shape
from .gating import log_sigmoid, sigmoid

FORMS = ("parallel", "sequential")


# --- the pieces, for numpy arrays or torch tensors ------------------------------------------------

def _softplus(x):
    """``log(1 + exp(x))`` to full precision (torch's ``F.softplus`` returns ``x`` above 20)."""
    if isinstance(x, torch.Tensor):
        return -F.logsigmoid(-x)
    return np.logaddexp(0.0, x).astype(x.dtype, copy=False)


def g(x):
    """The candidate activation ``x + 1/2`` for ``x >= 0``, ``sigmoid(x)`` else (continuous, > 0)."""
    if isinstance(x, torch.Tensor):
        return torch.where(x >= 0, x + 0.5, torch.sigmoid(torch.clamp(x, max=0.0)))
    return np.where(x >= 0, x + 0.5, np.exp(-np.logaddexp(0.0, -np.minimum(x, 0.0)))).astype(
        x.dtype, copy=False)


def log_g(x):
    """``log g(x)``: ``log(x + 1/2)`` for ``x >= 0``, ``-softplus(-x)`` else (the paper's ``log_g``)."""
    if isinstance(x, torch.Tensor):
        return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), F.logsigmoid(x))
    return np.where(x >= 0, np.log(np.maximum(x, 0.0) + 0.5), -np.logaddexp(0.0, -x)).astype(
        x.dtype, copy=False)


def mingru_log_coeffs(k_z, k_h):
    """``(log a, log b)`` of minGRU: ``log(1 - z) = -softplus(k_z)``, ``log z + log g(k_h)``."""
    return -_softplus(k_z), -_softplus(-k_z) + log_g(k_h)


def minlstm_log_coeffs(k_f, k_i, k_h):
    """``(log f', log i' + log g(k_h))`` of minLSTM, ``f' = f / (f + i)`` in log space."""
    d = _softplus(-k_f) - _softplus(-k_i)  # log(i / f)
    return -_softplus(d), -_softplus(-d) + log_g(k_h)


@njit(cache=True)
def _logcumsumexp_forward(x):
    """``y[:, t] = log(sum_{k <= t} exp(x[:, k]))`` along axis 1 of ``x (B, S, D)``, one pass."""
    B, S, D = x.shape
    y = np.empty_like(x)
    for bi in range(B):
        for d in range(D):
            y[bi, 0, d] = x[bi, 0, d]
        for t in range(1, S):
            for d in range(D):
                u, v = y[bi, t - 1, d], x[bi, t, d]
                m = max(u, v)
                y[bi, t, d] = m if m == -np.inf else m + math.log1p(math.exp(-abs(u - v)))
    return y


@njit(cache=True, inline="always")
def _share(x, y):
    """``exp(x - y)``, the share of ``exp(x)`` in ``exp(y)``; 0 for ``x = -inf``."""
    return 0.0 if x == -np.inf else math.exp(x - y)


@njit(cache=True)
def _logcumsumexp_backward(g, x, y):
    """``dx_k = sum_{t >= k} g_t exp(x_k - y_t) = exp(x_k - y_k) Q_k`` with
    ``Q_k = g_k + exp(y_k - y_{k+1}) Q_{k+1}`` (``y`` never decreases: every factor is <= 1)."""
    B, S, D = x.shape
    dx = np.empty_like(x)
    for bi in range(B):
        q = g[bi, S - 1].copy()
        for d in range(D):
            dx[bi, S - 1, d] = _share(x[bi, S - 1, d], y[bi, S - 1, d]) * q[d]
        for k in range(S - 2, -1, -1):
            for d in range(D):
                q[d] = g[bi, k, d] + math.exp(y[bi, k, d] - y[bi, k + 1, d]) * q[d]
                dx[bi, k, d] = _share(x[bi, k, d], y[bi, k, d]) * q[d]
    return dx


class _LogCumSumExp(torch.autograd.Function):
    """``torch.logcumsumexp(x, dim=1)`` for CPU float32/float64 tensors, forward and backward in
    numba (one pass each; torch's CPU version is several times slower along a strided axis)."""

    @staticmethod
    def forward(ctx, x):
        y = torch.from_numpy(_logcumsumexp_forward(x.detach().contiguous().numpy()))
        ctx.save_for_backward(x, y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        return torch.from_numpy(_logcumsumexp_backward(
            g.contiguous().numpy(), x.detach().contiguous().numpy(), y.numpy()))


def logcumsumexp(x):
    """``log(cumsum(exp(x)))`` along axis 1 (``S`` of ``(B, S, D)``) without overflow: numpy
    (``np.logaddexp.accumulate``) or torch (differentiable; on the CPU in float32/float64 the
    compiled :class:`_LogCumSumExp`, elsewhere ``torch.logcumsumexp``)."""
    if not isinstance(x, torch.Tensor):
        return np.logaddexp.accumulate(x, axis=1)
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
        return _LogCumSumExp.apply(x)
    return torch.logcumsumexp(x, dim=1)


def scan_log(log_a, log_b, h_0=None):
    """``h_t = a_t h_{t-1} + b_t`` for all t at once, from ``log a, log b (B, S, D)`` and ``h_0 (B, D)``.

    ``a*_t = cumsum(log a)``; ``h_t = exp(a*_t + logcumsumexp(log b - a*)_t) + exp(a*_t) h_0``.
    Numpy or torch (differentiable); the sum runs along ``S`` (axis 1).
    """
    if isinstance(log_a, torch.Tensor):
        a_star = torch.cumsum(log_a, dim=1)
        h = torch.exp(a_star + logcumsumexp(log_b - a_star))
        return h if h_0 is None else h + torch.exp(a_star) * h_0[:, None, :]
    a_star = np.cumsum(log_a, axis=1)
    h = np.exp(a_star + logcumsumexp(log_b - a_star))
    return h if h_0 is None else h + np.exp(a_star) * h_0[:, None, :]


# --- sequential forms -----------------------------------------------------------------------------

def mingru_coeffs(k_z, k_h):
    """``(a, b)`` of minGRU, ``h_t = a_t h_{t-1} + b_t``: ``(1 - z, z g(k_h))``, ``z = sigmoid(k_z)``.

    ``1 - z`` is computed as ``sigmoid(-k_z)`` (no cancellation for large ``k_z``).
    """
    return sigmoid(-k_z), sigmoid(k_z) * g(k_h)


def minlstm_coeffs(k_f, k_i, k_h):
    """``(a, b)`` of minLSTM: ``(f', i' g(k_h))``, ``f' = f / (f + i)``, ``i' = i / (f + i)``.

    Written as ``f' = sigmoid(log f - log i)`` (the same number; no ``0 / 0`` when both gates
    underflow).
    """
    d = log_sigmoid(k_i) - log_sigmoid(k_f)  # log(i / f)
    return sigmoid(-d), sigmoid(d) * g(k_h)


def mingru_step(k_z, k_h, h_prev):
    """One minGRU step, ``(B, D)`` each (numpy or torch): ``(1 - z) h_prev + z g(k_h)``."""
    a, b = mingru_coeffs(k_z, k_h)
    return a * h_prev + b


def minlstm_step(k_f, k_i, k_h, h_prev):
    """One minLSTM step, ``(B, D)`` each: ``f' h_prev + i' g(k_h)``."""
    a, b = minlstm_coeffs(k_f, k_i, k_h)
    return a * h_prev + b


@njit(cache=True)
def _linear_recurrence_numba(a, b, h):
    """``h <- a_t h + b_t`` over ``t``: a, b ``(B, S, D)``, h ``(B, D)`` updated in place."""
    B, S, D = a.shape
    out = np.empty((B, S, D), dtype=a.dtype)
    for bi in range(B):
        for t in range(S):
            for d in range(D):
                h[bi, d] = a[bi, t, d] * h[bi, d] + b[bi, t, d]
                out[bi, t, d] = h[bi, d]
    return out


def linear_recurrence(a, b, h_0=None):
    """The loop ``h_t = a_t h_{t-1} + b_t``, a, b ``(B, S, D)``, h_0 ``(B, D)`` (default 0).

    Torch: a Python loop over steps (differentiable); numpy: the compiled loop.
    """
    B, S, D = a.shape
    if isinstance(a, torch.Tensor):
        h = h_0 if h_0 is not None else a.new_zeros(B, D)
        outs = []
        # unbind, not a[:, t]: the backward of S slices would write S full-size gradients, O(S^2)
        for a_t, b_t in zip(a.unbind(1), b.unbind(1)):  # (B, D) each
            h = a_t * h + b_t
            outs.append(h)
        return torch.stack(outs, dim=1)
    h = np.zeros((B, D), a.dtype) if h_0 is None else np.array(h_0, dtype=a.dtype, copy=True)
    return _linear_recurrence_numba(np.ascontiguousarray(a), np.ascontiguousarray(b), h)


# --- public functions -----------------------------------------------------------------------------

def _validate(names_arrays: dict, initial_state, form) -> None:
    check_choice("form", form, FORMS)
    backend_of(**names_arrays, initial_state=initial_state)
    first, x = next(iter(names_arrays.items()))
    check_ndim(first, x, 3, "(B, S, D)")
    B, S, D = x.shape
    if min(B, S, D) < 1:
        raise ValueError(f"{first} must have non-empty dimensions (B, S, D), got {tuple(x.shape)}")
    for name, a in names_arrays.items():
        check_shape(name, a, (B, S, D), "(B, S, D)")
    if initial_state is not None:
        check_shape("initial_state", initial_state, (B, D), "(B, D)")
    for name, a in {**names_arrays, "initial_state": initial_state}.items():
        if a is not None:
            check_float(name, a)
    check_same_dtype(**names_arrays, initial_state=initial_state)


def mingru(k_z, k_h, *, form="parallel", initial_state=None, return_state=False):
    """minGRU over a sequence: ``h_t = (1 - sigmoid(k_z)) h_{t-1} + sigmoid(k_z) g(k_h)``.

    Args:
        k_z, k_h: pre-activations of the update gate and of the candidate, ``(B, S, D)``.
        form: ``"parallel"`` (log-space scan) or ``"sequential"`` (the loop); equal results.
        initial_state: ``h_0 (B, D)``, the state itself (default 0; see the module docstring).
        return_state: also return ``h_S (B, D)``.

    Returns ``h (B, S, D)``, or ``(h, h_S)``. Numpy in, numpy out; torch in, torch out
    (differentiable, same device and dtype).
    """
    _validate({"k_z": k_z, "k_h": k_h}, initial_state, form)
    if form == "parallel":
        h = scan_log(*mingru_log_coeffs(k_z, k_h), initial_state)
    else:
        h = linear_recurrence(*mingru_coeffs(k_z, k_h), initial_state)
    return (h, h[:, -1]) if return_state else h


def minlstm(k_f, k_i, k_h, *, form="parallel", initial_state=None, return_state=False):
    """minLSTM over a sequence: ``h_t = f'_t h_{t-1} + i'_t g(k_h)``, ``f' = f / (f + i)``.

    Args:
        k_f, k_i, k_h: pre-activations of the forget gate, the input gate and the candidate,
            ``(B, S, D)``.
        form, initial_state, return_state: as :func:`mingru`.

    Returns ``h (B, S, D)``, or ``(h, h_S)``.
    """
    _validate({"k_f": k_f, "k_i": k_i, "k_h": k_h}, initial_state, form)
    if form == "parallel":
        h = scan_log(*minlstm_log_coeffs(k_f, k_i, k_h), initial_state)
    else:
        h = linear_recurrence(*minlstm_coeffs(k_f, k_i, k_h), initial_state)
    return (h, h[:, -1]) if return_state else h
