"""Experiments for the chapter "sLSTM: scalar memory, memory mixing and heads" (``04_slstm``).

* :func:`random_inputs`: random gate pre-activations and block-diagonal recurrent weights;
* :func:`full_recurrent_matrix`: the ``(NH*DH, 4*NH*DH)`` matrix that the per-head blocks
  ``R[head, d_in, gate, d_out]`` stand for;
* :func:`max_differences`, :func:`difference_table`: every equivalence check of the chapter (numba and
  torch against the reference loop, a split run against one run, the official code) as one table;
* :func:`time_recurrent_paths`, :func:`speed_table`: per-step time of the numpy reference loop,
  the numba kernel and the torch loop;
* :func:`gradient_differences`: the fused kernels' gradients (``slstm.recurrent_fused``) against
  autograd through the torch reference loop and through the official vanilla backend
  (:func:`official_vanilla_autograd`), for every input;
* :func:`time_training_paths`, :func:`training_speed_table`: forward+backward time of the fused
  kernels, the torch reference loop and the official vanilla backend;
* :func:`impulse_response`: a pulse into one unit, with and without memory mixing (``R = 0``), to see
  how ``R`` spreads it inside a head and never across heads.

The figures are in :mod:`xlstm_edu.figures.slstm`.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import official, slstm
from ..timing import interleaved_medians, limited_threads, median_time


def random_inputs(B, NH, S, DH, *, seed=0, dtype=np.float64, r_scale=1.0, fgate_bias=0.0):
    """Random sLSTM inputs: four standard-normal pre-activations and ``R ~ N(0, r_scale**2 / DH)``.

    Returns ``(gates, R)`` with ``gates = (igate_preact, fgate_preact, zgate_preact, ogate_preact)``,
    each ``(B, NH, S, DH)``, and ``R`` of shape ``(NH, DH, 4, DH)`` (head, input, gate, output).
    ``fgate_bias`` is added to the forget-gate pre-activation (positive: longer memory).
    """
    rng = np.random.default_rng(seed)
    gates = [rng.standard_normal((B, NH, S, DH)) for _ in range(4)]
    gates[1] = gates[1] + fgate_bias
    R = r_scale / np.sqrt(DH) * rng.standard_normal((NH, DH, 4, DH))
    return tuple(g.astype(dtype) for g in gates), R.astype(dtype)


def full_recurrent_matrix(R):
    """The dense matrix that the per-head blocks of ``R`` stand for.

    ``R`` is ``(NH, DH, 4, DH)``. Returns ``M`` of shape ``(NH*DH, 4*NH*DH)``: rows are the hidden
    units ``(head, d_in)`` of ``h_{t-1}``, columns the pre-activations in gate-major order
    ``(gate, head, d_out)`` (the layout of the official ``xlstm`` code), so that
    ``h_{t-1}.reshape(B, NH*DH) @ M`` is the recurrent contribution to all four gates. Entries
    that connect two different heads are zero: ``M`` is four block-diagonal matrices side by side.
    """
    R = np.asarray(R)
    NH, DH = R.shape[0], R.shape[1]
    M = np.zeros((NH, DH, 4, NH, DH), dtype=R.dtype)  # (head_in, d_in, gate, head_out, d_out)
    for head in range(NH):
        M[head, :, :, head, :] = R[head]  # (DH, 4, DH): only head_in == head_out is filled
    return M.reshape(NH * DH, 4 * NH * DH)


def _to_torch(arrays):
    return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)


def _split_run(gates, R, cut):
    """``h`` of two runs, steps ``< cut`` and then the rest from the state the first run ends in."""
    h_1, state = slstm.recurrent(*(g[:, :, :cut] for g in gates), R, return_state=True)
    h_2 = slstm.recurrent(*(g[:, :, cut:] for g in gates), R, initial_state=state)
    return np.concatenate([np.asarray(h_1), np.asarray(h_2)], axis=2)


def max_differences(gates, R, initial_state, *, cut, dtypes=(np.float64, np.float32),
                    with_official=None):
    """Max ``|difference|`` of ``h`` for every equivalence check of ``slstm.recurrent``, per dtype.

    ``gates`` (four ``(B, NH, S, DH)`` arrays), ``R (NH, DH, 4, DH)`` and ``initial_state`` (a
    carried-in ``(h, c, n, m)``, each ``(B, NH, DH)``) are numpy float64; each dtype of ``dtypes``
    casts them. Checks:

    * ``numba - reference`` and ``torch - reference`` (numpy arrays into ``recurrent``: the numba kernel;
      torch tensors: the torch loop) against :func:`xlstm_edu.slstm.recurrent_numpy`, from the zero state
      and from ``initial_state``;
    * ``split run - one run`` for numba and torch: steps ``< cut``, then the rest from the final state;
    * ``official vanilla - numba``: :func:`xlstm_edu.official.vanilla_slstm` (zero state); only when
      ``with_official`` (default: when the official ``xlstm`` package is installed).

    Returns ``{check: {dtype name: max |difference|}}`` in that order.
    """
    if with_official is None:
        with_official = official.available("xlstm")
    errors = {}

    def record(check, dtype, a, b):
        err = float(np.abs(np.asarray(a) - np.asarray(b)).max())
        errors.setdefault(check, {})[np.dtype(dtype).name] = err

    for dtype in dtypes:
        g, r = tuple(x.astype(dtype) for x in gates), np.asarray(R).astype(dtype)
        for label, state in (("zero state", None), ("carried-in state", initial_state)):
            state = None if state is None else tuple(np.asarray(x).astype(dtype) for x in state)
            h_ref, _ = slstm.recurrent_numpy(*g, r, state)
            h_numba = slstm.recurrent(*g, r, initial_state=state)
            record(f"numba - reference, {label}", dtype, h_numba, h_ref)
            h_torch = slstm.recurrent(*_to_torch(g), torch.from_numpy(r),
                                      initial_state=None if state is None else _to_torch(state))
            record(f"torch - reference, {label}", dtype, h_torch, h_ref)
        h_numba = slstm.recurrent(*g, r)
        record("numba: split run - one run", dtype, _split_run(g, r, cut), h_numba)
        g_t, r_t = _to_torch(g), torch.from_numpy(r)
        h_torch = slstm.recurrent(*g_t, r_t)
        record("torch: split run - one run", dtype, _split_run(g_t, r_t, cut), h_torch)
        if with_official:
            record("official vanilla - numba", dtype, official.vanilla_slstm(*g, r), h_numba)
    return errors


def difference_table(errors):
    """A printable table of :func:`max_differences`: one row per check, one column per dtype."""
    dtypes = list(next(iter(errors.values())))
    width = max(len(check) for check in errors) + 2
    lines = [f"{'max |difference| of h':<{width}}" + "".join(f"{dt:>10}" for dt in dtypes)]
    lines += [f"{check:<{width}}" + "".join(f"{row[dt]:>10.1e}" for dt in dtypes)
              for check, row in errors.items()]
    return "\n".join(lines)


def time_recurrent_paths(*, B=1, NH=4, DH=64, S=1024, S_loop=256, repeats=5, warmup=1, seed=0,
                         dtype=np.float32, max_seconds=None):
    """Seconds per time step of the ways to run ``slstm.recurrent`` (with ``R``).

    * ``numpy reference loop``: :func:`xlstm_edu.slstm.recurrent_numpy`, numpy ops per time step;
    * ``numba kernel``: numpy arrays into :func:`xlstm_edu.slstm.recurrent` (compiled loop);
    * ``torch loop (1 thread)`` and ``torch loop (N threads)``: torch tensors into ``recurrent``,
      with one intra-op thread and with torch's default number ``N`` (only the first if N == 1).

    The loops run on ``S_loop`` steps, the kernel on ``S``; each time is the median of ``repeats``
    calls (the kernel: ``4 * repeats``) divided by the sequence length; ``max_seconds`` stops each
    measurement early (after at least 3 calls) on a slow machine. Returns name -> seconds per step.
    """
    gates, R = random_inputs(B, NH, S, DH, seed=seed, dtype=dtype, r_scale=0.5)
    short = tuple(np.ascontiguousarray(g[:, :, :S_loop]) for g in gates)
    short_t = tuple(torch.from_numpy(g) for g in short)
    R_t = torch.from_numpy(R)

    def seconds(fn, n_repeats):
        return median_time(fn, repeats=n_repeats, warmup=warmup, max_seconds=max_seconds)

    per_step = {
        "numpy reference loop": seconds(lambda: slstm.recurrent_numpy(*short, R), repeats) / S_loop,
        "numba kernel": seconds(lambda: slstm.recurrent(*gates, R), 4 * repeats) / S,
    }
    default_threads = torch.get_num_threads()
    try:
        for n in [1] if default_threads == 1 else [1, default_threads]:
            torch.set_num_threads(n)
            with torch.no_grad():
                t = seconds(lambda: slstm.recurrent(*short_t, R_t), repeats) / S_loop
            per_step[f"torch loop ({n} thread{'s' if n > 1 else ''})"] = t
    finally:
        torch.set_num_threads(default_threads)
    return per_step


def speed_table(results, reference="numpy reference loop"):
    """A printable table from ``{label: per_step}`` (``per_step`` from :func:`time_recurrent_paths`):
    microseconds per step and the speed-up over ``reference``, one column pair per label."""
    labels = list(results)
    names = list(results[labels[0]])
    head = f"{'implementation':<24}" + "".join(f"{str(lb) + ': us/step':>18}{'speed-up':>10}"
                                               for lb in labels)
    lines = [head]
    for name in names:
        row = f"{name:<24}"
        for lb in labels:
            t = results[lb][name]
            row += f"{1e6 * t:>18.1f}{results[lb][reference] / t:>9.2f}x"
        lines.append(row)
    return "\n".join(lines)


def impulse_response(R, *, S=60, pulses=((0, 0),), t_on=5, t_off=10, pulse=3.0, fgate_bias=2.0):
    """h of an sLSTM driven by a pulse into a few units' cell input ``z``, everything else zero.

    ``pulses`` lists ``(head, unit)`` pairs; their ``zgate_preact`` is ``pulse`` for
    ``t_on <= t < t_off``. All other pre-activations are zero except the forget gate, which is
    ``fgate_bias`` everywhere. Returns ``h`` of shape ``(NH, S, DH)`` (batch of one, float64).
    """
    R = np.asarray(R, dtype=np.float64)
    NH, DH = R.shape[0], R.shape[1]
    zeros = np.zeros((1, NH, S, DH))
    z = zeros.copy()
    for head, unit in pulses:
        z[0, head, t_on:t_off, unit] = pulse
    f = zeros + fgate_bias
    return slstm.recurrent(zeros, f, z, zeros.copy(), R)[0]


# --- training: gradients and forward+backward time --------------------------------------------------

#: The inputs of ``slstm.recurrent_fused`` whose gradients :func:`gradient_differences` compares.
GRADIENT_INPUTS = ("igate_preact", "fgate_preact", "zgate_preact", "ogate_preact", "R",
                   "h_0", "c_0", "n_0", "m_0")


def official_vanilla_autograd(igate_preact, fgate_preact, zgate_preact, ogate_preact, R):
    """The official vanilla sLSTM from its zero state, differentiable (torch tensors in and out):
    :func:`xlstm_edu.official.vanilla_slstm` with ``grad=True``. Needs ``xlstm``."""
    return official.vanilla_slstm(igate_preact, fgate_preact, zgate_preact, ogate_preact, R, grad=True)


def _training_inputs(B, NH, S, DH, *, regime, seed, dtype):
    """Gates, R and a carried-in state as torch leaves (``regime``: "typical" or "hard": input gates
    uniform in [-15, 15], forget gates N(0, 3))."""
    gates, R = random_inputs(B, NH, S, DH, seed=seed, r_scale=0.5)
    rng = np.random.default_rng(seed + 1)
    if regime == "hard":
        gates = (rng.uniform(-15, 15, gates[0].shape), 3.0 * gates[1], *gates[2:])
    elif regime != "typical":
        raise ValueError(f"regime must be 'typical' or 'hard', got {regime!r}")
    state = (0.5 * rng.standard_normal((B, NH, DH)), rng.standard_normal((B, NH, DH)),
             rng.uniform(0.5, 1.5, (B, NH, DH)), rng.standard_normal((B, NH, DH)))
    return [torch.tensor(a, dtype=dtype, requires_grad=True) for a in (*gates, R, *state)]


def gradient_differences(B=2, NH=3, S=37, DH=4, *, regime="typical", seed=0, with_official=None):
    """Max ``|difference|`` of every gradient (float64): the fused kernels against autograd.

    The loss weighs ``h`` and the final state ``(h, c, n, m)`` with fixed random numbers. Returns
    ``{check: {input: max |difference|}}`` with the inputs of :data:`GRADIENT_INPUTS`:
    ``"fused - autograd through recurrent_torch"`` from a carried-in state, and, when
    ``with_official`` (default: ``xlstm`` installed), ``"fused - official vanilla (autograd)"`` from
    the zero state (the gates and R only; the official code starts from zeros).
    """
    if with_official is None:
        with_official = official.available("xlstm")
    leaves = _training_inputs(B, NH, S, DH, regime=regime, seed=seed, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(B, NH, S, DH, generator=g, dtype=torch.float64)]
    weights += [torch.randn(B, NH, DH, generator=g, dtype=torch.float64) for _ in range(4)]

    def grads(run, inputs, with_state):
        if with_state:
            h, state = run(*inputs[:5], tuple(inputs[5:]))
            loss = (h * weights[0]).sum() + sum((s * w).sum() for s, w in zip(state, weights[1:]))
        else:
            loss = (run(*inputs[:5]) * weights[0]).sum()
        return torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)

    def table(a, b, names):
        return {name: float((x - y).abs().max()) for name, x, y in zip(names, a, b)}

    fused = grads(slstm.recurrent_fused, leaves, True)
    errors = {"fused - autograd through recurrent_torch": table(
        fused, grads(slstm.recurrent_torch, leaves, True), GRADIENT_INPUTS)}
    if with_official:
        fused_zero = grads(lambda *a: slstm.recurrent_fused(*a)[0], leaves[:5], False)
        errors["fused - official vanilla (autograd)"] = table(
            fused_zero, grads(official_vanilla_autograd, leaves[:5], False), GRADIENT_INPUTS[:5])
    return errors


def time_training_paths(*, B=16, NH=4, DH=32, S=128, dtype=torch.float32, threads=1, rounds=3,
                        repeats=3, warmup=1, seed=0, backward=True, with_official=None,
                        max_seconds=None):
    """Median seconds of one forward+backward pass (loss: the sum of h) of the ways to train an sLSTM.

    * ``fused kernels``: :func:`xlstm_edu.slstm.recurrent_fused` (numba forward and backward);
    * ``torch reference loop``: autograd through :func:`xlstm_edu.slstm.recurrent_torch`;
    * ``official vanilla``: autograd through the official vanilla backend
      (:func:`official_vanilla_autograd`), when ``with_official`` (default: ``xlstm`` installed).

    From the zero state, with ``R``; timed in ``rounds`` interleaved rounds of ``repeats`` calls
    (:func:`xlstm_edu.timing.interleaved_medians`) with ``threads`` torch and numba threads.
    ``backward=False`` times the forward pass alone (under ``no_grad``). Returns name -> seconds.
    """
    if with_official is None:
        with_official = official.available("xlstm")
    *gates, R = _training_inputs(B, NH, S, DH, regime="typical", seed=seed, dtype=dtype)[:5]
    paths = {"fused kernels": lambda: slstm.recurrent_fused(*gates, R)[0],
             "torch reference loop": lambda: slstm.recurrent_torch(*gates, R)[0]}
    if with_official:
        paths["official vanilla"] = lambda: official_vanilla_autograd(*gates, R)

    def timed(run):
        if not backward:
            def call():
                with torch.no_grad():
                    run()
            return call
        return lambda: run().sum().backward()

    with limited_threads(threads):
        return interleaved_medians({name: timed(run) for name, run in paths.items()}, rounds=rounds,
                                   repeats=repeats, warmup=warmup, max_seconds=max_seconds)


def training_speed_table(times, fused="fused kernels"):
    """A printable table of :func:`time_training_paths`: milliseconds and how many times slower than
    the fused kernels each path is."""
    lines = [f"{'implementation':<24}{'ms':>10}{'x fused':>10}"]
    lines += [f"{name:<24}{1e3 * t:>10.2f}{t / times[fused]:>9.1f}x" for name, t in times.items()]
    return "\n".join(lines)
