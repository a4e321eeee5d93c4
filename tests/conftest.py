"""Shared fixtures: random inputs in a typical and a hard gate regime, and comparison helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

REGIMES = ("typical", "hard")


def mlstm_inputs(B=2, NH=3, S=37, DHQK=8, DHV=5, regime="typical", dtype=torch.float64, seed=0,
                 device="cpu"):
    """(q, k, v, igate_preact, fgate_preact) as torch tensors.

    typical: gates ~ N(0, 1) and N(3, 1) (forget gate open); hard: input gates uniform in
    [-15, 15], forget gates N(0, 3) (the issue's stress regime).
    """
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, NH, S, DHQK, generator=g, dtype=torch.float64)
    k = torch.randn(B, NH, S, DHQK, generator=g, dtype=torch.float64)
    v = torch.randn(B, NH, S, DHV, generator=g, dtype=torch.float64)
    if regime == "typical":
        i = torch.randn(B, NH, S, generator=g, dtype=torch.float64)
        f = torch.randn(B, NH, S, generator=g, dtype=torch.float64) + 3.0
    else:
        i = torch.rand(B, NH, S, generator=g, dtype=torch.float64) * 30.0 - 15.0
        f = torch.randn(B, NH, S, generator=g, dtype=torch.float64) * 3.0
    return tuple(x.to(dtype=dtype, device=device) for x in (q, k, v, i, f))


def slstm_inputs(B=2, NH=3, S=29, DH=4, regime="typical", dtype=torch.float64, seed=0, r_scale=0.5):
    """(igate, fgate, zgate, ogate, R) as torch tensors."""
    g = torch.Generator().manual_seed(seed)
    gates = [torch.randn(B, NH, S, DH, generator=g, dtype=torch.float64) for _ in range(4)]
    if regime == "hard":
        gates[0] = torch.rand(B, NH, S, DH, generator=g, dtype=torch.float64) * 30.0 - 15.0
        gates[1] = gates[1] * 3.0
    R = torch.randn(NH, DH, 4, DH, generator=g, dtype=torch.float64) * r_scale / DH**0.5
    return tuple(x.to(dtype) for x in (*gates, R))


def to_numpy(xs):
    return tuple(None if x is None else x.detach().cpu().numpy() for x in xs)


def rel_err(a, b):
    """max |a - b| / max |b| (numpy or torch)."""
    a = a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, float)
    b = b.detach().cpu().double().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, float)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one torch thread is faster and steadier than two on busy cores (restored after
    the module). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def legend_labels(ax) -> list[str]:
    """The texts of ``ax``'s legend, in order (figure tests)."""
    return [t.get_text() for t in ax.get_legend().get_texts()]


@pytest.fixture
def close_figures():
    """Close every matplotlib figure after the test (figure tests: ``pytestmark =
    pytest.mark.usefixtures("close_figures")``)."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def pytest_collection_modifyitems(config, items):
    """CUDA tests skip per test when no GPU is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
