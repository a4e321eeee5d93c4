"""The mLSTM in its recurrent form: one step at a time, constant memory (Beck et al. 2024, sec. 2.3).

Conventions of the official ``mlstm_kernels`` (see the notation page): q, k ``(B, NH, S, DHQK)``,
v ``(B, NH, S, DHV)``, gate pre-activations ``(B, NH, S)``; input gate ``exp``, forget gate
``sigmoid`` in log space; ``1/sqrt(DHQK)`` applied to q inside; memory stored as ``C = sum k v^T``
``(DHQK, DHV)`` and read out as ``q^T C``; stabilizer state ``m`` starts at 0.

Three implementations of the same step:

* :func:`step_numpy` / :func:`recurrent_numpy`: the reference, the math as code;
* :func:`_recurrent_numba`: the same loop compiled with numba, parallel over batch x heads;
* :func:`step_torch` / :func:`recurrent_torch`: differentiable, on any device and dtype.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit, prange

from .._numba import call_with_threads
from ..gating import (
    log_sigmoid,
    log_sigmoid_scalar,
    normalizer,
    normalizer_scalar,
    stabilized_gates,
    stabilized_gates_scalar,
)
from ._validate import validate_qkv_gates


def zero_state(B, NH, DHQK, DHV, like, *, empty=False):
    """The initial state ``(c_state, n_state, m_state)`` with the dtype/device of ``like``.

    ``c = 0``, ``n = 0`` and ``m = 0``, the official ``mlstm_kernels``' default for the recurrent and
    chunkwise forms (so the forms match them bit for bit). ``empty=True`` gives ``m = -inf`` instead:
    the empty state (no write yet), which the parallel form implies and the blocks start from. The two
    give the same ``h`` in exact arithmetic (``m`` cancels) and differ by a relative ``eps * exp(m)``
    with ``eps`` outside the max; the notation page, section "Initial stabilizer", explains it.
    """
    m_0 = -math.inf if empty else 0.0
    if isinstance(like, torch.Tensor):
        kw = dict(dtype=like.dtype, device=like.device)
        return (torch.zeros(B, NH, DHQK, DHV, **kw), torch.zeros(B, NH, DHQK, **kw),
                torch.full((B, NH), m_0, **kw))
    return (np.zeros((B, NH, DHQK, DHV), like.dtype), np.zeros((B, NH, DHQK), like.dtype),
            np.full((B, NH), m_0, like.dtype))


def step_numpy(c_state, n_state, m_state, q, k, v, igate_preact, fgate_preact, eps=1e-6):
    """One mLSTM step in numpy, batched over ``(B, NH)``.

    c_state ``(B, NH, DHQK, DHV)``, n_state ``(B, NH, DHQK)``, m_state ``(B, NH)``;
    q, k ``(B, NH, DHQK)``, v ``(B, NH, DHV)``, gates ``(B, NH)``. Returns ``h (B, NH, DHV), state``.
    """
    DHQK = q.shape[-1]
    i_act, f_act, m_state = stabilized_gates(igate_preact, log_sigmoid(fgate_preact), m_state)
    # C_t = f' C_{t-1} + i' k v^T ;  n_t = f' n_{t-1} + i' k
    c_state = f_act[..., None, None] * c_state + i_act[..., None, None] * (
        k[..., :, None] * v[..., None, :])
    n_state = f_act[..., None] * n_state + i_act[..., None] * k
    q_scaled = q / math.sqrt(DHQK)
    h_num = np.einsum("bhd,bhdv->bhv", q_scaled, c_state)  # q^T C: (B, NH, DHV)
    qn = np.einsum("bhd,bhd->bh", q_scaled, n_state)  # (B, NH)
    return h_num / normalizer(qn, m_state, eps)[..., None], (c_state, n_state, m_state)


def recurrent_numpy(q, k, v, igate_preact, fgate_preact, initial_state=None, eps=1e-6):
    """Reference loop over :func:`step_numpy`. Returns ``h (B, NH, S, DHV), state``."""
    B, NH, S, DHQK = q.shape
    DHV = v.shape[-1]
    state = initial_state if initial_state is not None else zero_state(B, NH, DHQK, DHV, q)
    h = np.empty((B, NH, S, DHV), dtype=q.dtype)
    for t in range(S):
        h[:, :, t], state = step_numpy(*state, q[:, :, t], k[:, :, t], v[:, :, t],
                                       igate_preact[:, :, t], fgate_preact[:, :, t], eps)
    return h, state


@njit(cache=True, parallel=True, fastmath=False)
def _recurrent_numba(q, k, v, igate_preact, fgate_preact, c_state, n_state, m_state, scale, eps):
    """Compiled loop over time. Inputs are flattened to ``BH = B * NH`` rows; states update in place.

    q, k ``(BH, S, DHQK)``, v ``(BH, S, DHV)``, gates ``(BH, S)``; c ``(BH, DHQK, DHV)``,
    n ``(BH, DHQK)``, m ``(BH,)``. Each (batch, head) row is independent: ``prange`` spreads them
    over the cores. One pass over C per step both updates it and reads it out. ``scale`` and
    ``eps`` come in the input dtype so that float32 stays float32 inside the loop.
    """
    BH, S, DHQK = q.shape
    DHV = v.shape[2]
    h = np.empty((BH, S, DHV), dtype=q.dtype)
    zero = eps - eps  # a zero of the input dtype
    for bh in prange(BH):
        C = c_state[bh]
        n = n_state[bh]
        m = m_state[bh]
        h_row = np.empty(DHV, dtype=q.dtype)
        for t in range(S):
            i_act, f_act, m = stabilized_gates_scalar(
                igate_preact[bh, t], log_sigmoid_scalar(fgate_preact[bh, t]), m)
            h_row[:] = zero
            qn = zero
            for a in range(DHQK):
                qa = q[bh, t, a] * scale
                ika = i_act * k[bh, t, a]
                n[a] = f_act * n[a] + ika
                qn += qa * n[a]
                for b in range(DHV):
                    c_ab = f_act * C[a, b] + ika * v[bh, t, b]
                    C[a, b] = c_ab
                    h_row[b] += qa * c_ab
            den = normalizer_scalar(qn, m, eps)
            for b in range(DHV):
                h[bh, t, b] = h_row[b] / den
        m_state[bh] = m
    return h


def step_torch(c_state, n_state, m_state, q, k, v, igate_preact, fgate_preact, eps=1e-6):
    """One mLSTM step in torch (differentiable). Shapes as :func:`step_numpy`."""
    return _step_torch_logf(c_state, n_state, m_state, q, k, v, igate_preact,
                            F.logsigmoid(fgate_preact), eps)


def _step_torch_logf(c_state, n_state, m_state, q, k, v, igate_preact, log_fgate, eps):
    """:func:`step_torch` with the forget gate already in log space."""
    DHQK = q.shape[-1]
    i_act, f_act, m_state = stabilized_gates(igate_preact, log_fgate, m_state)
    c_state = f_act[..., None, None] * c_state + i_act[..., None, None] * (
        k[..., :, None] * v[..., None, :])  # (B, NH, DHQK, DHV)
    n_state = f_act[..., None] * n_state + i_act[..., None] * k  # (B, NH, DHQK)
    q_scaled = q * DHQK**-0.5
    h_num = (q_scaled[..., None, :] @ c_state).squeeze(-2)  # (B, NH, DHV)
    qn = (q_scaled * n_state).sum(-1)  # (B, NH)
    return h_num / normalizer(qn, m_state, eps)[..., None], (c_state, n_state, m_state)


def recurrent_torch(q, k, v, igate_preact, fgate_preact, initial_state=None, eps=1e-6):
    """Loop over :func:`step_torch`. Returns ``h (B, NH, S, DHV), state``."""
    B, NH, S, DHQK = q.shape
    DHV = v.shape[-1]
    state = initial_state if initial_state is not None else zero_state(B, NH, DHQK, DHV, q)
    log_fgate = F.logsigmoid(fgate_preact)  # the gates do not depend on the state: all at once
    hs = []
    for t in range(S):
        h_t, state = _step_torch_logf(*state, q[:, :, t], k[:, :, t], v[:, :, t],
                                      igate_preact[:, :, t], log_fgate[:, :, t], eps)
        hs.append(h_t)
    return torch.stack(hs, dim=2), state


def _recurrent_numpy_fast(q, k, v, igate_preact, fgate_preact, initial_state, eps):
    """Run :func:`_recurrent_numba` on numpy inputs; reshapes ``(B, NH, ...) -> (B*NH, ...)``."""
    B, NH, S, DHQK = q.shape
    DHV = v.shape[-1]
    dt = q.dtype
    if initial_state is None:
        c, n, m = zero_state(B, NH, DHQK, DHV, q)
    else:
        c, n, m = (np.array(s, dtype=dt, copy=True) for s in initial_state)  # never edit inputs
    c = np.ascontiguousarray(c).reshape(B * NH, DHQK, DHV)
    n = np.ascontiguousarray(n).reshape(B * NH, DHQK)
    m = np.ascontiguousarray(m).reshape(B * NH)
    h = call_with_threads(
        _recurrent_numba, B * NH, B * NH * S * DHQK * DHV,
        np.ascontiguousarray(q).reshape(B * NH, S, DHQK),
        np.ascontiguousarray(k).reshape(B * NH, S, DHQK),
        np.ascontiguousarray(v).reshape(B * NH, S, DHV),
        np.ascontiguousarray(igate_preact).reshape(B * NH, S),
        np.ascontiguousarray(fgate_preact).reshape(B * NH, S),
        c, n, m, dt.type(1.0 / math.sqrt(DHQK)), dt.type(eps))
    state = (c.reshape(B, NH, DHQK, DHV), n.reshape(B, NH, DHQK), m.reshape(B, NH))
    return h.reshape(B, NH, S, DHV), state


def recurrent(q, k, v, igate_preact, fgate_preact, *, initial_state=None, return_state=False,
              eps=1e-6):
    """mLSTM, recurrent form.

    Args:
        q, k: ``(B, NH, S, DHQK)``; v: ``(B, NH, S, DHV)``.
        igate_preact, fgate_preact: gate pre-activations ``(B, NH, S)``.
        initial_state: optional ``(c_state (B, NH, DHQK, DHV), n_state (B, NH, DHQK),
            m_state (B, NH))``; zeros if ``None``.
        return_state: also return the final state.
        eps: added to the normalizer, outside the max (official convention).

    Returns:
        ``h (B, NH, S, DHV)``, or ``(h, (c_state, n_state, m_state))`` with ``return_state``.
        Torch in gives torch out (same device and dtype, differentiable); numpy in runs the
        compiled numba loop and gives numpy out.
    """
    backend = validate_qkv_gates(q, k, v, igate_preact, fgate_preact, initial_state)
    if backend == "torch":
        h, state = recurrent_torch(q, k, v, igate_preact, fgate_preact, initial_state, eps)
    else:
        h, state = _recurrent_numpy_fast(q, k, v, igate_preact, fgate_preact, initial_state, eps)
    return (h, state) if return_state else h
