"""Bad input, table-driven: every public function raises a ``ValueError`` that names the argument,
before any work is done; every command-line option gives a one-line error, exit code 2, naming the
option, and an existing checkpoint is never touched.

Each row is ``(id, call, match)``: ``call()`` must raise ``ValueError`` with a message matching
``match`` (a regular expression that contains the argument's name).
"""

from __future__ import annotations

import hashlib
import math
import random

import numpy as np
import pytest
import torch

from xlstm_edu import lstm, mlstm, results, slstm, timing
from xlstm_edu.blocks import mLSTMBlock, ratio_to_slstm_at, sLSTMBlock, xLSTMBlockStack, xLSTMStackConfig
from xlstm_edu.cli import main
from xlstm_edu.data import (
    CharTokenizer,
    eval_batches,
    formal_languages,
    random_batches,
    recall,
    spread_windows,
)
from xlstm_edu.data.tokenizers import BPETokenizer
from xlstm_edu.experiments import formal_languages as fl_exp
from xlstm_edu.experiments import recall as recall_exp
from xlstm_edu.models import (
    TokenClassifier,
    build_model,
    match_parameters,
    sample_next_token,
    xLSTMLM,
    xLSTMLMConfig,
)
from xlstm_edu.models.baselines import LSTMLM, LSTMLMConfig, TransformerLM, TransformerLMConfig
from xlstm_edu.training import (
    Checkpoint,
    Evaluate,
    StopAt,
    TimeBudget,
    TrainConfig,
    TrainState,
    evaluate,
    train,
)

f64 = torch.float64
g = torch.Generator().manual_seed(0)


def t(*shape, dtype=f64):
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


Q, K, V, I, F = t(2, 3, 5, 4), t(2, 3, 5, 4), t(2, 3, 5, 6), t(2, 3, 5), t(2, 3, 5)
STATE = mlstm.zero_state(2, 3, 4, 6, Q)
SG = [t(2, 3, 5, 4) for _ in range(4)]
R = t(3, 4, 4, 4)
X = t(2, 5, 3)
W_IH, W_HH = t(16, 3), t(16, 4)


def nan_at(x):
    x = x.clone()
    x.view(-1)[0] = float("nan")
    return x


def xlstm_model():
    torch.manual_seed(0)
    return xLSTMLM(xLSTMLMConfig(vocab_size=13, embedding_dim=16, num_blocks=2, slstm_at=(1,),
                                 mlstm_num_heads=2, slstm_num_heads=2, round_proj_up_to_multiple_of=16,
                                 chunk_size=4))


def lstm_model():
    torch.manual_seed(0)
    return LSTMLM(LSTMLMConfig(13, embedding_dim=8, hidden_size=8, num_layers=1))


def transformer_model():
    torch.manual_seed(0)
    return TransformerLM(TransformerLMConfig(13, context_length=8, embedding_dim=8, num_heads=2,
                                             num_layers=1))


MODELS = {"xlstm": xlstm_model, "lstm": lstm_model, "transformer": transformer_model}
TOKENS = torch.randint(0, 13, (2, 6), generator=g)
NEGATIVE = TOKENS.clone()
NEGATIVE[1, 2] = -1
STACK = xLSTMBlockStack(xLSTMStackConfig(embedding_dim=16, num_blocks=2, slstm_at=(1,),
                                         mlstm_num_heads=2, slstm_num_heads=2,
                                         round_proj_up_to_multiple_of=16)).double()
_, STACK_STATE = STACK(t(3, 4, 16), return_state=True)
M_BLOCK = mLSTMBlock(16, 32, num_heads=2).double()
S_BLOCK = sLSTMBlock(16, 32, num_heads=2).double()
DATA = np.random.default_rng(0).integers(0, 13, 400)

# --- the cells -----------------------------------------------------------------------------------------

