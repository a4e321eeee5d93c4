"""Figures of the chapter "mLSTM: matrix memory" (computations:
:mod:`xlstm_edu.experiments.mlstm_memory`)."""

from __future__ import annotations

import numpy as np

from ..experiments.mlstm_memory import crosstalk_theory
from ._style import TEXT_WIDTH_IN, pyplot


def plot_retrieval_error(ds, Ns, errors, ax=None):
    """Two panels, stacked: error vs ``N`` per ``d`` (``errors (len(ds), len(Ns))`` from
    :func:`xlstm_edu.experiments.mlstm_memory.retrieval_error_curve`; dashed:
    :func:`~xlstm_edu.experiments.mlstm_memory.crosstalk_theory`), and all ``d`` against the load
    ``(N - 1) / d``, where the curves fall onto one. Returns the figure."""
    if ax is None:
        fig, ax = pyplot().subplots(2, 1, figsize=(TEXT_WIDTH_IN, 7.0))
    else:
        fig = ax[0].figure
    Ns = np.asarray(Ns, dtype=float)
    for a, d in enumerate(ds):
        (line,) = ax[0].loglog(Ns, errors[a], "o", ms=4, label=f"d = {d}")
        ax[0].loglog(Ns, crosstalk_theory(Ns, d), "--", lw=1, color=line.get_color())
        ax[1].loglog((Ns - 1) / d, errors[a], "o", ms=4, color=line.get_color(), label=f"d = {d}")
    load = np.logspace(np.log10((Ns.min() - 1) / max(ds)), np.log10((Ns.max() - 1) / min(ds)), 200)
    # the estimate depends on N and d through the load only: with d = 1, N = load + 1
    ax[1].loglog(load, crosstalk_theory(load + 1.0, 1), "k--", lw=1, label=r"$1 - 1/\sqrt{1 + x}$")
    ax[0].set(xlabel="stored pairs N", ylabel="mean cosine distance  1 - cos(h, v)",
              title="Retrieval error: measured (dots), crosstalk estimate (dashed)")
    ax[1].set(xlabel="load x = (N - 1) / d", ylabel="mean cosine distance",
              title="All head sizes on one curve: the error depends on N / d")
    for a_ in ax:
        a_.grid(True, which="both", alpha=0.3)
        a_.legend()
    fig.tight_layout()
    return fig


def plot_memory(data, fig=None):
    """Heatmap of the memory ``C`` and a bar chart of the retrieval error per pair, with the error that
    forgetting alone causes (``data`` from :func:`xlstm_edu.experiments.mlstm_memory.explorer_data`).
    Returns the figure."""
    if fig is None:
        fig = pyplot().figure(figsize=(TEXT_WIDTH_IN, 3.6))
    ax_c, ax_e = fig.subplots(1, 2, gridspec_kw=dict(width_ratios=[1, 1.35]))
    C = data["C"]
    lim = max(float(np.abs(C).max()), 1e-12)
    im = ax_c.imshow(C, cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=ax_c, fraction=0.046, pad=0.04)
    ax_c.set(title="memory $C$", xlabel="value dimension", ylabel="key dimension")
    n = len(data["relative_error"])
    idx = np.arange(n)
    ax_e.bar(idx, data["relative_error"], color="tab:blue", label=r"$\|h_j - v_j\| / \|v_j\|$")
    ax_e.plot(idx, data["forgetting_only"], "k.--", lw=1, ms=4,
              label=r"forgetting alone: $1 - f^{\mathrm{age}}$")
    ax_e.set(xlabel="pair j (0 = oldest, right = newest)", ylabel="retrieval error",
             ylim=(0, max(1.2, 1.05 * float(np.max(data["relative_error"])))),
             title=f"error per pair, f = sigmoid(preact) = {data['forget']:.4f}")
    ax_e.legend(loc="upper right")
    fig.tight_layout()
    return fig
