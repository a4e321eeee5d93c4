"""Parallel and chunkwise forms of the mLSTM (chapter "Parallel forms: from quadratic to linear").

Everything here calls the package's mLSTM (:mod:`xlstm_edu.mlstm`) and its benchmark helpers
(:mod:`xlstm_edu.bench`); nothing re-derives a formula, except :func:`parallel_with`, which is
:func:`xlstm_edu.mlstm.parallel_torch` with the construction of ``log D`` passed in as a parameter
(a test checks that with the package's builder it gives bit-for-bit the package's output).

* :func:`hard_gates`: gate pre-activations that make the stabilizer and float32 work hard;
* :func:`stabilizer_trajectory`: the recurrent form's ``m_t``, stepped with the package's gating;
* :func:`float32_pitfall`: error of the two ``log D`` constructions (and of ``h``) in float32;
* :func:`chunk_structure`: which part of the chunkwise form computes each entry of the causal mask;
* :func:`scaling_sweep`, :func:`memory_sweep`, :func:`loglog_slope`: time and memory against ``S``;
* ``plot_*``: the chapter's figures.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F

from .. import bench, mlstm
from ..gating import log_sigmoid, stabilized_gates

#: The three forms, in the order the chapter plots them.
FORMS = ("recurrent", "parallel", "chunkwise")

#: Colors per form, shared by the figures.
COLORS = {"recurrent": "tab:blue", "parallel": "tab:red", "chunkwise": "tab:green"}

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


def parallel_with(log_decay_fn, q, k, v, igate_preact, fgate_preact, eps=1e-6):
    """:func:`xlstm_edu.mlstm.parallel_torch` with the ``log D`` construction as a parameter.

    ``log_decay_fn(log_fgate, igate_preact) -> log D`` is :func:`xlstm_edu.mlstm.log_decay_matrix`
    (the package's) or :func:`xlstm_edu.mlstm.log_decay_matrix_cumsum_difference`.
    """
    return mlstm.parallel_torch(q, k, v, igate_preact, fgate_preact, eps, log_decay_fn=log_decay_fn)


#: The two constructions of ``log D`` compared by :func:`float32_pitfall`.
LOG_D_BUILDERS = {
    "masked cumsum (package)": mlstm.log_decay_matrix,
    "cumsum difference": mlstm.log_decay_matrix_cumsum_difference,
}


def float32_pitfall(sizes=(256, 512, 1024, 2048), *, NH=1, DH=64, window=30.0, seed=0, eps=1e-6):
    """Errors of the float32 ``log D`` constructions against a float64 reference, for each ``S``.

    Gates from :func:`hard_gates`. The ``log D`` error is the largest absolute error over the
    entries that matter, those within ``window`` of their row maximum (``log D - m > -window``;
    the others are multiplied by less than ``exp(-window)``). The ``h`` error is the relative error
    (max abs / max abs of the reference) of the parallel form built on each construction.

    Returns one dict per ``S``: ``{"S", "cumsum_range", "logd_err": {name: err},
    "h_err": {name: err}}``; ``cumsum_range`` is ``|sum_t log f_t|``, the size of the numbers the
    difference construction subtracts.
    """
    rows = []
    for S in sizes:
        i64, f64 = hard_gates(1, NH, S, seed=seed + S)
        q, k, v = qkv(1, NH, S, DH, DH, seed=seed + S + 1)
        log_f64 = F.logsigmoid(f64)
        ref = mlstm.log_decay_matrix(log_f64, i64)  # (1, NH, S, S) float64
        matters = ref - ref.amax(-1, keepdim=True) > -window
        h_ref = mlstm.parallel_torch(q, k, v, i64, f64, eps)
        row = {"S": S, "cumsum_range": float(log_f64.sum(-1).abs().max()), "logd_err": {},
               "h_err": {}}
        for name, build in LOG_D_BUILDERS.items():
            log_d32 = build(log_f64.float(), i64.float()).double()
            row["logd_err"][name] = float((log_d32 - ref).abs()[matters].max())
            h32 = parallel_with(build, q.float(), k.float(), v.float(), i64.float(), f64.float(), eps)
            row["h_err"][name] = float((h32.double() - h_ref).abs().max() / h_ref.abs().max())
        rows.append(row)
    return rows


# --- the chunk structure ----------------------------------------------------------------------------


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


@contextmanager
def limited_threads(n):
    """Run torch and numba with ``n`` threads inside the block (``None``: leave them as they are).

    On a busy machine, one thread per process gives steadier timings: a multi-threaded kernel
    waits at every barrier for its slowest thread, and a thread that loses its core to another
    process stalls all of them.
    """
    if n is None:
        yield
        return
    import numba

    old_torch, old_numba = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(old_torch)
        numba.set_num_threads(old_numba)


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
    ``repeats`` calls (:func:`xlstm_edu.bench.median_time`); the point's time is the median over
    rounds. Torch and numba run with ``threads`` threads (see :func:`limited_threads`; the slopes do
    not depend on it). Returns ``{form: {"S": [...], "seconds": [...]}}``.
    """
    max_S = max_S or {}
    fns = {form: _form_fn(form, chunk_size) for form in forms}  # unknown forms fail here
    points = [(form, S) for S in sizes for form in forms if S <= max_S.get(form, math.inf)]
    inputs = {S: bench.mlstm_inputs(B=B, NH=NH, S=S, DHQK=DH, DHV=DH, seed=seed) for S in sizes}
    samples = {point: [] for point in points}
    with limited_threads(threads), torch.no_grad():
        for _ in range(rounds):
            for form, S in points:
                args = tuple(x.numpy() for x in inputs[S]) if form == "recurrent" else inputs[S]
                samples[form, S].append(bench.median_time(
                    lambda fn=fns[form], args=args: fn(*args), repeats=repeats, warmup=warmup,
                    max_seconds=max_seconds))
    out = {form: {"S": [], "seconds": []} for form in forms}
    for (form, S), ts in samples.items():
        out[form]["S"].append(S)
        out[form]["seconds"].append(float(np.median(ts)))
    return out


def memory_sweep(sizes, forms=("parallel", "chunkwise"), *, max_S=None, workers=2, B=1, NH=4, DH=64,
                 chunk_size=64):
    """Peak memory (MiB) of one forward call of each form at each ``S`` (torch float32, CPU).

    Each point is :func:`xlstm_edu.bench.peak_memory_mib`: a fresh child process, so points do not
    disturb each other and ``workers`` of them may run at once (peak RSS is per process).
    Returns ``{form: {"S": [...], "MiB": [...]}}``.
    """
    max_S = max_S or {}
    jobs = [(form, S) for form in forms for S in sizes if S <= max_S.get(form, math.inf)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        mibs = list(pool.map(lambda job: bench.peak_memory_mib(
            job[0], job[1], B=B, NH=NH, DHQK=DH, DHV=DH, chunk_size=chunk_size), jobs))
    out = {form: {"S": [], "MiB": []} for form in forms}
    for (form, S), mib in zip(jobs, mibs):
        out[form]["S"].append(S)
        out[form]["MiB"].append(mib)
    return out


def fitted_slopes(sweep, key, min_S=0):
    """``{form: slope}`` of :func:`loglog_slope` over the points with ``S >= min_S`` of a sweep."""
    slopes = {}
    for form, d in sweep.items():
        pts = [(S, y) for S, y in zip(d["S"], d[key]) if S >= min_S]
        if len(pts) >= 2:
            slopes[form] = loglog_slope(*zip(*pts))[0]
    return slopes


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


# --- figures ----------------------------------------------------------------------------------------


def _size_ticks(ax, sizes):
    """Label a log x axis at the measured sizes only (no crowded minor labels)."""
    from matplotlib.ticker import NullFormatter

    sizes = sorted(set(int(S) for S in sizes))
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(S) for S in sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_decay_matrices(log_d, title=""):
    """Side-by-side heatmaps of ``log D`` (``-inf`` left blank) and ``D' = exp(log D - m)``.

    ``log_d``: one ``(S, S)`` matrix (numpy or torch).
    """
    import matplotlib.pyplot as plt

    log_d = np.asarray(log_d, dtype=float)
    m = log_d.max(-1, keepdims=True)
    d_stab = np.exp(log_d - m)
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.3), constrained_layout=True)
    shown = np.ma.masked_invalid(np.where(np.isfinite(log_d), log_d, np.nan))
    im0 = axes[0].imshow(shown, cmap="viridis")
    fig.colorbar(im0, ax=axes[0], label=r"$\log D_{ts}$")
    axes[0].set_title(r"$\log D$ (blank: $-\infty$, the future)")
    im1 = axes[1].imshow(d_stab, cmap="magma", vmin=0.0, vmax=1.0)
    fig.colorbar(im1, ax=axes[1], label=r"$D'_{ts} = \exp(\log D_{ts} - m_t)$")
    axes[1].set_title(r"stabilized $D'$ (row maximum = 1)")
    s_max = np.argmax(log_d, axis=-1)
    axes[1].plot(s_max, np.arange(len(s_max)), "o", mfc="none", mec="tab:cyan", ms=4, mew=0.8,
                 label=r"row maximum $\arg\max_s \log D_{ts}$")
    axes[1].legend(loc="upper right", fontsize=8)
    for ax in axes:
        ax.set_xlabel("source step s (key, value)")
        ax.set_ylabel("target step t (query)")
    if title:
        fig.suptitle(title)
    return fig


