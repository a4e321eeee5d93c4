"""The training loop: next-token prediction with AdamW, warmup + cosine, clipping and validation.

One short function, :func:`train`, that any model with ``forward(idx (B, S)) -> logits (B, S, V)``
can use. All randomness comes from state that is checkpointed (:class:`TrainState`): a dedicated
``torch.Generator`` samples the batches, the global torch RNG drives dropout, and both are restored on
resume, so that (train N steps, save, load, train N more) gives exactly the losses of 2N steps in one go
(on CPU; CUDA kernels may be non-deterministic).

The recipe is the usual one for small language models (nanoGPT, the xLSTM paper's appendix): AdamW
with decoupled weight decay on matrices only (not on biases, norms' scales or gate biases), a linear
warmup then cosine decay (:func:`~xlstm_edu.training.schedule.lr_at`), and clipping of the global
gradient norm.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data.loader import as_token_tensor, eval_batches, random_batches
from .schedule import lr_at

LN2 = math.log(2.0)


@dataclass
class TrainConfig:
    """Everything :func:`train` needs besides the model and the data. Flat; validated on creation.

    The defaults are those of the command line: with its default models (about 0.2-0.4 M parameters),
    1,000 updates on Shakespeare take about 3.5 minutes (xLSTM), 3 (LSTM) and 1 (Transformer) on 2
    idle CPU cores (measured at 9,800, 12,000 and 32,000 tokens/s).
    """

    steps: int = 1000  # total optimizer updates of the run (the cosine reaches min_lr here)
    batch_size: int = 16  # sequences per update
    context_length: int = 128  # tokens per sequence: the model reads S tokens and predicts the next S
    lr: float = 2e-3  # peak learning rate, reached at the end of warmup
    min_lr: float = 2e-4  # floor of the cosine decay
    warmup_steps: int = 50  # linear warmup length, in updates (0: none)
    weight_decay: float = 0.1  # AdamW decoupled weight decay, applied to matrices only
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.95  # AdamW second-moment decay (0.95 is the usual choice for language models)
    grad_clip: float = 1.0  # maximum global gradient norm (0: no clipping)
    eval_every: int = 100  # validate every this many updates, and after the last one
    eval_batches: int = 16  # validation batches per evaluation (always the same windows)
    checkpoint_every: int = 250  # save to out_dir every this many updates, and at the end (0: end only)
    seed: int = 0  # seeds batch sampling and dropout (model initialisation is seeded by the caller)
    device: str = "auto"  # "auto" (CUDA if available, else CPU), "cpu", "cuda", "cuda:1", "mps"
    out_dir: str | None = None  # checkpoint directory (None: no checkpoints)

    def __post_init__(self):
        lowest = {"steps": 1, "batch_size": 1, "context_length": 1, "eval_every": 1, "eval_batches": 1,
                  "warmup_steps": 0, "checkpoint_every": 0, "seed": 0}
        for name, low in lowest.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"TrainConfig.{name} must be an integer >= {low}, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"TrainConfig.lr must be a positive number, got {self.lr!r}")
        if not 0.0 <= self.min_lr <= self.lr:
            raise ValueError(f"TrainConfig.min_lr must be in [0, lr={self.lr}], got {self.min_lr!r}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError(
                f"TrainConfig.weight_decay and grad_clip must be >= 0, got {self.weight_decay!r} "
                f"and {self.grad_clip!r}"
            )
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"TrainConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"TrainConfig.device must be a device string, got {self.device!r}")
        if self.out_dir is not None and not isinstance(self.out_dir, str):
            raise ValueError(f"TrainConfig.out_dir must be a string or None, got {self.out_dir!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainState:
    """Where a run stands: everything, besides the weights, needed to continue it exactly.

    :func:`train` advances a given state in place, so the same object (or one loaded from a
    checkpoint) continues the run.
    """

    step: int = 0  # optimizer updates done so far
    history: list[dict] = field(default_factory=list)  # one record per validation (see train)
    optimizer_state: dict | None = None  # optimizer.state_dict() (AdamW moments and step counts)
    rng: dict | None = None  # RNG states (see capture_rng); None: seed from TrainConfig.seed
    loss_sum: float = 0.0  # sum of training losses since the last record ...
    loss_count: int = 0  # ... and their number (the record's train_loss is the mean)
    elapsed_s: float = 0.0  # wall time spent in train() so far, over all sessions


def resolve_device(device: str) -> torch.device:
    """``"auto"`` means CUDA when available, else CPU; anything else goes to ``torch.device``.
    ``ValueError`` for an unknown device or one this machine does not have."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available on this machine")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available on this machine")
    return dev


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on parameters with >= 2 dimensions (weight matrices, embeddings, the
    sLSTM recurrent kernels) and none on vectors (biases, normalisation scales, gate biases).

    Shared (tied) parameters appear once: ``named_parameters`` removes duplicates.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))


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


