"""Figures of the chapter "Exponential gating and the stabilizer" (computations:
:mod:`xlstm_edu.experiments.gating`)."""

from __future__ import annotations

import numpy as np

from ..experiments.gating import REVISE_CELLS, overflow_traces
from ..gating import log_sigmoid
from ._style import TEXT_WIDTH_IN, pyplot


def plot_average_weights(igate_preact, fgate_preact, weights):
    """One unit as a weighted average: left, its gates (``igate_preact`` and ``log f``, both ``(S,)``);
    right, the weights ``w[t, s]`` (``(S, S)``, from
    :func:`xlstm_edu.experiments.gating.average_weights`) as a heatmap. Returns the figure."""
    fig, (ax0, ax1) = pyplot().subplots(1, 2, figsize=(TEXT_WIDTH_IN, 3.6),
                                        gridspec_kw=dict(width_ratios=[1, 1.2]))
    ax0.plot(np.asarray(igate_preact), "o-", ms=3, label=r"input $\tilde\imath_s$")
    ax0.plot(log_sigmoid(np.asarray(fgate_preact, dtype=np.float64)), "s-", ms=3,
             label=r"forget, as $\log f_s$")
    ax0.set(xlabel="step s", ylabel="pre-activation", title="the unit's gates")
    ax0.legend()
    im = ax1.imshow(weights, cmap="viridis", aspect="auto")
    fig.colorbar(im, ax=ax1, label=r"$w_{ts}$")
    ax1.set(xlabel="past step s", ylabel=r"output step t (row t makes $h_t$)",
            title=r"softmax weights $w_{ts}$")
    fig.tight_layout()
    return fig


def plot_revise(task, outputs, comparison, index=0, beta=None, threshold=None):
    """Three panels, stacked: one sequence's importance and record, its target and the cells' outputs,
    and the test error against ``beta`` (from :func:`xlstm_edu.experiments.gating.revise_comparison`).
    With ``threshold`` (the overwrite cell's), the first panel also draws it and marks the items
    where that cell overwrites although they set no record. Returns the figure."""
    colors = dict(zip(REVISE_CELLS, ("tab:blue", "tab:orange", "tab:green")))
    fig, axes = pyplot().subplots(3, 1, figsize=(TEXT_WIDTH_IN, 10.0), layout="constrained")
    below = dict(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)  # legends under the panels
    S = task.values.shape[1]
    t = np.arange(S)
    a = task.importance[index]
    record = task.record[index]
    ax = axes[0]
    ax.plot(t, a, "o", ms=3, color="gray", label=r"importance $a_t$")
    ax.step(t, a[record], where="post", color="k", lw=1.2, label="most important so far")
    new = np.flatnonzero(np.r_[True, np.diff(record) != 0])
    ax.plot(t[new], a[new], "r*", ms=9, label="new record (revise!)")
    if threshold is not None:
        ax.axhline(threshold, color=colors[REVISE_CELLS[2]], ls="--", lw=1,
                   label=f"overwrite threshold {threshold:g}")
        wrong = np.flatnonzero((a > threshold) & (record != t))
        ax.plot(t[wrong], a[wrong], "x", ms=8, mew=2, color=colors[REVISE_CELLS[2]],
                label="overwritten, no record")
    ax.set(xlabel="step t", ylabel="importance", title="importance of each item")
    ax.legend(**below)
    ax = axes[1]
    ax.plot(t, task.values[index], "o", ms=3, color="gray", label=r"value $z_t$")
    ax.step(t, task.target[index], where="post", color="k", lw=5, alpha=0.3, label="target")
    for name, h in outputs.items():
        ax.plot(t, h[index], lw=1.3, color=colors[name], label=name)
    ax.set(xlabel="step t", ylabel="value", ylim=(-1.05, 1.05),
           title="hold the most important value" + (rf" ($\beta$ = {beta:g})" if beta else ""))
    ax.legend(**below)
    ax = axes[2]
    for name, err in comparison["errors"].items():
        ax.loglog(comparison["betas"], err, "o-", color=colors[name], label=name)
    ax.set(xlabel=r"gate sharpness $\beta$ (input-gate pre-activation $\beta a_t$)",
           ylabel="mean |h - target| (test)", title="error on the revise task")
    ax.legend(**below)
    return fig


