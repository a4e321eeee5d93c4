"""Training language models: the loop, the learning-rate schedule and checkpoints.

- :func:`train` with a flat :class:`TrainConfig` (AdamW, warmup + cosine, clipping, validation);
- :func:`lr_at`, the schedule as a pure function of the step;
- :func:`save_checkpoint` / :func:`load_checkpoint`, which resume a run exactly.
"""

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, load_weights, save_checkpoint
from .loop import TrainConfig, TrainState, evaluate, make_optimizer, train
from .schedule import lr_at

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "TrainConfig",
    "TrainState",
    "evaluate",
    "load_checkpoint",
    "load_weights",
    "lr_at",
    "make_optimizer",
    "save_checkpoint",
    "train",
]