# --- validation ---------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model: nn.Module, tokens, cfg: TrainConfig) -> float:
    """Mean next-token cross-entropy (nats per token) on the first ``cfg.eval_batches`` batches of
    consecutive windows of ``tokens`` (:func:`~xlstm_edu.data.eval_batches`): the same tokens every
    time. Dropout is off during evaluation and no RNG is drawn from, so evaluating does not change
    the run.
    """
    device = next(model.parameters()).device
    batches = eval_batches(tokens, cfg.batch_size, cfg.context_length, max_batches=cfg.eval_batches,
                           device=device)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for x, y in batches:
        logits = model(x)  # (b, S, V)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum")
        total += loss.item()
        count += y.numel()
    model.train(was_training)
    return total / count


# --- the loop --------------------------------------------------------------------------------------

def train(
    model: nn.Module,
    train_tokens,
    val_tokens,
    cfg: TrainConfig,
    *,
    state: TrainState | None = None,
    until: int | None = None,
    chars_per_token: float | None = None,
    tokenizer=None,
    extra: dict | None = None,
    on_record: Callable[[dict], None] | None = None,
    progress: bool | None = True,
) -> list[dict]:
    """Train ``model`` on next-token prediction; return the history (one dict per validation).

    Args:
        model: maps ``idx (B, S)`` int64 to ``logits (B, S, V)``; moved to ``cfg.device``.
        train_tokens, val_tokens: 1-D integer token ids (numpy array, tensor or list).
        cfg: the :class:`TrainConfig`.
        state: a :class:`TrainState` to continue (it is advanced in place); ``None`` starts fresh,
            seeding the batch sampler with ``cfg.seed`` and the global torch RNG (dropout) with
            ``cfg.seed + 1``.
        until: stop after this many total updates (default ``cfg.steps``); the learning-rate schedule
            still follows ``cfg.steps``, so a run stopped early and resumed matches one that was not.
        chars_per_token: characters per token of the validation text, to report bits per character
            (for a character tokenizer it is 1: bits per token are bits per character).
        tokenizer, extra: stored with each checkpoint (see
            :func:`~xlstm_edu.training.checkpoint.save_checkpoint`) when ``cfg.out_dir`` is set.
        on_record: called with each history record as it is made (for live plots or logs).
        progress: show a tqdm bar with the loss and tokens/s (``None``: only on a terminal).

    Each record has ``step``, ``train_loss`` (mean over the updates since the previous record, nats),
    ``val_loss`` (nats per token), ``val_bits_per_token``, ``val_bits_per_char`` (when
    ``chars_per_token`` is given), ``lr``, ``grad_norm`` (before clipping, last update),
    ``tokens_per_s`` (training throughput since the previous record, validation excluded) and
    ``elapsed_s`` (total wall time of the run). Records are made every ``cfg.eval_every`` updates and
    after update ``cfg.steps``. With ``cfg.out_dir`` set, a checkpoint is written every
    ``cfg.checkpoint_every`` updates and when the loop stops.
    """
    from .checkpoint import save_checkpoint  # checkpoint imports this module

    device = resolve_device(cfg.device)
    model.to(device)
    # Token ids live on the training device; batches are cut there (the sampler's RNG is on the CPU).
    train_tokens = as_token_tensor(train_tokens, cfg.context_length, "train_tokens").to(device)
    val_tokens = as_token_tensor(val_tokens, cfg.context_length, "val_tokens").to(device)
    stop = cfg.steps if until is None else until
    if isinstance(stop, bool) or not isinstance(stop, int) or not 0 <= stop <= cfg.steps:
        raise ValueError(f"until must be an integer in [0, cfg.steps = {cfg.steps}], got {until!r}")
    state = TrainState() if state is None else state

    optimizer = make_optimizer(model, cfg)
    if state.optimizer_state is not None:
        optimizer.load_state_dict(state.optimizer_state)
    batch_generator = torch.Generator()
    if state.rng is None:
        batch_generator.manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed + 1)
    else:
        restore_rng(state.rng, batch_generator)

    def snapshot():
        state.optimizer_state = copy.deepcopy(optimizer.state_dict())  # detached from later updates
        state.rng = capture_rng(batch_generator)
        if cfg.out_dir is not None:
            save_checkpoint(cfg.out_dir, model, cfg, state, tokenizer=tokenizer, extra=extra)

    batches = random_batches(train_tokens, cfg.batch_size, cfg.context_length, batch_generator)
    tokens_per_step = cfg.batch_size * cfg.context_length
    bar = tqdm(total=cfg.steps, initial=state.step, disable=None if progress is None else not progress,
               unit="step", dynamic_ncols=True)
    model.train()
    session_start = time.perf_counter()
    elapsed_before = state.elapsed_s
    interval_start, interval_steps = session_start, 0
    max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")  # inf: measure, do not clip
    while state.step < stop:
        lr = lr_at(state.step, lr=cfg.lr, min_lr=cfg.min_lr, warmup_steps=cfg.warmup_steps,
                   total_steps=cfg.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = next(batches)  # each (B, S), on the device
        logits = model(x)  # (B, S, V)
        # logits (B*S, V) against targets (B*S,); the loss in float32 even for low-precision models
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), max_norm))
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            bar.close()
            raise FloatingPointError(
                f"the training loss is {loss_value} at update {state.step + 1}: training diverged; "
                "try a lower lr or a smaller grad_clip"
            )
        optimizer.step()
        state.step += 1
        state.loss_sum += loss_value
        state.loss_count += 1
        interval_steps += 1
        now = time.perf_counter()
        tokens_per_s = interval_steps * tokens_per_step / max(now - interval_start, 1e-9)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)

        if state.step % cfg.eval_every == 0 or state.step == cfg.steps:
            val_loss = evaluate(model, val_tokens, cfg)
            record = {
                "step": state.step,
                "train_loss": state.loss_sum / state.loss_count,
                "val_loss": val_loss,
                "val_bits_per_token": val_loss / LN2,
                "lr": lr,
                "grad_norm": grad_norm,
                "tokens_per_s": tokens_per_s,
                "elapsed_s": elapsed_before + time.perf_counter() - session_start,
            }
            if chars_per_token is not None:
                record["val_bits_per_char"] = val_loss / LN2 / chars_per_token
            state.history.append(record)
            state.loss_sum, state.loss_count = 0.0, 0
            bar.set_postfix(loss=f"{loss_value:.3f}", val=f"{val_loss:.3f}",
                            tok_s=f"{tokens_per_s:,.0f}")
            if on_record is not None:
                on_record(record)
            interval_start, interval_steps = time.perf_counter(), 0
        if cfg.out_dir is not None and cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 \
                and state.step < stop:
            state.elapsed_s = elapsed_before + time.perf_counter() - session_start
            snapshot()
    bar.close()
    state.elapsed_s = elapsed_before + time.perf_counter() - session_start
    snapshot()
    return state.history
