"""Computations of the chapter "A language model": five models on Shakespeare, and generation cost.

* :func:`load_data`: the Shakespeare plays as character ids, split by play (:mod:`xlstm_edu.data`);
* :func:`make_config`, :func:`matched_configs`: the five models of the comparison (our LSTM, a small
  causal Transformer, xLSTM[1:0], xLSTM[1:1], xLSTM[0:1]) at (nearly) equal parameter counts;
* :func:`train_run`: the package's training loop (:func:`xlstm_edu.training.train`) with its hooks:
  validation records on fixed windows, and a stop after a number of updates or a time budget;
* :func:`compare`: all models with the same budget, batches and validation windows;
* :func:`run`: the experiment ``python -m xlstm_edu experiment language-model``, equal wall time for
  every model, whose stored result the chapter loads (:func:`stored_runs` turns its rows back into
  runs); :func:`results_table` prints runs;
* :func:`generation_cost`, :func:`step_time_at_context`, :func:`time_generate`: what one more token
  costs, in time and memory, as the context grows (recurrent state, key-value cache, recomputing
  everything); :func:`matched_transformer` builds the Transformer to compare with.

Losses are next-token cross-entropies in nats per token; with a character tokenizer, bits per token
(``loss / ln 2``) are bits per character. The figures are in :mod:`xlstm_edu.figures.language_model`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .._checks import check_choice, check_int
from ..data import CharTokenizer, build_corpus, eval_batches, spread_windows
from ..models import build_model, match_parameters, xLSTMLMConfig
from ..models.baselines import LSTMLMConfig, TransformerLMConfig
from ..timing import interleaved_medians, limited_threads, median_time, state_nbytes
from ..training import Evaluate, TimeBudget, TrainConfig, evaluate, train

#: The five models of the comparison, in the order of every table and figure.
MODEL_NAMES = ("LSTM", "Transformer", "xLSTM[1:0]", "xLSTM[1:1]", "xLSTM[0:1]")

#: sLSTM block positions of the xLSTM models (two blocks: m m, m s, s s).
_SLSTM_AT = {"xLSTM[1:0]": (), "xLSTM[1:1]": (1,), "xLSTM[0:1]": (0, 1)}

LN2 = math.log(2.0)

#: The settings of the stored experiment, and of its ``--quick`` version (the same models and recipe,
#: a sixth of the training time).
EXPERIMENT = dict(models=MODEL_NAMES, seconds_per_model=120.0, max_steps=100_000, target_params=200_000,
                  context_length=128, batch_size=16, lr=2e-3, warmup_steps=50, n_evals=15,
                  n_val_windows=256, threads=1, sample_tokens=400)
QUICK = dict(EXPERIMENT, seconds_per_model=20.0, n_evals=8)


# --- data ------------------------------------------------------------------------------------------

@dataclass
class LMData:
    """Character ids of the training and validation plays, and their tokenizer."""

    train_tokens: torch.Tensor  # (N_train,) int64
    val_tokens: torch.Tensor  # (N_val,) int64
    tokenizer: CharTokenizer

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size


def load_data(edition: str = "modern") -> LMData:
    """Shakespeare split by play (:func:`xlstm_edu.data.build_corpus`: 33 training plays, 4 validation
    plays), as character ids. The tokenizer is fitted on the training text; a validation character it
    has not seen would become the unknown id 0."""
    train_text, val_text = build_corpus(edition=edition)
    tokenizer = CharTokenizer.fit(train_text, unknown="replace")
    return LMData(torch.from_numpy(tokenizer.encode_array(train_text)),
                  torch.from_numpy(tokenizer.encode_array(val_text)), tokenizer)


# --- models at equal size ----------------------------------------------------------------------------

def make_config(name: str, width: int, vocab_size: int, *, context_length: int, num_layers: int = 2,
                num_heads: int = 4):
    """The config of model ``name`` (one of :data:`MODEL_NAMES`) at width ``width``.

    Every model has ``num_layers`` layers (LSTM layers, Transformer blocks, xLSTM blocks) of width
    ``width``, ``num_heads`` heads where it has heads, no dropout, and a head tied to the embedding.
    The LSTM runs the package's weights through torch's fused kernel (same outputs, faster); the
    xLSTM rounds its up-projections to multiples of 16 (the official 64 would make the parameter
    count jump in big steps at these small widths).
    """
    check_choice("name", name, MODEL_NAMES)
    if name == "LSTM":
        return LSTMLMConfig(vocab_size, embedding_dim=width, hidden_size=width, num_layers=num_layers,
                            fused=True)
    if name == "Transformer":
        return TransformerLMConfig(vocab_size, context_length=context_length, embedding_dim=width,
                                   num_heads=num_heads, num_layers=num_layers)
    slstm_at = _SLSTM_AT[name] if num_layers == 2 else _ratio_blocks(name, num_layers)
    return xLSTMLMConfig(vocab_size=vocab_size, embedding_dim=width, num_blocks=num_layers,
                         slstm_at=slstm_at, context_length=context_length, mlstm_num_heads=num_heads,
                         slstm_num_heads=num_heads, round_proj_up_to_multiple_of=16)


def _ratio_blocks(name: str, num_blocks: int) -> tuple[int, ...]:
    from ..blocks import ratio_to_slstm_at

    return ratio_to_slstm_at(name[len("xLSTM["):-1], num_blocks)


def matched_configs(vocab_size: int, target_params: int, *, context_length: int,
                    names: Sequence[str] = MODEL_NAMES, num_layers: int = 2, num_heads: int = 4,
                    rtol: float = 0.1) -> dict[str, tuple[object, int]]:
    """``{name: (config, parameters)}``: each model at the width (a multiple of ``num_heads``, at least
    ``2 num_heads``) whose parameter count is closest to ``target_params``
    (:func:`xlstm_edu.models.match_parameters`)."""
    out = {}
    for name in names:
        make = functools.partial(_make_at_least, name, vocab_size=vocab_size,
                                 context_length=context_length, num_layers=num_layers,
                                 num_heads=num_heads)  # width -> config
        out[name] = match_parameters(make, target_params, multiple_of=num_heads, rtol=rtol)
    return out


def _make_at_least(name: str, width: int, vocab_size: int, *, context_length: int, num_layers: int,
                   num_heads: int):
    """:func:`make_config` with the width raised to ``2 num_heads`` (the sLSTM needs heads of size 2
    or more), so that the width search of ``match_parameters`` may start at ``num_heads``."""
    return make_config(name, max(width, 2 * num_heads), vocab_size, context_length=context_length,
                       num_layers=num_layers, num_heads=num_heads)


def matched_transformer(model: nn.Module, *, context_length: int, num_heads: int = 4,
                        max_width: int = 2048) -> TransformerLMConfig:
    """A Transformer config with ``model``'s vocabulary and number of layers, and the width (a multiple
    of ``num_heads``) whose parameter count *without embeddings* is closest to ``model``'s: the same
    work per token in the layers, whatever the position-embedding table of ``context_length`` rows
    adds (:func:`xlstm_edu.models.match_parameters` with ``exclude_embedding=True``)."""
    c = model.config
    layers = getattr(c, "num_blocks", None) or c.num_layers

    def config(width: int) -> TransformerLMConfig:
        return TransformerLMConfig(c.vocab_size, context_length=context_length, embedding_dim=width,
                                   num_heads=num_heads, num_layers=layers)

    target = model.num_parameters(exclude_embedding=True)
    best, _ = match_parameters(config, target, multiple_of=num_heads, max_width=max_width, rtol=0.1,
                               exclude_embedding=True)
    return best


# --- training with a budget of updates or of seconds -----------------------------------------------

def train_run(model: nn.Module, data: LMData, cfg: TrainConfig, *, steps: int | None = None,
              seconds: float | None = None, n_evals: int = 10,
              windows: tuple[torch.Tensor, torch.Tensor] | None = None,
              n_val_windows: int = 64) -> dict:
    """Train ``model`` with :func:`xlstm_edu.training.train` for ``steps`` updates or for ``seconds``
    of training time, validating on ``windows`` before the first update and ``n_evals`` times on the
    way (every ``steps / n_evals`` updates, or every ``seconds / n_evals`` seconds of training).

    With ``seconds``, the :class:`~xlstm_edu.training.TimeBudget` hook plans the cosine schedule to end
    when the time is up; ``cfg.steps`` is then the most updates allowed (give a bound the budget does
    not reach). Returns ``{"history": records,
    "steps", "train_s" (update time, validation excluded), "tokens_per_s", "cpu_per_wall" (process
    CPU time over wall time during training: about 1 with one thread and nothing else running),
    "final_train_loss"}``; each record is an :class:`~xlstm_edu.training.Evaluate` record.
    """
    if (steps is None) == (seconds is None):
        raise ValueError("give exactly one of steps and seconds")
    check_int("n_evals", n_evals)
    if windows is None:
        windows = spread_windows(data.val_tokens, n_val_windows, cfg.context_length)

    def loss_fn(m):
        return evaluate(m, *windows, batch_size=cfg.batch_size)

    records = dict(at_start=True, chars_per_token=1.0)  # character tokens: bits per token = per char
    if steps is not None:
        cfg = dataclasses.replace(cfg, steps=check_int("steps", steps))
        hooks = [Evaluate(loss_fn, every=max(1, steps // n_evals), **records)]
    else:
        hooks = [TimeBudget(seconds), Evaluate(loss_fn, every_s=seconds / n_evals, **records)]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    state = train(model, data.train_tokens, cfg, hooks=hooks, progress=False)
    cpu_per_wall = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
    tokens = state.step * cfg.batch_size * cfg.context_length
    return {"history": state.history, "steps": state.step, "train_s": state.train_s,
            "tokens_per_s": tokens / state.train_s, "cpu_per_wall": cpu_per_wall,
            "final_train_loss": state.history[-1]["train_loss"]}


def compare(data: LMData, *, target_params: int, context_length: int,
            names: Sequence[str] = MODEL_NAMES, steps: int | None = None, seconds: float | None = None,
            train_config: TrainConfig | None = None, n_evals: int = 10, n_val_windows: int = 64,
            seed: int = 0, num_layers: int = 2,
            progress: Callable[[str], None] | None = None) -> tuple[dict, dict]:
    """Train every model in ``names`` at ``target_params`` parameters with the same budget
    (``steps`` updates or ``seconds`` of training), the same batches (``seed``) and the same
    validation windows. Returns ``(results, models)``: ``results[name]`` is :func:`train_run`'s dict
    plus ``"params"`` and ``"config"``; ``models[name]`` is the trained model."""
    cfg = train_config if train_config is not None else TrainConfig(context_length=context_length)
    cfg = dataclasses.replace(cfg, context_length=context_length, seed=seed)
    configs = matched_configs(data.vocab_size, target_params, context_length=context_length, names=names,
                              num_layers=num_layers)
    windows = spread_windows(data.val_tokens, n_val_windows, context_length)
    results, models = {}, {}
    for name in names:
        config, n_params = configs[name]
        torch.manual_seed(seed)  # the same initialisation draws for every run of this model
        model = build_model(config)
        res = train_run(model, data, cfg, steps=steps, seconds=seconds, n_evals=n_evals, windows=windows)
        res["params"] = n_params
        res["config"] = model.to_dict()
        results[name], models[name] = res, model
        if progress is not None:
            progress(f"{name}: {res['steps']} updates in {res['train_s']:.1f} s, "
                     f"val loss {res['history'][-1]['val_loss']:.3f} nats")
    return results, models


@torch.no_grad()
def sample_text(model: nn.Module, tokenizer: CharTokenizer, prompt: str = "\n", n_tokens: int = 300, *,
                temperature: float = 0.8, top_k: int | None = 10, seed: int = 0) -> str:
    """``prompt`` continued by ``n_tokens`` sampled characters (seeded; returns only the new text)."""
    idx = torch.tensor([tokenizer.encode(prompt)])  # (1, S0)
    out = model.generate(idx, n_tokens, temperature=temperature, top_k=top_k,
                         generator=torch.Generator().manual_seed(seed))  # (1, S0 + n_tokens)
    return tokenizer.decode(out[0, idx.shape[1]:].tolist())


def full_validation_loss(model: nn.Module, tokens: torch.Tensor, context_length: int,
                         batch_size: int = 32) -> float:
    """Mean loss over *every* token of ``tokens``, in consecutive windows of ``context_length``
    (:func:`xlstm_edu.data.eval_batches`; each window starts from an empty context)."""
    total, count = 0.0, 0
    for x, y in eval_batches(tokens, batch_size, context_length):
        n = y.numel()
        total += evaluate(model, x, y, batch_size=batch_size) * n
        count += n
    return total / count


# --- the experiment ----------------------------------------------------------------------------------

def run(*, quick: bool = False, seed: int = 0, device: str = "cpu", progress: bool = True,
        data: LMData | None = None, settings: dict | None = None) -> tuple[dict, list[dict]]:
    """The experiment behind the chapter's stored result: every model of :data:`MODEL_NAMES` trained
    for the same wall time (:data:`EXPERIMENT`, or :data:`QUICK` with ``quick``) at the same size,
    then validated on the *whole* validation text (4 held-out plays) and sampled.

    Returns ``(settings, rows)`` for :func:`xlstm_edu.experiments.registry.run_experiment`: per model
    the rows ``params``, ``steps``, ``train_s``, ``tokens_per_s``, ``cpu_per_wall``,
    ``final_val_loss``, ``final_val_bits_per_char`` and ``sample`` (a string), and per validation
    record ``val_bits_per_char`` and ``train_loss`` with its ``step`` and ``train_s``.
    ``settings`` overrides entries of the recipe (tests use it to run in seconds).
    """
    s = dict(QUICK if quick else EXPERIMENT, **(settings or {}))
    data = load_data() if data is None else data
    cfg = TrainConfig(steps=s["max_steps"], batch_size=s["batch_size"],
                      context_length=s["context_length"], lr=s["lr"], min_lr=s["lr"] / 10,
                      warmup_steps=s["warmup_steps"], seed=seed, device=device)
    with limited_threads(s["threads"]):
        results, models = compare(data, names=s["models"], target_params=s["target_params"],
                                  context_length=s["context_length"], seconds=s["seconds_per_model"],
                                  train_config=cfg, n_evals=s["n_evals"],
                                  n_val_windows=s["n_val_windows"], seed=seed,
                                  progress=print if progress else None)
        rows = []
        for name, res in results.items():
            model = models[name]
            final = full_validation_loss(model, data.val_tokens, s["context_length"])
            sample = sample_text(model, data.tokenizer, "\n", s["sample_tokens"], seed=seed)
            for metric in ("params", "steps", "train_s", "tokens_per_s", "cpu_per_wall"):
                rows.append({"model": name, "metric": metric, "value": res[metric]})
            rows += [{"model": name, "metric": "final_val_loss", "value": final},
                     {"model": name, "metric": "final_val_bits_per_char", "value": final / LN2},
                     {"model": name, "metric": "sample", "value": sample}]
            for rec in res["history"]:
                for metric in ("val_bits_per_char", "train_loss"):
                    rows.append({"model": name, "metric": metric, "value": rec[metric],
                                 "step": rec["step"], "train_s": rec["train_s"]})
    settings_out = {**s, "models": list(s["models"]), "vocab_size": data.vocab_size,
                    "train_chars": int(data.train_tokens.numel()),
                    "val_chars": int(data.val_tokens.numel()), "train_config": cfg.to_dict(),
                    "sample": {"prompt": "\n", "temperature": 0.8, "top_k": 10}}
    return settings_out, rows


def stored_runs(result: dict) -> dict[str, dict]:
    """The rows of a stored ``language-model`` result back as runs, ``{model: {"params", "steps",
    "train_s", "tokens_per_s", "cpu_per_wall", "final_val_loss", "final_val_bits_per_char", "sample",
    "history": [{"step", "train_s", "val_bits_per_char", "train_loss"}, ...]}}``, in the order of
    :data:`MODEL_NAMES` (the shape :func:`results_table` and the figures read)."""
    runs: dict[str, dict] = {}
    for row in result["results"]:
        run_ = runs.setdefault(row["model"], {"history": {}})
        if "step" in row:
            rec = run_["history"].setdefault(row["step"], {"step": row["step"],
                                                           "train_s": row["train_s"]})
            rec[row["metric"]] = row["value"]
        else:
            run_[row["metric"]] = row["value"]
    for run_ in runs.values():
        run_["history"] = [run_["history"][k] for k in sorted(run_["history"])]
        for rec in run_["history"]:
            rec["val_loss"] = rec["val_bits_per_char"] * LN2
    return {name: runs[name] for name in MODEL_NAMES if name in runs}


def results_table(results: dict, *, final_key: str | None = None) -> str:
    """A fixed-width text table: one row per model with parameters, updates, training seconds,
    tokens/s and the last validation loss (nats and bits per character). ``final_key``: take the loss
    from ``results[name][final_key]`` (e.g. ``"final_val_loss"``) instead of the last record."""
    head = f"{'model':<12} {'params':>8} {'updates':>8} {'train s':>8} {'tokens/s':>9} " \
           f"{'val nats':>9} {'bits/char':>9}"
    rows = [head, "-" * len(head)]
    for name, r in results.items():
        loss = r[final_key] if final_key else r["history"][-1]["val_loss"]
        rows.append(f"{name:<12} {r['params']:>8,} {r['steps']:>8,} {r['train_s']:>8.1f} "
                    f"{r['tokens_per_s']:>9,.0f} {loss:>9.3f} {loss / LN2:>9.3f}")
    return "\n".join(rows)


# --- generation cost ---------------------------------------------------------------------------------

_MODES = ("step", "no_cache")


def _step_fn(model: nn.Module, mode: str):
    """``model.step`` or ``model.step_no_cache``; ``ValueError`` for another mode or a missing method."""
    check_choice("mode", mode, _MODES)
    if mode == "no_cache" and not hasattr(model, "step_no_cache"):
        raise ValueError(f"{type(model).__name__} has no step_no_cache (mode='no_cache')")
    return model.step if mode == "step" else model.step_no_cache


def _prefill(model: nn.Module, context: int, mode: str, seed: int):
    """A state after ``context`` random tokens (batch 1): the recurrent state or key-value cache
    (``mode="step"``), or the token ids themselves (``mode="no_cache"``, Transformer only)."""
    check_int("context", context)
    limit = model.max_context_length
    if limit is not None and context + 1 > limit:
        raise ValueError(f"context {context} + 1 new token exceeds the model's context_length {limit}")
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, model.config.vocab_size, (1, context), generator=g)  # (1, T)
    if mode == "no_cache":
        return prompt
    _, state = model(prompt, return_state=True)
    return state


@torch.no_grad()
def generation_cost(model: nn.Module, contexts: Sequence[int], *, mode: str = "step", repeats: int = 20,
                    warmup: int = 2, rounds: int = 4, seed: int = 0) -> list[dict]:
    """Per context length ``T`` in ``contexts``: ``{"context": T, "time_s": median time of one more
    token, "state_bytes": bytes carried to the next token}`` (the state after ``T + 1`` tokens:
    recurrent state, key-value cache, or for ``mode="no_cache"`` the token ids).

    The state after ``T`` random tokens comes from one ``forward(..., return_state=True)``; then the
    same step from that state is timed. The contexts are timed in ``rounds`` interleaved rounds of
    ``repeats // rounds`` steps each (:func:`xlstm_edu.timing.interleaved_medians`), so a slow moment
    of the machine affects all of them alike. Batch size 1, eval mode (restored afterwards)."""
    step = _step_fn(model, mode)
    check_int("repeats", repeats)
    check_int("rounds", rounds)
    check_int("warmup", warmup, minimum=0)
    was_training = model.training
    model.eval()
    try:
        states = {T: _prefill(model, T, mode, seed) for T in contexts}
        token = torch.tensor([1])  # (B=1,)
        times = interleaved_medians({T: functools.partial(step, token, s) for T, s in states.items()},
                                    rounds=rounds, repeats=max(1, repeats // rounds), warmup=warmup)
        return [{"context": int(T), "time_s": times[T],
                 "state_bytes": state_nbytes(step(token, s)[1])} for T, s in states.items()]
    finally:
        model.train(was_training)


def step_time_at_context(model: nn.Module, context: int, *, mode: str = "step", repeats: int = 20,
                         warmup: int = 2, seed: int = 0) -> float:
    """Median wall time (seconds) of one more token after ``context`` tokens (:func:`generation_cost`
    with one context)."""
    return generation_cost(model, [context], mode=mode, repeats=repeats, warmup=warmup, rounds=1,
                           seed=seed)[0]["time_s"]


def time_generate(model: nn.Module, n_tokens: int, *, repeats: int = 3, prompt_length: int = 1,
                  seed: int = 0) -> dict:
    """Wall time of ``model.generate`` producing ``n_tokens`` tokens after a random prompt of
    ``prompt_length`` tokens (batch 1, temperature 0.8, top-k 10, seeded): ``{"median_s",
    "per_token_s"}`` over ``repeats`` runs (after one untimed run)."""
    check_int("n_tokens", n_tokens)
    prompt = torch.randint(0, model.config.vocab_size, (1, prompt_length),
                           generator=torch.Generator().manual_seed(seed))  # (1, S0)

    def generate():
        model.generate(prompt, n_tokens, temperature=0.8, top_k=10,
                       generator=torch.Generator().manual_seed(seed))

    median = median_time(generate, repeats=repeats, warmup=1)
    return {"median_s": median, "per_token_s": median / n_tokens}
