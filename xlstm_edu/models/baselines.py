"""Baseline language models for the comparison with xLSTM: an LSTM and a small causal Transformer.

Both have the interface of the package's xLSTM language model (:class:`~xlstm_edu.models.base.
LanguageModel`), so one training loop and one sampler serve all three;
:func:`xlstm_edu.models.sizing.match_parameters` brings them to equal parameter counts.

The Transformer follows GPT-2 (Radford et al. 2019): learned positions, pre-LayerNorm blocks, causal
multi-head self-attention, a GeLU MLP, a final LayerNorm and an output layer tied to the token embedding
(Press & Wolf 2017), initialised N(0, 0.02) with residual projections scaled by 1/sqrt(2 L). The LSTM
model stacks the package's :class:`xlstm_edu.lstm.LSTM` cells (``torch.nn.LSTM`` convention).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_batch, check_bool, check_int, check_number
from ..lstm import LSTM
from .base import PROMPT_STEPS, LanguageModel, ModelConfig, generate_tokens

__all__ = [
    "LSTMLMConfig",
    "LSTMLM",
    "TransformerLMConfig",
    "TransformerLM",
    "causal_attention",
    "causal_attention_reference",
]


# --- LSTM -------------------------------------------------------------------------------------------

@dataclass
class LSTMLMConfig(ModelConfig):
    """A stacked-LSTM language model. Flat; validated on creation."""

    model_name: ClassVar[str] = "lstm"

    vocab_size: int  # number of token ids V
    embedding_dim: int = 128  # token embedding width E
    hidden_size: int = 128  # LSTM state width H of every layer
    num_layers: int = 2  # stacked LSTM layers
    dropout: float = 0.0  # dropout on the embeddings and on every layer's output (0: none)
    tie_weights: bool = True  # output layer = embedding matrix (needs hidden_size == embedding_dim)
    fused: bool = False  # run the same weights through torch's fused LSTM kernel (same outputs, faster)

    def __post_init__(self):
        for name in ("vocab_size", "embedding_dim", "hidden_size", "num_layers"):
            check_int(f"LSTMLMConfig.{name}", getattr(self, name))
        check_number("LSTMLMConfig.dropout", self.dropout, 0.0, 1.0, exclusive_maximum=True)
        for name in ("tie_weights", "fused"):
            check_bool(f"LSTMLMConfig.{name}", getattr(self, name))
        if self.tie_weights and self.hidden_size != self.embedding_dim:
            raise ValueError(
                f"LSTMLMConfig: tie_weights needs hidden_size == embedding_dim, got {self.hidden_size} "
                f"and {self.embedding_dim}; make them equal or set tie_weights=False"
            )


@functools.cache
def _fused_template(input_size: int, hidden_size: int, bias: bool) -> nn.LSTM:
    """A weightless (``meta``) ``torch.nn.LSTM`` that :func:`_run_fused` calls with a cell's weights."""
    return nn.LSTM(input_size, hidden_size, bias=bias, batch_first=True, device="meta")


def _run_fused(cell: LSTM, x: torch.Tensor, state):
    """``cell(x, state)`` computed by torch's fused LSTM kernel (``torch.func.functional_call`` runs a
    ``torch.nn.LSTM`` on the cell's own parameters, so gradients reach them). x ``(B, S, D_in)``."""
    params = {"weight_ih_l0": cell.weight_ih, "weight_hh_l0": cell.weight_hh}
    if cell.bias_ih is not None:
        params.update(bias_ih_l0=cell.bias_ih, bias_hh_l0=cell.bias_hh)
    template = _fused_template(cell.input_size, cell.hidden_size, cell.bias_ih is not None)
    hx = None if state is None else (state[0][None], state[1][None])  # each (1, B, H)
    h, (h_last, c_last) = torch.func.functional_call(template, params, (x, hx))  # (B, S, H)
    return h, (h_last[0], c_last[0])  # (B, S, H), ((B, H), (B, H))


