"""The horizon explorer of the chapter "Forecasting with xLSTM".

:func:`horizon_explorer` shows the test part of a series with the forecasts that a model made ``k``
steps ahead (top), and the test MAE of that model and of the seasonal naive forecast against ``k``
(bottom). Controls: the step ahead ``k`` and the model.

It is a self-contained HTML explorer (:mod:`xlstm_edu.widgets._html`): Python trains the models and
embeds every forecast for every step ahead, and ``forecasting.js`` only selects and draws them. The
forecasts come from :func:`xlstm_edu.experiments.time_series.live_forecasts` (trained once per
process, shared with the chapter's live run); :func:`reference` gives the same series from it.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_choice
from ..experiments import time_series as ets
from ._html import Control, Explorer, load_js

#: The series the explorer draws.
SERIES = ("actual", "forecast", "mae_at_step", "seasonal_naive_mae_at_step", "selected_mae")


def _forecasts(settings: dict):
    fixed = {k: settings[k] for k in ("series", "seed", "max_steps", "length")}
    models = tuple(settings["models"].split(","))
    _, preds = ets.live_forecasts(fixed["series"], models, seed=fixed["seed"],
                                  max_steps=fixed["max_steps"], length=fixed["length"])
    return preds


def _errors(preds: dict, model: str) -> list[float]:
    return np.abs(preds[model] - preds["true"]).mean(axis=0).tolist()  # (H,): MAE per step ahead


def horizon_explorer(series: str = "co2", models=("seasonal_naive", "linear", "xLSTM[1:0]"), *,
                     seed: int = 0, max_steps: int = 150, length: int | None = None):
    """Forecasts of ``models`` on the test part of ``series`` (trained with ``max_steps`` updates at
    most, on the first ``length`` values when given), one step ahead ``k = 1 .. H`` at a time.
    ``models`` must include ``"seasonal_naive"`` (the reference line of the bottom panel). Returns
    an :class:`~xlstm_edu.widgets._html.Explorer`."""
    models = tuple(models)
    for m in models:
        check_choice("model", m, ets.MODEL_NAMES)
    if "seasonal_naive" not in models:
        raise ValueError("models must include 'seasonal_naive' (the reference line)")
    fixed = dict(series=series, models=",".join(models), seed=seed, max_steps=max_steps, length=length)
    preds = _forecasts(fixed)
    H = preds["true"].shape[1]
    unit = ets.SERIES[series].unit
    data = dict(t=preds["t"].tolist(), unit=unit, step_name=ets.SERIES[series].step,
                true=np.round(preds["true"], 5).T.tolist(),  # (H, N): row k - 1 is k steps ahead
                forecasts={m: np.round(preds[m], 5).T.tolist() for m in models},
                mae={m: _errors(preds, m) for m in models})
    controls = [Control("step", "steps ahead k", 1, H, 1, 1),
                Control("model", "model", options=models, value=models[-1])]
    return Explorer("forecast_horizon", fixed, controls, data, load_js("forecasting.js"),
                    title=f"{series}: forecasts k steps ahead on the test part")


def reference(settings: dict) -> dict:
    """The drawn series for ``settings`` (the explorer's ``data-settings``), from the package."""
    preds = _forecasts(settings)
    k, model = int(settings["step"]), settings["model"]
    mae = _errors(preds, model)
    return {"actual": np.round(preds["true"][:, k - 1], 5).tolist(),
            "forecast": np.round(preds[model][:, k - 1], 5).tolist(),
            "mae_at_step": mae, "seasonal_naive_mae_at_step": _errors(preds, "seasonal_naive"),
            "selected_mae": [mae[k - 1]]}
