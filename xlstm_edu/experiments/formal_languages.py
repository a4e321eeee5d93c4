"""Computations of the chapter "State tracking": formal languages (Deletang et al. 2023; Beck et al.
2024, Fig. 4) learned by the package's models, and tested on longer strings than they were trained on.

* :func:`matched_classifiers`: the five models of chapter 08 (``LSTM``, ``Transformer``,
  ``xLSTM[1:0]``, ``xLSTM[1:1]``, ``xLSTM[0:1]``) as per-position classifiers
  (:class:`~xlstm_edu.models.TokenClassifier`) at the size of the official formal-language config
  (2 blocks, width 64, 1 head);
* :func:`train_task`: the package's training loop on strings of the training lengths, with the
  *running* target (a label at every position, see :mod:`xlstm_edu.data.formal_languages`);
* :func:`accuracy_by_length`: the accuracy of the answer after the first ``L`` symbols, for every
  ``L`` up to the longest test length; :func:`summarize` turns it into train and test accuracy and the
  paper's scaled accuracy ``(acc - chance) / (1 - chance)``;
* :func:`slstm_trace`: the hidden state of an sLSTM block while it reads one string;
* :func:`run`: the experiment ``python -m xlstm_edu experiment formal-languages``.

What differs from the paper (Beck et al. 2024, appendix; Deletang et al. 2023): the paper trains up to
100k steps at batch 256 with a label for the whole string only; on a CPU we train a few hundred to a
thousand updates at batch 64, with the running target, which gives a training signal at every length
from the first update (one label per string gives one signal per string). The test is the paper's:
the answer after ``L > 40`` symbols, lengths the model never saw, up to 256.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence

import torch

from .._checks import check_choice, check_int
from ..data.formal_languages import TASKS, FormalTask, get_task, length_batches
from ..data.loader import IGNORE_INDEX
from ..models import build_classifier, match_parameters
from ..timing import limited_threads
from ..training import TrainConfig, train
from .language_model import MODEL_NAMES, make_config
from .runs import run_all

TASK_NAMES = tuple(TASKS)

#: The stored experiment: every task x model x seed (seeds ``seed, seed + 1, seed + 2``).
EXPERIMENT = dict(tasks=TASK_NAMES, models=MODEL_NAMES, num_seeds=3, width=64, num_blocks=2,
                  num_heads=1, min_train_length=3, max_train_length=40, max_test_length=256,
                  steps=1000, batch_size=64, lr=1e-3, warmup_steps=50, num_test_strings=512,
                  length_bin=8, threads=1)
#: ``--quick``: parity only, the models of the headline, one seed, fewer updates.
QUICK = dict(EXPERIMENT, tasks=("parity",), models=("LSTM", "Transformer", "xLSTM[1:0]", "xLSTM[0:1]"),
             num_seeds=1, steps=500)


def scaled_accuracy(accuracy: float, chance: float) -> float:
    """The paper's scaled accuracy: 0 at chance, 1 when perfect (negative below chance)."""
    return (accuracy - chance) / (1.0 - chance)


def matched_classifiers(task: FormalTask | str, names: Sequence[str] = MODEL_NAMES, *, width: int = 64,
                        num_blocks: int = 2, num_heads: int = 1, context_length: int = 256,
                        rtol: float = 0.1) -> dict[str, tuple[object, int]]:
    """``{name: (config, parameters)}``: each model as a classifier for ``task``, at the width whose
    parameter count is closest to that of ``xLSTM[1:1]`` at ``width`` (the official formal-language
    config: 2 blocks, width 64, 1 head). ``context_length`` is the Transformer's number of positions
    (the longest test string)."""
    task = get_task(task) if isinstance(task, str) else task

    def config(name: str, w: int):
        return make_config(name, max(w, 2 * num_heads), task.num_symbols, context_length=context_length,
                           num_layers=num_blocks, num_heads=num_heads)

    build = functools.partial(build_classifier, num_classes=task.num_classes)
    target = build(config("xLSTM[1:1]", width)).num_parameters()
    return {name: match_parameters(functools.partial(config, name), target, build=build,
                                   multiple_of=num_heads, rtol=rtol) for name in names}


def train_task(model, task: FormalTask | str, *, steps: int, batch_size: int = 64, lr: float = 1e-3,
               warmup_steps: int = 50, min_length: int = 3, max_length: int = 40, seed: int = 0,
               device: str = "cpu", hooks=(), progress: bool = False):
    """Train ``model`` on ``task`` (:func:`xlstm_edu.training.train`, AdamW with warmup and cosine to
    ``lr / 10``) on batches of strings with lengths drawn from ``[min_length, max_length]``; returns
    the :class:`~xlstm_edu.training.TrainState`."""
    task = get_task(task) if isinstance(task, str) else task
    cfg = TrainConfig(steps=steps, batch_size=batch_size, context_length=max_length, lr=lr,
                      min_lr=lr / 10, warmup_steps=warmup_steps, seed=seed, device=device)
    return train(model, length_batches(task, batch_size, min_length, max_length), cfg, hooks=hooks,
                 progress=progress)


