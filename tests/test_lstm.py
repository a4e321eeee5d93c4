"""Classic LSTM: numpy == numba == torch == torch.nn.LSTM with the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import rel_err

from xlstm_edu import lstm


def _torch_lstm(D_in=5, H=7, dtype=torch.float64, bias=True):
    torch.manual_seed(3)
    return torch.nn.LSTM(D_in, H, batch_first=True, bias=bias).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch_nn_lstm(dtype, bias):
    ref_mod = _torch_lstm(dtype=dtype, bias=bias)
    x = torch.randn(3, 19, 5, dtype=dtype)
    h0, c0 = torch.randn(3, 7, dtype=dtype), torch.randn(3, 7, dtype=dtype)
    with torch.no_grad():
        ref, (h_n, c_n) = ref_mod(x, (h0[None], c0[None]))
        ours, (h_o, c_o) = lstm.LSTM.from_torch(ref_mod)(x, (h0, c0))
    tol = 1e-13 if dtype == torch.float64 else 1e-6
    assert ours.dtype == dtype
    assert rel_err(ours, ref) < tol
    assert rel_err(h_o, h_n[0]) < tol and rel_err(c_o, c_n[0]) < tol
    params = [p.detach().numpy() for p in (ref_mod.weight_ih_l0, ref_mod.weight_hh_l0)]
    if bias:
        params += [ref_mod.bias_ih_l0.detach().numpy(), ref_mod.bias_hh_l0.detach().numpy()]
    h_nb, (hn_nb, cn_nb) = lstm.recurrent(x.numpy(), *params,
                                          initial_state=(h0.numpy(), c0.numpy()), return_state=True)
    h_np, _ = lstm.recurrent_numpy(x.numpy(), *params, initial_state=(h0.numpy(), c0.numpy()))
    assert isinstance(h_nb, np.ndarray)
    assert rel_err(h_nb, ref) < tol and rel_err(h_np, ref) < tol
    assert rel_err(cn_nb, c_n[0]) < tol


def test_split_sequence_with_state_equals_one_run():
    mod = lstm.LSTM.from_torch(_torch_lstm())
    x = torch.randn(2, 23, 5, dtype=torch.float64)
    full, st = mod(x)
    a, st_a = mod(x[:, :10])
    b, st_b = mod(x[:, 10:], st_a)
    assert rel_err(torch.cat([a, b], 1), full) < 1e-14
    assert rel_err(st_b[1], st[1]) < 1e-14


def test_gradcheck_and_gradients_match_torch():
    ref_mod = _torch_lstm(D_in=3, H=2)
    mod = lstm.LSTM.from_torch(ref_mod)
    x = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: mod(x)[0], (x,))
    ref_mod(x)[0].sum().backward()
    g_ref = (x.grad.clone(), ref_mod.weight_hh_l0.grad.clone())
    x.grad = None
    mod(x)[0].sum().backward()
    assert rel_err(x.grad, g_ref[0]) < 1e-13
    assert rel_err(mod.weight_hh.grad, g_ref[1]) < 1e-13


def test_from_torch_rejects_unsupported():
    with pytest.raises(ValueError, match="one-layer"):
        lstm.LSTM.from_torch(torch.nn.LSTM(3, 4, num_layers=2))
