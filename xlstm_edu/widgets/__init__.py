"""The book's explorers: self-contained HTML with controls and an SVG figure that the browser redraws
(no kernel, no network; :mod:`xlstm_edu.widgets._html` has the mechanism and the contract).

* :func:`~xlstm_edu.widgets.gating.gate_explorer` (chapter "Exponential gating and the stabilizer");
* :func:`~xlstm_edu.widgets.memory.memory_explorer` (chapter "mLSTM: matrix memory");
* :func:`~xlstm_edu.widgets.forecasting.horizon_explorer` (chapter "Forecasting with xLSTM").

:func:`reference` computes, with the package, what an explorer draws for given settings; the tests
compare it with what the explorer's JavaScript computes.
"""

from __future__ import annotations

from . import forecasting, gating, memory

#: Explorer name (the root's ``data-explorer``) -> function ``settings -> {series: list}``.
REFERENCES = {"gate": gating.reference, "memory": memory.reference,
              "forecast_horizon": forecasting.reference}


def reference(explorer_name: str, settings: dict) -> dict:
    """The series explorer ``explorer_name`` draws for ``settings`` (the root's ``data-settings``),
    computed by the package: ``{series_name: list}`` (NaN and infinities as ``None``)."""
    if explorer_name not in REFERENCES:
        raise ValueError(f"unknown explorer {explorer_name!r}; known: {sorted(REFERENCES)}")
    return REFERENCES[explorer_name](dict(settings))


__all__ = ["REFERENCES", "reference"]
