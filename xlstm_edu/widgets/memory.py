"""An interactive view of the mLSTM matrix memory (chapter "mLSTM: matrix memory").

:func:`memory_explorer` stores ``N`` key-value pairs in the package's mLSTM cell (through
:func:`xlstm_edu.experiments.mlstm_memory.store_and_retrieve`) and shows the memory matrix ``C`` and
how well each pair comes back. Sliders: the number of pairs, the forget-gate pre-activation (how fast
old pairs fade) and the input-gate pre-activation of the newest pair (how strongly it is written).

ipywidgets and matplotlib are imported inside the functions, so ``import xlstm_edu`` does not need them.
"""

from __future__ import annotations

import numpy as np

from ..experiments.mlstm_memory import (
    cosine_distance,
    memory_matrix,
    random_unit_vectors,
    relative_error,
    store_and_retrieve,
)


def make_pairs(d, n_pairs, keys="one-hot", seed=0):
    """Keys ``(n_pairs, d)`` and values ``(n_pairs, d)`` for the explorer.

    ``keys="one-hot"``: pair ``j`` has key ``e_{j mod d}`` (orthogonal while ``n_pairs <= d``; after
    that, pair ``j + d`` shares its key with pair ``j`` and the two values add up in the same row of C).
    ``keys="random"``: random unit keys. Values are random unit vectors. The first pairs do not depend on
    ``n_pairs``, so adding pairs keeps the old ones.
    """
    if keys not in ("one-hot", "random"):
        raise ValueError(f"keys must be 'one-hot' or 'random', got {keys!r}")
    rng = np.random.default_rng(seed)
    # Draw a fixed pool (4d pairs, or more if asked) so the first pairs never change with n_pairs.
    pool = max(4 * d, n_pairs)
    values = random_unit_vectors((pool, d), rng)[:n_pairs]
    if keys == "one-hot":
        k = np.eye(d)[np.arange(n_pairs) % d]
    else:
        k = random_unit_vectors((pool, d), rng)[:n_pairs]
    return k, values


def explorer_data(d=16, n_pairs=8, fgate_preact=3.0, newest_igate_preact=0.0, keys="one-hot", seed=0):
    """Store ``n_pairs`` pairs (input gate pre-activation 0, the newest one ``newest_igate_preact``;
    forget pre-activation ``fgate_preact`` for all), read each back with its key.

    Returns a dict with ``C (d, d)`` (the memory in true units, rows = key dims, columns = value dims),
    ``relative_error (n_pairs,)``, ``cosine_distance (n_pairs,)``, ``age (n_pairs,)`` (writes after
    pair ``j``: ``n_pairs - 1 - j``) and ``forget`` (``sigmoid(fgate_preact)``).
    """
    k, v = make_pairs(d, n_pairs, keys, seed)
    i_pre = np.zeros(n_pairs)
    i_pre[-1] = newest_igate_preact
    retrieved, state = store_and_retrieve(k, v, igate_preact=i_pre, fgate_preact=fgate_preact,
                                          return_state=True)
    return dict(
        C=memory_matrix(state),
        relative_error=relative_error(retrieved, v),
        cosine_distance=cosine_distance(retrieved, v),
        age=np.arange(n_pairs)[::-1],
        forget=1.0 / (1.0 + np.exp(-fgate_preact)),
    )


def plot_memory(data, fig=None):
    """Heatmap of ``C`` and a bar chart of the retrieval error per pair (from :func:`explorer_data`)."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(10, 3.8))
    ax_c, ax_e = fig.subplots(1, 2, gridspec_kw=dict(width_ratios=[1, 1.4]))
    C = data["C"]
    lim = max(float(np.abs(C).max()), 1e-12)
    im = ax_c.imshow(C, cmap="RdBu_r", vmin=-lim, vmax=lim)
    fig.colorbar(im, ax=ax_c, fraction=0.046, pad=0.04)
    ax_c.set(title="memory C  (rows: key dims, columns: value dims)", xlabel="value dimension",
             ylabel="key dimension")
    ax_c.title.set_fontsize(9)
    n = len(data["relative_error"])
    idx = np.arange(n)
    ax_e.bar(idx, data["relative_error"], color="tab:blue", label=r"$\|h_j - v_j\| / \|v_j\|$")
    ax_e.plot(idx, 1.0 - data["forget"] ** data["age"], "k.--", lw=1, ms=4,
              label=r"forgetting alone: $1 - f^{\mathrm{age}}$")
    ax_e.set(xlabel="pair j (0 = oldest, right = newest)", ylabel="retrieval error",
             ylim=(0, max(1.2, 1.05 * float(np.max(data["relative_error"])))),
             title=f"retrieval error per pair   (f = sigmoid(preact) = {data['forget']:.4f})")
    ax_e.title.set_fontsize(9)
    ax_e.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def memory_explorer(d=16, seed=0):
    """Sliders for the number of pairs, the forget pre-activation and the newest pair's input
    pre-activation, plus a key type; redraws the memory ``C`` and the per-pair retrieval error.

    The figure is drawn once at construction, so a static page shows it; the sliders respond only
    with a live kernel. Returns the ipywidgets ``VBox``.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt
    from IPython.display import display

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
        fig = plot_memory(data)
        with out:
            out.clear_output(wait=True)
            display(fig)
        plt.close(fig)

    for w in (n_pairs, fgate, igate, keys):
        w.observe(update, names="value")
    update()
    return widgets.VBox([n_pairs, fgate, igate, keys, out])
