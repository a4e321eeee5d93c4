"""Training loop, schedule and checkpoints, with a tiny stand-in language model (fast, CPU).

The central check: (train 2N steps) and (train N, save, load into fresh objects, train N more) give
exactly the same losses and weights.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from xlstm_edu.training import (
    CheckpointError,
    TrainConfig,
    TrainState,
    evaluate,
    load_checkpoint,
    lr_at,
    make_optimizer,
    save_checkpoint,
    train,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny ops: one thread is faster and steadier than two on busy cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class TinyConfig:
    model: str = "tiny"
    vocab_size: int = 7
    d: int = 16
    dropout: float = 0.2


class TinyLM(nn.Module):
    """Embeddings of the current and previous token -> tanh layer -> dropout -> norm -> tied head."""

    def __init__(self, config: TinyConfig):
        super().__init__()
        self.config = config
        self.emb = nn.Embedding(config.vocab_size, config.d)
        self.mix = nn.Linear(2 * config.d, config.d)
        self.drop = nn.Dropout(config.dropout)
        self.norm = nn.LayerNorm(config.d)
        self.head = nn.Linear(config.d, config.vocab_size, bias=False)
        self.head.weight = self.emb.weight  # tied

    def forward(self, idx):
        e = self.emb(idx)  # (B, S, d)
        prev = F.pad(e, (0, 0, 1, 0))[:, :-1]  # (B, S, d), previous token's embedding
        h = self.drop(torch.tanh(self.mix(torch.cat([e, prev], dim=-1))))  # (B, S, d)
        return self.head(self.norm(h))  # (B, S, V)


def build(config: dict) -> TinyLM:
    if config["model"] != "tiny":
        raise ValueError(f"unknown model {config['model']!r}")
    return TinyLM(TinyConfig(**config))


def markov_tokens(n, V=7, seed=0):
    """A sparse random Markov chain: each token has few likely successors, so there is something to
    learn."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(V, 0.1), size=V)  # (V, V) transition matrix
    out = np.empty(n, dtype=np.int64)
    out[0] = 0
    for t in range(1, n):
        out[t] = rng.choice(V, p=P[out[t - 1]])
    return out


TRAIN, VAL = markov_tokens(3000, seed=1), markov_tokens(800, seed=2)


def fresh_model(seed=0, **kw):
    torch.manual_seed(seed)
    return TinyLM(TinyConfig(**kw))


def cfg(**kw):
    base = dict(steps=12, batch_size=4, context_length=16, lr=1e-2, min_lr=1e-3, warmup_steps=3,
                eval_every=4, eval_batches=2, checkpoint_every=0, seed=0, device="cpu")
    return TrainConfig(**{**base, **kw})


def losses(history):
    return [(r["step"], r["train_loss"], r["val_loss"], r["lr"], r["grad_norm"]) for r in history]


def weights_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa)


# --- schedule ------------------------------------------------------------------------------------------

def test_schedule_warmup_then_cosine():
    kw = dict(lr=1.0, min_lr=0.1, warmup_steps=10, total_steps=110)
    lrs = [lr_at(s, **kw) for s in range(130)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warmup to the peak
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))
    assert lrs[10] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(lrs[10:110], lrs[11:110]))  # cosine decay
    assert lrs[60] == pytest.approx(0.55)  # halfway: the mean of lr and min_lr
    assert lrs[110:] == [0.1] * 20  # floor after the end
    assert lr_at(0, lr=1.0, min_lr=0.0, warmup_steps=0, total_steps=5) == 1.0  # no warmup


@pytest.mark.parametrize("kw, match", [
    (dict(step=-1), "step must be >= 0"),
    (dict(min_lr=2.0), "min_lr <= lr"),
    (dict(warmup_steps=-1), "warmup_steps >= 0"),
    (dict(total_steps=0), "total_steps >= 1"),
])
def test_schedule_errors(kw, match):
    args = dict(step=0, lr=1.0, min_lr=0.1, warmup_steps=1, total_steps=10)
    args.update(kw)
    step = args.pop("step")
    with pytest.raises(ValueError, match=match):
        lr_at(step, **args)


# --- config and optimizer ------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    (dict(steps=0), r"steps must be an integer >= 1"),
    (dict(seed=True), r"seed must be an integer >= 0"),
    (dict(batch_size=2.5), r"batch_size must be an integer"),
    (dict(warmup_steps=-1), r"warmup_steps must be an integer >= 0"),
    (dict(lr=0.0), r"lr must be a positive number"),
    (dict(min_lr=1.0), r"min_lr must be in \[0, lr"),
    (dict(grad_clip=-1.0), r"grad_clip must be >= 0"),
    (dict(beta2=1.0), r"beta2 must be in \[0, 1\)"),
    (dict(device=""), r"device must be a device string"),
])
def test_train_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        cfg(**kw)


