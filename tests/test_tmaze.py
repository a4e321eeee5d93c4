"""Tests for the T-maze (chapter 13 "Memory for agents"): the episodes, the memoryless and minLSTM
classifiers, the experiment and its figures."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from xlstm_edu import results
from xlstm_edu.data import tmaze as tm
from xlstm_edu.data.loader import IGNORE_INDEX
from xlstm_edu.experiments import tmaze as exp
from xlstm_edu.experiments.registry import EXPERIMENTS, run_experiment
from xlstm_edu.models.classifier import StepClassifier, StepClassifierConfig

matplotlib.use("Agg")


# --- episodes ----------------------------------------------------------------------------------------

def test_episodes_show_the_cue_only_at_step_0_and_ask_at_the_junction():
    x, y = tm.tmaze(64, 7, torch.Generator().manual_seed(0), num_corridor_symbols=3)
    assert x.shape == y.shape == (64, 9) and x.dtype == y.dtype == torch.long
    goal = y[:, -1]
    assert set(goal.tolist()) == {tm.LEFT, tm.RIGHT}
    assert torch.equal(x[:, 0], torch.where(goal == tm.LEFT, tm.CUE_LEFT, tm.CUE_RIGHT))
    corridor = x[:, 1:-1]
    assert corridor.min() >= tm.FIRST_CORRIDOR and corridor.max() < tm.vocab_size(3) == 6
    assert len(corridor.unique()) == 3  # the distractors vary
    assert (x[:, -1] == tm.JUNCTION).all()
    assert (y[:, :-1] == IGNORE_INDEX).all()  # one label per episode, at the junction
    # the cue is nowhere else: the corridor and the junction say nothing about the goal
    assert not torch.isin(x[:, 1:], torch.tensor([tm.CUE_LEFT, tm.CUE_RIGHT])).any()


def test_balanced_episodes_and_zero_length_corridor():
    x, y = tm.tmaze(10, 0, balanced=True)
    assert x.shape == (10, 2) and y[:, -1].tolist() == [0] * 5 + [1] * 5
    assert x[:, 1].eq(tm.JUNCTION).all()


def test_batches_draw_one_length_per_batch_within_the_range():
    sample = tm.tmaze_batches(4, 2, 5)
    g = torch.Generator().manual_seed(0)
    lengths = {sample(g)[0].shape[1] - 2 for _ in range(60)}
    assert lengths == {2, 3, 4, 5}


@pytest.mark.parametrize("call, match", [
    (lambda: tm.tmaze(0, 3), "batch_size"),
    (lambda: tm.tmaze(4, -1), "corridor_length"),
    (lambda: tm.tmaze(4, 3, num_corridor_symbols=0), "num_corridor_symbols"),
    (lambda: tm.tmaze(3, 3, balanced=True), "even batch_size"),
    (lambda: tm.tmaze_batches(4, 5, 2), "max_length"),
    (lambda: StepClassifierConfig("gru", 5, 2), "kind"),
    (lambda: StepClassifierConfig("memoryless", 5, 1), "num_classes"),
    (lambda: exp.make_agent("GRU"), "agent"),
    (lambda: exp.run(quick=True, settings={"agents": ("LSTM", "Mamba")}), "agent"),
    (lambda: exp.success_rate(exp.make_agent("LSTM"), 3, num_episodes=0), "num_episodes"),
])
def test_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_step_classifier_checks_tokens():
    model = StepClassifier(StepClassifierConfig("memoryless", 4, 2))
    with pytest.raises(ValueError, match="token ids"):
        model(torch.tensor([[0, 4]]))


# --- the agents --------------------------------------------------------------------------------------

def test_memoryless_agent_sees_only_the_current_observation():
    torch.manual_seed(0)
    model = StepClassifier(StepClassifierConfig("memoryless", tm.vocab_size(2), 2, width=16,
                                                num_layers=2))
    x, _ = tm.tmaze(8, 5, torch.Generator().manual_seed(1), num_corridor_symbols=2)
    out = model(x)
    alone = torch.cat([model(x[:, t:t + 1]) for t in range(x.shape[1])], dim=1)  # one step at a time
    torch.testing.assert_close(out, alone, rtol=0, atol=1e-6)
    # hence its answer at the junction is the same for both cues: success is exactly one half
    exp.train_agent(model, steps=30, max_length=4, num_corridor_symbols=2)
    assert exp.success_rate(model, 6, num_episodes=64, num_corridor_symbols=2) == 0.5


def minlstm_loop(k_f, k_i, k_h):
    """minLSTM as written (Feng et al. 2024, with the candidate through g): an independent reference."""
    f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
    f_n, i_n = f / (f + i), i / (f + i)
    g = torch.where(k_h >= 0, k_h + 0.5, torch.sigmoid(k_h))
    h, hs = torch.zeros_like(k_h[:, 0]), []
    for t in range(k_h.shape[1]):
        h = f_n[:, t] * h + i_n[:, t] * g[:, t]
        hs.append(h)
    return torch.stack(hs, 1)


def test_minlstm_agent_layer_is_the_minlstm_recurrence():
    pytest.importorskip("xlstm_edu.minrnn")
    torch.manual_seed(0)
    model = StepClassifier(StepClassifierConfig("minLSTM", 5, 2, width=8)).double()
    layer = model.layers[0]
    x = torch.randn(3, 11, 8, dtype=torch.float64)
    k_f, k_i, k_h = layer.proj(x).chunk(3, dim=-1)
    torch.testing.assert_close(layer(x), minlstm_loop(k_f, k_i, k_h), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("agent", exp.AGENT_NAMES)
def test_agents_are_causal(agent):
    if agent == "minLSTM":
        pytest.importorskip("xlstm_edu.minrnn")
    torch.manual_seed(0)
    model = exp.make_agent(agent, width=16, num_corridor_symbols=2).eval()
    x, _ = tm.tmaze(4, 6, torch.Generator().manual_seed(0), num_corridor_symbols=2)
    changed = x.clone()
    changed[:, 5:] = torch.where(x[:, 5:] == tm.FIRST_CORRIDOR, tm.FIRST_CORRIDOR + 1, tm.FIRST_CORRIDOR)
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert a.shape == (4, 8, 2)
    torch.testing.assert_close(a[:, :5], b[:, :5], rtol=0, atol=1e-6)  # the past does not see the future
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_lstm_learns_the_tmaze_and_the_memoryless_agent_cannot():
    out = {}
    for agent in ("LSTM", "memoryless"):
        torch.manual_seed(0)
        model = exp.make_agent(agent, num_corridor_symbols=4)
        exp.train_agent(model, steps=300, max_length=16, num_corridor_symbols=4, seed=0)
        out[agent] = exp.success_rate(model, 12, num_corridor_symbols=4)
    assert out == {"LSTM": 1.0, "memoryless": 0.5}


# --- the experiment ----------------------------------------------------------------------------------

def test_experiment_rows_and_registry():
    assert EXPERIMENTS["tmaze"].chapter == "13_memory_for_agents"
    result = run_experiment("tmaze", quick=True, progress=False)
    s, rows = result["settings"], result["results"]
    assert s["quick"] is True and s["agents"] == list(exp.AGENT_NAMES)
    success = [r for r in rows if r["metric"] == "success"]
    assert {(r["agent"], r["length"]) for r in success} == {
        (a, n) for a in exp.AGENT_NAMES for n in exp.QUICK["test_lengths"]}
    assert all(0 <= r["value"] <= 1 for r in success)
    assert {r["value"] for r in success if r["agent"] == "memoryless"} == {0.5}
    assert exp.mean_success(rows, "LSTM", 4) == 1.0
    with pytest.raises(ValueError, match="no success rows"):
        exp.mean_success(rows, "LSTM", 999)
    with pytest.raises(ValueError, match="no success rows"):
        exp.mean_success(rows, "LSTM", 4, max_train_length=64)


def test_experiment_rows_do_not_depend_on_jobs():
    settings = dict(agents=("memoryless", "LSTM"), steps=20, test_lengths=(3,), num_test_episodes=16)
    _, one = exp.run(quick=True, progress=False, settings=settings)
    _, two = exp.run(quick=True, progress=False, settings=settings, jobs=2)
    strip = [{k: v for k, v in r.items() if r["metric"] != "train_s"} for r in one]
    assert strip == [{k: v for k, v in r.items() if r["metric"] != "train_s"} for r in two]


def test_stored_result_backs_the_chapter():
    stored = results.load("tmaze")
    s, rows = stored["settings"], stored["results"]
    assert s["command"].startswith("python -m xlstm_edu experiment tmaze") and s["quick"] is False
    for m in s["max_train_lengths"]:
        for n in s["test_lengths"]:
            assert exp.mean_success(rows, "memoryless", n, m) == 0.5
            if n <= m:  # every agent with memory solves the lengths it was trained on
                for agent in exp.AGENT_NAMES[1:]:
                    assert exp.mean_success(rows, agent, n, m) >= 0.95, (agent, n, m)


# --- figures -----------------------------------------------------------------------------------------

def test_success_figure_draws_the_mean_over_seeds():
    from xlstm_edu.figures.agents import plot_success

    ax = plot_success({"LSTM": ([4, 16], [[1.0, 0.8], [1.0, 0.6]]), "memoryless": ([4, 16], [0.5, 0.5])},
                      train_lengths=(1, 8))
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert list(lines["LSTM"].get_ydata()) == [1.0, 0.7]
    assert list(lines["memoryless"].get_ydata()) == [0.5, 0.5]
    assert list(lines["chance (0.5)"].get_ydata()) == [0.5, 0.5]
    assert ax.get_figure().get_size_inches()[0] <= 7.84
    with pytest.raises(ValueError, match="2 lengths but 3"):
        plot_success({"x": ([1, 2], [0.5, 0.5, 0.5])})
    matplotlib.pyplot.close("all")


def test_success_by_range_stacks_one_panel_per_training_range():
    from xlstm_edu.figures.agents import plot_success_by_range

    fig = plot_success_by_range({16: {"LSTM": ([4, 64], [1.0, 0.9])},
                                 64: {"LSTM": ([4, 64], [1.0, 1.0])}})
    assert [ax.get_lines()[0].get_ydata().tolist() for ax in fig.axes] == [[1.0, 0.9], [1.0, 1.0]]
    spans = [ax.patches[0].get_x() + ax.patches[0].get_width() for ax in fig.axes]
    assert spans == [16, 64]  # the shaded training lengths end at each range's longest corridor
    assert fig.get_size_inches()[0] <= 7.84
    matplotlib.pyplot.close("all")


def test_observation_figure_marks_the_symbol_seen_at_each_step():
    import numpy as np

    from xlstm_edu.figures.agents import plot_observations

    fig = plot_observations({"left": [0, 3, 3, 2], "right": [1, 3, 3, 2]}, ["L", "R", "J", "C"])
    grids = [ax.get_images()[0].get_array() for ax in fig.axes]
    assert np.array_equal(np.argmax(grids[0], axis=0), [0, 3, 3, 2])
    assert np.array_equal(np.argmax(grids[1], axis=0), [1, 3, 3, 2])
    assert grids[0].sum() == 4 and fig.get_size_inches()[0] <= 7.84
    with pytest.raises(ValueError, match="symbol ids below 4"):
        plot_observations({"bad": [0, 4]}, ["L", "R", "J", "C"])
    matplotlib.pyplot.close("all")
