"""Training: the loop, its hooks, the learning-rate schedule and checkpoints.

- :func:`train`: the updates (AdamW, warmup + cosine, clipping) on a :class:`TrainConfig`, with
  :class:`Hook` objects around them (:mod:`~xlstm_edu.training.hooks`: :class:`Evaluate`,
  :class:`Checkpoint`, :class:`StopAt`, :class:`TimeBudget`);
- :func:`evaluate`: the mean cross-entropy on fixed windows (validation);
- :func:`lr_at`: the schedule as a pure function of the step;
- :func:`save_checkpoint` / :func:`load_checkpoint`: a run saved and resumed exactly.

Layers inside: ``state`` (config, state, RNGs) <- ``checkpoint`` <- ``loop`` <- ``hooks``.
"""

from .checkpoint import (
    CheckpointError,
    LoadedCheckpoint,
    check_checkpoint_dir,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from .hooks import Checkpoint, Evaluate, StopAt, TimeBudget
from .loop import IGNORE_INDEX, Hook, Run, evaluate, make_optimizer, train
from .schedule import lr_at
from .state import TrainConfig, TrainState, resolve_device

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "Evaluate",
    "Hook",
    "IGNORE_INDEX",
    "LoadedCheckpoint",
    "Run",
    "StopAt",
    "TimeBudget",
    "TrainConfig",
    "TrainState",
    "check_checkpoint_dir",
    "evaluate",
    "load_checkpoint",
    "load_weights",
    "lr_at",
    "make_optimizer",
    "resolve_device",
    "save_checkpoint",
    "train",
]
