"""Tests of xlstm_edu.experiments.min_rnn (tiny synthetic data) and xlstm_edu.figures.minrnn."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from xlstm_edu.data import CharTokenizer  # noqa: E402
from xlstm_edu.experiments import language_model as lm  # noqa: E402
from xlstm_edu.experiments import min_rnn  # noqa: E402
from xlstm_edu.experiments.registry import EXPERIMENTS  # noqa: E402
from xlstm_edu.figures import minrnn as fig_minrnn  # noqa: E402
from xlstm_edu.figures._style import readability_problems  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread", "close_figures")

TINY = dict(target_params=20_000, size_rtol=0.3, context_length=16, batch_size=2, steps=3, n_evals=1,
            n_val_windows=4, generate_tokens=3, time_rounds=1, time_repeats=1, scan_lengths=(8, 16),
            scan_batch=1, scan_dim=4, scan_rounds=1, full_validation=False)


@pytest.fixture(scope="module")
def data() -> lm.LMData:
    text = "the quick brown fox jumps over the lazy dog. " * 40
    tok = CharTokenizer.fit(text, unknown="replace")
    ids = torch.from_numpy(tok.encode_array(text))
    return lm.LMData(ids[:1400], ids[1400:], tok)


@pytest.fixture(scope="module")
def result(data):
    settings, rows = min_rnn.run(quick=True, data=data, settings=TINY, progress=False)
    for row in rows:  # flat rows of numbers and strings (the stored file is validated elsewhere)
        assert {"metric", "value"} <= set(row)
        assert all(isinstance(v, (int, float, str)) for v in row.values()), row
    assert settings["scan_lengths"] == [8, 16]
    return {"settings": settings, "results": rows}


def test_registered():
    spec = EXPERIMENTS["min-rnn"]
    assert spec.module == "xlstm_edu.experiments.min_rnn" and spec.chapter == "12_minimal_rnns"


def test_matched_models_are_near_the_target():
    configs = min_rnn.matched_models(60, 50_000, context_length=32)
    assert list(configs) == list(min_rnn.MODEL_NAMES)
    for name, (_, n) in configs.items():
        assert abs(n - 50_000) <= 0.1 * 50_000, name
    assert configs["minGRU"][0].cell == "mingru" and configs["minLSTM"][0].cell == "minlstm"


def test_rows_cover_every_model_and_length(result):
    table = min_rnn.tradeoff_table(result)
    assert list(table) == list(min_rnn.MODEL_NAMES)
    for name, r in table.items():
        for metric in ("params", "final_val_bits_per_char", "tokens_per_s", "generate_s",
                       "train_saved_mib"):
            assert np.isfinite(r[metric]) and r[metric] > 0, (name, metric)
        assert r["steps"] == TINY["steps"]
        assert r["final_val_bits_per_char"] == pytest.approx(r["final_val_loss"] / np.log(2))
    scaling = min_rnn.scaling_table(result)
    assert set(scaling) == {"mingru", "minlstm"}
    for rows in scaling.values():
        assert sorted(rows) == [8, 16]
        for r in rows.values():
            assert r["speedup"] == pytest.approx(r["sequential"] / r["parallel"])
            assert r["speedup_sliced"] == pytest.approx(r["sequential_sliced"] / r["parallel"])
    text = min_rnn.format_tradeoff(table)
    assert all(len(line) <= 88 for line in text.splitlines())
    assert "minLSTM" in text and "xLSTM[0:1]" in text


def test_saved_memory_grows_with_the_sequence(data):
    """Counted, not measured: a longer training window saves more for the backward pass."""
    torch.manual_seed(0)
    models = {"m": min_rnn.build_model(min_rnn.make_config("minLSTM", 8, data.vocab_size,
                                                           context_length=16))}
    short, long = (min_rnn.costs(models, data.vocab_size, batch_size=2, context_length=S,
                                 generate_tokens=2, rounds=1, repeats=1)["m"]["train_saved_mib"]
                   for S in (8, 32))
    assert long > 3 * short


def test_scan_scaling_figure_draws_the_table(result):
    table = min_rnn.scaling_table(result)
    fig = fig_minrnn.plot_scan_scaling(table, target=20)
    ax_t, ax_r = fig.axes
    lines = ax_t.get_lines()
    assert len(lines) == 6  # 2 cells x (scan, loop, sliced loop)
    for j, form in enumerate(min_rnn.SCAN_FORMS):
        np.testing.assert_array_equal(lines[j].get_xdata(), [8, 16])
        np.testing.assert_allclose(lines[j].get_ydata(),
                                   [table["mingru"][s][form] for s in (8, 16)])
    ratios = ax_r.get_lines()
    np.testing.assert_allclose(ratios[2].get_ydata(),
                               [table["minlstm"][s]["speedup"] for s in (8, 16)])
    np.testing.assert_allclose(ratios[3].get_ydata(),
                               [table["minlstm"][s]["speedup_sliced"] for s in (8, 16)])
    assert ratios[4].get_ydata()[0] == 20
    assert readability_problems(fig) == []


def test_tradeoff_figure_draws_the_table(result):
    table = min_rnn.tradeoff_table(result)
    fig = fig_minrnn.plot_tradeoff(table)
    (ax,) = fig.axes
    points = {line.get_label(): (line.get_xdata()[0], line.get_ydata()[0]) for line in ax.get_lines()}
    assert set(points) == set(table)
    for name, r in table.items():
        assert points[name] == pytest.approx((r["tokens_per_s"], r["final_val_bits_per_char"]))
    assert readability_problems(fig) == []


def test_bad_model_name():
    with pytest.raises(ValueError, match="name"):
        min_rnn.make_config("GRU", 16, 20, context_length=8)
