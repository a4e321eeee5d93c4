"""Computations of the chapter "Minimal RNNs": minGRU and minLSTM against the xLSTM and the LSTM.

* :func:`matched_models`: minGRU, minLSTM, xLSTM[1:0], xLSTM[0:1] and LSTM at (nearly) equal
  parameter counts, with the conventions of the language-model experiment
  (:mod:`xlstm_edu.experiments.language_model`: two layers, tied head, Shakespeare characters);
* :func:`tradeoff`: each trained for the same number of updates with the same batches (the
  language-model experiment's :func:`~xlstm_edu.experiments.language_model.train_run`), then
  validated on the whole validation text; and, side by side in one process, the costs: training
  tokens/s (one update: forward, backward, AdamW), time for 100 generated tokens, and the bytes
  autograd saves in a training step's forward pass;
* :func:`scan_scaling`: a minGRU / minLSTM layer's forward + backward time, parallel scan against
  the sequential loop (and against a loop written with per-step slices, whose backward pass is
  quadratic in the length), as the sequence length grows;
* :func:`run`: the experiment ``python -m xlstm_edu experiment min-rnn``.

Times are medians of interleaved rounds (:func:`xlstm_edu.timing.interleaved_medians`) on one thread;
memory is counted (:func:`xlstm_edu.timing.saved_tensor_bytes`), not measured.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .. import minrnn
from .._checks import check_choice, check_int
from ..data import spread_windows
from ..models import build_model, match_parameters
from ..models.minrnn_lm import MinRNNLMConfig
from ..timing import interleaved_medians, limited_threads, saved_tensor_bytes
from ..training import TrainConfig, make_optimizer
from . import language_model as lm

#: The models of the comparison, in the order of every table.
MODEL_NAMES = ("minGRU", "minLSTM", "xLSTM[1:0]", "xLSTM[0:1]", "LSTM")
_CELL = {"minGRU": "mingru", "minLSTM": "minlstm"}

LN2 = math.log(2.0)

EXPERIMENT = dict(models=MODEL_NAMES, target_params=200_000, context_length=128, batch_size=16,
                  steps=400, lr=2e-3, warmup_steps=50, n_evals=4, n_val_windows=128, threads=1,
                  generate_tokens=100, time_rounds=5, time_repeats=3,
                  scan_lengths=(64, 256, 1024, 4096), scan_batch=4, scan_dim=64, scan_rounds=3,
                  full_validation=True)
QUICK = dict(EXPERIMENT, target_params=60_000, context_length=32, batch_size=4, steps=6, n_evals=1,
             full_validation=False,
             n_val_windows=8, generate_tokens=10, time_rounds=1, time_repeats=1,
             scan_lengths=(16, 64), scan_batch=2, scan_dim=8, scan_rounds=1)


# --- models at equal size ----------------------------------------------------------------------------

def make_config(name: str, width: int, vocab_size: int, *, context_length: int, num_layers: int = 2):
    """Model ``name`` (one of :data:`MODEL_NAMES`) at width ``width``: the minRNN models as
    :class:`~xlstm_edu.models.minrnn_lm.MinRNNLMConfig` (cell width = width), the others as in
    :func:`xlstm_edu.experiments.language_model.make_config`."""
    check_choice("name", name, MODEL_NAMES)
    if name in _CELL:
        return MinRNNLMConfig(vocab_size=vocab_size, embedding_dim=width, num_layers=num_layers,
                              cell=_CELL[name])
    return lm._make_at_least(name, width, vocab_size, context_length=context_length,
                             num_layers=num_layers, num_heads=4)


def matched_models(vocab_size: int, target_params: int, *, context_length: int,
                   names: Sequence[str] = MODEL_NAMES,
                   rtol: float = 0.1) -> dict[str, tuple[object, int]]:
    """``{name: (config, parameters)}`` at the width (a multiple of 4) closest to ``target_params``."""
    out = {}
    for name in names:
        make = functools.partial(make_config, name, vocab_size=vocab_size, context_length=context_length)
        out[name] = match_parameters(make, target_params, multiple_of=4, rtol=rtol)
    return out


# --- costs -------------------------------------------------------------------------------------------

def _train_step(model, optimizer, x, y):
    """One update: forward, cross-entropy, backward, AdamW step."""
    optimizer.zero_grad(set_to_none=True)
    logits = model(x)  # (B, S, V)
    F.cross_entropy(logits.flatten(0, 1), y.flatten()).backward()
    optimizer.step()


def costs(models: dict, vocab_size: int, *, batch_size: int, context_length: int, generate_tokens: int,
          rounds: int, repeats: int, seed: int = 0) -> dict[str, dict]:
    """Per model: ``tokens_per_s`` (training), ``generate_s`` (``generate_tokens`` new tokens after a
    one-token prompt, batch 1) and ``train_saved_mib`` (what autograd saves in one training
    forward pass, inputs and weights excluded). Copies of the models are timed, so the trained ones
    are not changed; both times are interleaved medians over the models."""
    import copy

    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab_size, (batch_size, context_length), generator=g)  # (B, S)
    y = torch.randint(0, vocab_size, (batch_size, context_length), generator=g)
    prompt = x[:1, :1]  # (1, 1)
    train_fns, gen_fns, saved = {}, {}, {}
    for name, model in models.items():
        m = copy.deepcopy(model).train()
        opt = make_optimizer(m, TrainConfig(context_length=context_length))
        train_fns[name] = functools.partial(_train_step, m, opt, x, y)
        gen_fns[name] = functools.partial(
            model.generate, prompt, generate_tokens, temperature=0.8, top_k=10,
            generator=torch.Generator().manual_seed(seed))
        params = [p for p in m.parameters()]
        saved[name] = saved_tensor_bytes(lambda m=m: F.cross_entropy(
            m(x).flatten(0, 1), y.flatten()), exclude=params) / 2**20
    t_train = interleaved_medians(train_fns, rounds=rounds, repeats=repeats, warmup=1)
    t_gen = interleaved_medians(gen_fns, rounds=rounds, repeats=repeats, warmup=1)
    return {name: {"tokens_per_s": batch_size * context_length / t_train[name],
                   "generate_s": t_gen[name], "train_saved_mib": saved[name]} for name in models}


def tradeoff(data: lm.LMData, s: dict, *, seed: int = 0, device: str = "cpu",
             progress: bool = False) -> list[dict]:
    """Train every model of ``s["models"]`` for ``s["steps"]`` updates (same batches, same
    validation windows), validate on the whole validation text (``s["full_validation"]``; else on
    the windows), then time them
    (:func:`costs`). Returns rows ``{"model", "metric", "value"}``. ``s["size_rtol"]`` (default
    0.1): how far from ``s["target_params"]`` a model may be (tiny test models need more)."""
    configs = matched_models(data.vocab_size, s["target_params"], context_length=s["context_length"],
                             names=s["models"], rtol=s.get("size_rtol", 0.1))
    cfg = TrainConfig(steps=s["steps"], batch_size=s["batch_size"], context_length=s["context_length"],
                      lr=s["lr"], min_lr=s["lr"] / 10, seed=seed, device=device,
                      warmup_steps=min(s["warmup_steps"], s["steps"] - 1))
    windows = spread_windows(data.val_tokens, s["n_val_windows"], s["context_length"])
    rows, models = [], {}
    for name in s["models"]:
        config, n_params = configs[name]
        torch.manual_seed(seed)
        model = build_model(config)
        res = lm.train_run(model, data, cfg, steps=s["steps"], n_evals=s["n_evals"], windows=windows)
        if s["full_validation"]:  # every token of the 4 validation plays
            final = lm.full_validation_loss(model, data.val_tokens, s["context_length"])
        else:  # the validation windows only (quick runs)
            final = res["history"][-1]["val_loss"]
        models[name] = model.eval()
        rows += [{"model": name, "metric": "params", "value": n_params},
                 {"model": name, "metric": "width", "value": _width(config)},
                 {"model": name, "metric": "steps", "value": res["steps"]},
                 {"model": name, "metric": "final_val_loss", "value": final},
                 {"model": name, "metric": "final_val_bits_per_char", "value": final / LN2}]
        rows += [{"model": name, "metric": "val_bits_per_char", "value": r["val_bits_per_char"],
                  "step": r["step"]} for r in res["history"]]
        if progress:
            print(f"{name}: {n_params:,} parameters, val loss {final:.3f} nats "
                  f"after {res['steps']} updates")
    measured = costs(models, data.vocab_size, batch_size=s["batch_size"],
                     context_length=s["context_length"], generate_tokens=s["generate_tokens"],
                     rounds=s["time_rounds"], repeats=s["time_repeats"], seed=seed)
    for name, values in measured.items():
        rows += [{"model": name, "metric": k, "value": v} for k, v in values.items()]
    return rows


def _width(config) -> int:
    return config.embedding_dim


# --- the scan against the loop ---------------------------------------------------------------------

#: The ways :func:`scan_scaling` runs a cell: the package's two forms, and the loop written with
#: ``a[:, t]`` slices, whose backward pass writes one full-size ``(B, S, D)`` gradient per step.
SCAN_FORMS = ("parallel", "sequential", "sequential_sliced")


def _sliced_loop(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h_t = a_t h_{t-1} + b_t`` with ``a[:, t]`` per step: O(S^2) work in the backward pass."""
    h = a.new_zeros(a.shape[0], a.shape[2])  # (B, D)
    outs = []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        outs.append(h)
    return torch.stack(outs, dim=1)  # (B, S, D)


