"""sLSTM: scalar memory with exponential gating, a normalizer, a stabilizer and memory mixing.

Per step, with pre-activations ``W x_t + b`` given and the recurrent part ``R h_{t-1}`` added here
(Beck et al. 2024, sec. 2.2; gate order i, f, z, o)::

    raw_g = gate_preact_g + R_g h_{t-1}                   g in (i, f, z, o)
    m_t = max(logsigmoid(raw_f) + m_{t-1}, raw_i)       i' = exp(raw_i - m_t)
    f' = exp(logsigmoid(raw_f) + m_{t-1} - m_t)
    c_t = f' c_{t-1} + i' tanh(raw_z)                   n_t = f' n_{t-1} + i'
    h_t = sigmoid(raw_o) * c_t / n_t

Heads: ``R`` is block-diagonal, one ``(DH, 4, DH)`` block per head (layout of the official
``xlstm`` vanilla backend: ``R[head, d_in, gate, d_out]``), so memory mixes only inside a head.
The zero state has ``m = -inf``: the first step sets ``m_1 = raw_i``, as the official code does,
which keeps ``n > 0`` even for very negative input gates.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit, prange

from ._checks import backend_of, check_float, check_ndim, check_same_dtype, check_shape
from ._numba import call_with_threads
from .gating import (
    log_sigmoid,
    log_sigmoid_scalar,
    sigmoid,
    sigmoid_scalar,
    stabilized_gates,
    stabilized_gates_scalar,
)

GATES = ("i", "f", "z", "o")


def zero_state(B, NH, DH, like):
    """``(h, c, n, m)``, each ``(B, NH, DH)``: zeros, and ``m = -inf`` (no stabilizer yet)."""
    if isinstance(like, torch.Tensor):
        kw = dict(dtype=like.dtype, device=like.device)
        zeros = [torch.zeros(B, NH, DH, **kw) for _ in range(3)]
        return (*zeros, torch.full((B, NH, DH), -math.inf, **kw))
    zeros = [np.zeros((B, NH, DH), like.dtype) for _ in range(3)]
    return (*zeros, np.full((B, NH, DH), -np.inf, like.dtype))


def step_numpy(h, c, n, m, igate_preact, fgate_preact, zgate_preact, ogate_preact, R=None):
    """One sLSTM step in numpy. States and pre-activations ``(B, NH, DH)``; R ``(NH, DH, 4, DH)``.

    Returns ``h_new, (h_new, c, n, m)``.
    """
    raw = [igate_preact, fgate_preact, zgate_preact, ogate_preact]
    if R is not None:
        ry = np.einsum("bhi,higj->bhgj", h, R)  # memory mixing inside each head: (B, NH, 4, DH)
        raw = [raw[g] + ry[:, :, g] for g in range(4)]
    i_act, f_act, m = stabilized_gates(raw[0], log_sigmoid(raw[1]), m)
    c = f_act * c + i_act * np.tanh(raw[2])
    n = f_act * n + i_act
    h = sigmoid(raw[3]) * c / n
    return h, (h, c, n, m)


def recurrent_numpy(igate_preact, fgate_preact, zgate_preact, ogate_preact, R=None,
                    initial_state=None):
    """Reference loop over :func:`step_numpy`. Returns ``h (B, NH, S, DH), state``."""
    B, NH, S, DH = igate_preact.shape
    state = initial_state if initial_state is not None else zero_state(B, NH, DH, igate_preact)
    out = np.empty((B, NH, S, DH), dtype=igate_preact.dtype)
    for t in range(S):
        out[:, :, t], state = step_numpy(
            *state, igate_preact[:, :, t], fgate_preact[:, :, t], zgate_preact[:, :, t],
            ogate_preact[:, :, t], R)
    return out, state


def recurrent_unstabilized_numpy(igate_preact, fgate_preact, zgate_preact, ogate_preact):
    """The textbook sLSTM without stabilizer (and without R): ``i = exp(raw_i)``, ``f = sigmoid``.

    Overflows once ``igate_preact`` exceeds ~88 in float32 (the book shows it). Returns h.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        i_act = np.exp(igate_preact)
        f_act = sigmoid(fgate_preact)
        c = np.zeros_like(igate_preact[:, :, 0])
        n = np.zeros_like(c)
        out = np.empty_like(igate_preact)
        for t in range(igate_preact.shape[2]):
            c = f_act[:, :, t] * c + i_act[:, :, t] * np.tanh(zgate_preact[:, :, t])
            n = f_act[:, :, t] * n + i_act[:, :, t]
            out[:, :, t] = sigmoid(ogate_preact[:, :, t]) * c / n
    return out


