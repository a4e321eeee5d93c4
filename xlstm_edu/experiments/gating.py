"""Experiments for the chapter "Exponential gating and the stabilizer".

* The *revise* task (:func:`revise_task`): a stream of values ``z_t`` with importance scores ``a_t``;
  the target at step ``t`` is the value whose importance is the highest seen so far. The
  exponential-gated, normalized cell (:func:`exp_gated_cell`, the package's sLSTM with ``R=None``)
  is compared with two sigmoid-gated baselines (:func:`sigmoid_gated_cell`).
* The overflow of the textbook form (:func:`overflow_report`, :func:`first_nonfinite_step`).
  How each cell follows the records (:func:`record_report`).
* The sLSTM as a weighted average (:func:`average_weights`), the lock-in after one large input gate
  (:func:`lock_in`), and per-step traces of the stabilized states (:func:`slstm_trace`,
  :func:`gate_traces`, used by the chapter's widget).

Every sLSTM computation goes through :mod:`xlstm_edu.slstm` and :mod:`xlstm_edu.gating`; only the
sigmoid baseline (a comparison, not a package cell) is written out here. The figures are in
:mod:`xlstm_edu.figures.gating`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import mlstm, slstm
from ..gating import log_sigmoid

#: A pre-activation that makes a sigmoid gate "open": ``sigmoid(30) = 1 - 9.4e-14``. Used for the forget
#: gate (keep everything) and the output gate (``h = c / n``) in the revise task.
GATE_OPEN = 30.0


def _as_cell_input(x):
    """``(S,)`` or ``(N, S)`` -> ``(N, 1, S, 1)`` (B = N sequences, one head of size one)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"expected shape (S,) or (N, S), got {x.shape}")
    return x[:, None, :, None]


# --- the revise task -------------------------------------------------------------------------------


@dataclass
class ReviseTask:
    """``values``, ``importance``, ``target``, ``record``: each ``(N, S)``.

    ``record[n, t]`` is the step (``<= t``) of the most important item so far, and
    ``target[n, t] = values[n, record[n, t]]``.
    """

    values: np.ndarray
    importance: np.ndarray
    target: np.ndarray
    record: np.ndarray


def running_argmax(importance):
    """Index of the running maximum along the last axis (the first one on ties). ``(N, S)`` ints."""
    importance = np.asarray(importance)
    S = importance.shape[-1]
    best_before = np.concatenate([np.full(importance.shape[:-1] + (1,), -np.inf),
                                  np.maximum.accumulate(importance, -1)[..., :-1]], axis=-1)
    is_new_max = importance > best_before
    return np.maximum.accumulate(np.where(is_new_max, np.arange(S), 0), axis=-1)


def revise_task(n_seq=256, S=64, seed=0, value_max=0.9):
    """Random instances of the revise task.

    Values ``z_t ~ U(-value_max, value_max)`` (inside ``(-1, 1)``, the range of ``tanh``), importance
    ``a_t ~ N(0, 1)`` (an open scale: no threshold separates "important" from "unimportant").
    """
    rng = np.random.default_rng(seed)
    values = rng.uniform(-value_max, value_max, size=(n_seq, S))
    importance = rng.normal(size=(n_seq, S))
    record = running_argmax(importance)
    return ReviseTask(values, importance, np.take_along_axis(values, record, axis=1), record)


def exp_gated_cell(igate_preact, values):
    """The package sLSTM (``R=None``) with input gate ``exp(igate_preact)``, forget and output gates
    open (pre-activation :data:`GATE_OPEN`), cell input ``z_t = values`` (``zgate_preact =
    artanh(values)``). Then ``h_t = c_t / n_t`` up to ~1e-13. Inputs ``(S,)`` or ``(N, S)``; returns
    ``h`` with the same shape as ``values``.
    """
    values = np.asarray(values, dtype=np.float64)
    i_pre = _as_cell_input(np.broadcast_to(igate_preact, values.shape))  # (N, 1, S, 1)
    z_pre = _as_cell_input(np.arctanh(values))
    open_gate = np.full_like(i_pre, GATE_OPEN)
    h = slstm.recurrent(i_pre, open_gate, z_pre, open_gate)  # (N, 1, S, 1)
    return h[:, 0, :, 0].reshape(values.shape)


