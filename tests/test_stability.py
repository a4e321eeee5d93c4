"""Stability: pre-activations up to +-1e3 in float32 stay finite and close to a float64 run."""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xlstm_edu import gating, mlstm, slstm

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
extreme = st.floats(-1e3, 1e3, allow_nan=False, width=32)


def gate_arrays(shape):
    return hnp.arrays(np.float32, shape, elements=extreme)


@SETTINGS
@given(data=st.data(), S=st.integers(1, 24))
def test_slstm_extreme_gates_float32_close_to_float64(data, S):
    B, NH, DH = 1, 2, 3
    i_pre = data.draw(gate_arrays((B, NH, S, DH)))
    f_pre = data.draw(gate_arrays((B, NH, S, DH)))
    rng = np.random.default_rng(S)
    z_pre, o_pre = (rng.standard_normal((B, NH, S, DH)).astype(np.float32) for _ in range(2))
    R = (0.3 * rng.standard_normal((NH, DH, 4, DH))).astype(np.float32)
    args32 = (i_pre, f_pre, z_pre, o_pre, R)
    ref = slstm.recurrent_numpy(*[a.astype(np.float64) for a in args32])[0]
    for h in (slstm.recurrent(*args32), slstm.recurrent(*map(torch.from_numpy, args32)).numpy()):
        assert np.isfinite(h).all()
        np.testing.assert_allclose(h, ref, atol=2e-4)  # |h| <= 1: a weighted average of tanh


@SETTINGS
@given(data=st.data(), S=st.integers(1, 24), chunk_size=st.integers(1, 9))
def test_mlstm_extreme_gates_float32_close_to_float64(data, S, chunk_size):
    """q and k are positive so that h is a weighted average of the values (no cancellation in
    the normalizer): then float32 must be close to float64 in every form."""
    B, NH, D = 1, 2, 4
    i_pre = data.draw(gate_arrays((B, NH, S)))
    f_pre = data.draw(gate_arrays((B, NH, S)))
    rng = np.random.default_rng(S)
    q, k = (rng.uniform(0.1, 1.0, (B, NH, S, D)).astype(np.float32) for _ in range(2))
    v = rng.standard_normal((B, NH, S, D)).astype(np.float32)
    args32 = (q, k, v, i_pre, f_pre)
    args64 = [a.astype(np.float64) for a in args32]
    t32 = [torch.from_numpy(a) for a in args32]
    t64 = [torch.from_numpy(a) for a in args64]
    pairs = [
        (mlstm.recurrent(*args32), mlstm.recurrent_numpy(*args64)[0]),
        (mlstm.recurrent(*t32).numpy(), mlstm.recurrent_numpy(*args64)[0]),
        (mlstm.parallel(*t32).numpy(), mlstm.parallel(*t64).numpy()),
        (mlstm.chunkwise(*t32, chunk_size=chunk_size).numpy(),
         mlstm.chunkwise(*t64, chunk_size=chunk_size).numpy()),
    ]
    scale = np.abs(v).max()
    for h32, h64 in pairs:
        assert np.isfinite(h32).all()
        np.testing.assert_allclose(h32, h64, atol=1e-4 * scale)


@SETTINGS
@given(i_pre=st.floats(-1e3, 1e3), f_pre=st.floats(-1e3, 1e3), m_prev=st.floats(-1e3, 1e3))
def test_stabilized_gates_are_bounded(i_pre, f_pre, m_prev):
    for to in (np.float32, np.float64):
        i_act, f_act, m = gating.stabilized_gates(to(i_pre), gating.log_sigmoid(to(f_pre)), to(m_prev))
        assert 0.0 <= i_act <= 1.0 and 0.0 <= f_act <= 1.0 and np.isfinite(m)
        assert max(i_act, f_act) > 0.0  # one of them is exp(0) = 1 unless rounding: never both 0


def test_unstabilized_gates_overflow_in_float32_and_float16():
    for dtype, big in ((np.float32, 89.0), (np.float16, 12.0)):
        i_act, _ = gating.unstabilized_gates(np.array([big], dtype), np.array([0.0], dtype))
        assert np.isinf(i_act).all()
        i_ok, _, _ = gating.stabilized_gates(np.array([big], dtype), np.array([0.0], dtype),
                                             np.array([0.0], dtype))
        assert np.isfinite(i_ok).all()
