"""A stack of mLSTM and sLSTM blocks: the xLSTM[a:b] architectures (Beck et al. 2024, sec. 2.4).

``xLSTMStackConfig`` is one flat, validated dataclass; ``slstm_at`` lists the block indices that are
sLSTM blocks (the others are mLSTM blocks), as in the official ``xLSTMBlockStackConfig``.
:func:`ratio_to_slstm_at` turns the paper's ``xLSTM[a:b]`` notation into such a list.

The stack follows the official ``xlstm.xLSTMBlockStack`` (blocks, then a final ``LayerNorm``,
``post_blocks_norm``). Three ways to run it, all equal:

* ``forward(x)``: the whole sequence (chunkwise mLSTM, training);
* ``forward(x, state, return_state=True)``: the same, continuing from / returning the state;
* ``step(x_t, state)``: one step, constant memory (generation);
* ``stepper(state)``: the same steps for generation loops (:class:`StackStepper`): checked once, the
  state updated in place, each mLSTM block one compiled (numba) call per step on the CPU.
"""

from __future__ import annotations

import inspect
import math
import weakref
from dataclasses import asdict, dataclass, fields

import numba
import numpy as np
import torch
import torch.nn.functional as F
from numba import njit, prange
from torch import nn

from .._numba import PARALLEL_MIN_WORK, call_with_threads
from ..gating import log_sigmoid_scalar, normalizer_scalar, stabilized_gates_scalar
from .components import LayerNorm, check_block_input, check_block_state, proj_up_dim
from .mlstm_block import MLSTM_BACKENDS, mLSTMBlock, mLSTMBlockState
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

    def step(self, x_t: torch.Tensor, state: tuple | None = None, *, check: bool = True):
        """One step: x_t ``(B, E)`` -> ``(y_t (B, E), state)``; ``state=None`` starts empty.

        ``check=False`` skips the input and state checks here and in the blocks (for loops that
        checked them once, e.g. after their first step); the arithmetic is the same.
        """
        if check:
            check_block_input(x_t, self.config.embedding_dim, 2, "(B, E)")
            states = self._check_state(state) if state is not None else (None,) * len(self.blocks)
        else:
            states = state if state is not None else (None,) * len(self.blocks)
        new_states = []
        for block, block_state in zip(self.blocks, states):
            if check or not _takes_check(block):
                x_t, block_state = block.step(x_t, block_state)
            else:
                x_t, block_state = block.step(x_t, block_state, check=False)
            new_states.append(block_state)
        return self.post_blocks_norm(x_t), tuple(new_states)

    def stepper(self, state: tuple) -> StackStepper:
        """A :class:`StackStepper` that continues from ``state`` (for generation loops)."""
        return StackStepper(self, state)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# --- generation: the stack stepped in place, mLSTM blocks compiled ---------------------------------

def _takes_check(block: nn.Module) -> bool:
    """Whether ``block.step`` accepts ``check=False`` (skip its input and state checks)."""
    takes = _TAKES_CHECK.get(type(block))
    if takes is None:
        takes = "check" in inspect.signature(type(block).step).parameters
        _TAKES_CHECK[type(block)] = takes
    return takes


_TAKES_CHECK: dict[type, bool] = {}


#: reassociated sums (vectorised dot products), fused multiply-adds; infinities and NaN stay exact
_FASTMATH = {"reassoc", "contract", "nsz"}


@njit(cache=True, inline="always", fastmath=_FASTMATH)
def _matvec(W, x, out):
    """``out[o] = sum_i W[o, i] x[i]`` (the sum starts from the first product, so it keeps the dtype
    of the arrays)."""
    for o in range(W.shape[0]):
        acc = W[o, 0] * x[0]
        for i in range(1, W.shape[1]):
            acc += W[o, i] * x[i]
        out[o] = acc


@njit(cache=True, inline="always", fastmath=_FASTMATH)
def _matvec_t(W_T, x, out):
    """``out = W x`` from the transposed ``W_T (I, O)``: ``out += W_T[i] x[i]`` row by row (vectorised
    over the outputs, no horizontal sums: faster than :func:`_matvec` for many outputs)."""
    x_i = x[0]
    for o in range(W_T.shape[1]):
        out[o] = W_T[0, o] * x_i
    for i in range(1, W_T.shape[0]):
        x_i = x[i]
        for o in range(W_T.shape[1]):
            out[o] += W_T[i, o] * x_i


