"""What a training run is made of, besides the model: its recipe (:class:`TrainConfig`), where it stands
(:class:`TrainState`), its random number generators, and the device it runs on.

This module imports no other part of :mod:`xlstm_edu.training`: the loop and the checkpoints both
build on it.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch

from .._checks import check_int, check_number


@dataclass
class TrainConfig:
    """The optimisation recipe of a run: everything :func:`~xlstm_edu.training.train` needs besides
    the model, the data and the hooks. Flat; validated on creation.

    The defaults are those of the command line: with its default models (about 0.2-0.4 M parameters),
    1,000 updates on Shakespeare take a few minutes on 2 CPU cores.
    """

    steps: int = 1000  # total optimizer updates of the run (the cosine reaches min_lr here)
    batch_size: int = 16  # sequences per update
    context_length: int = 128  # tokens per sequence: the model reads S tokens and predicts the next S
    lr: float = 2e-3  # peak learning rate, reached at the end of warmup
    min_lr: float = 2e-4  # floor of the cosine decay
    warmup_steps: int = 50  # linear warmup length, in updates (0: none)
    weight_decay: float = 0.1  # AdamW decoupled weight decay, on weight matrices only (make_optimizer)
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.95  # AdamW second-moment decay (0.95 is the usual choice for language models)
    grad_clip: float = 1.0  # maximum global gradient norm (0: no clipping)
    seed: int = 0  # seeds batch sampling and dropout (model initialisation is seeded by the caller)
    device: str = "auto"  # "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:1", "mps"

    def __post_init__(self):
        for name, low in (("steps", 1), ("batch_size", 1), ("context_length", 1), ("warmup_steps", 0),
                          ("seed", 0)):
            check_int(f"TrainConfig.{name}", getattr(self, name), minimum=low)
        check_number("TrainConfig.lr", self.lr, 0.0, exclusive_minimum=True)
        check_number("TrainConfig.min_lr", self.min_lr, 0.0, self.lr)
        check_number("TrainConfig.weight_decay", self.weight_decay, 0.0)
        check_number("TrainConfig.grad_clip", self.grad_clip, 0.0)
        for name in ("beta1", "beta2"):
            check_number(f"TrainConfig.{name}", getattr(self, name), 0.0, 1.0, exclusive_maximum=True)
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"TrainConfig.device must be a device string, got {self.device!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown or missing-but-required keys raise ``ValueError``."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}")
        return cls(**d)


@dataclass
class TrainState:
    """Where a run stands: everything, besides the weights, needed to continue it exactly.

    :func:`~xlstm_edu.training.train` advances a given state in place, so the same object (or one
    loaded from a checkpoint) continues the run.
    """

    step: int = 0  # optimizer updates done so far
    history: list[dict] = field(default_factory=list)  # one record per evaluation (hooks.Evaluate)
    optimizer_state: dict | None = None  # optimizer.state_dict() (AdamW moments and step counts)
    rng: dict | None = None  # RNG states (see capture_rng); None: seed from TrainConfig.seed
    loss_sum: float = 0.0  # sum of training losses since the last record (hooks.Evaluate resets) ...
    loss_count: int = 0  # ... and their number (the record's train_loss is the mean)
    train_s: float = 0.0  # wall time spent in updates so far (hooks and evaluations excluded)
    elapsed_s: float = 0.0  # wall time spent in train() so far, over all sessions
    schedule_steps: int | None = None  # length of the learning-rate schedule if not cfg.steps
    # (hooks.TimeBudget re-plans it from the measured speed)

    def to_dict(self) -> dict:
        """The JSON part of the state (the optimizer and RNG states are stored as tensors)."""
        return {k: v for k, v in asdict(self).items() if k not in ("optimizer_state", "rng")}

    @classmethod
    def from_dict(cls, d: dict, optimizer_state: dict | None, rng: dict | None) -> TrainState:
        """Inverse of :meth:`to_dict`; ``ValueError`` naming a missing or malformed key."""
        names = [f.name for f in fields(cls) if f.name not in ("optimizer_state", "rng")]
        missing = [n for n in names if n not in d]
        if missing:
            raise ValueError(f"missing keys {missing}")
        state = cls(step=d["step"], history=d["history"], optimizer_state=optimizer_state, rng=rng,
                    loss_sum=d["loss_sum"], loss_count=d["loss_count"], train_s=d["train_s"],
                    elapsed_s=d["elapsed_s"], schedule_steps=d["schedule_steps"])
        check_int("step", state.step, minimum=0)
        check_int("loss_count", state.loss_count, minimum=0)
        for name in ("loss_sum", "train_s", "elapsed_s"):
            check_number(name, getattr(state, name))
        if state.schedule_steps is not None:
            check_int("schedule_steps", state.schedule_steps)
        if not isinstance(state.history, list) or not all(isinstance(r, dict) for r in state.history):
            raise ValueError("history must be a list of records (objects)")
        return state


def resolve_device(device: str) -> torch.device:
    """``"auto"`` means CUDA when available, else CPU; anything else goes to ``torch.device``.
    ``ValueError`` for an unknown device or one this machine does not have."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"unknown device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA devices")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available on this machine")
    return dev


# --- randomness -----------------------------------------------------------------------------------

def capture_rng(batch_generator: torch.Generator) -> dict:
    """The states of every RNG a run may touch: the batch sampler, torch (CPU, and CUDA when in use,
    for dropout), numpy and Python's ``random``. Plain tensors, lists and ints (safe to
    ``torch.load(weights_only=True)``)."""
    np_state = np.random.get_state()  # ('MT19937', keys (624,) uint32, pos, has_gauss, cached_gaussian)
    cuda = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = torch.cuda.get_rng_state_all()
    return {
        "batch": batch_generator.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": random.getstate(),
    }


def restore_rng(rng: dict, batch_generator: torch.Generator) -> None:
    """Inverse of :func:`capture_rng`."""
    batch_generator.set_state(rng["batch"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])
    name, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = rng["python"]
    random.setstate((version, tuple(internal), gauss_next))
