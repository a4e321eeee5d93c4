"""An interactive view of exponential gating and the stabilizer (chapter "Exponential gating and the
stabilizer").

:func:`gate_explorer` shows one scalar sLSTM cell over ``S`` steps: the gate pre-activations, the
stabilizer ``m_t`` with ``log n_t``, the stored (stabilized) states and the output ``h_t``, next to the
textbook (unstabilized) form in a chosen float type. Controls: input-gate offset and noise, a spike of
the input gate at one step, the forget-gate pre-activation and the float type of the textbook form.

It is a self-contained HTML explorer (:mod:`xlstm_edu.widgets._html`): ``gate.js`` recomputes the
figure in the browser. The noise comes from :func:`xlstm_edu.experiments.gating.gate_traces` itself,
and :func:`reference` gives what that function computes for the same settings (the tests compare).
"""

from __future__ import annotations

from .._checks import check_int
from ..experiments import gating as eg
from ._html import Control, Explorer, finite_or_none, load_js

#: The series the explorer draws, as ``gate_traces`` names them (``trace`` entries unpacked).
SERIES = ("igate_preact", "fgate_preact", "z", "m", "log_n_true", "c", "n", "h", "h_textbook")


def gate_explorer(S=24, seed=0):
    """Controls for the gate pre-activations of a scalar sLSTM cell over ``S`` steps; redraws ``c``,
    ``n``, ``m`` and ``h`` (stabilized) and the textbook ``h`` (float64/float32/float16) in the browser.

    Returns an :class:`~xlstm_edu.widgets._html.Explorer` (shown as HTML by Jupyter and the book).
    """
    check_int("S", S, minimum=2, maximum=200)
    check_int("seed", seed, minimum=0)
    noise = eg.gate_traces(S=S, seed=seed, igate_offset=0.0, igate_noise=1.0, spike_height=0.0)
    controls = [
        Control("igate_offset", "input pre-act. offset", -20.0, 100.0, 0.5, 0.0),
        Control("igate_noise", "input pre-act. noise (std)", 0.0, 10.0, 0.25, 1.0),
        Control("spike_step", "spike at step", 0, S - 1, 1, S // 3),
        Control("spike_height", "spike height", -50.0, 120.0, 1.0, 10.0),
        Control("fgate_preact", "forget pre-activation", -5.0, 12.0, 0.25, 3.0),
        Control("textbook_dtype", "textbook form in", options=("float64", "float32", "float16"),
                value="float32"),
    ]
    data = dict(eps=noise["igate_preact"].tolist(),  # offset 0 + noise 1 * eps: eps itself
                zgate_preact=noise["zgate_preact"].tolist(), ogate_preact=eg.GATE_OPEN)
    return Explorer("gate", dict(S=S, seed=seed), controls, data, load_js("gate.js"),
                    title="One sLSTM cell: stabilized, and the textbook form")


def reference(settings: dict) -> dict:
    """The drawn series for ``settings`` (keyword arguments of ``gate_traces``), from the package:
    ``{name: list}`` with ``None`` for NaN and infinities."""
    data = eg.gate_traces(**settings)
    flat = {**{k: data[k] for k in ("igate_preact", "fgate_preact", "z", "h_textbook")},
            **data["trace"]}
    return {name: finite_or_none(flat[name]) for name in SERIES}
