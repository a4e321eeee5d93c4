"""A classifier at every position: any of the package's language models with its own output head.

The formal-language tasks (:mod:`xlstm_edu.data.formal_languages`) read a few input symbols and answer
one of a few classes at every position. :class:`TokenClassifier` keeps a language model's body (token
embedding, layers, final norm) and replaces its head, tied to the embedding or not, by a fresh untied
``Linear(features, num_classes)`` with a bias. ``forward(idx (B, S)) -> logits (B, S, C)``.

:class:`StepClassifier` is a small classifier of the same shape for the two models that are not
language models of the package: a memoryless baseline (each position sees only its own symbol) and
minLSTM (Feng et al. 2024, :func:`xlstm_edu.minrnn.minlstm`). Chapter 13 (the T-maze) uses both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._checks import check_choice, check_int, check_tokens
from .base import LanguageModel


class TokenClassifier(nn.Module):
    """``body``'s layers with a ``num_classes``-way head: ``forward(idx (B, S)) -> (B, S, C)``.

    ``step(token (B,), state)`` and ``return_state`` work as in the body (the logits are class
    logits). ``config`` is the body's; ``to_dict()`` adds ``num_classes``.
    """

    def __init__(self, body: LanguageModel, num_classes: int):
        super().__init__()
        if not isinstance(body, LanguageModel):
            raise ValueError(f"body must be one of the package's language models, got "
                             f"{type(body).__name__}")
        self.num_classes = check_int("num_classes", num_classes, minimum=2)
        old = getattr(body, body.head_name)
        head = nn.Linear(old.in_features, num_classes, bias=True, device=old.weight.device,
                         dtype=old.weight.dtype)
        nn.init.normal_(head.weight, std=(2 / (5 * old.in_features)) ** 0.5)  # small init
        nn.init.zeros_(head.bias)
        setattr(body, body.head_name, head)  # unties a tied head: the embedding keeps its matrix
        self.body = body

    @property
    def config(self):
        return self.body.config

    @property
    def max_context_length(self) -> int | None:
        return self.body.max_context_length

    def forward(self, idx, state=None, return_state: bool = False):
        return self.body(idx, state, return_state=return_state)

    def step(self, token, state=None):
        return self.body.step(token, state)

    def num_parameters(self, exclude_embedding: bool = False) -> int:
        return self.body.num_parameters(exclude_embedding=exclude_embedding)

    def to_dict(self) -> dict:
        return {**self.body.to_dict(), "num_classes": self.num_classes}


def build_classifier(config, num_classes: int) -> TokenClassifier:
    """:class:`TokenClassifier` around the model ``config`` describes
    (:func:`xlstm_edu.models.build_model`)."""
    from . import build_model

    return TokenClassifier(build_model(config), num_classes)


STEP_KINDS = ("memoryless", "minLSTM")


@dataclass
class StepClassifierConfig:
    """A :class:`StepClassifier`. Flat; validated on creation."""

    kind: str  # "memoryless": position t sees only symbol t; "minLSTM": a minLSTM layer per block
    vocab_size: int  # number of input symbols V
    num_classes: int  # number of classes C
    width: int = 32  # embedding and state width E
    num_layers: int = 1  # residual blocks

    def __post_init__(self):
        check_choice("StepClassifierConfig.kind", self.kind, STEP_KINDS)
        check_int("StepClassifierConfig.vocab_size", self.vocab_size)
        check_int("StepClassifierConfig.num_classes", self.num_classes, minimum=2)
        check_int("StepClassifierConfig.width", self.width)
        check_int("StepClassifierConfig.num_layers", self.num_layers)


class _MinLSTMLayer(nn.Module):
    """``h = minlstm(W_f x, W_i x, W_h x)`` (the gates and candidate from the input only)."""

    def __init__(self, width: int):
        super().__init__()
        self.proj = nn.Linear(width, 3 * width)  # -> (k_f, k_i, k_h)
        with torch.no_grad():
            self.proj.bias[:width].fill_(3.0)  # forget pre-activation: start by remembering

    def forward(self, x):  # (B, S, E) -> (B, S, E)
        from ..minrnn import minlstm  # the cell (imported when first used)

        k_f, k_i, k_h = self.proj(x).chunk(3, dim=-1)  # (B, S, E) each
        return minlstm(k_f, k_i, k_h)


class _MLP(nn.Module):
    """``W_2 gelu(W_1 x)`` at each position on its own: no memory at all."""

    def __init__(self, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x):  # (B, S, E) -> (B, S, E)
        return self.net(x)


class StepClassifier(nn.Module):
    """Embedding -> ``num_layers`` residual blocks ``x + layer(LayerNorm(x))`` -> LayerNorm -> head:
    ``forward(idx (B, S)) -> logits (B, S, C)``. The layer is an MLP (``kind="memoryless"``: the
    logits at position ``t`` are a function of ``idx[:, t]`` alone) or a minLSTM layer."""

    def __init__(self, config: StepClassifierConfig):
        super().__init__()
        if not isinstance(config, StepClassifierConfig):
            raise ValueError(f"config must be a StepClassifierConfig, got {type(config).__name__}")
        self.config = config
        E = config.width
        layer = _MLP if config.kind == "memoryless" else _MinLSTMLayer
        self.embedding = nn.Embedding(config.vocab_size, E)
        self.norms = nn.ModuleList(nn.LayerNorm(E) for _ in range(config.num_layers))
        self.layers = nn.ModuleList(layer(E) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(E)
        self.head = nn.Linear(E, config.num_classes)
        self.num_classes = config.num_classes
        self.max_context_length = None

    def forward(self, idx):
        idx = check_tokens("idx", idx, 2, "(B, S)", self.config.vocab_size)
        x = self.embedding(idx)  # (B, S, E)
        for norm, layer in zip(self.norms, self.layers):
            x = x + layer(norm(x))
        return self.head(self.final_norm(x))  # (B, S, C)

    def num_parameters(self, exclude_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return n - (self.embedding.weight.numel() if exclude_embedding else 0)

    def to_dict(self) -> dict:
        return {"model": "step_classifier", **self.config.__dict__}


__all__ = ["TokenClassifier", "build_classifier", "StepClassifier", "StepClassifierConfig",
           "STEP_KINDS"]
