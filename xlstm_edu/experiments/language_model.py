"""Experiments of the chapter "A language model": five models on Shakespeare, and generation cost.

* :func:`load_data`: the Shakespeare plays as character ids, split by play (:mod:`xlstm_edu.data`);
* :func:`make_config`, :func:`matched_configs`: the five models of the comparison (our LSTM, a small
  causal Transformer, xLSTM[1:0], xLSTM[1:1], xLSTM[0:1]) at (nearly) equal parameter counts;
* :func:`train_run`: the package's training loop (:func:`xlstm_edu.training.train`) run in pieces,
  validated in between, stopped after a number of updates *or* after a training-time budget;
* :func:`compare`: all models with the same budget; :func:`run_comparison` (also the command
  ``python -m xlstm_edu.experiments.language_model``) trains each model for the same wall time and
  saves the histories as JSON; :func:`load_runs`, :func:`results_table`, :func:`plot_loss_curves`;
* :func:`state_bytes`, :func:`step_time_at_context`, :func:`generation_cost`, :func:`time_generate`,
  :func:`plot_generation_cost`: what generating one more token costs, in time and memory, as the
  context grows (recurrent state against a key-value cache against recomputing everything);
  :func:`matched_transformer` builds the Transformer to compare with (same layers, same parameters
  outside the embeddings).

Losses are next-token cross-entropies in nats per token; with a character tokenizer, bits per token
(``loss / ln 2``) are bits per character.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data import CharTokenizer, build_corpus
from ..data.loader import as_token_tensor
from ..models import build_model, xLSTMLMConfig
from ..models.baselines import LSTMLMConfig, TransformerLMConfig, match_parameters
from ..training import TrainConfig, TrainState, evaluate, train

__all__ = [
    "MODEL_NAMES",
    "LN2",
    "LMData",
    "load_data",
    "make_config",
    "matched_configs",
    "validation_windows",
    "validation_loss",
    "train_run",
    "compare",
    "run_comparison",
    "load_runs",
    "results_table",
    "plot_loss_curves",
    "sample_text",
    "state_bytes",
    "step_time_at_context",
    "generation_cost",
    "matched_transformer",
    "time_generate",
    "plot_generation_cost",
    "main",
]

#: The five models of the comparison, in the order of every table and figure.
MODEL_NAMES = ("LSTM", "Transformer", "xLSTM[1:0]", "xLSTM[1:1]", "xLSTM[0:1]")

#: sLSTM block positions of the xLSTM models (two blocks: m m, m s, s s).
_SLSTM_AT = {"xLSTM[1:0]": (), "xLSTM[1:1]": (1,), "xLSTM[0:1]": (0, 1)}

LN2 = math.log(2.0)

#: The command that reproduces ``book/data/lm_runs.json`` (also stored in the file).
REPRODUCE = "python -m xlstm_edu.experiments.language_model --seconds 120 --out book/data/lm_runs.json"


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
    if name == "LSTM":
        return LSTMLMConfig(vocab_size, embedding_dim=width, hidden_size=width, num_layers=num_layers,
                            fused=True)
    if name == "Transformer":
        return TransformerLMConfig(vocab_size, context_length=context_length, embedding_dim=width,
                                   num_heads=num_heads, num_layers=num_layers)
    if name in _SLSTM_AT:
        slstm_at = _SLSTM_AT[name] if num_layers == 2 else _ratio_blocks(name, num_layers)
        return xLSTMLMConfig(vocab_size=vocab_size, embedding_dim=width, num_blocks=num_layers,
                             slstm_at=slstm_at, context_length=context_length,
                             mlstm_num_heads=num_heads, slstm_num_heads=num_heads,
                             round_proj_up_to_multiple_of=16)
    raise ValueError(f"unknown model {name!r}; choose from {MODEL_NAMES}")


def _ratio_blocks(name: str, num_blocks: int) -> tuple[int, ...]:
    from ..blocks import ratio_to_slstm_at

    return ratio_to_slstm_at(name[len("xLSTM["):-1], num_blocks)


def matched_configs(vocab_size: int, target_params: int, *, context_length: int,
                    names: Sequence[str] = MODEL_NAMES, num_layers: int = 2, num_heads: int = 4,
                    rtol: float = 0.1) -> dict[str, tuple[object, int]]:
    """``{name: (config, parameters)}``: each model at the width (a multiple of ``num_heads``, at least
    ``2 num_heads``) whose parameter count is closest to ``target_params``
    (:func:`xlstm_edu.models.baselines.match_parameters`)."""
    out = {}
    for name in names:
        make = functools.partial(_make_at_least, name, vocab_size=vocab_size,
                                 context_length=context_length,
                                 num_layers=num_layers, num_heads=num_heads)  # width -> config
        out[name] = match_parameters(make, target_params, multiple_of=num_heads, rtol=rtol)
    return out


def _make_at_least(name: str, width: int, vocab_size: int, *, context_length: int, num_layers: int,
                   num_heads: int):
    """:func:`make_config` with the width raised to ``2 num_heads`` (the sLSTM needs heads of size 2
    or more), so that the width search of ``match_parameters`` may start at ``num_heads``."""
    return make_config(name, max(width, 2 * num_heads), vocab_size, context_length=context_length,
                       num_layers=num_layers, num_heads=num_heads)


# --- validation ------------------------------------------------------------------------------------

def validation_windows(tokens, n_windows: int, context_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_windows`` windows spread evenly over the whole validation text (every held-out play), as
    inputs and targets ``(n_windows, S)``; ``y[:, t] = x[:, t + 1]`` in the text."""
    tokens = as_token_tensor(tokens, context_length, "tokens")
    last = tokens.numel() - context_length - 1  # largest start of a full window
    n = min(n_windows, last + 1)
    starts = torch.linspace(0, last, n).round().long()  # (n,)
    idx = starts[:, None] + torch.arange(context_length + 1)  # (n, S + 1)
    window = tokens[idx]  # (n, S + 1)
    return window[:, :-1], window[:, 1:]


