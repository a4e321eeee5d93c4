"""Figures of the chapter "Parallel forms: from quadratic to linear" (computations:
:mod:`xlstm_edu.experiments.parallel_forms`)."""

from __future__ import annotations

import numpy as np

from ..experiments.parallel_forms import (
    FUTURE,
    INTER,
    INTRA,
    LOG_D_BUILDERS,
    chunk_structure,
    fitted_power_laws,
    stabilized_decay_matrix,
    to_mib,
)
from ._style import TEXT_WIDTH_IN, pyplot

#: Colors per form, shared by the figures.
COLORS = {"recurrent": "tab:blue", "parallel": "tab:red", "chunkwise": "tab:green"}


def _size_ticks(ax, sizes):
    """Label a log x axis at the measured sizes only (no crowded minor labels)."""
    from matplotlib.ticker import NullFormatter

    sizes = sorted(set(int(S) for S in sizes))
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(S) for S in sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_decay_matrices(log_d, title=""):
    """Side-by-side heatmaps of ``log D`` (``-inf`` left blank) and ``D' = exp(log D - m)``
    (:func:`xlstm_edu.experiments.parallel_forms.stabilized_decay_matrix`), with each row's maximum
    marked. ``log_d``: one ``(S, S)`` matrix (numpy or torch). Returns the figure."""
    log_d = np.asarray(log_d, dtype=float)
    d_stab, _ = stabilized_decay_matrix(log_d)
    fig, axes = pyplot().subplots(1, 2, figsize=(TEXT_WIDTH_IN, 3.7), constrained_layout=True)
    shown = np.ma.masked_invalid(np.where(np.isfinite(log_d), log_d, np.nan))
    im0 = axes[0].imshow(shown, cmap="viridis")
    fig.colorbar(im0, ax=axes[0], label=r"$\log D_{ts}$")
    axes[0].set_title(r"$\log D$ (blank: $-\infty$)")
    im1 = axes[1].imshow(d_stab, cmap="magma", vmin=0.0, vmax=1.0)
    fig.colorbar(im1, ax=axes[1], label=r"$D'_{ts} = \exp(\log D_{ts} - m_t)$")
    axes[1].set_title(r"stabilized $D'$ (row maximum 1)")
    s_max = np.argmax(log_d, axis=-1)
    axes[1].plot(s_max, np.arange(len(s_max)), "o", mfc="none", mec="tab:cyan", ms=4, mew=0.8,
                 label=r"row maximum $\arg\max_s \log D_{ts}$")
    axes[1].legend(loc="upper right")
    for ax in axes:
        ax.set_xlabel("source step s (key, value)")
    axes[0].set_ylabel("target step t (query)")
    if title:
        fig.suptitle(title)
    return fig


