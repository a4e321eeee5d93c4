"""Batches for next-token prediction: inputs ``x (B, S)``, targets ``y (B, S)``, ``y[:, t] = x[:, t+1]``.

A window of ``S + 1`` consecutive tokens gives one training example: the model reads the first ``S``
and, at every position, predicts the next token. So one window trains ``S`` predictions at once, each
with all the context to its left inside the window.

- :func:`random_batches`: windows at uniformly random offsets, drawn from a ``torch.Generator`` only.
  Saving ``generator.get_state()`` with a checkpoint and restoring it reproduces the batches a run
  would have seen (the training loop, :mod:`xlstm_edu.training.loop`, does this).
- :func:`eval_batches`: consecutive, non-overlapping windows that predict every token of the split
  once (the last window is shorter when ``S`` does not divide the length).
- :func:`spread_windows`: a fixed set of windows spread evenly over a split (a cheap validation set);
- :func:`sample_windows`: the draw behind :func:`random_batches` (used once per update by the loop).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from .._checks import check_positive_int

#: Targets with this value are left out of the loss and of accuracies (positions without an answer).
IGNORE_INDEX = -100

__all__ = ["IGNORE_INDEX", "as_token_tensor", "random_batches", "sample_windows", "spread_windows",
           "eval_batches", "EvalBatches"]


def as_token_tensor(tokens, context_length: int | None = None, name: str = "tokens") -> torch.Tensor:
    """Token ids (1-D numpy array, tensor or list of ints) as a 1-D int64 tensor on its device.

    With ``context_length`` given, the sequence must hold at least one window (``S + 1`` tokens).
    """
    if isinstance(tokens, torch.Tensor):
        t = tokens
    else:
        arr = np.asarray(tokens)
        if arr.dtype == object:
            raise ValueError(f"{name} must be a 1-D sequence of integer token ids")
        t = torch.from_numpy(np.ascontiguousarray(arr)) if arr.size else torch.empty(0, dtype=torch.long)
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D (one long token sequence), got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer token ids, got dtype {t.dtype}")
    t = t.long()  # no copy when already int64
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name} must hold non-negative token ids, got {int(t.min())}")
    if context_length is not None:
        S = check_positive_int("context_length", context_length)
        if t.numel() < S + 1:
            raise ValueError(f"{name} has {t.numel()} tokens; a window needs context_length + 1 = {S+1}")
    return t


def _windows(tokens: torch.Tensor, starts: torch.Tensor, length: int):
    """Inputs and targets of the windows beginning at ``starts`` ``(B,)``: each ``(B, length)``."""
    idx = starts[:, None] + torch.arange(length + 1, device=starts.device)  # (B, length + 1)
    window = tokens[idx.to(tokens.device)]  # (B, length + 1)
    return window[:, :-1], window[:, 1:]


def sample_windows(tokens: torch.Tensor, batch_size: int, context_length: int,
                   generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of windows at uniformly random offsets: ``(x, y)``, each ``(batch_size,
    context_length)``, drawn with one ``randint`` from ``generator``. ``tokens`` is a checked 1-D int64
    tensor (:func:`as_token_tensor`) with more than ``context_length`` tokens; no checks here (it runs
    once per update)."""
    starts = torch.randint(0, tokens.numel() - context_length, (batch_size,),
                           generator=generator)  # (B,) on the CPU
    return _windows(tokens, starts, context_length)


