"""An xLSTM language model: token embedding -> xLSTM block stack -> final LayerNorm -> tied head.

The final LayerNorm is the stack's ``post_blocks_norm`` (as in the official ``xlstm.xLSTMLMModel``,
whose stack ends with it). Training reads whole sequences in parallel (chunkwise mLSTM); generation
reads the prompt with one such pass, which also returns the recurrent state, then produces each new
token with one constant-memory ``step``: the state does not grow with the text, unlike a Transformer's
key-value cache.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from tqdm.auto import trange

from ..blocks.components import small_init_
from ..blocks.official import official_to_ours
from ..blocks.stack import xLSTMBlockStack, xLSTMStackConfig

MODEL_NAME = "xlstm"  # the ``"model"`` field of a config dict (see xlstm_edu.models.build_model)


@dataclass
class xLSTMLMConfig(xLSTMStackConfig):
    """The stack's fields (embedding_dim, num_blocks, slstm_at, ...) plus the two below."""

    vocab_size: int = 256  # V: number of tokens (256: bytes)
    tie_weights: bool = True  # the output head reuses the token embedding matrix

    def __post_init__(self):
        super().__post_init__()
        V = self.vocab_size
        if isinstance(V, bool) or not isinstance(V, int) or V < 1:
            raise ValueError(f"vocab_size must be a positive integer, got {self.vocab_size!r}")
        if not isinstance(self.tie_weights, bool):
            raise ValueError(f"tie_weights must be True or False, got {self.tie_weights!r}")

    def stack_config(self) -> xLSTMStackConfig:
        """The block stack's part of this config."""
        return xLSTMStackConfig(**{f.name: getattr(self, f.name) for f in fields(xLSTMStackConfig)})

    def to_dict(self) -> dict:
        """Plain dict with ``"model": "xlstm"``; ``build_model`` and :meth:`from_dict` read it back."""
        return {"model": MODEL_NAME, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> xLSTMLMConfig:
        """Inverse of :meth:`to_dict` (the ``"model"`` key is optional; lists become tuples)."""
        d = dict(d)
        model = d.pop("model", MODEL_NAME)
        if model != MODEL_NAME:
            raise ValueError(f"this config is for model {model!r}, not {MODEL_NAME!r}")
        return super().from_dict(d)


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row from ``softmax(logits / temperature)``, restricted to the ``top_k`` most
    likely tokens if given (ties with the k-th logit are kept). logits ``(B, V)`` -> tokens ``(B,)``
    (int64). ``top_k=1`` is greedy. ``generator`` makes the draw reproducible."""
    _check_sampling(temperature, top_k)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1): the k-th largest logit
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def _check_sampling(temperature, top_k) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not 0 < temperature < float("inf"):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r} "
                         "(use top_k=1 for greedy decoding)")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or a positive integer, got {top_k!r}")


class xLSTMLM(nn.Module):
    """xLSTM language model. ``forward(idx (B, S)) -> logits (B, S, V)``.

    Init: token embedding small init ``N(0, 2 / (5 E))`` (official ``reset_parameters``), the head tied
    to it (or small init when ``tie_weights=False``); the blocks as in :mod:`xlstm_edu.blocks`.
    """

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

    @classmethod
    def from_config(cls, config: xLSTMLMConfig | dict) -> xLSTMLM:
        """Build from a config or from its :meth:`~xLSTMLMConfig.to_dict` form."""
        if isinstance(config, dict):
            config = xLSTMLMConfig.from_dict(config)
        return cls(config)

    def to_dict(self) -> dict:
        """The config as a dict (``from_config(model.to_dict())`` builds the same architecture)."""
        return self.config.to_dict()

    def num_parameters(self, exclude_embedding: bool = False) -> int:
        """Number of parameters (tied weights counted once)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.token_embedding.weight.numel() if exclude_embedding else n

    def _check_tokens(self, idx: torch.Tensor, ndim: int, names: str) -> None:
        if not isinstance(idx, torch.Tensor) or idx.ndim != ndim:
            shape = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise ValueError(f"tokens must be an integer tensor {names}, got {shape}")
        if idx.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
            raise ValueError(f"tokens must have an integer dtype, got {idx.dtype}")
        if idx.numel() == 0:
            raise ValueError(f"tokens must be non-empty {names}, got shape {tuple(idx.shape)}")
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= self.config.vocab_size:
            raise ValueError(f"token ids must be in [0, {self.config.vocab_size}), "
                             f"got range [{lo}, {hi}]")

    def forward(self, idx: torch.Tensor, state: tuple | None = None, return_state: bool = False):
        """idx ``(B, S)`` -> logits ``(B, S, V)`` [, state]; ``state`` continues an earlier call."""
        self._check_tokens(idx, 2, "(B, S)")
        x = self.token_embedding(idx)  # (B, S, E)
        if return_state:
            x, state = self.stack(x, state, return_state=True)
            return self.lm_head(x), state
        return self.lm_head(self.stack(x, state))

    def step(self, token: torch.Tensor, state: tuple | None = None):
        """One token per row: token ``(B,)`` -> ``(logits (B, V), state)``; ``state=None`` starts
        empty."""
        self._check_tokens(token, 1, "(B,)")
        x, state = self.stack.step(self.token_embedding(token), state)  # (B, E)
        return self.lm_head(x), state

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None,
                 progress: bool = False) -> torch.Tensor:
        """Continue each prompt: idx ``(B, S0)`` -> ``(B, S0 + max_new_tokens)``.

        The prompt is read with one parallel ``forward`` that returns the recurrent state; then each
        token costs one ``step`` (memory constant in the length). Runs in eval mode (no dropout) and
        restores the previous mode. ``generator`` makes sampling reproducible; ``top_k=1`` is greedy.
        """
        def read_prompt(idx):
            logits, state = self(idx, return_state=True)  # (B, S0, V)
            return logits[:, -1], state

        return generate_tokens(self, idx, max_new_tokens, read_prompt, self.step,
                               temperature=temperature, top_k=top_k, generator=generator,
                               progress=progress)

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


@torch.no_grad()
def generate_tokens(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, read_prompt, next_logits,
                    *, temperature: float = 1.0, top_k: int | None = None,
                    generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """The sampling loop shared by every language model of the package.

    ``read_prompt(idx (B, S0)) -> (logits (B, V), state)`` reads the prompt; ``next_logits(token (B,),
    state) -> (logits, state)`` appends one token. Runs ``model`` in eval mode (no dropout) and
    restores its mode. Returns ``(B, S0 + max_new_tokens)``.
    """
    _check_sampling(temperature, top_k)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    model._check_tokens(idx, 2, "(B, S0)")
    if max_new_tokens == 0:
        return idx.clone()
    was_training = model.training
    model.eval()
    try:
        logits, state = read_prompt(idx)  # (B, V): prediction after the prompt
        new_tokens = []
        for t in trange(max_new_tokens, disable=not progress, desc="generate"):
            token = sample_next_token(logits, temperature, top_k, generator)  # (B,)
            new_tokens.append(token)
            if t + 1 < max_new_tokens:
                logits, state = next_logits(token, state)  # (B, V)
    finally:
        model.train(was_training)
    return torch.cat([idx, torch.stack(new_tokens, dim=1).to(idx.dtype)], dim=1)