def sigmoid_gated_cell(igate_preact, fgate_preact, values, *, normalize=True):
    """The comparison baseline: a cell with a *sigmoid* input gate ``i = sigmoid(igate_preact) <= 1``.

    ``c_t = f_t c_{t-1} + i_t z_t`` with ``f_t = sigmoid(fgate_preact)``, ``z_t = values``, and the
    output ``h_t = c_t / n_t`` (``n_t = f_t n_{t-1} + i_t``; 0 where ``n_t = 0``) if ``normalize``,
    else ``h_t = c_t`` (the LSTM memory read without tanh and output gate). ``fgate_preact =
    -igate_preact`` gives the coupled gate ``f = 1 - i`` (an "overwrite" cell, as in the GRU and the
    CIFG variant of the LSTM).
    Arguments broadcast to ``values`` ``(N, S)`` or ``(S,)``; returns ``h`` of that shape.
    """
    values = np.asarray(values, dtype=np.float64)
    i_act = np.exp(log_sigmoid(np.broadcast_to(igate_preact, values.shape).astype(np.float64)))
    f_act = np.exp(log_sigmoid(np.broadcast_to(fgate_preact, values.shape).astype(np.float64)))
    c = np.zeros(values.shape[:-1])
    n = np.zeros(values.shape[:-1])
    h = np.empty_like(values)
    for t in range(values.shape[-1]):
        c = f_act[..., t] * c + i_act[..., t] * values[..., t]
        n = f_act[..., t] * n + i_act[..., t]
        if normalize:
            h[..., t] = np.divide(c, n, out=np.zeros_like(c), where=n > 0)
        else:
            h[..., t] = c
    return h


def revise_error(h, target):
    """Mean absolute error ``mean |h - target|``; non-finite outputs count as an error of 2."""
    err = np.abs(np.asarray(h) - np.asarray(target))
    return float(np.where(np.isfinite(err), err, 2.0).mean())


#: Names of the three cells compared on the revise task, in plotting order.
REVISE_CELLS = ("exponential (sLSTM)", "sigmoid + normalizer", "sigmoid, overwrite f = 1 - i")


def revise_outputs(task, beta, threshold=0.0):
    """Outputs ``(N, S)`` of the three cells of :data:`REVISE_CELLS` on ``task``, input-gate
    pre-activation ``beta * importance`` (the overwrite cell: ``beta * (importance - threshold)``)."""
    i_pre = beta * task.importance
    i_over = beta * (task.importance - threshold)
    return {
        REVISE_CELLS[0]: exp_gated_cell(i_pre, task.values),
        REVISE_CELLS[1]: sigmoid_gated_cell(i_pre, GATE_OPEN, task.values),
        REVISE_CELLS[2]: sigmoid_gated_cell(i_over, -i_over, task.values, normalize=False),
    }


def revise_comparison(betas=(0.3, 1, 3, 10, 30, 100, 300, 1000), thresholds=None, n_seq=256, S=64,
                      seed=0):
    """Test error of each cell of :data:`REVISE_CELLS` for each gate sharpness ``beta``.

    The overwrite cell gets its threshold tuned: the best of ``thresholds`` (default
    ``linspace(-1, 3, 17)``) on a training task drawn with ``seed``. All errors are measured on a test
    task drawn with ``seed + 1``. Returns a dict with
    ``betas``, ``errors`` ({cell: array over betas}), ``thresholds`` (the tuned ones).
    """
    thresholds = np.linspace(-1, 3, 17) if thresholds is None else np.asarray(thresholds)
    train = revise_task(n_seq, S, seed)
    test = revise_task(n_seq, S, seed + 1)
    errors = {name: [] for name in REVISE_CELLS}
    tuned = []
    for beta in betas:
        train_err = []
        for th in thresholds:
            i_over = beta * (train.importance - th)
            h = sigmoid_gated_cell(i_over, -i_over, train.values, normalize=False)
            train_err.append(revise_error(h, train.target))
        th = float(thresholds[int(np.argmin(train_err))])
        tuned.append(th)
        for name, h in revise_outputs(test, beta, th).items():
            errors[name].append(revise_error(h, test.target))
    return dict(betas=np.asarray(betas, dtype=float), thresholds=np.asarray(tuned),
                errors={k: np.asarray(v) for k, v in errors.items()})


