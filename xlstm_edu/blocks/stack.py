"""A stack of mLSTM and sLSTM blocks: the xLSTM[a:b] architectures (Beck et al. 2024, sec. 2.4).

``xLSTMStackConfig`` is one flat, validated dataclass; ``slstm_at`` lists the block indices that are
sLSTM blocks (the others are mLSTM blocks), as in the official ``xLSTMBlockStackConfig``.
:func:`ratio_to_slstm_at` turns the paper's ``xLSTM[a:b]`` notation into such a list.

The stack follows the official ``xlstm.xLSTMBlockStack`` (blocks, then a final ``LayerNorm``,
``post_blocks_norm``). Three ways to run it, all equal:

* ``forward(x)``: the whole sequence (chunkwise mLSTM, training);
* ``forward(x, state, return_state=True)``: the same, continuing from / returning the state;
* ``step(x_t, state)``: one step, constant memory (generation).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .components import LayerNorm, check_block_input, proj_up_dim
from .mlstm_block import MLSTM_BACKENDS, mLSTMBlock
from .slstm_block import sLSTMBlock


def ratio_to_slstm_at(ratio: str, num_blocks: int) -> tuple[int, ...]:
    """sLSTM block positions for the paper's ``xLSTM[a:b]`` (a mLSTM blocks per b sLSTM blocks).

    ``round(num_blocks * b / (a + b))`` sLSTM blocks, spread evenly, each at the end of its share of
    the stack: ``"1:1"`` with 4 blocks gives ``(1, 3)`` (m s m s), ``"7:1"`` with 8 gives ``(7,)``,
    ``"1:0"`` gives ``()`` (mLSTM only) and ``"0:1"`` all blocks. Raises ``ValueError`` when the stack
    is too short for the ratio (e.g. ``"7:1"`` with 2 blocks would have no sLSTM block).
    """
    parts = str(ratio).split(":")
    try:
        a, b = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"ratio must look like 'a:b' with integers a, b >= 0, got {ratio!r}") from None
    if len(parts) != 2 or a < 0 or b < 0 or a + b == 0:
        raise ValueError(f"ratio must look like 'a:b' with integers a, b >= 0, a + b > 0, got {ratio!r}")
    if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
        raise ValueError(f"num_blocks must be a positive integer, got {num_blocks!r}")
    n_slstm = round(num_blocks * b / (a + b))
    if (b > 0 and n_slstm == 0) or (a > 0 and n_slstm == num_blocks):
        raise ValueError(f"xLSTM[{a}:{b}] cannot be realised with {num_blocks} blocks; "
                         f"use at least {a + b} blocks")
    return tuple((j + 1) * num_blocks // n_slstm - 1 for j in range(n_slstm))


@dataclass
class xLSTMStackConfig:
    """Everything that defines an xLSTM block stack (defaults: the official defaults)."""

    embedding_dim: int = 128  # E: width of the residual stream
    num_blocks: int = 2  # number of blocks
    slstm_at: tuple[int, ...] = ()  # indices of the sLSTM blocks; the others are mLSTM blocks
    context_length: int = 256  # training sequence length (bookkeeping; forward takes any length)
    mlstm_num_heads: int = 4  # heads of the mLSTM cell (head dim = mLSTM inner dim / heads)
    slstm_num_heads: int = 4  # heads of the sLSTM cell (head dim = E / heads, at least 2)
    mlstm_proj_factor: float = 2.0  # mLSTM up-projection factor (inner dim = PF * E, rounded up)
    ff_proj_factor: float = 1.3  # sLSTM block feed-forward factor (official 1.3; the paper says 4/3)
    round_proj_up_to_multiple_of: int = 64  # both up-projections round up to a multiple of this
    qkv_proj_blocksize: int = 4  # block size of the block-diagonal q, k, v projections
    conv1d_kernel_size: int = 4  # taps of the causal convolutions
    mlstm_backend: str = "chunkwise"  # mLSTM form for sequences: chunkwise | parallel | recurrent
    chunk_size: int = 64  # chunk length of the chunkwise mLSTM form
    dropout: float = 0.0  # dropout inside the blocks
    bias: bool = False  # biases in the mLSTM projections (official: no biases)
    add_post_blocks_norm: bool = True  # final LayerNorm after the last block (official: True)

    def __post_init__(self):
        for name in ("embedding_dim", "num_blocks", "context_length", "mlstm_num_heads",
                     "slstm_num_heads", "round_proj_up_to_multiple_of", "qkv_proj_blocksize",
                     "conv1d_kernel_size", "chunk_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("mlstm_proj_factor", "ff_proj_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if isinstance(self.slstm_at, str) or not hasattr(self.slstm_at, "__iter__"):
            raise ValueError("slstm_at must be a tuple of block indices (see ratio_to_slstm_at for "
                             f"'a:b' ratios), got {self.slstm_at!r}")
        slstm_at = tuple(self.slstm_at)
        for idx in slstm_at:
            if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < self.num_blocks:
                raise ValueError(f"slstm_at entries must be block indices in [0, {self.num_blocks}), "
                                 f"got {idx!r}")
        if len(set(slstm_at)) != len(slstm_at):
            raise ValueError(f"slstm_at has repeated indices: {slstm_at}")
        self.slstm_at = tuple(sorted(slstm_at))
        if self.mlstm_backend not in MLSTM_BACKENDS:
            raise ValueError(f"mlstm_backend must be one of {MLSTM_BACKENDS}, "
                             f"got {self.mlstm_backend!r}")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.num_mlstm_blocks:
            U = self.mlstm_inner_dim
            if U % self.mlstm_num_heads or U % self.qkv_proj_blocksize:
                raise ValueError(f"the mLSTM inner dim {U} must be a multiple of mlstm_num_heads "
                                 f"({self.mlstm_num_heads}) and of qkv_proj_blocksize "
                                 f"({self.qkv_proj_blocksize})")
        if self.slstm_at:
            if self.embedding_dim % self.slstm_num_heads:
                raise ValueError(f"embedding_dim ({self.embedding_dim}) must be a multiple of "
                                 f"slstm_num_heads ({self.slstm_num_heads})")
            if self.embedding_dim // self.slstm_num_heads < 2:
                raise ValueError("the sLSTM head dim (embedding_dim / slstm_num_heads) must be >= 2")

    @property
    def block_types(self) -> tuple[str, ...]:
        """``"m"`` or ``"s"`` for each block, in order."""
        return tuple("s" if i in self.slstm_at else "m" for i in range(self.num_blocks))

    @property
    def num_mlstm_blocks(self) -> int:
        return self.num_blocks - len(self.slstm_at)

    @property
    def mlstm_inner_dim(self) -> int:
        """Width U of the mLSTM block's up-projected branches."""
        return proj_up_dim(self.embedding_dim, self.mlstm_proj_factor, self.round_proj_up_to_multiple_of)

    @property
    def ff_inner_dim(self) -> int:
        """Width of the sLSTM block's gated feed-forward."""
        return proj_up_dim(self.embedding_dim, self.ff_proj_factor, self.round_proj_up_to_multiple_of)

    def to_dict(self) -> dict:
        """Plain dict of the fields; :meth:`from_dict` rebuilds the config."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> xLSTMStackConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {unknown}")
        return cls(**d)


class xLSTMBlockStack(nn.Module):
    """mLSTM and sLSTM blocks in sequence, then ``post_blocks_norm``: x ``(B, S, E)`` -> ``(B, S, E)``.

    The state of the stack is a tuple with one block state per block
    (:class:`~xlstm_edu.blocks.mLSTMBlockState` or :class:`~xlstm_edu.blocks.sLSTMBlockState`).
    """

    def __init__(self, config: xLSTMStackConfig):
        super().__init__()
        if not isinstance(config, xLSTMStackConfig):
            raise ValueError(f"config must be an xLSTMStackConfig, got {type(config).__name__}")
        self.config = cfg = config
        blocks = []
        for idx, kind in enumerate(cfg.block_types):
            if kind == "m":
                blocks.append(mLSTMBlock(
                    cfg.embedding_dim, cfg.mlstm_inner_dim, num_heads=cfg.mlstm_num_heads,
                    qkv_proj_blocksize=cfg.qkv_proj_blocksize, conv1d_kernel_size=cfg.conv1d_kernel_size,
                    bias=cfg.bias, dropout=cfg.dropout, num_blocks=cfg.num_blocks,
                    backend=cfg.mlstm_backend, chunk_size=cfg.chunk_size))
            else:
                blocks.append(sLSTMBlock(
                    cfg.embedding_dim, cfg.ff_inner_dim, num_heads=cfg.slstm_num_heads,
                    conv1d_kernel_size=cfg.conv1d_kernel_size, dropout=cfg.dropout, block_idx=idx,
                    num_blocks=cfg.num_blocks))
        self.blocks = nn.ModuleList(blocks)
        self.post_blocks_norm = (LayerNorm(cfg.embedding_dim) if cfg.add_post_blocks_norm
                                 else nn.Identity())

    def zero_state(self, batch_size: int, like: torch.Tensor) -> tuple:
        """The empty state of every block (dtype/device of ``like``)."""
        return tuple(block.zero_state(batch_size, like) for block in self.blocks)

    def _check_state(self, state) -> tuple:
        if not isinstance(state, (tuple, list)) or len(state) != len(self.blocks):
            raise ValueError(f"state must be a tuple of {len(self.blocks)} block states "
                             "(from forward(..., return_state=True), step or zero_state)")
        return tuple(state)

    def forward(self, x: torch.Tensor, state: tuple | None = None, return_state: bool = False):
        """x ``(B, S, E)`` -> ``y (B, S, E)``, or ``(y, state)`` with ``return_state``.

        ``state`` (optional) continues from an earlier call: ``forward(x[:, :a], return_state=True)``
        then ``forward(x[:, a:], state)`` equals ``forward(x)``.
        """
        check_block_input(x, self.config.embedding_dim, 3, "(B, S, E)")
        states = self._check_state(state) if state is not None else (None,) * len(self.blocks)
        new_states = []
        for block, block_state in zip(self.blocks, states):
            if return_state:
                x, block_state = block(x, block_state, return_state=True)
                new_states.append(block_state)
            else:
                x = block(x, block_state)
        x = self.post_blocks_norm(x)
        return (x, tuple(new_states)) if return_state else x

    def step(self, x_t: torch.Tensor, state: tuple | None = None):
        """One step: x_t ``(B, E)`` -> ``(y_t (B, E), state)``; ``state=None`` starts empty."""
        check_block_input(x_t, self.config.embedding_dim, 2, "(B, E)")
        states = self._check_state(state) if state is not None else (None,) * len(self.blocks)
        new_states = []
        for block, block_state in zip(self.blocks, states):
            x_t, block_state = block.step(x_t, block_state)
            new_states.append(block_state)
        return self.post_blocks_norm(x_t), tuple(new_states)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