@njit(cache=True, inline="always", fastmath=_FASTMATH)
def _norm_(x, start, stop, gain, eps, out):
    """``out[start:stop]``: ``x[start:stop]`` normalised (mean 0, biased variance 1 + eps) times
    ``gain[start:stop]`` (one layer-norm group)."""
    count = stop - start
    mean = x[start]
    for i in range(start + 1, stop):
        mean += x[i]
    mean /= count
    var = (x[start] - mean) * (x[start] - mean)
    for i in range(start + 1, stop):
        var += (x[i] - mean) * (x[i] - mean)
    inv = 1.0 / math.sqrt(var / count + eps)
    for i in range(start, stop):
        out[i] = (x[i] - mean) * inv * gain[i]


@njit(cache=True, inline="always", fastmath=_FASTMATH)
def _headwise(W, bias, x, out, out_offset):
    """Block-diagonal map (:class:`~.components.LinearHeadwise`): W ``(P, BS, BS)``, x ``(P BS,)``;
    writes ``out[out_offset : out_offset + P BS]``."""
    P, BS = W.shape[0], W.shape[1]
    for p in range(P):
        for o in range(BS):
            acc = W[p, o, 0] * x[p * BS]
            for i in range(1, BS):
                acc += W[p, o, i] * x[p * BS + i]
            out[out_offset + p * BS + o] = acc + bias[p * BS + o]


@njit(cache=True, fastmath=_FASTMATH)
def _mlstm_block_step_row(x, ln_gain, ln_eps, W_up_T, b_up, conv_wT, conv_b, conv_state, Wq, bq, Wk,
                          bk, Wv, bv, W_gates, b_gates, c, n, m, on_gain, on_eps, skip, W_down_T,
                          b_down, eps):
    """One step of :meth:`~.mlstm_block.mLSTMBlock.step` for one row, in place: x ``(E,)`` becomes
    the block's output; conv_state ``(K - 1, U)``, c ``(NH, DH, DH)``, n ``(NH, DH)``, m ``(NH,)``
    advance. W_gates ``(2 NH, 3U)`` stacks the input- and forget-gate weights."""
    E, U = x.shape[0], conv_b.shape[0]
    NH, DH = c.shape[0], c.shape[1]
    K1 = conv_state.shape[0]  # K - 1
    x_norm = np.empty_like(x)
    _norm_(x, 0, E, ln_gain, ln_eps, x_norm)
    up = np.empty(2 * U, dtype=x.dtype)  # [a, b]
    _matvec_t(W_up_T, x_norm, up)
    for j in range(2 * U):
        up[j] += b_up[j]
    # causal convolution over [conv_state; a], then swish; the state shifts by one input
    a_conv = np.empty(U, dtype=x.dtype)
    for f in range(U):
        y = conv_b[f] + conv_wT[K1, f] * up[f]
        for j in range(K1):
            y += conv_wT[j, f] * conv_state[j, f]
        a_conv[f] = y / (1.0 + math.exp(-y))
    for j in range(K1 - 1):
        for f in range(U):
            conv_state[j, f] = conv_state[j + 1, f]
    if K1 > 0:
        for f in range(U):
            conv_state[K1 - 1, f] = up[f]
    qkv = np.empty(3 * U, dtype=x.dtype)  # [q, k, v]
    _headwise(Wq, bq, a_conv, qkv, 0)
    _headwise(Wk, bk, a_conv, qkv, U)
    _headwise(Wv, bv, up, qkv, 2 * U)
    gates = np.empty(2 * NH, dtype=x.dtype)  # [igate_preact, fgate_preact]
    _matvec(W_gates, qkv, gates)
    h = np.zeros(U, dtype=x.dtype)
    q_scaled = np.empty(DH, dtype=x.dtype)
    for hd in range(NH):
        i_act, f_act, m_new = stabilized_gates_scalar(
            gates[hd] + b_gates[hd], log_sigmoid_scalar(gates[NH + hd] + b_gates[NH + hd]), m[hd])
        m[hd] = m_new
        q0, k0, v0 = hd * DH, U + hd * DH, 2 * U + hd * DH
        for i in range(DH):
            q_scaled[i] = qkv[q0 + i] * DH ** -0.5
        qn = 0.0
        for i in range(DH):
            n_i = f_act * n[hd, i] + i_act * qkv[k0 + i]
            n[hd, i] = n_i
            qn += q_scaled[i] * n_i
            coef = i_act * qkv[k0 + i]
            q_i = q_scaled[i]
            for d in range(DH):  # C = f C + i k v^T, read out by q in the same pass
                c_id = f_act * c[hd, i, d] + coef * qkv[v0 + d]
                c[hd, i, d] = c_id
                h[q0 + d] += q_i * c_id
        denom = normalizer_scalar(qn, m_new, eps)
        for d in range(DH):
            h[q0 + d] /= denom
    h_norm = np.empty(U, dtype=x.dtype)
    for hd in range(NH):
        _norm_(h, hd * DH, (hd + 1) * DH, on_gain, on_eps, h_norm)
    for j in range(U):
        b = up[U + j]
        h_norm[j] = (h_norm[j] + skip[j] * a_conv[j]) * (b / (1.0 + math.exp(-b)))
    out = np.empty(E, dtype=x.dtype)
    _matvec_t(W_down_T, h_norm, out)
    for e in range(E):
        x[e] += out[e] + b_down[e]


