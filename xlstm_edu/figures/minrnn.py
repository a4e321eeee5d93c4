"""Figures of the chapter "Minimal RNNs" (computations: :mod:`xlstm_edu.experiments.min_rnn`).

* :func:`plot_scan_scaling`: forward + backward time of the parallel scan and of the sequential loops
  against the sequence length (top), and their ratios (bottom), from
  :func:`~xlstm_edu.experiments.min_rnn.scaling_table`'s ``{cell: {S: {"parallel", "sequential",
  "sequential_sliced", "speedup", "speedup_sliced"}}}``;
* :func:`plot_tradeoff`: validation bits per character against training tokens per second, one point
  per model, from :func:`~xlstm_edu.experiments.min_rnn.tradeoff_table`.
"""

from __future__ import annotations

from ._style import TEXT_WIDTH_IN, pyplot

_LABELS = {"mingru": "minGRU", "minlstm": "minLSTM"}


def plot_scan_scaling(table: dict[str, dict[int, dict]], *, target: float | None = None):
    """Two stacked panels, log-log against the sequence length S. Top: seconds per forward + backward
    for each cell, parallel scan (solid, circles), sequential loop (dashed, squares) and, where the
    table has it, the loop with per-step slices (dotted, triangles). Bottom: the speedups over the
    loop (solid) and over the sliced loop (dotted), with ``target`` as a grey line. Returns the
    figure."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    plt = pyplot()
    fig, (ax_t, ax_r) = plt.subplots(2, 1, figsize=(min(6.5, TEXT_WIDTH_IN), 7.0), sharex=True,
                                     layout="constrained")
    lengths = set()
    styles = {"parallel": ("o", "-", "parallel scan"), "sequential": ("s", "--", "loop"),
              "sequential_sliced": ("^", ":", "loop with a[:, t] slices")}
    for k, (cell, rows) in enumerate(table.items()):
        S = sorted(rows)
        lengths.update(S)
        color, label = f"C{k}", _LABELS.get(cell, cell)
        for form, (marker, ls, what) in styles.items():
            if all(form in rows[s] for s in S):
                ax_t.plot(S, [rows[s][form] for s in S], marker=marker, ls=ls, color=color,
                          label=f"{label}, {what}")
        ax_r.plot(S, [rows[s]["speedup"] for s in S], marker="o", color=color,
                  label=f"{label}: loop / scan")
        if all("speedup_sliced" in rows[s] for s in S):
            ax_r.plot(S, [rows[s]["speedup_sliced"] for s in S], marker="^", ls=":", color=color,
                      label=f"{label}: sliced loop / scan")
    if target is not None:
        ax_r.axhline(target, color="0.4", ls="-.", lw=1, label=f"target {target:g}x")
    ax_r.axhline(1.0, color="0.6", lw=0.8)
    for ax in (ax_t, ax_r):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="upper left")
    ax_r.xaxis.set_major_locator(FixedLocator(sorted(lengths)))
    ax_r.xaxis.set_minor_locator(NullLocator())
    ax_r.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax_t.set_ylabel("forward + backward (s)")
    ax_r.set_ylabel("speedup of the scan")
    ax_r.set_xlabel("sequence length S")
    ax_t.set_title("The log-space scan against the loop (one CPU thread)")
    return fig


def plot_tradeoff(table: dict[str, dict]):
    """Validation bits per character (y) against training tokens per second (x, log), one labelled
    point per model. Returns the figure."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(min(6.5, TEXT_WIDTH_IN), 4.2), layout="constrained")
    for k, (name, r) in enumerate(table.items()):
        ax.plot([r["tokens_per_s"]], [r["final_val_bits_per_char"]], marker="o", ms=8, ls="",
                color=f"C{k}", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("training tokens per second (one thread)")
    ax.set_ylabel("validation bits per character")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    ax.set_title("Equal parameters, equal updates")
    return fig
