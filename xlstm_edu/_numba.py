"""Running the compiled (numba) cell loops: how many threads a call gets.

The loops are ``prange`` over independent (batch, head) rows. Waking threads costs more than a small
call's work, and on a busy machine an OpenMP parallel region can stall for milliseconds, so small
calls run on one thread and no call uses more threads than it has rows.
"""

from __future__ import annotations

import numba
import torch

#: below this many multiply-adds per call, the loops run on a single thread
PARALLEL_MIN_WORK = 2_000_000


def call_with_threads(kernel, rows: int, work: float, *args):
    """Call ``kernel(*args)`` on ``min(rows, current numba threads)`` threads (one if ``work``,
    the call's multiply-adds, is small), then restore the thread counts of numba *and* torch.

    With numba's OpenMP threading layer, ``numba.set_num_threads`` sets the OpenMP thread count that
    torch shares, so without the second restore a ``torch.set_num_threads(1)`` made before the call
    would be undone by it."""
    previous_torch = torch.get_num_threads()  # first: starting numba's layer resets OpenMP's count
    previous = numba.get_num_threads()
    n_threads = 1 if work < PARALLEL_MIN_WORK else max(1, min(rows, previous))
    numba.set_num_threads(n_threads)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(previous)
        if torch.get_num_threads() != previous_torch:
            torch.set_num_threads(previous_torch)
