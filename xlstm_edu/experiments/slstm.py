"""Experiments for the chapter "sLSTM: scalar memory, memory mixing and heads" (``04_slstm``).

* :func:`random_inputs`: random gate pre-activations and block-diagonal recurrent weights;
* :func:`full_recurrent_matrix`: the ``(NH*DH, 4*NH*DH)`` matrix that the per-head blocks
  ``R[head, d_in, gate, d_out]`` stand for;
* :func:`max_differences`, :func:`difference_table`: every equivalence check of the chapter (numba and
  torch against the reference loop, a split run against one run, the official code) as one table;
* :func:`time_recurrent_paths`, :func:`speed_table`: per-step time of the numpy reference loop,
  the numba kernel and the torch loop;
* :func:`impulse_response`: a pulse into one unit, with and without memory mixing (``R = 0``), to see
  how ``R`` spreads it inside a head and never across heads.

The figures are in :mod:`xlstm_edu.figures.slstm`.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import official, slstm
from ..timing import median_time


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
