"""The measuring helpers: what they call, in which order, and what they count (no measured time or
memory is asserted: the clock is replaced by a counter where the arithmetic matters)."""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import pytest
import torch

from xlstm_edu import timing


def test_median_time_warms_up_then_takes_the_median(monkeypatch):
    """With a clock that reads 0 (start), then 0 -> 5, 5 -> 6, 6 -> 15 around the three timed calls,
    the calls take 5, 1 and 9 s: the median is 5."""
    calls = []
    readings = iter([0.0, 0.0, 5.0, 5.0, 6.0, 6.0, 15.0])
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(readings))
    t = timing.median_time(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 2 + 3
    assert t == 5.0


def test_interleaved_medians_visit_every_function_each_round():
    order = []
    fns = {name: (lambda name=name: order.append(name)) for name in "abc"}
    out = timing.interleaved_medians(fns, rounds=2, repeats=1, warmup=0)
    assert order == ["a", "b", "c", "a", "b", "c"]  # round by round, not a a b b c c
    assert list(out) == ["a", "b", "c"]


def test_limited_threads_sets_and_restores():
    before_numba = numba.get_num_threads()  # first: starting numba's layer resets OpenMP's threads
    before_torch = torch.get_num_threads()
    with timing.limited_threads(1):
        assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1
    assert (torch.get_num_threads(), numba.get_num_threads()) == (before_torch, before_numba)
    with timing.limited_threads(None):
        assert torch.get_num_threads() == before_torch


def _torch_threads_after(code: str) -> int:
    """torch's thread count at the end of ``code``, run in a fresh process (numba not started yet)
    that first sets torch to one thread."""
    prologue = "import torch\ntorch.set_num_threads(1)\nassert torch.get_num_threads() == 1\n"
    env = {**os.environ, "OMP_NUM_THREADS": "2", "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", prologue + code + "\nprint(torch.get_num_threads())"],
                         capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.split()[-1])


def test_limited_threads_restores_what_torch_had_before_numba_started():
    code = "from xlstm_edu import timing\nwith timing.limited_threads(2):\n    pass"
    assert _torch_threads_after(code) == 1


def test_a_numba_kernel_leaves_torch_threads_as_they_were():
    """numba's OpenMP layer shares torch's thread count: a compiled cell loop must not undo a
    ``torch.set_num_threads(1)`` made before it (the layer starts inside the call)."""
    code = ("import numpy as np\nfrom xlstm_edu import lstm\n"
            "lstm.recurrent(np.random.rand(2, 5, 3), np.random.rand(16, 3), np.random.rand(16, 4))")
    assert _torch_threads_after(code) == 1


def test_state_tensors_name_every_tensor_and_count_bytes():
    from collections import namedtuple

    Pair = namedtuple("Pair", "c m")
    state = (Pair(torch.zeros(2, 3), torch.zeros(2, dtype=torch.float64)),
             [torch.zeros(4, dtype=torch.int8), None], {"k": torch.zeros(5, dtype=torch.float16)})
    rows = timing.state_tensors(state)
    assert rows == [("state[0].c", (2, 3), 24), ("state[0].m", (2,), 16), ("state[1][0]", (4,), 4),
                    ("state[2]['k']", (5,), 10)]
    assert timing.state_nbytes(state) == 24 + 16 + 4 + 10
    with pytest.raises(ValueError, match="cannot read a state of type str"):
        timing.state_nbytes("state")


def failing_probe():
    raise RuntimeError("the probe fails on purpose")


def test_peak_memory_reports_a_failing_child():
    with pytest.raises(RuntimeError, match="memory probe tests.test_timing:failing_probe failed"):
        timing.peak_memory_mib("tests.test_timing:failing_probe")


def test_counted_flops_and_largest_tensor():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert timing.count_flops(lambda: a @ b) == 2 * 8 * 16 * 4
    assert timing.count_flops(lambda: a + 1) == 0  # elementwise work is not counted
    assert timing.largest_tensor_bytes(lambda: (a @ b, torch.zeros(100, dtype=torch.float64))) == 800


def test_saved_tensor_storages_counts_what_autograd_keeps():
    """mul saves both factors, exp its result; the excluded inputs are left out."""
    a = torch.randn(3, 4, requires_grad=True)
    b = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert timing.saved_tensor_storages(lambda: a * b) == [((3, 4), 96), ((3, 4), 48)]
    assert timing.saved_tensor_bytes(lambda: a * b, exclude=(a,)) == 96
    assert timing.saved_tensor_bytes(lambda: (a * b).exp(), exclude=(a, b)) == 96  # exp's float64 result
    assert timing.saved_tensor_bytes(lambda: a + b, exclude=()) == 0  # add needs nothing
    with torch.no_grad():
        assert timing.saved_tensor_bytes(lambda: a * b) == 0


def test_saved_tensor_storages_count_a_storage_once_with_its_full_size():
    x = torch.randn(10, requires_grad=True)
    y = x * 2  # a new storage of 10 floats
    rows = timing.saved_tensor_storages(lambda: y[:3] * y[5:8], exclude=(x,))
    assert rows == [((3,), 40)]  # two views of y, saved by mul: one storage of 40 bytes


def test_saved_tensor_storages_see_custom_functions():
    class Square(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x * x
            ctx.save_for_backward(x, y)
            return y

        @staticmethod
        def backward(ctx, grad):
            x, _ = ctx.saved_tensors
            return 2 * x * grad

    x = torch.randn(2, 5, requires_grad=True)
    assert timing.saved_tensor_bytes(lambda: Square.apply(x)) == 2 * 40
    assert timing.saved_tensor_bytes(lambda: Square.apply(x), exclude=(x,)) == 40
