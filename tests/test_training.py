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

from xlstm_edu.data import spread_windows
from xlstm_edu.training import (
    Checkpoint,
    CheckpointError,
    Evaluate,
    Hook,
    StopAt,
    TimeBudget,
    TrainConfig,
    TrainState,
    evaluate,
    load_checkpoint,
    lr_at,
    make_optimizer,
    save_checkpoint,
    train,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest


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
WINDOWS = spread_windows(VAL, 8, 16)  # the validation set: 8 windows over the whole text


def fresh_model(seed=0, **kw):
    torch.manual_seed(seed)
    return TinyLM(TinyConfig(**kw))


def cfg(**kw):
    base = dict(steps=12, batch_size=4, context_length=16, lr=1e-2, min_lr=1e-3, warmup_steps=3,
                seed=0, device="cpu")
    return TrainConfig(**{**base, **kw})


def val_loss(model):
    return evaluate(model, *WINDOWS, batch_size=4)


def run(model, config=None, *, every=4, out=None, until=None, state=None, **evaluate_kw):
    """train() with the hooks the command line uses: records every ``every`` updates, a checkpoint
    in ``out`` at the end, a stop after ``until``. Returns the history."""
    hooks = [Evaluate(val_loss, every=every, **evaluate_kw)]
    if out is not None:
        hooks.append(Checkpoint(out))
    if until is not None:
        hooks.append(StopAt(until))
    return train(model, TRAIN, config or cfg(), state=state, hooks=hooks, progress=False).history


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
    (dict(steps=0), r"steps must be a positive integer"),
    (dict(seed=True), r"seed must be a non-negative integer"),
    (dict(batch_size=2.5), r"batch_size must be a positive integer"),
    (dict(warmup_steps=-1), r"warmup_steps must be a non-negative integer"),
    (dict(lr=0.0), r"lr must be a number > 0"),
    (dict(lr=float("inf")), r"lr must be a finite number"),
    (dict(min_lr=1.0), r"min_lr must be a number >= 0.0 and <= 0.01"),
    (dict(grad_clip=-1.0), r"grad_clip must be a number >= 0"),
    (dict(weight_decay=float("nan")), r"weight_decay must be a finite number"),
    (dict(weight_decay=float("inf")), r"weight_decay must be a finite number"),
    (dict(beta2=1.0), r"beta2 must be a number >= 0.0 and < 1.0"),
    (dict(device=""), r"device must be a device string"),
])
def test_train_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        cfg(**kw)


def test_weight_decay_on_matrices_only():
    model = fresh_model()
    opt = make_optimizer(model, cfg(weight_decay=0.3))
    by_decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert by_decay[0.3] == {id(model.mix.weight)}  # the embedding (and the head tied to it): none
    assert by_decay[0.0] == {id(model.emb.weight), id(model.mix.bias), id(model.norm.weight),
                             id(model.norm.bias)}


def test_weight_decay_spares_the_xlstm_gate_biases():
    """The sLSTM gate bias b (NH, 4, DH) is 3-D but a bias: its power-law forget bias must not decay.
    The grouping follows the official xlstm: weights of linear maps only."""
    from xlstm_edu.models import xLSTMLM, xLSTMLMConfig

    model = xLSTMLM(xLSTMLMConfig(vocab_size=11, embedding_dim=32, num_blocks=2, slstm_at=(1,),
                                  round_proj_up_to_multiple_of=16))
    opt = make_optimizer(model, cfg(weight_decay=0.1))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    names = {name for name, p in model.named_parameters() if id(p) in decayed}
    for name in ("stack.blocks.1.b", "stack.blocks.1.R", "stack.blocks.0.learnable_skip",
                 "token_embedding.weight", "stack.blocks.0.norm.weight",
                 "stack.blocks.1.outnorm.weight", "stack.blocks.0.igate.bias"):
        assert name not in names, name
    for name in ("stack.blocks.0.proj_up.weight", "stack.blocks.0.q_proj.weight",
                 "stack.blocks.1.igate.weight", "stack.blocks.1.ffn.proj_down.weight",
                 "stack.blocks.0.conv1d.weight", "stack.blocks.0.igate.weight"):
        assert name in names, name
    # With a zero gradient, AdamW's decoupled decay alone would shrink a decayed parameter: b stays.
    b = model.stack.blocks[1].b.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.equal(model.stack.blocks[1].b, b)