#: An output *follows* a record if, at the record's step, it is within this of the new target
#: (values lie in ``(-0.9, 0.9)``: a record moves the target by about 0.6 on average).
FOLLOW_ATOL = 0.05


def new_records(task):
    """``(N, S)`` bool: True at the steps ``t >= 1`` whose item sets a new importance record, where the
    target jumps. Step 0 (the first item, a record trivially, with nothing stored to revise) is False."""
    new = np.zeros(task.record.shape, dtype=bool)
    new[:, 1:] = np.diff(task.record, axis=1) != 0
    return new


def record_report(task, outputs, threshold, index, atol=FOLLOW_ATOL):
    """How the cells of :data:`REVISE_CELLS` follow the records of ``task``, over the whole set and on
    sequence ``index``. ``outputs`` come from :func:`revise_outputs` with this ``threshold``.

    Returns a dict with

    * ``followed``: {cell: fraction of all records (:func:`new_records`) where ``|h - target| < atol``};
    * ``record_steps`` (the record steps of sequence ``index``) and ``followed_at`` ({cell: bool array,
      one per record step});
    * ``overwrite_steps``: the steps of sequence ``index`` where the overwrite cell overwrites although
      the item is no record (importance above ``threshold``, below the record so far);
    * ``overwrite_error``, ``overwrite_error_index``: the overwrite cell's error ``sum |h - target|``
      split into the share at steps where it holds a *later, less important* item (it overwrote at a
      non-record), where *no item passed its threshold yet* (it holds nothing), and the rest (gates not
      quite 0 or 1), over the set and on sequence ``index``.
    """
    new = new_records(task)
    follows = {name: np.abs(h - task.target) < atol for name, h in outputs.items()}
    S = task.importance.shape[1]
    above = task.importance > threshold
    last_above = np.maximum.accumulate(np.where(above, np.arange(S), -1), axis=1)
    record_above = np.maximum.accumulate(task.importance, axis=1) > threshold
    later_item = record_above & (last_above != task.record)  # overwrote the record by a later item
    nothing = ~record_above  # no item passed the threshold yet: the overwrite cell holds ~0
    err = np.abs(outputs[REVISE_CELLS[2]] - task.target)

    def shares(e, later, none):
        total = e.sum()
        return {"later, less important item": float(e[later].sum() / total),
                "nothing yet": float(e[none].sum() / total),
                "rest": float(e[~later & ~none].sum() / total)}

    steps = np.flatnonzero(new[index])
    return dict(
        followed={name: float(f[new].mean()) for name, f in follows.items()},
        record_steps=steps,
        followed_at={name: f[index, steps] for name, f in follows.items()},
        overwrite_steps=np.flatnonzero(above[index] & (task.record[index] != np.arange(S))),
        overwrite_error=shares(err, later_item, nothing),
        overwrite_error_index=shares(err[index], later_item[index], nothing[index]),
    )


# --- the normalizer: h is a weighted average -----------------------------------------------------