CELL_CASES = [
    ("mlstm q ndim", lambda: mlstm.recurrent(Q[0], K, V, I, F), r"q must have 4 dimensions"),
    ("mlstm k shape", lambda: mlstm.parallel(Q, K[:, :2], V, I, F), r"k must have shape"),
    ("mlstm v batch", lambda: mlstm.chunkwise(Q, K, V[:1], I, F), r"v must have shape"),
    ("mlstm igate shape", lambda: mlstm.recurrent(Q, K, V, I[..., :4], F), r"igate_preact must have"),
    ("mlstm fgate nan", lambda: mlstm.chunkwise(Q, K, V, I, nan_at(F)), r"fgate_preact contains NaN"),
    ("mlstm int dtype", lambda: mlstm.parallel(Q.long(), K, V, I, F), r"q must have a floating dtype"),
    ("mlstm mixed dtypes", lambda: mlstm.recurrent(Q.float(), K, V, I, F), r"k has dtype"),
    ("mlstm mixed kinds", lambda: mlstm.recurrent(Q.numpy(), K, V, I, F), r"mixed numpy arrays"),
    ("mlstm list input", lambda: mlstm.recurrent([1.0], K, V, I, F), r"q must be a numpy array"),
    ("mlstm chunk_size 0", lambda: mlstm.chunkwise(Q, K, V, I, F, chunk_size=0), r"chunk_size"),
    ("mlstm chunk_size float", lambda: mlstm.chunkwise(Q, K, V, I, F, chunk_size=2.0), r"chunk_size"),
    ("mlstm state length", lambda: mlstm.recurrent(Q, K, V, I, F, initial_state=STATE[:2]),
     r"initial_state must be a tuple \(c_state, n_state, m_state\)"),
    ("mlstm state batch", lambda: mlstm.chunkwise(Q, K, V, I, F, initial_state=mlstm.zero_state(
        1, 3, 4, 6, Q)), r"c_state must have shape"),
    ("mlstm m_state +inf", lambda: mlstm.recurrent(Q, K, V, I, F, initial_state=(
        STATE[0], STATE[1], torch.full((2, 3), math.inf, dtype=f64))), r"m_state contains NaN or \+inf"),
    ("mlstm step q shape", lambda: mlstm.step(*STATE, Q, K[:, :, 0], V[:, :, 0], I[..., 0], F[..., 0]),
     r"q must have 3 dimensions \(B, NH, DHQK\)"),
    ("mlstm step gate shape", lambda: mlstm.step(*STATE, Q[:, :, 0], K[:, :, 0], V[:, :, 0], I, F[..., 0]),
     r"igate_preact must have"),
    ("mlstm step state", lambda: mlstm.step(STATE[0][:1], STATE[1], STATE[2], Q[:, :, 0], K[:, :, 0],
                                            V[:, :, 0], I[..., 0], F[..., 0]), r"c_state must have shape"),
    ("mlstm step None state", lambda: mlstm.step(None, STATE[1], STATE[2], Q[:, :, 0], K[:, :, 0],
                                                 V[:, :, 0], I[..., 0], F[..., 0]), r"c_state is required"),
    ("slstm gate shape", lambda: slstm.recurrent(SG[0], SG[1][:, :2], *SG[2:], R), r"fgate_preact"),
    ("slstm R layout", lambda: slstm.recurrent(*SG, R.transpose(1, 2).contiguous()[:, :3]), r"R must"),
    ("slstm nan", lambda: slstm.recurrent(nan_at(SG[0]), *SG[1:], R), r"igate_preact contains NaN"),
    ("slstm state batch", lambda: slstm.recurrent(*SG, R, initial_state=slstm.zero_state(1, 3, 4, SG[0])),
     r"h_state must have shape"),
    ("lstm W_hh shape", lambda: lstm.recurrent(X, W_IH, W_HH[:12]), r"W_hh must have shape"),
    ("lstm W_ih shape", lambda: lstm.recurrent(X, W_IH[:, :2], W_HH), r"W_ih must have shape"),
    ("lstm state", lambda: lstm.recurrent(X, W_IH, W_HH, initial_state=(t(2, 4),)),
     r"initial_state must be a tuple \(h, c\)"),
    ("lstm from_torch batch_first", lambda: lstm.LSTM.from_torch(torch.nn.LSTM(3, 4)),
     r"lstm must be built with batch_first=True"),
    ("lstm from_torch layers", lambda: lstm.LSTM.from_torch(torch.nn.LSTM(3, 4, 2, batch_first=True)),
     r"only one-layer"),
]

