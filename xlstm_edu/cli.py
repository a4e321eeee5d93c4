"""Command line: train a language model on Shakespeare, resume it, sample from it, and reproduce
every stored result of the book.

::

    python -m xlstm_edu train --model xlstm --out runs/x          # a few minutes on 2 CPU cores
    python -m xlstm_edu resume runs/x --steps 4000                # continue (exactly) to step 4000
    python -m xlstm_edu generate runs/x --prompt "ROMEO:" --max-new-tokens 200 --temperature 0.8 \\
        --top-k 40 --seed 0
    python -m xlstm_edu experiment language-model --quick --out lm.json
    torchrun --nproc_per_node=2 -m xlstm_edu train --out runs/x   # one model on 2 processes (DDP)

A run directory is a checkpoint (:mod:`xlstm_edu.training.checkpoint`): weights, configs, optimizer
and RNG states, the tokenizer, and the data and evaluation settings, so ``resume`` and ``generate``
need nothing else. Under ``torchrun`` (its ``RANK``, ``WORLD_SIZE``, ... variables set), ``train`` and
``resume`` train one model on all its processes with ``DistributedDataParallel``
(:mod:`xlstm_edu.training.distributed`): ``--batch-size`` is the global batch, split over the ranks;
rank 0 logs and writes the checkpoint. Every option is checked before any work is done; a bad option
or checkpoint ends with exit code 2 and a one-line message naming it, and an existing checkpoint is
never harmed.

The default sizes live in :data:`MODEL_DEFAULTS` (model) and :class:`~xlstm_edu.training.TrainConfig`
(training); ``--set key=value`` changes any field of the model's config.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import math
import re
import sys
from pathlib import Path

import torch

from .training import (
    Checkpoint,
    CheckpointError,
    Evaluate,
    StopAt,
    TrainConfig,
    check_checkpoint_dir,
    distributed_from_env,
    evaluate,
    load_checkpoint,
    resolve_device,
    setup_distributed,
    train,
)
from .training.checkpoint import TRAIN_STATE
from .training.distributed import BACKENDS, DistributedEnv, choose_backend, local_batch_size

PROG = "python -m xlstm_edu"

#: Model sizes of ``train`` (the fields of each model's config; vocab_size and context_length are
#: set from the tokenizer and the training context): 0.23 M (xlstm), 0.28 M (lstm) and 0.42 M
#: (transformer) parameters with the character tokenizer, so that the default run takes a few minutes
#: on 2 CPU cores.
MODEL_DEFAULTS = {
    "xlstm": {"embedding_dim": 128, "num_blocks": 2, "slstm_at": [1], "mlstm_num_heads": 4,
              "slstm_num_heads": 4, "dropout": 0.1},
    "lstm": {"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "dropout": 0.1},
    "transformer": {"embedding_dim": 128, "num_heads": 4, "num_layers": 2, "dropout": 0.1},
}

#: Data settings of ``train``.
DATA_DEFAULTS = {"tokenizer": "char", "bpe_vocab_size": 512, "edition": "modern", "val_fraction": 0.1}

#: Evaluation and checkpoint settings of ``train`` (stored with the run, reused by ``resume``).
RUN_DEFAULTS = {"eval_every": 100, "eval_batches": 16, "checkpoint_every": 250}


class CLIError(Exception):
    """A user error: printed as one line, exit code 2."""


# --- options -----------------------------------------------------------------------------------------

#: Help for the TrainConfig options (the defaults come from TrainConfig itself).
TRAIN_HELP = {
    "steps": "total optimizer updates of the run; the cosine schedule ends here",
    "batch_size": "sequences per update",
    "context_length": "tokens per training sequence",
    "lr": "peak learning rate (after warmup)",
    "min_lr": "final learning rate of the cosine decay",
    "warmup_steps": "updates of linear learning-rate warmup",
    "weight_decay": "AdamW weight decay (on weight matrices only)",
    "beta1": "AdamW beta1",
    "beta2": "AdamW beta2",
    "grad_clip": "clip the global gradient norm to this (0: no clipping)",
    "seed": "seed of the model initialisation, batch sampling and dropout",
    "device": "'auto' (CUDA if available), 'cpu', 'cuda', 'cuda:1', 'mps'",
}

RUN_HELP = {
    "eval_every": "validate every this many updates, and after the last one",
    "eval_batches": "validation batches per evaluation (batch-size windows each, spread evenly over "
                    "the whole validation text)",
    "checkpoint_every": "save a checkpoint every this many updates, and at the end (0: end only)",
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2), like the command's own errors."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except empty ones and where the help already states the default."""

    def _get_help_string(self, action):
        empty = action.default is None or action.default is False or action.default == [] \
            or action.default is argparse.SUPPRESS
        if empty or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _add_until(p: argparse.ArgumentParser) -> None:
    p.add_argument("--until", type=int, default=None, metavar="N",
                   help="stop (and save) after update N, keeping the schedule of --steps; 'resume' "
                        "continues exactly as if the run had not stopped")