@njit(cache=True, parallel=True)
def _recurrent_numba(pre, R, h_state, c_state, n_state, m_state, NH, has_R):
    """Compiled loop. pre ``(BH, S, 4, DH)`` (gate order i, f, z, o), R ``(NH, DH, 4, DH)``,
    states ``(BH, DH)`` updated in place. Rows ``bh = b * NH + head`` run in parallel.
    ``has_R=False`` skips the memory mixing (no recurrent weights)."""
    BH, S, _, DH = pre.shape
    out = np.empty((BH, S, DH), dtype=pre.dtype)
    for bh in prange(BH):
        head = bh % NH
        h = h_state[bh]
        c = c_state[bh]
        n = n_state[bh]
        m = m_state[bh]
        raw = np.empty((4, DH), dtype=pre.dtype)
        for t in range(S):
            raw[:, :] = pre[bh, t]
            for d_in in range(DH if has_R else 0):  # raw += R^T h  (memory mixing inside the head)
                h_in = h[d_in]
                for g in range(4):
                    for d_out in range(DH):
                        raw[g, d_out] += h_in * R[head, d_in, g, d_out]
            for d in range(DH):
                i_act, f_act, m[d] = stabilized_gates_scalar(
                    raw[0, d], log_sigmoid_scalar(raw[1, d]), m[d])
                c[d] = f_act * c[d] + i_act * math.tanh(raw[2, d])
                n[d] = f_act * n[d] + i_act
                h[d] = sigmoid_scalar(raw[3, d]) * c[d] / n[d]
                out[bh, t, d] = h[d]
    return out


def _recurrent_numpy_fast(gates, R, initial_state):
    B, NH, S, DH = gates[0].shape
    dt = gates[0].dtype
    pre = np.ascontiguousarray(np.stack(gates, axis=3))  # (B, NH, S, 4, DH)
    has_R = R is not None
    if R is None:
        R = np.zeros((1, 1, 4, 1), dtype=dt)  # unused
    if initial_state is None:
        states = zero_state(B, NH, DH, gates[0])
    else:
        states = [np.array(s, dtype=dt, copy=True) for s in initial_state]  # never edit inputs
    states = [np.ascontiguousarray(s).reshape(B * NH, DH) for s in states]
    work = B * NH * S * DH * (4 * DH if has_R else 8)
    out = call_with_threads(_recurrent_numba, B * NH, work, pre.reshape(B * NH, S, 4, DH),
                            np.ascontiguousarray(R), *states, NH, has_R)
    return out.reshape(B, NH, S, DH), tuple(s.reshape(B, NH, DH) for s in states)


def step_torch(h, c, n, m, igate_preact, fgate_preact, zgate_preact, ogate_preact, R=None):
    """One sLSTM step in torch (differentiable). Shapes as :func:`step_numpy`."""
    raw = [igate_preact, fgate_preact, zgate_preact, ogate_preact]
    if R is not None:
        NH, DH = R.shape[0], R.shape[1]
        # (NH, B, DH) @ (NH, DH, 4*DH) -> (NH, B, 4*DH) -> (B, NH, 4, DH)
        ry = torch.bmm(h.transpose(0, 1), R.reshape(NH, DH, 4 * DH))
        ry = ry.transpose(0, 1).reshape(h.shape[0], NH, 4, DH)
        raw = [raw[g] + ry[:, :, g] for g in range(4)]
    i_act, f_act, m = stabilized_gates(raw[0], F.logsigmoid(raw[1]), m)
    c = f_act * c + i_act * torch.tanh(raw[2])
    n = f_act * n + i_act
    h = torch.sigmoid(raw[3]) * c / n
    return h, (h, c, n, m)


