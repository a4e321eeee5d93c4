"""Figures of the chapter "sLSTM: scalar memory, memory mixing and heads" (computations:
:mod:`xlstm_edu.experiments.slstm`)."""

from __future__ import annotations

import numpy as np

from .. import slstm
from ..experiments.slstm import full_recurrent_matrix
from ._style import TEXT_WIDTH_IN, pyplot


def plot_recurrent_matrix(R, ax=None):
    """``imshow`` of :func:`xlstm_edu.experiments.slstm.full_recurrent_matrix` of ``R (NH, DH, 4, DH)``
    with the gate blocks marked. Returns the axes."""
    NH, DH = R.shape[0], R.shape[1]
    M = full_recurrent_matrix(R)
    if ax is None:
        _, ax = pyplot().subplots(figsize=(TEXT_WIDTH_IN, 2.9), layout="constrained")
    vmax = float(np.abs(M).max())
    im = ax.imshow(M, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    width = NH * DH
    for g, name in enumerate(slstm.GATES):
        if g:
            ax.axvline(g * width - 0.5, color="k", lw=1.0)
        ax.text((g + 0.5) * width, -1.5, f"gate {name}", ha="center", va="bottom")
    ax.set_xticks([(g * NH + head + 0.5) * DH - 0.5 for g in range(4) for head in range(NH)])
    ax.set_xticklabels([f"h{head}" for _ in range(4) for head in range(NH)])
    ax.set_yticks([(head + 0.5) * DH - 0.5 for head in range(NH)])
    ax.set_yticklabels([f"head {head}" for head in range(NH)])
    ax.set_xlabel("pre-activation column (gate, head, $d_{out}$)")
    ax.set_ylabel("input $h_{t-1}$ (head, $d_{in}$)")
    ax.figure.colorbar(im, ax=ax, fraction=0.02, pad=0.01)
    return ax


def plot_speed(results, ax=None):
    """Grouped bars (log scale) of microseconds per step, one group per label of ``results``
    (``{label: per_step}``, ``per_step`` from :func:`xlstm_edu.experiments.slstm.time_recurrent_paths`).
    The legend goes on the right. Returns the axes."""
    if ax is None:
        _, ax = pyplot().subplots(figsize=(TEXT_WIDTH_IN, 3.6), layout="constrained")
    labels = list(results)
    names = list(results[labels[0]])
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        x = np.arange(len(labels)) + (k - (len(names) - 1) / 2) * width
        bars = ax.bar(x, [1e6 * results[lb][name] for lb in labels], width, label=name)
        ax.bar_label(bars, fmt="%.0f")
    ax.set_xticks(np.arange(len(labels)))
    ax.set_xticklabels([str(lb) for lb in labels])
    ax.set_yscale("log")
    top = max(1e6 * t for per_step in results.values() for t in per_step.values())
    ax.set_ylim(top=3 * top)  # room for the labels above the bars
    ax.set_ylabel("microseconds per time step")
    ax.set_title("sLSTM recurrence: median time per step (lower is better)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


def plot_impulse_responses(responses, t_on=5, t_off=10):
    """One row per entry of ``responses`` (title -> ``h (NH, S, DH)`` from
    :func:`xlstm_edu.experiments.slstm.impulse_response`), one column per head; the pulse
    ``[t_on, t_off)`` shaded; the figure is at most the text width. Returns the figure."""
    rows = list(responses.items())
    NH = rows[0][1].shape[0]
    width = min(TEXT_WIDTH_IN, 1.9 * NH + 0.6)
    fig, axes = pyplot().subplots(len(rows), NH, figsize=(width, 2.3 * len(rows)), sharex=True,
                                  sharey=True, squeeze=False)
    for r, (title, h) in enumerate(rows):
        for head in range(NH):
            ax = axes[r, head]
            ax.axvspan(t_on, t_off, color="0.9")
            ax.plot(h[head], lw=1.2)  # (S, DH): one line per unit
            ax.set_title(f"{title}: head {head}", fontsize=9)
            if r == len(rows) - 1:
                ax.set_xlabel("time step $t$")
        axes[r, 0].set_ylabel("$h_t$ (one line per unit)")
    fig.tight_layout()
    return fig