def test_bad_data():
    with pytest.raises(ValueError, match="data must hold integer token ids"):
        train(fresh_model(), TRAIN.astype(float), cfg(), progress=False)
    with pytest.raises(ValueError, match="data has 10 tokens"):
        train(fresh_model(), TRAIN[:10], cfg(), progress=False)
    with pytest.raises(ValueError, match="vocab_size is 7"):
        train(fresh_model(), TRAIN + 5, cfg(), progress=False)
    with pytest.raises(ValueError, match=r"stop step must be in \(0, steps = 12\], got 13"):
        train(fresh_model(), TRAIN, cfg(), hooks=[StopAt(13)], progress=False)


def test_context_longer_than_a_transformer_reads_fails_before_training():
    from xlstm_edu.models.baselines import TransformerLM, TransformerLMConfig

    model = TransformerLM(TransformerLMConfig(7, context_length=8, embedding_dim=16, num_layers=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="context_length 16 is longer than the model can read"):
        train(model, TRAIN, cfg(), progress=False)
    assert weights_equal_dict(before, model.state_dict())


def weights_equal_dict(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_divergence_stops_training():
    model = fresh_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.norm.bias.data[0] = before["norm.bias"][0] = float("nan")  # NaN logits
    with pytest.raises(FloatingPointError, match="training loss is nan at update 1: training diverged"):
        train(model, TRAIN, cfg(), progress=False)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items() if k != "norm.bias")  # not updated


def test_grad_norm_is_recorded_without_clipping():
    history = run(fresh_model(), cfg(grad_clip=0.0, steps=4))
    assert math.isfinite(history[-1]["grad_norm"]) and history[-1]["grad_norm"] > 0


# --- the loop ------------------------------------------------------------------------------------------

def test_training_learns_and_records():
    model = fresh_model()
    before = val_loss(model)
    seen = []
    history = run(model, cfg(steps=60, lr=3e-2), every=20, on_record=seen.append, chars_per_token=1.0,
                  at_start=True)
    assert history == seen
    assert [r["step"] for r in history] == [0, 20, 40, 60]
    first, last = history[0], history[-1]
    assert first["train_loss"] is None and first["val_loss"] == before
    assert set(last) >= {"step", "train_loss", "val_loss", "lr", "tokens_per_s", "elapsed_s",
                         "train_s", "val_bits_per_token", "val_bits_per_char", "grad_norm"}
    assert last["val_bits_per_token"] == last["val_loss"] / math.log(2) == last["val_bits_per_char"]
    assert before > 0.95 * math.log(7)  # untrained: about uniform
    assert last["val_loss"] < 0.75 * before  # the chain is predictable; the model must have learnt it
    assert last["lr"] == lr_at(59, lr=3e-2, min_lr=1e-3, warmup_steps=3, total_steps=60)


def test_hooks_see_every_update_and_can_stop_the_run():
    class Spy(Hook):
        def __init__(self):
            self.steps, self.ended = [], None

        def on_step(self, run):
            self.steps.append(run.state.step)
            return run.state.step == 7  # stop after update 7

        def on_end(self, run):
            self.ended = run.state.step

    spy = Spy()
    state = train(fresh_model(), TRAIN, cfg(), hooks=[spy], progress=False)
    assert spy.steps == list(range(1, 8)) and spy.ended == 7 and state.step == 7


def test_time_budget_plans_the_schedule_to_end_with_the_time():
    """After calibration, the schedule length follows the measured speed, and the run stops where the
    schedule ends: the rate has decayed to about its floor by then, and never jumped back up."""
    lr, min_lr = 1e-2, 1e-3
    config = cfg(steps=100_000, warmup_steps=2, lr=lr, min_lr=min_lr)
    seen = []

    class Lr(Hook):
        def on_step(self, run):
            seen.append((run.state.step, run.lr, run.total_steps))

    state = train(fresh_model(), TRAIN, config, hooks=[TimeBudget(0.4), Lr()], progress=False)
    assert state.schedule_steps == state.step < 100_000  # ended by the budget, not by cfg.steps
    steps, lrs, totals = zip(*seen)
    assert len(steps) > 20  # a tiny model: hundreds of updates in 0.4 s (a sanity check on the test)
    assert all(r > 0.99 * lr for r in lrs[2:5])  # calibration: at the peak, not decaying yet
    assert lrs[-1] < min_lr + 0.1 * (lr - min_lr)  # the cosine has (nearly) reached the floor
    rises = [b - a for a, b in zip(lrs[2:], lrs[3:])]
    assert max(rises) < 0.05 * (lr - min_lr)  # re-plans move the end a little, never restart it
    for j in range(5, len(seen)):  # every update used the plan made after the one before it
        assert lrs[j] == lr_at(steps[j] - 1, lr=lr, min_lr=min_lr, warmup_steps=2,
                               total_steps=totals[j - 1])


def test_evaluate_is_pure():
    model = fresh_model()
    model.train()
    rng = torch.get_rng_state()
    a, b = val_loss(model), val_loss(model)
    assert a == b and model.training and torch.equal(rng, torch.get_rng_state())


def test_evaluate_leaves_out_ignored_targets():
    model = fresh_model()
    x, y = WINDOWS
    masked = y.clone()
    masked[:, ::2] = -100  # every other target has no answer
    with torch.no_grad():
        manual = F.cross_entropy(model.eval()(x)[:, 1::2].reshape(-1, 7), y[:, 1::2].reshape(-1))
    assert evaluate(model, x, masked) == pytest.approx(float(manual), rel=1e-6)


def test_runs_are_deterministic_given_the_seed():
    runs = {}
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        model = fresh_model()
        runs[name] = (losses(run(model, cfg(seed=seed))), model)
    assert runs["a"][0] == runs["b"][0] and weights_equal(runs["a"][1], runs["b"][1])
    assert runs["a"][0] != runs["c"][0]  # the seed matters (batches and dropout)


def test_resume_from_checkpoint_is_exact(tmp_path):
    """2N steps in one go == N steps, save, load into fresh objects, N more. N is not a multiple of
    eval_every, so the running loss sum crosses the checkpoint; dropout makes the RNG state matter."""
    full_model = fresh_model()
    full = losses(run(full_model))

    first = fresh_model()
    out = str(tmp_path / "run")
    run(first, out=out, until=6)
    del first
    ck = load_checkpoint(out, build_model=build)
    assert ck.state.step == 6 and ck.train_config == cfg()
    resumed = losses(run(ck.model, ck.train_config, state=ck.state))
    assert resumed == full
    assert weights_equal(ck.model, full_model)

    # Control: the same resume with the RNG states reseeded instead of restored does not match.
    ck = load_checkpoint(out, build_model=build)
    ck.state.rng = None
    assert losses(run(ck.model, ck.train_config, state=ck.state)) != full


def test_resume_in_memory_is_exact():
    model = fresh_model()
    full = losses(run(model))
    model2, state = fresh_model(), TrainState()
    run(model2, state=state, until=5)
    torch.manual_seed(123)  # disturbing the global RNG between sessions must not matter
    assert losses(run(model2, state=state)) == full
    assert weights_equal(model, model2)


# --- checkpoints ---------------------------------------------------------------------------------------

def saved_run(tmp_path, **model_kw):
    model = fresh_model(**model_kw)
    run(model, cfg(steps=4), out=tmp_path / "run")
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


def test_save_onto_a_file_fails_before_writing(tmp_path):
    target = tmp_path / "file"
    target.write_text("precious")
    state = TrainState(optimizer_state={}, rng={})
    with pytest.raises(ValueError, match="is a file, not a directory"):
        save_checkpoint(target, fresh_model(), cfg(), state)
    with pytest.raises(ValueError, match="is a file: cannot create"):
        save_checkpoint(target / "run", fresh_model(), cfg(), state)
    assert target.read_text() == "precious"


def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path):
    model, path = saved_run(tmp_path)
    ck = load_checkpoint(path, build_model=build)
    ck.state.optimizer_state, ck.state.rng = ck.state.optimizer_state, ck.state.rng
    with pytest.raises(TypeError):  # extra that JSON cannot hold: refused before any file is written
        save_checkpoint(path, ck.model, ck.train_config, ck.state, extra={"bad": object()})
    again = load_checkpoint(path, build_model=build)
    assert weights_equal(again.model, model) and again.state.step == 4


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
    (lambda p: (p / "train_config.json").write_text('{"stepz": 3}'),
     r"train_config\.json: not a valid TrainConfig \(unknown TrainConfig fields \['stepz'\]"),
    (lambda p: drop_key(p / "train_state.json", "loss_sum"),
     r"train_state\.json: not a valid train state \(missing keys \['loss_sum'\]\)"),
    (lambda p: drop_key(p / "train_state.json", "step"), r"train_state\.json: step must be an integer"),
    (lambda p: edit_json(p / "train_state.json", history="x"),
     r"train_state\.json: not a valid train state \(history must be a list"),
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


def drop_key(file, key):
    obj = json.loads(file.read_text())
    del obj[key]
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
