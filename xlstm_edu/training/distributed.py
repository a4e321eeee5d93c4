"""Data-parallel training on several processes (``torchrun``) with ``DistributedDataParallel``.

One model is trained by ``world_size`` processes (ranks). Every rank holds the same weights and
draws the same *global* batch from the same seeded batch sampler, then keeps its own slice of it
(:meth:`Distributed.shard`: rows ``rank * b : (rank + 1) * b`` with ``b = B / world_size``). DDP
averages the gradients, so every rank takes the same optimizer step, and the run equals a
single-process run on the global batch up to float rounding (the loop weights each rank's loss so
that the average is the global mean over targets, ignored targets included). Rank 0 alone writes
checkpoints and logs; the others wait at a barrier.

- :func:`from_env`: the ``torchrun`` environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``MASTER_ADDR``, ``MASTER_PORT``), or ``None`` for an ordinary single-process run;
- :func:`setup` / :meth:`Distributed.teardown`: join and leave the process group (gloo on the CPU,
  NCCL on CUDA, one GPU per process: ``cuda:LOCAL_RANK``).

::

    torchrun --nproc_per_node=2 -m xlstm_edu train --out runs/x ...

Dropout draws from the same seeded stream on every rank (so that a checkpoint, which stores rank
0's RNG states, resumes every rank exactly): each slice sees the masks of the matching rows of
rank 0's slice. With dropout the run therefore differs from one process (other masks, same
distribution); without it the two agree to float rounding.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .state import resolve_device

#: The variables ``torchrun`` sets for every process; any of them means "distributed".
ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class DistributedEnv:
    """Where this process stands in a ``torchrun`` launch (read from the environment)."""

    rank: int  # 0 .. world_size - 1 over all machines
    world_size: int  # number of processes
    local_rank: int  # rank on this machine: the GPU this process uses


def from_env(environ=None) -> DistributedEnv | None:
    """The ``torchrun`` environment, or ``None`` when none of its variables is set (one process).
    ``ValueError`` when only some are set or they are not consistent integers."""
    environ = os.environ if environ is None else environ
    present = [name for name in ENV_VARS if name in environ]
    if not present:
        return None
    missing = [name for name in ENV_VARS if name not in environ]
    if missing:
        raise ValueError(f"distributed environment incomplete: {', '.join(present)} set but not "
                         f"{', '.join(missing)} (launch with torchrun)")
    try:
        rank, world, local = (int(environ[n]) for n in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers, got "
                         + ", ".join(f"{n}={environ[n]!r}" for n in ENV_VARS[:3])) from None
    if world < 1 or not 0 <= rank < world or not 0 <= local <= rank:
        raise ValueError(f"inconsistent distributed environment: RANK={rank}, WORLD_SIZE={world}, "
                         f"LOCAL_RANK={local}")
    return DistributedEnv(rank, world, local)


def local_batch_size(batch_size: int, world_size: int) -> int:
    """The per-rank batch ``B / world_size``; ``ValueError`` when the world size does not divide it."""
    if batch_size % world_size:
        raise ValueError(f"the global batch size {batch_size} is not divisible by the world size "
                         f"{world_size}: pass a multiple of {world_size}")
    return batch_size // world_size


def choose_backend(backend: str, device: str) -> tuple[str, torch.device]:
    """The process group's backend and this process's device, checked before anything starts.

    ``backend``: ``"auto"`` (NCCL for CUDA, gloo otherwise), ``"gloo"`` or ``"nccl"``; ``device``: a
    :class:`~xlstm_edu.training.TrainConfig` device (``"cuda"`` becomes ``cuda:LOCAL_RANK`` later,
    in :func:`setup`). ``ValueError`` for NCCL without CUDA."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    dev = resolve_device(device)
    if backend == "nccl" and (dev.type != "cuda" or not dist.is_nccl_available()):
        why = ("CUDA is not available on this machine" if not torch.cuda.is_available()
               else f"the device is {dev}" if dev.type != "cuda"
               else "this torch build has no NCCL")
        raise ValueError(f"backend nccl needs CUDA devices: {why} (use gloo, or --device cuda)")
    if backend == "auto":
        backend = "nccl" if dev.type == "cuda" and dist.is_nccl_available() else "gloo"
    return backend, dev


@dataclass(frozen=True)
class Distributed:
    """A joined process group (made by :func:`setup`); passed to
    :func:`~xlstm_edu.training.train` as ``distributed=``."""

    rank: int
    world_size: int
    local_rank: int
    backend: str  # "gloo" or "nccl"
    device: torch.device  # this process's device (cuda:LOCAL_RANK on CUDA)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes checkpoints and logs."""
        return self.rank == 0

    def describe(self) -> str:
        return f"{self.world_size} processes ({self.backend}, world size {self.world_size})"


    def shard(self, t: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch ``(B, ...)``: ``(B / world_size, ...)``, a view."""
        b = t.shape[0] // self.world_size
        return t[self.rank * b:(self.rank + 1) * b]

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` (already on :attr:`device`) inside ``DistributedDataParallel``: its backward
        averages the gradients over the ranks. It broadcasts rank 0's weights at creation."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """The sum of ``t`` over all ranks (a new tensor; ``t`` is left as it was)."""
        out = t.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def from_main(self, values: list[int]) -> list[int]:
        """Rank 0's ``values`` on every rank (e.g. whether to stop: a decision taken from timings)."""
        t = torch.tensor(values, dtype=torch.long, device=self.device)
        dist.broadcast(t, src=0)
        return t.tolist()

    def barrier(self) -> None:
        """Wait until every rank is here (e.g. until rank 0 has written a checkpoint)."""
        if self.backend == "nccl":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()

    def teardown(self) -> None:
        """Leave the process group (every rank, at the end)."""
        if dist.is_initialized():
            dist.destroy_process_group()


def setup(env: DistributedEnv, device: str = "auto", backend: str = "auto", *,
          timeout_s: float = 1800.0) -> Distributed:
    """Join the process group described by ``env`` (:func:`from_env`); call on every rank, after the
    options are checked. CUDA: process ``LOCAL_RANK`` uses ``cuda:LOCAL_RANK`` (unless ``device``
    names an index). ``ValueError`` for NCCL without CUDA or more local ranks than GPUs."""
    backend, dev = choose_backend(backend, device)
    if dev.type == "cuda" and dev.index is None:
        if env.local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {env.local_rank}: this machine has "
                             f"{torch.cuda.device_count()} CUDA devices (one per process)")
        dev = torch.device("cuda", env.local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=env.rank, world_size=env.world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return Distributed(env.rank, env.world_size, env.local_rank, backend, dev)
