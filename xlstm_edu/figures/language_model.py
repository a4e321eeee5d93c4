"""Figures of the chapter "A language model" (computations: :mod:`xlstm_edu.experiments.language_model`).

The run histories are lists of records ``{"step", "train_s", "val_loss", "val_bits_per_char"}``
(as :func:`~xlstm_edu.experiments.language_model.train_run` writes them); the generation costs are
rows ``{"context", "time_s", "state_bytes"}`` of
:func:`~xlstm_edu.experiments.language_model.generation_cost`.
"""

from __future__ import annotations

import math

from ._style import TEXT_WIDTH_IN, pyplot

_X_LABELS = {"step": "training updates", "train_s": "training time (s)",
             "elapsed_s": "wall time, evaluations included (s)"}


def plot_loss_curves(results: dict, ax=None, *, x: str = "step", bits: bool = True,
                     uniform: int | None = None):
    """Validation curves of every model on ``ax``: against ``x`` (``"step"`` or ``"train_s"``),
    in bits per character (``bits``) or nats. ``uniform``: draw the loss of the uniform guess over
    that many tokens (``log uniform`` nats). Returns the axes."""
    if ax is None:
        _, ax = pyplot().subplots(figsize=(6, 4))
    key = "val_bits_per_char" if bits else "val_loss"
    for name, r in results.items():
        h = r["history"]
        ax.plot([rec[x] for rec in h], [rec[key] for rec in h], marker="o", markersize=3, label=name)
    if uniform is not None:
        level = math.log(uniform) / (math.log(2.0) if bits else 1.0)
        ax.axhline(level, color="0.5", ls=":", lw=1, label=f"uniform over {uniform}")
    ax.set_xlabel(_X_LABELS.get(x, x))
    ax.set_ylabel("validation bits per character" if bits else "validation loss (nats)")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def plot_loss_comparison(results: dict, panels: dict[str, str], *, uniform: int | None = None,
                         skip_untrained: bool = False):
    """The same runs in two (or more) panels, stacked, with a shared y axis: ``panels`` maps the x key
    of each panel (``"step"``, ``"train_s"``) to its title (:func:`plot_loss_curves`).

    ``skip_untrained``: cut the y axis just above the highest loss after the first evaluation, so that
    the untrained start (about ``log2 V`` bits) does not squeeze the differences. Returns the figure.
    """
    fig, axes = pyplot().subplots(len(panels), 1, figsize=(TEXT_WIDTH_IN, 3.3 * len(panels) + 0.2),
                                  sharey=True, squeeze=False)
    axes = axes.T  # (1, panels)
    for ax, (x, title) in zip(axes[0], panels.items()):
        plot_loss_curves(results, ax, x=x, uniform=uniform)
        ax.set_title(title)
    if skip_untrained:
        top = max(r["history"][1]["val_bits_per_char"] for r in results.values()) + 0.2
        axes[0, 0].set_ylim(None, top)
    fig.tight_layout()
    return fig


def plot_generation_cost(costs: dict[str, list[dict]], axes=None, title: str = ""):
    """Two log-log panels, stacked: time per new token, and bytes carried between tokens, against the
    context length; one line per entry of ``costs`` (label -> rows of
    :func:`~xlstm_edu.experiments.language_model.generation_cost`; one legend, under the memory
    panel). Without ``axes`` a figure is made; ``title`` goes above both. Returns the figure."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    if axes is None:
        fig, axes = pyplot().subplots(2, 1, figsize=(TEXT_WIDTH_IN, 7.4))
    ax_t, ax_m = axes
    fig = ax_t.figure
    for label, rows in costs.items():
        T = [r["context"] for r in rows]
        ax_t.plot(T, [r["time_s"] * 1e3 for r in rows], marker="o", label=label)
        ax_m.plot(T, [r["state_bytes"] / 1024 for r in rows], marker="o", label=label)
    for ax, ylabel, panel in ((ax_t, "time per new token (ms, median)", "Time"),
                              (ax_m, "state carried between tokens (KiB)", "Memory")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis, values in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            decades = math.log10(max(values) / min(values))  # plain numbers at 1, 2, 5, 10, 20, ...
            subs = (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)  # ... or at 1, 10, 100 over many decades
            axis.set_major_locator(LogLocator(base=10, subs=subs))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("context length (tokens already read)")
        ax.set_ylabel(ylabel)
        ax.set_title(panel)
        ax.grid(alpha=0.3, which="both")
    ax_m.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)  # one legend, under both
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
