"""Baseline language models for the comparison with xLSTM: an LSTM and a small causal Transformer.

Both have the interface of the package's xLSTM language model, so one training loop and one sampler
serve all three:

- ``forward(idx (B, S) int64) -> logits (B, S, V)`` (``return_state=True`` also returns the state);
- ``step(token (B,), state) -> (logits (B, V), state)``: one token at a time (``state=None`` starts);
- ``generate(idx, max_new_tokens, *, temperature=1.0, top_k=None, generator=None)``;
- ``num_parameters()``, ``config``, ``to_dict()`` and ``Model.from_config(config)``.

:func:`match_parameters` picks the width that brings a model to a target parameter count, so that
models are compared at (nearly) equal size, as in the xLSTM paper's language-modelling experiments.

The Transformer follows GPT-2 (Radford et al. 2019): learned positions, pre-LayerNorm blocks, causal
multi-head self-attention, a GeLU MLP, a final LayerNorm and an output layer tied to the token embedding
(Press & Wolf 2017), initialised N(0, 0.02) with residual projections scaled by 1/sqrt(2 L). The LSTM
model stacks the package's :class:`xlstm_edu.lstm.LSTM` cells (``torch.nn.LSTM`` convention).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..lstm import LSTM
from .xlstm_lm import generate_tokens  # one sampler for every model

__all__ = [
    "LSTMLMConfig",
    "LSTMLM",
    "TransformerLMConfig",
    "TransformerLM",
    "causal_attention",
    "causal_attention_reference",
    "count_parameters",
    "match_parameters",
]


# --- shared pieces ----------------------------------------------------------------------------------

def _check_int(owner: str, name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")


def _check_dropout(owner: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{owner}.dropout must be a number in [0, 1), got {value!r}")


class _Config:
    """``to_dict`` / ``from_dict`` for the flat config dataclasses below; the dict carries a ``"model"``
    field (the name :func:`xlstm_edu.models.build_model` dispatches on)."""

    model_name: ClassVar[str]

    def to_dict(self) -> dict:
        return {"model": self.model_name, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict):
        d = dict(d)
        model = d.pop("model", cls.model_name)
        if model != cls.model_name:
            raise ValueError(f"this config is for model {model!r}, not {cls.model_name!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(names)}")
        return cls(**d)


def _check_tokens(tokens, ndim: int, names: str, vocab_size: int) -> None:
    """Integer tensor of ``ndim`` dimensions (``names``), non-empty, ids in ``[0, vocab_size)``."""
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != ndim:
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"tokens must be an integer tensor {names}, got {shape}")
    if tokens.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise ValueError(f"tokens must have an integer dtype, got {tokens.dtype}")
    if tokens.numel() == 0:
        raise ValueError(f"tokens must be non-empty {names}, got shape {tuple(tokens.shape)}")
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"token ids must be in [0, {vocab_size}), got range [{lo}, {hi}]")


class _LanguageModel(nn.Module):
    """What every model here shares: parameter count, serialisation, token checks and sampling."""

    config_class: ClassVar[type]

    def num_parameters(self, exclude_embedding: bool = False) -> int:
        """Number of trainable values; a tied matrix counts once. ``exclude_embedding`` leaves out the
        token embedding (and, in the Transformer, the position embedding)."""
        n = count_parameters(self)
        return n - sum(e.weight.numel() for e in self._embeddings()) if exclude_embedding else n

    def _embeddings(self) -> list[nn.Embedding]:
        return [self.token_embedding]

    def to_dict(self) -> dict:
        """The config as a dict with its ``"model"`` name (``from_config`` reads it back)."""
        return self.config.to_dict()

    @classmethod
    def from_config(cls, config):
        """Build from a config or its :meth:`to_dict` form."""
        if isinstance(config, dict):
            config = cls.config_class.from_dict(config)
        return cls(config)

    def _check_tokens(self, tokens: torch.Tensor, ndim: int, names: str) -> None:
        _check_tokens(tokens, ndim, names, self.config.vocab_size)

    def _generation_start(self, idx: torch.Tensor, use_cache: bool):
        """Read the prompt ``idx (B, S)``: next-token logits ``(B, V)`` and what the next call needs."""
        logits, state = self(idx, return_state=True)  # (B, S, V)
        return logits[:, -1], state

    def _generation_next(self, token: torch.Tensor, state):
        """Append ``token (B,)``: next-token logits ``(B, V)`` and the new state."""
        return self.step(token, state)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None,
                 progress: bool = False) -> torch.Tensor:
        """Continue each prompt: idx ``(B, S0)`` -> ``(B, S0 + max_new_tokens)``.

        The prompt is read with one ``forward`` that returns the state, then each new token costs one
        ``step``. Runs in eval mode (no dropout) and restores the previous mode. Sampling as in
        :func:`~xlstm_edu.models.xlstm_lm.sample_next_token` (``generator`` makes it reproducible,
        ``top_k=1`` is greedy).
        """
        return self._generate(idx, max_new_tokens, temperature, top_k, generator, progress, True)

    def _generate(self, idx, max_new_tokens, temperature, top_k, generator, progress, use_cache):
        return generate_tokens(self, idx, max_new_tokens,
                               lambda idx: self._generation_start(idx, use_cache),
                               self._generation_next, temperature=temperature, top_k=top_k,
                               generator=generator, progress=progress)


# --- LSTM -------------------------------------------------------------------------------------------

@dataclass
class LSTMLMConfig(_Config):
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
            _check_int("LSTMLMConfig", name, getattr(self, name))
        _check_dropout("LSTMLMConfig", self.dropout)
        for name in ("tie_weights", "fused"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"LSTMLMConfig.{name} must be a bool, got {getattr(self, name)!r}")
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


class LSTMLM(_LanguageModel):
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
        self._check_tokens(idx, 2, "(B, S)")
        if state is not None and len(state) != self.config.num_layers:
            raise ValueError(f"state must hold one (h, c) per layer ({self.config.num_layers}), "
                             f"got {len(state)}")
        x = self.drop(self.token_embedding(idx.long()))  # (B, S, E)
        new_state = []
        for i, layer in enumerate(self.layers):
            s = None if state is None else state[i]
            x, s = _run_fused(layer, x, s) if self.config.fused else layer(x, s)  # (B, S, H), (h, c)
            x = self.drop(x)
            new_state.append(s)
        logits = self.head(self.norm(x))  # (B, S, V)
        return (logits, tuple(new_state)) if return_state else logits

    def step(self, token: torch.Tensor, state=None):
        """One token ``(B,)`` -> ``(logits (B, V), state)``; ``state=None`` starts from zeros."""
        self._check_tokens(token, 1, "(B,)")
        logits, state = self(token[:, None], state, return_state=True)  # (B, 1, V)
        return logits[:, 0], state


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
class TransformerLMConfig(_Config):
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
            _check_int("TransformerLMConfig", name, getattr(self, name))
        _check_dropout("TransformerLMConfig", self.dropout)
        for name in ("bias", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(
                    f"TransformerLMConfig.{name} must be a bool, got {getattr(self, name)!r}"
                )
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


class TransformerLM(_LanguageModel):
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
        self._check_tokens(idx, 2, "(B, S)")
        B, S = idx.shape
        if state is not None and len(state) != self.config.num_layers:
            raise ValueError(f"state must hold one (k, v) per layer ({self.config.num_layers}), "
                             f"got {len(state)}")
        T = 0 if state is None else state[0][0].shape[2]
        if T + S > self.config.context_length:
            raise ValueError(
                f"{T + S} positions exceed context_length = {self.config.context_length} "
                f"({T} cached + {S} new tokens); crop the input to the last context_length tokens "
                "(generate does) or use a model with a longer context"
            )
        pos = torch.arange(T, T + S, device=idx.device)  # (S,)
        x = self.drop(self.token_embedding(idx.long()) + self.position_embedding(pos))  # (B, S, d)
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
        self._check_tokens(token, 1, "(B,)")
        logits, state = self(token[:, None], state, return_state=True)  # (B, 1, V)
        return logits[:, 0], state

    def step_no_cache(self, token: torch.Tensor, state=None):
        """One token ``(B,)`` without a cache: the state is the token ids so far ``(B, T)``, and the
        whole context is recomputed (work quadratic in its length). Returns
        ``(logits (B, V), tokens (B, T + 1))``."""
        self._check_tokens(token, 1, "(B,)")
        new = token[:, None]  # (B, 1)
        tokens = new if state is None else torch.cat([state, new.to(state.dtype)], dim=1)  # (B, T + 1)
        return self(tokens)[:, -1], tokens

    def _generation_start(self, idx: torch.Tensor, use_cache: bool):
        window = idx[:, -self.config.context_length:]  # (B, <= C)
        if use_cache:
            logits, cache = self(window, return_state=True)  # (B, S, V)
        else:
            logits, cache = self(window), None
        return logits[:, -1], (cache, window)

    def _generation_next(self, token: torch.Tensor, state):
        cache, window = state
        C = self.config.context_length
        window = torch.cat([window, token[:, None].to(window.dtype)], dim=1)[:, -C:]  # (B, <= C)
        if cache is not None and cache[0][0].shape[2] < C:
            logits, cache = self.step(token, cache)  # (B, V)
        else:  # no cache, or the context is full: recompute the window of the last C tokens
            logits, cache = self(window)[:, -1], None  # (B, V)
        return logits, (cache, window)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None,
                 progress: bool = False, use_cache: bool = True) -> torch.Tensor:
        """Continue each prompt: idx ``(B, S0)`` -> ``(B, S0 + max_new_tokens)``.

        The model reads at most the last ``context_length`` tokens. With ``use_cache``, each new token
        costs one :meth:`step` while the context fits; once it is full (and always with
        ``use_cache=False``) each token recomputes the window of the last ``context_length`` tokens
        (a sliding window: learned positions cannot go further). Both give the same tokens.
        Otherwise as :meth:`xlstm_edu.models.xlstm_lm.xLSTMLM.generate`.
        """
        if not isinstance(use_cache, bool):
            raise ValueError(f"use_cache must be True or False, got {use_cache!r}")
        return self._generate(idx, max_new_tokens, temperature, top_k, generator, progress, use_cache)


# --- equal parameter counts -------------------------------------------------------------------------

def count_parameters(model: nn.Module) -> int:
    """Trainable values of ``model``; a shared (tied) tensor counts once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _count_for(config, build: Callable[[Any], nn.Module] | None) -> int:
    """Parameter count of the model ``config`` describes, built without allocating memory."""
    if build is None:
        from . import build_model  # the package's dispatch on config types (xLSTM and baselines)

        build = build_model
    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            return count_parameters(build(config))
    except (NotImplementedError, RuntimeError):  # an initialiser that meta tensors do not support
        return count_parameters(build(config))


