"""Parallel and chunkwise forms of the mLSTM (chapter "Parallel forms: from quadratic to linear").

Everything here calls the package's mLSTM (:mod:`xlstm_edu.mlstm`) and its benchmark helpers
(:mod:`xlstm_edu.bench`); nothing re-derives a formula (the float32 pitfall passes the construction of
``log D`` to :func:`xlstm_edu.mlstm.parallel_torch` as its ``log_decay_fn`` parameter).

* :func:`hard_gates`, :func:`realistic_gates` (:data:`GATE_REGIMES`): gate pre-activations that make
  the stabilizer and float32 work hard, and ones near the official initialization;
* :func:`stabilizer_trajectory`: the recurrent form's ``m_t``, stepped with the package's gating;
* :func:`float32_pitfall`: error of the two ``log D`` constructions (and of ``h``) in float32;
* :func:`chunk_structure`: which part of the chunkwise form computes each entry of the causal mask;
* :func:`scaling_sweep`, :func:`memory_sweep`, :func:`loglog_slope`: time and memory against ``S``
  (measured), and :func:`counted_costs`: FLOPs and the largest tensor against ``S`` (counted);
* training: :func:`training_saved_bytes` (what autograd keeps for the backward pass, counted) and
  :func:`training_times` (forward + backward, measured); :func:`recurrent_saved_bytes` is the
  recurrent form's count written out by hand.

The figures are in :mod:`xlstm_edu.figures.parallel_forms`.
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from .. import bench, mlstm
from ..gating import log_sigmoid, stabilized_gates
from ..timing import (
    count_flops,
    interleaved_medians,
    largest_tensor_bytes,
    limited_threads,
    saved_tensor_bytes,
)

#: The three forms, in the order the chapter plots them.
FORMS = ("recurrent", "parallel", "chunkwise")

#: Codes of :func:`chunk_structure`.
FUTURE, INTRA, INTER = 0, 1, 2


# --- inputs -----------------------------------------------------------------------------------------


def hard_gates(B=1, NH=1, S=256, *, seed=0, dtype=torch.float64, igate_range=15.0, fgate_std=3.0):
    """Gate pre-activations ``igate_preact ~ U(-r, r)``, ``fgate_preact ~ N(0, std)``, ``(B, NH, S)``.

    With ``r = 15`` the input gates ``exp(igate_preact)`` span 13 orders of magnitude, and forget
    gates near 0 (``fgate_preact`` very negative) cut the memory off: the stabilizer does real work.
    """
    g = torch.Generator().manual_seed(seed)
    igate_preact = (2 * torch.rand(B, NH, S, generator=g, dtype=torch.float64) - 1) * igate_range
    fgate_preact = torch.randn(B, NH, S, generator=g, dtype=torch.float64) * fgate_std
    return igate_preact.to(dtype), fgate_preact.to(dtype)


def realistic_gates(B=1, NH=1, S=256, *, seed=0, dtype=torch.float64, fgate_mean=4.5, fgate_std=1.0,
                    igate_std=1.0):
    """Gate pre-activations near the official initialization, ``(B, NH, S)`` each:
    ``fgate_preact ~ N(4.5, 1)``, ``igate_preact ~ N(0, 1)``.

    The official mLSTM cell (``xlstm``'s ``mLSTMCell.reset_parameters``) starts the forget gate with
    zero weights and biases ``linspace(3, 6)`` over the heads (``bias_linspace_init_``), the input gate
    with zero weights and biases ``N(0, 0.1)``; the spread here stands in for the input's influence.
    Forget gates are then ``sigmoid(4.5) = 0.989``: ``log f ~ -0.011`` per step.
    """
    g = torch.Generator().manual_seed(seed)
    igate_preact = torch.randn(B, NH, S, generator=g, dtype=torch.float64) * igate_std
    fgate_preact = torch.randn(B, NH, S, generator=g, dtype=torch.float64) * fgate_std + fgate_mean
    return igate_preact.to(dtype), fgate_preact.to(dtype)


#: Gate regimes of :func:`float32_pitfall`: ``name -> gates(B, NH, S, seed=...)``.
GATE_REGIMES = {"realistic": realistic_gates, "hard": hard_gates}


def qkv(B=1, NH=1, S=256, DHQK=64, DHV=64, *, seed=0, dtype=torch.float64):
    """Standard normal ``q, k (B, NH, S, DHQK)`` and ``v (B, NH, S, DHV)``."""
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(B, NH, S, DHQK, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(B, NH, S, DHV, generator=g, dtype=torch.float64)
    return q.to(dtype), k.to(dtype), v.to(dtype)


# --- the stabilizer ---------------------------------------------------------------------------------


def stabilizer_trajectory(igate_preact, fgate_preact, m_initial=0.0):
    """``m_t`` of the recurrent form for every step, from ``m_0 = m_initial`` (0 in the package).

    Steps the package's :func:`xlstm_edu.gating.stabilized_gates`; gates ``(..., S)`` (numpy or
    torch) -> ``m (..., S)`` of the same kind.
    """
    is_torch = isinstance(igate_preact, torch.Tensor)
    log_fgate = log_sigmoid(fgate_preact)
    m = igate_preact[..., 0] * 0 + m_initial  # (...,) in the input's kind and dtype
    ms = []
    for t in range(igate_preact.shape[-1]):
        _, _, m = stabilized_gates(igate_preact[..., t], log_fgate[..., t], m)
        ms.append(m)
    return torch.stack(ms, dim=-1) if is_torch else np.stack(ms, axis=-1)


# --- the float32 pitfall ----------------------------------------------------------------------------


#: The two constructions of ``log D`` compared by :func:`float32_pitfall`.
LOG_D_BUILDERS = {
    "masked cumsum (package)": mlstm.log_decay_matrix,
    "cumsum difference": mlstm.log_decay_matrix_cumsum_difference,
}


def float32_pitfall(sizes=(256, 512, 1024, 2048), *, regime="hard", NH=1, DH=64, window=30.0, seed=0,
                    eps=1e-6):
    """Errors of the float32 ``log D`` constructions against a float64 reference, for each ``S``.

    Gates from :data:`GATE_REGIMES` ``[regime]`` (:func:`hard_gates` or :func:`realistic_gates`). The
    ``log D`` error is the largest absolute error over the
    entries that matter, those within ``window`` of their row maximum (``log D - m > -window``;
    the others are multiplied by less than ``exp(-window)``). The ``h`` error is the relative error
    (max abs / max abs of the reference) of the parallel form built on each construction.

    Returns one dict per ``S``: ``{"S", "regime", "cumsum_range", "cumsum_spacing",
    "logd_err": {name: err}, "h_err": {name: err}}``; ``cumsum_range`` is ``|sum_t log f_t|``, the
    size of the numbers the difference construction subtracts, and ``cumsum_spacing`` the float32
    spacing at that size (the smallest error a difference of such numbers can have).
    """
    if regime not in GATE_REGIMES:
        raise ValueError(f"unknown gate regime {regime!r}; expected one of {sorted(GATE_REGIMES)}")
    rows = []
    for S in sizes:
        i64, f64 = GATE_REGIMES[regime](1, NH, S, seed=seed + S)
        q, k, v = qkv(1, NH, S, DH, DH, seed=seed + S + 1)
        log_f64 = F.logsigmoid(f64)
        ref = mlstm.log_decay_matrix(log_f64, i64)  # (1, NH, S, S) float64
        matters = ref - ref.amax(-1, keepdim=True) > -window
        h_ref = mlstm.parallel_torch(q, k, v, i64, f64, eps)
        cumsum_range = float(log_f64.sum(-1).abs().max())
        row = {"S": S, "regime": regime, "cumsum_range": cumsum_range,
               "cumsum_spacing": float(np.spacing(np.float32(cumsum_range))),
               "logd_err": {}, "h_err": {}}
        for name, build in LOG_D_BUILDERS.items():
            log_d32 = build(log_f64.float(), i64.float()).double()
            row["logd_err"][name] = float((log_d32 - ref).abs()[matters].max())
            h32 = mlstm.parallel_torch(q.float(), k.float(), v.float(), i64.float(), f64.float(), eps,
                                       log_decay_fn=build)
            row["h_err"][name] = float((h32.double() - h_ref).abs().max() / h_ref.abs().max())
        rows.append(row)
    return rows


# --- the chunk structure ----------------------------------------------------------------------------


def stabilized_decay_matrix(log_d):
    """``D' = exp(log D - m)`` with the row maxima ``m_t = max_s log D_ts`` (the parallel form's
    stabilizer), for one ``(S, S)`` matrix (numpy or torch). Returns numpy ``(D' (S, S), m (S,))``."""
    log_d = np.asarray(log_d, dtype=float)
    m = log_d.max(-1)
    return np.exp(log_d - m[:, None]), m


def chunk_structure(S, L):
    """``(S, S)`` int array: which part of the chunkwise form accounts for entry ``(t, s)`` of ``D``.

    :data:`FUTURE` (``s > t``, masked), :data:`INTRA` (same chunk: the parallel form on the chunk),
    :data:`INTER` (an earlier chunk: never formed, summarized by the memory carried into ``t``'s
    chunk). Chunks are ``[0, L), [L, 2L), ...``; the last one may be shorter.
    """
    if S < 1 or L < 1:
        raise ValueError(f"S and L must be >= 1, got S={S}, L={L}")
    chunk = np.arange(S) // L
    t, s = np.arange(S)[:, None], np.arange(S)[None, :]
    return np.where(s > t, FUTURE, np.where(chunk[:, None] == chunk[None, :], INTRA, INTER))


# --- scaling ----------------------------------------------------------------------------------------


def loglog_slope(x, y):
    """Least-squares line through ``(log x, log y)``. Returns ``(slope, a)`` with ``y ~ a x^slope``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"need at least two (x, y) pairs of equal length, got {x.shape}, {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("log-log fit needs positive x and y")
    slope, c = np.polyfit(np.log(x), np.log(y), 1)
    return float(slope), float(np.exp(c))


def _form_fn(form, chunk_size):
    if form == "recurrent":  # numpy in: the compiled numba loop
        return lambda *a: mlstm.recurrent(*a)
    if form == "parallel":
        return lambda *a: mlstm.parallel(*a)
    if form == "chunkwise":
        return lambda *a: mlstm.chunkwise(*a, chunk_size=chunk_size)
    raise ValueError(f"unknown form {form!r}; expected one of {FORMS}")


def scaling_sweep(sizes, forms=FORMS, *, max_S=None, B=1, NH=4, DH=64, chunk_size=64, repeats=5,
                  rounds=3, warmup=1, max_seconds=1.0, threads=1, seed=0):
    """Median forward time (seconds) of each form at each ``S``, float32 on CPU, no autograd.

    ``recurrent`` is the numba loop (numpy inputs), ``parallel`` and ``chunkwise`` run in torch.
    ``max_S`` (``{form: S}``) skips sizes where a form is too slow. Each point is timed in
    ``rounds`` rounds that visit all points in turn (so that a burst of load elsewhere on the
    machine hits many points a little rather than one point a lot), each round a median of
    ``repeats`` calls; the point's time is the median over rounds
    (:func:`xlstm_edu.timing.interleaved_medians`). Torch and numba run with ``threads`` threads
    (:func:`xlstm_edu.timing.limited_threads`; the slopes do not depend on it). Returns
    ``{form: {"S": [...], "seconds": [...]}}``.
    """
    max_S = max_S or {}
    fns = {form: _form_fn(form, chunk_size) for form in forms}  # unknown forms fail here
    inputs = {S: bench.mlstm_inputs(B=B, NH=NH, S=S, DHQK=DH, DHV=DH, seed=seed) for S in sizes}
    calls = {}
    for S in sizes:
        for form in forms:
            if S <= max_S.get(form, math.inf):
                args = tuple(x.numpy() for x in inputs[S]) if form == "recurrent" else inputs[S]
                calls[form, S] = functools.partial(fns[form], *args)
    with torch.no_grad():
        return _timed_sweep(calls, forms, threads, rounds=rounds, repeats=repeats, warmup=warmup,
                            max_seconds=max_seconds)


def _timed_sweep(calls, forms, threads, **timing):
    """Time ``calls`` (``{(form, S): fn}``) in interleaved rounds with ``threads`` threads
    (:func:`xlstm_edu.timing.interleaved_medians` with ``timing``); ``{form: {"S", "seconds"}}``."""
    with limited_threads(threads):
        times = interleaved_medians(calls, **timing)
    out = {form: {"S": [], "seconds": []} for form in forms}
    for (form, S), seconds in times.items():
        out[form]["S"].append(S)
        out[form]["seconds"].append(seconds)
    return out


def counted_costs(sizes, forms=("parallel", "chunkwise"), *, B=1, NH=4, DH=64, chunk_size=64):
    """What one forward call of each form *does* at each ``S``, counted instead of measured: the FLOPs
    of its matrix products (:func:`xlstm_edu.timing.count_flops`) and the bytes of the largest tensor it
    creates (:func:`xlstm_edu.timing.largest_tensor_bytes`). The same numbers on every machine, so the
    chapter may assert on them. Returns ``{form: {"S": [...], "flops": [...], "largest_bytes": [...]}}``.
    """
    if "recurrent" in forms:
        raise ValueError("the recurrent form runs in numba: torch cannot count its work")
    out = {}
    for form in forms:
        d = out[form] = {"S": [], "flops": [], "largest_bytes": []}
        for S in sizes:
            call = functools.partial(_form_fn(form, chunk_size),
                                     *bench.mlstm_inputs(B=B, NH=NH, S=S, DHQK=DH, DHV=DH))
            with torch.no_grad():
                d["S"].append(S)
                d["flops"].append(count_flops(call))
                d["largest_bytes"].append(largest_tensor_bytes(call))
    return out


def memory_sweep(sizes, forms=("parallel", "chunkwise"), *, max_S=None, workers=2, B=1, NH=4, DH=64,
                 chunk_size=64):
    """Peak memory (MiB) of one forward call of each form at each ``S`` (torch float32, CPU).

    Each point is :func:`xlstm_edu.bench.peak_memory`: a fresh child process, so points do not
    disturb each other and ``workers`` of them may run at once (peak RSS is per process).
    Returns ``{form: {"S": [...], "MiB": [...]}}``.
    """
    max_S = max_S or {}
    jobs = [(form, S) for form in forms for S in sizes if S <= max_S.get(form, math.inf)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        mibs = list(pool.map(lambda job: bench.peak_memory(
            job[0], job[1], B=B, NH=NH, DHQK=DH, DHV=DH, chunk_size=chunk_size), jobs))
    out = {form: {"S": [], "MiB": []} for form in forms}
    for (form, S), mib in zip(jobs, mibs):
        out[form]["S"].append(S)
        out[form]["MiB"].append(mib)
    return out


def fitted_power_laws(sweep, key, min_S=0):
    """``{form: (slope, a, S_fit)}``: :func:`loglog_slope` (``y ~ a S^slope``) over the points with
    ``S >= min_S`` of a sweep, and those ``S``; forms with fewer than two such points are left out."""
    fits = {}
    for form, d in sweep.items():
        pts = [(S, y) for S, y in zip(d["S"], d[key]) if S >= min_S]
        if len(pts) >= 2:
            fits[form] = (*loglog_slope(*zip(*pts)), [S for S, _ in pts])
    return fits


def fitted_slopes(sweep, key, min_S=0):
    """``{form: slope}`` of :func:`loglog_slope` over the points with ``S >= min_S`` of a sweep."""
    return {form: fit[0] for form, fit in fitted_power_laws(sweep, key, min_S).items()}


def to_mib(sweep, key="bytes"):
    """A sweep of byte counts (``{form: {"S": [...], key: [...]}}``) in MiB: ``{form: {"S", "MiB"}}``."""
    return {form: {"S": list(d["S"]), "MiB": [b / 2**20 for b in d[key]]} for form, d in sweep.items()}


def scaling_table(times, memory):
    """The two sweeps as a text table: a row per ``S``, ms per form, then MiB per form ('-': none)."""
    columns = [(form, "seconds", 1e3, "ms") for form in times] + [(form, "MiB", 1.0, "MiB")
                                                                  for form in memory]
    sweeps = {"seconds": times, "MiB": memory}
    sizes = sorted({S for sweep in sweeps.values() for d in sweep.values() for S in d["S"]})
    lines = [f"{'S':>6} " + " ".join(f"{form + ' ' + unit:>15}" for form, _, _, unit in columns)]
    for S in sizes:
        cells = []
        for form, key, scale, _ in columns:
            d = sweeps[key][form]
            cells.append(f"{scale * d[key][d['S'].index(S)]:15.2f}" if S in d["S"] else f"{'-':>15}")
        lines.append(f"{S:6d} " + " ".join(cells))
    return "\n".join(lines)


# --- training: forward + backward -------------------------------------------------------------------


def _training_fn(form, chunk_size):
    """The form as autograd runs it in training: torch in, so ``recurrent`` is the torch loop."""
    if form == "recurrent":
        return lambda *a: mlstm.recurrent(*a)
    return _form_fn(form, chunk_size)


def _training_points(sizes, forms, max_S):
    max_S = max_S or {}
    for form in forms:
        _training_fn(form, 1)  # unknown forms fail here
    return [(form, S) for form in forms for S in sizes if S <= max_S.get(form, math.inf)]


def training_saved_bytes(sizes, forms=FORMS, *, max_S=None, B=1, NH=4, DH=64, chunk_size=64, seed=0):
    """Bytes autograd saves in the forward pass for the backward pass, per form and ``S``: the memory
    training needs beyond the inputs (float32, CPU).

    Counted with :func:`xlstm_edu.timing.saved_tensor_bytes` (``saved_tensors_hooks``, storages
    deduplicated, the inputs' own storages left out), so exact and the same on every machine. The
    recurrent form is the torch loop (autograd cannot run through the numba loop). ``max_S``
    (``{form: S}``) skips sizes where a form's count takes too much memory. Returns
    ``{form: {"S": [...], "bytes": [...]}}``.
    """
    out = {form: {"S": [], "bytes": []} for form in forms}
    for form, S in _training_points(sizes, forms, max_S):
        inputs = bench.mlstm_inputs(B=B, NH=NH, S=S, DHQK=DH, DHV=DH, seed=seed, requires_grad=True)
        fn = _training_fn(form, chunk_size)
        out[form]["S"].append(S)
        out[form]["bytes"].append(saved_tensor_bytes(functools.partial(fn, *inputs), exclude=inputs))
    return out


def recurrent_saved_bytes(S, B=1, NH=4, DHQK=64, DHV=64, itemsize=4):
    """What autograd saves through the package's torch recurrent loop, counted by hand: per head and
    step two ``DHQK x DHV`` matrices (the new memory ``C_t``, saved by the read-out ``q^T C_t``, and the
    outer product ``k_t v_t^T``, saved by its product with the input gate), two ``DHQK`` vectors (``n_t``
    and ``q_t / sqrt(DHQK)``), one ``DHV`` vector (the read-out ``q^T C_t``), 7 scalars (gates,
    stabilizer, normalizer) and the step's ``log f``; plus the zero initial memory ``C_0, n_0``. A test
    checks it against :func:`training_saved_bytes`.
    """
    per_step = 2 * DHQK * DHV + 2 * DHQK + DHV + 8
    initial = DHQK * DHV + DHQK
    return B * NH * itemsize * (S * per_step + initial)


def training_times(sizes, forms=FORMS, *, max_S=None, B=1, NH=4, DH=64, chunk_size=64, rounds=3,
                   repeats=1, warmup=1, max_seconds=1.0, threads=1, seed=0):
    """Median wall time (seconds) of one forward + backward pass (gradients of ``h.sum()`` with respect
    to all five inputs) of each form at each ``S``, float32 on CPU. Measured: print it, never assert it.

    Interleaved rounds (:func:`xlstm_edu.timing.interleaved_medians`), with ``threads`` torch threads;
    each visit of a point starts with ``warmup`` untimed calls, which absorb what the previous point
    left behind (after a large parallel-form call the allocator has to fetch fresh memory again).
    Returns ``{form: {"S": [...], "seconds": [...]}}``.
    """
    calls = {}
    for form, S in _training_points(sizes, forms, max_S):
        inputs = bench.mlstm_inputs(B=B, NH=NH, S=S, DHQK=DH, DHV=DH, seed=seed, requires_grad=True)
        fn = _training_fn(form, chunk_size)

        def call(fn=fn, inputs=inputs):
            torch.autograd.grad(fn(*inputs).sum(), inputs)

        calls[form, S] = call
    return _timed_sweep(calls, forms, threads, rounds=rounds, repeats=repeats, warmup=warmup,
                        max_seconds=max_seconds)