class LSTMLM(LanguageModel):
    """Embedding -> ``num_layers`` x :class:`~xlstm_edu.lstm.LSTM` -> LayerNorm -> linear head.

    The state is a tuple with one ``(h, c)`` per layer, each ``(B, H)``. Init: the embedding (and an
    untied head) ``N(0, 2 / (5 E))`` like the xLSTM model's, the LSTM cells ``torch.nn.LSTM``'s
    ``U(-1/sqrt(H), 1/sqrt(H))``. With ``config.fused`` the same parameters run through
    ``torch.nn.LSTM``'s fused kernel instead of the package's loop over time steps (same outputs;
    3-5x faster to train on 2 CPU cores at a million parameters, 16 x 128 tokens per batch).
    """

    config_class = LSTMLMConfig

    def __init__(self, config: LSTMLMConfig):
        super().__init__()
        if not isinstance(config, LSTMLMConfig):
            raise ValueError(f"LSTMLM needs an LSTMLMConfig, got {type(config).__name__}")
        self.config = c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.embedding_dim)
        self.layers = nn.ModuleList(
            LSTM(c.hidden_size if i else c.embedding_dim, c.hidden_size) for i in range(c.num_layers)
        )
        self.norm = nn.LayerNorm(c.hidden_size)
        self.head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        self.drop = nn.Dropout(c.dropout)
        std = math.sqrt(2 / (5 * c.embedding_dim))  # "small init", as the xLSTM model's embedding
        nn.init.normal_(self.token_embedding.weight, std=std)
        if c.tie_weights:
            self.head.weight = self.token_embedding.weight
        else:
            nn.init.normal_(self.head.weight, std=math.sqrt(2 / (5 * c.hidden_size)))

    def forward(self, idx: torch.Tensor, state=None, return_state: bool = False):
        """``idx (B, S)`` -> ``logits (B, S, V)``, or ``(logits, state)`` with ``return_state``.

        ``state``: the per-layer ``(h, c)`` to start from (``None``: zeros).
        """
        idx = self._tokens(idx, 2, "(B, S)")
        if state is not None:
            self._check_layer_states(state, idx.shape[0], "(h, c)")
        x = self.drop(self.token_embedding(idx))  # (B, S, E)
        new_state = []
        for i, layer in enumerate(self.layers):
            s = None if state is None else state[i]
            x, s = _run_fused(layer, x, s) if self.config.fused else layer(x, s)  # (B, S, H), (h, c)
            x = self.drop(x)
            new_state.append(s)
        logits = self.head(self.norm(x))  # (B, S, V)
        return (logits, tuple(new_state)) if return_state else logits

    def step(self, token: torch.Tensor, state=None):
        """One token ``(B,)`` -> ``(logits (B, V), state)``; ``state=None`` starts from zeros.

        Each layer is one call of torch's fused LSTM cell (``torch.lstm_cell``, the ``torch.nn.LSTM``
        gate order i, f, g, o of the package's cells): equal to ``forward`` on one token.
        """
        token = self._tokens(token, 1, "(B,)")
        if state is None:
            zeros = self.token_embedding.weight.new_zeros(token.shape[0], self.config.hidden_size)
            state = ((zeros, zeros),) * self.config.num_layers
        else:
            self._check_layer_states(state, token.shape[0], "(h, c)")
        return self._generation_next(token, state)

    def _generation_start(self, idx: torch.Tensor):
        """Read the prompt: up to :data:`~xlstm_edu.models.base.PROMPT_STEPS` tokens one
        :meth:`step` at a time (torch's fused cell: cheaper than the fixed cost of a forward pass),
        longer ones by one forward pass (equal to rounding)."""
        B, S0 = idx.shape
        if S0 > PROMPT_STEPS:
            return super()._generation_start(idx)
        zeros = self.token_embedding.weight.new_zeros(B, self.config.hidden_size)
        state = ((zeros, zeros),) * self.config.num_layers
        for t in range(S0):
            logits, state = self._generation_next(idx[:, t], state)
        return logits, state

    def _generation_next(self, token: torch.Tensor, state):
        """:meth:`step` without the checks (the prompt's pass made them)."""
        x = self.drop(F.embedding(token, self.token_embedding.weight))  # (B, E)
        new_state = []
        for layer, (h, c) in zip(self.layers, state):
            h, c = torch.lstm_cell(x, (h, c), layer.weight_ih, layer.weight_hh, layer.bias_ih,
                                   layer.bias_hh)  # (B, H) each
            x = self.drop(h)
            new_state.append((h, c))
        return self.head(self.norm(x)), tuple(new_state)  # (B, V)


