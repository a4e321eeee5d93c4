"""Figures of the chapter "State tracking" (computations: :mod:`xlstm_edu.experiments.formal_languages`).

* :func:`plot_accuracy_by_length`: accuracy of the answer after ``L`` symbols against ``L``, one line
  per model, the training lengths shaded and chance marked; :func:`plot_accuracy_grid` does it for
  several tasks side by side;
* :func:`plot_state_trace`: one hidden unit while a model reads one string, its values coloured by
  the running label (is the unit a parity detector?);
* :func:`plot_score_table`: a table of scores (the paper's Fig. 4: models x tasks, scaled accuracy)
  as an annotated heatmap.
"""

from __future__ import annotations

import numpy as np

from ._style import TEXT_WIDTH_IN, pyplot


def plot_accuracy_by_length(curves: dict, *, max_train_length: int, chance: float, ax=None,
                            title: str = "", legend: bool = True):
    """One line per entry of ``curves``: ``{name: (lengths, accuracy)}``, or
    ``{name: (lengths, accuracy, low, high)}`` with a band from ``low`` to ``high`` (e.g. the lowest
    and highest seed). The lengths ``1 ... max_train_length`` are shaded (seen in training) and the
    accuracy of guessing, ``chance``, is a dotted line. Returns the axes."""
    if ax is None:
        _, ax = pyplot().subplots(figsize=(7, 3.6))
    ax.axvspan(0.5, max_train_length + 0.5, color="0.85", alpha=0.6, lw=0,
               label=f"training lengths (up to {max_train_length})")
    for name, curve in curves.items():
        lengths, acc = np.asarray(curve[0]), np.asarray(curve[1], dtype=float)
        (line,) = ax.plot(lengths, acc, lw=1.5, label=name)
        if len(curve) == 4:
            ax.fill_between(lengths, curve[2], curve[3], color=line.get_color(), alpha=0.2, lw=0)
    ax.axhline(chance, color="0.3", ls=":", lw=1.2, label=f"chance ({chance:.2f})")
    ax.set_ylim(min(0.0, chance - 0.05), 1.03)
    ax.set_xlim(0, max(int(np.max(c[0])) for c in curves.values()) + 1)
    ax.set_xlabel("length L (symbols read)")
    ax.set_ylabel("accuracy of the answer after L")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(fontsize=9, loc="lower left")
    ax.grid(alpha=0.3)
    return ax


def plot_accuracy_grid(per_task: dict[str, dict], *, max_train_length: int,
                       chance: dict[str, float], ncols: int = 2):
    """:func:`plot_accuracy_by_length` for every task of ``per_task`` (``{task: curves}``), one panel
    each, with one legend for all below the panels. ``chance``: ``{task: accuracy of guessing}``.
    Returns the figure."""
    nrows = -(-len(per_task) // ncols)
    fig, axes = pyplot().subplots(nrows, ncols, figsize=(TEXT_WIDTH_IN, 3.0 * nrows + 0.8), sharex=True,
                                  sharey=True, squeeze=False)
    for ax, (task, curves) in zip(axes.flat, per_task.items()):
        plot_accuracy_by_length(curves, max_train_length=max_train_length, chance=chance[task], ax=ax,
                                title=task, legend=False)
    for ax in axes.flat[len(per_task):]:
        ax.set_visible(False)
    for ax in axes[:-1].flat:
        ax.set_xlabel("")
    for ax in axes[:, 1:].flat:
        ax.set_ylabel("")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    keep = [k for k, lb in enumerate(labels) if not lb.startswith("chance")]  # chance differs per task
    ncol = min(len(keep), 3)
    fig.legend([handles[k] for k in keep], [labels[k] for k in keep], loc="lower center", ncol=ncol,
               frameon=False)
    legend_h = (0.2 * -(-len(keep) // ncol) + 0.15) / fig.get_figheight()  # its rows, in figure units
    fig.tight_layout(rect=(0, legend_h, 1, 1))
    return fig


def plot_state_trace(x, labels, values, *, threshold: float | None = None, title: str = "",
                     value_label: str = "hidden unit", label_name: str = "parity"):
    """A model reading one string ``x (S,)``: on top the symbols and the running label
    ``labels (S,)``, below the value ``values (S,)`` of one unit after each symbol, a dot per step
    coloured by the label at that step (0 or 1), and ``threshold`` as a dashed line; the legends on
    the right. Returns the figure."""
    x, labels, values = (np.asarray(a).reshape(-1) for a in (x, labels, values))
    t = np.arange(1, len(x) + 1)  # symbols read
    fig, (ax_x, ax_h) = pyplot().subplots(2, 1, figsize=(TEXT_WIDTH_IN, 4.2), sharex=True,
                                          gridspec_kw=dict(height_ratios=[1, 2.2]))
    ax_x.plot(t, labels, drawstyle="steps-mid", color="C3", lw=1.2, label=f"running {label_name}")
    ones = t[x == 1]
    ax_x.vlines(ones, 1.15, 1.45, color="0.2", lw=0.8, label="symbol 1 read")
    ax_x.set_ylim(-0.2, 1.6)
    ax_x.set_yticks([0, 1])
    ax_x.set_ylabel(label_name)
    ax_x.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        ax_x.set_title(title)
    ax_h.plot(t, values, color="0.6", lw=0.7)
    for k, color in ((0, "C0"), (1, "C3")):
        at = labels == k
        ax_h.scatter(t[at], values[at], s=9, color=color, zorder=3, label=f"{label_name} {k}")
    if threshold is not None:
        ax_h.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    ax_h.set_xlabel("symbols read")
    ax_h.set_ylabel(value_label)
    ax_h.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax_h.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_score_table(scores, row_labels, col_labels, *, ax=None, title: str = "",
                     label: str = "scaled accuracy", vmin: float = 0.0, vmax: float = 1.0):
    """``scores (rows, cols)`` as a heatmap with every number written in its cell (two decimals; a
    small negative number is written ``0.00``, not ``-0.00``) and a colour bar from ``vmin`` to
    ``vmax`` (values outside take the end colours). A column label longer than 12 characters (and on
    one line) is wrapped at its spaces; the figure is at most the text width. Returns the axes."""
    import textwrap

    scores = np.asarray(scores, dtype=float)
    if scores.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"scores have shape {scores.shape}, labels ask for "
                         f"({len(row_labels)}, {len(col_labels)})")
    col_labels = [lb if "\n" in lb or len(lb) <= 12 else "\n".join(textwrap.wrap(lb, 12))
                  for lb in map(str, col_labels)]
    if ax is None:
        width = min(TEXT_WIDTH_IN, 1.15 * len(col_labels) + 3.0)
        _, ax = pyplot().subplots(figsize=(width, 0.45 * len(row_labels) + 1.7), layout="constrained")
    im = ax.imshow(scores, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
    for (r, c), v in np.ndenumerate(scores):
        bright = (min(max(v, vmin), vmax) - vmin) / (vmax - vmin) > 0.6  # light cell: dark text
        text = f"{v:.2f}".replace("-0.00", "0.00")
        ax.text(c, r, text, ha="center", va="center", color="k" if bright else "w", fontsize=10)
    ax.set_xticks(range(len(col_labels)))
    ax.set_xticklabels(col_labels)
    ax.set_yticks(range(len(row_labels)))
    ax.set_yticklabels(row_labels)
    if title:
        ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, label=label, fraction=0.05, pad=0.02)
    return ax
