"""Learning-rate schedule: linear warmup, then cosine decay to a floor.

A pure function of the step, so a resumed run recomputes exactly the learning rate an uninterrupted
run would use (no scheduler object to checkpoint). The shape is the usual one for language models
(linear warmup as in Goyal et al. 2017; cosine decay from Loshchilov & Hutter 2017, "SGDR",
without restarts)::

    step < warmup_steps:            lr * (step + 1) / warmup_steps
    warmup_steps <= step < total:   min_lr + (lr - min_lr) * (1 + cos(pi * progress)) / 2
    step >= total_steps:            min_lr

with ``progress = (step - warmup_steps) / (total_steps - warmup_steps)`` going from 0 to 1.
"""

from __future__ import annotations

import math


def lr_at(step: int, *, lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based: the first update is step 0).

    Args:
        step: number of updates already done (>= 0).
        lr: peak learning rate, reached at the end of warmup.
        min_lr: floor of the cosine decay (0 <= min_lr <= lr).
        warmup_steps: length of the linear warmup (0 disables it).
        total_steps: the step at which the cosine reaches ``min_lr``.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if not 0.0 <= min_lr <= lr:
        raise ValueError(f"need 0 <= min_lr <= lr, got min_lr={min_lr}, lr={lr}")
    if warmup_steps < 0 or total_steps < 1:
        raise ValueError(
            f"need warmup_steps >= 0 and total_steps >= 1, got {warmup_steps} and {total_steps}"
        )
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if step >= total_steps:
        return min_lr
    decay_steps = max(total_steps - warmup_steps, 1)
    progress = (step - warmup_steps) / decay_steps  # in [0, 1)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
