"""Chunkwise form (torch) in float32 with hard gates: as accurate as the recurrent and parallel forms.

With ``log f = -683`` per step the chunk-local cumulative sums of ``log f`` reach thousands, where
float32 numbers are ``1e-4`` apart; a log decay formed as a difference of two such sums inherits
that error. The references here are independent of the code under test: float64 runs (numpy
recurrent loop, or the torch forms in float64, where that rounding is 1e-13) and the parallel form.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xlstm_edu import mlstm

# the numpy recurrent reference floors its normalizer at exp(-m), which is inf in float64 for m near
# -1e3 (input gates of -1e3): h is then 0, as it should be, with a warning
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.abs(a - b).max() / np.abs(b).max()


def positive_qk_inputs(S, igate_preact, fgate_preact, B=1, NH=2, D=4, seed=None):
    """q, k in [0.1, 1] (h is a weighted average of the values: no cancellation in the normalizer)."""
    rng = np.random.default_rng(S if seed is None else seed)
    q, k = (rng.uniform(0.1, 1.0, (B, NH, S, D)).astype(np.float32) for _ in range(2))
    v = rng.standard_normal((B, NH, S, D)).astype(np.float32)
    return q, k, v, np.asarray(igate_preact, np.float32), np.asarray(fgate_preact, np.float32)


def mixed_hard_gates(B, NH, S, seed):
    """Forget pre-activations at -1e3 (closed) or +5 (open), input pre-activations in [-1e3, 1e3]."""
    rng = np.random.default_rng(seed)
    fgate = np.where(rng.random((B, NH, S)) < 0.5, -1e3, 5.0)
    return rng.uniform(-1e3, 1e3, (B, NH, S)), fgate


def torch32(args):
    return [torch.from_numpy(np.ascontiguousarray(a, np.float32)) for a in args]


def torch64(args):
    return [torch.from_numpy(np.asarray(a, np.float64)) for a in args]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4, 7, 9])
def test_closing_forget_gates_float32_matches_float64(chunk_size):
    """The reported case: S = 7, log f = -683 at every step; chunks of 1, non-divisors of S, S, > S."""
    B, NH, S = 1, 2, 7
    args = positive_qk_inputs(S, np.zeros((B, NH, S)), np.full((B, NH, S), -683.0))
    h32 = mlstm.chunkwise(*torch32(args), chunk_size=chunk_size).numpy()
    h64 = mlstm.chunkwise(*torch64(args), chunk_size=chunk_size).numpy()
    h_ref = mlstm.recurrent_numpy(*[np.asarray(a, np.float64) for a in args])[0]
    assert rel_err(h64, h_ref) < 1e-12  # the float64 run is the reference it claims to be
    assert rel_err(h32, h64) < 1e-5


@pytest.mark.parametrize("S, chunk_size", [(40, 1), (40, 7), (40, 16), (40, 64), (200, 64), (130, 32)])
def test_mixed_hard_gates_float32_close_to_float64_recurrent(S, chunk_size):
    """Closed and open forget gates and input gates of any size, long enough chunks for the partial
    sums of log f to reach -3e4; the float32 error stays at the recurrent form's level (~1e-6)."""
    B, NH = 2, 2
    i_pre, f_pre = mixed_hard_gates(B, NH, S, seed=S + chunk_size)
    args = positive_qk_inputs(S, i_pre, f_pre, B=B, NH=NH, D=8)
    h_ref = mlstm.recurrent_numpy(*[np.asarray(a, np.float64) for a in args])[0]
    h_rec32 = mlstm.recurrent(*torch32(args)).numpy()
    h32 = mlstm.chunkwise(*torch32(args), chunk_size=chunk_size).numpy()
    assert np.isfinite(h32).all()
    assert rel_err(h32, h_ref) < max(1e-5, 10 * rel_err(h_rec32, h_ref))


@pytest.mark.parametrize("chunk_size", [1, 5, 16])
def test_initial_state_carried_float32(chunk_size):
    """Split a hard-gated sequence: the first part's state, passed in, continues the second part as if
    it were one float64 recurrent run (outputs and final state)."""
    B, NH, S, S1, D = 1, 3, 45, 19, 6
    i_pre, f_pre = mixed_hard_gates(B, NH, S, seed=11)
    args = positive_qk_inputs(S, i_pre, f_pre, B=B, NH=NH, D=D)
    first = torch32([a[:, :, :S1] for a in args])
    second = torch32([a[:, :, S1:] for a in args])
    h_a, state_a = mlstm.chunkwise(*first, chunk_size=chunk_size, return_state=True)
    h_b, (c, n, m) = mlstm.chunkwise(*second, chunk_size=chunk_size, initial_state=state_a,
                                     return_state=True)
    h_ref, (c_ref, n_ref, m_ref) = mlstm.recurrent_numpy(*[np.asarray(a, np.float64) for a in args])
    assert rel_err(torch.cat([h_a, h_b], dim=2).numpy(), h_ref) < 1e-5
    # the state is (C, n) scaled by exp(-m): compare at the reference's m
    np.testing.assert_allclose(m.numpy(), m_ref, rtol=1e-6, atol=1e-4)
    rescale = np.exp(m.numpy().astype(np.float64) - m_ref)
    assert rel_err(c.numpy() * rescale[..., None, None], c_ref) < 1e-5
    assert rel_err(n.numpy() * rescale[..., None], n_ref) < 1e-5


