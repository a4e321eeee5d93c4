"""What every language model of the package shares: configs as dicts, token checks, sampling.

Every model (the xLSTM in :mod:`~xlstm_edu.models.xlstm_lm`, the LSTM and Transformer baselines in
:mod:`~xlstm_edu.models.baselines`) subclasses :class:`LanguageModel` and has:

- ``forward(idx (B, S)) -> logits (B, S, V)`` (``return_state=True`` also returns the state);
- ``step(token (B,), state) -> (logits (B, V), state)``: one token at a time (``state=None`` starts);
- ``generate(idx, max_new_tokens, *, temperature, top_k, generator)``: one sampling loop for all;
- ``num_parameters()``, ``config``, ``to_dict()``, ``Model.from_config(config)``;
- ``max_context_length``: the longest input it can read (``None``: any length).

Token ids may come in any integer dtype; they are checked (:func:`xlstm_edu._checks.check_tokens`)
and read as int64. Generated sequences are int64.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
from torch import nn

from .._checks import check_batch, check_int, check_number, check_tokens
from .._progress import trange

#: generation reads a prompt of up to this many tokens one step at a time where a model's step is
#: cheap (the recurrent models on the CPU), longer ones with one forward pass: a forward pass has a
#: fixed cost of ~100 steps of a ~1M-parameter model on one CPU thread
PROMPT_STEPS = 32


class ModelConfig:
    """``to_dict`` / ``from_dict`` for the flat config dataclasses of the models; the dict carries a
    ``"model"`` field naming the architecture (:func:`xlstm_edu.models.build_model` dispatches on it)."""

    model_name: ClassVar[str]

    def to_dict(self) -> dict:
        return {"model": self.model_name, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict):
        """Inverse of :meth:`to_dict` (the ``"model"`` key is optional); unknown keys raise."""
        d = dict(d)
        model = d.pop("model", cls.model_name)
        if model != cls.model_name:
            raise ValueError(f"this config is for model {model!r}, not {cls.model_name!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; known: {sorted(names)}")
        return cls(**d)


def count_parameters(model: nn.Module) -> int:
    """Trainable values of ``model``; a shared (tied) tensor counts once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class LanguageModel(nn.Module):
    """The shared part of the package's language models (see the module docstring)."""

    config_class: ClassVar[type]
    head_name: ClassVar[str] = "head"  # the attribute holding the output layer (Linear(E, V))

    @property
    def max_context_length(self) -> int | None:
        """The most tokens one forward pass can read; ``None``: any number (recurrent models)."""
        return None

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

    def _tokens(self, tokens: torch.Tensor, ndim: int, names: str) -> torch.Tensor:
        """Checked token ids as int64 (see :func:`xlstm_edu._checks.check_tokens`)."""
        return check_tokens("tokens", tokens, ndim, names, self.config.vocab_size)

    def _check_layer_states(self, state, batch_size: int, what: str) -> None:
        """A state with one entry per layer (``what``, e.g. ``"(h, c)"``), each tensor with
        ``batch_size`` rows, on the model's device and in its dtype."""
        layers = self.config.num_layers
        if not isinstance(state, (tuple, list)) or len(state) != layers:
            raise ValueError(f"state must hold one {what} per layer ({layers})")
        check_batch("state", state, batch_size, like=self.token_embedding.weight)

    # --- generation: the model-specific parts ---

    def _generation_start(self, idx: torch.Tensor):
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
        """Continue each prompt: idx ``(B, S0)`` -> int64 ``(B, S0 + max_new_tokens)``.

        The prompt is read with one ``forward`` that returns the state, then each new token costs one
        ``step``. Runs in eval mode (no dropout) and restores the previous mode. Sampling as in
        :func:`sample_next_token` (``generator`` makes it reproducible, ``top_k=1`` is greedy).
        """
        return generate_tokens(self, idx, max_new_tokens, self._generation_start, self._generation_next,
                               temperature=temperature, top_k=top_k, generator=generator,
                               progress=progress)


