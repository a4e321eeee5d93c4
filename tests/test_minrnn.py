"""minGRU and minLSTM (xlstm_edu.minrnn): both forms against an independent scalar loop, against each
other in numpy and torch, gradients, chaining states, bad inputs; the block and the language model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xlstm_edu import minrnn
from xlstm_edu.blocks import MinRNNBlock, MinRNNBlockState
from xlstm_edu.models import build_model, match_parameters
from xlstm_edu.models.minrnn_lm import MinRNNLM, MinRNNLMConfig

CELLS = {"mingru": (minrnn.mingru, 2), "minlstm": (minrnn.minlstm, 3)}


def _inputs(n, B=2, S=13, D=3, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((B, S, D)) * scale for _ in range(n)], rng.standard_normal((B, D))


def _sig(x):
    return 1 / (1 + math.exp(-x))


def _g(x):
    return x + 0.5 if x >= 0 else _sig(x)


def _reference(cell, ks, h0):
    """The paper's recurrences, one scalar at a time in plain Python (moderate inputs only)."""
    B, S, D = ks[0].shape
    out = np.empty((B, S, D))
    for b in range(B):
        for d in range(D):
            h = h0[b, d]
            for t in range(S):
                if cell == "mingru":
                    z = _sig(ks[0][b, t, d])
                    h = (1 - z) * h + z * _g(ks[1][b, t, d])
                else:
                    f, i = _sig(ks[0][b, t, d]), _sig(ks[1][b, t, d])
                    h = f / (f + i) * h + i / (f + i) * _g(ks[2][b, t, d])
                out[b, t, d] = h
    return out


def _rel_err(a, b):
    a, b = (x.detach().numpy() if isinstance(x, torch.Tensor) else x for x in (a, b))
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("form", minrnn.FORMS)
def test_equal_to_scalar_reference(cell, form):
    fn, n = CELLS[cell]
    ks, h0 = _inputs(n, scale=2.0)
    ref = _reference(cell, ks, h0)
    assert _rel_err(fn(*ks, form=form, initial_state=h0), ref) < 1e-12
    torch_out = fn(*map(torch.from_numpy, ks), form=form, initial_state=torch.from_numpy(h0))
    assert _rel_err(torch_out, ref) < 1e-12
    # no initial state: h_0 = 0
    assert _rel_err(fn(*ks, form=form), _reference(cell, ks, np.zeros_like(h0))) < 1e-12


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("scale", [1.0, 30.0, 800.0])
def test_parallel_equals_sequential_float64(cell, scale):
    """Up to extreme pre-activations (sigmoid saturated, exp(800) beyond float64), all four ways
    agree to 1e-10 (relative to max(1, |h|): g grows linearly, so h reaches ~2000 at scale 800)."""
    fn, n = CELLS[cell]
    ks, h0 = _inputs(n, S=200, D=4, scale=scale)
    seq = fn(*ks, form="sequential", initial_state=h0)
    outs = [fn(*ks, form="parallel", initial_state=h0)]
    tks = [torch.from_numpy(k) for k in ks]
    for form in minrnn.FORMS:
        outs.append(fn(*tks, form=form, initial_state=torch.from_numpy(h0)))
    for out in outs:
        assert np.isfinite(out.detach().numpy() if isinstance(out, torch.Tensor) else out).all()
        assert _rel_err(out, seq) < 1e-10


@pytest.mark.parametrize("cell", CELLS)
def test_state_chains(cell):
    """Two calls, the second starting from the first's final state, equal one call."""
    fn, n = CELLS[cell]
    ks, h0 = _inputs(n, S=20)
    tks = [torch.from_numpy(k) for k in ks]
    full, last = fn(*tks, initial_state=torch.from_numpy(h0), return_state=True)
    a, state = fn(*(k[:, :7] for k in tks), initial_state=torch.from_numpy(h0), return_state=True)
    b = fn(*(k[:, 7:] for k in tks), initial_state=state)
    assert _rel_err(torch.cat([a, b], dim=1), full) < 1e-13
    assert torch.equal(last, full[:, -1])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("form", minrnn.FORMS)
