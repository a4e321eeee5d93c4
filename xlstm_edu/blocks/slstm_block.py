"""The sLSTM block: post up-projection, like a Transformer block (Beck et al. 2024, fig. 10).

::

    x_norm = LayerNorm(x)
    x_conv = swish(conv1d(x_norm))                        # causal, kernel 4, per feature
    i~, f~ = headwise(x_conv) + b_i, b_f                  # gates that see a little context
    z~, o~ = headwise(x_norm) + b_z, b_o
    h      = sLSTM(i~, f~, z~, o~, R)                     # xlstm_edu.slstm (NH heads, memory mixing)
    x      = x + MultiHeadLayerNorm(dropout(h))
    y      = x + GatedFeedForward(LayerNorm(x))           # up-projection after the cell (PF ~4/3)

The cell runs in :func:`xlstm_edu.slstm.recurrent_fused` (``backend="fused"``, the default:
compiled forward and backward passes on the CPU, the torch reference elsewhere) or in the readable
torch loop :func:`xlstm_edu.slstm.recurrent_torch` (``backend="torch"``); both compute the same.

The computation is that of the official ``xlstm`` 2.0.6 ``sLSTMBlock`` (``sLSTMLayer`` with
``sLSTMCell``, any backend), flattened into one module; :mod:`xlstm_edu.blocks.official` maps the
names. Official init: gate weights small init, ``R = 0``, forget-gate bias
"powerlaw_blockdependent", other biases 0.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import slstm
from .components import (
    CausalConv1d,
    GatedFeedForward,
    LayerNorm,
    LinearHeadwise,
    MultiHeadLayerNorm,
    check_block_input,
    check_block_state,
    powerlaw_blockdependent_forget_bias,
    small_init_,
)

#: How the block runs the cell over a sequence: the compiled kernels or the torch reference loop.
SLSTM_BACKENDS = ("fused", "torch")


class sLSTMBlockState(NamedTuple):
    """Recurrent state of one sLSTM block (constant size in the sequence length)."""

    conv: torch.Tensor  # (B, K - 1, E): the last K - 1 inputs of the convolution
    h: torch.Tensor  # (B, NH, DH): hidden state (feeds R)
    c: torch.Tensor  # (B, NH, DH): cell state (stabilized)
    n: torch.Tensor  # (B, NH, DH): normalizer state (stabilized)
    m: torch.Tensor  # (B, NH, DH): stabilizer; -inf before the first step


class sLSTMBlock(nn.Module):
    """One sLSTM block (both residuals included): x ``(B, S, E)`` -> ``(B, S, E)``.

    Args:
        embedding_dim: E, also the sLSTM hidden size.
        ff_inner_dim: width of the gated feed-forward (official: ``1.3 E`` rounded up to 64).
        num_heads: NH, sLSTM heads (``DH = E / NH``); R is block-diagonal over the heads.
        conv1d_kernel_size: K, taps of the causal convolution feeding the i and f gates.
        dropout: dropout on the sLSTM output (before the group norm) and in the feed-forward.
        block_idx, num_blocks: position in the stack (for the forget-gate bias and ``wang_init_``).
        backend: ``"fused"`` (:func:`xlstm_edu.slstm.recurrent_fused`) or ``"torch"``
            (:func:`xlstm_edu.slstm.recurrent_torch`) for sequences; an attribute, so it can be
            switched on a built block. :meth:`step` always runs :func:`xlstm_edu.slstm.step_torch`.
    """

    def __init__(self, embedding_dim: int, ff_inner_dim: int, num_heads: int = 4,
                 conv1d_kernel_size: int = 4, dropout: float = 0.0, block_idx: int = 0,
                 num_blocks: int = 1, backend: str = "fused"):
        super().__init__()
        if embedding_dim % num_heads:
            raise ValueError(f"embedding_dim ({embedding_dim}) must be a multiple of num_heads "
                             f"({num_heads})")
        if backend not in SLSTM_BACKENDS:
            raise ValueError(f"backend must be one of {SLSTM_BACKENDS}, got {backend!r}")
        self.backend = backend
        self.embedding_dim, self.num_heads = embedding_dim, num_heads
        self.head_dim = DH = embedding_dim // num_heads
        self.block_idx, self.num_blocks = block_idx, num_blocks

        self.norm = LayerNorm(embedding_dim)
        self.conv1d = CausalConv1d(embedding_dim, conv1d_kernel_size)
        self.igate = LinearHeadwise(embedding_dim, num_heads)  # from the convolved input
        self.fgate = LinearHeadwise(embedding_dim, num_heads)  # from the convolved input
        self.zgate = LinearHeadwise(embedding_dim, num_heads)  # from the normed input
        self.ogate = LinearHeadwise(embedding_dim, num_heads)  # from the normed input
        self.R = nn.Parameter(torch.empty(num_heads, DH, 4, DH))  # [head, d_in, gate i/f/z/o, d_out]
        self.b = nn.Parameter(torch.empty(num_heads, 4, DH))  # [head, gate i/f/z/o, d]
        self.outnorm = MultiHeadLayerNorm(embedding_dim)
        self.dropout = nn.Dropout(dropout)
        self.ffn_norm = LayerNorm(embedding_dim)
        self.ffn = GatedFeedForward(embedding_dim, ff_inner_dim, num_blocks=num_blocks, dropout=dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official init: small init gates, ``R = 0``, powerlaw forget bias, other biases 0."""
        for gate in (self.igate, self.fgate, self.zgate, self.ogate):
            small_init_(gate.weight, self.embedding_dim)
        self.conv1d.reset_parameters()
        with torch.no_grad():
            self.R.zero_()
            self.b.zero_()
            forget_bias = powerlaw_blockdependent_forget_bias(self.head_dim, self.block_idx,
                                                              self.num_blocks)
            self.b[:, 1] = forget_bias.to(self.b)  # same for every head
        self.norm.reset_parameters()
        self.outnorm.reset_parameters()
        self.ffn_norm.reset_parameters()

    def zero_state(self, batch_size: int, like: torch.Tensor) -> sLSTMBlockState:
        """The empty state (dtype/device of ``like``): zeros and ``m = -inf``."""
        h, c, n, m = slstm.zero_state(batch_size, self.num_heads, self.head_dim, like)
        return sLSTMBlockState(self.conv1d.zero_state(batch_size, like), h, c, n, m)

    def _gate_preacts(self, x_norm: torch.Tensor, x_conv: torch.Tensor):
        """Pre-activations ``W x + b`` of the gates i, f, z, o, each ``(..., NH, DH)``."""
        gates = (self.igate(x_conv), self.fgate(x_conv), self.zgate(x_norm), self.ogate(x_norm))
        shape = (*x_norm.shape[:-1], self.num_heads, self.head_dim)
        return [g.reshape(shape) + self.b[:, j] for j, g in enumerate(gates)]  # (..., NH, DH)

    def _output(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Both residual sums, from the cell output h ``(..., NH, DH)``."""
        x = x + self.outnorm(self.dropout(h)).flatten(-2)  # (..., NH, DH) -> (..., E)
        return x + self.ffn(self.ffn_norm(x))

    def forward(self, x: torch.Tensor, state: sLSTMBlockState | None = None,
                return_state: bool = False):
        """x ``(B, S, E)`` -> ``y (B, S, E)`` [, new state]. ``state`` continues from a previous call."""
        check_block_input(x, self.embedding_dim, 3, "(B, S, E)")
        if state is not None:
            check_block_state(self, state, x.shape[0], x)
        x_norm = self.norm(x)
        x_conv, conv_state = self.conv1d(x_norm, None if state is None else state.conv)
        x_conv = F.silu(x_conv)
        gates = [g.transpose(1, 2) for g in self._gate_preacts(x_norm, x_conv)]  # (B, NH, S, DH)
        cell_state = None if state is None else tuple(state[1:])
        if self.backend not in SLSTM_BACKENDS:  # the attribute may have been set after __init__
            raise ValueError(f"backend must be one of {SLSTM_BACKENDS}, got {self.backend!r}")
        recurrent = slstm.recurrent_fused if self.backend == "fused" else slstm.recurrent_torch
        h, cell_state = recurrent(*gates, self.R, cell_state)  # h: (B, NH, S, DH)
        y = self._output(x, h.transpose(1, 2))  # (B, S, NH, DH)
        if return_state:
            return y, sLSTMBlockState(conv_state, *cell_state)
        return y

    def step(self, x_t: torch.Tensor, state: sLSTMBlockState | None = None, *, check: bool = True):
        """One step: x_t ``(B, E)`` -> ``y_t (B, E), new state`` (constant memory).

        ``check=False`` skips validating ``x_t`` and ``state`` (a generation loop whose first step
        checked them)."""
        if check:
            check_block_input(x_t, self.embedding_dim, 2, "(B, E)")
        if state is None:
            state = self.zero_state(x_t.shape[0], x_t)
        elif check:
            check_block_state(self, state, x_t.shape[0], x_t)
        x_norm = self.norm(x_t)
        x_conv, conv_state = self.conv1d.step(x_norm, state.conv)
        gates = self._gate_preacts(x_norm, F.silu(x_conv))  # (B, NH, DH) each
        h, (h, c, n, m) = slstm.step_torch(state.h, state.c, state.n, state.m, *gates, self.R)
        return self._output(x_t, h), sLSTMBlockState(conv_state, h, c, n, m)

    def extra_repr(self) -> str:
        return (f"embedding_dim={self.embedding_dim}, num_heads={self.num_heads}, "
                f"block_idx={self.block_idx}, backend={self.backend!r}")
