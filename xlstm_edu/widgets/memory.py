"""An interactive view of the mLSTM matrix memory (chapter "mLSTM: matrix memory").

:func:`memory_explorer` stores ``N`` key-value pairs in the package's mLSTM cell (through
:func:`xlstm_edu.experiments.mlstm_memory.store_and_retrieve`) and shows the memory matrix ``C`` and
how well each pair comes back. Sliders: the number of pairs, the forget-gate pre-activation (how fast
old pairs fade) and the input-gate pre-activation of the newest pair (how strongly it is written).

The data come from :func:`xlstm_edu.experiments.mlstm_memory.explorer_data`, the figure from
:func:`xlstm_edu.figures.mlstm.plot_memory`. ipywidgets is imported inside the function, so
``import xlstm_edu`` does not need it.
"""

from __future__ import annotations

from ..experiments.mlstm_memory import explorer_data
from ..figures import show_in_output
from ..figures.mlstm import plot_memory


def memory_explorer(d=16, seed=0):
    """Sliders for the number of pairs, the forget pre-activation and the newest pair's input
    pre-activation, plus a key type; redraws the memory ``C`` and the per-pair retrieval error.

    The figure is drawn once at construction, so a static page shows it; the sliders respond only
    with a live kernel. Returns the ipywidgets ``VBox``.
    """
    import ipywidgets as widgets

    style = dict(description_width="200px")
    layout = widgets.Layout(width="480px")
    n_pairs = widgets.IntSlider(value=d // 2, min=1, max=2 * d, description="stored pairs N",
                                style=style, layout=layout)
    fgate = widgets.FloatSlider(value=3.0, min=-2.0, max=12.0, step=0.25,
                                description="forget pre-activation", style=style, layout=layout)
    igate = widgets.FloatSlider(value=0.0, min=-4.0, max=6.0, step=0.25,
                                description="input pre-act. of newest pair", style=style, layout=layout)
    keys = widgets.ToggleButtons(options=["one-hot", "random"], value="one-hot", description="keys",
                                 style=dict(description_width="200px"))
    out = widgets.Output()

    def update(_change=None):
        data = explorer_data(d, n_pairs.value, fgate.value, igate.value, keys.value, seed)
        show_in_output(plot_memory(data), out)

    for w in (n_pairs, fgate, igate, keys):
        w.observe(update, names="value")
    update()
    return widgets.VBox([n_pairs, fgate, igate, keys, out])