def test_gradcheck(cell, form):
    fn, n = CELLS[cell]
    g = torch.Generator().manual_seed(1)
    ks = [(torch.randn(2, 6, 3, generator=g, dtype=torch.float64) * 3).requires_grad_()
          for _ in range(n)]
    h0 = torch.randn(2, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: fn(*a[:-1], form=form, initial_state=a[-1]),
                                    (*ks, h0))


def test_logcumsumexp_matches_torch_and_gradcheck():
    g = torch.Generator().manual_seed(2)
    x = (torch.randn(3, 50, 4, generator=g, dtype=torch.float64) * 40).requires_grad_()
    y = minrnn.logcumsumexp(x)
    ref = torch.logcumsumexp(x, dim=1)
    assert torch.allclose(y, ref, rtol=1e-13, atol=1e-13)
    w = torch.randn(3, 50, 4, generator=g, dtype=torch.float64)
    (gx,) = torch.autograd.grad((y * w).sum(), x)
    (gref,) = torch.autograd.grad((ref * w).sum(), x)
    assert torch.allclose(gx, gref, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(minrnn.logcumsumexp, (x[:1, :10].detach().requires_grad_(),))
    np.testing.assert_allclose(minrnn.logcumsumexp(x.detach().numpy()), ref.detach().numpy(),
                               rtol=1e-13)


def test_g_and_log_g():
    x = np.linspace(-50, 50, 1001)
    expected = np.array([_g(v) for v in x])
    np.testing.assert_allclose(minrnn.g(x), expected, rtol=1e-13)
    np.testing.assert_allclose(minrnn.log_g(x), np.log(expected), rtol=1e-13, atol=1e-15)
    t = torch.from_numpy(x)
    np.testing.assert_allclose(minrnn.g(t).numpy(), expected, rtol=1e-13)
    np.testing.assert_allclose(minrnn.log_g(t).numpy(), np.log(expected), rtol=1e-13, atol=1e-15)
    assert minrnn.g(np.array([0.0]))[0] == 0.5 == _sig(0.0)  # continuous at 0


def test_minlstm_normalized_gates_in_log_space():
    """log f' and log i' from softplus equal log(f / (f + i)) and log(i / (f + i))."""
    k_f, k_i = np.meshgrid(np.linspace(-20, 20, 41), np.linspace(-20, 20, 41))
    k_f, k_i = k_f[None], k_i[None]  # (1, 41, 41)
    f, i = 1 / (1 + np.exp(-k_f)), 1 / (1 + np.exp(-k_i))
    log_a, log_b = minrnn.minlstm_log_coeffs(k_f, k_i, np.zeros_like(k_f))
    np.testing.assert_allclose(log_a, np.log(f / (f + i)), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(log_b - np.log(0.5), np.log(i / (f + i)), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", CELLS)
def test_float32_keeps_dtype(cell):
    fn, n = CELLS[cell]
    ks, h0 = _inputs(n)
    for form in minrnn.FORMS:
        out = fn(*(k.astype(np.float32) for k in ks), form=form)
        assert out.dtype == np.float32
        t = fn(*(torch.from_numpy(k).float() for k in ks), form=form)
        assert t.dtype == torch.float32
        np.testing.assert_allclose(out, t.numpy(), rtol=1e-5, atol=1e-5)


def test_bad_inputs():
    ks, h0 = _inputs(3)
    tk = [torch.from_numpy(k) for k in ks]
    with pytest.raises(ValueError, match="form"):
        minrnn.mingru(*ks[:2], form="scan")
    with pytest.raises(ValueError, match="3 dimensions"):
        minrnn.mingru(ks[0][0], ks[1][0])
    with pytest.raises(ValueError, match="k_h must have shape"):
        minrnn.minlstm(ks[0], ks[1], ks[2][:, :5])
    with pytest.raises(ValueError, match="mixed"):
        minrnn.mingru(ks[0], tk[1])
    with pytest.raises(ValueError, match="initial_state must have shape"):
        minrnn.mingru(*ks[:2], initial_state=h0[:1])
    with pytest.raises(ValueError, match="float32 or float64"):
        minrnn.mingru(ks[0].astype(np.int64), ks[1].astype(np.int64))
    with pytest.raises(ValueError, match="dtype"):
        minrnn.mingru(ks[0], ks[1].astype(np.float32))
    bad = ks[1].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        minrnn.minlstm(ks[0], bad, ks[2])
    with pytest.raises(ValueError, match="numpy array or a torch tensor"):
        minrnn.mingru(ks[0].tolist(), ks[1])
    with pytest.raises(ValueError, match="non-empty"):
        minrnn.mingru(ks[0][:, :0], ks[1][:, :0])


# --- block and language model -------------------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_block_step_equals_forward(cell):
    torch.manual_seed(0)
    block = MinRNNBlock(8, 12, 16, cell=cell).double()
    x = torch.randn(2, 9, 8, dtype=torch.float64)
    y, state = block(x, return_state=True)
    s, ys = None, []
    for t in range(9):
        y_t, s = block.step(x[:, t], s)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s.h, state.h, rtol=1e-12, atol=1e-12)
    y2 = block(x[:, 4:], block(x[:, :4], return_state=True)[1])
    torch.testing.assert_close(y2, y[:, 4:], rtol=1e-12, atol=1e-12)
    seq = MinRNNBlock(8, 12, 16, cell=cell, form="sequential").double()
    seq.load_state_dict(block.state_dict())
    torch.testing.assert_close(seq(x), y, rtol=1e-12, atol=1e-12)


def test_block_bad_state_and_args():
    block = MinRNNBlock(8, 12, 16)
    x = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match="state.h must have shape"):
        block(x, MinRNNBlockState(torch.zeros(3, 12)))
    with pytest.raises(ValueError, match="cell"):
        MinRNNBlock(8, 12, 16, cell="gru")
    with pytest.raises(ValueError, match="E = 8"):
        block(torch.randn(2, 5, 7))


@pytest.mark.parametrize("cell", CELLS)
def test_lm_step_equals_forward_and_generate(cell):
    torch.manual_seed(0)
    model = build_model({"model": "minrnn", "vocab_size": 30, "embedding_dim": 16, "cell": cell})
    assert isinstance(model, MinRNNLM)
    model = model.double()
    idx = torch.randint(0, 30, (3, 11))
    logits, state = model(idx, return_state=True)
    s, steps = None, []
    for t in range(11):
        lt, s = model.step(idx[:, t], s)
        steps.append(lt)
    torch.testing.assert_close(torch.stack(steps, 1), logits, rtol=1e-11, atol=1e-11)
    out = model.generate(idx[:, :4], 6, top_k=1)
    assert out.shape == (3, 10) and torch.equal(out[:, :4], idx[:, :4])
    # greedy generation = argmax of forward on the generated text
    full = model(out)
    assert torch.equal(full[:, 3:-1].argmax(-1), out[:, 4:])
    assert model.lm_head.weight is model.token_embedding.weight
    assert MinRNNLM.from_config(model.to_dict()).config == model.config


def test_lm_config_and_sizing():
    with pytest.raises(ValueError, match="cell"):
        MinRNNLMConfig(cell="rnn")
    with pytest.raises(ValueError, match="vocab_size"):
        MinRNNLMConfig(vocab_size=0)
    config, n = match_parameters(MinRNNLMConfig(vocab_size=80), 100_000, multiple_of=4)
    assert abs(n - 100_000) <= 0.05 * 100_000
    assert build_model(config).num_parameters() == n
    model = build_model(MinRNNLMConfig(vocab_size=20, embedding_dim=8))
    with pytest.raises(ValueError, match="one MinRNNBlockState per block"):
        model.step(torch.tensor([1, 2]), state=())
    with pytest.raises(ValueError, match="token ids"):
        model(torch.tensor([[25]]))
