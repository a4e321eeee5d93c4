"""The state-tracking and associative-recall experiments: sizes, accuracies, the sLSTM trace, and a
smoke run of each experiment command (in one process and in two)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from xlstm_edu import results
from xlstm_edu.cli import main
from xlstm_edu.data.formal_languages import get_task
from xlstm_edu.experiments import formal_languages as fle
from xlstm_edu.experiments import recall as rce
from xlstm_edu.experiments.registry import EXPERIMENTS, run_experiment
from xlstm_edu.models import TokenClassifier, build_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


class Oracle(nn.Module):
    """Logits that put all weight on the true running label (or on class 0 with ``wrong``)."""

    def __init__(self, task, wrong=False):
        super().__init__()
        self.task, self.wrong = task, wrong
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        y = torch.zeros_like(x) if self.wrong else self.task.labels(x).clamp(min=0)
        return nn.functional.one_hot(y, self.task.num_classes).float()


def test_classifiers_are_matched_in_size_and_answer_per_position():
    task = get_task("cycle_navigation")
    configs = fle.matched_classifiers(task)
    assert list(configs) == list(fle.MODEL_NAMES)
    target = configs["xLSTM[1:1]"][1]
    assert configs["xLSTM[1:1]"][0].embedding_dim == 64  # the official formal-language width
    for name, (config, n) in configs.items():
        assert abs(n - target) <= 0.1 * target, name
        model = build_classifier(config, task.num_classes)
        assert isinstance(model, TokenClassifier) and model.num_parameters() == n
        x, _ = task.sample(2, 7)
        assert model(x).shape == (2, 7, 5)
        assert model.to_dict()["num_classes"] == 5


def test_head_is_untied_and_step_matches_forward():
    task = get_task("parity")
    config, _ = fle.matched_classifiers(task, ("xLSTM[1:1]",))["xLSTM[1:1]"]
    torch.manual_seed(0)
    model = build_classifier(config, 2).eval()
    assert model.body.lm_head.weight.data_ptr() != model.body.token_embedding.weight.data_ptr()
    x = torch.tensor([[1, 0, 1, 1, 0]])
    full = model(x)
    state, steps = None, []
    for t in range(x.shape[1]):
        logits, state = model.step(x[:, t], state)
        steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-5)
    trace = fle.slstm_trace(model, x[0])
    assert trace.shape == (5, config.embedding_dim)
    _, final = model(x, return_state=True)
    torch.testing.assert_close(trace[-1], final[1].h.reshape(-1), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="no sLSTM block"):
        fle.slstm_trace(build_classifier(fle.matched_classifiers(task, ("xLSTM[1:0]",))
                                         ["xLSTM[1:0]"][0], 2), x[0])


@pytest.mark.parametrize("name", ["parity", "modular_arithmetic"])
def test_accuracy_by_length_of_an_oracle_and_of_a_constant(name):
    task = get_task(name)
    acc = fle.accuracy_by_length(Oracle(task), task, max_length=60, num_strings=64)
    answered = ~torch.isnan(acc)
    assert torch.all(acc[answered] == 1.0)
    assert int(answered.sum()) == (30 if name == "modular_arithmetic" else 60)
    summary = fle.summarize(acc, task, 40)
    assert summary == {"train_accuracy": 1.0, "test_accuracy": 1.0, "scaled_accuracy": 1.0}
    const = fle.summarize(fle.accuracy_by_length(Oracle(task, wrong=True), task, max_length=200,
                                                 num_strings=256), task, 40)
    assert abs(const["scaled_accuracy"]) < 0.05  # class 0 is right about a fraction `chance` of times
    assert fle.scaled_accuracy(0.5, 0.5) == 0.0 and fle.scaled_accuracy(0.6, 0.2) == pytest.approx(0.5)


def test_recall_accuracy_counts_queries_only():
    class Copier(nn.Module):  # predicts the token that follows: it sees the future, so it is perfect
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            nxt = torch.cat([x[:, 1:], x[:, :1]], dim=1)
            return nn.functional.one_hot(nxt, 32).float()

    assert rce.recall_accuracy(Copier(), num_pairs=3, context_length=16, vocab_size=32,
                               num_sequences=40) == 1.0
    configs = rce.matched_models(("LSTM", "xLSTM[1:0]"))
    assert abs(configs["LSTM"][1] - configs["xLSTM[1:0]"][1]) <= 0.2 * configs["LSTM"][1]
    cfg = rce.with_mlstm_heads(configs["xLSTM[1:0]"][0], 4)
    assert cfg.mlstm_num_heads == 4 and cfg.mlstm_inner_dim // 4 == cfg.mlstm_inner_dim / 4


TINY_FL = dict(tasks=("parity", "modular_arithmetic"), models=("LSTM", "xLSTM[0:1]"), num_seeds=2,
               width=8, steps=3, batch_size=4, max_train_length=6, max_test_length=16,
               num_test_strings=8, length_bin=8)
TINY_MQAR = dict(models=("LSTM", "xLSTM[1:0]"), pairs=(2, 3), context_length=12, vocab_size=16, width=32,
                 head_sweep_heads=(2,), head_sweep_pairs=(3,), steps=3, batch_size=4, num_test=8)


def _without_times(rows):
    return [r for r in rows if r["metric"] != "train_s"]


def test_formal_languages_experiment_writes_the_schema(tmp_path, monkeypatch):
    monkeypatch.setattr(fle, "QUICK", dict(fle.QUICK, **TINY_FL))
    out = tmp_path / "fl.json"
    result = run_experiment("formal-languages", quick=True, seed=5, out=out, progress=False)
    loaded = results.load(out)
    assert loaded == json.loads(json.dumps(result))
    assert loaded["settings"]["seeds"] == [5, 6] and loaded["settings"]["jobs"] == 1
    rows = loaded["results"]
    for task in TINY_FL["tasks"]:
        for model in TINY_FL["models"]:
            for seed in (5, 6):
                key = dict(task=task, model=model, seed=seed)
                acc = results.value(loaded, metric="test_accuracy", **key)
                scaled = results.value(loaded, metric="scaled_accuracy", **key)
                assert 0 <= acc <= 1 and scaled == pytest.approx(fle.scaled_accuracy(
                    acc, get_task(task).chance))
                assert results.value(loaded, metric="steps", **key) == 3
                bins = results.select(loaded, metric="accuracy", **key)
                assert [r["length"] for r in bins] == [8, 16]
                assert all(math.isfinite(r["value"]) for r in bins)
    assert len({(r["task"], r["model"], r["seed"]) for r in rows}) == 8


def test_mqar_experiment_in_two_processes_gives_the_rows_of_one(tmp_path, monkeypatch):
    """The runs seed themselves: two processes give exactly the rows of one (times aside). The worker
    processes import the module afresh, so the tiny recipe goes in through ``settings``."""
    one = rce.run(quick=True, progress=False, settings=dict(TINY_MQAR))[1]
    two = rce.run(quick=True, progress=False, jobs=2, settings=dict(TINY_MQAR))[1]
    assert _without_times(one) == _without_times(two)
    acc = [r for r in one if r["metric"] == "accuracy"]
    assert [(r["model"], r["num_pairs"], r["mlstm_heads"]) for r in acc] == [
        ("LSTM", 2, None), ("xLSTM[1:0]", 2, 1), ("LSTM", 3, None), ("xLSTM[1:0]", 3, 1),
        ("xLSTM[1:0]", 3, 2)]  # the pairs for every model, then the head sweep
    assert acc[-1]["mlstm_head_dim"] * 2 == acc[1]["mlstm_head_dim"]  # 2 heads: half the dimension
    assert all(0 <= r["value"] <= 1 for r in acc)


def test_experiment_command_checks_jobs(capsys):
    assert main(["experiment", "language-model", "--jobs", "2"]) == 2
    assert "takes no --jobs" in capsys.readouterr().err
    assert main(["experiment", "mqar", "--jobs", "0"]) == 2
    assert "--jobs must be an integer >= 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="takes no jobs"):
        run_experiment("language-model", jobs=2)


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if results.stored_path(n).is_file()])
def test_stored_results_have_the_schema_and_their_command(name):
    stored = results.load(name)
    s = stored["settings"]
    assert s["experiment"] == name and s["command"].startswith(f"python -m xlstm_edu experiment {name}")
    assert s["quick"] is False