@njit(cache=True)
def _mlstm_block_step(x, ln_gain, ln_eps, W_up_T, b_up, conv_wT, conv_b, conv_state, Wq, bq, Wk, bk,
                      Wv, bv, W_gates, b_gates, c, n, m, on_gain, on_eps, skip, W_down_T, b_down, eps):
    """:func:`_mlstm_block_step_row` for each row of x ``(B, E)`` (states with a leading B)."""
    for r in range(x.shape[0]):
        _mlstm_block_step_row(x[r], ln_gain, ln_eps, W_up_T, b_up, conv_wT, conv_b, conv_state[r], Wq,
                              bq, Wk, bk, Wv, bv, W_gates, b_gates, c[r], n[r], m[r], on_gain,
                              on_eps, skip, W_down_T, b_down, eps)


@njit(cache=True, parallel=True)
def _mlstm_block_step_parallel(x, ln_gain, ln_eps, W_up_T, b_up, conv_wT, conv_b, conv_state, Wq, bq,
                               Wk, bk, Wv, bv, W_gates, b_gates, c, n, m, on_gain, on_eps, skip,
                               W_down_T, b_down, eps):
    """:func:`_mlstm_block_step` with the rows in parallel."""
    for r in prange(x.shape[0]):
        _mlstm_block_step_row(x[r], ln_gain, ln_eps, W_up_T, b_up, conv_wT, conv_b, conv_state[r], Wq,
                              bq, Wk, bk, Wv, bv, W_gates, b_gates, c[r], n[r], m[r], on_gain,
                              on_eps, skip, W_down_T, b_down, eps)


def _compiles(block: nn.Module) -> bool:
    """Whether :func:`_mlstm_block_step` computes ``block.step``: an :class:`mLSTMBlock` (not a
    subclass) with bias-free norms and no active dropout."""
    return (type(block) is mLSTMBlock and block.norm.bias is None and block.outnorm.bias is None
            and not (block.training and block.dropout.p > 0))


#: block -> (key of its parameters, prepared weights): the arrays of :func:`_mlstm_step_weights`,
#: reused while no parameter is replaced or changed in place (``_version`` counts in-place writes)
_STEP_WEIGHTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _mlstm_step_weights(block: mLSTMBlock) -> tuple:
    """The weights of ``block`` as the numpy arrays :func:`_mlstm_block_step` reads: views where no
    rearrangement is needed, copies of the derived ones (LayerNorm gains ``1 + w``, the transposed
    projections and convolution kernel, the stacked gate weights, zeros for absent biases). Cached
    per block until a parameter changes."""
    key = tuple((p.data_ptr(), p._version, p.dtype) for p in block.parameters())
    cached = _STEP_WEIGHTS.get(block)
    if cached is not None and cached[0] == key:
        return cached[1]
    weights = _prepare_mlstm_step_weights(block)
    _STEP_WEIGHTS[block] = (key, weights)
    return weights


def _prepare_mlstm_step_weights(block: mLSTMBlock) -> tuple:
    U, E = block.inner_dim, block.embedding_dim

    def arr(t):
        return np.ascontiguousarray(t.detach().numpy())

    dt = arr(block.proj_up.weight).dtype

    def bias(module, size):
        return arr(module.bias) if module.bias is not None else np.zeros(size, dt)

    def gain(norm):
        return arr(norm.gain) if norm.weight is not None else np.ones(norm.ndim, dt)

    W_gates = torch.cat([block.igate.weight, block.fgate.weight])  # (2 NH, 3U): [i; f]
    b_gates = torch.cat([block.igate.bias, block.fgate.bias])  # (2 NH,)
    conv = block.conv1d
    return (gain(block.norm), block.norm.eps, arr(block.proj_up.weight.T), bias(block.proj_up, 2 * U),
            arr(conv.weight.T), bias(conv, U),  # weight (U, K) -> (K, U)
            arr(block.q_proj.weight), bias(block.q_proj, U), arr(block.k_proj.weight),
            bias(block.k_proj, U), arr(block.v_proj.weight), bias(block.v_proj, U), arr(W_gates),
            arr(b_gates), gain(block.outnorm), block.outnorm.eps, arr(block.learnable_skip),
            arr(block.proj_down.weight.T), bias(block.proj_down, E), block.eps)


