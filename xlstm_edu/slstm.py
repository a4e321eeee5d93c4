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

Ways to run it: :func:`recurrent_numpy` and :func:`recurrent_torch` are the readable reference loops
(the torch one differentiable, on any device); :func:`recurrent` dispatches numpy input to the
compiled forward loop :func:`_recurrent_numba`; :func:`recurrent_fused` is for training on the CPU:
a ``torch.autograd.Function`` whose forward (:func:`_forward_kernel`) and hand-derived backward
through time (:func:`_backward_kernel`) each run the whole sequence in one compiled loop.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from numba import njit, prange
from torch.autograd.function import once_differentiable

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


# --- training kernels: the whole sequence in one compiled loop, forward and backward ---------------


@njit(cache=True, inline="always")
def _gates_scalar(i_raw, f_raw, z_raw, o_raw, m_prev, one):
    """The gates of one unit, as :func:`step_torch` computes them, with one ``exp`` per gate.

    ``one`` is 1 in the arrays' dtype (float32 stays float32). Returns ``(i', f', tanh(z~),
    sigmoid(o~), sigmoid(-f~), w, m_t)``: ``sigmoid(-f~)`` is the derivative of
    ``log f = logsigmoid(f~)``, and ``w`` the share of ``dm_t`` that goes to ``log f + m_{t-1}`` in
    ``m_t = max(log f + m_{t-1}, i~)`` (1 or 0; 1/2 at a tie, as torch's ``maximum`` splits it).
    The maximum makes one of ``i'``, ``f'`` exactly 1, so one ``exp`` gives both; ``log f`` and
    ``sigmoid(-f~)`` share ``exp(-|f~|)``, and ``tanh`` is written through ``exp(-2|z~|)``
    (within a few rounding errors of 1 of ``math.tanh``, at a fraction of its cost).
    """
    zero, two = one - one, one + one
    e_f = math.exp(-abs(f_raw))
    log_f = min(f_raw, zero) - math.log(one + e_f)  # logsigmoid(f~)
    sig_neg_f = (e_f if f_raw >= zero else one) / (one + e_f)  # sigmoid(-f~)
    a = log_f + m_prev
    if a >= i_raw:  # m_t = log f + m_{t-1}: f' = 1
        m_new, f_act, i_act = a, one, math.exp(i_raw - a)
        w = one / two if a == i_raw else one
    else:  # m_t = i~: i' = 1 (m_{t-1} = -inf gives f' = 0)
        m_new, f_act, i_act, w = i_raw, math.exp(a - i_raw), one, zero
    e_z = math.exp(-two * abs(z_raw))
    z = math.copysign((one - e_z) / (one + e_z), z_raw)
    o = one / (one + math.exp(-o_raw))
    return i_act, f_act, z, o, sig_neg_f, w, m_new


#: LLVM may fuse multiply-adds (both kernels) and reorder the sums of the backward's dot products (so
#: that they vectorize); never assume finite values: ``m = -inf`` is the empty state.
_FASTMATH_FORWARD = {"contract"}
_FASTMATH_BACKWARD = {"contract", "reassoc"}


@njit(cache=True, parallel=True, fastmath=_FASTMATH_FORWARD)
def _forward_kernel(pre, R, h_0, c_0, n_0, m_0, NH, has_R):
    """:func:`_recurrent_numba` that also keeps what the backward pass needs.

    pre ``(BH, S, 4, DH)`` (gate order i, f, z, o), R ``(NH, DH, 4, DH)``, initial states
    ``(BH, DH)`` (read only). Returns ``out (BH, S, DH)``; ``hs, cs, ns (BH, S + 1, DH)``, the
    states at ``t = 0 .. S`` (index 0: the initial state); ``m (BH, DH)``, the last stabilizer; and
    ``acts (BH, S, 6, DH)``, the outputs of :func:`_gates_scalar` but ``m_t``."""
    BH, S, _, DH = pre.shape
    one = np.ones(1, dtype=pre.dtype)[0]
    R_flat = R.reshape(R.shape[0], R.shape[1], 4 * R.shape[3])  # (NH, DH, 4*DH): gate-major output
    out = np.empty((BH, S, DH), dtype=pre.dtype)
    hs = np.empty((BH, S + 1, DH), dtype=pre.dtype)
    cs = np.empty_like(hs)
    ns = np.empty_like(hs)
    m_last = np.empty((BH, DH), dtype=pre.dtype)
    acts = np.empty((BH, S, 6, DH), dtype=pre.dtype)
    for bh in prange(BH):
        head = bh % NH
        hs[bh, 0] = h_0[bh]
        cs[bh, 0] = c_0[bh]
        ns[bh, 0] = n_0[bh]
        m = m_0[bh].copy()
        R_head = R_flat[head]  # (DH, 4*DH)
        raw = np.empty(4 * DH, dtype=pre.dtype)  # (4*DH,): gate-major i~, f~, z~, o~
        for t in range(S):
            raw[:] = pre[bh, t].reshape(4 * DH)
            h_prev = hs[bh, t]
            for d_in in range(DH if has_R else 0):  # raw += R^T h_{t-1}
                h_in = h_prev[d_in]
                R_row = R_head[d_in]
                for k in range(4 * DH):
                    raw[k] += h_in * R_row[k]
            for d in range(DH):
                i_act, f_act, z, o, sig_neg_f, w, m[d] = _gates_scalar(
                    raw[d], raw[DH + d], raw[2 * DH + d], raw[3 * DH + d], m[d], one)
                c = f_act * cs[bh, t, d] + i_act * z
                n = f_act * ns[bh, t, d] + i_act
                h = o * c / n
                cs[bh, t + 1, d], ns[bh, t + 1, d], hs[bh, t + 1, d] = c, n, h
                out[bh, t, d] = h
                acts[bh, t, 0, d], acts[bh, t, 1, d] = i_act, f_act
                acts[bh, t, 2, d], acts[bh, t, 3, d] = z, o
                acts[bh, t, 4, d], acts[bh, t, 5, d] = sig_neg_f, w
        m_last[bh] = m
    return out, hs, cs, ns, m_last, acts