# --- Transformer ------------------------------------------------------------------------------------

def _causal_mask(Sq: int, Sk: int, device) -> torch.Tensor:
    """``(Sq, Sk)`` bool, True where query ``i`` (at position ``Sk - Sq + i``) may see key ``j``."""
    return torch.ones(Sq, Sk, dtype=torch.bool, device=device).tril(diagonal=Sk - Sq)


def causal_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal softmax attention, written out (Vaswani et al. 2017).

    q ``(B, NH, Sq, DH)``, k and v ``(B, NH, Sk, DH)`` with ``Sq <= Sk``: the queries are the last
    ``Sq`` positions, and each attends to the keys up to its own position. Returns ``(B, NH, Sq, DH)``.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, NH, Sq, Sk)
    scores = scores.masked_fill(~_causal_mask(q.shape[-2], k.shape[-2], q.device), float("-inf"))
    return torch.softmax(scores, dim=-1) @ v  # (B, NH, Sq, DH)


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """:func:`causal_attention_reference` with torch's fused ``scaled_dot_product_attention``."""
    Sq, Sk = q.shape[-2], k.shape[-2]
    if Sq == Sk:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    if Sq == 1:  # one new query at the end sees every key
        return F.scaled_dot_product_attention(q, k, v)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=_causal_mask(Sq, Sk, q.device))


@dataclass
class TransformerLMConfig(ModelConfig):
    """A GPT-2-style causal Transformer language model. Flat; validated on creation."""

    model_name: ClassVar[str] = "transformer"

    vocab_size: int  # number of token ids V
    context_length: int = 256  # most positions the model can read (learned position embeddings)
    embedding_dim: int = 128  # model width d
    num_heads: int = 4  # attention heads NH; the head width is DH = embedding_dim / num_heads
    num_layers: int = 4  # Transformer blocks L
    mlp_ratio: int = 4  # MLP hidden width = mlp_ratio * embedding_dim
    dropout: float = 0.0  # dropout on the embeddings and on each residual branch (0: none)
    bias: bool = True  # biases in the linear layers
    tie_weights: bool = True  # output layer = token embedding matrix

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "embedding_dim", "num_heads", "num_layers",
                     "mlp_ratio"):
            check_int(f"TransformerLMConfig.{name}", getattr(self, name))
        check_number("TransformerLMConfig.dropout", self.dropout, 0.0, 1.0, exclusive_maximum=True)
        for name in ("bias", "tie_weights"):
            check_bool(f"TransformerLMConfig.{name}", getattr(self, name))
        if self.embedding_dim % self.num_heads:
            raise ValueError(
                f"TransformerLMConfig: embedding_dim ({self.embedding_dim}) must be divisible by "
                f"num_heads ({self.num_heads})"
            )


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with an optional key/value cache."""

    def __init__(self, config: TransformerLMConfig):
        super().__init__()
        d = config.embedding_dim
        self.num_heads = config.num_heads
        self.qkv = nn.Linear(d, 3 * d, bias=config.bias)
        self.proj = nn.Linear(d, d, bias=config.bias)

    def forward(self, x: torch.Tensor, cache=None):
        """x ``(B, S, d)``; cache ``(k, v)`` of earlier positions, each ``(B, NH, T, DH)``, or None.

        Returns ``y (B, S, d)`` and the cache extended by these ``S`` positions.
        """
        B, S, d = x.shape
        NH = self.num_heads
        q, k, v = self.qkv(x).split(d, dim=-1)  # each (B, S, d)
        q, k, v = (t.view(B, S, NH, d // NH).transpose(1, 2) for t in (q, k, v))  # each (B, NH, S, DH)
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)  # (B, NH, T + S, DH)
            v = torch.cat([cache[1], v], dim=2)  # (B, NH, T + S, DH)
        y = causal_attention(q, k, v)  # (B, NH, S, DH)
        y = y.transpose(1, 2).reshape(B, S, d)  # (B, S, NH * DH)
        return self.proj(y), (k, v)


class MLP(nn.Module):
    """Linear -> GeLU -> linear, ``d -> mlp_ratio d -> d``."""

    def __init__(self, config: TransformerLMConfig):
        super().__init__()
        d = config.embedding_dim
        self.fc = nn.Linear(d, config.mlp_ratio * d, bias=config.bias)
        self.proj = nn.Linear(config.mlp_ratio * d, d, bias=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class TransformerBlock(nn.Module):
    """Pre-LN block: ``x + attn(LN(x))``, then ``x + mlp(LN(x))``."""

    def __init__(self, config: TransformerLMConfig):
        super().__init__()
        self.norm_attn = nn.LayerNorm(config.embedding_dim, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.norm_mlp = nn.LayerNorm(config.embedding_dim, bias=config.bias)
        self.mlp = MLP(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache=None):
        """x ``(B, S, d)`` -> ``(B, S, d)`` and the layer's extended cache."""
        a, cache = self.attn(self.norm_attn(x), cache)
        x = x + self.drop(a)
        x = x + self.drop(self.mlp(self.norm_mlp(x)))
        return x, cache


