"""Tests for xlstm_edu.experiments.lstm (chapter "The classic LSTM")."""

import numpy as np
import pytest
import torch
from torch import nn

from xlstm_edu.experiments import lstm as ex
from xlstm_edu.lstm import LSTM

D_IN, H, S = 4, 8, 40


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest


@pytest.mark.parametrize("kind", ["rnn", "lstm", "torch_lstm"])
def test_input_gradient_norms_shape_and_values(kind):
    if kind == "rnn":
        model = ex.make_rnn(D_IN, H, seed=0)
    elif kind == "lstm":
        model = ex.make_lstm(D_IN, H, seed=0)
    else:
        torch.manual_seed(0)
        model = nn.LSTM(D_IN, H, batch_first=True).double()
    norms = ex.input_gradient_norms(model, S, batch_size=3, seed=1)
    assert norms.shape == (S,)
    assert norms.dtype == np.float64
    assert np.all(np.isfinite(norms))
    assert norms[0] > 1e-3  # the last input acts on the last output directly
    assert np.all(norms > 0)


def test_input_gradient_norms_index_is_distance():
    # A model whose output at step t is x_t * t: the gradient of the last output w.r.t. x_t is zero
    # except at t = S-1, i.e. at distance d = 0.
    class LastOnly(nn.Module):
        input_size = 2

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(1, dtype=torch.float64))

        def forward(self, x):
            return x * self.w, None

    norms = ex.input_gradient_norms(LastOnly(), 5, batch_size=2)
    assert norms[0] > 0
    np.testing.assert_array_equal(norms[1:], 0.0)


def test_input_gradient_norms_ours_equals_torch_lstm():
    torch.manual_seed(3)
    ref = nn.LSTM(D_IN, H, batch_first=True).double()
    ex.set_forget_bias(ref, 1.0)
    ours = LSTM.from_torch(ref)
    a = ex.input_gradient_norms(ref, S, batch_size=4, seed=2)
    b = ex.input_gradient_norms(ours, S, batch_size=4, seed=2)
    np.testing.assert_allclose(b, a, rtol=1e-10, atol=0)


def test_input_gradient_norms_rejects_bad_sizes():
    with pytest.raises(ValueError):
        ex.input_gradient_norms(ex.make_rnn(D_IN, H, seed=0), 0)


def test_rnn_gradient_decays_faster_than_lstm():
    seeds = [0, 1]
    rnn = ex.gradient_norm_curves(lambda s: ex.make_rnn(D_IN, 2 * H, seed=s), S, seeds, batch_size=4)
    lstm = ex.gradient_norm_curves(lambda s: ex.make_lstm(D_IN, H, seed=s, forget_bias=1.0), S, seeds,
                                   batch_size=4)
    assert rnn.shape == lstm.shape == (len(seeds), S)
    r_rnn, r_lstm = ex.decay_per_step(rnn, 5, 30), ex.decay_per_step(lstm, 5, 30)
    assert r_rnn < r_lstm < 1.0
    assert np.all(rnn[:, -1] / rnn[:, 0] < lstm[:, -1] / lstm[:, 0])


def test_forget_bias_slows_the_decay():
    rates = [ex.decay_per_step(ex.gradient_norm_curves(
        lambda s, b=b: ex.make_lstm(D_IN, H, seed=s, forget_bias=b), S, [0], batch_size=4), 5, 30)
        for b in (-3.0, 0.0, 3.0)]
    assert rates[0] < rates[1] < rates[2]


def test_decay_per_step_on_geometric_sequences():
    d = np.arange(30)
    assert ex.decay_per_step(0.5 ** d, 0, 30) == pytest.approx(0.5, rel=1e-12)
    assert ex.decay_per_step(3.0 * 0.9 ** d, 5, 20) == pytest.approx(0.9, rel=1e-12)
    # 2-D: the geometric mean over rows, 0.5**d and 0.8**d -> sqrt(0.4)
    two = np.stack([0.5 ** d, 0.8 ** d])
    assert ex.decay_per_step(two, 0, 30) == pytest.approx(np.sqrt(0.4), rel=1e-12)
    with pytest.raises(ValueError):
        ex.decay_per_step(0.5 ** d, 10, 11)
    with pytest.raises(ValueError):
        ex.decay_per_step(np.ones((2, 2, 2)), 0, 2)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_run_all_implementations_agree(dtype, tol):
    torch.manual_seed(0)
    ref = nn.LSTM(D_IN, H, batch_first=True).to(dtype)
    x = torch.randn(2, 9, D_IN, dtype=dtype)
    outs = ex.run_all_implementations(ref, x)
    assert list(outs) == ["numpy reference", "numba", "torch loop (ours)", "torch.nn.LSTM"]
    for h, h_last, c_last in outs.values():
        assert h.shape == (2, 9, H) and h_last.shape == c_last.shape == (2, H)
        assert h.dtype == (np.float64 if dtype == torch.float64 else np.float32)
        np.testing.assert_array_equal(h[:, -1], h_last)
    for name in outs:
        for a, b in zip(outs[name], outs["torch.nn.LSTM"]):
            assert np.abs(a - b).max() < tol, name
    assert np.abs(outs["numba"][2]).max() > 0.01  # a real cell state, not zeros