def average_weights(igate_preact, fgate_preact):
    """The weights ``w[t, s]`` (``s <= t``) with ``c_t / n_t = sum_s w[t, s] z_s`` for the sLSTM with
    ``R=None`` and sigmoid forget gates, for one sequence ``(S,)``. Returns ``(S, S)``.

    Unrolled, ``c_t = sum_s (prod_{r=s+1..t} f_r) i_s z_s`` and ``n_t`` is the same sum without
    ``z_s``, so ``w[t, :]`` is a softmax over ``s <= t`` of
    ``log D[t, s] = igate_preact_s + sum_{r=s+1..t} log f_r``: the mLSTM's decay matrix, built the
    stable way (:func:`xlstm_edu.mlstm.log_decay_matrix`).
    """
    i_pre = np.asarray(igate_preact, dtype=np.float64)
    log_f = log_sigmoid(np.asarray(fgate_preact, dtype=np.float64))
    log_d = mlstm.log_decay_matrix(log_f, i_pre)  # (t, s), -inf for s > t
    w = np.exp(log_d - log_d.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def lock_in(spike_height, fgate_preact, spike_step=5, S=None):
    """The lock-in after one large input gate, measured on one sLSTM unit (package code).

    Input-gate pre-activation 0 at every step except ``spike_height`` (``Delta i~``) at ``spike_step``,
    constant forget pre-activation, cell input ``z = 1`` at the spike and 0 elsewhere, output gate
    open: then ``h_t`` is the spike's normalized weight ``w[t, spike_step]``. ``S`` defaults to a
    few steps past the predicted lock-in. Returns a dict with

    * ``log_f`` (``log f``, negative) and ``predicted = spike_height / |log f|``;
    * ``predicted_dominance = (spike_height + log(1 - f)) / |log f|``: where the spike's weight
      ``e^(Delta i~ + k log f)`` meets the later items' ``sum_j f^j ~ 1 / (1 - f)``;
    * ``stabilizer_steps``: steps after the spike where ``m_t`` is still set by it (``m_t > i~_t``),
      from :func:`slstm_trace` (``slstm.step_numpy``);
    * ``dominance_steps``: steps after the spike where the spike has most of the weight,
      ``h_t > 1/2``, from :func:`xlstm_edu.slstm.recurrent`.
    """
    log_f = float(log_sigmoid(np.float64(fgate_preact)))
    predicted = spike_height / -log_f
    if S is None:
        S = spike_step + int(np.ceil(predicted)) + 10
    i_pre = np.zeros(S)
    i_pre[spike_step] = spike_height
    f_pre = np.full(S, float(fgate_preact))
    z_pre = np.zeros(S)
    z_pre[spike_step] = 20.0  # tanh(20) = 1 in float64
    o_pre = np.full(S, GATE_OPEN)
    h = slstm.recurrent(*(g[None, None, :, None] for g in (i_pre, f_pre, z_pre, o_pre)))[0, 0, :, 0]
    m = slstm_trace(i_pre, f_pre, z_pre, o_pre)["m"]
    after = slice(spike_step + 1, None)
    return dict(log_f=log_f, predicted=predicted,
                predicted_dominance=(spike_height + np.log(-np.expm1(log_f))) / -log_f,
                stabilizer_steps=int((m[after] > i_pre[after]).sum()),
                dominance_steps=int((h[after] > 0.5).sum()))


# --- overflow of the textbook form ---------------------------------------------------------------


def first_nonfinite_step(h, axis=-1):
    """First index along ``axis`` (the time axis) where any entry of ``h`` is inf or nan, else None.
    For sLSTM outputs ``(B, NH, S, DH)`` pass ``axis=2``."""
    h = np.moveaxis(np.asarray(h), axis, 0)
    bad = ~np.isfinite(h.reshape(h.shape[0], -1)).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else None


def first_wrong_step(h, h_ref, atol, axis=-1):
    """First index along ``axis`` where ``h`` is non-finite or differs from ``h_ref`` by more than
    ``atol``, else None."""
    h = np.moveaxis(np.asarray(h, dtype=np.float64), axis, 0)
    h_ref = np.moveaxis(np.asarray(h_ref, dtype=np.float64), axis, 0)
    err = np.abs(h - h_ref).reshape(h.shape[0], -1)
    bad = ~(err <= atol).all(axis=1)  # nan compares False, so nan counts as wrong
    return int(np.argmax(bad)) if bad.any() else None


def stabilized_in_dtype(igate_preact, fgate_preact, zgate_preact, ogate_preact, dtype):
    """:func:`xlstm_edu.slstm.recurrent` in ``dtype`` (a numpy dtype). float32/float64 run the numba
    path; float16 (which numba does not take) runs the torch path on float16 tensors. Returns numpy."""
    gates = [np.asarray(g).astype(dtype)
             for g in (igate_preact, fgate_preact, zgate_preact, ogate_preact)]
    if np.dtype(dtype) == np.float16:
        return slstm.recurrent(*(torch.from_numpy(g) for g in gates)).numpy()
    return slstm.recurrent(*gates)


#: Tolerance used to call an output "wrong" against the float64 run, per dtype (a few units of the
#: dtype's resolution on outputs of size ~1).
OUTPUT_ATOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5, np.dtype(np.float16): 2e-2}


