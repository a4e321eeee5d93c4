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
    times = ex.time_lstm_paths(B=2, S=5, D_in=3, H=4, repeat=1, rounds=1)
    assert list(times) == ["numpy reference loop", "torch loop", "numba", "numba: input projection",
                           "numba: compiled loop", "numba loop, fastmath", "torch.nn.LSTM, oneDNN off",
                           "torch.nn.LSTM"]
    assert all(t > 0 for t in times.values())


def test_fastmath_kernel_is_the_same_loop():
    rng = np.random.default_rng(0)
    x_proj = rng.standard_normal((2, 6, 4 * H)).astype(np.float32)
    W_hh = (rng.standard_normal((4 * H, H)) / np.sqrt(H)).astype(np.float32)
    from xlstm_edu.lstm import _recurrent_numba
    outs = [k(x_proj, W_hh, np.zeros((2, H), np.float32), np.zeros((2, H), np.float32))
            for k in (_recurrent_numba, ex._numba_kernel_fastmath())]
    np.testing.assert_allclose(outs[1], outs[0], rtol=0, atol=1e-5)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("forget_bias", [None, 2.0])
def test_carousel_only_gradient_is_the_closed_form(forget_bias):
    # With h_{t-1} detached from the gates, the gradient of L = u . h_{S-1} reaches x_t (t < S-1) only
    # along c: dL/dc_{S-1} = u o_{S-1} (1 - tanh^2 c_{S-1}), dL/dc_{t-1} = dL/dc_t f_t, and
    # dL/dx_t = W_ih^T [dL/dc_t (g_t i_t (1-i_t), c_{t-1} f_t (1-f_t), i_t (1-g_t^2)), 0 for o].
    model = ex.make_lstm(D_IN, H, seed=4, forget_bias=forget_bias, carousel_only=True)
    B_, S_ = 3, 12
    norms = ex.input_gradient_norms(model, S_, batch_size=B_, seed=5)
    g = torch.Generator().manual_seed(5)  # the inputs and u that input_gradient_norms draws
    x = torch.randn(B_, S_, D_IN, generator=g, dtype=torch.float64).numpy()
    u = torch.randn(H, generator=g, dtype=torch.float64).numpy()
    u /= np.linalg.norm(u)
    W_ih, W_hh, b_ih, b_hh = (p.detach().numpy() for p in
                              (model.weight_ih, model.weight_hh, model.bias_ih, model.bias_hh))
    h, c = np.zeros((B_, H)), np.zeros((B_, H))
    acts = []  # per step: i, f, g, o, c_{t-1}, c_t
    for t in range(S_):
        pre = x[:, t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh
        i, f, gg, o = _sigmoid(pre[:, :H]), _sigmoid(pre[:, H:2 * H]), np.tanh(pre[:, 2 * H:3 * H]), \
            _sigmoid(pre[:, 3 * H:])
        c_new = f * c + i * gg
        acts.append((i, f, gg, o, c, c_new))
        c, h = c_new, o * np.tanh(c_new)
    i, f, gg, o, c_prev, c_last = acts[-1]
    delta = u * o * (1 - np.tanh(c_last) ** 2)  # dL/dc_{S-1}, (B, H)
    expected = np.empty(S_)
    for t in range(S_ - 1, -1, -1):
        i, f, gg, o, c_prev, _ = acts[t]
        d_pre = np.concatenate([delta * gg * i * (1 - i), delta * c_prev * f * (1 - f),
                                delta * i * (1 - gg ** 2), np.zeros((B_, H))], axis=1)
        expected[S_ - 1 - t] = np.linalg.norm(d_pre @ W_ih, axis=1).mean()
        delta = delta * f  # dL/dc_{t-1}
    # d = 0 also has the output-gate path o_{S-1} -> h_{S-1}; from d = 1 on only the carousel is left
    np.testing.assert_allclose(norms[1:], expected[1:], rtol=1e-10)
    assert norms[0] > expected[0]


def test_carousel_only_same_forward_and_less_gradient():
    full = ex.make_lstm(D_IN, H, seed=1)
    cut = ex.make_lstm(D_IN, H, seed=1, carousel_only=True)
    assert isinstance(cut, ex.CarouselOnlyLSTM) and not isinstance(full, ex.CarouselOnlyLSTM)
    x = torch.randn(2, 15, D_IN, dtype=torch.float64)
    with torch.no_grad():
        (h_a, (h_la, c_la)), (h_b, (h_lb, c_lb)) = full(x), cut(x)
    for a, b in [(h_a, h_b), (h_la, h_lb), (c_la, c_lb)]:
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    a = ex.input_gradient_norms(full, S, batch_size=3, seed=2)
    b = ex.input_gradient_norms(cut, S, batch_size=3, seed=2)
    np.testing.assert_allclose(a[0], b[0], rtol=0.5)  # the last input acts directly on both
    assert np.all(np.abs(b[1:] / a[1:] - 1) > 1e-6)  # the h-paths are really cut
    np.testing.assert_allclose(ex.forget_gate_activations(cut, S, batch_size=3, seed=2),
                               ex.forget_gate_activations(full, S, batch_size=3, seed=2), rtol=0, atol=0)


def test_carousel_prediction_with_constant_forget_gates():
    # Forget gates that depend on nothing but a per-unit bias: f_{t,j} = phi_j exactly, and the carousel
    # multiplies unit j's gradient by phi_j per step. The predicted decay then matches the measured one
    # of the carousel-only LSTM (up to the varying per-step input factors) and exceeds the mean gate.
    model = ex.make_lstm(D_IN, H, seed=0, carousel_only=True)
    biases = torch.linspace(-1.0, 1.5, H, dtype=torch.float64)
    with torch.no_grad():
        model.weight_ih[H:2 * H] = 0.0
        model.weight_hh[H:2 * H] = 0.0
        model.bias_ih[H:2 * H] = biases
        model.bias_hh[H:2 * H] = 0.0
    f = ex.forget_gate_activations(model, S, batch_size=16, seed=3)
    phi = ex.unit_forget_gates(f)
    np.testing.assert_allclose(phi, torch.sigmoid(biases).numpy(), rtol=1e-12)
    predicted = ex.decay_per_step(ex.carousel_norm_prediction(phi, S), 5, 30)
    measured = ex.decay_per_step(ex.input_gradient_norms(model, S, batch_size=16, seed=3), 5, 30)
    assert predicted == pytest.approx(measured, rel=0.03)
    assert predicted > phi.mean() + 0.05


def test_carousel_norm_prediction():
    d = np.arange(20)
    np.testing.assert_allclose(ex.carousel_norm_prediction(np.array([0.7]), 20), 0.7 ** d, rtol=1e-14)
    two = ex.carousel_norm_prediction(np.array([0.5, 0.8]), 20)
    np.testing.assert_allclose(two, np.sqrt((0.25 ** d + 0.64 ** d) / 2), rtol=1e-14)
    assert 0.65 < ex.decay_per_step(two, 5, 20) < 0.8  # dominated by the larger gate, not the mean
    with pytest.raises(ValueError):
        ex.carousel_norm_prediction(np.array([0.5, 1.5]), 5)
    with pytest.raises(ValueError):
        ex.unit_forget_gates(np.ones((2, 3)))


def test_lstm_multiply_adds_match_counted_flops():
    from xlstm_edu.timing import count_flops
    B_, S_, D_, H_ = 2, 7, 3, 5
    torch.manual_seed(0)
    w = [torch.randn(4 * H_, D_), torch.randn(4 * H_, H_), torch.randn(4 * H_), torch.randn(4 * H_)]
    x = torch.randn(B_, S_, D_)
    macs = ex.lstm_multiply_adds(B_, S_, D_, H_)
    assert macs == {"input projection": B_ * S_ * 4 * H_ * D_, "recurrence": B_ * S_ * 4 * H_ * H_}
    assert count_flops(lambda: ex.recurrent_torch(x, *w)) == 2 * sum(macs.values())


def test_torch_lstm_ops_counts_per_step_work():
    off = ex.torch_lstm_ops(2, 9, 3, 4, onednn=False)
    assert off["aten::sigmoid_"] >= 9 or off["aten::sigmoid"] >= 9  # at least one per step
    on = ex.torch_lstm_ops(2, 9, 3, 4, onednn=True)
    if torch.backends.mkldnn.is_available():
        assert on["aten::mkldnn_rnn_layer"] == 1  # the whole sequence in one call
        assert sum(on.values()) < sum(off.values())
