"""The sLSTM training kernels (``slstm.recurrent_fused``): forward == the reference, the hand-derived
backward == autograd through the reference loop and through the official vanilla backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REGIMES, rel_err, slstm_inputs, to_numpy

from xlstm_edu import official, slstm
from xlstm_edu.blocks import sLSTMBlock
from xlstm_edu.experiments import slstm as ex

pytestmark = pytest.mark.usefixtures("one_thread")

needs_official = pytest.mark.skipif(not official.available("xlstm"), reason="xlstm not installed")


def carried_state(B=2, NH=3, DH=4, seed=1, dtype=torch.float64, m_state=None):
    """A state ``(h, c, n, m)`` as a previous run would leave it (``n > 0``)."""
    g = torch.Generator().manual_seed(seed)
    h = 0.5 * torch.randn(B, NH, DH, generator=g, dtype=torch.float64)
    c = torch.randn(B, NH, DH, generator=g, dtype=torch.float64)
    n = torch.rand(B, NH, DH, generator=g, dtype=torch.float64) + 0.5
    m = torch.randn(B, NH, DH, generator=g, dtype=torch.float64) if m_state is None else m_state
    return tuple(x.to(dtype) for x in (h, c, n, m))


def leaves(*tensors):
    return [None if t is None else t.detach().clone().requires_grad_(True) for t in tensors]


def gradients(run, gates, R, state, seed=2):
    """Gradients of a loss that weighs h and every final state tensor, for the gates, R and the
    initial state (zeros where an input does not reach the loss)."""
    B, NH, S, DH = gates[0].shape
    g = torch.Generator().manual_seed(seed)
    w_h = torch.randn(B, NH, S, DH, generator=g, dtype=torch.float64).to(gates[0].dtype)
    w_state = [torch.randn(B, NH, DH, generator=g, dtype=torch.float64).to(gates[0].dtype)
               for _ in range(4)]
    h, final = run(*gates, R, state)
    loss = (h * w_h).sum() + sum((s * w).sum() for s, w in zip(final, w_state))
    inputs = [x for x in (*gates, R, *(state or ())) if x is not None]
    return torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("S", [1, 7, 37])
@pytest.mark.parametrize("with_R", [True, False])
@pytest.mark.parametrize("with_state", [False, True])
def test_forward_equals_the_reference(regime, S, with_R, with_state):
    *gates, R = slstm_inputs(S=S, regime=regime)
    R = R if with_R else None
    state = carried_state() if with_state else None
    h_ref, st_ref = slstm.recurrent_numpy(*to_numpy((*gates, R)),
                                          None if state is None else to_numpy(state))
    h, st = slstm.recurrent_fused(*gates, R, state)
    assert isinstance(h, torch.Tensor) and h.dtype == torch.float64 and h.shape == gates[0].shape
    assert rel_err(h, h_ref) < 1e-12
    for a, b in zip(st, st_ref):
        assert rel_err(a, b) < 1e-12
    h_torch, _ = slstm.recurrent_torch(*gates, R, state)
    assert rel_err(h, h_torch) < 1e-12


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("S", [1, 7, 37])
@pytest.mark.parametrize("with_state", [False, True])
def test_gradients_equal_autograd_through_the_reference(regime, S, with_state):
    *gates, R = slstm_inputs(S=S, regime=regime)
    state = carried_state() if with_state else slstm.zero_state(2, 3, 4, gates[0])  # m = -inf
    grads = {}
    for name, run in (("fused", slstm.recurrent_fused), ("reference", slstm.recurrent_torch)):
        x = leaves(*gates, R, *state)
        grads[name] = gradients(run, x[:4], x[4], tuple(x[5:]))
    fused, ref = grads["fused"], grads["reference"]
    assert len(fused) == len(ref) == 9  # four gates, R, h, c, n, m
    for name, a, b in zip(ex.GRADIENT_INPUTS, fused, ref):
        assert torch.isfinite(a).all(), name
        assert (a - b).abs().max() <= 1e-10 * max(1.0, float(b.abs().max())), name


@pytest.mark.parametrize("regime", REGIMES)
def test_gradients_without_R(regime):
    *gates, _ = slstm_inputs(S=13, regime=regime)
    state = carried_state()
    fused = gradients(slstm.recurrent_fused, leaves(*gates), None, tuple(leaves(*state)))
    ref = gradients(slstm.recurrent_torch, leaves(*gates), None, tuple(leaves(*state)))
    for a, b in zip(fused, ref):
        assert (a - b).abs().max() <= 1e-10 * max(1.0, float(b.abs().max()))
    assert fused[4].abs().max() == 0.0  # without R, h_0 reaches nothing


def test_gradcheck():
    *gates, R = slstm_inputs(B=1, NH=2, S=5, DH=3, regime="hard")
    args = leaves(*gates, R, *carried_state(B=1, NH=2, DH=3))

    def run(*a):
        h, state = slstm.recurrent_fused(*a[:5], tuple(a[5:]))
        return (h, *state)

    assert torch.autograd.gradcheck(run, args)


def test_gradcheck_from_the_zero_state_without_R():
    args = leaves(*slstm_inputs(B=2, NH=1, S=6, DH=2)[:4])
    assert torch.autograd.gradcheck(lambda *a: slstm.recurrent_fused(*a)[0], args)


@needs_official
@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("S", [1, 7, 37])
def test_gradients_equal_the_official_vanilla_backend(regime, S):
    *gates, R = slstm_inputs(S=S, regime=regime)
    w = torch.randn(gates[0].shape, dtype=torch.float64)
    a, b = leaves(*gates, R), leaves(*gates, R)
    h_fused, _ = slstm.recurrent_fused(*a)
    h_official = ex.official_vanilla_autograd(*b)
    assert rel_err(h_fused, h_official) < 1e-12
    for x, y in zip(torch.autograd.grad((h_fused * w).sum(), a),
                    torch.autograd.grad((h_official * w).sum(), b)):
        assert (x - y).abs().max() <= 1e-10 * max(1.0, float(y.abs().max()))


def test_gradient_differences_table():
    errors = ex.gradient_differences(S=9, regime="hard", with_official=official.available("xlstm"))
    assert list(errors["fused - autograd through recurrent_torch"]) == list(ex.GRADIENT_INPUTS)
    for row in errors.values():
        assert max(row.values()) < 1e-10


def test_float32_is_close_to_float64():
    *gates, R = slstm_inputs(S=37, regime="hard")
    state = carried_state()
    ref = gradients(slstm.recurrent_fused, leaves(*gates), leaves(R)[0], tuple(leaves(*state)))
    g32 = [x.float() for x in (*gates, R, *state)]
    h, _ = slstm.recurrent_fused(*g32[:5], tuple(g32[5:]))
    assert h.dtype == torch.float32
    assert rel_err(h, slstm.recurrent_fused(*gates, R, state)[0]) < 1e-5
    got = gradients(slstm.recurrent_fused, leaves(*g32[:4]), leaves(g32[4])[0],
                    tuple(leaves(*g32[5:])))
    for a, b in zip(got, ref):
        assert a.dtype == torch.float32 and rel_err(a, b) < 1e-4


def test_no_grad_inputs_unchanged_and_split_run():
    *gates, R = slstm_inputs(S=20, regime="hard")
    state = carried_state()
    copies = [s.clone() for s in state]
    with torch.no_grad():
        h, final = slstm.recurrent_fused(*gates, R, state)
    assert h.grad_fn is None
    for s, c in zip(state, copies):
        assert torch.equal(s, c)  # the initial state is read, never written
    h1, mid = slstm.recurrent_fused(*(g[:, :, :8] for g in gates), R, state)
    h2, end = slstm.recurrent_fused(*(g[:, :, 8:] for g in gates), R, mid)
    assert rel_err(torch.cat([h1, h2], 2), h) < 1e-13
    for a, b in zip(end, final):
        assert rel_err(a, b) < 1e-13


def test_other_dtypes_run_the_torch_reference():
    *gates, R = slstm_inputs(S=6)
    g16 = [x.to(torch.bfloat16) for x in (*gates, R)]
    h, _ = slstm.recurrent_fused(*g16)
    assert h.dtype == torch.bfloat16
    assert torch.equal(h, slstm.recurrent_torch(*g16)[0])


@pytest.mark.cuda
def test_cuda_runs_the_torch_reference():
    *gates, R = slstm_inputs(S=9, regime="hard")
    cpu = gradients(slstm.recurrent_fused, leaves(*gates), leaves(R)[0], None)
    dev = leaves(*(x.cuda() for x in (*gates, R)))
    h, _ = slstm.recurrent_fused(*dev)
    assert h.device.type == "cuda"
    got = gradients(slstm.recurrent_fused, dev[:4], dev[4], None)
    for a, b in zip(got, cpu):
        assert a.device.type == "cuda" and rel_err(a, b) < 1e-10


def test_bad_inputs():
    *gates, R = slstm_inputs(S=4)
    with pytest.raises(ValueError, match="torch tensors"):
        slstm.recurrent_fused(*to_numpy(gates), R.numpy())
    with pytest.raises(ValueError, match="fgate_preact"):
        slstm.recurrent_fused(gates[0], gates[1][:, :, :2], *gates[2:], R)
    with pytest.raises(ValueError, match="R must have shape"):
        slstm.recurrent_fused(*gates, R[:, :2])
    with pytest.raises(ValueError, match=r"initial_state must be a tuple \(h, c, n, m\)"):
        slstm.recurrent_fused(*gates, R, carried_state()[:3])
    with pytest.raises(ValueError, match="h_state"):
        slstm.recurrent_fused(*gates, R, (torch.zeros(1, 3, 4, dtype=torch.float64),
                                          *carried_state()[1:]))
    with pytest.raises(ValueError):
        slstm.recurrent_fused(*(g.float() for g in gates), R)  # mixed dtypes
    with pytest.raises(ValueError, match="backend must be one of"):
        sLSTMBlock(16, 32, num_heads=2, backend="cuda")
    block = sLSTMBlock(16, 32, num_heads=2)
    block.backend = "numba"
    with pytest.raises(ValueError, match="backend must be one of"):
        block(torch.randn(1, 3, 16))


# --- the block --------------------------------------------------------------------------------------


def perturbed_block(seed=0):
    """An sLSTM block in float64 with every parameter moved off its init (R = 0 at init)."""
    torch.manual_seed(seed)
    block = sLSTMBlock(16, 32, num_heads=2, conv1d_kernel_size=3).double()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return block


@pytest.mark.parametrize("with_state", [False, True])
def test_block_fused_equals_torch_forward_and_backward(with_state):
    block = perturbed_block()
    x = torch.randn(3, 11, 16, dtype=torch.float64)
    state = None
    if with_state:
        with torch.no_grad():
            _, state = block(torch.randn(3, 5, 16, dtype=torch.float64), return_state=True)
    results = {}
    for backend in ("fused", "torch"):
        block.backend = backend
        block.zero_grad()
        xb = x.clone().requires_grad_(True)
        y, new_state = block(xb, state, return_state=True)
        (y * torch.cos(torch.arange(y.numel(), dtype=y.dtype)).reshape(y.shape)).sum().backward()
        results[backend] = (y, new_state, xb.grad,
                            {n: p.grad.clone() for n, p in block.named_parameters()})
    (y_f, st_f, gx_f, gp_f), (y_t, st_t, gx_t, gp_t) = results["fused"], results["torch"]
    assert rel_err(y_f, y_t) < 1e-12
    for a, b in zip(st_f, st_t):
        assert rel_err(a, b) < 1e-12
    assert rel_err(gx_f, gx_t) < 1e-10
    assert set(gp_f) == set(gp_t) and "R" in gp_f
    for name in gp_f:
        assert rel_err(gp_f[name], gp_t[name]) < 1e-10, name


def test_block_default_backend_and_repr():
    block = sLSTMBlock(16, 32, num_heads=2)
    assert block.backend == "fused" and "backend='fused'" in repr(block)
    assert sLSTMBlock(16, 32, num_heads=2, backend="torch").backend == "torch"


def test_block_step_without_checks_equals_step_and_forward():
    block = perturbed_block(1)
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    with torch.no_grad():
        y_seq = block(x)
        state_a = state_b = None
        for t in range(6):
            y_a, state_a = block.step(x[:, t], state_a)
            y_b, state_b = block.step(x[:, t], state_b, check=False)
            assert torch.equal(y_a, y_b)
            assert rel_err(y_a, y_seq[:, t]) < 1e-12
    with pytest.raises(ValueError, match=r"\(B, E\)"):
        block.step(x)  # checked by default
    np.testing.assert_array_equal([s.shape for s in state_b], [s.shape for s in state_a])