def plot_overflow(igate_preact, fgate_preact, zgate_preact, ogate_preact,
                  dtypes=(np.float32, np.float16), unit=(0, 0, 0)):
    """One unit ``(b, head, d)`` of ``h``: the textbook form in each dtype against the stabilized cell
    (float64), with a dashed line where ``igate_preact`` first exceeds ``log(max)`` of the dtype
    (:func:`xlstm_edu.experiments.gating.overflow_traces`). Inputs ``(B, NH, S, DH)``. Returns the
    figure (the two panels stacked)."""
    data = overflow_traces(igate_preact, fgate_preact, zgate_preact, ogate_preact, dtypes, unit)
    i_unit, h64 = data["igate_preact"], data["h_stabilized"]
    t = np.arange(h64.shape[0])
    fig, axes = pyplot().subplots(2, 1, figsize=(TEXT_WIDTH_IN, 6.0), sharex=True,
                                  gridspec_kw=dict(height_ratios=[1, 1.4]))
    axes[0].plot(t, i_unit, color="k")
    axes[0].set(ylabel=r"$\tilde\imath_t$", title="input-gate pre-activation")
    axes[1].plot(t, h64, color="k", lw=2.5, alpha=0.4, label="stabilized (float64)")
    for name, color, marker in zip(data["textbook"], ("tab:blue", "tab:red", "tab:green"), "o^s"):
        h = data["textbook"][name]
        ok = np.isfinite(h)
        axes[1].plot(t[ok], h[ok], marker, ms=3, color=color, label=f"textbook, {name}")
        if data["first_over"][name] is not None:
            for ax in axes:
                ax.axvline(data["first_over"][name], color=color, ls="--", lw=1)
        axes[0].axhline(data["log_max"][name], color=color, ls=":", lw=1, label=f"log(max {name})")
    axes[0].legend(loc="upper left")
    axes[1].set(xlabel="step t", ylabel=r"$h_t$",
                title="output: the textbook form stops (inf/nan) where exp overflows (dashed)")
    axes[1].legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_gate_traces(data, fig=None):
    """Four panels from :func:`xlstm_edu.experiments.gating.gate_traces`, stacked, legends on the
    right: the pre-activations; ``m_t`` and ``log n_t``; the stabilized states ``c``, ``n``; and ``z``
    and ``h`` (stabilized vs textbook). Returns the figure."""
    if fig is None:
        fig = pyplot().figure(figsize=(TEXT_WIDTH_IN, 8.4))
    fig.set_layout_engine("constrained")  # makes room for the legends on the right
    axes = fig.subplots(4, 1, sharex=True).reshape(2, 2)  # in reading order
    right = dict(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    tr = data["trace"]
    S = len(data["igate_preact"])
    t = np.arange(S)
    ax = axes[0, 0]
    ax.plot(t, data["igate_preact"], "o-", ms=3, label=r"input pre-act. $\tilde\imath_t$")
    ax.plot(t, data["fgate_preact"], "--", label=r"forget pre-act. $\tilde f_t$")
    ax.set(ylabel="pre-activation", title="gate pre-activations")
    ax.legend(**right)
    ax = axes[0, 1]
    ax.plot(t, tr["m"], "o-", ms=3, label=r"stabilizer $m_t$")
    ax.plot(t, tr["log_n_true"], "--", label=r"$\log n_t$ (true normalizer)")
    ax.set(ylabel="log scale", title=r"stabilizer $m_t$ and $\log n_t$ (they never overflow)")
    ax.legend(**right)
    ax = axes[1, 0]
    ax.plot(t, tr["c"], "o-", ms=3, label=r"$\tilde c_t = c_t e^{-m_t}$")
    ax.plot(t, tr["n"], "s-", ms=3, label=r"$\tilde n_t = n_t e^{-m_t}$")
    ax.set(ylabel="stabilized state", title=r"states as stored: $\tilde n_t \geq 1$")
    ax.legend(**right)
    ax = axes[1, 1]
    ax.plot(t, data["z"], "o", ms=3, color="gray", label=r"cell input $z_t$")
    ax.plot(t, tr["h"], "-", lw=2, label=r"$h_t$ stabilized")
    textbook = data["h_textbook"]
    ok = np.isfinite(textbook)
    ax.plot(t[ok], textbook[ok], "x", color="tab:red",
            label=f"$h_t$ textbook ({data['textbook_dtype']})")
    if not ok.all():
        ax.plot(t[~ok], np.zeros((~ok).sum()), "v", color="tab:red", ms=7, label="textbook inf/nan")
    ax.set(xlabel="step t", ylabel="output", ylim=(-1.1, 1.1), title=r"output $h_t = c_t / n_t$")
    ax.legend(**right)
    return fig
