"""mLSTM: numpy == numba == torch, recurrent == parallel == chunkwise, states, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REGIMES, mlstm_inputs, rel_err, to_numpy

from xlstm_edu import mlstm

TOL = {torch.float64: 1e-10, torch.float32: 2e-4}


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("S", [1, 7, 37])
def test_recurrent_numpy_numba_torch_agree(regime, dtype, S):
    args = mlstm_inputs(S=S, regime=regime, dtype=dtype)
    h_ref, st_ref = mlstm.recurrent_numpy(*to_numpy(args))
    h_nb, st_nb = mlstm.recurrent(*to_numpy(args), return_state=True)
    h_t, st_t = mlstm.recurrent(*args, return_state=True)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    assert isinstance(h_nb, np.ndarray) and h_nb.dtype == h_ref.dtype
    assert isinstance(h_t, torch.Tensor) and h_t.dtype == dtype
    assert rel_err(h_nb, h_ref) < tol
    assert rel_err(h_t, h_ref) < tol
    for a, b, c in zip(st_nb, st_t, st_ref):
        assert rel_err(a, c) < tol and rel_err(b, c) < tol


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_recurrent_initial_state_and_split(backend):
    args = mlstm_inputs(S=41, regime="hard")
    if backend == "numpy":
        args = to_numpy(args)
    h_full, st_full = mlstm.recurrent(*args, return_state=True)
    first = [x[:, :, :17] for x in args]
    second = [x[:, :, 17:] for x in args]
    h1, st1 = mlstm.recurrent(*first, return_state=True)
    h2, st2 = mlstm.recurrent(*second, initial_state=st1, return_state=True)
    cat = np.concatenate if backend == "numpy" else torch.cat
    assert rel_err(cat([h1, h2], 2), h_full) < 1e-13
    for a, b in zip(st2, st_full):
        assert rel_err(a, b) < 1e-13


def test_numba_path_does_not_modify_initial_state():
    args = to_numpy(mlstm_inputs(S=9))
    _, state = mlstm.recurrent(*args, return_state=True)
    saved = [s.copy() for s in state]
    mlstm.recurrent(*args, initial_state=state)
    for a, b in zip(state, saved):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_three_forms_agree_eps0(regime, backend):
    """With eps = 0 the stabilizer changes nothing: all forms agree to float64 precision."""
    args = mlstm_inputs(S=45, regime=regime)
    if backend == "numpy":
        args = to_numpy(args)
    h_rec = mlstm.recurrent(*args, eps=0.0)
    h_par = mlstm.parallel(*args, eps=0.0)
    assert rel_err(h_par, h_rec) < 1e-10
    for L in (1, 2, 4, 7, 16, 44, 45, 64, 200):
        assert rel_err(mlstm.chunkwise(*args, chunk_size=L, eps=0.0), h_rec) < 1e-10, L


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("L", [1, 3, 8, 10, 33, 64, 128])
def test_chunkwise_equals_recurrent_with_states(regime, dtype, L):
    """Default eps: chunkwise carries the same m as the recurrent form, so they agree exactly
    (up to rounding), including the final state; odd S and chunk sizes that do not divide it."""
    args = mlstm_inputs(S=67, regime=regime, dtype=dtype)
    h_rec, st_rec = mlstm.recurrent(*args, return_state=True)
    h_ch, st_ch = mlstm.chunkwise(*args, chunk_size=L, return_state=True)
    assert rel_err(h_ch, h_rec) < TOL[dtype]
    for a, b in zip(st_ch, st_rec):
        assert rel_err(a, b) < TOL[dtype]
    h_np, st_np = mlstm.chunkwise(*to_numpy(args), chunk_size=L, return_state=True)
    assert rel_err(h_np, h_rec) < TOL[dtype]
    assert rel_err(st_np[0], st_rec[0]) < TOL[dtype]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_chunkwise_initial_state_carried_across_calls(backend):
    args = mlstm_inputs(S=50, regime="hard")
    if backend == "numpy":
        args = to_numpy(args)
    h_full, st_full = mlstm.recurrent(*args, return_state=True)
    state, hs = None, []
    for lo, hi in [(0, 13), (13, 14), (14, 50)]:
        h, state = mlstm.chunkwise(*[x[:, :, lo:hi] for x in args], chunk_size=6,
                                   initial_state=state, return_state=True)
        hs.append(h)
    cat = np.concatenate if backend == "numpy" else torch.cat
    assert rel_err(cat(hs, 2), h_full) < 1e-10
    for a, b in zip(state, st_full):
        assert rel_err(a, b) < 1e-10


def test_parallel_equals_recurrent_up_to_eps():
    """With eps > 0 the forms differ by a relative ~eps * exp(m): tiny in a typical regime."""
    args = mlstm_inputs(S=40, regime="typical")
    assert rel_err(mlstm.parallel(*args), mlstm.recurrent(*args)) < 1e-4


@pytest.mark.parametrize("regime", REGIMES)
def test_gradients_of_three_forms_agree(regime):
    base = mlstm_inputs(B=1, NH=2, S=23, DHQK=4, DHV=3, regime=regime)
    w = torch.randn(1, 2, 23, 3, dtype=torch.float64)
    grads = {}
    forms = {
        "recurrent": lambda *a: mlstm.recurrent(*a, eps=0.0),
        "parallel": lambda *a: mlstm.parallel(*a, eps=0.0),
        "chunkwise5": lambda *a: mlstm.chunkwise(*a, chunk_size=5, eps=0.0),
        "chunkwise1": lambda *a: mlstm.chunkwise(*a, chunk_size=1, eps=0.0),
    }
    for name, fn in forms.items():
        args = [x.clone().requires_grad_(True) for x in base]
        (fn(*args) * w).sum().backward()
        grads[name] = [a.grad for a in args]
    for name in ("parallel", "chunkwise5", "chunkwise1"):
        for g, g_ref in zip(grads[name], grads["recurrent"]):
            assert rel_err(g, g_ref) < 1e-9, name


@pytest.mark.parametrize("form", ["recurrent", "parallel", "chunkwise"])
def test_gradcheck(form):
    args = [x.requires_grad_(True) for x in mlstm_inputs(B=1, NH=1, S=7, DHQK=3, DHV=2)]
    fns = {"recurrent": mlstm.recurrent, "parallel": mlstm.parallel,
           "chunkwise": lambda *a: mlstm.chunkwise(*a, chunk_size=3)}
    assert torch.autograd.gradcheck(fns[form], args)


def test_chunkwise_gradcheck_through_initial_state():
    args = [x.requires_grad_(True) for x in mlstm_inputs(B=1, NH=1, S=6, DHQK=3, DHV=2)]
    init = (torch.randn(1, 1, 3, 2, dtype=torch.float64, requires_grad=True),
            torch.rand(1, 1, 3, dtype=torch.float64, requires_grad=True),
            torch.zeros(1, 1, dtype=torch.float64, requires_grad=True))

    def fn(*a):
        h, st = mlstm.chunkwise(*a[:5], chunk_size=4, initial_state=a[5:], return_state=True)
        return h, st[0], st[1]

    assert torch.autograd.gradcheck(fn, (*args, *init))


def test_step_matches_recurrent():
    q, k, v, i, f = mlstm_inputs(S=5)
    state = mlstm.zero_state(2, 3, 8, 5, q)
    hs = []
    for t in range(5):
        h, state = mlstm.step(*state, q[:, :, t], k[:, :, t], v[:, :, t], i[:, :, t], f[:, :, t])
        hs.append(h)
    assert rel_err(torch.stack(hs, 2), mlstm.recurrent(q, k, v, i, f)) < 1e-14


def test_parallel_float32_long_sequence_beats_cumsum_difference():
    """S = 4096, hard gates, float32: the stable log D stays accurate where the cumsum
    difference degrades (both measured against float64)."""
    args64 = mlstm_inputs(B=1, NH=1, S=4096, DHQK=16, DHV=16, regime="hard", seed=1)
    args32 = [x.float() for x in args64]
    lf64 = torch.nn.functional.logsigmoid(args64[4])
    lf32 = torch.nn.functional.logsigmoid(args32[4])
    ref = mlstm.log_decay_matrix(lf64, args64[3])
    stable = mlstm.log_decay_matrix(lf32, args32[3]).double()
    naive = mlstm.log_decay_matrix_cumsum_difference(lf32, args32[3]).double()
    # the entries that matter: weights exp(log D - m) above e^-20 (the rest underflow anyway)
    mask = (ref - ref.amax(-1, keepdim=True)) > -20
    err_stable = (stable - ref)[mask].abs().max().item()
    err_naive = (naive - ref)[mask].abs().max().item()
    assert err_stable < 2e-5
    assert err_naive > 20 * err_stable
    # and the output of the parallel form in float32 stays close to the float64 one
    h32 = mlstm.parallel(*args32)
    h64 = mlstm.parallel(*args64)
    assert rel_err(h32, h64) < 1e-3


def test_chunkwise_chunk_larger_than_sequence_is_parallel_plus_state():
    args = mlstm_inputs(S=11, regime="hard")
    assert rel_err(mlstm.chunkwise(*args, chunk_size=1000, eps=0.0),
                   mlstm.parallel(*args, eps=0.0)) < 1e-10


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_the_empty_state_with_m_minus_inf_is_accepted(form, backend):
    """The blocks start from (0, 0, m = -inf): no stabilizer yet. The forms used to refuse it as
    'infinite'; from it they give the parallel form's outputs (which has no initial state)."""
    args = mlstm_inputs(S=13, regime="hard")
    B, NH, _, DHQK = args[0].shape
    DHV = args[2].shape[-1]
    f64 = torch.float64
    empty = mlstm.zero_state(B, NH, DHQK, DHV, args[0], empty=True)
    assert all(t.dtype == f64 for t in empty) and bool((empty[2] == -torch.inf).all())
    if backend == "numpy":
        args, empty = to_numpy(args), to_numpy(empty)
    kw = dict(chunk_size=5) if form == "chunkwise" else {}
    h = getattr(mlstm, form)(*args, initial_state=empty, eps=0.0, **kw)
    h_par = mlstm.parallel(*args, eps=0.0)
    assert rel_err(h, h_par) < 1e-10
    plus_inf = torch.full((B, NH), torch.inf, dtype=f64)
    plus_inf = plus_inf.numpy() if backend == "numpy" else plus_inf
    bad = (*empty[:2], plus_inf)
    with pytest.raises(ValueError, match=r"m_state contains NaN or \+inf"):
        getattr(mlstm, form)(*args, initial_state=bad, **kw)


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_initial_stabilizer_cancels_in_exact_arithmetic(form):
    """m_0 = 0 (zero_state, the kernels' default) and m_0 = -inf (the empty state) give the same h
    with eps = 0; with eps outside the max they differ by a relative ~eps * exp(m)."""
    args = mlstm_inputs(S=23, regime="hard")
    B, NH, _, DHQK = args[0].shape
    states = [mlstm.zero_state(B, NH, DHQK, args[2].shape[-1], args[0], empty=e) for e in (False, True)]
    assert bool((states[0][2] == 0).all()) and bool((states[1][2] == -torch.inf).all())
    kw = dict(chunk_size=6) if form == "chunkwise" else {}
    run = getattr(mlstm, form)
    h0, h_empty = (run(*args, initial_state=st, eps=0.0, **kw) for st in states)
    assert rel_err(h0, h_empty) < 1e-12
    d_eps = rel_err(*(run(*args, initial_state=st, eps=1e-6, **kw) for st in states))
    assert 1e-12 < d_eps < 1e-6
