"""A classifier at every position: any of the package's language models with its own output head.

The formal-language tasks (:mod:`xlstm_edu.data.formal_languages`) read a few input symbols and answer
one of a few classes at every position. :class:`TokenClassifier` keeps a language model's body (token
embedding, layers, final norm) and replaces its head, tied to the embedding or not, by a fresh untied
``Linear(features, num_classes)`` with a bias. ``forward(idx (B, S)) -> logits (B, S, C)``.
"""

from __future__ import annotations

from torch import nn

from .._checks import check_int
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


__all__ = ["TokenClassifier", "build_classifier"]