def overflow_report(igate_preact, fgate_preact, zgate_preact, ogate_preact,
                    dtypes=(np.float32, np.float16)):
    """Run the textbook form (:func:`xlstm_edu.slstm.recurrent_unstabilized_numpy`) and the stabilized
    cell in each dtype on the same ``(B, NH, S, DH)`` pre-activations (given in float64).

    Returns one dict per dtype: ``dtype``, ``log_max`` (``log`` of the largest finite number, where
    ``exp`` overflows), ``exp_overflow_step`` (first step with some ``igate_preact > log_max``: the input
    gate itself is inf there; the sums ``c``, ``n`` can overflow earlier),
    ``textbook_first_nonfinite``, ``textbook_first_wrong`` (vs float64, tolerance
    :data:`OUTPUT_ATOL`), ``units`` (``B * NH * DH``) and ``silent_units`` (units whose first wrong
    output is a finite number, not inf/nan), ``stabilized_finite`` and ``stabilized_max_abs_diff``
    (vs float64).
    """
    gates = (igate_preact, fgate_preact, zgate_preact, ogate_preact)
    h64 = slstm.recurrent(*(np.asarray(g, dtype=np.float64) for g in gates))
    rows = []
    for dtype in dtypes:
        dt = np.dtype(dtype)
        log_max = float(np.log(float(np.finfo(dt).max)))
        textbook = slstm.recurrent_unstabilized_numpy(*(np.asarray(g).astype(dt) for g in gates))
        stab = stabilized_in_dtype(*gates, dt)
        # The inputs themselves are rounded to dt: the predicted step uses the rounded igate_preact.
        over = (np.asarray(igate_preact).astype(dt).astype(np.float64) > log_max)
        per_unit_text = np.moveaxis(textbook, 2, -1).reshape(-1, textbook.shape[2])  # (units, S)
        per_unit_ref = np.moveaxis(h64, 2, -1).reshape(-1, h64.shape[2])
        silent = 0
        for h_unit, ref_unit in zip(per_unit_text, per_unit_ref):
            step = first_wrong_step(h_unit, ref_unit, OUTPUT_ATOL[dt])
            silent += step is not None and bool(np.isfinite(h_unit[step]))
        rows.append(dict(
            dtype=dt.name,
            log_max=log_max,
            exp_overflow_step=first_nonfinite_step(np.where(over, np.inf, 0.0), axis=2),
            textbook_first_nonfinite=first_nonfinite_step(textbook, axis=2),
            textbook_first_wrong=first_wrong_step(textbook, h64, OUTPUT_ATOL[dt], axis=2),
            units=per_unit_text.shape[0],
            silent_units=int(silent),
            stabilized_finite=bool(np.isfinite(stab).all()),
            stabilized_max_abs_diff=float(np.abs(stab.astype(np.float64) - h64).max()),
        ))
    return rows