def recurrent_torch(igate_preact, fgate_preact, zgate_preact, ogate_preact, R=None,
                    initial_state=None):
    """Loop over :func:`step_torch`. Returns ``h (B, NH, S, DH), state``."""
    B, NH, S, DH = igate_preact.shape
    state = initial_state if initial_state is not None else zero_state(B, NH, DH, igate_preact)
    outs = []
    for t in range(S):
        h, state = step_torch(*state, igate_preact[:, :, t], fgate_preact[:, :, t],
                              zgate_preact[:, :, t], ogate_preact[:, :, t], R)
        outs.append(h)
    return torch.stack(outs, dim=2), state


def _validate(gates, R, initial_state) -> str:
    names = [f"{g}gate_preact" for g in GATES]
    state = tuple(initial_state) if initial_state is not None else ()
    if initial_state is not None and len(state) != 4:
        raise ValueError(f"initial_state must be a tuple (h, c, n, m), got {len(state)} elements")
    state_names = dict(zip(("h_state", "c_state", "n_state", "m_state"), state))
    arrays = dict(zip(names, gates), R=R, **state_names)
    backend = backend_of(**arrays)
    check_ndim(names[0], gates[0], 4, "(B, NH, S, DH)")
    B, NH, S, DH = gates[0].shape
    if min(B, NH, S, DH) < 1:
        raise ValueError(f"igate_preact must have non-empty dimensions, got {gates[0].shape}")
    for name, a in zip(names[1:], gates[1:]):
        check_shape(name, a, (B, NH, S, DH), "(B, NH, S, DH)")
    if R is not None:
        check_shape("R", R, (NH, DH, 4, DH), "(NH, DH, 4, DH) (heads, input, gate i/f/z/o, output)")
    for name, s in state_names.items():
        check_shape(name, s, (B, NH, DH), "(B, NH, DH)")
    for name, a in arrays.items():
        if a is not None and name != "m_state":
            check_float(name, a)
    if "m_state" in state_names:  # -inf is the valid "no stabilizer yet" value
        m = state_names["m_state"]
        if not (m.is_floating_point() if isinstance(m, torch.Tensor) else m.dtype.kind == "f"):
            raise ValueError(f"m_state must have a floating dtype, got {m.dtype}")
    check_same_dtype(**arrays)
    return backend


def recurrent(igate_preact, fgate_preact, zgate_preact, ogate_preact, R=None, *,
              initial_state=None, return_state=False):
    """sLSTM over a sequence.

    Args:
        igate_preact, fgate_preact, zgate_preact, ogate_preact: ``W x + b``, each
            ``(B, NH, S, DH)``.
        R: recurrent weights ``(NH, DH, 4, DH)`` (head, input, gate i/f/z/o, output), or ``None``
            for no recurrent connection.
        initial_state: optional ``(h, c, n, m)``, each ``(B, NH, DH)``; default
            :func:`zero_state` (``m = -inf``).
        return_state: also return the final state.

    Returns ``h (B, NH, S, DH)``, or ``(h, (h, c, n, m))``. Torch in gives torch out
    (differentiable, same device/dtype); numpy in runs the compiled numba loop.
    """
    gates = (igate_preact, fgate_preact, zgate_preact, ogate_preact)
    backend = _validate(gates, R, initial_state)
    if backend == "torch":
        h, state = recurrent_torch(*gates, R, initial_state)
    else:
        h, state = _recurrent_numpy_fast(gates, R, initial_state)
    return (h, state) if return_state else h