def empty_state(B, NH, DHQK, DHV, dtype):
    """The state the blocks start from: no memory, ``m = -inf``."""
    return (torch.zeros(B, NH, DHQK, DHV, dtype=dtype), torch.zeros(B, NH, DHQK, dtype=dtype),
            torch.full((B, NH), -math.inf, dtype=dtype))


@pytest.mark.parametrize("chunk_size", [1, 4, 13, 64])
def test_from_empty_state_float32_is_the_parallel_form(chunk_size):
    """From ``(0, 0, m = -inf)`` the chunkwise form is the parallel form (no initial state): float32
    chunkwise with hard gates against the float64 parallel form."""
    B, NH, S, D = 2, 2, 37, 5
    i_pre, f_pre = mixed_hard_gates(B, NH, S, seed=3)
    args = positive_qk_inputs(S, i_pre, f_pre, B=B, NH=NH, D=D)
    h, (c, n, m) = mlstm.chunkwise(*torch32(args), chunk_size=chunk_size, return_state=True,
                                   initial_state=empty_state(B, NH, D, D, torch.float32))
    assert torch.isfinite(m).all() and torch.isfinite(c).all() and torch.isfinite(n).all()
    assert rel_err(h.numpy(), mlstm.parallel(*torch64(args)).numpy()) < 1e-5


@pytest.mark.parametrize("chunk_size", [1, 4, 13])
def test_from_empty_state_gradients_are_the_parallel_forms(chunk_size):
    """Gradients through the ``m = -inf`` start are finite and equal the parallel form's (float64,
    input gates in [-15, 15], forget pre-activations ~ N(0, 3^2))."""
    B, NH, S, DHQK, DHV = 1, 2, 29, 4, 3
    g = torch.Generator().manual_seed(chunk_size)
    inputs = (torch.randn(B, NH, S, DHQK, generator=g, dtype=torch.float64),
              torch.randn(B, NH, S, DHQK, generator=g, dtype=torch.float64),
              torch.randn(B, NH, S, DHV, generator=g, dtype=torch.float64),
              torch.rand(B, NH, S, generator=g, dtype=torch.float64) * 30.0 - 15.0,
              torch.randn(B, NH, S, generator=g, dtype=torch.float64) * 3.0)
    weights = torch.randn(B, NH, S, DHV, generator=g, dtype=torch.float64)
    grads = {}
    for form in ("chunkwise", "parallel"):
        leaves = [x.clone().requires_grad_(True) for x in inputs]
        if form == "chunkwise":
            h = mlstm.chunkwise(*leaves, chunk_size=chunk_size,
                                initial_state=empty_state(B, NH, DHQK, DHV, torch.float64))
        else:
            h = mlstm.parallel(*leaves)
        (h * weights).sum().backward()
        grads[form] = [x.grad for x in leaves]
    for ours, ref in zip(grads["chunkwise"], grads["parallel"]):
        assert torch.isfinite(ours).all()
        assert rel_err(ours.numpy(), ref.numpy()) < 1e-9


def test_gradcheck_with_initial_state():
    """float64 gradients of outputs and state w.r.t. all inputs and the initial state, S=5 over
    chunks of 2 (two full chunks and a tail of one)."""
    g = torch.Generator().manual_seed(0)
    B, NH, S, DHQK, DHV = 1, 2, 5, 3, 2

    def randn(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_(True)

    q, k, v = randn(B, NH, S, DHQK), randn(B, NH, S, DHQK), randn(B, NH, S, DHV)
    i_pre, f_pre = randn(B, NH, S, scale=3.0), randn(B, NH, S, scale=3.0)
    state = randn(B, NH, DHQK, DHV), randn(B, NH, DHQK), randn(B, NH)

    def f(q, k, v, i_pre, f_pre, c0, n0, m0):
        h, (c, n, m) = mlstm.chunkwise(q, k, v, i_pre, f_pre, chunk_size=2,
                                       initial_state=(c0, n0, m0), return_state=True)
        return h, c, n, m

    assert torch.autograd.gradcheck(f, (q, k, v, i_pre, f_pre, *state))