# --- blocks and stacks ---------------------------------------------------------------------------------

BLOCK_CASES = [
    ("stack x width", lambda: STACK(t(3, 4, 15)), r"x must be a tensor \(B, S, E\) with E = 16"),
    ("stack x ints", lambda: STACK(torch.zeros(3, 4, 16, dtype=torch.long)), r"x must have a floating"),
    ("stack state length", lambda: STACK(t(3, 4, 16), STACK_STATE[:1]), r"state must be a tuple of 2"),
    ("stack state batch", lambda: STACK(t(2, 4, 16), STACK_STATE), r"state\.conv must have shape .*"
                                                                    r"batch size 2"),
    ("stack step state batch", lambda: STACK.step(t(2, 16), STACK_STATE), r"batch size 2"),
    ("stack state dtype", lambda: STACK(t(3, 4, 16), tuple(
        type(s)(*(x.float() for x in s)) for s in STACK_STATE)), r"state\.conv is torch\.float32"),
    ("mlstm block state kind", lambda: M_BLOCK(t(3, 4, 16), STACK_STATE[1]), r"mLSTMBlock state must be"),
    ("slstm block step x", lambda: S_BLOCK.step(t(3, 4, 16)), r"x must be a tensor \(B, E\)"),
    ("config embedding_dim", lambda: xLSTMStackConfig(embedding_dim=0), r"embedding_dim"),
    ("config slstm_at range", lambda: xLSTMStackConfig(num_blocks=2, slstm_at=(2,)), r"slstm_at"),
    ("config slstm_at str", lambda: xLSTMStackConfig(slstm_at="1"), r"slstm_at must be a tuple"),
    ("config backend", lambda: xLSTMStackConfig(mlstm_backend="fast"), r"mlstm_backend"),
    ("config dropout", lambda: xLSTMStackConfig(dropout=1.0), r"dropout"),
    ("config proj factor nan", lambda: xLSTMStackConfig(mlstm_proj_factor=math.nan), r"mlstm_proj_factor"),
    ("ratio text", lambda: ratio_to_slstm_at("1-1", 4), r"ratio must look like 'a:b'"),
    ("ratio too short", lambda: ratio_to_slstm_at("7:1", 2), r"xLSTM\[7:1\] cannot be realised"),
]

# --- models ------------------------------------------------------------------------------------------


def _model_cases():
    cases = []
    for name, make in MODELS.items():
        cases += [
            (f"{name} float tokens", lambda m=make: m()(TOKENS.double()), r"tokens must have an integer"),
            (f"{name} token range", lambda m=make: m()(TOKENS + 13), r"token ids must be in \[0, 13\)"),
            (f"{name} negative token", lambda m=make: m()(NEGATIVE), r"token ids must be in \[0, 13\)"),
            (f"{name} tokens ndim", lambda m=make: m()(TOKENS[0]), r"tokens must be an integer tensor \(B, S\)"),
            (f"{name} empty tokens", lambda m=make: m()(TOKENS[:, :0]), r"tokens must be non-empty"),
            (f"{name} step ndim", lambda m=make: m().step(TOKENS), r"tokens must be an integer tensor \(B,\)"),
            (f"{name} temperature 0", lambda m=make: m().generate(TOKENS, 2, temperature=0.0),
             r"temperature must be a number > 0"),
            (f"{name} temperature nan", lambda m=make: m().generate(TOKENS, 2, temperature=math.nan),
             r"temperature must be a finite number"),
            (f"{name} temperature inf", lambda m=make: m().generate(TOKENS, 2, temperature=math.inf),
             r"temperature must be a finite number"),
            (f"{name} top_k 0", lambda m=make: m().generate(TOKENS, 2, top_k=0), r"top_k must be a positive"),
            (f"{name} max_new_tokens", lambda m=make: m().generate(TOKENS, -1), r"max_new_tokens must be"),
            (f"{name} max_new_tokens float", lambda m=make: m().generate(TOKENS, 2.0), r"max_new_tokens"),
            (f"{name} state batch", lambda m=make: _step_with_other_batch(m()), r"state.*batch size 1"),
        ]
    return cases


