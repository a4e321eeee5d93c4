"""Tests for xlstm_edu.figures.state_tracking: every figure draws exactly the data it is given and
names it (small synthetic inputs, Agg backend)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import legend_labels  # noqa: E402

from xlstm_edu.figures import state_tracking as fst  # noqa: E402

pytestmark = pytest.mark.usefixtures("close_figures")


def _curves():
    lengths = np.arange(1, 11)
    return {"model A": (lengths, np.linspace(1.0, 0.5, 10)),
            "model B": (lengths, np.full(10, 0.9), np.full(10, 0.8), np.full(10, 0.95))}


def test_accuracy_by_length_draws_the_curves_the_training_range_and_chance():
    curves = _curves()
    ax = fst.plot_accuracy_by_length(curves, max_train_length=4, chance=0.2)
    a, b, chance = ax.get_lines()
    np.testing.assert_array_equal(a.get_xdata(), curves["model A"][0])
    np.testing.assert_array_equal(a.get_ydata(), curves["model A"][1])
    np.testing.assert_array_equal(b.get_ydata(), curves["model B"][1])
    np.testing.assert_array_equal(chance.get_ydata(), [0.2, 0.2])
    span, band = ax.patches[0], ax.collections[0]
    if hasattr(span, "get_width"):  # a Rectangle (matplotlib >= 3.9)
        x0, x1 = span.get_x(), span.get_x() + span.get_width()
    else:  # a Polygon
        x0, x1 = span.get_xy()[:, 0].min(), span.get_xy()[:, 0].max()
    assert (x0, x1) == (pytest.approx(0.5), pytest.approx(4.5))  # lengths 1 ... 4
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(0.8) and ys.max() == pytest.approx(0.95)  # model B's band
    assert len(ax.collections) == 1  # model A has no band
    assert legend_labels(ax) == ["training lengths (up to 4)", "model A", "model B", "chance (0.20)"]


def test_accuracy_grid_has_a_panel_per_task_and_one_legend():
    curves = _curves()
    per_task = {"parity": curves, "cycle": curves, "third": curves}
    fig = fst.plot_accuracy_grid(per_task, max_train_length=4,
                                 chance={"parity": 0.5, "cycle": 0.2, "third": 1 / 3})
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == list(per_task)
    for ax, level in zip(visible, (0.5, 0.2, 1 / 3)):
        assert ax.get_lines()[-1].get_ydata()[0] == pytest.approx(level)
        assert ax.get_legend() is None
    assert len(fig.axes) == 4 and not fig.axes[3].get_visible()
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "training lengths (up to 4)", "model A", "model B"]


def test_state_trace_draws_the_values_coloured_by_the_label():
    x = np.array([0, 1, 1, 0, 1, 0])
    labels = np.cumsum(x) % 2
    values = np.array([-0.9, 0.8, -0.7, -0.8, 0.9, 0.95])
    fig = fst.plot_state_trace(x, labels, values, threshold=0.1, value_label="unit 3")
    ax_x, ax_h = fig.axes
    t = np.arange(1, 7)
    (parity,) = ax_x.get_lines()
    np.testing.assert_array_equal(parity.get_ydata(), labels)
    ticks = ax_x.collections[0].get_segments()  # one tick per symbol 1
    assert [seg[0][0] for seg in ticks] == [2, 3, 5]
    trace, threshold = ax_h.get_lines()
    np.testing.assert_array_equal(trace.get_xdata(), t)
    np.testing.assert_array_equal(trace.get_ydata(), values)
    np.testing.assert_array_equal(threshold.get_ydata(), [0.1, 0.1])
    zero, one = ax_h.collections
    np.testing.assert_array_equal(zero.get_offsets(), np.c_[t, values][labels == 0])
    np.testing.assert_array_equal(one.get_offsets(), np.c_[t, values][labels == 1])
    assert legend_labels(ax_h) == ["parity 0", "parity 1", "threshold 0.10"]
    assert ax_h.get_ylabel() == "unit 3"


def test_score_table_shows_every_number_and_the_colour_scale():
    scores = np.array([[1.0, 0.25, -0.1], [0.5, -0.001, 0.75]])
    ax = fst.plot_score_table(scores, ["m1", "m2"], ["t1", "t2", "t3"])
    np.testing.assert_array_equal(ax.images[0].get_array(), scores)
    assert ax.images[0].get_clim() == (0.0, 1.0)
    assert [t.get_text() for t in ax.texts] == ["1.00", "0.25", "-0.10", "0.50", "0.00", "0.75"]
    assert [t.get_position() for t in ax.texts][2] == (2, 0)  # column, row
    assert [t.get_text() for t in ax.get_xticklabels()] == ["t1", "t2", "t3"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["m1", "m2"]
    colorbar = ax.images[0].colorbar
    assert colorbar is not None and colorbar.ax.get_ylabel() == "scaled accuracy"
    assert ax.texts[0].get_color() == "k" and ax.texts[1].get_color() == "w"  # readable on both


def test_score_table_rejects_labels_of_the_wrong_length():
    with pytest.raises(ValueError, match="shape"):
        fst.plot_score_table(np.zeros((2, 3)), ["m1"], ["t1", "t2", "t3"])
