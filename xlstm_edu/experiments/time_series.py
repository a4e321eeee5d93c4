"""Computations of the chapter "Forecasting with xLSTM": multi-step forecasts of real time series.

The recipe (for every series of :data:`xlstm_edu.data.time_series.SERIES`):

1. cut the series in time: train (first 70 %), validation (next 15 %), test (last 15 %);
2. standardise with the mean and standard deviation of the training part only (:class:`Scaler`);
3. windows: the ``L`` values before a forecast origin ``t`` -> the ``H`` values from ``t`` on; a
   window belongs to the split that holds its future (its context may reach into the split before);
4. forecasters (the ``model`` of the rows): ``naive`` (the last value, repeated), ``seasonal_naive``
   (the value one period earlier), ``linear`` (a direct linear autoregression: least squares from
   the ``L`` past values to the ``H`` future ones, the ridge penalty picked on validation), and the
   neural ones of :data:`~xlstm_edu.models.forecaster.FORECASTER_KINDS`, trained with Adam on the
   mean squared error and stopped early on the validation MSE (the best weights are kept);
5. errors in the series' own units: ``mae`` and ``rmse`` over every test window and step ahead,
   and ``mae_at_step`` for each step ahead ``1 .. H``.

* :func:`prepare`: steps 1-3 for one series;
* :func:`forecast_series`: steps 4-5 for one series, returning the test predictions too;
* :func:`run`: the experiment ``python -m xlstm_edu experiment time-series``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._checks import check_choice, check_int, check_number
from ..data.time_series import SERIES, SERIES_NAMES, Scaler, load_series, make_windows, split_points
from ..models.forecaster import FORECASTER_KINDS, Forecaster, ForecasterConfig
from ..timing import limited_threads

BASELINES = ("naive", "seasonal_naive", "linear")
MODEL_NAMES = BASELINES + FORECASTER_KINDS
RIDGE_PENALTIES = (1e-3, 1e-1, 1.0, 10.0, 100.0)

#: The stored experiment.
EXPERIMENT = dict(series=SERIES_NAMES, models=MODEL_NAMES, embedding_dim=32, max_steps=800,
                  batch_size=64, lr=3e-3, eval_every=25, patience=8, threads=1)
#: ``--quick``: every series and model, few updates.
QUICK = dict(EXPERIMENT, max_steps=20, batch_size=32, eval_every=10, patience=2)


@dataclass
class Prepared:
    """One series, split, scaled and cut into windows (``X`` scaled ``(N, L)``, ``Y`` scaled ``(N, H)``,
    ``t`` the forecast origins ``(N,)``; one triple per split)."""

    name: str
    values: np.ndarray  # the series in its own units (T,)
    scaler: Scaler
    cuts: tuple[int, int]  # train [0, a), validation [a, b), test [b, T)
    period: int
    context: int
    horizon: int
    windows: dict  # split -> (X, Y, t)


def prepare(name: str, *, seed: int = 0, values: np.ndarray | None = None) -> Prepared:
    """Series ``name`` split in time, scaled with its training part, and windowed (``values``: use
    these instead of loading the series, e.g. a shortened copy)."""
    check_choice("series", name, SERIES_NAMES)
    info = SERIES[name]
    y = load_series(name, seed=seed) if values is None else np.asarray(values, dtype=np.float64)
    a, b = split_points(len(y))
    scaler = Scaler.fit(y[:a])
    z = scaler.transform(y)
    L, H = info.context, info.horizon
    windows = {"train": make_windows(z, 0, a, L, H), "validation": make_windows(z, a, b, L, H),
               "test": make_windows(z, b, len(y), L, H)}
    return Prepared(name, y, scaler, (a, b), info.period, L, H, windows)


def naive_forecast(X: np.ndarray, horizon: int) -> np.ndarray:
    """The last value of each context, repeated: ``(N, L)`` -> ``(N, H)``."""
    return np.repeat(X[:, -1:], horizon, axis=1)


def seasonal_naive_forecast(X: np.ndarray, horizon: int, period: int) -> np.ndarray:
    """``y[t + h]`` forecast by ``y[t + h - m k]``, the latest value of the same season (``m`` the
    period, ``k = 1 + h // m``): ``(N, L)`` -> ``(N, H)``; needs ``L >= m``."""
    L = X.shape[1]
    if period > L:
        raise ValueError(f"the seasonal naive forecast needs context >= period, got {L} < {period}")
    h = np.arange(horizon)
    lag = h - period * (1 + h // period)  # negative: steps before the origin
    return X[:, L + lag]


def fit_linear(X: np.ndarray, Y: np.ndarray, penalty: float) -> np.ndarray:
    """Ridge regression ``[X, 1] W ~ Y`` (the intercept not penalised): weights ``(L + 1, H)``."""
    check_number("penalty", penalty, minimum=0.0)
    A = np.hstack([X, np.ones((len(X), 1))])  # (N, L + 1)
    reg = penalty * np.eye(A.shape[1])
    reg[-1, -1] = 0.0
    return np.linalg.solve(A.T @ A + reg, A.T @ Y)


def linear_forecast(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    return np.hstack([X, np.ones((len(X), 1))]) @ W


def _errors(pred: np.ndarray, true: np.ndarray) -> dict:
    err = pred - true  # (N, H), in the series' units
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean())),
            "mae_at_step": np.abs(err).mean(axis=0)}


