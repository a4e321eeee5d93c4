"""Chapter 11 (forecasting): the series, the splits and windows, the baselines, the forecasters, the
experiment's rows and stored result, and the figures."""

import numpy as np
import pytest
import torch

from xlstm_edu import results
from xlstm_edu.data.time_series import (
    SERIES,
    SERIES_NAMES,
    Scaler,
    load_series,
    make_windows,
    noisy_sine,
    split_points,
)
from xlstm_edu.experiments import registry
from xlstm_edu.experiments.time_series import (
    MODEL_NAMES,
    fit_linear,
    forecast_series,
    linear_forecast,
    live_forecasts,
    naive_forecast,
    prepare,
    seasonal_naive_forecast,
)
from xlstm_edu.models.forecaster import FORECASTER_KINDS, Forecaster, ForecasterConfig

pytestmark = pytest.mark.usefixtures("one_thread")

# --- data ------------------------------------------------------------------------------------------

def test_real_series_load_offline_with_known_lengths():
    pytest.importorskip("statsmodels")
    lengths = {"co2": 2284, "sunspots": 309, "elnino": 61 * 12}
    for name, T in lengths.items():
        y = load_series(name)
        assert y.shape == (T,) and y.dtype == np.float64 and np.all(np.isfinite(y)), name
    co2 = load_series("co2")
    assert co2[0] == pytest.approx(316.1) and 310 < co2.min() < co2.max() < 380
    assert load_series("sunspots")[:3].tolist() == [5.0, 11.0, 16.0]  # 1700, 1701, 1702
    assert load_series("elnino")[0] == pytest.approx(23.11)  # January 1950
    assert load_series("elnino")[13] == pytest.approx(25.28)  # February 1951 (row-major months)


def test_windows_match_a_loop_and_reach_back_into_the_earlier_split():
    y = np.arange(30.0)
    X, Y, t = make_windows(y, 10, 20, context=4, horizon=3, stride=2)
    expected_t = [10, 12, 14, 16]  # futures y[t : t + 3] inside [10, 20)
    assert t.tolist() == expected_t
    for row, origin in enumerate(expected_t):
        assert X[row].tolist() == [origin - 4, origin - 3, origin - 2, origin - 1]
        assert Y[row].tolist() == [origin, origin + 1, origin + 2]
    X0, _, t0 = make_windows(y, 0, 30, context=5, horizon=1)
    assert t0[0] == 5 and t0[-1] == 29 and X0.shape == (25, 5)


@pytest.mark.parametrize("kwargs", [dict(context=0, horizon=1), dict(context=3, horizon=30),
                                    dict(context=3, horizon=1, stride=0)])
def test_windows_reject_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        make_windows(np.arange(20.0), 0, 20, **kwargs)
    with pytest.raises(ValueError, match="1-d"):
        make_windows(np.zeros((4, 5)), 0, 4, 1, 1)


def test_split_is_in_time_and_scaling_uses_the_training_part_only():
    assert split_points(100) == (70, 85)
    with pytest.raises(ValueError):
        split_points(100, (0.5, 0.5, 0.1))
    y = noisy_sine(400, seed=1)
    a, _ = split_points(len(y))
    changed = y.copy()
    changed[a:] += 1000.0  # a different future must not change the scaling
    s1, s2 = prepare("sine", values=y).scaler, prepare("sine", values=changed).scaler
    assert s1 == s2 == Scaler(float(y[:a].mean()), float(y[:a].std()))
    z = s1.transform(y[:a])
    assert abs(z.mean()) < 1e-12 and abs(z.std() - 1) < 1e-12
    np.testing.assert_allclose(s1.inverse(s1.transform(y)), y, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="constant"):
        Scaler.fit(np.ones(10))


# --- baselines -------------------------------------------------------------------------------------

def test_naive_and_seasonal_naive_equal_a_loop():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 12))
    m, H = 4, 9
    ref = np.empty((5, H))
    for n in range(5):
        series = list(X[n])  # the past; forecast t + h from the same season's latest known value
        for h in range(H):
            lag = m
            while h - lag >= 0:
                lag += m
            ref[n, h] = series[len(series) + h - lag]
    np.testing.assert_array_equal(seasonal_naive_forecast(X, H, m), ref)
    np.testing.assert_array_equal(naive_forecast(X, 3), np.repeat(X[:, -1:], 3, axis=1))
    with pytest.raises(ValueError, match="context >= period"):
        seasonal_naive_forecast(X, H, 13)


