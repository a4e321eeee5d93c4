"""Tests for xlstm_edu.figures.recall: every figure draws exactly the data it is given and names it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import legend_labels  # noqa: E402

from xlstm_edu.figures import recall as fr  # noqa: E402

pytestmark = pytest.mark.usefixtures("close_figures")


_HISTORY = [{"step": 0, "accuracy": 0.02, "val_loss": 4.2},
            {"step": 50, "accuracy": 0.5, "val_loss": 2.0},
            {"step": 100, "accuracy": 0.9, "val_loss": 0.3}]


def test_accuracy_lines_are_the_curves():
    curves = {"a": ([4, 8, 16], [1.0, 0.9, 0.5]), "b": ([4, 8], [0.1, 0.05])}
    ax = fr.plot_accuracy(curves, xlabel="pairs", chance=1 / 64, title="t")
    a, b, chance = ax.get_lines()
    np.testing.assert_array_equal(a.get_xdata(), [4, 8, 16])
    np.testing.assert_array_equal(a.get_ydata(), [1.0, 0.9, 0.5])
    np.testing.assert_array_equal(b.get_xdata(), [4, 8])
    np.testing.assert_array_equal(b.get_ydata(), [0.1, 0.05])
    assert chance.get_ydata()[0] == pytest.approx(1 / 64)
    assert legend_labels(ax) == ["a", "b", "chance (0.0156)"]
    assert ax.get_xscale() == "log" and list(ax.get_xticks()) == [4, 8, 16]
    assert ax.get_xlabel() == "pairs" and ax.get_title() == "t"
    assert ax.get_ylim()[0] < 0 < 1 < ax.get_ylim()[1]
    assert fr.plot_accuracy(curves, xlabel="x", logx=False).get_xscale() == "linear"


def test_accuracy_baselines_are_dashed_without_markers():
    ax = fr.plot_accuracy({"a": ([4, 8], [1.0, 0.9])}, xlabel="pairs",
                          baselines={"1/N": ([4, 8, 16], [0.25, 0.125, 0.0625])})
    a, base = ax.get_lines()
    np.testing.assert_array_equal(base.get_xdata(), [4, 8, 16])
    np.testing.assert_array_equal(base.get_ydata(), [0.25, 0.125, 0.0625])
    assert base.get_linestyle() == "--" and base.get_marker() in ("None", None, "")
    assert a.get_marker() == "o"
    assert legend_labels(ax) == ["a", "1/N"] and list(ax.get_xticks()) == [4, 8, 16]


def test_accuracy_refuses_mismatched_lengths():
    with pytest.raises(ValueError, match="3 x values but 2"):
        fr.plot_accuracy({"a": ([1, 2, 3], [0.5, 0.6])}, xlabel="x")


def test_capacity_panels_share_y():
    by_pairs = {"LSTM": ([4, 8], [0.2, 0.1]), "xLSTM[1:0]": ([4, 8], [1.0, 0.99])}
    by_dim = {"8 pairs": ([20, 40, 80], [0.3, 0.6, 0.9])}
    fig = fr.plot_capacity(by_pairs, by_dim, chance=0.5, titles=("p", "d"),
                           pairs_baselines={"1/N": ([4, 8], [0.25, 0.125])})
    ax_p, ax_d = fig.axes
    np.testing.assert_array_equal(ax_p.get_lines()[2].get_ydata(), [0.25, 0.125])
    assert (ax_p.get_title(), ax_d.get_title()) == ("p", "d")
    np.testing.assert_array_equal(ax_p.get_lines()[1].get_ydata(), [1.0, 0.99])
    np.testing.assert_array_equal(ax_d.get_lines()[0].get_xdata(), [20, 40, 80])
    np.testing.assert_array_equal(ax_d.get_lines()[0].get_ydata(), [0.3, 0.6, 0.9])
    assert legend_labels(ax_p) == ["LSTM", "xLSTM[1:0]", "1/N", "chance (0.5)"]
    assert legend_labels(ax_d) == ["8 pairs", "chance (0.5)"]
    assert ax_p.get_ylim() == ax_d.get_ylim()


def test_training_curves_draw_the_records():
    histories = {"a": _HISTORY, "b": _HISTORY[:2]}
    ax = fr.plot_training_curves(histories, key="val_loss", chance=np.log(64))
    a, b, chance = ax.get_lines()
    np.testing.assert_array_equal(a.get_xdata(), [0, 50, 100])
    np.testing.assert_array_equal(a.get_ydata(), [4.2, 2.0, 0.3])
    np.testing.assert_array_equal(b.get_ydata(), [4.2, 2.0])
    assert chance.get_ydata()[0] == pytest.approx(np.log(64))
    assert ax.get_ylabel() == "loss on the answers (nats)"
    assert legend_labels(ax)[:2] == ["a", "b"]


def test_training_figure_has_one_panel_per_key():
    fig = fr.plot_training({"a": _HISTORY}, keys=("accuracy", "val_loss"),
                           chance={"accuracy": 0.25}, title="T")
    ax_a, ax_l = fig.axes
    np.testing.assert_array_equal(ax_a.get_lines()[0].get_ydata(), [0.02, 0.5, 0.9])
    np.testing.assert_array_equal(ax_l.get_lines()[0].get_ydata(), [4.2, 2.0, 0.3])
    assert ax_a.get_lines()[1].get_ydata()[0] == 0.25
    assert len(ax_l.get_lines()) == 1  # no chance level given for the loss
    assert fig._suptitle.get_text() == "T"


def test_state_size_in_kib():
    sizes = {"xLSTM": ([16, 64], [2048, 2048]), "Transformer": ([16, 64], [1024, 4096])}
    ax = fr.plot_state_size(sizes, title="s")
    x, t = ax.get_lines()
    np.testing.assert_array_equal(x.get_xdata(), [16, 64])
    np.testing.assert_allclose(x.get_ydata(), [2.0, 2.0])
    np.testing.assert_allclose(t.get_ydata(), [1.0, 4.0])
    assert ax.get_xscale() == ax.get_yscale() == "log" and list(ax.get_xticks()) == [16, 64]
    assert legend_labels(ax) == ["xLSTM", "Transformer"] and ax.get_title() == "s"
