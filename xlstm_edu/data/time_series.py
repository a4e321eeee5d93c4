"""Time series for forecasting (chapter 11): real series that install offline, and a generated one.

* ``"sine"``: a noisy sine (period 25) with a slow drift of its amplitude, generated from a seed,
  to show the mechanics;
* ``"co2"``: weekly atmospheric CO2 at Mauna Loa, 1958-2001, in ppm (``statsmodels.datasets.co2``,
  its 59 missing weeks filled by linear interpolation);
* ``"sunspots"``: yearly sunspot numbers 1700-2008 (``statsmodels.datasets.sunspots``);
* ``"elnino"``: monthly sea surface temperature off the coast of South America (the El Nino region),
  1950-2010, in degrees Celsius (``statsmodels.datasets.elnino``).

:func:`load_series` returns the values as a float64 array; :data:`SERIES` holds each one's season
(``period``), and the context and horizon the experiment uses. :func:`split_points` cuts a series in
time into train / validation / test, :class:`Scaler` standardises with the training part's mean and
standard deviation only, and :func:`make_windows` turns a stretch into (context, future) pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._checks import check_choice, check_int, check_number


@dataclass(frozen=True)
class SeriesInfo:
    """How the experiment reads one series."""

    period: int  # the season in steps (seasonal naive forecast: the value one period earlier)
    context: int  # L: past values a model sees
    horizon: int  # H: future values it predicts at once
    unit: str  # unit of the values
    step: str  # what one time step is
    source: str  # where the data comes from


SERIES = {
    "sine": SeriesInfo(25, 50, 25, "", "step", "generated: noisy sine (xlstm_edu.data.time_series)"),
    "co2": SeriesInfo(52, 104, 26, "ppm", "week", "statsmodels.datasets.co2"),
    "sunspots": SeriesInfo(11, 33, 11, "sunspot number", "year", "statsmodels.datasets.sunspots"),
    "elnino": SeriesInfo(12, 36, 12, "degrees C", "month", "statsmodels.datasets.elnino"),
}
SERIES_NAMES = tuple(SERIES)


def noisy_sine(length: int = 1500, *, period: float = 25.0, noise: float = 0.1,
               seed: int = 0) -> np.ndarray:
    """``(1 + 0.3 sin(2 pi t / (8 period))) sin(2 pi t / period) + noise * N(0, 1)`` at
    ``t = 0 .. length - 1``."""
    check_int("length", length, minimum=2)
    check_number("period", period, minimum=0.0, exclusive_minimum=True)
    check_number("noise", noise, minimum=0.0)
    t = np.arange(length, dtype=np.float64)
    amplitude = 1.0 + 0.3 * np.sin(2 * math.pi * t / (8 * period))
    rng = np.random.default_rng(seed)
    return amplitude * np.sin(2 * math.pi * t / period) + noise * rng.standard_normal(length)


def load_series(name: str, *, seed: int = 0) -> np.ndarray:
    """The values of series ``name`` (one of :data:`SERIES_NAMES`) in time order, float64 ``(T,)``.
    ``seed`` only matters for the generated ``"sine"``."""
    check_choice("series", name, SERIES_NAMES)
    if name == "sine":
        return noisy_sine(seed=seed)
    if name == "co2":
        import statsmodels.datasets.co2 as co2

        frame = co2.load_pandas().data
        return frame["co2"].interpolate(method="linear").to_numpy(dtype=np.float64)
    if name == "sunspots":
        import statsmodels.datasets.sunspots as sunspots

        return sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64)
    import statsmodels.datasets.elnino as elnino

    frame = elnino.load_pandas().data  # one row per year: YEAR, JAN ... DEC
    return frame.drop(columns="YEAR").to_numpy(dtype=np.float64).ravel()  # (years, 12) -> (T,)


def split_points(length: int, fractions=(0.7, 0.15, 0.15)) -> tuple[int, int]:
    """Indices ``(a, b)`` cutting ``range(length)`` in time: train ``[0, a)``, validation ``[a, b)``,
    test ``[b, length)``, with the given fractions (rounded down)."""
    check_int("length", length, minimum=3)
    if len(fractions) != 3 or any(not 0 < f < 1 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three numbers in (0, 1) that sum to 1, got {fractions!r}")
    a = int(length * fractions[0])
    b = int(length * (fractions[0] + fractions[1]))
    if not 0 < a < b < length:
        raise ValueError(f"a series of {length} values is too short for the split {fractions}")
    return a, b


@dataclass(frozen=True)
class Scaler:
    """``(y - mean) / std`` with the mean and standard deviation of the training part only."""

    mean: float
    std: float

    @classmethod
    def fit(cls, train: np.ndarray) -> Scaler:
        train = np.asarray(train, dtype=np.float64)
        if train.ndim != 1 or train.size < 2 or not np.all(np.isfinite(train)):
            raise ValueError("the training part must be a 1-d array of at least 2 finite values")
        std = float(train.std())
        if std == 0.0:
            raise ValueError("the training part is constant; it cannot be scaled")
        return cls(float(train.mean()), std)

    def transform(self, y):
        return (y - self.mean) / self.std

    def inverse(self, z):
        return z * self.std + self.mean


def make_windows(y: np.ndarray, start: int, stop: int, context: int, horizon: int,
                 stride: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows whose futures lie in ``y[start:stop]``: ``X (N, L)`` the ``L = context`` values before
    the forecast origin ``t``, ``Y (N, H)`` the ``H = horizon`` values ``y[t : t + H]``, and the
    origins ``t (N,)``. The context may reach back before ``start`` (into the earlier split): it is
    the past that a forecaster at time ``t`` knows. Origins step by ``stride``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-d series, got shape {y.shape}")
    context = check_int("context", context)
    horizon = check_int("horizon", horizon)
    stride = check_int("stride", stride)
    check_int("start", start, minimum=0)
    check_int("stop", stop, minimum=0, maximum=len(y))
    first = max(start, context)
    origins = np.arange(first, stop - horizon + 1, stride)
    if origins.size == 0:
        raise ValueError(f"no window of context {context} and horizon {horizon} has its future in "
                         f"[{start}, {stop})")
    X = np.stack([y[t - context:t] for t in origins])  # (N, L)
    Y = np.stack([y[t:t + horizon] for t in origins])  # (N, H)
    return X, Y, origins