def overflow_traces(igate_preact, fgate_preact, zgate_preact, ogate_preact,
                    dtypes=(np.float32, np.float16), unit=(0, 0, 0)):
    """One unit ``(b, head, d)`` of the overflow experiment, step by step. Inputs ``(B, NH, S, DH)``.

    Returns a dict with ``igate_preact (S,)`` of that unit, ``h_stabilized (S,)`` (the stabilized cell
    in float64) and, keyed by dtype name, ``textbook`` (the textbook form's ``h (S,)`` in that dtype:
    inf/nan where it overflows), ``log_max`` (``log`` of the dtype's largest number) and
    ``first_over`` (the first step where the unit's ``igate_preact > log_max``, or None).
    """
    b, head, d = unit
    gates = [np.asarray(g) for g in (igate_preact, fgate_preact, zgate_preact, ogate_preact)]
    h64 = slstm.recurrent(*(g.astype(np.float64) for g in gates))[b, head, :, d]
    i_unit = gates[0][b, head, :, d]
    textbook, log_max, first_over = {}, {}, {}
    for dtype in dtypes:
        dt = np.dtype(dtype)
        h = slstm.recurrent_unstabilized_numpy(*(g.astype(dt) for g in gates))  # (B, NH, S, DH)
        textbook[dt.name] = h[b, head, :, d]
        log_max[dt.name] = float(np.log(float(np.finfo(dt).max)))
        over = np.flatnonzero(i_unit > log_max[dt.name])
        first_over[dt.name] = int(over[0]) if over.size else None
    return dict(igate_preact=i_unit, h_stabilized=h64, textbook=textbook, log_max=log_max,
                first_over=first_over)


# --- traces of the stabilized states -------------------------------------------------------------


def slstm_trace(igate_preact, fgate_preact, zgate_preact, ogate_preact, R=None, initial_state=None):
    """Run :func:`xlstm_edu.slstm.step_numpy` step by step and keep every state.

    Pre-activations ``(B, NH, S, DH)``, or ``(S,)`` for one scalar cell. Returns a dict with ``h``,
    ``c``, ``n``, ``m`` (the package's *stabilized* states: ``c = c_true exp(-m)``, ``n = n_true
    exp(-m)``), each shaped like the input, and ``log_n_true = log(n) + m``.
    """
    gates = [np.asarray(g, dtype=np.float64) for g in (igate_preact, fgate_preact, zgate_preact,
                                                      ogate_preact)]
    one_seq = gates[0].ndim == 1
    if one_seq:
        gates = [g[None, None, :, None] for g in gates]  # (1, 1, S, 1)
    B, NH, S, DH = gates[0].shape
    state = initial_state if initial_state is not None else slstm.zero_state(B, NH, DH, gates[0])
    trace = {k: np.empty((B, NH, S, DH)) for k in "hcnm"}
    for t in range(S):
        _, state = slstm.step_numpy(*state, *(g[:, :, t] for g in gates), R=R)
        for k, s in zip("hcnm", state):
            trace[k][:, :, t] = s
    with np.errstate(divide="ignore"):
        trace["log_n_true"] = np.log(trace["n"]) + trace["m"]
    if one_seq:
        trace = {k: v[0, 0, :, 0] for k, v in trace.items()}
    return trace


def gate_traces(S=24, seed=0, igate_offset=0.0, igate_noise=1.0, spike_step=8, spike_height=0.0,
                fgate_preact=3.0, textbook_dtype="float32"):
    """The data behind the chapter's gate explorer, for one scalar cell over ``S`` steps.

    Input-gate pre-activation ``igate_offset + igate_noise * eps_t`` plus ``spike_height`` at step
    ``spike_step``; constant forget-gate pre-activation; ``z_t = tanh(N(0, 1))``; output gate open.
    Returns the pre-activations, the stabilized trace (:func:`slstm_trace`) and ``h_textbook``: the
    unstabilized form in ``textbook_dtype`` (``inf``/``nan`` where it overflows).
    """
    rng = np.random.default_rng(seed)
    eps = rng.normal(size=S)
    z_pre = rng.normal(size=S)
    i_pre = igate_offset + igate_noise * eps
    if 0 <= spike_step < S:
        i_pre[spike_step] += spike_height
    f_pre = np.full(S, float(fgate_preact))
    o_pre = np.full(S, GATE_OPEN)
    trace = slstm_trace(i_pre, f_pre, z_pre, o_pre)
    dt = np.dtype(textbook_dtype)
    textbook = slstm.recurrent_unstabilized_numpy(
        *(g[None, None, :, None].astype(dt) for g in (i_pre, f_pre, z_pre, o_pre)))[0, 0, :, 0]
    return dict(igate_preact=i_pre, fgate_preact=f_pre, zgate_preact=z_pre, z=np.tanh(z_pre),
                trace=trace, h_textbook=textbook.astype(np.float64), textbook_dtype=dt.name)
