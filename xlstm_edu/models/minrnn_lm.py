"""A minGRU / minLSTM language model: embedding -> minRNN blocks -> LayerNorm -> tied head.

The conventions of :class:`~xlstm_edu.models.xlstm_lm.xLSTMLM` (small-init embedding, head tied to
it, a final LayerNorm), with :class:`~xlstm_edu.blocks.minrnn_block.MinRNNBlock` as the blocks.
Training reads whole sequences with the parallel scan; generation reads the prompt with one such
pass and then runs one :meth:`MinRNNLM.step` per token on a state of ``num_layers`` vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_bool, check_choice, check_int, check_number
from ..blocks.components import LayerNorm, proj_up_dim, small_init_
from ..blocks.minrnn_block import CELLS, MinRNNBlock
from ..minrnn import FORMS
from .base import LanguageModel, ModelConfig


@dataclass
class MinRNNLMConfig(ModelConfig):
    """A stack of minGRU or minLSTM blocks. Flat; validated on creation."""

    model_name: ClassVar[str] = "minrnn"

    vocab_size: int = 256  # V
    embedding_dim: int = 128  # E, also the cell width D
    num_layers: int = 2  # blocks
    cell: str = "minlstm"  # "mingru" or "minlstm"
    ff_proj_factor: float = 1.3  # gated feed-forward width factor (as the sLSTM block)
    round_proj_up_to_multiple_of: int = 16  # the feed-forward width rounds up to a multiple of this
    dropout: float = 0.0
    tie_weights: bool = True  # the head reuses the token embedding matrix
    form: str = "parallel"  # how forward runs the cells: "parallel" scan or "sequential" loop

    def __post_init__(self):
        for name in ("vocab_size", "embedding_dim", "num_layers", "round_proj_up_to_multiple_of"):
            check_int(f"MinRNNLMConfig.{name}", getattr(self, name))
        check_choice("MinRNNLMConfig.cell", self.cell, tuple(CELLS))
        check_choice("MinRNNLMConfig.form", self.form, FORMS)
        check_number("MinRNNLMConfig.ff_proj_factor", self.ff_proj_factor, 0.0, exclusive_minimum=True)
        check_number("MinRNNLMConfig.dropout", self.dropout, 0.0, 1.0, exclusive_maximum=True)
        check_bool("MinRNNLMConfig.tie_weights", self.tie_weights)

    @property
    def ff_inner_dim(self) -> int:
        return proj_up_dim(self.embedding_dim, self.ff_proj_factor, self.round_proj_up_to_multiple_of)


class MinRNNLM(LanguageModel):
    """minGRU/minLSTM language model. ``forward(idx (B, S)) -> logits (B, S, V)``; the state is a
    tuple of one :class:`~xlstm_edu.blocks.minrnn_block.MinRNNBlockState` per block."""

    config_class = MinRNNLMConfig
    head_name = "lm_head"

    def __init__(self, config: MinRNNLMConfig):
        super().__init__()
        if not isinstance(config, MinRNNLMConfig):
            raise ValueError(f"config must be a MinRNNLMConfig, got {type(config).__name__}")
        self.config = c = config
        E = c.embedding_dim
        self.token_embedding = nn.Embedding(c.vocab_size, E)
        self.blocks = nn.ModuleList(
            MinRNNBlock(E, E, c.ff_inner_dim, cell=c.cell, dropout=c.dropout, num_blocks=c.num_layers,
                        form=c.form) for _ in range(c.num_layers))
        self.post_blocks_norm = LayerNorm(E)
        self.lm_head = nn.Linear(E, c.vocab_size, bias=False)
        small_init_(self.token_embedding.weight, E)
        if c.tie_weights:
            self.lm_head.weight = self.token_embedding.weight
        else:
            small_init_(self.lm_head.weight, E)

    def zero_state(self, batch_size: int) -> tuple:
        like = self.token_embedding.weight
        return tuple(b.zero_state(batch_size, like) for b in self.blocks)

    def _check_state(self, state, batch_size: int) -> None:
        if not isinstance(state, (tuple, list)) or len(state) != len(self.blocks):
            raise ValueError(f"state must hold one MinRNNBlockState per block ({len(self.blocks)})")

    def forward(self, idx: torch.Tensor, state: tuple | None = None, return_state: bool = False):
        """idx ``(B, S)`` -> logits ``(B, S, V)`` [, state]; ``state`` continues an earlier call."""
        idx = self._tokens(idx, 2, "(B, S)")
        if state is not None:
            self._check_state(state, idx.shape[0])
        x = self.token_embedding(idx)  # (B, S, E)
        new_state = []
        for i, block in enumerate(self.blocks):
            x, s = block(x, None if state is None else state[i], return_state=True)
            new_state.append(s)
        logits = self.lm_head(self.post_blocks_norm(x))  # (B, S, V)
        return (logits, tuple(new_state)) if return_state else logits

    def step(self, token: torch.Tensor, state: tuple | None = None):
        """One token per row: token ``(B,)`` -> ``(logits (B, V), state)``; ``state=None`` starts
        empty. Equal to ``forward`` on the same tokens (to rounding)."""
        token = self._tokens(token, 1, "(B,)")
        if state is None:
            state = self.zero_state(token.shape[0])
        else:
            self._check_state(state, token.shape[0])
        x = self.token_embedding(token)  # (B, E)
        new_state = []
        for block, s in zip(self.blocks, state):
            x, s = block.step(x, s)  # checks s
            new_state.append(s)
        return self.lm_head(self.post_blocks_norm(x)), tuple(new_state)

    def _generation_next(self, token: torch.Tensor, state):
        """:meth:`step` without the checks (the prompt's pass made them)."""
        x = F.embedding(token, self.token_embedding.weight)  # (B, E)
        new_state = []
        for block, s in zip(self.blocks, state):
            x, s = block.step(x, s, check=False)
            new_state.append(s)
        return self.lm_head(self.post_blocks_norm(x)), tuple(new_state)
