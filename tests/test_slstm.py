"""sLSTM: numpy reference == numba == torch; states; heads; gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REGIMES, rel_err, slstm_inputs, to_numpy

from xlstm_edu import slstm


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("with_R", [True, False])
def test_numpy_numba_torch_agree(regime, dtype, with_R):
    *gates, R = slstm_inputs(S=29, regime=regime, dtype=dtype)
    R = R if with_R else None
    h_ref, st_ref = slstm.recurrent_numpy(*to_numpy((*gates, R)))
    h_nb, st_nb = slstm.recurrent(*to_numpy((*gates, R)), return_state=True)
    h_t, st_t = slstm.recurrent(*gates, R, return_state=True)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert isinstance(h_nb, np.ndarray) and isinstance(h_t, torch.Tensor) and h_t.dtype == dtype
    assert rel_err(h_nb, h_ref) < tol and rel_err(h_t, h_ref) < tol
    for a, b, c in zip(st_nb, st_t, st_ref):
        assert rel_err(a, c) < tol and rel_err(b, c) < tol


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_split_sequence_with_state_equals_one_run(backend):
    *gates, R = slstm_inputs(S=31, regime="hard")
    if backend == "numpy":
        gates, R = list(to_numpy(gates)), R.numpy()
    h_full, st_full = slstm.recurrent(*gates, R, return_state=True)
    h1, st1 = slstm.recurrent(*[g[:, :, :12] for g in gates], R, return_state=True)
    h2, st2 = slstm.recurrent(*[g[:, :, 12:] for g in gates], R, initial_state=st1,
                              return_state=True)
    cat = np.concatenate if backend == "numpy" else torch.cat
    assert rel_err(cat([h1, h2], 2), h_full) < 1e-13
    for a, b in zip(st2, st_full):
        assert rel_err(a, b) < 1e-13


def test_heads_are_independent():
    *gates, R = slstm_inputs(NH=3, S=15)
    h = slstm.recurrent(*gates, R)
    gates2 = [g.clone() for g in gates]
    gates2[2][:, 0] += 1.0  # change head 0's cell input only
    h2 = slstm.recurrent(*gates2, R)
    assert (h2[:, 0] - h[:, 0]).abs().max() > 1e-3
    assert torch.equal(h2[:, 1:], h[:, 1:])


def test_very_negative_first_input_gate_gives_no_nan():
    """m_0 = -inf: the first step sets m = igate_preact, so n > 0 even for igate_preact = -1000."""
    *gates, R = slstm_inputs(S=5)
    gates[0][:, :, 0] = -1000.0
    for args in (gates, to_numpy(gates)):
        h = slstm.recurrent(*args, None)
        assert np.isfinite(np.asarray(h)).all()


def test_gradcheck():
    args = [x.requires_grad_(True) for x in slstm_inputs(B=1, NH=2, S=6, DH=3, regime="hard")]
    assert torch.autograd.gradcheck(lambda *a: slstm.recurrent(*a), args)


def test_gradcheck_with_initial_state():
    *gates, R = slstm_inputs(B=1, NH=1, S=4, DH=2)
    init = [torch.randn(1, 1, 2, dtype=torch.float64) * 0.5, torch.randn(1, 1, 2, dtype=torch.float64),
            torch.rand(1, 1, 2, dtype=torch.float64) + 0.5, torch.zeros(1, 1, 2, dtype=torch.float64)]
    args = [x.requires_grad_(True) for x in (*gates, R, *init)]
    fn = lambda *a: slstm.recurrent(*a[:5], initial_state=a[5:])  # noqa: E731
    assert torch.autograd.gradcheck(fn, args)


def test_unstabilized_form_overflows_where_stabilized_does_not():
    *gates, _ = slstm_inputs(S=12)
    gates = [g.float().numpy() for g in gates]
    gates[0][:, :, 6] = 100.0  # exp(100) overflows float32
    naive = slstm.recurrent_unstabilized_numpy(*gates)
    assert not np.isfinite(naive).all()
    stable = slstm.recurrent(*gates)
    assert np.isfinite(stable).all()
    ref = slstm.recurrent(*[g.astype(np.float64) for g in gates])
    assert rel_err(stable, ref) < 1e-5
