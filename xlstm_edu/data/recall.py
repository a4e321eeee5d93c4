"""Multi-query associative recall (MQAR; Arora et al. 2024, "Zoology"; Beck et al. 2024, Fig. 5).

A sequence of ``context_length`` tokens starts with ``num_pairs`` key-value pairs ``k1 v1 k2 v2 ...``;
later, every key comes back once as a query, followed by its value. The model must predict the value
at each query key: the loss and the accuracy count only those positions (the targets elsewhere are
:data:`~xlstm_edu.data.loader.IGNORE_INDEX`). Example, 3 pairs, context 16 (``.`` is the filler 0)::

    x:  k7 v2  k3 v9  k5 v4  .  .  k5 v4  .  .  k7 v2  k3 v9
    y:   -  -   -  -   -  -  -  -  v4  -  -  -  v2  -  v9  -

Vocabulary (``vocab_size`` V): token 0 is the filler, keys are ``1 ... V/2 - 1``, values
``V/2 ... V - 1``. Within a sequence the keys are distinct, and so are the values; the queries sit in
random two-token slots after the pairs, in random order, with filler between them. The answer after a
query is one of ``V/2`` values: chance accuracy is ``2 / V``.
"""

from __future__ import annotations

import torch

from .._checks import check_int
from .loader import IGNORE_INDEX

FILLER = 0


def check_mqar(num_pairs: int, context_length: int, vocab_size: int) -> None:
    """``ValueError`` unless the pairs and their queries fit (``context_length >= 4 num_pairs``) and
    the vocabulary has ``num_pairs`` distinct keys and values."""
    check_int("num_pairs", num_pairs)
    check_int("context_length", context_length)
    check_int("vocab_size", vocab_size, minimum=4)
    if context_length < 4 * num_pairs:
        raise ValueError(f"context_length {context_length} cannot hold {num_pairs} pairs and their "
                         f"queries: it needs at least 4 * num_pairs = {4 * num_pairs}")
    if num_pairs > vocab_size // 2 - 1:
        raise ValueError(f"vocab_size {vocab_size} has only {vocab_size // 2 - 1} keys, fewer than "
                         f"num_pairs = {num_pairs}")


def mqar(batch_size: int, num_pairs: int, context_length: int, vocab_size: int = 128,
         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` MQAR sequences: inputs ``x (B, T)`` int64 and targets ``y (B, T)`` (the value at
    each query key, :data:`IGNORE_INDEX` elsewhere), ``T = context_length``."""
    check_int("batch_size", batch_size)
    check_mqar(num_pairs, context_length, vocab_size)
    B, N, T = batch_size, num_pairs, context_length
    half = vocab_size // 2
    keys = 1 + torch.rand(B, half - 1, generator=generator).argsort(dim=1)[:, :N]  # (B, N) distinct
    values = half + torch.rand(B, vocab_size - half, generator=generator).argsort(dim=1)[:, :N]
    x = torch.full((B, T), FILLER, dtype=torch.long)
    y = torch.full((B, T), IGNORE_INDEX, dtype=torch.long)
    x[:, 0:2 * N:2], x[:, 1:2 * N:2] = keys, values  # the pairs
    num_slots = (T - 2 * N) // 2  # two-token query slots after the pairs
    slots = torch.rand(B, num_slots, generator=generator).argsort(dim=1)[:, :N]  # (B, N)
    order = torch.rand(B, N, generator=generator).argsort(dim=1)  # (B, N): which pair each asks
    pos = 2 * N + 2 * slots  # (B, N): position of each query key
    asked_keys, asked_values = keys.gather(1, order), values.gather(1, order)
    rows = torch.arange(B)[:, None]  # (B, 1)
    x[rows, pos], x[rows, pos + 1] = asked_keys, asked_values
    y[rows, pos] = asked_values
    return x, y


def mqar_batches(batch_size: int, num_pairs: int, context_length: int, vocab_size: int = 128):
    """A sampler ``sample(generator) -> (x, y)`` of :func:`mqar` batches for
    :func:`xlstm_edu.training.train`."""
    check_int("batch_size", batch_size)
    check_mqar(num_pairs, context_length, vocab_size)

    def sample(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return mqar(batch_size, num_pairs, context_length, vocab_size, generator)

    return sample
