"""Argument checks shared by the mLSTM forms and the single step."""

from __future__ import annotations

from .._checks import (
    backend_of,
    check_float,
    check_ndim,
    check_same_dtype,
    check_shape,
)

STATE_NAMES = ("c_state", "n_state", "m_state")


def _state_dict(initial_state) -> dict:
    state = tuple(initial_state) if initial_state is not None else ()
    if initial_state is not None and len(state) != 3:
        raise ValueError(
            "initial_state must be a tuple (c_state, n_state, m_state), "
            f"got {len(state)} elements"
        )
    return dict(zip(STATE_NAMES, state))


def _check_values(arrays: dict) -> None:
    """Floating dtypes and finite values; ``m_state = -inf`` is the empty state (no stabilizer yet)."""
    for name, a in arrays.items():
        if a is not None:
            check_float(name, a, allow_neg_inf=name == "m_state")
    check_same_dtype(**arrays)


def validate_qkv_gates(q, k, v, igate_preact, fgate_preact, initial_state=None) -> str:
    """Check the inputs of a form over a sequence and return the backend (``"numpy"`` or ``"torch"``)."""
    states = _state_dict(initial_state)
    arrays = dict(q=q, k=k, v=v, igate_preact=igate_preact, fgate_preact=fgate_preact, **states)
    backend = backend_of(**arrays)
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
    _check_state_shapes(states, B, NH, DHQK, DHV)
    _check_values(arrays)
    return backend


def validate_step(c_state, n_state, m_state, q, k, v, igate_preact, fgate_preact) -> str:
    """Check the inputs of one step (no time axis) and return the backend."""
    states = dict(c_state=c_state, n_state=n_state, m_state=m_state)
    arrays = dict(q=q, k=k, v=v, igate_preact=igate_preact, fgate_preact=fgate_preact, **states)
    for name, a in arrays.items():
        if a is None:
            raise ValueError(f"{name} is required for a step (start from mlstm.zero_state)")
    backend = backend_of(**arrays)
    check_ndim("q", q, 3, "(B, NH, DHQK)")
    B, NH, DHQK = q.shape
    if min(B, NH, DHQK) < 1:
        raise ValueError(f"q must have non-empty dimensions (B, NH, DHQK), got {tuple(q.shape)}")
    check_shape("k", k, (B, NH, DHQK), "(B, NH, DHQK)")
    check_ndim("v", v, 3, "(B, NH, DHV)")
    DHV = v.shape[-1]
    check_shape("v", v, (B, NH, DHV), "(B, NH, DHV)")
    check_shape("igate_preact", igate_preact, (B, NH), "(B, NH)")
    check_shape("fgate_preact", fgate_preact, (B, NH), "(B, NH)")
    _check_state_shapes(states, B, NH, DHQK, DHV)
    _check_values(arrays)
    return backend


def _check_state_shapes(states: dict, B: int, NH: int, DHQK: int, DHV: int) -> None:
    expected = {"c_state": ((B, NH, DHQK, DHV), "(B, NH, DHQK, DHV)"),
                "n_state": ((B, NH, DHQK), "(B, NH, DHQK)"), "m_state": ((B, NH), "(B, NH)")}
    for name, s in states.items():
        check_shape(name, s, *expected[name])