def _step_with_other_batch(model):
    _, state = model(TOKENS, return_state=True)  # batch 2
    model.step(TOKENS[:1, 0], state)  # batch 1


MODEL_CASES = _model_cases() + [
    ("sample logits temperature", lambda: sample_next_token(t(2, 5), temperature=-1.0), r"temperature"),
    ("transformer too long", lambda: transformer_model()(torch.zeros(1, 9, dtype=torch.long)),
     r"9 positions exceed context_length = 8"),
    ("transformer no-cache state", lambda: transformer_model().step_no_cache(TOKENS[:, 0], TOKENS[:1]),
     r"state is for batch size 1"),
    ("lstm config tie", lambda: LSTMLMConfig(13, embedding_dim=8, hidden_size=9), r"tie_weights needs"),
    ("lstm config dropout", lambda: LSTMLMConfig(13, dropout=-0.1), r"LSTMLMConfig\.dropout"),
    ("transformer config heads", lambda: TransformerLMConfig(13, embedding_dim=10, num_heads=4),
     r"embedding_dim \(10\) must be divisible by num_heads"),
    ("xlstm config vocab", lambda: xLSTMLMConfig(vocab_size=0), r"vocab_size must be a positive"),
    ("build_model name", lambda: build_model({"model": "gru"}), r'config dict needs a "model" field'),
    ("build_model field", lambda: build_model({"model": "lstm", "vocab_size": 3, "depth": 2}),
     r"unknown LSTMLMConfig fields: \['depth'\]"),
    ("match_parameters rtol", lambda: match_parameters(lambda w: LSTMLMConfig(13, w, w), 1000, rtol=0),
     r"rtol must be a number > 0"),
    ("match_parameters target", lambda: match_parameters(lambda w: LSTMLMConfig(13, w, w), 0),
     r"target must be a positive integer"),
]

# --- training ------------------------------------------------------------------------------------------

SMALL = dict(steps=4, batch_size=2, context_length=8, warmup_steps=1, device="cpu")


def _train(**kw):
    cfg = TrainConfig(**{**SMALL, **kw.pop("cfg", {})})
    return train(kw.pop("model", lstm_model()), kw.pop("data", DATA), cfg, progress=False, **kw)


TRAIN_CASES = [
    ("TrainConfig weight_decay inf", lambda: TrainConfig(weight_decay=math.inf), r"weight_decay"),
    ("TrainConfig weight_decay nan", lambda: TrainConfig(weight_decay=math.nan), r"weight_decay"),
    ("TrainConfig grad_clip nan", lambda: TrainConfig(grad_clip=math.nan), r"grad_clip"),
    ("TrainConfig lr string", lambda: TrainConfig(lr="1e-3"), r"lr must be a finite number"),
    ("TrainConfig beta1", lambda: TrainConfig(beta1=1.5), r"beta1"),
    ("TrainConfig device", lambda: TrainConfig(device=3), r"device must be a device string"),
    ("train device", lambda: _train(cfg={"device": "gpu"}), r"unknown device 'gpu'"),
    ("train data floats", lambda: _train(data=DATA.astype(float)), r"data must hold integer token ids"),
    ("train data 2-D", lambda: _train(data=DATA.reshape(20, 20)), r"data must be 1-D"),
    ("train data short", lambda: _train(data=DATA[:5]), r"data has 5 tokens"),
    ("train data vocab", lambda: _train(data=DATA + 20), r"vocab_size is 13"),
    ("train transformer context", lambda: _train(model=transformer_model(), cfg={"context_length": 9}),
     r"context_length 9 is longer than the model can read"),
    ("train state type", lambda: _train(state={}), r"state must be a TrainState"),
    ("train cfg type", lambda: train(lstm_model(), DATA, SMALL, progress=False), r"cfg must be a TrainConfig"),
    ("StopAt past the end", lambda: _train(hooks=[StopAt(5)]), r"stop step must be in \(0, steps = 4\]"),
    ("StopAt zero", lambda: StopAt(0), r"step must be a positive integer"),
    ("Evaluate every", lambda: Evaluate(lambda m: 0.0, every=0), r"every must be a positive integer"),
    ("Evaluate every_s", lambda: Evaluate(lambda m: 0.0, every_s=-1.0), r"every_s must be a number > 0"),
    ("Evaluate loss_fn", lambda: Evaluate(3.0), r"loss_fn must be a function"),
    ("TimeBudget seconds", lambda: TimeBudget(0.0), r"seconds must be a number > 0"),
    ("TimeBudget nan", lambda: TimeBudget(math.nan), r"seconds must be a finite number"),
    ("Checkpoint every", lambda: Checkpoint("x", every=-1), r"every must be a non-negative integer"),
]