def test_linear_recovers_an_ar2_process_and_equals_least_squares():
    rng = np.random.default_rng(0)
    y = np.zeros(300)
    y[:2] = rng.standard_normal(2)
    for t in range(2, 300):  # noiseless AR(2): y_t = 1.5 y_{t-1} - 0.8 y_{t-2} + 0.1
        y[t] = 1.5 * y[t - 1] - 0.8 * y[t - 2] + 0.1
    X, Y, _ = make_windows(y, 0, 300, context=2, horizon=1)
    W = fit_linear(X, Y, 0.0)
    np.testing.assert_allclose(W[:, 0], [-0.8, 1.5, 0.1], atol=1e-8)  # (y_{t-2}, y_{t-1}, 1)
    Z = rng.standard_normal((50, 6))
    T = rng.standard_normal((50, 3))
    lstsq = np.linalg.lstsq(np.hstack([Z, np.ones((50, 1))]), T, rcond=None)[0]
    np.testing.assert_allclose(fit_linear(Z, T, 0.0), lstsq, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(linear_forecast(Z, lstsq), np.hstack([Z, np.ones((50, 1))]) @ lstsq)
    with pytest.raises(ValueError):
        fit_linear(Z, T, -1.0)


# --- forecasters -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", FORECASTER_KINDS)
def test_forecaster_shapes_and_level_equivariance(kind):
    if kind == "minLSTM":
        pytest.importorskip("xlstm_edu.minrnn")
    torch.manual_seed(0)
    blocks = 2 if kind == "xLSTM[1:1]" else 1
    model = Forecaster(ForecasterConfig(kind, 12, 5, embedding_dim=16, num_blocks=blocks)).double()
    x = torch.randn(3, 12, dtype=torch.float64)
    y = model(x)
    assert y.shape == (3, 5) and y.dtype == torch.float64
    # the model reads the context relative to its last value: shifting the series shifts the forecast
    torch.testing.assert_close(model(x + 7.5), y + 7.5, rtol=0, atol=1e-10)
    # each window on its own: no mixing across the batch
    torch.testing.assert_close(model(x[1:2]), y[1:2], rtol=1e-12, atol=1e-12)


def test_forecaster_gradcheck_and_bad_inputs():
    torch.manual_seed(0)
    model = Forecaster(ForecasterConfig("xLSTM[0:1]", 6, 2, embedding_dim=8, num_heads=2)).double()
    x = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x,), eps=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        model(torch.zeros(2, 6, 1, dtype=torch.float64))
    with pytest.raises(ValueError):
        model(torch.full((2, 6), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError):
        ForecasterConfig("GRU")
    with pytest.raises(ValueError):
        ForecasterConfig("xLSTM[1:1]", num_blocks=1)  # one block cannot hold both kinds
    with pytest.raises(ValueError):
        ForecasterConfig("LSTM", horizon=0)


# --- the experiment --------------------------------------------------------------------------------

def test_forecast_series_rows_and_predictions():
    data = prepare("sine", values=noisy_sine(300, seed=0))
    models = ("naive", "seasonal_naive", "linear", "xLSTM[1:0]")
    rows, preds = forecast_series("sine", models, data=data, max_steps=6, eval_every=3, batch_size=8)
    N = len(data.windows["test"][2])
    assert preds["true"].shape == (N, SERIES["sine"].horizon)
    np.testing.assert_allclose(preds["true"], data.values[preds["t"][:, None] + np.arange(25)])
    for m in models:
        test = {r["metric"]: r["value"] for r in rows if r["model"] == m and r.get("split") == "test"
                and "step" not in r}
        err = preds[m] - preds["true"]
        assert test["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-12)
        assert test["rmse"] == pytest.approx(np.sqrt((err ** 2).mean()), rel=1e-12)
        steps = [r["value"] for r in rows if r["model"] == m and r["metric"] == "mae_at_step"]
        assert len(steps) == 25 and np.mean(steps) == pytest.approx(test["mae"], rel=1e-12)
    results.validate({"settings": {k: 0 for k in results.SETTINGS_KEYS}, "results": rows})
    with pytest.raises(ValueError):
        forecast_series("sine", ("ARIMA",), data=data)


def test_registered():
    spec = registry.EXPERIMENTS["time-series"]
    assert spec.chapter == "11_forecasting" and spec.module == "xlstm_edu.experiments.time_series"


def test_stored_result_covers_everything_and_meets_the_target():
    result = results.load("time-series")
    assert result["settings"]["command"].startswith("python -m xlstm_edu experiment time-series")
    assert result["settings"]["quick"] is False
    for series in SERIES_NAMES:
        maes = {m: results.value(result, series=series, model=m, split="test", metric="mae")
                for m in MODEL_NAMES}
        for m in MODEL_NAMES:
            rmse = results.value(result, series=series, model=m, split="test", metric="rmse")
            assert 0 < maes[m] <= rmse
        best_xlstm = min(v for m, v in maes.items() if m.startswith("xLSTM"))
        assert best_xlstm < maes["seasonal_naive"], series  # the target


@pytest.mark.slow
def test_quick_experiment_runs():
    result = registry.run_experiment("time-series", quick=True, progress=False)
    rows = result["results"]
    keys = {(r["series"], r["model"]) for r in rows if r["metric"] == "mae"}
    assert keys == {(s, m) for s in SERIES_NAMES for m in MODEL_NAMES}


# --- figures ---------------------------------------------------------------------------------------

def test_figures_draw_the_data_readably():
    pytest.importorskip("matplotlib")
    from xlstm_edu.figures._style import readability_problems
    from xlstm_edu.figures.forecasting import plot_error_by_step, plot_forecasts, plot_predicted_vs_true

    t = np.arange(10)
    actual, pred = np.sin(t), np.cos(t)
    ax = plot_forecasts(t, actual, {"model": pred}, history=(t - 10, actual))
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_array_equal(lines["actual"].get_ydata(), actual)
    np.testing.assert_array_equal(lines["model"].get_ydata(), pred)
    np.testing.assert_array_equal(lines["before"].get_xdata(), t - 10)
    assert readability_problems(ax.figure) == []

    ax = plot_predicted_vs_true(actual, {"model": pred}, unit="ppm")
    np.testing.assert_array_equal(ax.collections[0].get_offsets(), np.c_[actual, pred])
    diag = [line for line in ax.get_lines() if line.get_label() == "y = x"][0]
    np.testing.assert_array_equal(diag.get_xdata(), diag.get_ydata())
    assert min(diag.get_xdata()) == min(actual.min(), pred.min())
    assert readability_problems(ax.figure) == []

    ax = plot_error_by_step({"naive": ([1, 2, 3], [1.0, 2.0, 3.0]), "LSTM": ([1, 2, 3], [0.5] * 3)})
    drawn = {line.get_label(): line.get_ydata().tolist() for line in ax.get_lines()}
    assert drawn == {"naive": [1.0, 2.0, 3.0], "LSTM": [0.5] * 3}
    assert readability_problems(ax.figure) == []
    with pytest.raises(ValueError):
        plot_forecasts(t, actual[:3], {})
    import matplotlib.pyplot as plt

    plt.close("all")


# --- the horizon explorer --------------------------------------------------------------------------

def test_horizon_explorer_javascript_selects_what_the_package_computes():
    import html
    import json
    import re
    import shutil

    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    from xlstm_edu.widgets import reference
    from xlstm_edu.widgets._html import run_in_node
    from xlstm_edu.widgets.forecasting import horizon_explorer

    explorer = horizon_explorer("sine", ("seasonal_naive", "linear"), length=300)
    H = SERIES["sine"].horizon
    cases = [dict(explorer.settings, step=1), dict(explorer.settings, step=H, model="seasonal_naive")]
    for settings, (got, svg) in zip(cases, run_in_node(explorer, cases, draw=True)):
        want = reference("forecast_horizon", settings)
        assert got == want
        for name in ("actual", "forecast", "mae_at_step", "seasonal_naive_mae_at_step"):
            drawn = re.search(f'data-series="{name}" data-values="([^"]*)"', svg).group(1)
            assert json.loads(html.unescape(drawn)) == want[name], name
    # what the package says directly: k steps ahead of origin t is the value at t + k - 1
    _, preds = live_forecasts("sine", ("seasonal_naive", "linear"), max_steps=150, length=300)
    np.testing.assert_allclose(want["actual"], np.round(preds["true"][:, H - 1], 5))
    with pytest.raises(ValueError, match="seasonal_naive"):
        horizon_explorer("sine", ("linear",), length=300)
