"""Computations of the chapter "Associative recall": multi-query associative recall (MQAR; Arora et al.
2024; Beck et al. 2024, Fig. 5) learned by the package's language models.

* :func:`matched_models`: the five models of chapter 08 at the size of a 2-block, width-64, 1-head
  xLSTM[1:1], as next-token models over the MQAR vocabulary;
* :func:`train_recall`: the package's training loop on fresh MQAR batches
  (:func:`xlstm_edu.data.recall.mqar_batches`; the loss counts the answers only);
* :func:`recall_accuracy`: the fraction of queries answered with the right value;
* :func:`run`: the experiment ``python -m xlstm_edu experiment mqar``: accuracy against the number of
  key-value pairs for every model, and against the mLSTM's head dimension (xLSTM[1:0] with 1 to 8
  heads at the same width: at its matched width 73, inner dimension 160, head dimension 160 down
  to 20).

What differs from the paper: the paper trains models of width 64 to 512 with 4 heads, on contexts of
64 to 256 tokens with up to 256 pairs, and sweeps the learning rate. On a CPU we train models of about
88k parameters (xLSTM[1:1] at width 64, the others matched to it) with a fixed learning rate, a
context of 64 tokens and 4 to 16 pairs (the most that fit: a pair and its query take 4 tokens), for
a fixed number of updates, one seed per setting.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence

import torch

from .._checks import check_choice, check_int
from ..data.loader import IGNORE_INDEX
from ..data.recall import check_mqar, mqar, mqar_batches
from ..models import build_model, match_parameters
from ..timing import limited_threads
from ..training import TrainConfig, train
from .language_model import MODEL_NAMES, make_config
from .runs import run_all

#: The stored experiment: every model at every number of pairs (context 64), then xLSTM[1:0] with more
#: heads (smaller head dimension) at the pair counts of ``head_sweep_pairs``.
EXPERIMENT = dict(models=MODEL_NAMES, pairs=(4, 8, 16), context_length=64, vocab_size=128, width=64,
                  num_blocks=2, num_heads=1, head_sweep_heads=(2, 4, 8), head_sweep_pairs=(8, 16),
                  steps=1000, batch_size=32, lr=2e-3, warmup_steps=50, num_test=512, threads=1)
#: ``--quick``: the headline only, xLSTM[1:0] against the LSTM at 4 and 8 pairs (at 16 pairs the
#: one-head xLSTM[1:0] of the stored run had not yet learned the task in 1,000 updates; see chapter 10).
QUICK = dict(EXPERIMENT, models=("LSTM", "xLSTM[1:0]"), pairs=(4, 8), head_sweep_heads=())


def matched_models(names: Sequence[str] = MODEL_NAMES, *, vocab_size: int = 128, width: int = 64,
                   num_blocks: int = 2, num_heads: int = 1, context_length: int = 64,
                   rtol: float = 0.1) -> dict[str, tuple[object, int]]:
    """``{name: (config, parameters)}``: each model at the width whose parameter count is closest to
    that of ``xLSTM[1:1]`` at ``width`` (tied embeddings of ``vocab_size`` tokens included)."""
    def config(name: str, w: int):
        return make_config(name, max(w, 2 * num_heads), vocab_size, context_length=context_length,
                           num_layers=num_blocks, num_heads=num_heads)

    target = build_model(config("xLSTM[1:1]", width)).num_parameters()
    return {name: match_parameters(functools.partial(config, name), target, multiple_of=num_heads,
                                   rtol=rtol) for name in names}


def with_mlstm_heads(config, num_heads: int):
    """An xLSTM config with ``num_heads`` mLSTM heads (head dimension = inner dim / heads)."""
    return dataclasses.replace(config, mlstm_num_heads=check_int("num_heads", num_heads))


def train_recall(model, *, num_pairs: int, context_length: int, vocab_size: int = 128, steps: int,
                 batch_size: int = 32, lr: float = 2e-3, warmup_steps: int = 50, seed: int = 0,
                 device: str = "cpu", hooks=(), progress: bool = False):
    """Train ``model`` on fresh MQAR batches (AdamW, warmup, cosine to ``lr / 10``); returns the
    :class:`~xlstm_edu.training.TrainState`."""
    cfg = TrainConfig(steps=steps, batch_size=batch_size, context_length=context_length, lr=lr,
                      min_lr=lr / 10, warmup_steps=warmup_steps, seed=seed, device=device)
    return train(model, mqar_batches(batch_size, num_pairs, context_length, vocab_size), cfg,
                 hooks=hooks, progress=progress)


@torch.no_grad()
def recall_accuracy(model, *, num_pairs: int, context_length: int, vocab_size: int = 128,
                    num_sequences: int = 512, seed: int = 1234, batch_size: int = 128) -> float:
    """Fraction of the queries of ``num_sequences`` fresh MQAR sequences (seeded) whose value is the
    model's most likely next token. Eval mode, restored afterwards."""
    check_mqar(num_pairs, context_length, vocab_size)
    x, y = mqar(num_sequences, num_pairs, context_length, vocab_size,
                torch.Generator().manual_seed(seed))  # (N, T) each
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            pred = model(xb.to(device)).argmax(-1).cpu()  # (b, T)
            correct += int(((pred == yb) & (yb != IGNORE_INDEX)).sum())
    finally:
        model.train(was_training)
    return correct / int((y != IGNORE_INDEX).sum())


