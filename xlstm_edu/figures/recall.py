"""Figures of the chapter "Associative recall" (computations: :mod:`xlstm_edu.experiments.recall`).

The inputs are plain data, read off the experiment's rows or the training histories by the chapter:

* curves ``{label: (xs, accuracies)}``: recall accuracy against the number of pairs, the head
  dimension or the number of stored pairs (:func:`plot_accuracy`, :func:`plot_capacity`);
* training histories ``{label: [record, ...]}``: the records of
  :class:`~xlstm_edu.training.hooks.Evaluate` (``"step"`` and the plotted keys) (:func:`plot_training`);
* state sizes ``{label: (contexts, bytes)}``: what a model carries to the next token
  (:func:`plot_state_size`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._style import TEXT_WIDTH_IN, pyplot


def _new_axes(ax, figsize=(5.5, 4)):
    if ax is None:
        _, ax = pyplot().subplots(figsize=figsize, layout="tight")
    return ax


def _log2_x(ax, ticks) -> None:
    """A log-2 x axis with plain-number ticks at ``ticks`` only."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(ticks))))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def plot_accuracy(curves: dict[str, tuple[Sequence, Sequence]], ax=None, *, xlabel: str,
                  chance: float | None = None, baselines: dict | None = None, logx: bool = True,
                  title: str = ""):
    """Recall accuracy (0 to 1) against ``x``: one line with markers per ``label: (xs, accuracies)``
    of ``curves``; ``baselines`` (the same form) as dashed grey lines without markers; ``chance`` as a
    dotted line; a log-2 x axis unless ``logx`` is false, with ticks at the given ``xs``. Returns the
    axes."""
    ax = _new_axes(ax)
    ticks = set()
    for kind, group in (("curve", curves), ("baseline", baselines or {})):
        for label, (xs, ys) in group.items():
            if len(xs) != len(ys):
                raise ValueError(f"{label}: {len(xs)} x values but {len(ys)} accuracies")
            style = (dict(marker="o") if kind == "curve" else dict(color="0.4", ls="--", lw=1))
            ax.plot(list(xs), list(ys), label=label, **style)
            ticks.update(xs)
    if chance is not None:
        ax.axhline(chance, color="0.5", ls=":", lw=1, label=f"chance ({chance:.3g})")
    if logx:
        _log2_x(ax, ticks)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("recall accuracy")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_capacity(by_pairs: dict, by_head_dim: dict, *, chance: float | None = None,
                  pairs_baselines: dict | None = None,
                  titles: tuple[str, str] = ("Accuracy against the number of pairs",
                                             "xLSTM[1:0]: accuracy against the head dimension")):
    """Two panels of :func:`plot_accuracy`, stacked, legends on the right: ``by_pairs``
    (``{model: (pairs, accuracies)}``, with the dashed ``pairs_baselines``) and ``by_head_dim``
    (``{label: (head dims, accuracies)}``), with a shared y axis. Returns the figure."""
    fig, (ax_p, ax_d) = pyplot().subplots(2, 1, figsize=(TEXT_WIDTH_IN, 7.0), sharey=True,
                                          layout="constrained")
    plot_accuracy(by_pairs, ax_p, xlabel="key-value pairs per sequence", chance=chance,
                  baselines=pairs_baselines, title=titles[0])
    plot_accuracy(by_head_dim, ax_d, xlabel="mLSTM head dimension (width fixed, more heads to the left)",
                  chance=chance, title=titles[1])
    for ax in (ax_p, ax_d):  # long labels: outside, so that they cover no line
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


_Y_LABELS = {"accuracy": "recall accuracy (held-out sequences)",
             "val_loss": "loss on the answers (nats)"}


def plot_training_curves(histories: dict[str, list[dict]], ax=None, *, key: str = "accuracy",
                         chance: float | None = None):
    """``key`` of the records of each history (``{label: [record, ...]}``) against the update
    (``record["step"]``); ``chance`` as a dotted line. Returns the axes."""
    ax = _new_axes(ax)
    for label, history in histories.items():
        ax.plot([r["step"] for r in history], [r[key] for r in history], marker="o", markersize=3,
                label=label)
    if chance is not None:
        ax.axhline(chance, color="0.5", ls=":", lw=1, label=f"chance ({chance:.3g})")
    ax.set_xlabel("training updates")
    ax.set_ylabel(_Y_LABELS.get(key, key))
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_training(histories: dict[str, list[dict]], *, keys: Sequence[str] = ("accuracy", "val_loss"),
                  chance: dict[str, float] | None = None, title: str = ""):
    """One panel of :func:`plot_training_curves` per entry of ``keys``, stacked; ``chance`` maps a key
    to its chance level. Returns the figure."""
    chance = chance or {}
    fig, axes = pyplot().subplots(len(keys), 1, figsize=(TEXT_WIDTH_IN, 3.2 * len(keys) + 0.3),
                                  sharex=True, squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        plot_training_curves(histories, ax, key=key, chance=chance.get(key))
    for ax in axes[:-1, 0]:
        ax.set_xlabel("")  # the x axis is shared: labelled once, at the bottom
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_state_size(sizes: dict[str, tuple[Sequence, Sequence]], ax=None, *, title: str = ""):
    """Bytes carried to the next token against the tokens read, log-log, one line per
    ``label: (contexts, bytes)`` (drawn in KiB). Returns the axes."""
    ax = _new_axes(ax, figsize=(6, 4))
    ticks = set()
    for label, (contexts, nbytes) in sizes.items():
        ax.plot(list(contexts), [b / 1024 for b in nbytes], marker="o", label=label)
        ticks.update(contexts)
    _log2_x(ax, ticks)
    ax.set_yscale("log")
    ax.set_xlabel("context length (tokens already read)")
    ax.set_ylabel("state carried to the next token (KiB)")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return ax