def train_forecaster(kind: str, data: Prepared, *, embedding_dim: int = 32, max_steps: int = 800,
                     batch_size: int = 64, lr: float = 3e-3, eval_every: int = 25, patience: int = 8,
                     seed: int = 0, device: str = "cpu") -> tuple[Forecaster, dict]:
    """A :class:`Forecaster` of ``kind`` trained on ``data``'s training windows (Adam, MSE on scaled
    values), evaluated on validation every ``eval_every`` updates and stopped after ``patience``
    evaluations without improvement; returns the best model and ``{"steps", "best_step",
    "val_mse"}``."""
    check_choice("kind", kind, FORECASTER_KINDS)
    for name, value in (("max_steps", max_steps), ("batch_size", batch_size),
                        ("eval_every", eval_every), ("patience", patience)):
        check_int(name, value)
    check_number("lr", lr, minimum=0.0, exclusive_minimum=True)
    torch.manual_seed(seed)
    num_blocks = 2 if kind == "xLSTM[1:1]" else 1
    model = Forecaster(ForecasterConfig(kind, data.context, data.horizon, embedding_dim,
                                        num_blocks)).to(device)
    Xtr, Ytr = (torch.as_tensor(a, dtype=torch.float32, device=device)
                for a in data.windows["train"][:2])
    Xva, Yva = (torch.as_tensor(a, dtype=torch.float32, device=device)
                for a in data.windows["validation"][:2])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    best, best_state, best_step, bad, step = float("inf"), None, 0, 0, 0
    for step in range(1, max_steps + 1):
        idx = torch.randint(len(Xtr), (batch_size,), generator=gen).to(device)
        loss = torch.mean((model(Xtr[idx]) - Ytr[idx]) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == max_steps:
            val = float(torch.mean((predict(model, Xva) - Yva) ** 2))
            if val < best:
                best, best_state, best_step, bad = val, copy.deepcopy(model.state_dict()), step, 0
            else:
                bad += 1
                if bad >= patience:
                    break
    model.load_state_dict(best_state)
    return model, {"steps": step, "best_step": best_step, "val_mse": best}


@torch.no_grad()
def predict(model: Forecaster, X: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """``model`` on the windows ``X (N, L)`` in batches, in eval mode: ``(N, H)``."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])
    model.train(was_training)
    return out


def forecast_series(name: str, models: Sequence[str] = MODEL_NAMES, *, seed: int = 0,
                    device: str = "cpu", data: Prepared | None = None, progress: bool = False,
                    **train_kwargs) -> tuple[list[dict], dict]:
    """Every model of ``models`` on series ``name``: the result rows (validation and test errors,
    sizes, updates) and the test forecasts ``{"t": origins, "true": (N, H), model: (N, H)}`` in the
    series' units. ``train_kwargs`` go to :func:`train_forecaster`."""
    for m in models:
        check_choice("model", m, MODEL_NAMES)
    data = prepare(name, seed=seed) if data is None else data
    H, rows = data.horizon, []
    preds = {"t": data.windows["test"][2], "true": data.scaler.inverse(data.windows["test"][1])}
    penalty = None
    for model_name in models:
        t0 = time.perf_counter()
        out, extra = {}, {}
        if model_name == "linear":  # the penalty with the lowest validation MAE
            Xtr, Ytr, _ = data.windows["train"]
            Xva, Yva, _ = data.windows["validation"]
            penalty = min(RIDGE_PENALTIES, key=lambda p: np.abs(
                linear_forecast(Xva, fit_linear(Xtr, Ytr, p)) - Yva).mean())
            W = fit_linear(Xtr, Ytr, penalty)
            extra = {"parameters": W.size}
        elif model_name in FORECASTER_KINDS:
            net, info = train_forecaster(model_name, data, seed=seed, device=device, **train_kwargs)
            extra = {"parameters": sum(p.numel() for p in net.parameters()),
                     "updates": info["steps"], "best_update": info["best_step"]}
        for split in ("validation", "test"):
            X, Y, _ = data.windows[split]
            if model_name == "naive":
                Z = naive_forecast(X, H)
            elif model_name == "seasonal_naive":
                Z = seasonal_naive_forecast(X, H, data.period)
            elif model_name == "linear":
                Z = linear_forecast(X, W)
            else:
                Xt = torch.as_tensor(X, dtype=torch.float32, device=device)
                Z = predict(net, Xt).double().cpu().numpy()
            out[split] = (data.scaler.inverse(Z), data.scaler.inverse(Y))
        preds[model_name] = out["test"][0]
        base = {"series": name, "model": model_name}
        for split, (P, T) in out.items():
            err = _errors(P, T)
            rows += [dict(base, split=split, metric=m, value=err[m]) for m in ("mae", "rmse")]
            if split == "test":
                rows += [dict(base, split=split, metric="mae_at_step", step=h + 1, value=float(v))
                         for h, v in enumerate(err["mae_at_step"])]
        rows += [dict(base, metric=k, value=v) for k, v in extra.items()]
        if model_name == "linear":
            rows.append(dict(base, metric="ridge_penalty", value=penalty))
        if progress:
            print(f"{name:>14} {model_name:>14}: test MAE {_errors(*out['test'])['mae']:.4g} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return rows, preds


_LIVE: dict = {}


def live_forecasts(name: str, models: Sequence[str], *, seed: int = 0, max_steps: int = 150,
                   length: int | None = None, **train_kwargs) -> tuple[list[dict], dict]:
    """:func:`forecast_series` on series ``name`` (its first ``length`` values when given), kept
    for the process: the chapter's live run and its horizon explorer
    (:func:`xlstm_edu.widgets.forecasting.horizon_explorer`) share one training. The arrays returned
    are shared: do not change them."""
    key = (name, tuple(models), seed, max_steps, length, tuple(sorted(train_kwargs.items())))
    if key not in _LIVE:
        values = None
        if length is not None:
            values = load_series(name, seed=seed)[:check_int("length", length, minimum=3)]
        data = prepare(name, seed=seed, values=values)
        # one thread: the same forecasts in every process (the chapter's, and the browser test's
        # reference), whatever thread count the caller runs with
        with limited_threads(1):
            _LIVE[key] = forecast_series(name, tuple(models), seed=seed, data=data,
                                         max_steps=max_steps, **train_kwargs)
    return _LIVE[key]


def run(*, quick: bool = False, seed: int = 0, device: str = "cpu", progress: bool = True):
    """The experiment: every model of :data:`MODEL_NAMES` on every series (see the module docstring)."""
    cfg = QUICK if quick else EXPERIMENT
    train_kwargs = {k: cfg[k] for k in ("embedding_dim", "max_steps", "batch_size", "lr", "eval_every",
                                        "patience")}
    rows = []
    with limited_threads(cfg["threads"]):
        for name in cfg["series"]:
            series_rows, _ = forecast_series(name, cfg["models"], seed=seed, device=device,
                                             progress=progress, **train_kwargs)
            rows += series_rows
    settings = {k: (",".join(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}
    for name in cfg["series"]:
        info = SERIES[name]
        settings[f"{name}_context"], settings[f"{name}_horizon"] = info.context, info.horizon
        settings[f"{name}_period"] = info.period
    settings["split"] = "train 0.7, validation 0.15, test 0.15 (in time)"
    return settings, rows
