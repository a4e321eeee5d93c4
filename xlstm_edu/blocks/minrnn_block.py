"""A residual block around minGRU or minLSTM (Feng et al. 2024), laid out like the sLSTM block.

::

    x_norm = LayerNorm(x)
    k      = W x_norm + b                         # (B, S, n_gates * D): k_z, k_h or k_f, k_i, k_h
    h      = mingru(k_z, k_h) | minlstm(k_f, k_i, k_h)    # xlstm_edu.minrnn, parallel scan
    x      = x + W_out dropout(h)                         # D -> E
    y      = x + GatedFeedForward(LayerNorm(x))

Unlike the sLSTM block there is no convolution, no heads and no recurrent matrix ``R``: the gates
see only ``x_t``, which is what lets :mod:`xlstm_edu.minrnn` run the sequence as one scan. The
state is the cell's ``h (B, D)``; :meth:`MinRNNBlock.step` runs one step of the same recurrence.
Init: ``W`` and ``W_out`` small init / Wang init (as the other blocks), biases 0 except the
minLSTM forget gate (+1) and the minGRU update gate (-1): both start towards remembering.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .. import minrnn
from .._checks import check_choice
from .components import (
    GatedFeedForward,
    LayerNorm,
    check_block_input,
    check_block_state,
    small_init_,
    wang_init_,
)

#: cell name -> number of pre-activations it reads
CELLS = {"mingru": 2, "minlstm": 3}


class MinRNNBlockState(NamedTuple):
    """Recurrent state of one minGRU/minLSTM block."""

    h: torch.Tensor  # (B, D): the cell's hidden state


class MinRNNBlock(nn.Module):
    """One minGRU or minLSTM block (both residuals included): x ``(B, S, E)`` -> ``(B, S, E)``.

    Args:
        embedding_dim: E, the residual stream.
        hidden_dim: D, the cell's width.
        ff_inner_dim: width of the gated feed-forward.
        cell: ``"mingru"`` or ``"minlstm"``.
        dropout: on the cell output and in the feed-forward.
        num_blocks: blocks in the stack (for ``wang_init_``).
        form: ``"parallel"`` (log-space scan) or ``"sequential"`` (the loop) for sequences.
    """

    def __init__(self, embedding_dim: int, hidden_dim: int, ff_inner_dim: int, cell: str = "minlstm",
                 dropout: float = 0.0, num_blocks: int = 1, form: str = "parallel"):
        super().__init__()
        check_choice("cell", cell, tuple(CELLS))
        check_choice("form", form, minrnn.FORMS)
        self.embedding_dim, self.hidden_dim, self.cell, self.form = embedding_dim, hidden_dim, cell, form
        self.num_blocks = num_blocks
        self.norm = LayerNorm(embedding_dim)
        self.proj_in = nn.Linear(embedding_dim, CELLS[cell] * hidden_dim)
        self.proj_out = nn.Linear(hidden_dim, embedding_dim, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.ffn_norm = LayerNorm(embedding_dim)
        self.ffn = GatedFeedForward(embedding_dim, ff_inner_dim, num_blocks=num_blocks, dropout=dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        small_init_(self.proj_in.weight, self.embedding_dim)
        wang_init_(self.proj_out.weight, self.embedding_dim, self.num_blocks)
        with torch.no_grad():
            self.proj_in.bias.zero_()
            D = self.hidden_dim
            self.proj_in.bias[:D] = 1.0 if self.cell == "minlstm" else -1.0  # k_f up / k_z down
        self.norm.reset_parameters()
        self.ffn_norm.reset_parameters()

    def zero_state(self, batch_size: int, like: torch.Tensor) -> MinRNNBlockState:
        """``h = 0`` (dtype/device of ``like``)."""
        return MinRNNBlockState(like.new_zeros(batch_size, self.hidden_dim))

    def _preacts(self, x_norm: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``k_z, k_h`` or ``k_f, k_i, k_h``, each ``(..., D)``."""
        return self.proj_in(x_norm).split(self.hidden_dim, dim=-1)

    def _output(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        x = x + self.proj_out(self.dropout(h))  # (..., D) -> (..., E)
        return x + self.ffn(self.ffn_norm(x))

    def forward(self, x: torch.Tensor, state: MinRNNBlockState | None = None,
                return_state: bool = False):
        """x ``(B, S, E)`` -> ``y (B, S, E)`` [, new state]. ``state`` continues a previous call."""
        check_block_input(x, self.embedding_dim, 3, "(B, S, E)")
        if state is not None:
            check_block_state(self, state, x.shape[0], x)
        cell = minrnn.mingru if self.cell == "mingru" else minrnn.minlstm
        h, h_last = cell(*self._preacts(self.norm(x)), form=self.form,
                         initial_state=None if state is None else state.h,
                         return_state=True)  # (B, S, D), (B, D)
        y = self._output(x, h)
        return (y, MinRNNBlockState(h_last)) if return_state else y

    def step(self, x_t: torch.Tensor, state: MinRNNBlockState | None = None, *, check: bool = True):
        """One step: x_t ``(B, E)`` -> ``y_t (B, E), new state``."""
        if check:
            check_block_input(x_t, self.embedding_dim, 2, "(B, E)")
        if state is None:
            state = self.zero_state(x_t.shape[0], x_t)
        elif check:
            check_block_state(self, state, x_t.shape[0], x_t)
        step = minrnn.mingru_step if self.cell == "mingru" else minrnn.minlstm_step
        h = step(*self._preacts(self.norm(x_t)), state.h)  # (B, D)
        return self._output(x_t, h), MinRNNBlockState(h)

    def extra_repr(self) -> str:
        return (f"cell={self.cell!r}, embedding_dim={self.embedding_dim}, "
                f"hidden_dim={self.hidden_dim}, form={self.form!r}")
