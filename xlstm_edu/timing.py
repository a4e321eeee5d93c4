"""Measuring time and memory: the one place for it, used by the benchmarks, the experiments and the
chapters.

These machines are shared and noisy, so every time here is a median of repeated calls, and things to
compare are timed in interleaved rounds (:func:`interleaved_medians`): a burst of load elsewhere then
slows all of them a little instead of one of them a lot. Times are printed and stored, never asserted
in a test. What can be counted (bytes of a state, FLOPs) is counted instead.

* :func:`median_time`, :func:`interleaved_medians`: wall time of calls;
* :func:`limited_threads`: run torch and numba with a given number of threads inside a block;
* :func:`peak_memory_mib`: peak resident memory of one call, in a fresh child process;
* counted, not measured (the same on every machine, so a test or a chapter may assert on them):
  :func:`count_flops` (FLOPs of the matrix products of a call), :func:`largest_tensor_bytes` (the
  largest tensor a call creates), :func:`saved_tensor_storages` and :func:`saved_tensor_bytes` (what
  autograd keeps for the backward pass: the training memory of a call beyond its inputs),
  :func:`state_tensors` and :func:`state_nbytes` (the tensors of a nested recurrent state and their
  bytes).
"""

from __future__ import annotations

import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Mapping
from contextlib import contextmanager

import torch

from ._checks import check_int, check_number