@torch.no_grad()
def validation_loss(model: nn.Module, windows: tuple[torch.Tensor, torch.Tensor],
                    batch_size: int = 32) -> float:
    """Mean next-token cross-entropy (nats) of ``model`` on ``windows`` (:func:`validation_windows`),
    in eval mode (restored afterwards)."""
    x_all, y_all = windows
    was_training = model.training
    model.eval()
    total = 0.0
    for x, y in zip(x_all.split(batch_size), y_all.split(batch_size)):
        logits = model(x)  # (b, S, V)
        total += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum").item()
    model.train(was_training)
    return total / y_all.numel()


# --- training with a budget of updates or of seconds -----------------------------------------------

def _record(step: int, train_s: float, train_loss: float | None, val_loss: float) -> dict:
    return {"step": step, "elapsed_s": train_s, "train_loss": train_loss, "val_loss": val_loss,
            "val_bits_per_char": val_loss / LN2}


def _mean_train_loss(state: TrainState) -> float | None:
    """Mean training loss since the last call (train() itself resets the sum when it makes a record,
    which it does only after the run's last update: then take its record's mean)."""
    if state.loss_count:
        mean = state.loss_sum / state.loss_count
        state.loss_sum, state.loss_count = 0.0, 0
        return mean
    if state.history and state.history[-1]["step"] == state.step:
        return state.history[-1]["train_loss"]
    return None