def plot_chunk_structure(S=32, L=8):
    """The ``S x S`` causal mask colored by :func:`xlstm_edu.experiments.parallel_forms.chunk_structure`,
    with the chunk boundaries. Returns the figure."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    structure = chunk_structure(S, L)
    colors = ["#f4f4f4", "tab:orange", "tab:cyan"]  # indexed by FUTURE, INTRA, INTER
    fig, ax = pyplot().subplots(figsize=(5.6, 5.2), constrained_layout=True)
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
    ], loc="upper right")
    return fig


def plot_pitfall(rows):
    """Error against ``S`` of the two float32 ``log D`` constructions (top) and of ``h`` (bottom).

    ``rows``: the list :func:`xlstm_edu.experiments.parallel_forms.float32_pitfall` returns, or a dict
    ``{regime: rows}`` of several gate regimes (one line per regime and construction, the legend
    naming both; the legends then go under the panels). The dotted lines are the float32 spacing at
    ``|sum_t log f_t|``. Returns the figure.
    """
    regimes = rows if isinstance(rows, dict) else {None: rows}
    several = len(regimes) > 1
    fig, axes = pyplot().subplots(2, 1, figsize=(TEXT_WIDTH_IN, 8.4 if several else 6.6),
                                  constrained_layout=True)
    markers = ("o", "s", "^", "v")
    all_sizes = []
    for j, ((regime, reg_rows), marker) in enumerate(zip(regimes.items(), markers)):
        sizes = [r["S"] for r in reg_rows]
        all_sizes += sizes
        suffix = "" if regime is None else f", {regime} gates"
        for key, ax in [("logd_err", axes[0]), ("h_err", axes[1])]:
            for name, line in zip(LOG_D_BUILDERS, ("-", "--")):
                ax.loglog(sizes, [r[key][name] for r in reg_rows], marker + line, label=name + suffix,
                          color="tab:blue" if line == "-" else "tab:red", mfc="none" if j else None)
        axes[0].loglog(sizes, [r["cumsum_spacing"] for r in reg_rows], ":", color="0.5",
                       label=r"float32 spacing at $|\sum_t \log f_t|$" + suffix)
    for ax, label in [(axes[0], r"max abs error of $\log D$"), (axes[1], r"relative error of $h$")]:
        ax.set_xlabel("sequence length S")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        if several:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
        else:
            ax.legend()
        _size_ticks(ax, all_sizes)
    axes[0].set_title(r"float32 $\log D$ vs float64 reference (the entries that matter)")
    axes[1].set_title("float32 parallel form vs float64 reference")
    return fig


def _loglog_panel(ax, sweep, key, min_S, ylabel, title):
    """One log-log panel of ``sweep`` (``{form: {"S": [...], key: [...]}}``) against ``S``, a line per
    form with its fitted power law (:func:`~xlstm_edu.experiments.parallel_forms.fitted_power_laws`, over
    the points with ``S >= min_S``) dashed and its slope in the legend."""
    fits = fitted_power_laws(sweep, key, min_S)
    for form, d in sweep.items():
        if not d["S"]:
            continue
        label = form + (f"  (slope {fits[form][0]:.2f})" if form in fits else "")
        ax.loglog(d["S"], d[key], "o-", color=COLORS.get(form), label=label)
        if form in fits:
            slope, a, S_fit = fits[form]
            x = np.asarray(S_fit, dtype=float)
            ax.loglog(x, a * x**slope, "--", color=COLORS.get(form), alpha=0.5)
    ax.set_xlabel("sequence length S")
    ax.set_ylabel(ylabel)
    _size_ticks(ax, [S for d in sweep.values() for S in d["S"]])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(title)


def plot_scaling(times, memory, *, time_min_S=0, memory_min_S=0, memory_label="peak memory (MiB)",
                 memory_title="memory: peak RSS growth of one call"):
    """Log-log plots of time and memory against ``S`` (stacked), with the fitted slopes in the legends.

    ``times`` from :func:`~xlstm_edu.experiments.parallel_forms.scaling_sweep`, ``memory``
    (``{form: {"S": [...], "MiB": [...]}}``) from
    :func:`~xlstm_edu.experiments.parallel_forms.memory_sweep` or any other count in MiB (name it with
    ``memory_label`` and ``memory_title``); the power laws
    (:func:`~xlstm_edu.experiments.parallel_forms.fitted_power_laws`) are fitted on the points with
    ``S >= *_min_S`` and drawn dashed over that range. Returns the figure.
    """
    fig, axes = pyplot().subplots(2, 1, figsize=(TEXT_WIDTH_IN, 7.0), constrained_layout=True)
    _loglog_panel(axes[0], times, "seconds", time_min_S, "forward time (s)",
                  "time: median of repeated forward calls")
    _loglog_panel(axes[1], memory, "MiB", memory_min_S, memory_label, memory_title)
    return fig


def plot_training_cost(saved, times, *, saved_min_S=0, time_min_S=0):
    """What training costs, against ``S``: on top, the memory autograd saves for the backward pass
    (counted, :func:`~xlstm_edu.experiments.parallel_forms.training_saved_bytes`, drawn in MiB); below,
    the time of one forward + backward pass (measured,
    :func:`~xlstm_edu.experiments.parallel_forms.training_times`). Log-log, fitted slopes in the
    legends (power laws over ``S >= *_min_S``). Returns the figure."""
    saved_mib = to_mib(saved)
    fig, axes = pyplot().subplots(2, 1, figsize=(TEXT_WIDTH_IN, 7.0), constrained_layout=True)
    _loglog_panel(axes[0], saved_mib, "MiB", saved_min_S, "saved for backward (MiB)",
                  "training memory: tensors autograd keeps (counted)")
    _loglog_panel(axes[1], times, "seconds", time_min_S, "forward + backward time (s)",
                  "training time: median of interleaved rounds")
    return fig