def _mlstm_step_work(block: mLSTMBlock) -> int:
    """Multiply-adds of one mLSTM block step for one row (to pick the serial or parallel kernel)."""
    E, U, NH, DH = block.embedding_dim, block.inner_dim, block.num_heads, block.head_dim
    BS = block.q_proj.weight.shape[-1]
    return 3 * E * U + 3 * U * BS + 6 * NH * U + 2 * NH * DH * DH


class StackStepper:
    """The stack's :meth:`~xLSTMBlockStack.step` for generation loops, holding the state itself.

    ``stepper(x_t (B, E)) -> y_t (B, E)`` equals ``y_t, state = stack.step(x_t, state)`` (to float
    rounding) and advances the state it holds; :meth:`state` returns it as block states. The state
    and the weights are checked and prepared once, here: the state is copied into contiguous
    buffers that the steps update in place (the caller's tensors never change). On the CPU in
    float32 or float64, with gradients off and no active dropout, each mLSTM block runs as one
    compiled (numba) call per step instead of ~40 small torch operations; elsewhere (CUDA, other
    dtypes, sLSTM blocks, gradients on) the blocks' own torch ``step`` runs, without its checks.
    The compiled path reads the weights as they are when the stepper is built.
    """

    def __init__(self, stack: xLSTMBlockStack, state: tuple):
        states = stack._check_state(state)
        first = states[0][0]
        if not isinstance(first, torch.Tensor):
            raise ValueError("state must hold tensors (from forward(..., return_state=True) or step)")
        B = first.shape[0]
        for block, block_state in zip(stack.blocks, states):
            check_block_state(block, block_state, B, first)
        self.stack, self.batch_size = stack, B
        compiled = (first.device.type == "cpu" and first.dtype in (torch.float32, torch.float64)
                    and not torch.is_grad_enabled())
        self._x = torch.empty(B, stack.config.embedding_dim, dtype=first.dtype, device=first.device)
        self._x_np = self._x.numpy() if compiled else None
        self._plans = []  # per block: [block, state, kernel arguments or None]
        for block, block_state in zip(stack.blocks, states):
            if compiled and _compiles(block):
                buffers = mLSTMBlockState(*(t.detach().clone(memory_format=torch.contiguous_format)
                                            for t in block_state))
                kernel = _mlstm_block_step
                if B * _mlstm_step_work(block) >= PARALLEL_MIN_WORK and numba.get_num_threads() > 1:
                    kernel = _mlstm_block_step_parallel
                weights = _mlstm_step_weights(block)
                conv, c, n, m = (t.numpy() for t in buffers)
                args = (*weights[:6], conv, *weights[6:14], c, n, m, *weights[14:])
                self._plans.append([block, buffers, (kernel, args)])
            else:
                self._plans.append([block, block_state, None])
        self._check = {id(p[0]): _takes_check(p[0]) for p in self._plans}
        #: whether some block runs compiled (then stepping through a short prompt beats a forward pass)
        self.compiled = any(p[2] is not None for p in self._plans)
        norm = stack.post_blocks_norm
        if isinstance(norm, LayerNorm) and not torch.is_grad_enabled():  # its gain 1 + w, once
            gain = norm.gain
            self._post_norm = lambda x: F.layer_norm(x, (norm.ndim,), gain, norm.bias, norm.eps)
        else:
            self._post_norm = norm

    def __call__(self, x_t: torch.Tensor) -> torch.Tensor:
        """One step: x_t ``(B, E)`` (not checked) -> y_t ``(B, E)``."""
        x = x_t
        for plan in self._plans:
            block, block_state, compiled = plan
            if compiled is not None:
                if x is not self._x:
                    self._x.copy_(x)
                    x = self._x
                kernel, args = compiled
                if kernel is _mlstm_block_step_parallel:
                    call_with_threads(kernel, self.batch_size, math.inf, self._x_np, *args)
                else:
                    kernel(self._x_np, *args)
            elif self._check[id(block)]:
                x, plan[1] = block.step(x, block_state, check=False)
            else:
                x, plan[1] = block.step(x, block_state)
        y = self._post_norm(x)
        return y.clone() if y is self._x else y

    def state(self) -> tuple:
        """The current state, one block state per block (copies of the buffers)."""
        return tuple(type(s)(*(t.clone() for t in s)) if c is not None else s
                     for _, s, c in self._plans)