def plot_chunk_structure(S=32, L=8):
    """The ``S x S`` causal mask colored by :func:`chunk_structure`, with the chunk boundaries."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    structure = chunk_structure(S, L)
    colors = ["#f4f4f4", "tab:orange", "tab:cyan"]
    fig, ax = plt.subplots(figsize=(5.6, 5.2), constrained_layout=True)
    ax.imshow(structure, cmap=ListedColormap(colors), vmin=-0.5, vmax=2.5)
    for b in range(L, S, L):
        ax.axhline(b - 0.5, color="k", lw=0.8)
        ax.axvline(b - 0.5, color="k", lw=0.8)
    for c in range(1, -(-S // L)):  # rows of chunk c read chunks 0..c-1 through the memory C_c
        ax.text(c * L / 2 - 0.5, c * L + min(L, S - c * L) / 2 - 0.5, f"$C_{{{c}}}, n_{{{c}}}$",
                ha="center", va="center", fontsize=10)
    ax.set_xlabel("source step s")
    ax.set_ylabel("target step t")
    ax.set_title(f"Chunkwise form, S = {S}, L = {L}: who computes $D_{{ts}}$")
    ax.legend(handles=[
        Patch(color=colors[INTRA], label="intra-chunk: parallel form on the chunk"),
        Patch(color=colors[INTER], label=r"inter-chunk: via the memory $(C_k, n_k, m_k)$"),
        Patch(facecolor=colors[FUTURE], edgecolor="0.7", label="future: masked"),
    ], loc="upper right", fontsize=8)
    return fig


def plot_pitfall(rows):
    """Error against ``S`` of the two float32 ``log D`` constructions (left) and of ``h`` (right)."""
    import matplotlib.pyplot as plt

    sizes = [r["S"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8), constrained_layout=True)
    for key, ax, label in [("logd_err", axes[0], r"max abs error of $\log D$ (entries that matter)"),
                           ("h_err", axes[1], r"relative error of $h$")]:
        for name, style in zip(LOG_D_BUILDERS, ("o-", "s--")):
            ax.loglog(sizes, [r[key][name] for r in rows], style, label=name)
        ax.set_xlabel("sequence length S")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].loglog(sizes, [np.spacing(np.float32(r["cumsum_range"])) for r in rows], ":", color="0.5",
                   label=r"float32 spacing at $|\sum_t \log f_t|$")
    for ax in axes:
        ax.legend()
        _size_ticks(ax, sizes)
    axes[0].set_title(r"float32 $\log D$ vs float64 reference")
    axes[1].set_title("float32 parallel form vs float64 reference")
    return fig


def plot_scaling(times, memory, *, time_min_S=0, memory_min_S=0):
    """Log-log plots of time and memory against ``S``, with the fitted slopes in the legends.

    ``times`` from :func:`scaling_sweep`, ``memory`` from :func:`memory_sweep`; slopes are fitted
    on the points with ``S >= *_min_S`` (drawn as a dashed line over that range).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, sweep, key, min_S, unit in [(axes[0], times, "seconds", time_min_S, "forward time (s)"),
                                        (axes[1], memory, "MiB", memory_min_S, "peak memory (MiB)")]:
        slopes = fitted_slopes(sweep, key, min_S)
        for form, d in sweep.items():
            if not d["S"]:
                continue
            label = form + (f"  (slope {slopes[form]:.2f})" if form in slopes else "")
            ax.loglog(d["S"], d[key], "o-", color=COLORS.get(form), label=label)
            if form in slopes:
                x = np.array([S for S in d["S"] if S >= min_S], dtype=float)
                _, a = loglog_slope(x, [y for S, y in zip(d["S"], d[key]) if S >= min_S])
                ax.loglog(x, a * x ** slopes[form], "--", color=COLORS.get(form), alpha=0.5)
        ax.set_xlabel("sequence length S")
        ax.set_ylabel(unit)
        _size_ticks(ax, [S for d in sweep.values() for S in d["S"]])
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0].set_title("time: median of repeated forward calls")
    axes[1].set_title("memory: peak RSS growth of one call")
    return fig
