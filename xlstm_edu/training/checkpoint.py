"""Checkpoints: one directory per run, with everything needed to continue it exactly or sample from it.

Layout of a checkpoint directory::

    model.safetensors    weights (safetensors: no pickle; tied weights stored once)
    model_config.json    the model's config, with a "model" field naming the architecture
    train_config.json    the TrainConfig
    optimizer.pt         the optimizer's state_dict (AdamW moments), torch.save
    rng.pt               RNG states: batch sampler, torch (+ CUDA), numpy, Python `random`
    train_state.json     step, history, the running loss sums, times, extra (e.g. data settings)
    tokenizer.json       the tokenizer (when one is given)

Each file is written to a temporary name and then renamed, and ``train_state.json`` is written last,
so an interrupted save leaves the previous checkpoint readable; every file records its step and
loading checks that they agree. ``.pt`` files are read with ``torch.load(weights_only=True)``, which
cannot run code. Every problem on loading raises :class:`CheckpointError` naming the file and what is
wrong.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .state import TrainConfig, TrainState

FORMAT = "xlstm_edu-checkpoint"  # recorded in every file
VERSION = 2  # bumped when the layout changes (2: TrainConfig without loop settings, train_s)

WEIGHTS = "model.safetensors"
MODEL_CONFIG = "model_config.json"
TRAIN_CONFIG = "train_config.json"
OPTIMIZER = "optimizer.pt"
RNG = "rng.pt"
TRAIN_STATE = "train_state.json"
TOKENIZER = "tokenizer.json"
REQUIRED = (WEIGHTS, MODEL_CONFIG, TRAIN_CONFIG, OPTIMIZER, RNG, TRAIN_STATE)


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or does not fit its config. The message names the file."""


class LoadedCheckpoint(NamedTuple):
    """What :func:`load_checkpoint` returns (a tuple: unpack it, or use the names)."""

    model: nn.Module  # built from model_config.json, weights loaded, on the CPU, in train mode
    train_config: TrainConfig
    state: TrainState  # step, history, optimizer_state, rng: pass to train(state=...) to continue
    tokenizer: Any  # the saved tokenizer, or None
    extra: dict  # whatever the caller stored (the command line stores its data settings)


def model_config_dict(model: nn.Module) -> dict:
    """The model's config as a JSON-ready dict, with a ``"model"`` field naming the architecture."""
    if callable(getattr(model, "to_dict", None)):
        config = model.to_dict()
    elif dataclasses.is_dataclass(getattr(model, "config", None)):
        config = dataclasses.asdict(model.config)
    else:
        raise ValueError(
            f"{type(model).__name__} has neither to_dict() nor a dataclass .config: "
            "cannot save its config"
        )
    if not isinstance(config.get("model"), str):
        raise ValueError(
            f"the config of {type(model).__name__} has no 'model' field naming the architecture"
        )
    return config


def _share_key(name: str, t: torch.Tensor):
    """Tensors with the same key are one tensor under several names (tied weights)."""
    return (t.data_ptr(), t.shape, t.stride()) if t.numel() else name


# --- saving --------------------------------------------------------------------------------------------

def _unique_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with one name per shared tensor (the first; safetensors refuses shared memory),
    as contiguous CPU copies. :func:`load_weights` fills the other names back in."""
    kept = {}
    for name, t in model.state_dict().items():
        kept.setdefault(_share_key(name, t), (name, t))
    return {name: t.detach().to("cpu", copy=True).contiguous() for name, t in kept.values()}


def _replace_atomically(path: Path, write: Callable[[str], None]) -> None:
    """Write via ``write(tmp_name)``, then rename over ``path``: readers see the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp))
    os.replace(tmp, path)