def _fwd_bwd(cell: str, form: str, inputs: list[torch.Tensor]):
    """Forward + backward of one cell call (the loss: the sum of the outputs)."""
    for t in inputs:
        t.grad = None
    if form == "sequential_sliced":
        coeffs = minrnn.mingru_coeffs if cell == "mingru" else minrnn.minlstm_coeffs
        h = _sliced_loop(*coeffs(*inputs))
    else:
        fn = minrnn.mingru if cell == "mingru" else minrnn.minlstm
        h = fn(*inputs, form=form)
    h.sum().backward()


def scan_scaling(lengths: Sequence[int], *, batch: int, dim: int, rounds: int,
                 cells: Sequence[str] = ("mingru", "minlstm"), seed: int = 0) -> list[dict]:
    """Forward + backward time of ``minrnn.mingru`` / ``minrnn.minlstm`` (torch, float32) at every
    sequence length, each form of :data:`SCAN_FORMS`, interleaved in one process. Rows ``{"cell",
    "form", "S", "metric": "fwd_bwd_s", "value"}`` and per cell and length the rows ``"speedup"``
    (sequential / parallel) and ``"speedup_sliced"`` (sequential_sliced / parallel)."""
    rows = []
    g = torch.Generator().manual_seed(seed)
    for S in lengths:
        check_int("S", S)
        fns = {}
        for cell in cells:
            n = 2 if cell == "mingru" else 3
            inputs = [torch.randn(batch, S, dim, generator=g).requires_grad_() for _ in range(n)]
            for form in SCAN_FORMS:
                fns[cell, form] = functools.partial(_fwd_bwd, cell, form, inputs)
        times = interleaved_medians(fns, rounds=rounds, repeats=1, warmup=1)
        for (cell, form), t in times.items():
            rows.append({"cell": cell, "form": form, "S": S, "metric": "fwd_bwd_s", "value": t})
        for cell in cells:
            for metric, form in (("speedup", "sequential"), ("speedup_sliced", "sequential_sliced")):
                rows.append({"cell": cell, "S": S, "metric": metric,
                             "value": times[cell, form] / times[cell, "parallel"]})
    return rows