def spread_windows(tokens, n_windows: int, context_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_windows`` windows spread evenly over the whole token sequence (e.g. every held-out play),
    as inputs and targets ``(n, S)`` with ``y[:, t] = x[:, t + 1]`` in the text; ``n`` is
    ``n_windows``, or fewer when the sequence has fewer distinct windows. The same windows every
    time: a fixed, cheap validation set."""
    tokens = as_token_tensor(tokens, context_length, "tokens")
    n_windows = check_positive_int("n_windows", n_windows)
    last = tokens.numel() - context_length - 1  # largest start of a full window
    n = min(n_windows, last + 1)
    starts = torch.linspace(0, last, n).round().long()  # (n,)
    return _windows(tokens, starts, context_length)


def random_batches(tokens, batch_size: int, context_length: int,
                   generator: torch.Generator | None = None, *, num_batches: int | None = None,
                   device=None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Training batches: ``(x, y)``, each ``(batch_size, context_length)`` int64, windows at uniformly
    random offsets (with replacement).

    Args:
        tokens: 1-D token ids (numpy array, tensor or list).
        batch_size, context_length: ``B`` and ``S``.
        generator: a CPU ``torch.Generator``; the batches depend on its state only (``None``: torch's
            global generator). It advances by one ``randint`` draw per batch, so restoring a saved
            ``generator.get_state()`` continues the same sequence of batches.
        num_batches: stop after this many (``None``: never stop).
        device: where the batches go (default: where ``tokens`` are).
    """
    tokens = as_token_tensor(tokens, context_length)
    B = check_positive_int("batch_size", batch_size)
    S = context_length
    if num_batches is not None and (isinstance(num_batches, bool) or not isinstance(num_batches, int)
                                    or num_batches < 0):
        raise ValueError(f"num_batches must be None or an integer >= 0, got {num_batches!r}")
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator, got one on {generator.device}")

    def batches():  # a generator inside, so that bad arguments fail at the call, not at next()
        count = 0
        while num_batches is None or count < num_batches:
            x, y = sample_windows(tokens, B, S, generator)  # each (B, S)
            yield (x, y) if device is None else (x.to(device), y.to(device))
            count += 1

    return batches()


class EvalBatches:
    """Sequential validation batches (see :func:`eval_batches`); iterable any number of times, with a
    ``len`` (for progress bars)."""

    def __init__(self, tokens, batch_size: int, context_length: int, *, max_batches: int | None = None,
                 device=None):
        self.tokens = as_token_tensor(tokens, context_length)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.context_length = context_length
        self.device = device
        n_targets = self.tokens.numel() - 1  # every token but the first is predicted once
        self.num_full_windows = n_targets // context_length
        self.remainder = n_targets % context_length  # the targets of the last, shorter window
        n = -(-self.num_full_windows // self.batch_size) + (self.remainder > 0)  # ceil + 1 short batch
        if max_batches is not None:
            n = min(n, check_positive_int("max_batches", max_batches))
        self.num_batches = n

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        S, B = self.context_length, self.batch_size
        starts = torch.arange(self.num_full_windows) * S  # (num_full_windows,)
        batches = [(chunk, S) for chunk in starts.split(B)]
        if self.remainder:
            batches.append((torch.tensor([self.num_full_windows * S]), self.remainder))
        for chunk, length in batches[:self.num_batches]:
            x, y = _windows(self.tokens, chunk, length)  # each (b, length)
            yield (x, y) if self.device is None else (x.to(self.device), y.to(self.device))


def eval_batches(tokens, batch_size: int, context_length: int, *, max_batches: int | None = None,
                 device=None) -> EvalBatches:
    """Validation batches that predict every token of ``tokens`` exactly once, in order.

    Window ``j`` reads ``tokens[j S : (j + 1) S]`` and predicts ``tokens[j S + 1 : (j + 1) S + 1]``;
    ``batch_size`` windows form a batch ``(x, y)``, each ``(b, S)`` (the last full batch may have
    fewer rows). When ``S`` does not divide ``len(tokens) - 1``, a final batch ``(1, r)`` holds the
    remaining ``r`` targets. Every window starts from an empty context (no state carried over), so the
    loss is that of a model reading at most ``S`` tokens.

    ``max_batches`` keeps only the first batches (a cheaper, still fixed, estimate). ``device``:
    where the batches go (default: where ``tokens`` are).
    """
    return EvalBatches(tokens, batch_size, context_length, max_batches=max_batches, device=device)
