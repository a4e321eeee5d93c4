"""An xLSTM language model: token embedding -> xLSTM block stack -> final LayerNorm -> tied head.

The final LayerNorm is the stack's ``post_blocks_norm`` (as in the official ``xlstm.xLSTMLMModel``,
whose stack ends with it). Training reads whole sequences in parallel (chunkwise mLSTM); generation
reads the prompt with one such pass, which also returns the recurrent state, then produces each new
token with one constant-memory ``step``: the state does not grow with the text, unlike a Transformer's
key-value cache.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_bool, check_int
from ..blocks.components import small_init_
from ..blocks.official import official_to_ours
from ..blocks.stack import xLSTMBlockStack, xLSTMStackConfig
from .base import PROMPT_STEPS, LanguageModel, ModelConfig


@dataclass
class xLSTMLMConfig(ModelConfig, xLSTMStackConfig):
    """The stack's fields (embedding_dim, num_blocks, slstm_at, ...) plus the two below."""

    model_name: ClassVar[str] = "xlstm"

    vocab_size: int = 256  # V: number of tokens (256: bytes)
    tie_weights: bool = True  # the output head reuses the token embedding matrix

    def __post_init__(self):
        super().__post_init__()
        check_int("vocab_size", self.vocab_size)
        check_bool("tie_weights", self.tie_weights)

    def stack_config(self) -> xLSTMStackConfig:
        """The block stack's part of this config."""
        return xLSTMStackConfig(**{f.name: getattr(self, f.name) for f in fields(xLSTMStackConfig)})


class xLSTMLM(LanguageModel):
    """xLSTM language model. ``forward(idx (B, S)) -> logits (B, S, V)``.

    Init: token embedding small init ``N(0, 2 / (5 E))`` (official ``reset_parameters``), the head tied
    to it (or small init when ``tie_weights=False``); the blocks as in :mod:`xlstm_edu.blocks`.
    """

    config_class = xLSTMLMConfig
    head_name = "lm_head"

    def __init__(self, config: xLSTMLMConfig):
        super().__init__()
        if not isinstance(config, xLSTMLMConfig):
            raise ValueError(f"config must be an xLSTMLMConfig, got {type(config).__name__}")
        self.config = config
        E, V = config.embedding_dim, config.vocab_size
        self.token_embedding = nn.Embedding(V, E)
        self.stack = xLSTMBlockStack(config.stack_config())
        self.lm_head = nn.Linear(E, V, bias=False)
        small_init_(self.token_embedding.weight, E)
        if config.tie_weights:
            self.lm_head.weight = self.token_embedding.weight
        else:
            small_init_(self.lm_head.weight, E)

    def forward(self, idx: torch.Tensor, state: tuple | None = None, return_state: bool = False):
        """idx ``(B, S)`` -> logits ``(B, S, V)`` [, state]; ``state`` continues an earlier call."""
        x = self.token_embedding(self._tokens(idx, 2, "(B, S)"))  # (B, S, E)
        if return_state:
            x, state = self.stack(x, state, return_state=True)
            return self.lm_head(x), state
        return self.lm_head(self.stack(x, state))

    def step(self, token: torch.Tensor, state: tuple | None = None):
        """One token per row: token ``(B,)`` -> ``(logits (B, V), state)``; ``state=None`` starts
        empty."""
        token = self._tokens(token, 1, "(B,)")
        x, state = self.stack.step(self.token_embedding(token), state)  # (B, E); checks the state
        return self.lm_head(x), state

    def _generation_start(self, idx: torch.Tensor):
        """Read the prompt: the state goes into a :class:`~xlstm_edu.blocks.stack.StackStepper`
        (checked and prepared once). A prompt of at most :data:`~.base.PROMPT_STEPS` tokens is stepped
        through when the stepper runs compiled (cheaper than a forward pass's fixed cost); a longer
        one, or on other devices, is read by one forward pass (equal to rounding)."""
        B, S0 = idx.shape
        if S0 <= PROMPT_STEPS:
            stepper = self.stack.stepper(self.stack.zero_state(B, self.token_embedding.weight))
            if stepper.compiled:
                for t in range(S0):
                    y = stepper(F.embedding(idx[:, t], self.token_embedding.weight))  # (B, E)
                return self.lm_head(y), stepper
        logits, state = self(idx, return_state=True)  # (B, S, V)
        return logits[:, -1], self.stack.stepper(state)

    def _generation_next(self, token: torch.Tensor, stepper):
        """One unchecked step: token ``(B,)`` (sampled, so valid) -> logits ``(B, V)``."""
        x = F.embedding(token, self.token_embedding.weight)  # (B, E)
        return self.lm_head(stepper(x)), stepper

    def load_official_state_dict(self, official_state_dict: dict) -> xLSTMLM:
        """Copy the weights of an official ``xlstm.xLSTMLMModel`` (its ``state_dict()``).

        Mapping: ``token_embedding.weight`` and ``lm_head.weight`` keep their names;
        ``xlstm_block_stack.<key>`` -> ``stack.<key>`` via
        :func:`xlstm_edu.blocks.official.official_to_ours`.
        With ``tie_weights`` the official head must equal its embedding (it does when the official
        model was built with ``tie_weights=True``).
        """
        prefix = "xlstm_block_stack."
        sd = dict(official_state_dict)
        stack_sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        rest = {k: v for k, v in sd.items() if not k.startswith(prefix)}
        unexpected = sorted(set(rest) - {"token_embedding.weight", "lm_head.weight"})
        if unexpected or "token_embedding.weight" not in rest:
            raise ValueError(f"not an official xLSTMLMModel state dict: unexpected {unexpected}, "
                             f"token_embedding.weight present: {'token_embedding.weight' in rest}")
        mapped = official_to_ours(stack_sd, self.stack)
        head = rest.get("lm_head.weight", rest["token_embedding.weight"])
        if self.config.tie_weights and not torch.equal(head, rest["token_embedding.weight"]):
            raise ValueError("this model ties its head to the embedding, the official weights do not")
        with torch.no_grad():
            self.token_embedding.weight.copy_(rest["token_embedding.weight"])
            if not self.config.tie_weights:
                self.lm_head.weight.copy_(head)
            ours = self.stack.state_dict()
            for key, value in mapped.items():
                ours[key].copy_(value)
        return self
