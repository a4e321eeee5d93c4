"""Agreement with the official NX-AI implementations (``mlstm_kernels``, ``xlstm``) on the same inputs.

Official kernels used (CPU paths): ``native_sequence__native`` (recurrent),
``parallel--native_stablef_autograd`` and ``chunkwise--native_autograd`` (the ``*_custbw`` kernels
stop gradients through n and m, so gradients are compared with the autograd kernels only), and the
``xlstm`` sLSTM vanilla backend.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REGIMES, mlstm_inputs, rel_err, slstm_inputs, to_numpy

from xlstm_edu import mlstm, official, slstm
from xlstm_edu.experiments.slstm import random_inputs

mk = pytest.importorskip("mlstm_kernels.torch")

TOL = {torch.float64: 1e-10, torch.float32: 1e-4}
DTYPES = [torch.float64, torch.float32]


def official_recurrent(q, k, v, i, f, initial_state=None):
    kernel = mk.get_mlstm_sequence_kernel("native_sequence__native")
    kw = {}
    if initial_state is not None:
        c0, n0, m0 = initial_state
        kw = dict(c_initial=c0, n_initial=n0, m_initial=m0[..., None])  # official m: (B, NH, 1)
    h, (c, n, m) = kernel(q, k, v, i, f, return_last_states=True, dtype_state=q.dtype, **kw)
    return h, (c, n, m[..., 0])


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_recurrent_matches_official_sequence_kernel(regime, dtype, backend):
    args = mlstm_inputs(S=33, regime=regime, dtype=dtype)
    h_off, st_off = official_recurrent(*args)
    ours_in = args if backend == "torch" else to_numpy(args)
    h, st = mlstm.recurrent(*ours_in, return_state=True)
    assert rel_err(h, h_off) < TOL[dtype]
    for a, b in zip(st, st_off):
        assert rel_err(a, b) < TOL[dtype]


def test_recurrent_matches_official_with_initial_state():
    args = mlstm_inputs(S=20, regime="hard")
    _, state = mlstm.recurrent(*mlstm_inputs(S=9, regime="hard", seed=5), return_state=True)
    h_off, st_off = official_recurrent(*args, initial_state=state)
    h, st = mlstm.recurrent(*args, initial_state=state, return_state=True)
    assert rel_err(h, h_off) < 1e-10
    assert rel_err(st[0], st_off[0]) < 1e-10


def _grads(fn, base, w):
    args = [x.clone().requires_grad_(True) for x in base]
    (fn(*args) * w).sum().backward()
    return fn(*base).detach(), [a.grad for a in args]


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_matches_official_stablef(regime, dtype):
    base = mlstm_inputs(S=48, regime=regime, dtype=dtype)
    w = torch.randn(2, 3, 48, 5, dtype=dtype)
    official = mk.get_mlstm_kernel("parallel--native_stablef_autograd")
    h_off, g_off = _grads(official, base, w)
    h, g = _grads(mlstm.parallel, base, w)
    assert rel_err(h, h_off) < TOL[dtype]
    for a, b in zip(g, g_off):
        assert rel_err(a, b) < 10 * TOL[dtype]
    assert rel_err(mlstm.parallel(*to_numpy(base)), h_off) < TOL[dtype]


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("chunk_size", [4, 16, 64])
def test_chunkwise_matches_official_native(regime, dtype, chunk_size):
    S = 64  # the official native chunkwise kernel needs S % chunk_size == 0
    base = mlstm_inputs(S=S, regime=regime, dtype=dtype)
    w = torch.randn(2, 3, S, 5, dtype=dtype)
    official = mk.get_mlstm_kernel("chunkwise--native_autograd")
    h_off, g_off = _grads(lambda *a: official(*a, chunk_size=chunk_size), base, w)
    h, g = _grads(lambda *a: mlstm.chunkwise(*a, chunk_size=chunk_size), base, w)
    assert rel_err(h, h_off) < TOL[dtype]
    for a, b in zip(g, g_off):
        assert rel_err(a, b) < 10 * TOL[dtype]
    _, st_off = official(*base, chunk_size=chunk_size, return_last_states=True)
    _, st = mlstm.chunkwise(*base, chunk_size=chunk_size, return_state=True)
    assert rel_err(st[0], st_off[0]) < TOL[dtype]
    assert rel_err(st[1], st_off[1]) < TOL[dtype]
    assert rel_err(st[2], st_off[2].reshape(st[2].shape)) < TOL[dtype]


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_slstm_matches_official_vanilla_backend(regime, dtype, backend):
    pytest.importorskip("xlstm")
    from xlstm_edu.official import vanilla_slstm

    args = slstm_inputs(S=31, regime=regime, dtype=dtype)
    h_off = vanilla_slstm(*args)
    ours_in = args if backend == "torch" else to_numpy(args)
    h = slstm.recurrent(*ours_in)
    assert rel_err(h, h_off) < (1e-12 if dtype == torch.float64 else 1e-5)


def test_slstm_matches_official_cell_module():
    """Through the official ``sLSTMCell`` module (vanilla backend) and its parameter layout."""
    pytest.importorskip("xlstm")
    from xlstm.blocks.slstm.cell import sLSTMCell, sLSTMCellConfig

    B, NH, S, DH = 2, 2, 17, 4
    cfg = sLSTMCellConfig(hidden_size=NH * DH, num_heads=NH, backend="vanilla",
                          recurrent_weight_init="standard", bias_init="standard",
                          input_shape="BSGNH", output_shape="BNSH")
    cell = sLSTMCell(cfg).double()
    *gates, _ = slstm_inputs(B=B, NH=NH, S=S, DH=DH, regime="hard")
    x = torch.stack(gates, dim=2)  # (B, NH, 4, S, DH)
    x = x.permute(0, 3, 2, 1, 4).reshape(B, S, 4 * NH * DH)  # (B, S, gate*head*dim)
    with torch.no_grad():
        h_off, _ = cell(x)  # (B, NH, S, DH)
        R = cell.recurrent_kernel[...].clone()  # external layout (NH, DH_in, 4, DH_out)
        bias = cell.bias[...].clone()  # (NH, 4, DH)
    pre = [g + bias[None, :, j, None, :] for j, g in enumerate(gates)]
    h = slstm.recurrent(*pre, R)
    assert rel_err(h, h_off) < 1e-12


@pytest.mark.parametrize("S", [1, 13])
def test_official_vanilla_slstm_agrees_with_recurrent_float64(S):
    pytest.importorskip("xlstm")
    gates, R = random_inputs(2, 3, S, 6, seed=S, r_scale=1.5)
    h_official = official.vanilla_slstm(*gates, R)
    assert isinstance(h_official, np.ndarray) and h_official.shape == (2, 3, S, 6)
    h_ours = slstm.recurrent(*gates, R)
    assert np.abs(h_official - h_ours).max() < 1e-12
    # and a different R gives a different answer (the adapter really uses R)
    assert np.abs(official.vanilla_slstm(*gates, 0.5 * R) - h_ours).max() > 1e-3 or S == 1


def test_official_vanilla_slstm_torch_in_torch_out():
    pytest.importorskip("xlstm")
    gates, R = random_inputs(1, 2, 9, 4, seed=3, dtype=np.float32)
    t_gates = [torch.from_numpy(g) for g in gates]
    h = official.vanilla_slstm(*t_gates, torch.from_numpy(R))
    assert isinstance(h, torch.Tensor) and h.dtype == torch.float32 and h.shape == (1, 2, 9, 4)
    h_ours = slstm.recurrent(*t_gates, torch.from_numpy(R))
    assert (h - h_ours).abs().max().item() < 1e-5
