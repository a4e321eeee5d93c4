"""Hooks for :func:`~xlstm_edu.training.train`: evaluation and its records, checkpoints, stopping.

A hook is a :class:`~xlstm_edu.training.loop.Hook`; ``train`` calls ``on_step(run)`` after every
update and ``on_end(run)`` once at the end, in the order the hooks are given. The ones here:

* :class:`Evaluate`: every ``every`` updates (or ``every_s`` seconds of training), and where the
  schedule ends, a
  record in ``run.state.history`` (training loss since the last record, validation loss, learning
  rate, gradient norm, throughput, times), passed to ``on_record`` (for logs or live plots);
* :class:`Checkpoint`: saves the run every ``every`` updates and at the end;
* :class:`StopAt`: stops after a number of updates (the schedule still follows ``cfg.steps``, so a
  run stopped early and resumed matches one that was not);
* :class:`TimeBudget`: trains for a number of seconds, with the cosine schedule planned to end when the
  time is up (from the speed measured so far).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from torch import nn

from .._checks import check_int, check_number
from .checkpoint import save_checkpoint
from .loop import Hook, Run

LN2 = math.log(2.0)


class Evaluate(Hook):
    """Validation records during training.

    Args:
        loss_fn: ``model -> validation loss`` (mean nats per token), e.g.
            ``lambda m: evaluate(m, *spread_windows(val_tokens, 256, S))``.
        every: make a record every this many updates (``None``: only by time or at the end).
        every_s: make a record whenever this many seconds of training (``run.state.train_s``) have
            passed since the last one.
        at_start: also make a record before the first update (step 0, no training loss).
        chars_per_token: characters per token of the validation text, to add bits per character.
        on_record: called with each record as it is made.

    A record has ``step``, ``train_loss`` (mean over the updates since the previous record; ``None``
    before the first), ``val_loss`` (nats per token), ``val_bits_per_token``, ``val_bits_per_char``
    (with ``chars_per_token``), ``lr``, ``grad_norm`` (before clipping, last update),
    ``tokens_per_s`` (updates since the previous record, evaluations excluded), ``train_s`` (training
    time of the run so far) and ``elapsed_s`` (wall time, evaluations included).
    """

    def __init__(self, loss_fn: Callable[[nn.Module], float], *, every: int | None = None,
                 every_s: float | None = None, at_start: bool = False,
                 chars_per_token: float | None = None,
                 on_record: Callable[[dict], None] | None = None):
        if not callable(loss_fn):
            raise ValueError("loss_fn must be a function model -> validation loss")
        self.loss_fn, self.at_start, self.on_record = loss_fn, at_start, on_record
        self.every = None if every is None else check_int("every", every)
        self.every_s = None if every_s is None else check_number("every_s", every_s, 0.0,
                                                                 exclusive_minimum=True)
        self.chars_per_token = (None if chars_per_token is None else
                                check_number("chars_per_token", chars_per_token, 0.0,
                                             exclusive_minimum=True))
        self._last = None  # (step, train_s) of the previous record

    def on_start(self, run: Run) -> None:
        history = run.state.history
        self._last = ((history[-1]["step"], history[-1].get("train_s", run.state.train_s)) if history
                      else (run.state.step, run.state.train_s))
        if self.at_start and not history:
            self.record(run)

    def on_step(self, run: Run) -> None:
        step, train_s = run.state.step, run.state.train_s
        due_steps = self.every is not None and step % self.every == 0
        due_time = self.every_s is not None and train_s - self._last[1] >= self.every_s
        if due_steps or due_time:
            self.record(run)

    def on_end(self, run: Run) -> None:
        """A last record where the schedule ends (not where a :class:`StopAt` pauses the run: a
        resumed run then records exactly what an uninterrupted one would)."""
        done = run.state.step >= run.total_steps
        if done and (not run.state.history or run.state.history[-1]["step"] != run.state.step):
            self.record(run)

    def record(self, run: Run) -> dict:
        """Evaluate now, append the record to ``run.state.history`` and return it."""
        state = run.state
        val_loss = float(self.loss_fn(run.model))
        steps = state.step - self._last[0]
        seconds = state.train_s - self._last[1]
        record = {
            "step": state.step,
            "train_loss": state.loss_sum / state.loss_count if state.loss_count else None,
            "val_loss": val_loss,
            "val_bits_per_token": val_loss / LN2,
            "lr": None if math.isnan(run.lr) else run.lr,
            "grad_norm": None if math.isnan(run.grad_norm) else run.grad_norm,
            "tokens_per_s": steps * run.tokens_per_step / seconds if seconds > 0 else None,
            "train_s": state.train_s,
            "elapsed_s": state.elapsed_s,
        }
        if self.chars_per_token is not None:
            record["val_bits_per_char"] = val_loss / LN2 / self.chars_per_token
        state.history.append(record)
        state.loss_sum, state.loss_count = 0.0, 0
        self._last = (state.step, state.train_s)
        if self.on_record is not None:
            self.on_record(record)
        return record


class Checkpoint(Hook):
    """Save the run to the directory ``path`` every ``every`` updates (0: only at the end) and when
    the loop stops (:func:`~xlstm_edu.training.checkpoint.save_checkpoint`; ``tokenizer`` and ``extra``
    are stored with it). In a multi-process run rank 0 writes it and the other ranks wait until it
    is written."""

    def __init__(self, path, *, every: int = 0, tokenizer=None, extra: dict | None = None):
        self.path = Path(path)
        self.every = check_int("every", every, minimum=0)
        self.tokenizer, self.extra = tokenizer, extra

    def save(self, run: Run) -> None:
        if run.distributed is None or run.distributed.is_main:
            run.snapshot()
            save_checkpoint(self.path, run.model, run.cfg, run.state, tokenizer=self.tokenizer,
                            extra=self.extra)
        if run.distributed is not None:
            run.distributed.barrier()

    def on_step(self, run: Run) -> None:
        if self.every and run.state.step % self.every == 0 and run.state.step < run.total_steps:
            self.save(run)

    def on_end(self, run: Run) -> None:
        self.save(run)


class StopAt(Hook):
    """Stop after update ``step`` (in total, counting earlier sessions of the run)."""

    def __init__(self, step: int):
        self.step = check_int("step", step)

    def on_start(self, run: Run) -> None:
        if not run.state.step < self.step <= run.cfg.steps:
            raise ValueError(f"stop step must be in ({run.state.step}, steps = {run.cfg.steps}], "
                             f"got {self.step}")

    def on_step(self, run: Run) -> bool:
        return run.state.step >= self.step


class TimeBudget(Hook):
    """Train for ``seconds`` of update time (evaluations excluded), with the schedule fitted to it.

    ``cfg.steps`` stays the most updates the run may take. After ``calibration_steps`` updates
    (default: the warmup, at least 5) and then after every update, the run's schedule length
    (``state.schedule_steps``) is set to the updates done plus those that fit into the rest of the
    budget at the speed measured so far (at most ``cfg.steps``), so the cosine ends when the time is
    up. Until then the schedule runs over ``cfg.steps``: with a generous ``cfg.steps`` the rate stays
    near its peak after warmup. Later re-plans move the end by a little and change the rate smoothly.
    A time budget makes a run depend on the machine's speed: two runs are not bit-identical.
    """

    def __init__(self, seconds: float, *, calibration_steps: int | None = None):
        self.seconds = check_number("seconds", seconds, 0.0, exclusive_minimum=True)
        self.calibration_steps = (None if calibration_steps is None
                                  else check_int("calibration_steps", calibration_steps))

    def on_start(self, run: Run) -> None:
        calib = self.calibration_steps or max(run.cfg.warmup_steps, 5)
        self._calib_until = run.state.step + calib

    def on_step(self, run: Run) -> bool:
        state = run.state
        if state.train_s >= self.seconds:
            state.schedule_steps = state.step  # the schedule ends here
            return True
        if state.step >= self._calib_until:
            per_step = state.train_s / state.step
            left = max(1, int((self.seconds - state.train_s) / per_step))
            state.schedule_steps = min(run.cfg.steps, state.step + left)
        return False
