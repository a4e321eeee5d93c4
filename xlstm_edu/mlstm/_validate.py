"""Argument checks shared by the three mLSTM forms."""

from __future__ import annotations

from .._checks import (
    backend_of,
    check_float,
    check_ndim,
    check_same_dtype,
    check_shape,
)


def validate_qkv_gates(q, k, v, igate_preact, fgate_preact, initial_state=None) -> str:
    """Check the mLSTM inputs and return the backend (``"numpy"`` or ``"torch"``)."""
    state = tuple(initial_state) if initial_state is not None else ()
    if initial_state is not None and len(state) != 3:
        raise ValueError(
            "initial_state must be a tuple (c_state, n_state, m_state), "
            f"got {len(state)} elements"
        )
    names = dict(c_state=None, n_state=None, m_state=None)
    names.update(zip(names, state))
    backend = backend_of(q=q, k=k, v=v, igate_preact=igate_preact, fgate_preact=fgate_preact,
                         **names)
    check_ndim("q", q, 4, "(B, NH, S, DHQK)")
    B, NH, S, DHQK = q.shape
    if min(B, NH, S, DHQK) < 1:
        raise ValueError(f"q must have non-empty dimensions (B, NH, S, DHQK), got {tuple(q.shape)}")
    check_shape("k", k, (B, NH, S, DHQK), "(B, NH, S, DHQK)")
    check_ndim("v", v, 4, "(B, NH, S, DHV)")
    DHV = v.shape[-1]
    check_shape("v", v, (B, NH, S, DHV), "(B, NH, S, DHV)")
    check_shape("igate_preact", igate_preact, (B, NH, S), "(B, NH, S)")
    check_shape("fgate_preact", fgate_preact, (B, NH, S), "(B, NH, S)")
    if initial_state is not None:
        check_shape("c_state", state[0], (B, NH, DHQK, DHV), "(B, NH, DHQK, DHV)")
        check_shape("n_state", state[1], (B, NH, DHQK), "(B, NH, DHQK)")
        check_shape("m_state", state[2], (B, NH), "(B, NH)")
    arrays = dict(q=q, k=k, v=v, igate_preact=igate_preact, fgate_preact=fgate_preact, **names)
    for name, a in arrays.items():
        if a is not None:
            check_float(name, a)
    check_same_dtype(**arrays)
    return backend
