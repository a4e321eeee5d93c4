"""Figures of the chapter "Forecasting with xLSTM" (computations:
:mod:`xlstm_edu.experiments.time_series`).

The inputs are plain arrays, the test forecasts of
:func:`~xlstm_edu.experiments.time_series.forecast_series` or the rows of the stored result:

* :func:`plot_forecasts`: the actual series and, per model, the forecast made ``step`` steps ahead;
* :func:`plot_predicted_vs_true`: predicted against true values, with the line ``y = x``;
* :func:`plot_error_by_step`: the test MAE against the step ahead ``1 .. H``, one line per model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._style import TEXT_WIDTH_IN, pyplot


def _new_axes(ax, figsize=(TEXT_WIDTH_IN, 3.6)):
    if ax is None:
        _, ax = pyplot().subplots(figsize=figsize, layout="tight")
    return ax


def plot_forecasts(times: Sequence, actual: Sequence, forecasts: dict, ax=None, *,
                   history: tuple[Sequence, Sequence] | None = None, xlabel: str = "time step",
                   ylabel: str = "value", title: str = ""):
    """``actual`` against ``times`` (black), each ``label: values`` of ``forecasts`` (the same
    times) as a line, and optionally ``history = (times, values)`` before them in grey. Returns the
    axes."""
    ax = _new_axes(ax)
    times = np.asarray(times)
    if len(actual) != len(times):
        raise ValueError(f"{len(times)} times but {len(actual)} actual values")
    if history is not None:
        ax.plot(np.asarray(history[0]), np.asarray(history[1]), color="0.6", lw=1, label="before")
    ax.plot(times, np.asarray(actual), color="black", lw=1.6, label="actual")
    for label, values in forecasts.items():
        if len(values) != len(times):
            raise ValueError(f"{label}: {len(values)} forecasts but {len(times)} times")
        ax.plot(times, np.asarray(values), lw=1.2, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)  # below: the width stays
    return ax


def plot_predicted_vs_true(true: Sequence, predictions: dict, ax=None, *, unit: str = "",
                           title: str = ""):
    """One scatter per ``label: predicted`` of ``predictions`` against ``true`` (flattened), and the
    line ``y = x`` (a perfect forecast) across the range of all values. Returns the axes."""
    ax = _new_axes(ax, figsize=(5.2, 4.6))
    true = np.asarray(true, dtype=float).ravel()
    lo, hi = true.min(), true.max()
    for label, pred in predictions.items():
        pred = np.asarray(pred, dtype=float).ravel()
        if pred.shape != true.shape:
            raise ValueError(f"{label}: {pred.size} predictions but {true.size} true values")
        ax.scatter(true, pred, s=6, alpha=0.35, label=label)
        lo, hi = min(lo, pred.min()), max(hi, pred.max())
    ax.plot([lo, hi], [lo, hi], color="black", lw=1, ls="--", label="y = x")
    suffix = f" ({unit})" if unit else ""
    ax.set_xlabel("true" + suffix)
    ax.set_ylabel("predicted" + suffix)
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(markerscale=3)
    return ax


def plot_error_by_step(curves: dict, ax=None, *, unit: str = "", title: str = ""):
    """Test MAE against the step ahead: one line per ``label: (steps, maes)`` of ``curves``
    (baselines named ``naive`` / ``seasonal_naive`` / ``linear`` drawn dashed). Returns the axes."""
    ax = _new_axes(ax, figsize=(TEXT_WIDTH_IN, 3.4))
    for label, (steps, maes) in curves.items():
        if len(steps) != len(maes):
            raise ValueError(f"{label}: {len(steps)} steps but {len(maes)} errors")
        dashed = label in ("naive", "seasonal_naive", "linear")
        ax.plot(list(steps), list(maes), ls="--" if dashed else "-", marker=None if dashed else ".",
                label=label)
    ax.set_xlabel("steps ahead")
    ax.set_ylabel("test MAE" + (f" ({unit})" if unit else ""))
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)  # below: the width stays
    return ax
