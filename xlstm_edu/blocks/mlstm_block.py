"""The mLSTM block: pre up-projection, like a state-space-model block (Beck et al. 2024, fig. 11).

::

    x_norm = LayerNorm(x)
    a, b   = split(proj_up(x_norm))                          # two branches of width U = PF * E
    a_conv = swish(conv1d(a))                                # causal, kernel 4, per feature
    q, k   = headwise(a_conv);   v = headwise(a)             # v skips the convolution
    i~, f~ = Linear([q, k, v])                               # one input/forget gate per head
    h      = mLSTM(q, k, v, i~, f~)                          # xlstm_edu.mlstm (NH heads)
    h      = MultiHeadLayerNorm(h) + learnable_skip * a_conv
    y      = x + dropout(proj_down(h * swish(b)))            # swish(b) plays the output gate

The computation is that of the official ``xlstm`` 2.0.6 ``mLSTMBlock`` (``mLSTMLayer`` +
``mLSTMCell``), flattened into one module; :mod:`xlstm_edu.blocks.official` maps the names.

The cell runs from the *empty* state ``c = 0, n = 0, m = -inf``: this is the parallel form's
convention (no initial state), which the official layer uses in its forward pass, so that the
forward pass, the chunkwise form with a carried state and the step-by-step recurrence all give the
same outputs (float64: ~1e-15 apart). (The official ``mLSTMLayer.step`` starts from ``m = 0``
instead, which changes outputs by a relative ``eps * exp(m)`` at most; see the notation page.)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import mlstm
from .components import (
    CausalConv1d,
    LayerNorm,
    LinearHeadwise,
    MultiHeadLayerNorm,
    bias_linspace_,
    check_block_input,
    check_block_state,
    headwise_linear,
    small_init_,
    wang_init_,
)

#: Which form of the mLSTM runs the sequence (all three give the same outputs).
MLSTM_BACKENDS = ("chunkwise", "parallel", "recurrent")


class mLSTMBlockState(NamedTuple):
    """Recurrent state of one mLSTM block (constant size in the sequence length)."""

    conv: torch.Tensor  # (B, K - 1, U): the last K - 1 inputs of the convolution
    c: torch.Tensor  # (B, NH, DH, DH): matrix memory C = sum k v^T (stabilized)
    n: torch.Tensor  # (B, NH, DH): normalizer n = sum k (stabilized)
    m: torch.Tensor  # (B, NH): stabilizer; -inf before the first step


class mLSTMBlock(nn.Module):
    """One mLSTM block (residual included): x ``(B, S, E)`` -> ``(B, S, E)``.

    Args:
        embedding_dim: E, the width of the residual stream.
        inner_dim: U, the width of the up-projected branches (the official code rounds
            ``proj_factor * E`` up to a multiple of 64; see :func:`components.proj_up_dim`).
        num_heads: NH, mLSTM heads; ``DH = U / NH`` for q, k and v.
        qkv_proj_blocksize: block size of the block-diagonal q, k, v projections (official default 4).
        conv1d_kernel_size: K, taps of the causal convolution.
        bias: biases in ``proj_up``, the q/k/v projections and ``proj_down``.
        dropout: dropout on the block output (before the residual sum).
        num_blocks: blocks in the stack (for the ``wang_init_`` of ``proj_down``).
        backend: form of the mLSTM for sequences: ``"chunkwise"`` (linear in S), ``"parallel"``
            (quadratic, no state: used only when no state goes in or out, else chunkwise) or
            ``"recurrent"`` (a loop over steps).
        chunk_size: chunk length of the chunkwise form (any S works).
        eps: added to the mLSTM normalizer (official 1e-6).
    """

    def __init__(self, embedding_dim: int, inner_dim: int, num_heads: int = 4,
                 qkv_proj_blocksize: int = 4, conv1d_kernel_size: int = 4, bias: bool = False,
                 dropout: float = 0.0, num_blocks: int = 1, backend: str = "chunkwise",
                 chunk_size: int = 64, eps: float = 1e-6):
        super().__init__()
        if inner_dim % num_heads:
            raise ValueError(f"inner_dim ({inner_dim}) must be a multiple of num_heads ({num_heads})")
        if inner_dim % qkv_proj_blocksize:
            raise ValueError(f"inner_dim ({inner_dim}) must be a multiple of qkv_proj_blocksize "
                             f"({qkv_proj_blocksize})")
        if backend not in MLSTM_BACKENDS:
            raise ValueError(f"backend must be one of {MLSTM_BACKENDS}, got {backend!r}")
        self.embedding_dim, self.inner_dim, self.num_heads = embedding_dim, inner_dim, num_heads
        self.head_dim = inner_dim // num_heads
        self.backend, self.chunk_size, self.eps = backend, chunk_size, eps

        self.norm = LayerNorm(embedding_dim)
        self.proj_up = nn.Linear(embedding_dim, 2 * inner_dim, bias=bias)
        self.conv1d = CausalConv1d(inner_dim, conv1d_kernel_size)
        num_proj_heads = inner_dim // qkv_proj_blocksize
        self.q_proj = LinearHeadwise(inner_dim, num_proj_heads, bias=bias)
        self.k_proj = LinearHeadwise(inner_dim, num_proj_heads, bias=bias)
        self.v_proj = LinearHeadwise(inner_dim, num_proj_heads, bias=bias)
        self.igate = nn.Linear(3 * inner_dim, num_heads)  # input gate pre-activation from [q, k, v]
        self.fgate = nn.Linear(3 * inner_dim, num_heads)  # forget gate pre-activation from [q, k, v]
        self.outnorm = MultiHeadLayerNorm(inner_dim)
        self.learnable_skip = nn.Parameter(torch.ones(inner_dim))
        self.proj_down = nn.Linear(inner_dim, embedding_dim, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters(num_blocks)

    def reset_parameters(self, num_blocks: int = 1) -> None:
        """Official init: small init for the input projections, Wang init for ``proj_down``, gate
        weights zero, forget-gate bias ``linspace(3, 6)`` over the heads, input-gate bias
        ``N(0, 0.1)``."""
        E = self.embedding_dim
        small_init_(self.proj_up.weight, E)
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            small_init_(proj.weight, E)  # on E, not on the block size (as the official layer)
        wang_init_(self.proj_down.weight, E, num_blocks)
        for lin in (self.proj_up, self.q_proj, self.k_proj, self.v_proj, self.proj_down):
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        self.conv1d.reset_parameters()
        nn.init.zeros_(self.igate.weight)
        nn.init.normal_(self.igate.bias, 0.0, 0.1)
        nn.init.zeros_(self.fgate.weight)
        bias_linspace_(self.fgate.bias, 3.0, 6.0)
        self.norm.reset_parameters()
        self.outnorm.reset_parameters()
        nn.init.ones_(self.learnable_skip)

    def zero_state(self, batch_size: int, like: torch.Tensor) -> mLSTMBlockState:
        """The empty state (dtype/device of ``like``): zeros and ``m = -inf`` (``mlstm.zero_state``)."""
        B, NH, DH = batch_size, self.num_heads, self.head_dim
        c, n, m = mlstm.zero_state(B, NH, DH, DH, like, empty=True)
        return mLSTMBlockState(conv=self.conv1d.zero_state(B, like), c=c, n=n, m=m)

    # --- the shared parts of forward and step ------------------------------------------------------

    def _qkv_gates(self, a: torch.Tensor, a_conv: torch.Tensor):
        """q, k, v ``(..., U)`` and the gate pre-activations, transposed: ``(2 NH, N)`` (input gate
        rows first, ``N`` the flattened leading axes), from the two branch inputs.

        Fused, with the official arithmetic: q and k (both from ``a_conv``) in one block-diagonal
        product; both gates ``Linear([q, k, v])`` as one ``(2 NH, 3U)`` map applied to q, k and v in
        turn (so ``[q, k, v]`` is never concatenated), and transposed, so that the weight gradient is
        the well-shaped ``(2 NH, N) @ (N, U)`` and ``(B, NH, S)`` gates are a view.
        """
        if not self._fused():  # hooks on the submodules (shape traces) see each of them called
            q, k, v = self.q_proj(a_conv), self.k_proj(a_conv), self.v_proj(a)
            qkv = torch.cat([q, k, v], dim=-1)  # (..., 3U)
            gates = torch.cat([self.igate(qkv), self.fgate(qkv)], dim=-1)  # (..., 2 NH)
            return q, k, v, gates.flatten(0, -2).t()
        q, k = headwise_linear(a_conv, self.q_proj.weight, self.k_proj.weight)
        (v,) = headwise_linear(a, self.v_proj.weight)
        if self.q_proj.bias is not None:
            q, k, v = q + self.q_proj.bias, k + self.k_proj.bias, v + self.v_proj.bias
        U = self.inner_dim
        w = torch.cat([self.igate.weight, self.fgate.weight])  # (2 NH, 3U): columns [q | k | v]
        bias = torch.cat([self.igate.bias, self.fgate.bias])[:, None]  # (2 NH, 1)
        gates_t = torch.addmm(bias, w[:, :U], q.flatten(0, -2).t())  # (2 NH, N)
        gates_t = torch.addmm(gates_t, w[:, U:2 * U], k.flatten(0, -2).t())
        gates_t = torch.addmm(gates_t, w[:, 2 * U:], v.flatten(0, -2).t())
        return q, k, v, gates_t

    def _fused(self) -> bool:
        """Whether the fused path may skip calling the submodules: not when one of them has hooks."""
        mods = (self.q_proj, self.k_proj, self.v_proj, self.igate, self.fgate, self.outnorm)
        return not (nn.modules.module._global_forward_hooks
                    or nn.modules.module._global_forward_pre_hooks
                    or any(m._forward_hooks or m._forward_pre_hooks for m in mods))

    def _output(self, x, h, a_conv, b, heads_axis=-2):
        """Residual output from the cell output h (heads on ``heads_axis``, ``DH`` last: ``(B, NH, S,
        DH)`` from a sequence form, ``(B, NH, DH)`` from a step) and the branches ``(..., U)``."""
        if heads_axis != -2 and not self._fused():
            h, heads_axis = h.movedim(heads_axis, -2), -2  # the norm sees (B, S, NH, DH), as before
        h = self.outnorm(h, heads_axis=heads_axis)
        if heads_axis != -2:
            h = h.movedim(heads_axis, -2)  # (B, NH, S, DH) -> (B, S, NH, DH)
        h = h.flatten(-2)  # (..., NH, DH) -> (..., U)
        h = (h + self.learnable_skip * a_conv) * F.silu(b)
        return x + self.dropout(self.proj_down(h))

    def forward(self, x: torch.Tensor, state: mLSTMBlockState | None = None,
                return_state: bool = False):
        """x ``(B, S, E)`` -> ``y (B, S, E)`` [, new state]. ``state`` continues from a previous call."""
        check_block_input(x, self.embedding_dim, 3, "(B, S, E)")
        B, S, E = x.shape
        if state is not None:
            check_block_state(self, state, B, x)
        NH, DH = self.num_heads, self.head_dim
        a, b = self.proj_up(self.norm(x)).split(self.inner_dim, dim=-1)  # (B, S, U) each
        a_conv, conv_state = self.conv1d(a, None if state is None else state.conv)
        a_conv = F.silu(a_conv)
        q, k, v, gates_t = self._qkv_gates(a, a_conv)
        q, k, v = (t.reshape(B, S, NH, DH).transpose(1, 2) for t in (q, k, v))  # (B, NH, S, DH)
        # (2 NH, B * S) -> (B, 2 NH, S) -> (B, NH, S) each
        i_pre, f_pre = gates_t.view(2 * NH, B, S).transpose(0, 1).split(NH, dim=1)

        use_state = state is not None or return_state
        if self.backend == "parallel" and not use_state:
            h = mlstm.parallel_torch(q, k, v, i_pre, f_pre, eps=self.eps)
            cell_state = None
        else:
            init = self.zero_state(B, x) if state is None else state
            init = (init.c, init.n, init.m)
            if self.backend == "recurrent":
                h, cell_state = mlstm.recurrent_torch(q, k, v, i_pre, f_pre, init, eps=self.eps)
            else:
                h, cell_state = mlstm.chunkwise_torch(q, k, v, i_pre, f_pre, self.chunk_size, init,
                                                      eps=self.eps)
        y = self._output(x, h, a_conv, b, heads_axis=1)  # h: (B, NH, S, DH)
        if return_state:
            return y, mLSTMBlockState(conv_state, *cell_state)
        return y

    def step(self, x_t: torch.Tensor, state: mLSTMBlockState | None = None, *, check: bool = True):
        """One step: x_t ``(B, E)`` -> ``y_t (B, E), new state`` (constant memory).

        ``check=False`` skips the input and state checks (a generation loop after its first step,
        whose state comes from the previous call).
        """
        if check:
            check_block_input(x_t, self.embedding_dim, 2, "(B, E)")
        B = x_t.shape[0]
        if state is None:
            state = self.zero_state(B, x_t)
        elif check:
            check_block_state(self, state, B, x_t)
        a, b = self.proj_up(self.norm(x_t)).split(self.inner_dim, dim=-1)  # (B, U) each
        a_conv, conv_state = self.conv1d.step(a, state.conv)
        a_conv = F.silu(a_conv)
        q, k, v, gates_t = self._qkv_gates(a, a_conv)
        q, k, v = (t.reshape(B, self.num_heads, self.head_dim) for t in (q, k, v))  # (B, NH, DH)
        i_pre, f_pre = gates_t.t().split(self.num_heads, dim=1)  # (2 NH, B) -> (B, NH) each
        h, (c, n, m) = mlstm.step_torch(state.c, state.n, state.m, q, k, v, i_pre, f_pre, self.eps)
        return self._output(x_t, h, a_conv, b), mLSTMBlockState(conv_state, c, n, m)

    def extra_repr(self) -> str:
        return (f"embedding_dim={self.embedding_dim}, inner_dim={self.inner_dim}, "
                f"num_heads={self.num_heads}, backend={self.backend!r}, chunk_size={self.chunk_size}")