class TransformerLM(LanguageModel):
    """Token + position embeddings -> ``num_layers`` pre-LN blocks -> LayerNorm -> linear head.

    The state (for :meth:`step`) is the key/value cache: a tuple with one ``(k, v)`` per layer, each
    ``(B, NH, T, DH)``, growing by one position per token. Positions are learned up to
    ``context_length``: reading more raises a ``ValueError``; :meth:`generate` instead slides a window
    over the last ``context_length`` tokens (and then recomputes it at every token).
    """

    config_class = TransformerLMConfig

    def __init__(self, config: TransformerLMConfig):
        super().__init__()
        if not isinstance(config, TransformerLMConfig):
            raise ValueError(f"TransformerLM needs a TransformerLMConfig, got {type(config).__name__}")
        self.config = c = config
        self.token_embedding = nn.Embedding(c.vocab_size, c.embedding_dim)
        self.position_embedding = nn.Embedding(c.context_length, c.embedding_dim)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(c) for _ in range(c.num_layers))
        self.norm = nn.LayerNorm(c.embedding_dim, bias=c.bias)
        self.head = nn.Linear(c.embedding_dim, c.vocab_size, bias=False)
        if c.tie_weights:
            self.head.weight = self.token_embedding.weight
        self._init_weights()

    def _init_weights(self) -> None:
        """N(0, 0.02) for matrices, zero biases; the projections that end a residual branch get
        std 0.02 / sqrt(2 L), so the residual stream's variance does not grow with depth (GPT-2)."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            for proj in (block.attn.proj, block.mlp.proj):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * self.config.num_layers))

    def _embeddings(self) -> list[nn.Embedding]:
        return [self.token_embedding, self.position_embedding]

    def forward(self, idx: torch.Tensor, state=None, return_state: bool = False):
        """``idx (B, S)`` -> ``logits (B, S, V)``, or ``(logits, cache)`` with ``return_state``.

        ``state``: a key/value cache of the ``T`` tokens before ``idx`` (``None``: none); positions
        ``T .. T + S - 1`` must be below ``context_length``.
        """
        idx = self._tokens(idx, 2, "(B, S)")
        B, S = idx.shape
        if state is not None:
            self._check_layer_states(state, B, "(k, v)")
        T = 0 if state is None else state[0][0].shape[2]
        if T + S > self.config.context_length:
            raise ValueError(
                f"{T + S} positions exceed context_length = {self.config.context_length} "
                f"({T} cached + {S} new tokens); crop the input to the last context_length tokens "
                "(generate does) or use a model with a longer context"
            )
        return self._forward(idx, state, return_state)

    def _forward(self, idx: torch.Tensor, state, return_state: bool):
        """:meth:`forward` without the checks."""
        S = idx.shape[1]
        T = 0 if state is None else state[0][0].shape[2]
        pos = torch.arange(T, T + S, device=idx.device)  # (S,)
        x = self.drop(self.token_embedding(idx) + self.position_embedding(pos))  # (B, S, d)
        new_state = []
        for i, block in enumerate(self.blocks):
            x, cache = block(x, None if state is None else state[i])  # (B, S, d)
            new_state.append(cache)
        logits = self.head(self.norm(x))  # (B, S, V)
        return (logits, tuple(new_state)) if return_state else logits

    def step(self, token: torch.Tensor, state=None):
        """One token ``(B,)`` with the key/value cache: ``(logits (B, V), cache)``; ``state=None``
        starts empty. The new token's query attends to the cached keys (work linear in their number,
        memory growing by one position per token)."""
        token = self._tokens(token, 1, "(B,)")
        logits, state = self(token[:, None], state, return_state=True)  # (B, 1, V)
        return logits[:, 0], state

    def step_no_cache(self, token: torch.Tensor, state=None):
        """One token ``(B,)`` without a cache: the state is the token ids so far ``(B, T)``, and the
        whole context is recomputed (work quadratic in its length). Returns
        ``(logits (B, V), tokens (B, T + 1))``."""
        new = self._tokens(token, 1, "(B,)")[:, None]  # (B, 1)
        if state is not None:
            state = self._tokens(state, 2, "(B, T)")
            check_batch("state", state, new.shape[0])
        tokens = new if state is None else torch.cat([state, new], dim=1)  # (B, T + 1)
        return self(tokens)[:, -1], tokens

    @property
    def max_context_length(self) -> int:
        """Learned positions: at most ``config.context_length`` tokens per forward pass."""
        return self.config.context_length

    def _window_start(self, idx: torch.Tensor, use_cache: bool):
        window = idx[:, -self.config.context_length:]  # (B, <= C)
        if use_cache:
            logits, cache = self(window, return_state=True)  # (B, S, V)
        else:
            logits, cache = self(window), None
        return logits[:, -1], (cache, window)

    def _window_next(self, token: torch.Tensor, state):
        cache, window = state
        C = self.config.context_length
        window = torch.cat([window, token[:, None]], dim=1)[:, -C:]  # (B, <= C)
        if cache is not None and cache[0][0].shape[2] < C:
            logits, cache = self._forward(token[:, None], cache, True)  # step, unchecked: (B, 1, V)
            logits = logits[:, 0]
        else:  # no cache, or the context is full: recompute the window of the last C tokens
            logits, cache = self(window)[:, -1], None  # (B, V)
        return logits, (cache, window)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None,
                 progress: bool = False, use_cache: bool = True) -> torch.Tensor:
        """Continue each prompt: idx ``(B, S0)`` -> int64 ``(B, S0 + max_new_tokens)``.

        The model reads at most the last ``context_length`` tokens. With ``use_cache``, each new token
        costs one :meth:`step` while the context fits; once it is full (and always with
        ``use_cache=False``) each token recomputes the window of the last ``context_length`` tokens
        (a sliding window: learned positions cannot go further). Both give the same tokens.
        Otherwise as :meth:`xlstm_edu.models.base.LanguageModel.generate`.
        """
        check_bool("use_cache", use_cache)
        return generate_tokens(self, idx, max_new_tokens, lambda i: self._window_start(i, use_cache),
                               self._window_next, temperature=temperature, top_k=top_k,
                               generator=generator, progress=progress)
