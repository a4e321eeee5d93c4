"""An interactive view of exponential gating and the stabilizer (chapter "Exponential gating and the
stabilizer").

:func:`gate_explorer` runs one scalar sLSTM cell (the package's :func:`xlstm_edu.slstm.step_numpy`,
through :func:`xlstm_edu.experiments.gating.gate_traces`) and plots the gate pre-activations, the
stabilizer ``m_t`` with ``log n_t``, the stored (stabilized) states and the output ``h_t``, next to the
textbook (unstabilized) form in a chosen float type. Sliders: input-gate offset and noise, a spike of
the input gate at one step, and the forget-gate pre-activation.

ipywidgets is imported inside the function, so ``import xlstm_edu`` does not need it; the figure is
:func:`xlstm_edu.figures.gating.plot_gate_traces`.
"""

from __future__ import annotations

from ..experiments.gating import gate_traces
from ..figures import show_in_output
from ..figures.gating import plot_gate_traces


def gate_explorer(S=24, seed=0):
    """Sliders for the gate pre-activations of a scalar sLSTM cell over ``S`` steps; redraws ``c``,
    ``n``, ``m`` and ``h`` (stabilized) and the textbook ``h`` (float64/float32/float16).

    The figure is drawn once at construction, so a static page shows it; the sliders respond only
    with a live kernel (Jupyter, Colab). Returns the ipywidgets ``VBox``.
    """
    import ipywidgets as widgets

    style = dict(description_width="210px")
    layout = widgets.Layout(width="520px")
    offset = widgets.FloatSlider(value=0.0, min=-20.0, max=100.0, step=0.5,
                                 description="input pre-act. offset", style=style, layout=layout)
    noise = widgets.FloatSlider(value=1.0, min=0.0, max=10.0, step=0.25,
                                description="input pre-act. noise (std)", style=style, layout=layout)
    spike_step = widgets.IntSlider(value=S // 3, min=0, max=S - 1,
                                   description="spike at step", style=style, layout=layout)
    spike_height = widgets.FloatSlider(value=10.0, min=-50.0, max=120.0, step=1.0,
                                       description="spike height", style=style, layout=layout)
    fgate = widgets.FloatSlider(value=3.0, min=-5.0, max=12.0, step=0.25,
                                description="forget pre-act.", style=style, layout=layout)
    dtype = widgets.ToggleButtons(options=["float64", "float32", "float16"], value="float32",
                                  description="textbook form in", style=dict(description_width="210px"))
    out = widgets.Output()

    def update(_change=None):
        data = gate_traces(S=S, seed=seed, igate_offset=offset.value, igate_noise=noise.value,
                           spike_step=spike_step.value, spike_height=spike_height.value,
                           fgate_preact=fgate.value, textbook_dtype=dtype.value)
        show_in_output(plot_gate_traces(data), out)

    controls = (offset, noise, spike_step, spike_height, fgate, dtype)
    for w in controls:
        w.observe(update, names="value")
    update()
    return widgets.VBox([*controls, out])
