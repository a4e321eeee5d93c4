"""Training: the loop, its hooks, the learning-rate schedule and checkpoints.

- :func:`train`: the updates (AdamW, warmup + cosine, clipping) on a :class:`TrainConfig`, with
  :class:`Hook` objects around them (:mod:`~xlstm_edu.training.hooks`: :class:`Evaluate`,
  :class:`Checkpoint`, :class:`StopAt`, :class:`TimeBudget`);
- :func:`evaluate`: the mean cross-entropy on fixed windows (validation);
- :func:`lr_at`: the schedule as a pure function of the step;
- :func:`save_checkpoint` / :func:`load_checkpoint`: a run saved and resumed exactly;
- :mod:`~xlstm_edu.training.distributed`: the same run on several processes (``torchrun``, DDP):
  :func:`distributed_from_env`, :func:`setup_distributed`, then ``train(..., distributed=...)``.

Layers inside: ``state`` (config, state, RNGs) <- ``checkpoint``, ``distributed`` <- ``loop`` <-
``hooks``.
"""

from .checkpoint import (
    CheckpointError,
    LoadedCheckpoint,
    check_checkpoint_dir,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from .distributed import Distributed
from .distributed import from_env as distributed_from_env
from .distributed import setup as setup_distributed
from .hooks import Checkpoint, Evaluate, StopAt, TimeBudget
from .loop import IGNORE_INDEX, Hook, Run, evaluate, make_optimizer, train
from .schedule import lr_at
from .state import TrainConfig, TrainState, resolve_device

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "Distributed",
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
    "distributed_from_env",
    "evaluate",
    "load_checkpoint",
    "load_weights",
    "lr_at",
    "make_optimizer",
    "resolve_device",
    "save_checkpoint",
    "setup_distributed",
    "train",
]