@torch.no_grad()
def accuracy_by_length(model, task: FormalTask | str, *, max_length: int = 256, num_strings: int = 512,
                       seed: int = 1234, batch_size: int = 128) -> torch.Tensor:
    """``acc (max_length,)``: ``acc[L - 1]`` is the accuracy of the answer after the first ``L``
    symbols of ``num_strings`` random strings of ``max_length`` symbols (NaN for lengths without an
    answer: the even lengths of modular arithmetic). Eval mode, restored afterwards."""
    task = get_task(task) if isinstance(task, str) else task
    check_int("max_length", max_length)
    check_int("num_strings", num_strings)
    x, y = task.sample(num_strings, max_length, torch.Generator().manual_seed(seed))  # (N, L) each
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = torch.zeros(max_length)
    try:
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            pred = model(xb.to(device)).argmax(-1).cpu()  # (b, L)
            correct += ((pred == yb) & (yb != IGNORE_INDEX)).sum(0)
    finally:
        model.train(was_training)
    answered = (y != IGNORE_INDEX).sum(0)  # (L,): strings with an answer at each length
    return torch.where(answered > 0, correct / answered.clamp(min=1), torch.tensor(math.nan))


def summarize(acc: torch.Tensor, task: FormalTask | str, max_train_length: int = 40) -> dict:
    """``{"train_accuracy", "test_accuracy", "scaled_accuracy"}`` from :func:`accuracy_by_length`:
    the mean accuracy over the answered lengths ``1 ... max_train_length`` (lengths seen in training)
    and over the longer ones, and the scaled test accuracy."""
    task = get_task(task) if isinstance(task, str) else task
    train_acc = float(acc[:max_train_length].nanmean())
    test_acc = float(acc[max_train_length:].nanmean())
    return {"train_accuracy": train_acc, "test_accuracy": test_acc,
            "scaled_accuracy": scaled_accuracy(test_acc, task.chance)}


@torch.no_grad()
def slstm_trace(model, x: torch.Tensor, block: int | None = None) -> torch.Tensor:
    """The hidden state ``h`` of an sLSTM block (the first one unless ``block`` is given) after each
    symbol of ``x (S,)``: ``(S, E)``, read with one ``step`` per symbol from the empty state."""
    body = getattr(model, "body", model)
    slstm_at = getattr(body.config, "slstm_at", ())
    if not slstm_at:
        raise ValueError("the model has no sLSTM block")
    block = slstm_at[0] if block is None else check_choice("block", block, slstm_at)
    state, hs = None, []
    for token in x.reshape(-1, 1):  # (1,) each: batch of one
        _, state = model.step(token, state)
        hs.append(state[block].h.reshape(-1))  # (NH * DH,) = (E,)
    return torch.stack(hs)  # (S, E)


# --- the experiment ----------------------------------------------------------------------------------

def run_one(task_name: str, model_name: str, seed: int, s: dict, device: str = "cpu") -> list[dict]:
    """Train and test one model on one task with one seed (recipe ``s``): the result rows."""
    with limited_threads(s["threads"]):
        task = get_task(task_name)
        config, n_params = matched_classifiers(
            task, (model_name,), width=s["width"], num_blocks=s["num_blocks"],
            num_heads=s["num_heads"], context_length=s["max_test_length"])[model_name]
        torch.manual_seed(seed)  # initialisation
        model = build_classifier(config, task.num_classes)
        t0 = time.perf_counter()
        state = train_task(model, task, steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"],
                           warmup_steps=s["warmup_steps"], min_length=s["min_train_length"],
                           max_length=s["max_train_length"], seed=seed, device=device)
        train_s = time.perf_counter() - t0
        acc = accuracy_by_length(model, task, max_length=s["max_test_length"],
                                 num_strings=s["num_test_strings"], seed=10_000 + seed)
    key = {"task": task_name, "model": model_name, "seed": seed}
    rows = [{**key, "metric": k, "value": v}
            for k, v in summarize(acc, task, s["max_train_length"]).items()]
    rows += [{**key, "metric": "params", "value": n_params},
             {**key, "metric": "train_s", "value": train_s},
             {**key, "metric": "steps", "value": state.step}]
    b = s["length_bin"]
    for end in range(b, s["max_test_length"] + 1, b):  # accuracy per bin of lengths (end - b, end]
        rows.append({**key, "metric": "accuracy", "length": end,
                     "value": float(acc[end - b:end].nanmean())})
    return rows


def run(*, quick: bool = False, seed: int = 0, device: str = "cpu", progress: bool = True,
        jobs: int = 1, settings: dict | None = None) -> tuple[dict, list[dict]]:
    """Every task x model x seed of :data:`EXPERIMENT` (or :data:`QUICK`): rows with ``task``,
    ``model``, ``seed`` and ``metric`` in ``train_accuracy``, ``test_accuracy``, ``scaled_accuracy``
    (of the test accuracy), ``params``, ``train_s``, ``steps``, and ``accuracy`` with a
    ``length`` (the mean over the ``length_bin`` lengths ending there). ``jobs`` runs that many
    trainings at once in separate processes (each seeded alone: the rows do not depend on ``jobs``).
    ``settings`` overrides entries of the recipe (tests use it to run in seconds)."""
    s = dict(QUICK if quick else EXPERIMENT, **(settings or {}))
    check_int("jobs", jobs)
    for name in s["tasks"]:
        check_choice("task", name, TASK_NAMES)
    for name in s["models"]:
        check_choice("model", name, MODEL_NAMES)
    runs = [(t, m, seed + i) for t in s["tasks"] for i in range(s["num_seeds"]) for m in s["models"]]
    rows = run_all(run_one, runs, s, device, jobs, progress)
    return {**s, "tasks": list(s["tasks"]), "models": list(s["models"]),
            "seeds": [seed + i for i in range(s["num_seeds"])], "jobs": jobs,
            "target": "running (a label at every position)"}, rows