def test_weight_decay_on_matrices_only():
    model = fresh_model()
    opt = make_optimizer(model, cfg(weight_decay=0.3))
    by_decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert by_decay[0.3] == {id(model.emb.weight), id(model.mix.weight)}  # tied head counted once
    assert by_decay[0.0] == {id(model.mix.bias), id(model.norm.weight), id(model.norm.bias)}


def test_bad_tokens():
    with pytest.raises(ValueError, match="train_tokens must hold integer token ids"):
        train(fresh_model(), TRAIN.astype(float), VAL, cfg(), progress=False)
    with pytest.raises(ValueError, match="val_tokens has 10 tokens"):
        train(fresh_model(), TRAIN, VAL[:10], cfg(), progress=False)
    with pytest.raises(ValueError, match=r"until must be an integer in \[0, cfg.steps = 12\]"):
        train(fresh_model(), TRAIN, VAL, cfg(), until=13, progress=False)


def test_divergence_stops_training():
    model = fresh_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.norm.bias.data[0] = before["norm.bias"][0] = float("nan")  # NaN logits
    with pytest.raises(FloatingPointError, match="training loss is nan at update 1: training diverged"):
        train(model, TRAIN, VAL, cfg(), progress=False)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items() if k != "norm.bias")  # not updated


def test_grad_norm_is_recorded_without_clipping():
    history = train(fresh_model(), TRAIN, VAL, cfg(grad_clip=0.0, steps=4), progress=False)
    assert math.isfinite(history[-1]["grad_norm"]) and history[-1]["grad_norm"] > 0


# --- the loop ------------------------------------------------------------------------------------------

def test_training_learns_and_records():
    model = fresh_model()
    before = evaluate(model, VAL, cfg())
    seen = []
    history = train(model, TRAIN, VAL, cfg(steps=60, eval_every=20, lr=3e-2), on_record=seen.append,
                    chars_per_token=1.0, progress=False)
    assert history == seen
    assert [r["step"] for r in history] == [20, 40, 60]
    last = history[-1]
    assert set(last) >= {"step", "train_loss", "val_loss", "lr", "tokens_per_s", "elapsed_s",
                         "val_bits_per_token", "val_bits_per_char", "grad_norm"}
    assert last["val_bits_per_token"] == last["val_loss"] / math.log(2) == last["val_bits_per_char"]
    assert before > 0.95 * math.log(7)  # untrained: about uniform
    assert last["val_loss"] < 0.75 * before  # the chain is predictable; the model must have learnt it
    assert last["lr"] == lr_at(59, lr=3e-2, min_lr=1e-3, warmup_steps=3, total_steps=60)
    assert all(r["tokens_per_s"] > 0 for r in history)
    assert history[0]["elapsed_s"] < history[1]["elapsed_s"] < history[2]["elapsed_s"]


def test_evaluate_is_pure():
    model = fresh_model()
    model.train()
    rng = torch.get_rng_state()
    a, b = evaluate(model, VAL, cfg()), evaluate(model, VAL, cfg())
    assert a == b and model.training and torch.equal(rng, torch.get_rng_state())


def test_runs_are_deterministic_given_the_seed():
    runs = {}
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        model = fresh_model()
        runs[name] = (losses(train(model, TRAIN, VAL, cfg(seed=seed), progress=False)), model)
    assert runs["a"][0] == runs["b"][0] and weights_equal(runs["a"][1], runs["b"][1])
    assert runs["a"][0] != runs["c"][0]  # the seed matters (batches and dropout)


def test_resume_from_checkpoint_is_exact(tmp_path):
    """2N steps in one go == N steps, save, load into fresh objects, N more. N is not a multiple of
    eval_every, so the running loss sum crosses the checkpoint; dropout makes the RNG state matter."""
    full_model = fresh_model()
    full = losses(train(full_model, TRAIN, VAL, cfg(), progress=False))

    first = fresh_model()
    out = str(tmp_path / "run")
    train(first, TRAIN, VAL, cfg(out_dir=out), until=6, progress=False)
    del first
    ck = load_checkpoint(out, build_model=build)
    assert ck.state.step == 6 and ck.train_config.out_dir == out
    resumed = losses(train(ck.model, TRAIN, VAL, ck.train_config, state=ck.state, progress=False))
    assert resumed == full
    assert weights_equal(ck.model, full_model)

    # Control: the same resume with the RNG states reseeded instead of restored does not match.
    ck = load_checkpoint(out, build_model=build)
    ck.state.step, ck.state.rng, ck.state.history = 6, None, ck.state.history
    assert losses(train(ck.model, TRAIN, VAL, ck.train_config, state=ck.state, progress=False)) != full