def check_sampling(temperature, top_k) -> None:
    check_number("temperature", temperature, 0.0, exclusive_minimum=True)
    if top_k is not None:
        check_int("top_k", top_k)


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row from ``softmax(logits / temperature)``, restricted to the ``top_k`` most
    likely tokens if given (ties with the k-th logit are kept). logits ``(B, V)`` -> tokens ``(B,)``
    (int64). ``top_k=1`` is greedy. ``generator`` makes the draw reproducible.

    The arithmetic is in float64, and the largest logit of each row is subtracted before dividing by
    the temperature, so any positive temperature works: a tiny one gives ``-inf`` for the others and
    ``0`` for the largest (greedy), never ``inf - inf``.
    """
    check_sampling(temperature, top_k)
    return _sample(logits, temperature, top_k, generator)


def _sample(logits: torch.Tensor, temperature: float, top_k: int | None, generator) -> torch.Tensor:
    """:func:`sample_next_token` without the argument checks."""
    logits = logits.double()
    logits = (logits - logits.amax(-1, keepdim=True)) / temperature  # (B, V), max 0 per row
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest logit
        logits = logits.masked_fill(logits < kth, -math.inf)
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def _sampler(temperature: float, top_k: int | None, generator):
    """``sample(logits (B, V)) -> tokens (B,)`` with the draws of :func:`sample_next_token`.

    ``top_k=1`` takes the largest logit of each row (``topk``, no softmax and no random draw) when it
    is unique; a row whose two largest logits are equal (or NaN) goes to :func:`sample_next_token`,
    which draws among the tied tokens, as before. So the tokens equal :func:`sample_next_token`'s
    for the same generator; only ``generator`` is not advanced by the greedy steps.
    """
    if top_k != 1:
        return lambda logits: _sample(logits, temperature, top_k, generator)

    def greedy(logits):
        if logits.shape[-1] < 2:
            return _sample(logits, temperature, top_k, generator)
        values, indices = torch.topk(logits, 2, dim=-1)  # (B, 2) each
        if not bool((values[:, 0] > values[:, 1]).all()):  # a tie (or NaN) in some row
            return _sample(logits, temperature, top_k, generator)
        return indices[:, 0]

    return greedy


@torch.no_grad()
def generate_tokens(model: LanguageModel, idx: torch.Tensor, max_new_tokens: int, read_prompt,
                    next_logits, *, temperature: float = 1.0, top_k: int | None = None,
                    generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """The sampling loop shared by every language model of the package.

    ``read_prompt(idx (B, S0)) -> (logits (B, V), state)`` reads the prompt; ``next_logits(token (B,),
    state) -> (logits, state)`` appends one token (the models' ``_generation_next`` skips the checks
    that the prompt's pass made once). Runs ``model`` in eval mode (no dropout) and restores its mode.
    Every argument is checked before the model runs. The tokens are written into one preallocated
    int64 ``(B, S0 + max_new_tokens)`` tensor, which is returned.
    """
    check_sampling(temperature, top_k)
    check_int("max_new_tokens", max_new_tokens, minimum=0)
    idx = model._tokens(idx, 2, "(B, S0)")
    if generator is not None and generator.device != idx.device:
        raise ValueError(f"generator is on {generator.device}, the prompt on {idx.device}")
    if max_new_tokens == 0:
        return idx.clone()
    B, S0 = idx.shape
    out = idx.new_empty(B, S0 + max_new_tokens)  # (B, S0 + N), int64
    out[:, :S0] = idx
    sample = _sampler(temperature, top_k, generator)
    steps = trange(max_new_tokens, desc="generate") if progress else range(max_new_tokens)
    was_training = model.training
    model.eval()
    try:
        logits, state = read_prompt(idx)  # (B, V): prediction after the prompt
        for t in steps:
            token = sample(logits)  # (B,)
            out[:, S0 + t] = token
            if t + 1 < max_new_tokens:
                logits, state = next_logits(token, state)  # (B, V)
    finally:
        model.train(was_training)
    return out
