"""Figures of the chapter "Memory for agents" (computations: :mod:`xlstm_edu.experiments.tmaze`).

The inputs are plain data, read off the episodes or the experiment's rows by the chapter:

* episodes ``{label: observations (S,)}`` and the symbol names: what the agent sees at each step, one
  row of one-hot cells per symbol (:func:`plot_observations`);
* curves ``{agent: (lengths, success rates per seed)}``: success against the corridor length, the
  mean over seeds with the range of the seeds (:func:`plot_success`), one panel per training range
  (:func:`plot_success_by_range`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._style import DPI, MIN_FONT_PT, TEXT_WIDTH_PX, pyplot

#: The widest figure (inches) the text column shows unscaled.
MAX_WIDTH_IN = TEXT_WIDTH_PX / DPI


def plot_observations(episodes: dict[str, Sequence[int]], symbols: Sequence[str], *,
                      width: float = 7.6):
    """One panel per episode, stacked: a grid with a row per observation symbol and a column per
    step, filled where the agent sees that symbol (a one-hot observation per step). Returns the
    figure."""
    import numpy as np

    if not episodes:
        raise ValueError("episodes must not be empty")
    width = min(width, MAX_WIDTH_IN)
    fig, axes = pyplot().subplots(len(episodes), 1, figsize=(width, 0.35 * len(symbols) * len(episodes)
                                                             + 0.9), squeeze=False, layout="tight")
    for ax, (label, x) in zip(axes[:, 0], episodes.items()):
        x = np.asarray(x, dtype=int)  # (S,)
        if x.ndim != 1 or x.min() < 0 or x.max() >= len(symbols):
            raise ValueError(f"{label}: observations must be (S,) symbol ids below {len(symbols)}")
        onehot = np.zeros((len(symbols), len(x)))  # (symbols, S)
        onehot[x, np.arange(len(x))] = 1.0
        ax.imshow(onehot, aspect="auto", cmap="Greys", vmin=0, vmax=1.3, interpolation="nearest")
        ax.set_yticks(range(len(symbols)), list(symbols), fontsize=MIN_FONT_PT)
        ax.set_xticks(range(len(x)))
        ax.tick_params(axis="x", labelsize=MIN_FONT_PT)
        ax.set_xticks(np.arange(-0.5, len(x)), minor=True)
        ax.set_yticks(np.arange(-0.5, len(symbols)), minor=True)
        ax.grid(which="minor", color="0.8", lw=0.5)
        ax.tick_params(which="minor", length=0)
        ax.set_title(label, fontsize=MIN_FONT_PT + 1)
    axes[-1, 0].set_xlabel("step", fontsize=MIN_FONT_PT + 1)
    return fig


def plot_success(curves: dict[str, tuple[Sequence, Sequence[Sequence[float]]]], ax=None, *,
                 train_lengths: tuple[int, int] | None = None, chance: float | None = 0.5,
                 title: str = ""):
    """Success rate (0 to 1) against the corridor length: per ``agent: (lengths, runs)``, with
    ``runs`` the success rates of each seed at those lengths, a line through the mean over seeds with
    markers and a band from the worst to the best seed; ``train_lengths = (lo, hi)`` shades the
    lengths trained on; ``chance`` a dotted line. Log-2 x axis. Returns the axes."""
    import numpy as np
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    if ax is None:
        _, ax = pyplot().subplots(figsize=(min(7.6, MAX_WIDTH_IN), 4.2), layout="tight")
    ticks = set()
    for agent, (lengths, runs) in curves.items():
        runs = np.asarray(runs, dtype=float)  # (seeds, lengths)
        if runs.ndim == 1:
            runs = runs[None]
        if runs.shape[1] != len(lengths):
            raise ValueError(f"{agent}: {len(lengths)} lengths but {runs.shape[1]} success rates "
                             "per run")
        (line,) = ax.plot(list(lengths), runs.mean(0), marker="o", label=agent)
        if len(runs) > 1:
            ax.fill_between(list(lengths), runs.min(0), runs.max(0), color=line.get_color(), alpha=0.15)
        ticks.update(lengths)
    if train_lengths is not None:
        ax.axvspan(*train_lengths, color="0.85", zorder=0, label="trained lengths")
    if chance is not None:
        ax.axhline(chance, color="0.4", ls=":", lw=1, label=f"chance ({chance:g})")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(sorted(ticks)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylim(-0.02, 1.03)  # room for the legend below the chance line
    ax.set_xlabel("corridor length (steps between the cue and the junction)", fontsize=MIN_FONT_PT + 1)
    ax.set_ylabel("success rate", fontsize=MIN_FONT_PT + 1)
    ax.tick_params(labelsize=MIN_FONT_PT)
    if title:
        ax.set_title(title, fontsize=MIN_FONT_PT + 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=MIN_FONT_PT, loc="lower left", ncols=3)
    return ax


def plot_success_by_range(panels: dict[int, dict], *, min_train_length: int = 1,
                          chance: float | None = 0.5):
    """One :func:`plot_success` panel per training range, stacked: ``panels`` maps the longest
    corridor trained on to that range's ``curves``. Returns the figure."""
    if not panels:
        raise ValueError("panels must not be empty")
    fig, axes = pyplot().subplots(len(panels), 1, figsize=(min(7.6, MAX_WIDTH_IN), 3.8 * len(panels)),
                                  sharex=True, squeeze=False, layout="tight")
    for ax, (longest, curves) in zip(axes[:, 0], panels.items()):
        plot_success(curves, ax, train_lengths=(min_train_length, longest), chance=chance,
                     title=f"trained on corridors of {min_train_length} to {longest} steps")
    for ax in axes[:-1, 0]:
        ax.set_xlabel("")
    return fig


__all__ = ["plot_observations", "plot_success", "plot_success_by_range"]
