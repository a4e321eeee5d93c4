"""Computations of the chapter "Memory for agents": the T-maze (:mod:`xlstm_edu.data.tmaze`) solved by
supervised learning of the decision at the junction, with and without memory.

* :func:`make_agent`: one of :data:`AGENT_NAMES` as a per-step classifier of observations: a
  memoryless baseline and minLSTM (:class:`~xlstm_edu.models.classifier.StepClassifier`), the LSTM and
  one-block xLSTMs with an sLSTM or an mLSTM block (:class:`~xlstm_edu.models.TokenClassifier`);
* :func:`train_agent`: the package's training loop on episodes with corridors of the training lengths;
* :func:`success_rate`: the fraction of episodes with the right turn at the junction, for one length;
* :func:`run`: the experiment ``python -m xlstm_edu experiment tmaze``.

The recipe: every agent is trained on corridors of ``min_train_length ... max_train_length`` steps (a
length drawn per batch) and tested on those and on longer ones. One training per agent and seed
shows two things at once: whether the agent learned to carry the cue (success on the training
lengths) and whether what it learned keeps working when an episode runs longer than any it was trained
on (the longer lengths), which is what an agent meets when its episodes grow. The stored run does this
for two training ranges, ``1 ... 16`` and ``1 ... 64``: does training on longer corridors make the
memory reach further?
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from .._checks import check_choice, check_int
from ..data.tmaze import NUM_ACTIONS, tmaze, tmaze_batches, vocab_size
from ..models import build_classifier
from ..models.classifier import StepClassifier, StepClassifierConfig
from ..timing import limited_threads
from ..training import TrainConfig, train
from .language_model import make_config
from .runs import run_all

#: The agents, and the package model each one is (``make_config`` names for the language models).
AGENTS = {"memoryless": "memoryless", "LSTM": "LSTM", "sLSTM": "xLSTM[0:1]", "mLSTM": "xLSTM[1:0]",
          "minLSTM": "minLSTM"}
AGENT_NAMES = tuple(AGENTS)

#: The stored experiment: every agent x seed x training range (corridors of 1 ... 16 or 1 ... 64
#: steps), tested on corridors of 2 ... 512 steps.
EXPERIMENT = dict(agents=AGENT_NAMES, num_seeds=5, width=32, num_layers=1, num_corridor_symbols=4,
                  min_train_length=1, max_train_lengths=(16, 64),
                  test_lengths=(2, 4, 8, 16, 32, 64, 128, 256, 512), steps=600, batch_size=32, lr=3e-3,
                  warmup_steps=30, num_test_episodes=256, threads=1)
#: ``--quick``: one seed, fewer updates and test lengths.
QUICK = dict(EXPERIMENT, num_seeds=1, steps=300, max_train_lengths=(16,), test_lengths=(4, 16, 64),
             num_test_episodes=128)


def make_agent(name: str, *, width: int = 32, num_layers: int = 1, num_corridor_symbols: int = 1,
               context_length: int = 1024):
    """Agent ``name`` (one of :data:`AGENT_NAMES`): a classifier ``(B, S) observations -> (B, S, 2)``
    logits of the turn. ``context_length`` only sizes the xLSTM's config (the recurrent models read
    any length)."""
    check_choice("agent", name, AGENT_NAMES)
    V = vocab_size(num_corridor_symbols)
    if name in ("memoryless", "minLSTM"):
        return StepClassifier(StepClassifierConfig(name, V, NUM_ACTIONS, width=width,
                                                   num_layers=num_layers))
    config = make_config(AGENTS[name], width, V, context_length=context_length, num_layers=num_layers,
                         num_heads=1)
    return build_classifier(config, NUM_ACTIONS)


def train_agent(model, *, steps: int, batch_size: int = 32, lr: float = 3e-3, warmup_steps: int = 30,
                min_length: int = 1, max_length: int = 16, num_corridor_symbols: int = 1,
                seed: int = 0, device: str = "cpu", hooks=(), progress: bool = False):
    """Train ``model`` (:func:`xlstm_edu.training.train`, AdamW with warmup and cosine to ``lr / 10``)
    on T-maze episodes whose corridor length is drawn per batch from ``[min_length, max_length]``;
    the loss is the cross-entropy of the turn at the junction. Returns the
    :class:`~xlstm_edu.training.TrainState`."""
    cfg = TrainConfig(steps=steps, batch_size=batch_size, context_length=max_length + 2, lr=lr,
                      min_lr=lr / 10, warmup_steps=warmup_steps, seed=seed, device=device)
    sample = tmaze_batches(batch_size, min_length, max_length, num_corridor_symbols=num_corridor_symbols)
    return train(model, sample, cfg, hooks=hooks, progress=progress)


@torch.no_grad()
def decisions(model, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """``(B,)``: the turn ``model`` takes at the last step (the junction) of episodes ``x (B, S)``, in
    eval mode (restored afterwards), ``batch_size`` episodes at a time."""
    check_int("batch_size", batch_size)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(xb.to(device))[:, -1].argmax(-1).cpu()  # (b,)
                          for xb in x.split(batch_size)])
    finally:
        model.train(was_training)


def success_rate(model, corridor_length: int, *, num_episodes: int = 256, num_corridor_symbols: int = 1,
                 seed: int = 1234) -> float:
    """The fraction of ``num_episodes`` episodes (half of each cue) with corridors of
    ``corridor_length`` steps in which ``model`` turns the way the cue showed."""
    check_int("num_episodes", num_episodes)
    x, y = tmaze(num_episodes, corridor_length, torch.Generator().manual_seed(seed),
                 num_corridor_symbols=num_corridor_symbols, balanced=True)  # (N, L) each
    return float((decisions(model, x) == y[:, -1]).double().mean())


# --- the experiment ----------------------------------------------------------------------------------

def run_one(agent: str, seed: int, max_train_length: int, s: dict, device: str = "cpu") -> list[dict]:
    """Train one agent with one seed on corridors of ``s["min_train_length"] ... max_train_length``
    steps (recipe ``s``), test it: the result rows."""
    with limited_threads(s["threads"]):
        torch.manual_seed(seed)  # initialisation
        model = make_agent(agent, width=s["width"], num_layers=s["num_layers"],
                           num_corridor_symbols=s["num_corridor_symbols"],
                           context_length=max(s["test_lengths"]) + 2)
        t0 = time.perf_counter()
        state = train_agent(model, steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"],
                            warmup_steps=s["warmup_steps"], min_length=s["min_train_length"],
                            max_length=max_train_length,
                            num_corridor_symbols=s["num_corridor_symbols"], seed=seed, device=device)
        train_s = time.perf_counter() - t0
        success = {n: success_rate(model, n, num_episodes=s["num_test_episodes"],
                                   num_corridor_symbols=s["num_corridor_symbols"], seed=10_000 + seed)
                   for n in s["test_lengths"]}
    key = {"agent": agent, "max_train_length": max_train_length, "seed": seed}
    rows = [{**key, "metric": "success", "length": n, "value": v} for n, v in success.items()]
    rows += [{**key, "metric": "params", "value": model.num_parameters()},
             {**key, "metric": "train_s", "value": train_s},
             {**key, "metric": "steps", "value": state.step},
             {**key, "metric": "final_loss", "value": state.loss_sum / max(state.loss_count, 1)}]
    return rows


def run(*, quick: bool = False, seed: int = 0, device: str = "cpu", progress: bool = True,
        jobs: int = 1, settings: dict | None = None) -> tuple[dict, list[dict]]:
    """Every agent x training range x seed of :data:`EXPERIMENT` (or :data:`QUICK`): rows with
    ``agent``, ``max_train_length``, ``seed`` and ``metric`` in ``success`` (with the corridor
    ``length``), ``params``, ``train_s``, ``steps`` and ``final_loss`` (the mean training loss over
    all updates). ``jobs`` runs that many trainings at
    once in separate processes (each seeded alone). ``settings`` overrides entries of the recipe."""
    s = dict(QUICK if quick else EXPERIMENT, **(settings or {}))
    check_int("jobs", jobs)
    for name in s["agents"]:
        check_choice("agent", name, AGENT_NAMES)
    for n in s["test_lengths"]:
        check_int("test length", n, minimum=0)
    for n in s["max_train_lengths"]:
        check_int("max_train_length", n, minimum=s["min_train_length"])
    runs = [(a, seed + i, n) for n in s["max_train_lengths"] for i in range(s["num_seeds"])
            for a in s["agents"]]
    rows = run_all(run_one, runs, s, device, jobs, progress)
    return {**s, "agents": list(s["agents"]), "test_lengths": list(s["test_lengths"]),
            "max_train_lengths": list(s["max_train_lengths"]),
            "seeds": [seed + i for i in range(s["num_seeds"])], "jobs": jobs,
            "target": "the turn at the junction (one label per episode)"}, rows


def mean_success(rows: Sequence[dict], agent: str, length: int, max_train_length: int = 16) -> float:
    """The mean over seeds of the ``success`` rows of ``agent`` at corridor ``length``, trained on
    corridors up to ``max_train_length``."""
    values = [r["value"] for r in rows if r["metric"] == "success" and r["agent"] == agent
              and r["length"] == length and r["max_train_length"] == max_train_length]
    if not values:
        raise ValueError(f"no success rows for agent {agent!r} at length {length} "
                         f"(max_train_length {max_train_length})")
    return sum(values) / len(values)