@njit(cache=True, parallel=True, fastmath=_FASTMATH_BACKWARD)
def _backward_kernel(d_out, dh_last, dc_last, dn_last, dm_last, R, hs, cs, ns, acts, NH, has_R):
    """Backward through time of :func:`_forward_kernel`.

    d_out ``(BH, S, DH)``: the loss gradient of every output h; ``d*_last (BH, DH)``: that of the
    final state; R ``(NH, DH, 4, DH)``. Returns ``d_pre (BH, S, 4, DH)``, the gradients of the
    pre-activations (gate order i, f, z, o; R's part included), and ``d_state (4, BH, DH)``, those of
    the initial ``h, c, n, m``. Rows ``bh`` run in parallel; the gradient of R, a sum of products
    of ``hs`` and ``d_pre`` over rows and steps, is one matrix product outside."""
    BH, S, DH = d_out.shape
    one = np.ones(1, dtype=d_out.dtype)[0]
    d_pre = np.empty((BH, S, 4, DH), dtype=d_out.dtype)
    d_state = np.empty((4, BH, DH), dtype=d_out.dtype)  # initial h, c, n, m
    R_flat = R.reshape(R.shape[0], R.shape[1], 4 * R.shape[3])  # (NH, DH, 4*DH)
    for bh in prange(BH):
        head = bh % NH
        dh = dh_last[bh].copy()  # from step t + 1 through R (at t = S - 1: the final state's h)
        dc = dc_last[bh].copy()
        dn = dn_last[bh].copy()
        dm = dm_last[bh].copy()
        zero = one - one
        for t in range(S - 1, -1, -1):
            for d in range(DH):
                i_act, f_act = acts[bh, t, 0, d], acts[bh, t, 1, d]
                z, o = acts[bh, t, 2, d], acts[bh, t, 3, d]
                c, n, h = cs[bh, t + 1, d], ns[bh, t + 1, d], hs[bh, t + 1, d]
                dh_t = dh[d] + d_out[bh, t, d]
                # h = o c / n
                dc_t = dc[d] + dh_t * o / n
                dn_t = dn[d] - dh_t * h / n
                d_o = dh_t * c / n
                # c = f' c_prev + i' z,  n = f' n_prev + i'
                d_i = dc_t * z + dn_t
                d_f = dc_t * cs[bh, t, d] + dn_t * ns[bh, t, d]
                # i' = exp(i~ - m_t),  f' = exp(log f + m_prev - m_t)
                g_i = d_i * i_act
                g_f = d_f * f_act
                dm_t = dm[d] - g_i - g_f
                # m_t = max(a, i~) with a = log f + m_prev: w of dm_t to a, the rest to i~
                w = acts[bh, t, 5, d]
                d_a = g_f + w * dm_t
                d_pre[bh, t, 0, d] = g_i + (one - w) * dm_t
                d_pre[bh, t, 1, d] = d_a * acts[bh, t, 4, d]  # d logsigmoid(x)/dx = sigmoid(-x)
                d_pre[bh, t, 2, d] = dc_t * i_act * (one - z * z)
                d_pre[bh, t, 3, d] = d_o * o * (one - o)
                dc[d] = dc_t * f_act
                dn[d] = dn_t * f_act
                dm[d] = d_a
            g_t = d_pre[bh, t].reshape(4 * DH)
            for d_in in range(DH):  # dh_prev = R d_pre_t (a dot product per input unit)
                acc = zero
                R_row = R_flat[head, d_in]
                for k in range(4 * DH if has_R else 0):
                    acc += R_row[k] * g_t[k]
                dh[d_in] = acc
        d_state[0, bh], d_state[1, bh], d_state[2, bh], d_state[3, bh] = dh, dc, dn, dm
    return d_pre, d_state