# --- the experiment ----------------------------------------------------------------------------------

def run_one(model_name: str, num_pairs: int, mlstm_heads: int | None, seed: int, s: dict,
            device: str = "cpu") -> list[dict]:
    """Train and test one model at one number of pairs (recipe ``s``): the result rows."""
    with limited_threads(s["threads"]):
        config, n_params = matched_models(
            (model_name,), vocab_size=s["vocab_size"], width=s["width"], num_blocks=s["num_blocks"],
            num_heads=s["num_heads"], context_length=s["context_length"])[model_name]
        if mlstm_heads is not None:
            config = with_mlstm_heads(config, mlstm_heads)
        torch.manual_seed(seed)  # initialisation
        model = build_model(config)
        t0 = time.perf_counter()
        state = train_recall(model, num_pairs=num_pairs, context_length=s["context_length"],
                             vocab_size=s["vocab_size"], steps=s["steps"], batch_size=s["batch_size"],
                             lr=s["lr"], warmup_steps=s["warmup_steps"], seed=seed, device=device)
        train_s = time.perf_counter() - t0
        acc = recall_accuracy(model, num_pairs=num_pairs, context_length=s["context_length"],
                              vocab_size=s["vocab_size"], num_sequences=s["num_test"],
                              seed=10_000 + seed)
    head_dim = (config.mlstm_inner_dim // config.mlstm_num_heads
                if getattr(config, "num_mlstm_blocks", 0) else None)
    key = {"model": model_name, "num_pairs": num_pairs, "context_length": s["context_length"],
           "mlstm_heads": getattr(config, "mlstm_num_heads", None) if head_dim else None,
           "mlstm_head_dim": head_dim, "seed": seed}
    return [{**key, "metric": "accuracy", "value": acc},
            {**key, "metric": "params", "value": n_params},
            {**key, "metric": "train_s", "value": train_s},
            {**key, "metric": "steps", "value": state.step}]


def run(*, quick: bool = False, seed: int = 0, device: str = "cpu", progress: bool = True,
        jobs: int = 1, settings: dict | None = None) -> tuple[dict, list[dict]]:
    """Every model of :data:`EXPERIMENT` (or :data:`QUICK`) at every number of pairs, then the head
    sweep: rows with ``model``, ``num_pairs``, ``context_length``, ``mlstm_heads`` and
    ``mlstm_head_dim`` (null without an mLSTM), ``seed``, and ``metric`` in ``accuracy``, ``params``,
    ``train_s``, ``steps``. ``jobs`` runs that many trainings at once (the rows do not depend on it);
    ``settings`` overrides entries of the recipe."""
    s = dict(QUICK if quick else EXPERIMENT, **(settings or {}))
    check_int("jobs", jobs)
    for name in s["models"]:
        check_choice("model", name, MODEL_NAMES)
    for n in (*s["pairs"], *s["head_sweep_pairs"]):
        check_mqar(n, s["context_length"], s["vocab_size"])
    runs = [(m, n, None, seed) for n in s["pairs"] for m in s["models"]]
    runs += [("xLSTM[1:0]", n, h, seed) for n in s["head_sweep_pairs"] for h in s["head_sweep_heads"]]
    rows = run_all(run_one, runs, s, device, jobs, progress)
    return {**s, "models": list(s["models"]), "pairs": list(s["pairs"]),
            "head_sweep_heads": list(s["head_sweep_heads"]),
            "head_sweep_pairs": list(s["head_sweep_pairs"]), "jobs": jobs}, rows