# --- data, timing, results -------------------------------------------------------------------------------

DATA_CASES = [
    ("random_batches batch_size", lambda: random_batches(DATA, 0, 8), r"batch_size must be a positive"),
    ("random_batches generator", lambda: random_batches(DATA, 2, 8, num_batches=-1), r"num_batches"),
    ("eval_batches context", lambda: eval_batches(DATA, 2, 0), r"context_length must be a positive"),
    ("spread_windows n", lambda: spread_windows(DATA, 0, 8), r"n_windows must be a positive"),
    ("CharTokenizer unknown", lambda: CharTokenizer.fit("abc", unknown="drop"), r"unknown must be one"),
    ("BPETokenizer vocab", lambda: BPETokenizer.train("abc abc", vocab_size=100), r"vocab_size"),
    ("median_time repeats", lambda: timing.median_time(lambda: None, repeats=0), r"repeats must be"),
    ("median_time max_seconds", lambda: timing.median_time(lambda: None, max_seconds=0), r"max_seconds"),
    ("peak_memory target", lambda: timing.peak_memory_mib("no_colon"), r"target must look like"),
    ("state_tensors type", lambda: timing.state_tensors({"a": 3}), r"cannot read a state of type int"),
    ("results name", lambda: results.load("no-such-experiment"), r"no stored result 'no-such-experiment'"),
    ("results schema", lambda: results.validate({"settings": {}, "results": []}), r"settings lack"),
    ("results nested row", lambda: results.validate({"settings": dict.fromkeys(results.SETTINGS_KEYS),
                                                     "results": [{"metric": "m", "value": [1]}]}),
     r"row 0 is not flat"),
    ("results value ambiguous", lambda: results.value({"results": [{"metric": "m", "value": 1}] * 2},
                                                      metric="m"), r"2 rows match"),
]

# --- the state-tracking and recall tasks and experiments ------------------------------------------------

TASK_CASES = [
    ("task name", lambda: formal_languages.get_task("dyck"), r"task must be one of"),
    ("task batch_size", lambda: formal_languages.get_task("parity").sample(0, 5), r"batch_size must be"),
    ("task length", lambda: formal_languages.get_task("parity").sample(2, 0), r"length must be"),
    ("length_batches range", lambda: formal_languages.length_batches("parity", 4, 9, 3), r"max_length"),
    ("mqar context", lambda: recall.mqar(2, 8, 20), r"context_length 20 cannot hold 8 pairs"),
    ("mqar vocab", lambda: recall.mqar(2, 8, 64, vocab_size=10), r"vocab_size 10 has only 4 keys"),
    ("mqar pairs", lambda: recall.mqar_batches(2, 0, 64), r"num_pairs must be a positive"),
    ("classifier body", lambda: TokenClassifier(torch.nn.Linear(2, 2), 2), r"body must be one of"),
    ("classifier classes", lambda: TokenClassifier(lstm_model(), 1), r"num_classes must be an integer"),
    ("accuracy_by_length", lambda: fl_exp.accuracy_by_length(lstm_model(), "parity", max_length=0),
     r"max_length must be"),
    ("formal-languages task", lambda: fl_exp.run(settings={"tasks": ("dyck",)}, progress=False),
     r"task must be one of"),
    ("formal-languages model", lambda: fl_exp.run(settings={"models": ("GRU",)}, progress=False),
     r"model must be one of"),
    ("formal-languages jobs", lambda: fl_exp.run(jobs=0, progress=False), r"jobs must be a positive"),
    ("mqar experiment pairs", lambda: recall_exp.run(settings={"pairs": (40,)}, progress=False),
     r"cannot hold 40 pairs"),
]