def _as_rows(x, B, NH, DH):
    """A ``(B, NH, DH)`` tensor as a contiguous numpy ``(B*NH, DH)`` view (no grad)."""
    return x.detach().contiguous().numpy().reshape(B * NH, DH)


class _sLSTMFunction(torch.autograd.Function):
    """The sLSTM with a hand-derived backward pass (CPU, float32/float64): both run in numba."""

    @staticmethod
    def forward(ctx, igate_preact, fgate_preact, zgate_preact, ogate_preact, R, h_0, c_0, n_0, m_0):
        B, NH, S, DH = igate_preact.shape
        gates = (igate_preact, fgate_preact, zgate_preact, ogate_preact)
        # (B, NH, S, 4, DH) -> (B*NH, S, 4, DH): one row per batch entry and head
        pre = torch.stack([g.detach() for g in gates], dim=3).numpy().reshape(B * NH, S, 4, DH)
        has_R = R is not None
        R_np = R.detach().contiguous().numpy() if has_R else np.zeros((1, 1, 4, 1), pre.dtype)
        states = [_as_rows(s, B, NH, DH) for s in (h_0, c_0, n_0, m_0)]
        work = B * NH * S * DH * (4 * DH if has_R else 8)
        out, hs, cs, ns, m_last, acts = call_with_threads(
            _forward_kernel, B * NH, work, pre, R_np, *states, NH, has_R)
        ctx.saved = (hs, cs, ns, acts, R_np, has_R, (B, NH, S, DH))  # numpy, never handed out
        shape = (B, NH, DH)
        final = (hs[:, S].reshape(shape).copy(), cs[:, S].reshape(shape).copy(),
                 ns[:, S].reshape(shape).copy(), m_last.reshape(shape))
        return (torch.from_numpy(out).reshape(B, NH, S, DH), *(torch.from_numpy(s) for s in final))

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out, dh_last, dc_last, dn_last, dm_last):
        hs, cs, ns, acts, R_np, has_R, (B, NH, S, DH) = ctx.saved
        d_out = d_out.contiguous().numpy().reshape(B * NH, S, DH)
        finals = [_as_rows(g, B, NH, DH) for g in (dh_last, dc_last, dn_last, dm_last)]
        work = 2 * B * NH * S * DH * (4 * DH if has_R else 8)
        d_pre, d_state = call_with_threads(
            _backward_kernel, B * NH, work, d_out, *finals, R_np, hs, cs, ns, acts, NH, has_R)
        d_pre = torch.from_numpy(d_pre)  # (B*NH, S, 4, DH)
        dR = None
        if has_R:  # dR[head] = sum over b, t of h_{t-1} d_pre_t^T: (BH, DH, S) @ (BH, S, 4*DH)
            h_prev = torch.from_numpy(hs)[:, :S].transpose(1, 2)
            dR = torch.bmm(h_prev, d_pre.reshape(B * NH, S, 4 * DH))  # (BH, DH, 4*DH)
            dR = dR.reshape(B, NH, DH, 4, DH).sum(dim=0)
        d_pre = d_pre.reshape(B, NH, S, 4, DH)
        d_state = torch.from_numpy(d_state).reshape(4, B, NH, DH)
        return (*d_pre.unbind(dim=3), dR, *d_state.unbind(0))


def recurrent_fused(igate_preact, fgate_preact, zgate_preact, ogate_preact, R=None,
                    initial_state=None):
    """:func:`recurrent_torch` with compiled forward and backward passes (same arguments, same result).

    Torch tensors in and out, differentiable in every input (the pre-activations, ``R`` and the
    initial state ``(h, c, n, m)``; default :func:`zero_state`). On the CPU in float32/float64 the
    sequence runs in :func:`_forward_kernel` and the gradients come from :func:`_backward_kernel`;
    anything else (CUDA, half precision) runs the readable :func:`recurrent_torch`.
    Returns ``h (B, NH, S, DH), (h, c, n, m)``.
    """
    gates = (igate_preact, fgate_preact, zgate_preact, ogate_preact)
    if _validate(gates, R, initial_state) != "torch":
        raise ValueError("recurrent_fused takes torch tensors (numpy arrays: use slstm.recurrent)")
    if igate_preact.device.type != "cpu" or igate_preact.dtype not in (torch.float32, torch.float64):
        return recurrent_torch(*gates, R, initial_state)
    B, NH, _, DH = igate_preact.shape
    state = initial_state if initial_state is not None else zero_state(B, NH, DH, igate_preact)
    h, *state = _sLSTMFunction.apply(*gates, R, *state)
    return h, tuple(state)
