"""Four regular languages of Deletang et al. (2023), as in the xLSTM paper (Beck et al. 2024, Fig. 4).

Every task maps a string of symbols to a class, and every prefix of a string is itself a string of the
task, so one string of length ``L`` carries ``L`` answers: the label at position ``t`` is the answer for
the first ``t + 1`` symbols (the *running* target). Positions without an answer hold
:data:`~xlstm_edu.data.loader.IGNORE_INDEX`.

- ``parity``: bits 0 and 1; the answer is the number of 1s mod 2 (2 classes).
- ``even_pairs``: symbols ``a`` = 0, ``b`` = 1; is the number of ``ab`` and ``ba`` substrings even?
  (1: yes; 2 classes).
- ``cycle_navigation``: 0 = step left, 1 = stay, 2 = step right on a cycle of 5 states, from state 0;
  the answer is the final state (5 classes).
- ``modular_arithmetic`` (without brackets): numbers 0-4 at even positions, operators ``+ - *``
  (tokens 5, 6, 7) at odd ones; the answer is the value mod 5, ``*`` before ``+`` and ``-`` (5 classes).

The modular arithmetic strings alternate numbers and operators, so answers exist at the numbers only
(a prefix that ends with an operator is not an expression). Even pairs is the easy one: the count of
``ab`` and ``ba`` is even exactly when the string ends with the symbol it began with.

Strings are drawn uniformly (each symbol independently, as in Deletang et al.); every draw comes from a
``torch.Generator``, so a seed reproduces the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._checks import check_choice, check_int
from .loader import IGNORE_INDEX

MODULUS = 5  # cycle length of cycle_navigation, modulus of modular_arithmetic
_PLUS, _MINUS, _TIMES = MODULUS, MODULUS + 1, MODULUS + 2  # operator tokens of modular_arithmetic


def parity_labels(x: torch.Tensor) -> torch.Tensor:
    """Running parity of bit strings ``x (B, L)``: the number of 1s so far, mod 2."""
    return torch.cumsum(x, dim=1) % 2


def even_pairs_labels(x: torch.Tensor) -> torch.Tensor:
    """1 where the prefix has an even number of ``ab`` and ``ba`` substrings, i.e. ends with its first
    symbol (every change of symbol is one such pair)."""
    return (x == x[:, :1]).long()


def cycle_navigation_labels(x: torch.Tensor) -> torch.Tensor:
    """Running position on a cycle of :data:`MODULUS` states, starting at 0; symbols 0, 1, 2 move by
    -1, 0, +1."""
    return torch.cumsum(x - 1, dim=1) % MODULUS


def modular_arithmetic_labels(x: torch.Tensor) -> torch.Tensor:
    """Value mod :data:`MODULUS` of each prefix that ends with a number (even positions); multiplication
    binds before ``+`` and ``-``. The state of the left-to-right reading is the sum of the finished
    terms and the (signed) product of the current one."""
    y = torch.full_like(x, IGNORE_INDEX)
    total = torch.zeros_like(x[:, 0])  # (B,) sum of the finished terms
    term = x[:, 0].clone()  # (B,) the current term, with its sign
    y[:, 0] = term % MODULUS
    for t in range(2, x.shape[1], 2):
        op, n = x[:, t - 1], x[:, t]
        new_term = op != _TIMES
        total = torch.where(new_term, total + term, total)
        term = torch.where(op == _TIMES, term * n, torch.where(op == _PLUS, n, -n)) % MODULUS
        y[:, t] = (total + term) % MODULUS
    return y


def _uniform_symbols(num_symbols: int):
    def draw(batch_size: int, length: int, generator: torch.Generator | None) -> torch.Tensor:
        return torch.randint(0, num_symbols, (batch_size, length), generator=generator)
    return draw


def _expressions(batch_size: int, length: int, generator: torch.Generator | None) -> torch.Tensor:
    """Numbers 0-4 at even positions, operators ``+ - *`` (tokens 5, 6, 7) at odd positions."""
    x = torch.randint(0, MODULUS, (batch_size, length), generator=generator)
    ops = torch.randint(_PLUS, _TIMES + 1, (batch_size, length), generator=generator)
    x[:, 1::2] = ops[:, 1::2]
    return x


@dataclass(frozen=True)
class FormalTask:
    """One task: its symbols, classes, a sampler and the running labels."""

    name: str
    num_symbols: int  # input vocabulary size
    num_classes: int  # answer classes
    draw: Callable[[int, int, torch.Generator | None], torch.Tensor]  # (B, L, generator) -> x
    labels: Callable[[torch.Tensor], torch.Tensor]  # x (B, L) -> running labels y (B, L)

    @property
    def chance(self) -> float:
        """Accuracy of guessing: ``1 / num_classes`` (the zero of the scaled accuracy)."""
        return 1.0 / self.num_classes

    def sample(self, batch_size: int, length: int,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_size`` random strings of ``length`` symbols: ``x (B, L)`` int64 and the running
        labels ``y (B, L)`` (:data:`IGNORE_INDEX` where a prefix has no answer)."""
        check_int("batch_size", batch_size)
        check_int("length", length)
        x = self.draw(batch_size, length, generator)  # (B, L)
        return x, self.labels(x)


TASKS: dict[str, FormalTask] = {
    "parity": FormalTask("parity", 2, 2, _uniform_symbols(2), parity_labels),
    "even_pairs": FormalTask("even_pairs", 2, 2, _uniform_symbols(2), even_pairs_labels),
    "cycle_navigation": FormalTask("cycle_navigation", 3, MODULUS, _uniform_symbols(3),
                                   cycle_navigation_labels),
    "modular_arithmetic": FormalTask("modular_arithmetic", MODULUS + 3, MODULUS, _expressions,
                                     modular_arithmetic_labels),
}


def get_task(name: str) -> FormalTask:
    """The task called ``name`` (one of :data:`TASKS`)."""
    return TASKS[check_choice("task", name, TASKS)]


def length_batches(task: FormalTask | str, batch_size: int, min_length: int, max_length: int):
    """A sampler ``sample(generator) -> (x, y)`` for :func:`xlstm_edu.training.train`: each batch has
    one length drawn uniformly from ``[min_length, max_length]`` (the training lengths; Deletang et al.
    draw a length per batch too), then ``batch_size`` strings of that length."""
    task = get_task(task) if isinstance(task, str) else task
    check_int("batch_size", batch_size)
    check_int("min_length", min_length)
    check_int("max_length", max_length, minimum=min_length)

    def sample(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        length = int(torch.randint(min_length, max_length + 1, (1,), generator=generator))
        return task.sample(batch_size, length, generator)

    return sample