# --- the experiment ----------------------------------------------------------------------------------

def run(*, quick: bool = False, seed: int = 0, device: str = "cpu", progress: bool = True,
        data: lm.LMData | None = None, settings: dict | None = None) -> tuple[dict, list[dict]]:
    """The stored result of the chapter: :func:`tradeoff` (rows with a ``model``) and
    :func:`scan_scaling` (rows with a ``cell``), with :data:`EXPERIMENT` (or :data:`QUICK`);
    ``settings`` overrides entries (tests use it)."""
    s = dict(QUICK if quick else EXPERIMENT, **(settings or {}))
    data = lm.load_data() if data is None else data
    with limited_threads(s["threads"]):
        rows = tradeoff(data, s, seed=seed, device=device, progress=progress)
        rows += scan_scaling(s["scan_lengths"], batch=s["scan_batch"], dim=s["scan_dim"],
                             rounds=s["scan_rounds"], seed=seed)
    out = {**s, "models": list(s["models"]), "scan_lengths": list(s["scan_lengths"]),
           "vocab_size": data.vocab_size, "dtype": "float32"}
    return out, rows


def tradeoff_table(result: dict) -> dict[str, dict]:
    """``{model: {metric: value}}`` from a stored result's model rows (history rows left out)."""
    table: dict[str, dict] = {}
    for row in result["results"]:
        if "model" in row and "step" not in row:
            table.setdefault(row["model"], {})[row["metric"]] = row["value"]
    return {name: table[name] for name in MODEL_NAMES if name in table}


def format_tradeoff(table: dict[str, dict]) -> str:
    """The trade-off table as fixed-width text (at most 88 characters a line)."""
    head = (f"{'model':<11} {'params':>8} {'val bits/ch':>11} {'train tok/s':>11} "
            f"{'100 tok (s)':>11} {'saved MiB':>9}")
    lines = [head, "-" * len(head)]
    for name, r in table.items():
        lines.append(f"{name:<11} {r['params']:>8,} {r['final_val_bits_per_char']:>11.3f} "
                     f"{r['tokens_per_s']:>11,.0f} {r['generate_s']:>11.3f} "
                     f"{r['train_saved_mib']:>9.1f}")
    return "\n".join(lines)


def scaling_table(result: dict) -> dict[str, dict[int, dict]]:
    """``{cell: {S: {"parallel": s, "sequential": s, "sequential_sliced": s, "speedup": x,
    "speedup_sliced": x}}}`` from the scan rows."""
    out: dict[str, dict[int, dict]] = {}
    for row in result["results"]:
        if "cell" in row:
            key = row.get("form", row["metric"])
            out.setdefault(row["cell"], {}).setdefault(row["S"], {})[key] = row["value"]
    return out