def _write_json(path: Path, obj) -> None:
    def write(name):
        with open(name, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")
    _replace_atomically(path, write)


def save_checkpoint(path, model: nn.Module, train_config: TrainConfig, state: TrainState, *,
                    tokenizer=None, extra: dict | None = None) -> Path:
    """Save a run to the directory ``path`` (created if needed; an older checkpoint there is replaced).

    ``state.optimizer_state`` and ``state.rng`` must be set (``Run.snapshot`` does it; the
    :class:`~xlstm_edu.training.hooks.Checkpoint` hook calls both). ``tokenizer`` needs a
    ``save(path)`` method; ``extra`` any JSON-serialisable dict. Returns the directory.
    """
    path = Path(path)
    if state.optimizer_state is None or state.rng is None:
        raise ValueError("state.optimizer_state and state.rng must be set before saving a checkpoint")
    check_checkpoint_dir(path)
    config = model_config_dict(model)
    json.dumps(extra or {})  # not serialisable: fail before any file is written
    path.mkdir(parents=True, exist_ok=True)
    stamp = {"format": FORMAT, "version": VERSION, "step": state.step}

    metadata = {**{k: str(v) for k, v in stamp.items()}, "model": config["model"]}
    weights = safetensors_bytes(_unique_tensors(model), metadata=metadata)
    _replace_atomically(path / WEIGHTS, lambda name: Path(name).write_bytes(weights))
    _write_json(path / MODEL_CONFIG, config)
    _write_json(path / TRAIN_CONFIG, train_config.to_dict())
    _replace_atomically(path / OPTIMIZER,
                        lambda name: torch.save({**stamp, "optimizer": state.optimizer_state}, name))
    _replace_atomically(path / RNG, lambda name: torch.save({**stamp, "rng": state.rng}, name))
    if tokenizer is not None:
        _replace_atomically(path / TOKENIZER, tokenizer.save)
    else:  # no stale tokenizer from an earlier run
        (path / TOKENIZER).unlink(missing_ok=True)
    _write_json(path / TRAIN_STATE, {**stamp, **state.to_dict(), "extra": extra or {}})
    return path


def check_checkpoint_dir(path) -> Path:
    """``path`` can hold a checkpoint: it is a directory or does not exist yet, and no part of it is a
    file. ``ValueError`` otherwise (before any work that would be lost at the end of a run)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} is a file, not a directory: a checkpoint is a directory")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{parent} is a file: cannot create the checkpoint directory {path}")
            if not os.access(parent, os.W_OK | os.X_OK) and not path.exists():
                raise ValueError(f"cannot create {path}: {parent} is not writable")
            break
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{path} is not writable")
    return path


# --- loading -------------------------------------------------------------------------------------------

def _read_json(file: Path) -> dict:
    try:
        with open(file, encoding="utf-8") as f:
            obj = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file}: corrupt JSON ({e})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{file}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _read_torch(file: Path) -> dict:
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, forbidden global: all mean "corrupt"
        raise CheckpointError(
            f"{file}: corrupt or unreadable torch file ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{file}: expected a dict, got {type(obj).__name__}")
    return obj


def _check_stamp(file: Path, obj: dict, step: int | None) -> None:
    if obj.get("format") != FORMAT or str(obj.get("version")) != str(VERSION):
        raise CheckpointError(
            f"{file}: not an xlstm_edu checkpoint file of version {VERSION} "
            f"(format={obj.get('format')!r}, version={obj.get('version')!r})"
        )
    if step is not None and str(obj.get("step")) != str(step):
        raise CheckpointError(
            f"{file}: is from step {obj.get('step')} but train_state.json is at step {step} "
            "(an interrupted save?)"
        )


def _default_build(config: dict) -> nn.Module:
    from ..models import build_model  # lazy: the training code does not need the model zoo
    return build_model(config)


def load_weights(model: nn.Module, file, *, expected_model: str | None = None,
                 step: int | None = None) -> None:
    """Load ``model.safetensors`` into ``model`` in place; :class:`CheckpointError` when the file is
    corrupt, was saved for another architecture, or its tensors do not fit (names or shapes)."""
    file = Path(file)
    try:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except Exception as e:  # safetensors raises its own error type for truncated or garbled files
        raise CheckpointError(f"{file}: corrupt safetensors file ({type(e).__name__}: {e})") from None
    _check_stamp(file, metadata, step)
    if expected_model is not None and metadata.get("model") != expected_model:
        raise CheckpointError(
            f"{file}: the weights are for model {metadata.get('model')!r}, but the config says "
            f"{expected_model!r}"
        )

    own = model.state_dict()  # includes every name of a tied tensor
    saved_ids = {}  # the file holds one name per shared tensor; the others are filled from it
    for name, t in own.items():
        saved_ids.setdefault(_share_key(name, t), []).append(name)
    problems = []
    for names in saved_ids.values():
        present = [n for n in names if n in tensors]
        if not present:
            problems.append(f"missing {names[0]}")
            continue
        for n in names:
            tensors.setdefault(n, tensors[present[0]])
    unexpected = sorted(set(tensors) - set(own))
    problems += [f"unexpected {n}" for n in unexpected]
    problems += [
        f"{n}: shape {tuple(tensors[n].shape)} in the file, {tuple(t.shape)} in the model"
        for n, t in own.items() if n in tensors and tensors[n].shape != t.shape
    ]
    if problems:
        more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
        shown = "; ".join(problems[:5]) + more
        raise CheckpointError(f"{file}: the weights do not fit the model built from its config: {shown}")
    with torch.no_grad():
        for n, t in own.items():
            t.copy_(tensors[n])


def load_checkpoint(path, *, build_model: Callable[[dict], nn.Module] | None = None) -> LoadedCheckpoint:
    """Load a checkpoint directory written by :func:`save_checkpoint`.

    ``build_model(config_dict)`` builds the architecture (default:
    :func:`xlstm_edu.models.build_model`). Weights come back bit-identical, on the CPU. Raises
    :class:`CheckpointError` for a missing directory or file, a corrupt file, or weights that do not
    fit the config.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    if not path.is_dir():
        raise CheckpointError(f"{path}: not a directory (a checkpoint is a directory)")
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise CheckpointError(f"{path}: not a complete checkpoint, missing {', '.join(missing)}")

    saved = _read_json(path / TRAIN_STATE)
    _check_stamp(path / TRAIN_STATE, saved, None)
    step = saved.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(f"{path / TRAIN_STATE}: step must be an integer >= 0, got {step!r}")

    train_dict = _read_json(path / TRAIN_CONFIG)
    try:
        train_config = TrainConfig.from_dict(train_dict)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path / TRAIN_CONFIG}: not a valid TrainConfig ({e})") from None

    model_config = _read_json(path / MODEL_CONFIG)
    if not isinstance(model_config.get("model"), str):
        raise CheckpointError(f"{path / MODEL_CONFIG}: no 'model' field naming the architecture")
    try:
        model = (build_model or _default_build)(model_config)
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(
            f"{path / MODEL_CONFIG}: cannot build the model ({type(e).__name__}: {e})"
        ) from None
    load_weights(model, path / WEIGHTS, expected_model=model_config["model"], step=step)

    optimizer = _read_torch(path / OPTIMIZER)
    _check_stamp(path / OPTIMIZER, optimizer, step)
    optimizer_state = optimizer.get("optimizer")
    n_params = sum(1 for p in model.parameters() if p.requires_grad)
    try:
        n_saved = sum(len(g["params"]) for g in optimizer_state["param_groups"])
    except (TypeError, KeyError) as e:
        raise CheckpointError(f"{path / OPTIMIZER}: not an optimizer state_dict ({e!r})") from None
    if n_saved != n_params:
        raise CheckpointError(
            f"{path / OPTIMIZER}: optimizer state for {n_saved} parameters, the model has {n_params}"
        )
    rng = _read_torch(path / RNG)
    _check_stamp(path / RNG, rng, step)

    tokenizer = None
    if (path / TOKENIZER).is_file():
        from ..data import tokenizer_from_file  # lazy, as above
        try:
            tokenizer = tokenizer_from_file(path / TOKENIZER)
        except (ValueError, KeyError, TypeError, OSError) as e:
            raise CheckpointError(f"{path / TOKENIZER}: cannot load the tokenizer ({e})") from None

    if "rng" not in rng:
        raise CheckpointError(f"{path / RNG}: no RNG states in it")
    try:
        state = TrainState.from_dict(saved, optimizer_state, rng["rng"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path / TRAIN_STATE}: not a valid train state ({e})") from None
    extra = saved.get("extra", {})
    if not isinstance(extra, dict):
        raise CheckpointError(f"{path / TRAIN_STATE}: 'extra' must be an object, "
                              f"got {type(extra).__name__}")
    model.train()
    return LoadedCheckpoint(model, train_config, state, tokenizer, extra)
