"""A T-maze (Bakker 2002): a cue at the start decides which way to turn at the end of a corridor.

An episode with a corridor of length ``N`` is ``N + 2`` observations, one per step, each a symbol::

    step:   0      1 ... N        N + 1
    sees:   cue    corridor       junction     -> decide: left (0) or right (1)

The cue (``CUE_LEFT`` or ``CUE_RIGHT``) is seen only at step 0; at the junction the agent must turn to
the side the cue showed. With ``num_corridor_symbols > 1`` each corridor step shows one of that many
corridor symbols, drawn at random (distractor noise: what the agent sees on the way says nothing about
the goal). The decision is a classification target at the junction (supervised learning); every other
target is :data:`~xlstm_edu.data.loader.IGNORE_INDEX`. Example, ``N = 3``, two corridor symbols::

    x:  CUE_RIGHT  C0  C1  C0  JUNCTION
    y:      -       -   -   -     1

The junction looks the same whichever the cue was, so a policy that sees only the current observation
answers both cues alike: it is right on exactly the episodes of one cue, half of them.
"""

from __future__ import annotations

import torch

from .._checks import check_int
from .loader import IGNORE_INDEX

CUE_LEFT, CUE_RIGHT, JUNCTION = 0, 1, 2
FIRST_CORRIDOR = 3  # corridor symbols are FIRST_CORRIDOR ... FIRST_CORRIDOR + num_corridor_symbols - 1
LEFT, RIGHT = 0, 1  # the decisions (classes)
NUM_ACTIONS = 2


def vocab_size(num_corridor_symbols: int = 1) -> int:
    """The number of observation symbols: two cues, the junction and the corridor symbols."""
    return FIRST_CORRIDOR + check_int("num_corridor_symbols", num_corridor_symbols)


def tmaze(batch_size: int, corridor_length: int, generator: torch.Generator | None = None, *,
          num_corridor_symbols: int = 1, balanced: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` episodes with corridors of ``corridor_length`` steps: observations
    ``x (B, N + 2)`` int64 and targets ``y (B, N + 2)`` (the correct turn at the junction,
    :data:`IGNORE_INDEX` elsewhere). Cues are drawn at random, or, with ``balanced``, exactly half of
    each (the first half left; needs an even ``batch_size``)."""
    B = check_int("batch_size", batch_size)
    N = check_int("corridor_length", corridor_length, minimum=0)
    K = check_int("num_corridor_symbols", num_corridor_symbols)
    if balanced and B % 2:
        raise ValueError(f"balanced episodes need an even batch_size, got {B}")
    if balanced:
        goal = (torch.arange(B) >= B // 2).long()  # (B,): LEFT for the first half
    else:
        goal = torch.randint(0, NUM_ACTIONS, (B,), generator=generator)  # (B,)
    x = torch.empty(B, N + 2, dtype=torch.long)
    x[:, 0] = torch.where(goal == LEFT, CUE_LEFT, CUE_RIGHT)
    x[:, 1:N + 1] = FIRST_CORRIDOR + torch.randint(0, K, (B, N), generator=generator)
    x[:, N + 1] = JUNCTION
    y = torch.full((B, N + 2), IGNORE_INDEX, dtype=torch.long)
    y[:, N + 1] = goal
    return x, y


def tmaze_batches(batch_size: int, min_length: int, max_length: int, *, num_corridor_symbols: int = 1):
    """A sampler ``sample(generator) -> (x, y)`` for :func:`xlstm_edu.training.train`: each batch has
    one corridor length drawn uniformly from ``[min_length, max_length]``, then ``batch_size``
    :func:`tmaze` episodes of that length."""
    check_int("batch_size", batch_size)
    check_int("min_length", min_length, minimum=0)
    check_int("max_length", max_length, minimum=min_length)
    check_int("num_corridor_symbols", num_corridor_symbols)

    def sample(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        length = int(torch.randint(min_length, max_length + 1, (1,), generator=generator))
        return tmaze(batch_size, length, generator, num_corridor_symbols=num_corridor_symbols)

    return sample


__all__ = ["CUE_LEFT", "CUE_RIGHT", "JUNCTION", "FIRST_CORRIDOR", "LEFT", "RIGHT", "NUM_ACTIONS",
           "vocab_size", "tmaze", "tmaze_batches"]
