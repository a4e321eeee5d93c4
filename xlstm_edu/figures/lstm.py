"""Figures of the chapter "The classic LSTM" (computations: :mod:`xlstm_edu.experiments.lstm`)."""

from __future__ import annotations

import numpy as np

from ..experiments.lstm import curve_summary
from ._style import pyplot


def plot_gradient_norms(curves: dict[str, np.ndarray], ax=None):
    """Log-scale plot of gradient norm vs distance: geometric mean over seeds and the min-max band
    (:func:`xlstm_edu.experiments.lstm.curve_summary`).

    ``curves`` maps a label to an array ``(seeds, S)`` from
    :func:`xlstm_edu.experiments.lstm.gradient_norm_curves`. Returns the matplotlib axes.
    """
    if ax is None:
        _, ax = pyplot().subplots(figsize=(7, 4.2))
    for label, c in curves.items():
        mean, low, high = curve_summary(c)
        d = np.arange(mean.shape[0])
        (line,) = ax.semilogy(d, mean, label=label)
        ax.fill_between(d, low, high, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("distance $S-t$ from the last step (steps)")
    ax.set_ylabel(r"$\|\partial \ell_S / \partial x_t\|$")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    return ax