def test_resume_in_memory_is_exact():
    model = fresh_model()
    full = losses(train(model, TRAIN, VAL, cfg(), progress=False))
    model2, state = fresh_model(), TrainState()
    train(model2, TRAIN, VAL, cfg(), state=state, until=5, progress=False)
    torch.manual_seed(123)  # disturbing the global RNG between sessions must not matter
    assert losses(train(model2, TRAIN, VAL, cfg(), state=state, progress=False)) == full
    assert weights_equal(model, model2)


# --- checkpoints ---------------------------------------------------------------------------------------

def saved_run(tmp_path, **model_kw):
    model = fresh_model(**model_kw)
    train(model, TRAIN, VAL, cfg(steps=4, out_dir=str(tmp_path / "run")), progress=False)
    return model, tmp_path / "run"


def test_checkpoint_roundtrip_is_bit_identical(tmp_path):
    model, path = saved_run(tmp_path)
    ck = load_checkpoint(path, build_model=build)
    assert weights_equal(ck.model, model)
    assert ck.model.head.weight is ck.model.emb.weight  # still tied
    assert set(load_file(path / "model.safetensors")) == {"emb.weight", "mix.weight", "mix.bias",
                                                          "norm.weight", "norm.bias"}  # stored once
    assert asdict(ck.model.config) == asdict(model.config)
    assert ck.state.step == 4 and len(ck.state.history) == 1
    assert ck.tokenizer is None and ck.extra == {}
    # The optimizer state loads into a fresh optimizer and matches the saved moments exactly.
    opt = make_optimizer(ck.model, ck.train_config)
    opt.load_state_dict(ck.state.optimizer_state)
    m = opt.state[ck.model.emb.weight]["exp_avg"]
    assert m.abs().sum() > 0


def test_save_requires_a_snapshot(tmp_path):
    with pytest.raises(ValueError, match="optimizer_state and state.rng must be set"):
        save_checkpoint(tmp_path, fresh_model(), cfg(), TrainState())


def truncate(file):
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage, match", [
    (lambda p: (p / "model.safetensors").unlink(), r"missing model\.safetensors"),
    (lambda p: truncate(p / "model.safetensors"), r"model\.safetensors: corrupt safetensors file"),
    (lambda p: truncate(p / "train_state.json"), r"train_state\.json: corrupt JSON"),
    (lambda p: truncate(p / "model_config.json"), r"model_config\.json: corrupt JSON"),
    (lambda p: truncate(p / "optimizer.pt"), r"optimizer\.pt: corrupt or unreadable torch file"),
    (lambda p: truncate(p / "rng.pt"), r"rng\.pt: corrupt or unreadable torch file"),
    (lambda p: (p / "train_config.json").write_text('{"steps": -3}'),
     r"train_config\.json: not a valid"),
])
def test_corrupt_checkpoints(tmp_path, damage, match):
    _, path = saved_run(tmp_path)
    damage(path)
    with pytest.raises(CheckpointError, match=match) as e:
        load_checkpoint(path, build_model=build)
    assert str(path) in str(e.value) and isinstance(e.value, ValueError)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        load_checkpoint(tmp_path / "nope", build_model=build)
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="not a directory"):
        load_checkpoint(tmp_path / "file", build_model=build)


def edit_json(file, **changes):
    obj = json.loads(file.read_text())
    obj.update(changes)
    file.write_text(json.dumps(obj))


def test_mismatched_checkpoints(tmp_path):
    _, path = saved_run(tmp_path)
    edit_json(path / "model_config.json", d=24)  # weights no longer fit the config
    with pytest.raises(CheckpointError, match=r"model\.safetensors: the weights do not fit .*"
                                              r"shape \(7, 16\) in the file, \(7, 24\) in the model"):
        load_checkpoint(path, build_model=build)

    _, path = saved_run(tmp_path / "b")
    edit_json(path / "model_config.json", model="other")  # a different architecture
    with pytest.raises(CheckpointError, match=r"model_config\.json: cannot build the model"):
        load_checkpoint(path, build_model=build)
    with pytest.raises(CheckpointError, match=r"for model 'tiny', but the config says 'other'"):
        load_checkpoint(path, build_model=lambda c: TinyLM(TinyConfig(**{**c, "model": "tiny"})))

    _, path = saved_run(tmp_path / "c")
    edit_json(path / "train_state.json", step=99)  # files from different saves
    with pytest.raises(CheckpointError, match=r"is from step 4 but train_state\.json is at step 99"):
        load_checkpoint(path, build_model=build)
