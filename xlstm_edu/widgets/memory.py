"""An interactive view of the mLSTM matrix memory (chapter "mLSTM: matrix memory").

:func:`memory_explorer` stores ``N`` key-value pairs in one mLSTM memory and shows the memory matrix
``C`` and how well each pair comes back. Controls: the number of pairs, the forget-gate
pre-activation (how fast old pairs fade), the input-gate pre-activation of the newest pair (how
strongly it is written) and the kind of keys.

It is a self-contained HTML explorer (:mod:`xlstm_edu.widgets._html`): ``memory.js`` runs the writes
and reads of :func:`xlstm_edu.experiments.mlstm_memory.store_and_retrieve` in the browser, on the
pairs that :func:`~xlstm_edu.experiments.mlstm_memory.make_pairs` draws here; :func:`reference` gives
what :func:`~xlstm_edu.experiments.mlstm_memory.explorer_data` computes for the same settings.
"""

from __future__ import annotations

import inspect

from .._checks import check_int
from ..experiments import mlstm_memory as mm
from ._html import Control, Explorer, finite_or_none, load_js

#: The series the explorer draws, as ``explorer_data`` names them (``C`` as a heatmap).
SERIES = ("C", "relative_error", "forgetting_only")

KEYS = ("one-hot", "random")


def memory_explorer(d=16, seed=0):
    """Controls for the number of pairs (1 to ``2 d``), the forget pre-activation, the newest pair's
    input pre-activation and the key type; redraws the memory ``C`` and the per-pair retrieval error
    in the browser.

    Returns an :class:`~xlstm_edu.widgets._html.Explorer` (shown as HTML by Jupyter and the book).
    """
    check_int("d", d, minimum=1, maximum=64)
    check_int("seed", seed, minimum=0)
    controls = [
        Control("n_pairs", "stored pairs N", 1, 2 * d, 1, d // 2 or 1),
        Control("fgate_preact", "forget pre-activation", -2.0, 12.0, 0.25, 3.0),
        Control("newest_igate_preact", "input pre-act. of newest pair", -4.0, 6.0, 0.25, 0.0),
        Control("keys", "keys", options=KEYS, value="one-hot"),
    ]
    pairs = {}
    for kind in KEYS:  # the first pairs of make_pairs do not depend on how many are drawn
        k, v = mm.make_pairs(d, 2 * d, kind, seed)
        pairs[kind] = dict(keys=k.tolist(), values=v.tolist())
    eps = inspect.signature(mm.store_and_retrieve).parameters["eps"].default
    data = dict(pairs=pairs, eps=eps, read_fgate_preact=mm.READ_FGATE_PREACT)
    return Explorer("memory", dict(d=d, seed=seed), controls, data, load_js("memory.js"),
                    title="Key-value pairs in one mLSTM memory")


def reference(settings: dict) -> dict:
    """The drawn series for ``settings`` (keyword arguments of ``explorer_data``), from the package:
    ``{name: list}`` (``C`` as a nested list of rows)."""
    data = mm.explorer_data(**settings)
    return {name: finite_or_none(data[name]) for name in SERIES}