def match_parameters(make_config, target: int, *, key: str | tuple[str, ...] = "embedding_dim",
                     build: Callable[[Any], nn.Module] | None = None, multiple_of: int = 1,
                     max_width: int = 8192, rtol: float = 0.05):
    """The width that brings a model closest to ``target`` parameters: ``(config, num_parameters)``.

    Args:
        make_config: a function ``width -> config``, or a config whose field(s) ``key`` are set to the
            width (``dataclasses.replace``).
        target: the parameter count to reach.
        key: with a config for ``make_config``: the field, or fields, that take the width (an
            ``LSTMLMConfig`` with tied weights needs ``("embedding_dim", "hidden_size")``).
        build: ``config -> model``; default :func:`xlstm_edu.models.build_model` (the xLSTM model and
            the baselines here).
        multiple_of: widths tried are multiples of this (e.g. ``num_heads``, or 8 for fast kernels).
        max_width: the largest width tried.
        rtol: tolerance. The count grows with the width in steps (about ``2 * multiple_of / width`` of
            the count when it is quadratic in the width, under 2.5% above width 80); a best match
            further than ``rtol * target`` from the target raises ``ValueError``.

    Models are built on the ``meta`` device (no memory used). The count must not decrease as the width
    grows: the search doubles the width until the count reaches the target, then bisects.
    """
    _check_int("match_parameters", "target", target)
    _check_int("match_parameters", "multiple_of", multiple_of)
    _check_int("match_parameters", "max_width", max_width, minimum=multiple_of)
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 < rtol < 1:
        raise ValueError(f"rtol must be in (0, 1), got {rtol!r}")
    if dataclasses.is_dataclass(make_config) and not isinstance(make_config, type):
        base, keys = make_config, (key,) if isinstance(key, str) else tuple(key)
        names = {f.name for f in dataclasses.fields(base)}
        for k in keys:
            if k not in names:
                raise ValueError(f"{type(base).__name__} has no field {k!r}")

        def make_config(width, base=base, keys=keys):
            return dataclasses.replace(base, **dict.fromkeys(keys, width))
    elif not callable(make_config):
        raise ValueError("make_config must be a function width -> config, or a config dataclass")

    counts: dict[int, int] = {}

    def count(m: int) -> int:  # parameters at width m * multiple_of
        if m not in counts:
            counts[m] = _count_for(make_config(m * multiple_of), build)
        return counts[m]

    top = max_width // multiple_of
    lo, hi = 1, 1
    while count(hi) < target:  # gallop: 1, 2, 4, ... (in units of multiple_of)
        if hi == top:
            raise ValueError(f"even width {top * multiple_of} gives only {count(top):,} parameters "
                             f"< target {target:,}; raise max_width")
        lo, hi = hi, min(2 * hi, top)
    while lo < hi:  # smallest m with count(m) >= target
        mid = (lo + hi) // 2
        if count(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    best = min((m for m in (lo - 1, lo) if m >= 1), key=lambda m: abs(count(m) - target))
    n = count(best)
    if abs(n - target) > rtol * target:
        raise ValueError(
            f"no width within rtol={rtol} of {target:,} parameters: width {best * multiple_of} gives "
            f"{n:,}; change multiple_of, rtol or the other sizes"
        )
    return make_config(best * multiple_of), n
