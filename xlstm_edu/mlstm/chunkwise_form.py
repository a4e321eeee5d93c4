"""The mLSTM in its chunkwise form: linear in S and rich in matrix products (Beck et al. 2025, TFLA).

Split the sequence into chunks of ``L`` steps. Inside a chunk, the outputs are the parallel form on
the chunk plus the contribution of the memory ``(C_k, n_k, m_k)`` carried in from earlier chunks.
Between chunks the memory is updated once per chunk::

    b_l = sum_{r<=l} log f_r (inside the chunk),   g = b_L,   a_j = sum_{r=j+1..L} log f_r + i_j
    m_{k+1} = max(g + m_k, max_j a_j)
    C_{k+1} = exp(g + m_k - m_{k+1}) C_k + sum_j exp(a_j - m_{k+1}) k_j v_j^T     (n likewise)

Any ``S`` and any ``chunk_size >= 1`` work: the last chunk may be shorter. ``chunk_size=1`` is the
recurrent form, ``chunk_size >= S`` the parallel form plus the initial state.

Every log decay is summed over exactly its own terms, never formed as a difference of two
cumulative sums such as ``b_l - b_s`` or ``g - b_j``: with hard forget gates (``log f = -700`` per
step) ``b`` reaches thousands within a chunk, where float32 numbers are about ``1e-4`` to ``1e-3``
apart, and the small differences that decide the weights would inherit that error (the pitfall of
:func:`~xlstm_edu.mlstm.log_decay_matrix_cumsum_difference`, chapter 06). So the intra-chunk
``log D`` is the masked cumulative sum of :func:`~xlstm_edu.mlstm.log_decay_matrix`, ``a_j`` a
reverse cumulative sum, and ``b_l``, ``g`` plain cumulative sums (``log f <= 0``: their partial sums
only grow, nothing cancels).

:func:`chunkwise_numpy` is the reference (a loop over chunks). :func:`chunkwise_torch` is the fast
form: no per-chunk Python work; all chunks go through batched matrix products at once, and the
chunk-to-chunk memory recurrence is itself solved in parallel form over groups of chunks.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import check_positive_int
from ..gating import log_sigmoid, normalizer
from ._validate import validate_qkv_gates
from .parallel_form import log_decay_matrix
from .recurrent_form import zero_state

#: chunk states are solved in parallel form over groups of this many chunks (a short loop over
#: groups keeps the cost linear in S).
CHUNK_GROUP = 32


def _reverse_exclusive_cumsum(x):
    """``y_j = sum_{r > j} x_r`` along the last axis, with no subtraction (numpy or torch)."""
    if isinstance(x, torch.Tensor):
        rev = x.flip(-1).cumsum(-1).flip(-1)  # sum_{r >= j}
        return torch.cat([rev[..., 1:], torch.zeros_like(rev[..., :1])], dim=-1)
    rev = np.cumsum(x[..., ::-1], axis=-1)[..., ::-1]
    return np.concatenate([rev[..., 1:], np.zeros_like(rev[..., :1])], axis=-1)


# --- numpy reference: a readable loop over chunks ---------------------------------------------------


def _chunk_numpy(q, k, v, igate_preact, log_fgate, c_state, n_state, m_state, eps):
    """Outputs and final state of one chunk of length ``Lc`` (any ``Lc >= 1``)."""
    q = q / math.sqrt(q.shape[-1])
    b = np.cumsum(log_fgate, axis=-1)  # (B, NH, Lc) log decay from chunk start to l
    # outputs: intra-chunk parallel form + the carried memory decayed to l
    log_d = log_decay_matrix(log_fgate, igate_preact)  # (B, NH, Lc, Lc)
    log_inter = b + m_state[..., None]  # (B, NH, Lc)
    m_out = np.maximum(log_inter, log_d.max(-1))  # (B, NH, Lc)
    p = (q @ np.swapaxes(k, -1, -2)) * np.exp(log_d - m_out[..., None])  # (B, NH, Lc, Lc)
    s_inter = np.exp(log_inter - m_out)  # (B, NH, Lc)
    num = p @ v + s_inter[..., None] * (q @ c_state)  # (B, NH, Lc, DHV)
    den = p.sum(-1) + s_inter * np.einsum("bhld,bhd->bhl", q, n_state)  # (B, NH, Lc)
    h = num / normalizer(den, m_out, eps)[..., None]
    # memory update to the end of the chunk
    g = b[..., -1]  # (B, NH)
    a = _reverse_exclusive_cumsum(log_fgate) + igate_preact  # (B, NH, Lc)
    m_new = np.maximum(g + m_state, a.max(-1))  # (B, NH)
    kw = k * np.exp(a - m_new[..., None])[..., None]  # (B, NH, Lc, DHQK)
    decay = np.exp(g + m_state - m_new)  # (B, NH)
    c_state = decay[..., None, None] * c_state + np.swapaxes(kw, -1, -2) @ v
    n_state = decay[..., None] * n_state + kw.sum(-2)
    return h, (c_state, n_state, m_new)


def chunkwise_numpy(q, k, v, igate_preact, fgate_preact, chunk_size=64, initial_state=None,
                    eps=1e-6):
    """Reference chunkwise form in numpy. Returns ``h (B, NH, S, DHV), state``."""
    B, NH, S, DHQK = q.shape
    DHV = v.shape[-1]
    state = initial_state if initial_state is not None else zero_state(B, NH, DHQK, DHV, q)
    log_fgate = log_sigmoid(fgate_preact)
    h = np.empty((B, NH, S, DHV), dtype=q.dtype)
    for start in range(0, S, chunk_size):
        sl = slice(start, start + chunk_size)
        h[:, :, sl], state = _chunk_numpy(q[:, :, sl], k[:, :, sl], v[:, :, sl],
                                          igate_preact[:, :, sl], log_fgate[:, :, sl], *state, eps)
    return h, state


# --- torch: all chunks at once ---------------------------------------------------------------------


def _chunk_states_torch(dc, g, alpha, c_state, m_state):
    """Memory at the start of every chunk and at the end, given each chunk's own contribution.

    The chunk recurrence ``C_{k+1} = exp(g_k + m_k - m_{k+1}) C_k + exp(alpha_k - m_{k+1}) dC_k``
    has the same shape as the mLSTM recurrence itself (forget ``g``, input ``alpha``, "value"
    ``dC``), so it is solved in parallel form, over groups of :data:`CHUNK_GROUP` chunks. Its log
    weights need no differences either: ``log_decay_matrix`` sums each entry's own ``g`` terms, and
    ``cumsum(g) + m_state`` adds terms of one sign (``g <= 0``) and then the state once.

    dc ``(B, NH, NC, DHQK, DV)``, g, alpha ``(B, NH, NC)``, c_state ``(B, NH, DHQK, DV)``,
    m_state ``(B, NH)``. Returns c ``(B, NH, NC + 1, DHQK, DV)`` and m ``(B, NH, NC + 1)``:
    entry k is the memory before chunk k (entry 0 the initial state, entry NC the final one).
    """
    B, NH, NC, DHQK, DV = dc.shape
    dc = dc.reshape(B, NH, NC, DHQK * DV)  # (B, NH, NC, DHQK*DV)
    c_flat = c_state.reshape(B, NH, DHQK * DV)
    cs, ms = [c_flat[:, :, None]], [m_state[:, :, None]]
    for start in range(0, NC, CHUNK_GROUP):
        sl = slice(start, start + CHUNK_GROUP)
        log_w = log_decay_matrix(g[..., sl], alpha[..., sl])  # (B, NH, G, G)
        log_init = g[..., sl].cumsum(-1) + m_state[..., None]  # (B, NH, G)
        m_next = torch.maximum(log_init, log_w.amax(-1))  # (B, NH, G)
        w = torch.exp(log_w - m_next[..., None])  # (B, NH, G, G)
        s_init = torch.exp(log_init - m_next)[..., None]  # (B, NH, G, 1)
        c_next = w @ dc[:, :, sl] + s_init * c_flat[:, :, None]  # (B, NH, G, DHQK*DV)
        cs.append(c_next)
        ms.append(m_next)
        c_flat, m_state = c_next[:, :, -1], m_next[..., -1]
    return torch.cat(cs, dim=2).reshape(B, NH, NC + 1, DHQK, DV), torch.cat(ms, dim=2)


class _ChunkLogDecay(torch.autograd.Function):
    """``log D`` of every chunk: gates ``(..., L)`` -> ``(..., L, L)``, like :func:`log_decay_matrix`.

    Entry ``(l, s)`` is ``sum_{r=s+1..l} log f_r + i_s`` on and below the diagonal, ``-inf`` above.

    Forward: the masked cumulative sum of :func:`log_decay_matrix` (each entry sums exactly its own
    terms, so it is accurate in float32 however hard the gates), with float 0/1 and 0/-inf masks,
    which are much cheaper than ``torch.where`` with a broadcast boolean mask.

    Backward: in exact arithmetic the entry is ``b_l - b_s + i_s`` with ``b = cumsum(log f)``, so the
    gradient is the one of that cheap form: row sums minus column sums of the incoming gradient for
    ``b``, then a reverse cumulative sum over ``L`` steps for ``log f``: a masking pass and two
    reductions of each ``L x L`` matrix instead of autograd's reverse cumulative sum of all of them.
    (Rounding in a gradient only costs it relative precision; the cancellation that hurts is in the
    exponents, and those come from the forward.)
    """

    @staticmethod
    def forward(ctx, log_fgate, igate_preact):
        L = log_fgate.shape[-1]
        ones = torch.ones(L, L, dtype=log_fgate.dtype, device=log_fgate.device)
        strict_lower = ones.tril(-1)  # 1 where r > s
        upper_inf = torch.zeros_like(ones).masked_fill_(ones.triu(1) > 0, -math.inf)  # -inf where s > l
        # entry (r, s) = log f_r for r > s; cumsum down the columns gives sum_{r=s+1..l} log f_r
        log_d = (log_fgate[..., :, None] * strict_lower).cumsum_(-2)  # (..., L, L)
        return log_d.add_(igate_preact[..., None, :]).add_(upper_inf)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.tril()  # (..., L, L); above the diagonal the entries are a constant -inf
        grad_igate = grad.sum(-2)  # (..., L): i_s is in every entry of column s
        grad_b = grad.sum(-1) - grad_igate  # (..., L): + b_l in row l, - b_s in column s
        grad_fgate = grad_b.flip(-1).cumsum(-1).flip(-1)  # b_l = sum_{r<=l} log f_r
        return grad_fgate, grad_igate


def _chunks_torch(q, k, v, igate_preact, log_fgate, L, c_state, n_state, m_state, eps):
    """Chunkwise form for ``S`` a multiple of ``L``. Returns ``h, (c, n, m)``.

    The normalizer state rides along as an extra column of the memory: with ``v_ext = [v, 1]``,
    ``C_ext = sum k v_ext^T = [C | n]``, so one matrix product yields numerator and denominator.

    The log decays are accurate in float32 however hard the gates: inside a chunk ``log D`` comes
    from the masked cumulative sum (:class:`_ChunkLogDecay`, one ``L x L`` matrix per chunk), the
    chunk-end weights ``a_j`` from a reverse cumulative sum, and ``b_l`` (decay from the chunk start
    to ``l``, for the carried memory) from a cumulative sum of terms of one sign. The row stabilizer
    only has to be near the row maximum: a shift common to a row cancels between numerator and
    denominator (``den`` is compared with ``exp(-m_out)``, shifted alike), so it comes from a running
    max without an ``L x L`` pass, ``max_s (b_l - b_s + i_s) = b_l + cummax_s (i_s - b_s)``. Rounding
    in ``b`` can put it a few float32 steps of ``b`` off the true maximum (under 0.01 for ``log f``
    down to -1e3 and ``L = 64``): that only shifts the whole row, which changes no output.
    """
    B, NH, S, DHQK = q.shape
    DHV = v.shape[-1]
    NC = S // L
    log_scale = -0.5 * math.log(DHQK)  # the 1/sqrt(DHQK) of q.k, folded into the exponents
    qc = q.reshape(B, NH, NC, L, DHQK)
    kc = k.reshape(B, NH, NC, L, DHQK)
    v_ext = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # (B, NH, S, DHV + 1)
    vc = v_ext.reshape(B, NH, NC, L, DHV + 1)
    ic = igate_preact.reshape(B, NH, NC, L)
    lfc = log_fgate.reshape(B, NH, NC, L)
    b = lfc.cumsum(-1)  # (B, NH, NC, L) decay from chunk start to l
    g = b[..., -1]  # (B, NH, NC) decay over the whole chunk

    # each chunk's own contribution to the memory at its end, stabilized by its own max alpha
    a = _reverse_exclusive_cumsum(lfc) + ic  # (B, NH, NC, L) log weight of step j at the chunk end
    alpha = a.amax(-1)  # (B, NH, NC)
    kw = kc * torch.exp(a - alpha[..., None])[..., None]  # (B, NH, NC, L, DHQK)
    dc = kw.transpose(-1, -2) @ vc  # (B, NH, NC, DHQK, DHV + 1)
    c_ext = torch.cat([c_state, n_state[..., None]], dim=-1)  # (B, NH, DHQK, DHV + 1)
    c_all, m_all = _chunk_states_torch(dc, g, alpha, c_ext, m_state)  # NC + 1 memories
    c_starts, c_last = c_all.split([NC, 1], dim=2)  # before each chunk; after the last one
    m_starts = m_all[..., :-1]  # (B, NH, NC)

    # outputs: intra-chunk parallel form + carried memory, one stabilizer per row
    log_inter = b + m_starts[..., None]  # (B, NH, NC, L) log weight of the carried memory at l
    m_out = torch.maximum(log_inter, b + (ic - b).cummax(-1).values)  # (B, NH, NC, L)
    log_d = _ChunkLogDecay.apply(lfc, ic)  # (B, NH, NC, L, L)
    # in place (the L x L temporaries are the largest): D' = exp(log D - m_out) / sqrt(DHQK)
    d_stab = log_d.sub_((m_out - log_scale)[..., None]).exp_()  # (B, NH, NC, L, L)
    p = (qc @ kc.transpose(-1, -2)) * d_stab  # (B, NH, NC, L, L)
    q_inter = qc * torch.exp(log_inter - m_out + log_scale)[..., None]  # (B, NH, NC, L, DHQK)
    # [numerator | denominator] = q_inter @ C_start + p @ v_ext, fused into one batched product
    out = torch.baddbmm((q_inter @ c_starts).reshape(B * NH * NC, L, DHV + 1),
                        p.reshape(B * NH * NC, L, L), vc.reshape(B * NH * NC, L, DHV + 1))
    num, den = out.reshape(B, NH, NC, L, DHV + 1).split([DHV, 1], dim=-1)
    den = normalizer(den, m_out[..., None], eps)  # (B, NH, NC, L, 1)
    c_last, n_last = c_last[:, :, 0].split([DHV, 1], dim=-1)  # (B, NH, DHQK, DHV), (.., 1)
    state = (c_last, n_last[..., 0], m_all[..., -1])
    return (num / den).reshape(B, NH, S, DHV), state


def chunkwise_torch(q, k, v, igate_preact, fgate_preact, chunk_size=64, initial_state=None,
                    eps=1e-6):
    """Chunkwise form in torch (differentiable, any device/dtype). Returns ``h, state``.

    The full chunks run together; a shorter last chunk (``S % chunk_size``) runs after them,
    starting from their final state.
    """
    B, NH, S, DHQK = q.shape
    DHV = v.shape[-1]
    state = initial_state if initial_state is not None else zero_state(B, NH, DHQK, DHV, q)
    log_fgate = F.logsigmoid(fgate_preact)
    L = min(chunk_size, S)
    S_full = (S // L) * L
    args = (q, k, v, igate_preact, log_fgate)
    h, state = _chunks_torch(*(x[:, :, :S_full] for x in args), L, *state, eps)
    if S_full == S:
        return h, state
    h_tail, state = _chunks_torch(*(x[:, :, S_full:] for x in args), S - S_full, *state, eps)
    return torch.cat([h, h_tail], dim=2), state


def chunkwise(q, k, v, igate_preact, fgate_preact, *, chunk_size=64, initial_state=None,
              return_state=False, eps=1e-6):
    """mLSTM, chunkwise form. Same shapes and conventions as :func:`xlstm_edu.mlstm.recurrent`.

    Args:
        chunk_size: steps per chunk, any integer ``>= 1``; ``S`` need not be a multiple.

    Returns ``h (B, NH, S, DHV)``, or ``(h, (c_state, n_state, m_state))`` with ``return_state``;
    the state is the same as the recurrent form's. Torch in gives torch out (differentiable);
    numpy in gives numpy out.
    """
    chunk_size = check_positive_int("chunk_size", chunk_size)
    backend = validate_qkv_gates(q, k, v, igate_preact, fgate_preact, initial_state)
    fn = chunkwise_torch if backend == "torch" else chunkwise_numpy
    h, state = fn(q, k, v, igate_preact, fgate_preact, chunk_size, initial_state, eps)
    return (h, state) if return_state else h