def train_run(model: nn.Module, data: LMData, cfg: TrainConfig, *, steps: int | None = None,
              seconds: float | None = None, n_evals: int = 10,
              windows: tuple[torch.Tensor, torch.Tensor] | None = None,
              n_val_windows: int = 64, calibration_steps: int | None = None) -> dict:
    """Train ``model`` with :func:`xlstm_edu.training.train` for ``steps`` updates, or for ``seconds``
    of training time, and validate it ``n_evals`` times on the way (and once before the first update).

    The loop runs in pieces (``train(..., until=k)`` continues exactly where the previous piece
    stopped), and :func:`validation_loss` on ``windows`` runs between pieces; ``elapsed_s`` counts the
    training pieces only, not the validations.

    With ``seconds``, the first ``calibration_steps`` updates (default: the warmup,
    ``cfg.warmup_steps``, at least 5) measure the time per update; then, before every piece, the
    run's length ``cfg.steps`` (where the cosine schedule ends) is set to the number of updates that
    fit into the rest of the budget at the speed measured so far, so the schedule ends when the time
    is up. The learning rate during warmup does not depend on ``cfg.steps``; later re-plans move the
    end of the cosine by a little and change the learning rate smoothly.

    Returns ``{"history": [records], "steps", "train_s", "train_cpu_s", "tokens_per_s",
    "final_train_loss"}`` (``train_cpu_s``: the process's CPU time while training; with one thread it
    is close to ``train_s`` unless other programs competed for the core); each
    record has ``step``, ``elapsed_s``, ``train_loss`` (mean over the updates since the previous
    record; ``None`` before training), ``val_loss`` (nats) and ``val_bits_per_char``.
    """
    if (steps is None) == (seconds is None):
        raise ValueError("give exactly one of steps and seconds")
    if windows is None:
        windows = validation_windows(data.val_tokens, n_val_windows, cfg.context_length)
    total = steps if steps is not None else 10**9  # provisional length; fixed after calibration
    # no validation inside train() (we validate between pieces, on spread-out windows)
    cfg = dataclasses.replace(cfg, steps=total, eval_every=total, eval_batches=1, out_dir=None,
                              device="cpu")
    torch.optim.AdamW([nn.Parameter(torch.zeros(1))])  # the first optimizer imports torch._dynamo
    # (seconds, once per process): do it before the clock starts
    state = TrainState()
    history = [_record(0, 0.0, None, validation_loss(model, windows))]
    train_s = 0.0

    cpu_s = 0.0  # CPU time of this process during training: about train_s when nothing else ran

    def run_piece(until: int) -> None:
        nonlocal train_s, cpu_s
        t0, c0 = time.perf_counter(), time.process_time()
        train(model, data.train_tokens, data.val_tokens, cfg, state=state, until=until, progress=False)
        train_s += time.perf_counter() - t0
        cpu_s += time.process_time() - c0

    if seconds is not None:
        calib = calibration_steps if calibration_steps is not None else max(cfg.warmup_steps, 5)
        run_piece(calib)
        total = state.step + int((seconds - train_s) / (train_s / state.step))
    piece = max(1, math.ceil(total / n_evals))
    next_eval = piece
    while next_eval <= state.step:
        next_eval += piece
    while True:
        if seconds is not None:  # re-plan: the updates that still fit, at the speed measured so far
            total = state.step + int((seconds - train_s) / (train_s / state.step))
            cfg = dataclasses.replace(cfg, steps=max(total, 1), eval_every=max(total, 1))
        if state.step >= total:
            break
        run_piece(min(next_eval, total))
        if state.step >= next_eval:
            history.append(_record(state.step, train_s, _mean_train_loss(state),
                                   validation_loss(model, windows)))
            next_eval = state.step + piece
    if history[-1]["step"] != state.step:  # stopped by the clock between two validations
        history.append(_record(state.step, train_s, _mean_train_loss(state),
                               validation_loss(model, windows)))
    tokens = state.step * cfg.batch_size * cfg.context_length
    return {"history": history, "steps": state.step, "train_s": train_s, "train_cpu_s": cpu_s,
            "tokens_per_s": tokens / train_s if train_s > 0 else float("nan"),
            "final_train_loss": history[-1]["train_loss"]}


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
    windows = validation_windows(data.val_tokens, n_val_windows, context_length)
    results, models = {}, {}
    for name in names:
        config, n_params = configs[name]
        torch.manual_seed(seed)  # the same initialisation draws for every run of this model
        model = build_model(config)
        res = train_run(model, data, cfg, steps=steps, seconds=seconds, n_evals=n_evals, windows=windows)
        res["params"] = n_params
        res["config"] = model.to_dict()
        res["loadavg_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
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


def run_comparison(out_path, *, seconds_per_model: float = 120.0, models: Sequence[str] = MODEL_NAMES,
                   seed: int = 0, target_params: int = 200_000, context_length: int = 128,
                   batch_size: int = 16, lr: float = 2e-3, warmup_steps: int = 50, n_evals: int = 15,
                   n_val_windows: int = 256, threads: int | None = 1, sample_tokens: int = 400,
                   data: LMData | None = None, progress: Callable[[str], None] | None = print) -> dict:
    """Train each model for the same wall time and save the results as JSON at ``out_path``.

    Every model gets ``seconds_per_model`` seconds of training (validation excluded) at
    ``target_params`` parameters, the same batches and the same schedule recipe (warmup, then cosine
    to the end of the time budget; :func:`train_run`). After training: the validation loss on the
    *whole* validation text (4 held-out plays; :func:`xlstm_edu.training.evaluate`) and a sample.
    ``threads`` sets ``torch.set_num_threads`` (1 is the most reproducible on a shared machine;
    ``None`` leaves torch's default).

    The JSON holds ``settings`` (everything above, the machine, the command), and per model
    ``params``, ``config``, ``steps``, ``train_s``, ``tokens_per_s``, ``history`` (records with
    ``step``, ``elapsed_s``, ``train_loss``, ``val_loss``, ``val_bits_per_char``), ``final_val_loss``,
    ``final_val_bits_per_char`` and ``sample``. Returns the same dict.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    data = load_data() if data is None else data
    cfg = TrainConfig(batch_size=batch_size, context_length=context_length, lr=lr, min_lr=lr / 10,
                      warmup_steps=warmup_steps, seed=seed)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    t_start = time.time()
    results, trained = compare(data, target_params=target_params, context_length=context_length,
                               names=models, seconds=seconds_per_model, train_config=cfg,
                               n_evals=n_evals, n_val_windows=n_val_windows, seed=seed,
                               progress=progress)
    full_cfg = dataclasses.replace(cfg, eval_batches=10**9, device="cpu")  # every validation window
    for name, res in results.items():
        model = trained[name]
        res["final_val_loss"] = evaluate(model, data.val_tokens, full_cfg)
        res["final_val_bits_per_char"] = res["final_val_loss"] / LN2
        res["sample"] = sample_text(model, data.tokenizer, "\n", sample_tokens, seed=seed)
    out = {
        "settings": {
            "command": REPRODUCE,
            "seconds_per_model": seconds_per_model, "models": list(models), "seed": seed,
            "target_params": target_params, "train_config": cfg.to_dict(), "n_evals": n_evals,
            "n_val_windows": n_val_windows, "threads": torch.get_num_threads(),
            "vocab_size": data.vocab_size, "train_chars": int(data.train_tokens.numel()),
            "val_chars": int(data.val_tokens.numel()), "sample": {"prompt": "\n", "temperature": 0.8,
                                                                   "top_k": 10, "seed": seed},
            "machine": {"python": platform.python_version(), "torch": torch.__version__,
                        "processor": platform.machine(), "cpu_count": os.cpu_count(),
                        "loadavg_before": load_before,
                        "loadavg_after": os.getloadavg() if hasattr(os, "getloadavg") else None},
            "total_wall_s": time.time() - t_start,
        },
        "runs": results,
    }
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return out


def load_runs(path) -> dict:
    """Read a file written by :func:`run_comparison` (checks its layout)."""
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    if not {"settings", "runs"} <= set(d):
        raise ValueError(f"{path} is not a run_comparison file (needs 'settings' and 'runs')")
    for name, run in d["runs"].items():
        missing = {"params", "steps", "train_s", "history"} - set(run)
        if missing:
            raise ValueError(f"{path}: run {name!r} lacks {sorted(missing)}")
    return d


# --- tables and figures ----------------------------------------------------------------------------

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


def plot_loss_curves(results: dict, ax, *, x: str = "step", bits: bool = True,
                     uniform: int | None = None):
    """Validation curves of every model on ``ax``: against ``x`` (``"step"`` or ``"elapsed_s"``),
    in bits per character (``bits``) or nats. ``uniform``: draw the loss of the uniform guess over
    that many tokens."""
    key = "val_bits_per_char" if bits else "val_loss"
    for name, r in results.items():
        h = r["history"]
        ax.plot([rec[x] for rec in h], [rec[key] for rec in h], marker="o", markersize=3, label=name)
    if uniform is not None:
        level = math.log(uniform) / (LN2 if bits else 1.0)
        ax.axhline(level, color="0.5", ls=":", lw=1, label=f"uniform over {uniform}")
    ax.set_xlabel({"step": "training updates", "elapsed_s": "training time (s)"}.get(x, x))
    ax.set_ylabel("validation bits per character" if bits else "validation loss (nats)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


# --- generation cost ---------------------------------------------------------------------------------

def state_bytes(state) -> int:
    """Bytes of every tensor in a (nested) state: ``sum(numel * element_size)`` over tensors in
    tuples, lists, named tuples and dicts (``None`` counts 0)."""
    if state is None:
        return 0
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, (tuple, list)):
        return sum(state_bytes(v) for v in state)
    raise ValueError(f"cannot count the bytes of a state of type {type(state).__name__}")


_MODES = ("step", "no_cache")


def _prefill(model: nn.Module, context: int, mode: str, seed: int):
    """A state after ``context`` random tokens (batch 1): the recurrent state or key-value cache
    (``mode="step"``), or the token ids themselves (``mode="no_cache"``, Transformer only)."""
    _step_fn(model, mode)  # checks the mode
    if isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise ValueError(f"context must be a positive integer, got {context!r}")
    limit = model.config.context_length if isinstance(model.config, TransformerLMConfig) else None
    if limit is not None and context + 1 > limit:
        raise ValueError(f"context {context} + 1 new token exceeds the model's context_length {limit}")
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randint(0, model.config.vocab_size, (1, context), generator=g)  # (1, T)
    if mode == "no_cache":
        return prompt
    _, state = model(prompt, return_state=True)
    return state


def _step_fn(model: nn.Module, mode: str):
    """``model.step`` or ``model.step_no_cache``; ``ValueError`` for another mode or a missing method."""
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if mode == "no_cache" and not hasattr(model, "step_no_cache"):
        raise ValueError(f"{type(model).__name__} has no step_no_cache (mode='no_cache')")
    return model.step if mode == "step" else model.step_no_cache


def _time_steps(step: Callable, state, n: int) -> list[float]:
    """Seconds of each of ``n`` calls ``step(token, state)`` from the same ``state``."""
    token = torch.tensor([1])  # (B=1,)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        step(token, state)
        times.append(time.perf_counter() - t0)
    return times


@torch.no_grad()
def step_time_at_context(model: nn.Module, context: int, *, mode: str = "step", repeats: int = 20,
                         warmup: int = 2, seed: int = 0) -> float:
    """Median wall time (seconds) of producing the logits of one more token after ``context`` tokens.

    The state after ``context`` random tokens comes from one ``forward(..., return_state=True)``
    (chunkwise for the xLSTM); then the same step from that state is timed ``repeats`` times
    (after ``warmup`` untimed ones). ``mode="step"``: ``model.step`` (recurrent state or key-value
    cache); ``"no_cache"``: ``model.step_no_cache`` (the Transformer recomputes the whole context).
    Batch size 1, eval mode (restored afterwards).
    """
    return generation_cost(model, [context], mode=mode, repeats=repeats, warmup=warmup, rounds=1,
                           seed=seed)[0]["time_s"]


@torch.no_grad()
def generation_cost(model: nn.Module, contexts: Sequence[int], *, mode: str = "step", repeats: int = 20,
                    warmup: int = 2, rounds: int = 4, seed: int = 0) -> list[dict]:
    """Per context length ``T`` in ``contexts``: ``{"context": T, "time_s": median time of one more
    token (see :func:`step_time_at_context`), "state_bytes": bytes carried to the next token}`` (the
    state after ``T + 1`` tokens: recurrent state, key-value cache, or for ``mode="no_cache"`` the
    token ids).

    The states of all contexts are prepared first; then the contexts are timed in turn, ``rounds``
    times, ``repeats / rounds`` steps each, so that a slow moment of the machine affects all of them
    alike (medians over all ``repeats`` steps)."""
    for name, value, low in (("repeats", repeats, 1), ("warmup", warmup, 0), ("rounds", rounds, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    was_training = model.training
    model.eval()
    try:
        step = _step_fn(model, mode)
        states = [_prefill(model, T, mode, seed) for T in contexts]
        times: list[list[float]] = [[] for _ in contexts]
        for state in states:
            _time_steps(step, state, warmup)
        per_round = [repeats // rounds + (r < repeats % rounds) for r in range(rounds)]
        for n in per_round:
            for j, state in enumerate(states):
                times[j] += _time_steps(step, state, n)
        out = []
        for T, state, t in zip(contexts, states, times):
            _, next_state = step(torch.tensor([1]), state)
            out.append({"context": int(T), "time_s": statistics.median(t),
                        "state_bytes": state_bytes(next_state)})
    finally:
        model.train(was_training)
    return out


def matched_transformer(model: nn.Module, *, context_length: int, num_heads: int = 4,
                        max_width: int = 2048) -> TransformerLMConfig:
    """A Transformer config with ``model``'s vocabulary and number of layers, and the width (a multiple
    of ``num_heads``) whose parameter count *without embeddings* is closest to ``model``'s: the
    same work per token in the layers, whatever the position-embedding table of ``context_length``
    rows adds."""
    c = model.config
    layers = getattr(c, "num_blocks", None) or c.num_layers
    target = model.num_parameters(exclude_embedding=True)

    def config(width: int) -> TransformerLMConfig:
        return TransformerLMConfig(c.vocab_size, context_length=context_length, embedding_dim=width,
                                   num_heads=num_heads, num_layers=layers)

    def count(width: int) -> int:
        with torch.device("meta"):
            return build_model(config(width)).num_parameters(exclude_embedding=True)

    lo, hi = 1, max_width // num_heads  # in units of num_heads; the count grows with the width
    while lo < hi:  # smallest m with count(m * num_heads) >= target
        mid = (lo + hi) // 2
        if count(mid * num_heads) >= target:
            hi = mid
        else:
            lo = mid + 1
    best = min((m for m in (lo - 1, lo) if m >= 1), key=lambda m: abs(count(m * num_heads) - target))
    return config(best * num_heads)


def time_generate(model: nn.Module, n_tokens: int, *, repeats: int = 3, prompt_length: int = 1,
                  seed: int = 0) -> dict:
    """Wall time of ``model.generate`` producing ``n_tokens`` tokens after a random prompt of
    ``prompt_length`` tokens (batch 1, temperature 0.8, top-k 10, seeded): ``{"median_s",
    "per_token_s", "times_s"}`` over ``repeats`` runs (after one untimed run)."""
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 1:
        raise ValueError(f"n_tokens must be a positive integer, got {n_tokens!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    prompt = torch.randint(0, model.config.vocab_size, (1, prompt_length),
                           generator=torch.Generator().manual_seed(seed))  # (1, S0)
    times = []
    for i in range(repeats + 1):
        g = torch.Generator().manual_seed(seed)
        t0 = time.perf_counter()
        model.generate(prompt, n_tokens, temperature=0.8, top_k=10, generator=g)
        if i:
            times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {"median_s": median, "per_token_s": median / n_tokens, "times_s": times}


def plot_generation_cost(costs: dict[str, list[dict]], axes) -> None:
    """Two log-log panels: time per new token, and bytes carried between tokens, against the context
    length; one line per entry of ``costs`` (label -> :func:`generation_cost` output)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax_t, ax_m = axes
    for label, rows in costs.items():
        T = [r["context"] for r in rows]
        ax_t.plot(T, [r["time_s"] * 1e3 for r in rows], marker="o", label=label)
        ax_m.plot(T, [r["state_bytes"] / 1024 for r in rows], marker="o", label=label)
    for ax, ylabel, title in ((ax_t, "time per new token (ms, median)", "Time"),
                              (ax_m, "state carried between tokens (KiB)", "Memory")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers at 1, 2, 5, 10, 20, ...
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("context length (tokens already read)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)


# --- command line ------------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m xlstm_edu.experiments.language_model",
        description="Train the chapter's five language models for the same wall time each and save "
                    "the validation histories as JSON (book/data/lm_runs.json).")
    p.add_argument("--seconds", type=float, default=120.0, help="training seconds per model")
    p.add_argument("--out", default="book/data/lm_runs.json", help="JSON file to write")
    p.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated model names")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--target-params", type=int, default=200_000, help="parameters of every model")
    p.add_argument("--context-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    a = p.parse_args(argv)
    names = [m.strip() for m in a.models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(MODEL_NAMES))
    if unknown:
        p.error(f"unknown models {unknown}; choose from {list(MODEL_NAMES)}")
    out = run_comparison(a.out, seconds_per_model=a.seconds, models=names, seed=a.seed,
                         target_params=a.target_params, context_length=a.context_length,
                         batch_size=a.batch_size, threads=a.threads or None)
    print(results_table(out["runs"], final_key="final_val_loss"))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
