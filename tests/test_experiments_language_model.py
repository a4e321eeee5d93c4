"""Tests of xlstm_edu.experiments.language_model (small synthetic data; no Shakespeare needed)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from xlstm_edu import results
from xlstm_edu.data import CharTokenizer
from xlstm_edu.experiments import language_model as lm
from xlstm_edu.experiments.registry import run_experiment
from xlstm_edu.models import build_model, xLSTMLMConfig
from xlstm_edu.models.baselines import TransformerLMConfig
from xlstm_edu.training import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest


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


def test_xlstm_state_is_constant_and_kv_cache_grows():
    x, tr = small_xlstm().eval(), small_transformer().eval()
    xc = lm.generation_cost(x, [4, 16, 64], repeats=2)
    kv = lm.generation_cost(tr, [4, 16, 64], repeats=2)
    nc = lm.generation_cost(tr, [4, 16, 64], mode="no_cache", repeats=2)
    assert len({r["state_bytes"] for r in xc}) == 1 and xc[0]["state_bytes"] > 0
    # KV cache: 2 (k, v) x layers x (T + 1) positions x width x 4 bytes
    assert [r["state_bytes"] for r in kv] == [2 * 2 * (T + 1) * 16 * 4 for T in (4, 16, 64)]
    assert [r["state_bytes"] for r in nc] == [(T + 1) * 8 for T in (4, 16, 64)]  # token ids


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


def test_time_generate_reports_per_token_time():
    x = small_xlstm()
    t = lm.time_generate(x, 5, repeats=2)
    assert t["per_token_s"] == pytest.approx(t["median_s"] / 5)
    with pytest.raises(ValueError, match="n_tokens"):
        lm.time_generate(x, 0)


def test_matched_configs_are_close_to_target():
    configs = lm.matched_configs(30, 30_000, context_length=32, rtol=0.15)
    assert list(configs) == list(lm.MODEL_NAMES)
    for name, (config, n) in configs.items():
        assert abs(n - 30_000) <= 0.15 * 30_000, name
        assert build_model(config).num_parameters() == n
    assert configs["xLSTM[0:1]"][0].slstm_at == (0, 1) and configs["xLSTM[1:0]"][0].slstm_at == ()
    with pytest.raises(ValueError, match="name must be one of"):
        lm.make_config("GRU", 16, 30, context_length=8)


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
    assert rec["val_bits_per_token"] == pytest.approx(rec["val_loss"] / math.log(2))


def test_train_run_with_a_time_budget_ends_where_its_schedule_ends(data):
    """The run stops by the budget (not by cfg.steps), its last record is at its last update, and the
    records follow training time (evaluations every budget / n_evals seconds of training)."""
    torch.manual_seed(0)
    model = build_model(lm.make_config("LSTM", 16, data.vocab_size, context_length=16))
    cfg = TrainConfig(steps=1_000_000, batch_size=4, context_length=16, warmup_steps=2)
    res = lm.train_run(model, data, cfg, seconds=0.5, n_evals=3, n_val_windows=8)
    assert 2 < res["steps"] < 1_000_000
    assert res["history"][0]["step"] == 0 and res["history"][-1]["step"] == res["steps"]
    train_s = [r["train_s"] for r in res["history"]]
    assert train_s == sorted(train_s) and len(res["history"]) >= 3
    with pytest.raises(ValueError, match="exactly one"):
        lm.train_run(model, data, cfg, steps=3, seconds=1.0)


TINY_EXPERIMENT = dict(seconds_per_model=0.3, target_params=10_000, context_length=16, batch_size=4,
                       warmup_steps=2, n_evals=2, n_val_windows=8, threads=1, sample_tokens=20)


def test_experiment_writes_the_shared_schema_and_reads_back(tmp_path, data, monkeypatch):
    """``python -m xlstm_edu experiment language-model`` at toy size: the file has the shared schema
    (settings + flat rows), and stored_runs turns the rows back into the runs the chapter shows."""
    monkeypatch.setattr(lm, "load_data", lambda: data)
    monkeypatch.setattr(lm, "QUICK", dict(lm.QUICK, models=("LSTM", "xLSTM[1:0]"), **TINY_EXPERIMENT))
    out = tmp_path / "lm.json"
    result = run_experiment("language-model", quick=True, seed=0, out=out, progress=False,
                            command="python -m xlstm_edu experiment language-model --quick")
    loaded = results.load(out)
    assert loaded == json.loads(json.dumps(result))
    s = loaded["settings"]
    assert s["experiment"] == "language-model" and s["quick"] is True and s["seed"] == 0
    assert s["command"].endswith("--quick") and s["torch"] == torch.__version__
    assert set(results.SETTINGS_KEYS) <= set(s)
    runs = lm.stored_runs(loaded)
    assert list(runs) == ["LSTM", "xLSTM[1:0]"]
    for name, run in runs.items():
        assert run["history"][0]["step"] == 0 and run["history"][-1]["step"] == run["steps"] >= 2
        assert math.isfinite(run["final_val_loss"]) and len(run["sample"]) == 20
        assert results.value(loaded, model=name, metric="steps") == run["steps"]
        assert run["final_val_bits_per_char"] == pytest.approx(run["final_val_loss"] / math.log(2))
    table = lm.results_table(runs, final_key="final_val_loss")
    assert "xLSTM[1:0]" in table and len(table.splitlines()) == 4


def test_full_validation_loss_reads_every_token_once(data):
    """The mean over all tokens equals the token-weighted mean of its batches (an independent sum)."""
    model = small_transformer(vocab_size=data.vocab_size).eval()
    tokens = data.val_tokens[:301]
    loss = lm.full_validation_loss(model, tokens, 16, batch_size=4)
    total = 0.0
    with torch.no_grad():
        for start in range(0, 300, 16):
            x, y = tokens[start:start + 16][None], tokens[start + 1:start + 17][None]
            n = min(16, 300 - start)
            logits = model(x[:, :n])
            total += torch.nn.functional.cross_entropy(logits[0], y[0, :n], reduction="sum").item()
    assert loss == pytest.approx(total / 300, rel=1e-5)
