"""Bad input gets a ValueError that names the argument; never silent broadcasting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import mlstm_inputs, slstm_inputs, to_numpy

import xlstm_edu._checks as checks
from xlstm_edu import lstm, mlstm, slstm

FORMS = {
    "recurrent": mlstm.recurrent,
    "parallel": mlstm.parallel,
    "chunkwise": lambda *a, **kw: mlstm.chunkwise(*a, chunk_size=4, **kw),
}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("which, bad, match", [
    (0, lambda x: x[0], r"q must have 4 dimensions \(B, NH, S, DHQK\)"),
    (1, lambda x: x[:, :, :-1], r"k must have shape \(B, NH, S, DHQK\)"),
    (1, lambda x: x[:, :, :, :-1], r"k must have shape"),
    (2, lambda x: x[:1], r"v must have shape \(B, NH, S, DHV\)"),
    (3, lambda x: x[..., None], r"igate_preact must have 3 dimensions \(B, NH, S\)"),
    (4, lambda x: x[:, :1], r"fgate_preact must have shape \(B, NH, S\)"),
    (3, lambda x: x.to(torch.int64), r"igate_preact must have a floating dtype"),
    (2, lambda x: x.float(), r"v has dtype torch.float32 but q has dtype torch.float64"),
    (0, lambda x: x.numpy(), r"mixed numpy arrays and torch tensors"),
    (4, lambda x: x.clone().index_fill_(2, torch.tensor([3]), float("nan")),
     r"fgate_preact contains NaN"),
    (0, lambda x: x.tolist(), r"q must be a numpy array or a torch tensor"),
])
def test_mlstm_bad_inputs(form, which, bad, match):
    args = list(mlstm_inputs(S=9))
    args[which] = bad(args[which])
    with pytest.raises(ValueError, match=match):
        FORMS[form](*args)


def test_mlstm_numpy_integer_dtype():
    args = list(to_numpy(mlstm_inputs(S=5)))
    args[0] = args[0].astype(np.int32)
    with pytest.raises(ValueError, match="q must be float32 or float64"):
        mlstm.recurrent(*args)


@pytest.mark.parametrize("form", ["recurrent", "chunkwise"])
def test_mlstm_bad_initial_state(form):
    args = mlstm_inputs(S=5)
    c, n, m = mlstm.zero_state(2, 3, 8, 5, args[0])
    with pytest.raises(ValueError, match="initial_state must be a tuple"):
        FORMS[form](*args, initial_state=(c, n))
    with pytest.raises(ValueError, match=r"c_state must have shape \(B, NH, DHQK, DHV\)"):
        FORMS[form](*args, initial_state=(c.transpose(-1, -2), n, m))
    with pytest.raises(ValueError, match=r"m_state must have 2 dimensions \(B, NH\)"):
        FORMS[form](*args, initial_state=(c, n, m[..., None]))


@pytest.mark.parametrize("chunk_size", [0, -3, 2.0, True, None, "8"])
def test_chunk_size_must_be_positive_int(chunk_size):
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        mlstm.chunkwise(*mlstm_inputs(S=5), chunk_size=chunk_size)


def test_finite_check_can_be_switched_off(monkeypatch):
    args = list(mlstm_inputs(S=5))
    args[3] = args[3].clone()
    args[3][0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="infinite"):
        mlstm.recurrent(*args)
    monkeypatch.setattr(checks, "CHECK_FINITE", False)
    mlstm.recurrent(*args)  # no error: the caller asked for no scan


@pytest.mark.parametrize("which, bad, match", [
    (0, lambda x: x[0], r"igate_preact must have 4 dimensions \(B, NH, S, DH\)"),
    (2, lambda x: x[:, :, :-1], r"zgate_preact must have shape \(B, NH, S, DH\)"),
    (4, lambda x: x.permute(0, 2, 1, 3), r"R must have shape \(NH, DH, 4, DH\)"),
    (4, lambda x: x.reshape(x.shape[0], x.shape[1], -1), r"R must have 4 dimensions"),
    (1, lambda x: x.to(torch.int32), r"fgate_preact must have a floating dtype"),
    (4, lambda x: x.numpy(), r"mixed numpy arrays and torch tensors"),
])
def test_slstm_bad_inputs(which, bad, match):
    args = list(slstm_inputs(S=6, NH=2, DH=3))
    args[which] = bad(args[which])
    with pytest.raises(ValueError, match=match):
        slstm.recurrent(*args)


def test_slstm_bad_initial_state():
    *gates, R = slstm_inputs(S=6)
    state = slstm.zero_state(2, 3, 4, gates[0])
    with pytest.raises(ValueError, match=r"initial_state must be a tuple \(h, c, n, m\)"):
        slstm.recurrent(*gates, R, initial_state=state[:3])
    with pytest.raises(ValueError, match=r"n_state must have shape \(B, NH, DH\)"):
        slstm.recurrent(*gates, R, initial_state=(state[0], state[1], state[2][:1], state[3]))


def test_lstm_bad_inputs():
    x = torch.randn(2, 5, 3)
    W_ih, W_hh = torch.randn(16, 3), torch.randn(16, 4)
    with pytest.raises(ValueError, match=r"x must have 3 dimensions \(B, S, D_in\)"):
        lstm.recurrent(x[0], W_ih, W_hh)
    with pytest.raises(ValueError, match=r"W_ih must have shape \(4H, D_in\)"):
        lstm.recurrent(x, W_ih[:, :2], W_hh)
    with pytest.raises(ValueError, match=r"W_hh must have shape \(4H, H\)"):
        lstm.recurrent(x, W_ih, torch.randn(12, 4))
    with pytest.raises(ValueError, match=r"b_ih must have shape \(4H,\)"):
        lstm.recurrent(x, W_ih, W_hh, torch.randn(15))
    with pytest.raises(ValueError, match="mixed numpy arrays and torch tensors"):
        lstm.recurrent(x.numpy(), W_ih, W_hh)
    with pytest.raises(ValueError, match=r"h_state must have shape \(B, H\)"):
        lstm.recurrent(x, W_ih, W_hh, initial_state=(torch.zeros(2, 3), torch.zeros(2, 4)))