ALL = CELL_CASES + BLOCK_CASES + MODEL_CASES + TRAIN_CASES + DATA_CASES + TASK_CASES


@pytest.mark.parametrize("case", ALL, ids=[c[0] for c in ALL])
def test_bad_input_raises_value_error(case):
    _, call, match = case
    with pytest.raises(ValueError, match=match):
        call()


def test_training_checks_before_any_update():
    """A bad run leaves the model exactly as it was (the check comes before the first update)."""
    model = transformer_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError):
        _train(model=model, cfg={"context_length": 9})
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_evaluate_rejects_bad_tokens_before_running():
    with pytest.raises(ValueError, match="token ids must be in"):
        evaluate(lstm_model(), TOKENS + 13, TOKENS)


def test_train_state_from_dict_names_the_missing_key():
    with pytest.raises(ValueError, match=r"missing keys \['elapsed_s'"):
        TrainState.from_dict({"step": 1, "history": [], "loss_sum": 0.0, "loss_count": 0,
                              "train_s": 0.0, "schedule_steps": None}, None, None)


# --- the command line ------------------------------------------------------------------------------------

TINY = ["--set", "embedding_dim=16", "--set", "hidden_size=16", "--set", "num_layers=1", "--model", "lstm",
        "--steps", "4", "--batch-size", "2", "--context-length", "8", "--warmup-steps", "1",
        "--eval-every", "2", "--eval-batches", "1", "--checkpoint-every", "0", "--no-progress",
        "--threads", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A text file and a trained run (a checkpoint the error cases must not touch)."""
    root = tmp_path_factory.mktemp("cli")
    rng = random.Random(0)
    text = root / "text.txt"
    text.write_text("\n".join(" ".join(rng.choices("to be or not that is the question".split(), k=9))
                              for _ in range(300)), encoding="utf-8")
    run = root / "run"
    assert main(["train", "--out", str(run), "--text", str(text), *TINY]) == 0
    return root, text, run


def _fingerprint(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _cli_cases(root, text, run):
    new = str(root / "new")
    train_ = ["train", "--out", new, "--text", str(text), *TINY]
    a_file = root / "text.txt"
    return [
        (train_ + ["--batch-size", "0"], "--batch-size must be a positive integer"),
        (train_ + ["--steps", "0"], "--steps must be a positive integer"),
        (train_ + ["--lr", "nan"], "--lr must be a finite number"),
        (train_ + ["--lr", "-1"], "--lr must be a number > 0"),
        (train_ + ["--min-lr", "1"], "--min-lr must be a number >= 0.0 and <="),
        (train_ + ["--weight-decay", "inf"], "--weight-decay must be a finite number"),
        (train_ + ["--weight-decay", "-0.1"], "--weight-decay must be a number >= 0"),
        (train_ + ["--beta1", "1"], "--beta1 must be a number"),
        (train_ + ["--beta2", "-1"], "--beta2 must be a number"),
        (train_ + ["--grad-clip", "-1"], "--grad-clip must be a number >= 0"),
        (train_ + ["--warmup-steps", "-1"], "--warmup-steps must be a non-negative integer"),
        (train_ + ["--seed", "-1"], "--seed must be a non-negative integer"),
        (train_ + ["--context-length", "0"], "--context-length must be a positive integer"),
        (train_ + ["--device", "gpu"], "--device: unknown device 'gpu'"),
        (train_ + ["--eval-every", "0"], "--eval-every must be an integer >= 1"),
        (train_ + ["--eval-batches", "0"], "--eval-batches must be an integer >= 1"),
        (train_ + ["--checkpoint-every", "-1"], "--checkpoint-every must be an integer >= 0"),
        (train_ + ["--until", "5"], "--until must be in (0, --steps = 4]"),
        (train_ + ["--threads", "0"], "--threads must be an integer >= 1"),
        (train_ + ["--tokenizer", "bpe", "--bpe-vocab-size", "100"], "--bpe-vocab-size must be an integer >= 257"),
        (train_ + ["--val-fraction", "1.5"], "--val-fraction must be in (0, 1)"),
        (train_ + ["--set", "nope=1"], "--set 'nope=1'"),
        (train_ + ["--set", "dropout=2"], "model config (--set): LSTMLMConfig.dropout"),
        (train_ + ["--set", "num_layers"], "expected KEY=VALUE"),
        (train_ + ["--ratio", "1:1"], "--ratio applies to --model xlstm only"),
        (["train", "--out", new, "--text", str(text), "--model", "xlstm", "--ratio", "7:1"],
         "--ratio: xLSTM[7:1] cannot be realised"),
        (["train", "--out", new, "--text", str(text), "--model", "transformer", "--set", "context_length=4",
          "--context-length", "8"], "--context-length 8 is longer than the model reads"),
        (train_ + ["--model", "gru"], "argument --model: invalid choice: 'gru'"),
        (["train", "--out", new, "--text", str(root / "missing.txt"), *TINY], "cannot read --text file"),
        (["train", "--out", str(a_file), "--text", str(text), *TINY], "--out: "),
        (["train", "--out", str(a_file / "sub"), "--text", str(text), *TINY], "is a file: cannot create"),
        (["train", "--out", str(run), "--text", str(text), *TINY], "already holds a checkpoint"),
        (["train", "--out", new, "--train-plays", " , ", *TINY], "--train-plays names no play"),
        (["train", "--text", str(text)], "the following arguments are required: --out"),
        (["resume", str(run), "--steps", "3"], "--steps: "),
        (["resume", str(run), "--steps", "9", "--until", "20"], "--until must be in (4, --steps = 9]"),
        (["resume", str(run), "--device", "gpu"], "--device: unknown device 'gpu'"),
        (["resume", str(root / "nope")], "no such checkpoint directory"),
        (["resume", str(a_file)], "not a directory"),
        (["generate", str(run), "--temperature", "0"], "--temperature must be a positive number"),
        (["generate", str(run), "--temperature", "nan"], "--temperature must be a positive number"),
        (["generate", str(run), "--max-new-tokens", "-1"], "--max-new-tokens must be an integer >= 0"),
        (["generate", str(run), "--top-k", "-2"], "--top-k must be an integer >= 0"),
        (["generate", str(run), "--seed", "-1"], "--seed must be an integer >= 0"),
        (["generate", str(run), "--prompt", ""], "--prompt must not be empty"),
        (["generate", str(run), "--device", "cuda:7"], "--device: "),
        (["generate", str(run), "--max-new-tokens", "x"], "argument --max-new-tokens: invalid int value"),
        (["experiment", "nope"], "argument NAME: invalid choice: 'nope'"),
        (["experiment", "language-model", "--out", str(root)], "--out: "),
        (["experiment", "language-model", "--out", str(root / "x.txt")], "a result file ends in .json"),
        (["experiment", "language-model", "--out", str(root / "no" / "x.json")], "does not exist"),
        (["experiment", "language-model", "--seed", "-1"], "--seed must be an integer >= 0"),
        (["experiment", "language-model", "--device", "gpu"], "--device: unknown device 'gpu'"),
        (["experiment", "language-model", "--threads", "2"], "unrecognized arguments: --threads"),
        (["bogus"], "invalid choice: 'bogus'"),
    ]


def test_every_cli_error_is_one_line_exit_2_and_harms_nothing(cli_run, capsys):
    root, text, run = cli_run
    before = _fingerprint(run)
    text_before = text.read_bytes()
    failures = []
    for argv, fragment in _cli_cases(root, text, run):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own errors
            code = e.code
        err = capsys.readouterr().err.strip()
        ok = code == 2 and len(err.splitlines()) == 1 and "error:" in err and fragment in err
        if not ok:
            failures.append((argv, code, err))
    assert not failures, "\n".join(f"{a}: exit {c}, stderr {e!r}" for a, c, e in failures)
    assert _fingerprint(run) == before and text.read_bytes() == text_before
    assert not (root / "new").exists()  # no run was started anywhere
