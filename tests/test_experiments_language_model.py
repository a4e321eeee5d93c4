"""Tests of xlstm_edu.experiments.language_model (small synthetic data; no Shakespeare needed)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from xlstm_edu.data import CharTokenizer
from xlstm_edu.experiments import language_model as lm
from xlstm_edu.models import build_model, xLSTMLMConfig
from xlstm_edu.models.baselines import TransformerLMConfig
from xlstm_edu.training import TrainConfig


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest, and time most steadily, on one thread (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data() -> lm.LMData:
    """A tiny, learnable corpus: a repeated sentence, split into two parts."""
    text = "the quick brown fox jumps over the lazy dog. " * 60
    tok = CharTokenizer.fit(text, unknown="replace")
    ids = torch.from_numpy(tok.encode_array(text))
    return lm.LMData(ids[:2000], ids[2000:], tok)


def small_xlstm(slstm_at=(1,), E=16, vocab_size=20):
    torch.manual_seed(0)
    return build_model(xLSTMLMConfig(vocab_size=vocab_size, embedding_dim=E, num_blocks=2,
                                     slstm_at=slstm_at, mlstm_num_heads=2, slstm_num_heads=2,
                                     round_proj_up_to_multiple_of=8))


def small_transformer(vocab_size=20, context_length=80):
    torch.manual_seed(0)
    return build_model(TransformerLMConfig(vocab_size, context_length=context_length, embedding_dim=16,
                                           num_heads=2, num_layers=2))


def test_state_bytes_counts_nested_tensors():
    state = (torch.zeros(2, 3), [torch.zeros(4, dtype=torch.float64), None],
             {"a": torch.zeros(5, dtype=torch.int8)})
    assert lm.state_bytes(state) == 2 * 3 * 4 + 4 * 8 + 5
    with pytest.raises(ValueError):
        lm.state_bytes("not a state")


def test_xlstm_state_is_constant_and_kv_cache_grows():
    x, tr = small_xlstm().eval(), small_transformer().eval()
    xc = lm.generation_cost(x, [4, 16, 64], repeats=2)
    kv = lm.generation_cost(tr, [4, 16, 64], repeats=2)
    nc = lm.generation_cost(tr, [4, 16, 64], mode="no_cache", repeats=2)
    assert len({r["state_bytes"] for r in xc}) == 1 and xc[0]["state_bytes"] > 0
    # KV cache: 2 (k, v) x layers x (T + 1) positions x width x 4 bytes
    assert [r["state_bytes"] for r in kv] == [2 * 2 * (T + 1) * 16 * 4 for T in (4, 16, 64)]
    assert [r["state_bytes"] for r in nc] == [(T + 1) * 8 for T in (4, 16, 64)]  # token ids
    assert all(r["time_s"] > 0 for r in xc + kv + nc)


def test_matched_transformer_matches_non_embedding_parameters():
    x = small_xlstm(E=32)
    config = lm.matched_transformer(x, context_length=64, num_heads=2)
    assert isinstance(config, TransformerLMConfig) and config.num_layers == 2
    assert config.context_length == 64 and config.embedding_dim % 2 == 0
    target = x.num_parameters(exclude_embedding=True)

    def non_embedding(width):
        return build_model(dataclasses.replace(config, embedding_dim=width)).num_parameters(
            exclude_embedding=True)

    best = abs(non_embedding(config.embedding_dim) - target)
    for width in (config.embedding_dim - 2, config.embedding_dim + 2):  # the neighbours are no closer
        assert abs(non_embedding(width) - target) >= best


def test_generation_cost_checks_arguments():
    x = small_xlstm()
    with pytest.raises(ValueError, match="rounds"):
        lm.generation_cost(x, [4], rounds=0)
    rows = lm.generation_cost(x, [3, 5], repeats=3, rounds=2, warmup=0)
    assert [r["context"] for r in rows] == [3, 5]


def test_prefill_checks_context():
    tr = small_transformer(context_length=16)
    with pytest.raises(ValueError, match="context_length"):
        lm.step_time_at_context(tr, 16, repeats=1)
    with pytest.raises(ValueError, match="step_no_cache"):
        lm.step_time_at_context(small_xlstm(), 4, mode="no_cache", repeats=1)
    with pytest.raises(ValueError, match="mode"):
        lm.step_time_at_context(tr, 4, mode="cache", repeats=1)


def test_step_from_prefilled_state_matches_forward():
    """The timed step continues the state that forward returned (so its logits are forward's)."""
    x = small_xlstm().eval()
    idx = torch.randint(0, 20, (1, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = x(idx)  # (1, 12, V)
        _, state = x(idx[:, :-1], return_state=True)
        logits, _ = x.step(idx[:, -1], state)
    torch.testing.assert_close(logits, full[:, -1], atol=1e-5, rtol=1e-5)


def test_time_generate_and_step_time_positive():
    x = small_xlstm()
    t = lm.time_generate(x, 5, repeats=2)
    assert t["median_s"] > 0 and t["per_token_s"] == pytest.approx(t["median_s"] / 5)
    assert len(t["times_s"]) == 2
    assert lm.step_time_at_context(x, 30, repeats=3) > 0
    with pytest.raises(ValueError):
        lm.time_generate(x, 0)


def test_matched_configs_are_close_to_target():
    configs = lm.matched_configs(30, 30_000, context_length=32, rtol=0.15)
    assert list(configs) == list(lm.MODEL_NAMES)
    for name, (config, n) in configs.items():
        assert abs(n - 30_000) <= 0.15 * 30_000, name
        assert build_model(config).num_parameters() == n
    assert configs["xLSTM[0:1]"][0].slstm_at == (0, 1) and configs["xLSTM[1:0]"][0].slstm_at == ()
    with pytest.raises(ValueError, match="unknown model"):
        lm.make_config("GRU", 16, 30, context_length=8)


def test_validation_windows_cover_the_text():
    tokens = torch.arange(1000)
    x, y = lm.validation_windows(tokens, 5, 10)
    assert x.shape == y.shape == (5, 10)
    assert torch.equal(y, x + 1)  # targets are the next tokens
    assert int(x[0, 0]) == 0 and int(y[-1, -1]) == 999  # first and last token of the text


def test_train_run_steps_improves_loss(data):
    torch.manual_seed(0)
    model = build_model(lm.make_config("Transformer", 16, data.vocab_size, context_length=16))
    cfg = TrainConfig(batch_size=8, context_length=16, lr=1e-2, min_lr=1e-3, warmup_steps=2)
    res = lm.train_run(model, data, cfg, steps=30, n_evals=3, n_val_windows=16)
    steps = [r["step"] for r in res["history"]]
    assert steps == [0, 10, 20, 30] and res["steps"] == 30
    assert res["history"][-1]["val_loss"] < res["history"][0]["val_loss"] - 0.5
    assert res["history"][0]["train_loss"] is None
    assert all(r["train_loss"] is not None for r in res["history"][1:])
    rec = res["history"][-1]
    assert rec["val_bits_per_char"] == pytest.approx(rec["val_loss"] / math.log(2))
    assert res["train_s"] > 0 and res["tokens_per_s"] > 0


def test_train_run_respects_time_budget(data):
    torch.manual_seed(0)
    model = build_model(lm.make_config("LSTM", 16, data.vocab_size, context_length=16))
    cfg = TrainConfig(batch_size=4, context_length=16, warmup_steps=2)
    res = lm.train_run(model, data, cfg, seconds=1.0, n_evals=3, n_val_windows=8, calibration_steps=2)
    per_step = res["train_s"] / res["steps"]
    assert res["train_s"] <= 1.0 + 5 * per_step  # stops within a few updates of the budget
    assert res["history"][-1]["step"] == res["steps"] >= 2
    elapsed = [r["elapsed_s"] for r in res["history"]]
    assert elapsed == sorted(elapsed)
    with pytest.raises(ValueError, match="exactly one"):
        lm.train_run(model, data, cfg, steps=3, seconds=1.0)


def test_run_comparison_writes_valid_json(tmp_path, data):
    out = tmp_path / "runs.json"
    lm.run_comparison(out, seconds_per_model=0.5, models=("LSTM", "xLSTM[1:0]"), target_params=10_000,
                          context_length=16, batch_size=4, warmup_steps=2, n_evals=2, n_val_windows=8,
                          threads=None, sample_tokens=20, data=data, progress=None)
    loaded = lm.load_runs(out)
    assert json.loads(out.read_text()) == loaded
    assert list(loaded["runs"]) == ["LSTM", "xLSTM[1:0]"]
    assert loaded["settings"]["seconds_per_model"] == 0.5
    for run in loaded["runs"].values():
        assert run["steps"] >= 2 and run["history"][-1]["step"] == run["steps"]
        assert {"step", "elapsed_s", "val_loss", "val_bits_per_char"} <= set(run["history"][-1])
        assert math.isfinite(run["final_val_loss"]) and len(run["sample"]) > 0
    table = lm.results_table(loaded["runs"], final_key="final_val_loss")
    assert "xLSTM[1:0]" in table and len(table.splitlines()) == 4
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError):
        lm.load_runs(tmp_path / "bad.json")


def test_plots_draw_lines(data):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    costs = {"a": [{"context": 1, "time_s": 1e-3, "state_bytes": 10},
                   {"context": 10, "time_s": 2e-3, "state_bytes": 10}]}
    lm.plot_generation_cost(costs, axes)
    assert len(axes[0].lines) == 1 and axes[0].get_xscale() == "log"
    history = [{"step": 0, "elapsed_s": 0.0, "val_loss": 3.0, "val_bits_per_char": 4.3},
               {"step": 5, "elapsed_s": 1.0, "val_loss": 2.0, "val_bits_per_char": 2.9}]
    results = {"m": {"history": history}}
    fig2, ax = plt.subplots()
    lm.plot_loss_curves(results, ax, uniform=30)
    assert len(ax.lines) == 2  # the curve and the uniform level
    plt.close(fig)
    plt.close(fig2)