def _add_backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="process group backend under torchrun: 'auto' (nccl on CUDA, gloo on the "
                        "CPU), 'gloo' or 'nccl' (needs CUDA)")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for torch (default: torch's choice; 1 is often fastest for small "
                        "models on busy machines)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Train, resume and sample xLSTM (and baseline) language models on Shakespeare, "
                    "and reproduce the book's stored results. "
                    "Run '%(prog)s COMMAND --help' for the options of a command.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)
    fmt = _Formatter

    t = commands.add_parser(
        "train", formatter_class=fmt, help="train a new model; the run directory is its checkpoint",
        description="Train a new language model and save it (and its data settings) to --out.",
        epilog="model fields and their defaults here (change any with --set): " + "; ".join(
            f"{m}: " + ", ".join(f"{k}={v}" for k, v in d.items()) for m, d in MODEL_DEFAULTS.items()))
    t.add_argument("--model", choices=sorted(MODEL_DEFAULTS), default="xlstm", help="architecture")
    t.add_argument("--out", required=True, metavar="DIR", help="run directory (the checkpoint)")
    t.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in --out")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="model_args",
                   help="set a field of the model config; VALUE is read as JSON when it parses "
                        "(--set num_blocks=4 --set slstm_at=[1,3] --set mlstm_backend=parallel)")
    t.add_argument("--ratio", metavar="A:B", default=None,
                   help="xlstm only: the paper's xLSTM[A:B] mLSTM:sLSTM block ratio (sets slstm_at)")
    data = t.add_argument_group("data")
    data.add_argument("--tokenizer", choices=("char", "bpe"), default=DATA_DEFAULTS["tokenizer"],
                      help="characters, or byte-level BPE trained on the training text")
    data.add_argument("--bpe-vocab-size", type=int, default=DATA_DEFAULTS["bpe_vocab_size"], metavar="V",
                      help="BPE vocabulary size (with --tokenizer bpe; at least 257)")
    data.add_argument("--edition", choices=("modern", "folio"), default=DATA_DEFAULTS["edition"],
                      help="Shakespeare spelling: modern, or the First Folio's")
    data.add_argument("--train-plays", default=None, metavar="TITLES",
                      help="comma-separated training plays (default: all but the validation plays)")
    data.add_argument("--val-plays", default=None, metavar="TITLES",
                      help="comma-separated validation plays (default: Macbeth, Twelfth Night, "
                           "King Richard II, The Tempest)")
    data.add_argument("--text", default=None, metavar="FILE",
                      help="train on this UTF-8 text file instead of Shakespeare")
    data.add_argument("--val-fraction", type=float, default=DATA_DEFAULTS["val_fraction"], metavar="F",
                      help="with --text: the last fraction F of the file is the validation text")
    opts = t.add_argument_group("training")
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        opts.add_argument("--" + f.name.replace("_", "-"), type=type(getattr(defaults, f.name)),
                          default=getattr(defaults, f.name), help=TRAIN_HELP[f.name])
    for name, default in RUN_DEFAULTS.items():
        opts.add_argument("--" + name.replace("_", "-"), type=int, default=default, help=RUN_HELP[name])
    _add_until(opts)
    _add_backend(opts)
    _add_common(t)

    r = commands.add_parser(
        "resume", formatter_class=fmt, help="continue training a run from its checkpoint",
        description="Continue a run from its checkpoint exactly where it stopped (same batches, same "
                    "dropout masks, same learning rates as an uninterrupted run).")
    r.add_argument("run", metavar="DIR", help="run directory written by 'train'")
    r.add_argument("--steps", type=int, default=None, metavar="N",
                   help="train until update N in total (default: the run's --steps); a larger N "
                        "stretches the cosine schedule from here on")
    r.add_argument("--device", default=None, help="override the run's device")
    _add_until(r)
    _add_backend(r)
    _add_common(r)

    g = commands.add_parser("generate", formatter_class=fmt, help="sample text from a trained run",
                            description="Continue a prompt with text sampled from a trained model.")
    g.add_argument("run", metavar="DIR", help="run directory written by 'train'")
    g.add_argument("--prompt", default="ROMEO:", help="text to continue")
    g.add_argument("--max-new-tokens", type=int, default=200, metavar="N", help="tokens to sample")
    g.add_argument("--temperature", type=float, default=0.8,
                   help="divide the logits by this (lower: more conservative)")
    g.add_argument("--top-k", type=int, default=40, metavar="K",
                   help="sample among the K most likely tokens (0: all)")
    g.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    g.add_argument("--device", default="cpu", help="'cpu', 'cuda', 'auto', ...")
    _add_common(g)

    from .experiments.registry import EXPERIMENTS  # the names only; the experiments load on use

    e = commands.add_parser(
        "experiment", formatter_class=fmt, help="reproduce a stored result of the book",
        description="Run one of the book's experiments and write its result as JSON (settings and "
                    "flat result rows). The stored results the chapters load were made by this "
                    "command; each chapter shows the command line that made its file.",
        epilog="experiments: " + "; ".join(f"{n}: {d.summary}" for n, d in EXPERIMENTS.items()))
    e.add_argument("name", choices=sorted(EXPERIMENTS), metavar="NAME",
                   help="the experiment: " + ", ".join(sorted(EXPERIMENTS)))
    e.add_argument("--quick", action="store_true",
                   help="the headline at reduced size (at most about 10 minutes on 2 CPU cores)")
    e.add_argument("--out", default=None, metavar="FILE.json",
                   help="write the result here (replaced atomically; default: print it)")
    e.add_argument("--seed", type=int, default=0, help="seed of everything random in the experiment")
    e.add_argument("--device", default="cpu", help="'cpu', 'cuda', 'auto', ...")
    e.add_argument("--jobs", type=int, default=1,
                   help="independent training runs at once, one process each (experiments made of "
                        "many runs: " + ", ".join(n for n, d in EXPERIMENTS.items() if d.parallel)
                        + "); the results do not depend on it")
    e.add_argument("--no-progress", action="store_true", help="no progress messages")
    return parser


