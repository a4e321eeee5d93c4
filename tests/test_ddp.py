"""Data-parallel training (``torchrun``, DDP) on 2 gloo ranks of this machine.

- the API: 2 ranks spawned here train one xLSTM in float64 through ``train(..., distributed=...)``;
  both end with bit-identical weights, equal to a single-process run on the same global batch (to
  1e-10; ignored targets spread unevenly over the ranks included), and only rank 0 saves;
- the command line: ``torchrun --nproc_per_node=2 -m xlstm_edu train`` (stopped halfway) then
  ``resume``, against one process: the same weights and losses to float32 rounding, one checkpoint,
  one log;
- clear errors before any work: a global batch the world size does not divide, NCCL without CUDA,
  a half-set torchrun environment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from xlstm_edu.cli import main
from xlstm_edu.data.loader import IGNORE_INDEX, sample_windows
from xlstm_edu.models import build_model
from xlstm_edu.training import (
    Checkpoint,
    Distributed,
    Evaluate,
    TrainConfig,
    distributed_from_env,
    evaluate,
    setup_distributed,
    train,
)
from xlstm_edu.training import hooks as hooks_module
from xlstm_edu.training.distributed import choose_backend, local_batch_size

CONFIG = {"model": "xlstm", "vocab_size": 20, "embedding_dim": 32, "num_blocks": 2, "slstm_at": [1],
          "mlstm_num_heads": 2, "slstm_num_heads": 2, "round_proj_up_to_multiple_of": 16,
          "chunk_size": 8, "dropout": 0.0, "context_length": 16}
CFG = TrainConfig(steps=4, batch_size=4, context_length=16, warmup_steps=1, device="cpu")
WORLD = 2


def _tokens():
    return torch.randint(0, CONFIG["vocab_size"], (2000,), generator=torch.Generator().manual_seed(1))


TOKENS = _tokens()


def _sample(generator):
    """The global batch, with ignored targets in rank 0's rows only (uneven target counts)."""
    x, y = sample_windows(TOKENS, CFG.batch_size, CFG.context_length, generator)  # (B, S) each
    y = y.clone()
    y[0, :9], y[1, :4] = IGNORE_INDEX, IGNORE_INDEX
    return x, y


def _model():
    torch.manual_seed(0)
    return build_model(CONFIG).double()


