"""The training loop: cross-entropy with AdamW, warmup + cosine, clipping, and hooks.

:func:`train` does the updates and nothing else; what happens around them is a hook
(:mod:`~xlstm_edu.training.hooks`): evaluation and its records, logging, checkpoints, stopping early
or after a time budget. The recipe is the usual one for small language models (nanoGPT, the xLSTM
paper's appendix): AdamW with decoupled weight decay on weight matrices only (:func:`make_optimizer`),
a linear warmup then cosine decay (:func:`~xlstm_edu.training.schedule.lr_at`), and clipping of the
global gradient norm.

All randomness comes from state that is checkpointed (:class:`~xlstm_edu.training.state.TrainState`):
a dedicated ``torch.Generator`` samples the batches, the global torch RNG drives dropout, and both are
restored on resume, so that (train N steps, save, load, train N more) gives exactly the losses of 2N
steps in one go (on CPU; CUDA kernels may be non-deterministic).

With ``distributed=`` (:mod:`~xlstm_edu.training.distributed`, under ``torchrun``) the same loop runs
on every rank: each rank draws the global batch and keeps its slice, ``DistributedDataParallel``
averages the gradients, and the hooks' stop decisions and schedule are rank 0's.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._progress import tqdm
from ..blocks.components import CausalConv1d, LinearHeadwise
from ..data.loader import IGNORE_INDEX, as_token_tensor, sample_windows
from ..lstm import LSTM
from .distributed import Distributed, local_batch_size
from .schedule import lr_at
from .state import TrainConfig, TrainState, capture_rng, resolve_device, restore_rng

#: Modules whose ``weight*`` parameters are weight matrices (decayed); norms' gains, embeddings,
#: biases and everything else (the sLSTM's ``R`` and gate bias ``b``, the mLSTM's ``learnable_skip``)
#: are not decayed.
DECAYED_MODULES = (nn.Linear, LinearHeadwise, CausalConv1d, LSTM)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on the weight matrices of linear maps (:data:`DECAYED_MODULES`) and
    none on the rest: biases (the sLSTM gate bias with its power-law forget bias included), norms'
    gains, embeddings and the sLSTM recurrent kernel ``R``. This is the official ``xlstm`` grouping
    (its ``_create_weight_decay_optim_groups``: parameters named ``weight`` outside norms, embeddings
    excluded by default). A parameter shared by several modules (a tied head) is listed once."""
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            is_matrix = isinstance(module, DECAYED_MODULES) and name.startswith("weight")
            (decay if is_matrix and id(p) not in embeddings else no_decay).append(p)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters")
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr,
                             betas=(cfg.beta1, cfg.beta2))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 32) -> float:
    """Mean cross-entropy (nats per target) of ``model`` on inputs ``x`` and targets ``y`` (e.g. from
    :func:`xlstm_edu.data.spread_windows`), in batches of ``batch_size``, in eval mode (restored
    afterwards; no RNG is drawn from, so evaluating does not change a run). Targets equal to
    :data:`IGNORE_INDEX` are left out."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            xb, yb = xb.to(device), yb.to(device)
            logits = model(xb)  # (b, S, V)
            total += _loss(logits, yb, reduction="sum").item()
            count += int((yb != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    return total / max(count, 1)


def _loss(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of logits ``(..., V)`` against targets ``(...)``, in float32 even for a
    low-precision model."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction=reduction)


@dataclass
class Run:
    """What the hooks see while :func:`train` runs (the state is updated after every update)."""

    model: nn.Module
    cfg: TrainConfig
    state: TrainState
    optimizer: torch.optim.Optimizer
    batch_generator: torch.Generator  # samples the batches; its state is part of the checkpoint
    device: torch.device
    tokens_per_step: int
    loss: float = math.nan  # the last update's training loss (nats)
    grad_norm: float = math.nan  # the last update's gradient norm, before clipping
    lr: float = math.nan  # the last update's learning rate
    distributed: Distributed | None = None  # the process group of a multi-process run
    ddp_model: nn.Module | None = None  # `model` inside DistributedDataParallel (for the updates)

    @property
    def total_steps(self) -> int:
        """Length of the learning-rate schedule: ``cfg.steps``, or what a hook planned."""
        return self.state.schedule_steps or self.cfg.steps

    def snapshot(self) -> None:
        """Copy the optimizer and RNG states into ``state`` (before saving a checkpoint)."""
        self.state.optimizer_state = copy.deepcopy(self.optimizer.state_dict())
        self.state.rng = capture_rng(self.batch_generator)


class Hook:
    """Base class of the training hooks: override what you need.

    :func:`train` calls every hook's ``on_step(run)`` after each update, in the order given (a hook
    returns ``True`` to stop the run), and every hook's ``on_end(run)`` once when the loop stops, in
    the same order (so an evaluation hook listed before a checkpoint hook is saved with it).
    ``on_start(run)`` runs before the first update.
    """

    def on_start(self, run: Run) -> None:
        pass

    def on_step(self, run: Run) -> bool | None:
        return None

    def on_end(self, run: Run) -> None:
        pass


def train(model: nn.Module, data, cfg: TrainConfig, *, state: TrainState | None = None,
          hooks: Sequence[Hook] = (), progress: bool | None = True,
          distributed: Distributed | None = None) -> TrainState:
    """Train ``model`` on ``data`` until ``cfg.steps`` updates (or a hook stops it); return the state.

    Args:
        model: maps inputs ``x`` to logits ``(..., V)``; moved to ``cfg.device``.
        data: 1-D token ids (numpy array, tensor or list): next-token prediction on random windows of
            ``cfg.context_length`` tokens; or a function ``sample(generator) -> (x, y)`` that draws
            one batch with the given ``torch.Generator`` (so that a resumed run draws the same
            batches). Targets equal to :data:`IGNORE_INDEX` are left out of the loss.
        cfg: the :class:`~xlstm_edu.training.state.TrainConfig`.
        state: a state to continue (it is advanced in place); ``None`` starts fresh, seeding the
            batch sampler with ``cfg.seed`` and the global torch RNG (dropout) with ``cfg.seed + 1``.
        hooks: :class:`Hook` objects (evaluation, logging, checkpoints, stopping: see
            :mod:`xlstm_edu.training.hooks`).
        progress: a tqdm bar with the loss and tokens/s (``None``: only on a terminal); on rank 0
            only.
        distributed: the process group of a data-parallel run
            (:func:`~xlstm_edu.training.distributed.setup`; call ``train`` on every rank with the
            same arguments): ``cfg.batch_size`` is the global batch, split over the ranks; the
            model runs on ``distributed.device``. ``None``: one process.

    Raises ``ValueError`` before any update for data the model cannot read (windows longer than a
    Transformer's positions) or a global batch the world size does not divide, and
    ``FloatingPointError`` when the loss stops being finite (the last checkpoint, if any, is left as
    it was).
    """
    run, sample = _start(model, data, cfg, state, distributed)
    for hook in hooks:
        hook.on_start(run)
    if distributed is not None and not distributed.is_main:
        progress = False
    bar = tqdm(total=run.total_steps, initial=run.state.step, unit="step", dynamic_ncols=True,
               disable=None if progress is None else not progress)
    session_start = time.perf_counter()
    elapsed_before = run.state.elapsed_s
    stop = run.state.step >= run.total_steps
    try:
        while not stop:
            t0 = time.perf_counter()
            _update(run, sample)
            run.state.train_s += time.perf_counter() - t0
            run.state.elapsed_s = elapsed_before + time.perf_counter() - session_start
            bar.total = run.total_steps
            bar.update(1)
            bar.set_postfix(loss=f"{run.loss:.3f}",
                            tok_s=f"{run.state.step * run.tokens_per_step / run.state.train_s:,.0f}"
                            if run.state.train_s else "-", refresh=False)
            stops = [bool(hook.on_step(run)) for hook in hooks]  # every hook sees every update
            if distributed is not None:  # timings differ between ranks: rank 0 decides for all
                stop_0, planned = distributed.from_main([any(stops), run.state.schedule_steps or 0])
                stops, run.state.schedule_steps = [bool(stop_0)], planned or None
            stop = any(stops) or run.state.step >= run.total_steps
        run.state.elapsed_s = elapsed_before + time.perf_counter() - session_start
        run.snapshot()  # the state alone continues the run (in memory, or after a checkpoint)
        for hook in hooks:
            hook.on_end(run)
    finally:
        bar.close()
    return run.state


def _start(model: nn.Module, data, cfg: TrainConfig, state: TrainState | None,
           distributed: Distributed | None = None):
    """Check the data against the model, move both to the device, build the optimizer and the batch
    sampler, restore (or seed) the RNGs; with ``distributed``, wrap the model in DDP. Returns the
    :class:`Run` and ``sample(generator)`` (the global batch)."""
    if not isinstance(cfg, TrainConfig):
        raise ValueError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if distributed is not None:
        if not isinstance(distributed, Distributed):
            raise ValueError(f"distributed must be a Distributed (training.distributed.setup), got "
                             f"{type(distributed).__name__}")
        local_batch_size(cfg.batch_size, distributed.world_size)
    device = resolve_device(cfg.device) if distributed is None else distributed.device
    if callable(data):
        sample = data
    else:
        limit = getattr(model, "max_context_length", None)
        if limit is not None and cfg.context_length > limit:
            raise ValueError(f"context_length {cfg.context_length} is longer than the model can read "
                             f"({type(model).__name__}.max_context_length = {limit})")
        tokens = as_token_tensor(data, cfg.context_length, "data").to(device)
        vocab = getattr(getattr(model, "config", None), "vocab_size", None)
        if vocab is not None and int(tokens.max()) >= vocab:
            raise ValueError(f"data holds token id {int(tokens.max())}, the model's vocab_size is "
                             f"{vocab}")

        def sample(generator, tokens=tokens):
            return sample_windows(tokens, cfg.batch_size, cfg.context_length, generator)

    state = TrainState() if state is None else state
    if not isinstance(state, TrainState):
        raise ValueError(f"state must be a TrainState, got {type(state).__name__}")
    model.to(device)
    optimizer = make_optimizer(model, cfg)
    if state.optimizer_state is not None:
        optimizer.load_state_dict(state.optimizer_state)
    batch_generator = torch.Generator()
    if state.rng is None:
        batch_generator.manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed + 1)
    else:
        restore_rng(state.rng, batch_generator)
    model.train()
    run = Run(model, cfg, state, optimizer, batch_generator, device,
              tokens_per_step=cfg.batch_size * cfg.context_length, distributed=distributed,
              ddp_model=None if distributed is None else distributed.wrap(model))
    return run, sample


def _update(run: Run, sample: Callable) -> None:
    """One optimizer update on one batch; advances ``run.state``."""
    cfg, state = run.cfg, run.state
    run.lr = lr_at(state.step, lr=cfg.lr, min_lr=cfg.min_lr, warmup_steps=cfg.warmup_steps,
                   total_steps=run.total_steps)
    for group in run.optimizer.param_groups:
        group["lr"] = run.lr
    x, y = sample(run.batch_generator)  # the (global) batch, e.g. (B, S) each
    run.optimizer.zero_grad(set_to_none=True)
    if run.distributed is None:
        loss = _loss(run.model(x.to(run.device)), y.to(run.device))
        loss.backward()
    else:
        loss = _sharded_loss_backward(run, x, y)
    max_norm = cfg.grad_clip if cfg.grad_clip > 0 else math.inf  # inf: measure, do not clip
    run.grad_norm = float(nn.utils.clip_grad_norm_(run.model.parameters(), max_norm))
    run.loss = loss.item()
    if not math.isfinite(run.loss):
        raise FloatingPointError(f"the training loss is {run.loss} at update {state.step + 1}: "
                                 "training diverged; try a lower lr or a smaller grad_clip")
    run.optimizer.step()
    state.step += 1
    state.loss_sum += run.loss
    state.loss_count += 1


def _sharded_loss_backward(run: Run, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """This rank's part of the global batch ``x, y (B, S)``: forward and backward through DDP; returns
    the global batch's mean loss (the same on every rank).

    Rank ``r`` differentiates ``world_size * (sum of its targets' losses) / N``, ``N`` the targets of
    the whole batch (known to every rank, which holds it all); DDP averages the gradients over the
    ranks, which gives the gradient of the global mean, also when ignored targets are spread unevenly.
    """
    d = run.distributed
    n_targets = max(int((y != IGNORE_INDEX).sum()), 1)
    xr, yr = d.shard(x).to(run.device), d.shard(y).to(run.device)  # (B / world_size, S) each
    local = _loss(run.ddp_model(xr), yr, reduction="sum") * (d.world_size / n_targets)
    local.backward()  # DDP: the gradients are averaged over the ranks here
    return d.sum(local) / d.world_size