# --- checks of the options ---------------------------------------------------------------------------

def _check_int_option(option: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise CLIError(f"{option} must be an integer >= {minimum}, got {value}")


def _check_device(device: str) -> None:
    try:
        resolve_device(device)
    except ValueError as e:
        raise CLIError(f"--device: {e}") from None


def _set_threads(args) -> None:
    """--threads, where the command has it (an experiment sets its own: it is part of its recipe)."""
    if getattr(args, "threads", None) is not None:
        _check_int_option("--threads", args.threads, 1)
        torch.set_num_threads(args.threads)


def _until(args, cfg: TrainConfig, step: int) -> int | None:
    if args.until is not None and not step < args.until <= cfg.steps:
        raise CLIError(f"--until must be in ({step}, --steps = {cfg.steps}], got {args.until}")
    return args.until


def _distributed_env(args, cfg: TrainConfig) -> DistributedEnv | None:
    """The torchrun environment (``None``: one process), with --backend, the device and the global
    batch checked against it before any work is done."""
    try:
        env = distributed_from_env()
        choose_backend(args.backend, cfg.device)
    except ValueError as e:
        raise CLIError(f"--backend {args.backend}: {e}") from None
    if env is not None:
        try:
            local_batch_size(cfg.batch_size, env.world_size)
        except ValueError as e:
            raise CLIError(f"--batch-size: {e} (torchrun --nproc_per_node x nodes)") from None
    return env


def _train(args, model, tokens, cfg: TrainConfig, env: DistributedEnv | None, **kw) -> None:
    """``train`` in this process, or on every process of a torchrun launch (joined here, left at the
    end)."""
    if env is None:
        train(model, tokens, cfg, progress=not args.no_progress, **kw)
        return
    try:
        dist = setup_distributed(env, cfg.device, args.backend)
    except ValueError as e:
        raise CLIError(f"distributed setup: {e}") from None
    try:
        if dist.is_main:
            print(f"distributed: {dist.describe()}, {cfg.batch_size // dist.world_size} of the "
                  f"{cfg.batch_size} sequences of each batch per process, on {dist.device}")
        train(model, tokens, cfg, progress=not args.no_progress, distributed=dist, **kw)
    finally:
        dist.teardown()


def _as_option(error: ValueError) -> str:
    """'TrainConfig.batch_size must be ...' -> '--batch-size must be ...'."""
    return re.sub(r"TrainConfig\.(\w+)", lambda m: "--" + m.group(1).replace("_", "-"), str(error))


def _run_settings(args) -> dict:
    for name, minimum in (("eval_every", 1), ("eval_batches", 1), ("checkpoint_every", 0)):
        _check_int_option("--" + name.replace("_", "-"), getattr(args, name), minimum)
    return {name: getattr(args, name) for name in RUN_DEFAULTS}


# --- data --------------------------------------------------------------------------------------------

def _titles(arg: str | None) -> list[str] | None:
    return None if arg is None else [t.strip() for t in arg.split(",") if t.strip()]


def _load_texts(data: dict) -> tuple[str, str]:
    """The training and validation texts described by the data settings (see :func:`_data_settings`)."""
    if data["source"] == "text":
        path = Path(data["path"])
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise CLIError(f"cannot read --text file {path}: {e.strerror}") from None
        if "sha256" in data and hashlib.sha256(raw).hexdigest() != data["sha256"]:
            raise CLIError(f"{path} has changed since the run started (its sha256 differs)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CLIError(f"--text: {path} is not UTF-8 text: {e}") from None
        cut = int(len(text) * (1 - data["val_fraction"]))
        return text[:cut], text[cut:]
    from .data import build_corpus
    try:
        return build_corpus(data["train_plays"], data["val_plays"], edition=data["edition"])
    except (ImportError, ValueError) as e:  # the texts are a separate package; unknown titles
        raise CLIError(str(e)) from None


def _data_settings(args) -> dict:
    if args.tokenizer == "bpe":
        _check_int_option("--bpe-vocab-size", args.bpe_vocab_size, 257)
    if args.text is not None:
        if not 0 < args.val_fraction < 1:
            raise CLIError(f"--val-fraction must be in (0, 1), got {args.val_fraction}")
        try:
            sha = hashlib.sha256(Path(args.text).read_bytes()).hexdigest()
        except OSError as e:
            raise CLIError(f"cannot read --text file {args.text}: {e.strerror}") from None
        return {"source": "text", "path": str(Path(args.text).resolve()), "sha256": sha,
                "val_fraction": args.val_fraction, "tokenizer": args.tokenizer,
                "bpe_vocab_size": args.bpe_vocab_size}
    for option in ("train_plays", "val_plays"):
        if getattr(args, option) is not None and not _titles(getattr(args, option)):
            raise CLIError(f"--{option.replace('_', '-')} names no play")
    return {"source": "shakespeare", "edition": args.edition, "train_plays": _titles(args.train_plays),
            "val_plays": _titles(args.val_plays), "tokenizer": args.tokenizer,
            "bpe_vocab_size": args.bpe_vocab_size}


def _fit_tokenizer(data: dict, train_text: str):
    from .data import BPETokenizer, CharTokenizer
    try:
        if data["tokenizer"] == "char":  # characters unseen in training (validation, prompts) -> id 0
            return CharTokenizer.fit(train_text, unknown="replace")
        return BPETokenizer.train(train_text, vocab_size=data["bpe_vocab_size"])
    except ValueError as e:
        raise CLIError(f"tokenizer: {e}") from None


def _tokens(tokenizer, train_text: str, val_text: str, cfg: TrainConfig):
    """Token arrays and the validation text's characters per token (for bits per character)."""
    train_tokens, val_tokens = tokenizer.encode_array(train_text), tokenizer.encode_array(val_text)
    for name, tokens in (("training", train_tokens), ("validation", val_tokens)):
        if len(tokens) < cfg.context_length + 1:
            raise CLIError(f"the {name} text has {len(tokens)} tokens, fewer than --context-length + 1 "
                           f"= {cfg.context_length + 1}")
    return train_tokens, val_tokens, len(val_text) / max(len(val_tokens), 1)


# --- the model ---------------------------------------------------------------------------------------

def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _model_config(args, vocab_size: int, context_length: int) -> dict:
    """MODEL_DEFAULTS, the training context length (for models that have one), then --set and --ratio;
    vocab_size from the tokenizer. Called once before loading the data, to fail early."""
    from .models import MODELS
    module, config_name, _ = MODELS[args.model]
    config_cls = getattr(importlib.import_module(module), config_name)
    names = {f.name for f in dataclasses.fields(config_cls)} - {"vocab_size"}
    config = {"model": args.model, **MODEL_DEFAULTS[args.model]}
    if "context_length" in names:
        config["context_length"] = context_length
    for item in args.model_args:
        key, sep, value = item.partition("=")
        if not sep or key not in names:
            raise CLIError(f"--set {item!r}: expected KEY=VALUE with KEY a field of {config_name} "
                           f"({', '.join(sorted(names))}; vocab_size comes from the tokenizer)")
        config[key] = _parse_value(value)
    if args.ratio is not None:
        if args.model != "xlstm":
            raise CLIError("--ratio applies to --model xlstm only")
        from .blocks.stack import ratio_to_slstm_at
        try:
            config["slstm_at"] = list(ratio_to_slstm_at(args.ratio, config["num_blocks"]))
        except (ValueError, TypeError) as e:
            raise CLIError(f"--ratio: {e}") from None
    config["vocab_size"] = vocab_size
    return config


def _build(config: dict, context_length: int):
    """The model, or a CLIError naming what is wrong (also a context the model cannot read)."""
    from .models import build_model
    try:
        model = build_model(config)
    except (TypeError, ValueError) as e:
        raise CLIError(f"model config (--set): {e}") from None
    limit = model.max_context_length
    if limit is not None and limit < context_length:
        raise CLIError(f"--context-length {context_length} is longer than the model reads "
                       f"(--set context_length={limit})")
    return model


def _evaluate_hook(val_tokens, cfg: TrainConfig, run: dict, chars_per_token: float,
                   log: bool = True) -> Evaluate:
    """Validation records (every rank makes them, so that all hold the same state); printed when
    ``log`` (rank 0)."""
    from .data import spread_windows
    windows = spread_windows(val_tokens, run["eval_batches"] * cfg.batch_size, cfg.context_length)
    return Evaluate(lambda model: evaluate(model, *windows, batch_size=cfg.batch_size),
                    every=run["eval_every"], chars_per_token=chars_per_token,
                    on_record=_print_record if log else None)


def _print_record(record: dict) -> None:
    from ._progress import tqdm
    bits = record.get("val_bits_per_char", record["val_bits_per_token"])
    unit = "bits/char" if "val_bits_per_char" in record else "bits/token"
    speed = f"{record['tokens_per_s']:,.0f} tok/s" if record["tokens_per_s"] else "-"
    tqdm.write(f"step {record['step']:>6}: train {record['train_loss']:.4f}  "
               f"val {record['val_loss']:.4f} ({bits:.3f} {unit})  lr {record['lr']:.2e}  "
               f"{speed}  {record['elapsed_s']:.0f} s")


# --- commands ----------------------------------------------------------------------------------------

def cmd_train(args) -> int:
    out = Path(args.out)
    try:
        check_checkpoint_dir(out)
    except ValueError as e:
        raise CLIError(f"--out: {e}") from None
    if (out / TRAIN_STATE).exists() and not args.overwrite:
        raise CLIError(f"--out: {out} already holds a checkpoint: continue it with 'resume {out}', "
                       "or pass --overwrite to start again")
    try:
        cfg = TrainConfig(**{name: getattr(args, name) for name in TRAIN_HELP})
    except ValueError as e:
        raise CLIError(_as_option(e)) from None
    until = _until(args, cfg, 0)
    _check_device(cfg.device)
    env = _distributed_env(args, cfg)
    main_rank = env is None or env.rank == 0  # the one that logs (and writes the checkpoint)
    run = _run_settings(args)
    _build(_model_config(args, 2, cfg.context_length), cfg.context_length)  # before the slow part
    data = _data_settings(args)
    train_text, val_text = _load_texts(data)
    tokenizer = _fit_tokenizer(data, train_text)
    train_tokens, val_tokens, chars_per_token = _tokens(tokenizer, train_text, val_text, cfg)
    torch.manual_seed(cfg.seed)  # the model's initialisation
    model = _build(_model_config(args, tokenizer.vocab_size, cfg.context_length), cfg.context_length)
    if main_rank:
        print(f"{args.model}: {model.num_parameters():,} parameters; {len(train_tokens):,} training "
              f"and {len(val_tokens):,} validation tokens ({tokenizer.vocab_size} ids); {cfg.steps} "
              f"updates of {cfg.batch_size} x {cfg.context_length} tokens -> {out}")
    hooks = [_evaluate_hook(val_tokens, cfg, run, chars_per_token, log=main_rank),
             Checkpoint(out, every=run["checkpoint_every"], tokenizer=tokenizer,
                        extra={"data": data, "run": run})]
    if until is not None:
        hooks.append(StopAt(until))
    _train(args, model, train_tokens, cfg, env, hooks=hooks)
    if main_rank:
        print(f"saved {out}")
    return 0


def cmd_resume(args) -> int:
    ck = load_checkpoint(args.run)
    if ck.tokenizer is None or not {"data", "run"} <= set(ck.extra):
        raise CheckpointError(f"{args.run}: no tokenizer, data or run settings (not written by 'train')")
    changes = {}
    if args.steps is not None:
        changes["steps"] = args.steps
    if args.device is not None:
        changes["device"] = args.device
    try:
        cfg = dataclasses.replace(ck.train_config, **changes)
    except ValueError as e:
        raise CLIError(_as_option(e)) from None
    _check_device(cfg.device)
    env = _distributed_env(args, cfg)
    main_rank = env is None or env.rank == 0
    if cfg.steps <= ck.state.step:
        raise CLIError(f"--steps: {args.run} is already at step {ck.state.step}; pass --steps N with "
                       f"N > {ck.state.step} to train further")
    until = _until(args, cfg, ck.state.step)
    train_text, val_text = _load_texts(ck.extra["data"])
    train_tokens, val_tokens, chars_per_token = _tokens(ck.tokenizer, train_text, val_text, cfg)
    if main_rank:
        print(f"resuming {args.run} at step {ck.state.step} of {cfg.steps}")
    hooks = [_evaluate_hook(val_tokens, cfg, ck.extra["run"], chars_per_token, log=main_rank),
             Checkpoint(args.run, every=ck.extra["run"]["checkpoint_every"], tokenizer=ck.tokenizer,
                        extra=ck.extra)]
    if until is not None:
        hooks.append(StopAt(until))
    _train(args, ck.model, train_tokens, cfg, env, state=ck.state, hooks=hooks)
    if main_rank:
        print(f"saved {args.run}")
    return 0


def cmd_generate(args) -> int:
    if not args.prompt:
        raise CLIError("--prompt must not be empty")
    _check_int_option("--max-new-tokens", args.max_new_tokens, 0)
    _check_int_option("--top-k", args.top_k, 0)
    _check_int_option("--seed", args.seed, 0)
    if not (math.isfinite(args.temperature) and args.temperature > 0):
        raise CLIError(f"--temperature must be a positive number, got {args.temperature}")
    _check_device(args.device)
    ck = load_checkpoint(args.run)
    if ck.tokenizer is None:
        raise CheckpointError(f"{args.run}: no tokenizer.json, cannot encode the prompt")
    device = resolve_device(args.device)
    model = ck.model.to(device)
    try:
        prompt = ck.tokenizer.encode(args.prompt)
        idx = torch.tensor([prompt], dtype=torch.long, device=device)  # (1, S0)
        generator = torch.Generator(device=device).manual_seed(args.seed)
        out = model.generate(idx, args.max_new_tokens, temperature=args.temperature,
                             top_k=args.top_k or None, generator=generator,
                             progress=not args.no_progress)  # (1, S0 + max_new_tokens)
    except ValueError as e:
        raise CLIError(str(e)) from None
    print(args.prompt + ck.tokenizer.decode(out[0, idx.shape[1]:]))
    return 0


def cmd_experiment(args) -> int:
    from .experiments.registry import EXPERIMENTS, run_experiment
    from .results import check_result_path

    _check_int_option("--seed", args.seed, 0)
    _check_int_option("--jobs", args.jobs, 1)
    if args.jobs > 1 and not EXPERIMENTS[args.name].parallel:
        raise CLIError(f"--jobs: experiment {args.name!r} is one run; it takes no --jobs")
    _check_device(args.device)
    if args.out is not None:
        try:
            check_result_path(args.out)
        except ValueError as e:
            raise CLIError(f"--out: {e}") from None
    result = run_experiment(args.name, quick=args.quick, seed=args.seed, device=args.device,
                            out=args.out, command=" ".join([PROG, *args.argv]), jobs=args.jobs,
                            progress=not args.no_progress)
    if args.out is None:
        print(json.dumps(result, indent=1))
    else:
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


COMMANDS = {"train": cmd_train, "resume": cmd_resume, "generate": cmd_generate,
            "experiment": cmd_experiment}


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (2 for a bad option or checkpoint)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    try:
        _set_threads(args)
        return COMMANDS[args.command](args)
    except (CLIError, CheckpointError) as e:
        print(f"{PROG} {args.command}: error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:  # training diverged
        print(f"{PROG} {args.command}: error: {e} (the last checkpoint is in the run directory)",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted (the last checkpoint is in the run directory)",
              file=sys.stderr)
        return 130