def _hooks(val, path):
    return [Evaluate(lambda m: evaluate(m, *val), every=2), Checkpoint(path, every=2)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    """One rank: train, then store its weights, its history and how often it saved."""
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    saves = []
    real_save = hooks_module.save_checkpoint
    hooks_module.save_checkpoint = lambda *a, **k: saves.append(real_save(*a, **k))
    d = setup_distributed(distributed_from_env(), "cpu")
    try:
        model = _model()
        val = _sample(torch.Generator().manual_seed(7))
        state = train(model, _sample, CFG, hooks=_hooks(val, f"{out}/ckpt"), progress=False,
                      distributed=d)
        torch.save({"weights": model.state_dict(), "history": state.history, "saves": len(saves)},
                   f"{out}/rank{rank}.pt")
    finally:
        d.teardown()


def test_two_ranks_equal_one_process_float64(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = _model()
        val = _sample(torch.Generator().manual_seed(7))
        state = train(model, _sample, CFG, hooks=_hooks(val, tmp_path / "single"), progress=False)
    finally:
        torch.set_num_threads(threads)
    single = model.state_dict()
    w0, w1 = ranks[0]["weights"], ranks[1]["weights"]
    assert max((w0[k] - w1[k]).abs().max().item() for k in w0) == 0.0  # the ranks agree exactly
    diff = max((w0[k] - single[k]).abs().max().item() for k in single)
    moved = max((single[k] - _model().state_dict()[k]).abs().max().item() for k in single)
    assert diff < 1e-10 and moved > 1e-3  # the same run as one process, which did train
    for a, b in zip(ranks[0]["history"], state.history, strict=True):
        assert a["step"] == b["step"]
        for key in ("train_loss", "val_loss", "grad_norm", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-6)  # the loss itself is float32
    timings = ("tokens_per_s", "train_s", "elapsed_s")
    assert [{k: v for k, v in r.items() if k not in timings} for r in ranks[0]["history"]] == \
        [{k: v for k, v in r.items() if k not in timings} for r in ranks[1]["history"]]
    assert (ranks[0]["saves"], ranks[1]["saves"]) == (2, 0)  # only rank 0 writes (steps 2 and 4)
    saved = load_file(tmp_path / "ckpt" / "model.safetensors")
    assert all(torch.equal(saved[k], w0[k]) for k in saved)


# --- the command line under torchrun -------------------------------------------------------------

TINY_LSTM = ["--model", "lstm", "--set", "embedding_dim=32", "--set", "hidden_size=32",
             "--set", "num_layers=1", "--set", "dropout=0"]
FAST = ["--batch-size", "4", "--context-length", "16", "--warmup-steps", "2", "--eval-every", "3",
        "--eval-batches", "2", "--checkpoint-every", "0", "--no-progress", "--threads", "1",
        "--device", "cpu"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    words = "thou art my lord and the king shall not sleep tonight for love is blind".split()
    g = torch.Generator().manual_seed(0)
    picks = torch.randint(0, len(words), (3000,), generator=g).tolist()
    path = tmp_path_factory.mktemp("text") / "verse.txt"
    path.write_text(" ".join(words[i] for i in picks), encoding="utf-8")
    return path


def _torchrun(*argv, nproc=WORLD):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "xlstm_edu", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _losses(run):
    state = json.loads((run / "train_state.json").read_text())
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in state["history"]], state["step"]


def test_torchrun_train_then_resume_equals_one_process(tmp_path, text_file):
    run = tmp_path / "ddp"
    log = _torchrun("train", "--out", str(run), "--text", str(text_file), *TINY_LSTM, *FAST,
                    "--steps", "6", "--until", "3")
    assert log.count("distributed: 2 processes (gloo, world size 2)") == 1  # rank 0 logs, once
    assert log.count("lstm: ") == 1 and log.count(f"saved {run}") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]
    assert sorted(p.name for p in run.iterdir()) == [  # one checkpoint, no temporary files
        "model.safetensors", "model_config.json", "optimizer.pt", "rng.pt", "tokenizer.json",
        "train_config.json", "train_state.json"]
    assert _losses(run)[1] == 3
    log = _torchrun("resume", str(run), "--no-progress", "--threads", "1")
    assert log.count("resuming") == 1 and log.count("distributed: 2 processes") == 1
    assert _losses(run)[1] == 6

    single = tmp_path / "single"
    assert main(["train", "--out", str(single), "--text", str(text_file), *TINY_LSTM, *FAST,
                 "--steps", "6"]) == 0
    a, b = load_file(run / "model.safetensors"), load_file(single / "model.safetensors")
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    assert diff < 1e-5, diff  # float32 rounding (about 1e-7 here)
    (la, _), (lb, _) = _losses(run), _losses(single)
    assert [r[0] for r in la] == [r[0] for r in lb] == [3, 6]
    for ra, rb in zip(la, lb):
        assert ra[1:] == pytest.approx(rb[1:], rel=1e-5)


# --- errors --------------------------------------------------------------------------------------

TORCHRUN_ENV = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": "29500"}


def test_indivisible_global_batch_is_an_error_before_any_work(tmp_path, text_file, monkeypatch,
                                                              capsys):
    for name, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(name, value)
    argv = ["train", "--out", str(tmp_path / "r"), "--text", str(text_file), *TINY_LSTM, *FAST,
            "--steps", "2", "--batch-size", "3"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--batch-size: the global batch size 3 is not divisible by the world size 2" in err
    assert not (tmp_path / "r").exists() and not torch.distributed.is_initialized()
    with pytest.raises(ValueError, match="not divisible by the world size 2"):
        local_batch_size(3, 2)
    fake = Distributed(rank=0, world_size=2, local_rank=0, backend="gloo",
                       device=torch.device("cpu"))  # no process group: the check comes first
    with pytest.raises(ValueError, match="global batch size 5 is not divisible"):
        train(_model(), _tokens(), TrainConfig(steps=1, batch_size=5, context_length=16,
                                               device="cpu"), progress=False, distributed=fake)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_nccl_without_cuda_is_an_error(tmp_path, text_file, capsys):
    with pytest.raises(ValueError, match="backend nccl needs CUDA devices: CUDA is not available"):
        choose_backend("nccl", "cpu")
    assert main(["train", "--out", str(tmp_path / "r"), "--text", str(text_file), *TINY_LSTM, *FAST,
                 "--backend", "nccl"]) == 2
    assert "--backend nccl: backend nccl needs CUDA devices" in capsys.readouterr().err


def test_backend_choice_and_environment():
    assert choose_backend("auto", "cpu") == ("gloo", torch.device("cpu"))
    assert choose_backend("gloo", "cpu")[0] == "gloo"
    with pytest.raises(ValueError, match="backend must be one of"):
        choose_backend("mpi", "cpu")
    assert distributed_from_env({}) is None
    env = distributed_from_env({**TORCHRUN_ENV, "RANK": "1", "LOCAL_RANK": "1"})
    assert (env.rank, env.world_size, env.local_rank) == (1, 2, 1)
    with pytest.raises(ValueError, match="incomplete: RANK set but not WORLD_SIZE"):
        distributed_from_env({"RANK": "0"})
    with pytest.raises(ValueError, match="inconsistent"):
        distributed_from_env({**TORCHRUN_ENV, "RANK": "2"})
    with pytest.raises(ValueError, match="must be integers"):
        distributed_from_env({**TORCHRUN_ENV, "RANK": "x"})


@pytest.mark.cuda
def test_torchrun_on_cuda_uses_nccl(tmp_path, text_file):
    """One rank per GPU (at most 2) with NCCL; the run ends with a checkpoint."""
    n = min(torch.cuda.device_count(), WORLD)
    run = tmp_path / "cuda"
    log = _torchrun("train", "--out", str(run), "--text", str(text_file), *TINY_LSTM,
                    *[a if a != "cpu" else "cuda" for a in FAST], "--steps", "3", nproc=n)
    assert f"distributed: {n} processes (nccl, world size {n})" in log and "on cuda:0" in log
    assert _losses(run)[1] == 3