def median_time(fn: Callable[[], object], *, repeats: int = 7, warmup: int = 1,
                max_seconds: float | None = None) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` untimed calls.

    ``max_seconds`` stops early (after at least 3 timed calls) once the timed calls exceed it. For a
    GPU, ``fn`` must synchronise itself (e.g. end with ``torch.cuda.synchronize()``).
    """
    check_int("repeats", repeats)
    check_int("warmup", warmup, minimum=0)
    if max_seconds is not None:
        check_number("max_seconds", max_seconds, 0, exclusive_minimum=True)
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if max_seconds is not None and len(times) >= 3 and time.perf_counter() - start > max_seconds:
            break
    return statistics.median(times)


def interleaved_medians(fns: Mapping[Hashable, Callable[[], object]], *, rounds: int = 3,
                        repeats: int = 5, warmup: int = 1,
                        max_seconds: float | None = None) -> dict[Hashable, float]:
    """``{key: seconds}``: each function timed in ``rounds`` rounds that visit all of them in turn, each
    visit a :func:`median_time` of ``repeats`` calls; a key's time is the median over its rounds."""
    check_int("rounds", rounds)
    samples: dict[Hashable, list[float]] = {key: [] for key in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            samples[key].append(median_time(fn, repeats=repeats, warmup=warmup,
                                            max_seconds=max_seconds))
    return {key: statistics.median(ts) for key, ts in samples.items()}


@contextmanager
def limited_threads(n: int | None):
    """Run torch and numba with ``n`` threads inside the block (``None``: leave them as they are).

    On a busy machine one thread per process gives steadier timings: a multi-threaded kernel waits at
    every barrier for its slowest thread, and a thread that loses its core stalls all of them.
    """
    if n is None:
        yield
        return
    import numba

    check_int("threads", n)
    # torch first: numba's first call starts its threading layer, which resets the OpenMP threads that
    # torch shares; torch's own setting is read before that, and set last on the way in and out
    old_torch = torch.get_num_threads()
    old_numba = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    torch.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(old_numba)
        torch.set_num_threads(old_torch)


# --- memory ---------------------------------------------------------------------------------------

def peak_memory_mib(target: str, **kwargs) -> float:
    """Peak memory growth (MiB) of one call, measured in a fresh child process (Linux).

    ``target`` is ``"module:function"``; the child imports it and calls ``function(**kwargs)``, which
    prepares everything (inputs, imports, a warm-up on tiny inputs) and returns a zero-argument
    callable. The result is the child's peak resident set size (``VmHWM``) after that call minus its
    resident size just before it. ``kwargs`` must be JSON-serialisable. Large blocks come straight from
    the OS (``MALLOC_MMAP_THRESHOLD_``), so that the peak tracks live tensor memory.
    """
    module, sep, function = target.partition(":")
    if not sep or not module or not function:
        raise ValueError(f"target must look like 'module:function', got {target!r}")
    cmd = [sys.executable, "-m", "xlstm_edu.timing", target, json.dumps(kwargs)]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe {target} failed: {done.stderr.strip().splitlines()[-1:]}")
    return float(done.stdout.strip().splitlines()[-1])


def _probe(target: str, kwargs: dict) -> float:
    """In the child: prepare the call, then measure it (see :func:`peak_memory_mib`)."""
    module, _, function = target.partition(":")
    call = getattr(importlib.import_module(module), function)(**kwargs)
    with open("/proc/self/statm") as fh:
        rss_before = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    call()
    # VmHWM: this process's own peak RSS (ru_maxrss would include the parent's peak across exec)
    with open("/proc/self/status") as fh:
        peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) * 1024
    return (peak - rss_before) / 2**20


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matrix products (matmul, bmm, baddbmm, convolutions, attention) that ``fn()`` runs
    in torch, counted by ``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-add; elementwise
    work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def largest_tensor_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the largest tensor any torch operation creates while ``fn()`` runs (a lower bound of its
    peak memory that does not depend on the allocator or the machine)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class _Largest(TorchDispatchMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self.largest = max(self.largest, t.numel() * t.element_size())
            return out

    with _Largest() as mode:
        fn()
    return mode.largest


def saved_tensor_storages(fn: Callable[[], object], *,
                          exclude=()) -> list[tuple[tuple[int, ...], int]]:
    """What autograd saves for the backward pass while ``fn()`` runs: one ``(shape, bytes)`` row per
    distinct storage, largest first.

    Every tensor an operation saves for its gradient (``torch.autograd.graph.saved_tensors_hooks``
    sees them all, including a custom ``Function``'s ``ctx.save_for_backward``) is traced to its
    storage; views of one storage count once, with the storage's full size (that is what stays
    alive), and ``shape`` is the shape of the first tensor saved on it. Storages of the tensors in
    ``exclude`` (typically the inputs, which exist anyway) are left out. The storages are held until
    ``fn`` returns, so no address is reused and counted twice or not at all. Counted, not measured:
    the same on every machine for a given torch version.
    """
    from torch.autograd.graph import saved_tensors_hooks

    skip = {t.untyped_storage().data_ptr() for t in exclude}
    seen: dict[int, tuple[tuple[int, ...], int, torch.Tensor]] = {}

    def pack(t):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in skip and ptr not in seen:
            seen[ptr] = (tuple(int(n) for n in t.shape), storage.nbytes(), t)  # t: keep it alive
        return t

    with saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sorted(((shape, nbytes) for shape, nbytes, _ in seen.values()), key=lambda r: -r[1])


def saved_tensor_bytes(fn: Callable[[], object], *, exclude=()) -> int:
    """Total bytes of :func:`saved_tensor_storages`: the memory autograd keeps from the forward pass
    of ``fn()`` for its backward pass (beyond the storages in ``exclude``)."""
    return sum(nbytes for _, nbytes in saved_tensor_storages(fn, exclude=exclude))


def state_tensors(state, prefix: str = "state") -> list[tuple[str, tuple[int, ...], int]]:
    """The tensors of a (nested) state as ``(name, shape, bytes)`` rows.

    Named tuples give their field names (``state[0].c``), tuples and lists their indices, dicts their
    keys; ``None`` holds nothing.
    """
    if state is None:
        return []
    if isinstance(state, torch.Tensor):
        return [(prefix, tuple(int(n) for n in state.shape), state.numel() * state.element_size())]
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return [row for name, item in zip(state._fields, state)
                for row in state_tensors(item, f"{prefix}.{name}")]
    if isinstance(state, (tuple, list)):
        return [row for j, item in enumerate(state) for row in state_tensors(item, f"{prefix}[{j}]")]
    if isinstance(state, dict):
        return [row for key, item in state.items() for row in state_tensors(item, f"{prefix}[{key!r}]")]
    raise ValueError(f"cannot read a state of type {type(state).__name__}")


def state_nbytes(state) -> int:
    """Total bytes of the tensors of a (nested) state (see :func:`state_tensors`)."""
    return sum(nbytes for _, _, nbytes in state_tensors(state))


if __name__ == "__main__":  # the child process of peak_memory_mib
    print(_probe(sys.argv[1], json.loads(sys.argv[2])))