def test_run_all_implementations_rejects_seq_first():
    with pytest.raises(ValueError):
        ex.run_all_implementations(nn.LSTM(D_IN, H), torch.randn(2, 3, D_IN))


def test_spectral_radius_and_rescaled_rnn():
    assert ex.spectral_radius(torch.diag(torch.tensor([0.5, -2.0, 1.0]))) == pytest.approx(2.0)
    rnn = ex.make_rnn(D_IN, H, seed=0, spectral_radius=1.7)
    assert ex.spectral_radius(rnn.weight_hh_l0) == pytest.approx(1.7, rel=1e-10)
    default = ex.make_rnn(D_IN, 64, seed=0)
    assert 0.4 < ex.spectral_radius(default.weight_hh_l0) < 0.8  # about 1/sqrt(3)
    rates = [ex.decay_per_step(ex.gradient_norm_curves(
        lambda s, r=r: ex.make_rnn(D_IN, H, seed=s, spectral_radius=r), S, [0], batch_size=4), 5, 30)
        for r in (0.5, 4.0)]
    assert rates[0] < 1.0 < rates[1]  # vanishing vs exploding


@pytest.mark.parametrize("cls", ["ours", "torch"])
def test_set_forget_bias(cls):
    torch.manual_seed(0)
    model = ex.make_lstm(D_IN, H, seed=0) if cls == "ours" else nn.LSTM(D_IN, H, batch_first=True)
    b_ih = model.bias_ih if cls == "ours" else model.bias_ih_l0
    b_hh = model.bias_hh if cls == "ours" else model.bias_hh_l0
    before = (b_ih + b_hh).detach().clone()
    ex.set_forget_bias(model, 2.5)
    total = (b_ih + b_hh).detach()
    torch.testing.assert_close(total[H:2 * H], torch.full((H,), 2.5, dtype=total.dtype))
    torch.testing.assert_close(total[:H], before[:H])
    torch.testing.assert_close(total[2 * H:], before[2 * H:])


def test_make_lstm_seeded_and_dtype():
    a, b = ex.make_lstm(D_IN, H, seed=5), ex.make_lstm(D_IN, H, seed=5)
    assert a.weight_hh.dtype == torch.float64
    torch.testing.assert_close(a.weight_hh, b.weight_hh)
    assert not torch.equal(a.weight_hh, ex.make_lstm(D_IN, H, seed=6).weight_hh)
    assert ex.count_parameters(a) == 4 * H * (D_IN + H + 2)
    assert ex.count_parameters(ex.make_rnn(D_IN, H, seed=0)) == H * (D_IN + H + 2)


def test_forget_gate_activations():
    lstm = ex.make_lstm(D_IN, H, seed=0, forget_bias=3.0)
    f = ex.forget_gate_activations(lstm, S, batch_size=3, seed=1)
    assert f.shape == (3, S, H)
    assert np.all((f > 0) & (f < 1))
    # With zero weights only the bias is left: f = sigmoid(3) everywhere.
    with torch.no_grad():
        lstm.weight_ih.zero_()
        lstm.weight_hh.zero_()
    f0 = ex.forget_gate_activations(lstm, S, batch_size=3, seed=1)
    np.testing.assert_allclose(f0, 1 / (1 + np.exp(-3.0)), rtol=1e-14)


def test_forget_gate_activations_first_step():
    # At t = 0, h_{-1} = 0: f_0 = sigmoid(W_ih x_0 + b_ih + b_hh)[H:2H] for the same inputs.
    lstm = ex.make_lstm(D_IN, H, seed=2)
    f = ex.forget_gate_activations(lstm, 5, batch_size=2, seed=7)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 5, D_IN, generator=g, dtype=torch.float64)
    with torch.no_grad():
        pre = x[:, 0] @ lstm.weight_ih.T + lstm.bias_ih + lstm.bias_hh
    np.testing.assert_allclose(f[:, 0], torch.sigmoid(pre[:, H:2 * H]).numpy(), rtol=1e-13)


def test_curve_summary_is_the_geometric_mean_and_band():
    c = np.array([[1.0, 100.0], [4.0, 1.0]])  # (seeds, S)
    mean, low, high = ex.curve_summary(c)
    np.testing.assert_allclose(mean, [2.0, 10.0])  # sqrt(1 * 4), sqrt(100 * 1)
    np.testing.assert_array_equal(low, [1.0, 1.0])
    np.testing.assert_array_equal(high, [4.0, 100.0])
    with pytest.raises(ValueError, match="seeds"):
        ex.curve_summary(np.ones(3))


def test_time_lstm_paths_runs():
    times = ex.time_lstm_paths(B=2, S=5, D_in=3, H=4, repeat=1)
    assert list(times) == ["numpy reference loop", "numba", "torch loop", "torch.nn.LSTM"]
