"""Small building blocks shared by the mLSTM and sLSTM blocks.

Each one follows the computation of its counterpart in the official ``xlstm`` package
(``xlstm/components/*``, version 2.0.6), so that official weights load and give the same outputs;
the code is our own.

* :class:`CausalConv1d`: depthwise causal convolution over time (kernel 4), with a ``step`` that keeps
  the last ``K - 1`` inputs in a rolling buffer;
* :class:`LinearHeadwise`: a block-diagonal linear map, one small matrix per head;
* :class:`LayerNorm`: layer norm without bias whose weight is stored as an offset from 1
  (official ``LayerNorm(residual_weight=True)``);
* :class:`MultiHeadLayerNorm`: the same per head (official ``MultiHeadLayerNorm``, a group norm with
  one group per head);
* :class:`GatedFeedForward`: ``W_down (GeLU(W_gate x) * W_up x)``;
* the official initialisations :func:`small_init_`, :func:`wang_init_`, :func:`bias_linspace_`,
  :func:`powerlaw_blockdependent_forget_bias`, and :func:`proj_up_dim`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# --- initialisations (official xlstm/components/init.py) -------------------------------------------


def small_init_(param: torch.Tensor, dim: int) -> torch.Tensor:
    """``N(0, 2 / (5 dim))`` in place ("small init": Nguyen & Salazar 2019, Transformers without
    Tears)."""
    with torch.no_grad():
        return param.normal_(0.0, math.sqrt(2.0 / (5.0 * dim)))


def wang_init_(param: torch.Tensor, dim: int, num_blocks: int) -> torch.Tensor:
    """``N(0, std = 2 / (num_blocks sqrt(dim)))`` in place, for projections that write to the residual
    stream (as in GPT-NeoX / Mesh-Transformer-JAX, after Ben Wang)."""
    with torch.no_grad():
        return param.normal_(0.0, 2.0 / num_blocks / math.sqrt(dim))


def bias_linspace_(param: torch.Tensor, start: float, end: float) -> torch.Tensor:
    """Fill a 1-D ``param`` with ``linspace(start, end)`` in place (mLSTM forget-gate bias: 3 to 6)."""
    if param.dim() != 1:
        raise ValueError(f"bias_linspace_ expects a 1-D tensor, got shape {tuple(param.shape)}")
    with torch.no_grad():
        return param.copy_(torch.linspace(start, end, param.shape[0]))


def powerlaw_blockdependent_forget_bias(head_dim: int, block_idx: int, num_blocks: int) -> torch.Tensor:
    """The official sLSTM forget-gate bias ``"powerlaw_blockdependent"``, one value per unit of a head.

    ``b_f[d] = 5 - 12 (d / (DH - 1)) ** (0.3 + 1.3 r)`` with ``r = block_idx / (num_blocks - 1)``
    (``r = 0`` for a single block): from +5 (forget gate open, long memory) down to -7 (short memory),
    with deeper blocks keeping more units open. Returns a float32 tensor ``(DH,)``.
    """
    if head_dim < 2:
        raise ValueError(f"the powerlaw forget-gate bias needs a head dimension >= 2, got {head_dim}")
    ratio = block_idx / (num_blocks - 1) if num_blocks > 1 else 0.0
    position = torch.arange(head_dim, dtype=torch.float32) / (head_dim - 1)  # (DH,) in [0, 1]
    return -(-5.0 + 12.0 * position ** (0.3 + 1.3 * ratio))


def proj_up_dim(embedding_dim: int, proj_factor: float, multiple_of: int = 64) -> int:
    """Width of an up-projection: ``proj_factor * embedding_dim`` rounded *up* to a multiple of
    ``multiple_of`` (official ``UpProjConfigMixin``; e.g. E = 128, factor 1.3 gives 192)."""
    return int(math.ceil(proj_factor * embedding_dim / multiple_of) * multiple_of)


# --- states -------------------------------------------------------------------------------------


def check_block_input(x, embedding_dim: int, ndim: int, names: str) -> None:
    """``x`` is a floating tensor ``names`` (``(B, S, E)`` or ``(B, E)``) with a non-empty batch and
    sequence and ``E = embedding_dim``."""
    if not isinstance(x, torch.Tensor) or x.ndim != ndim or x.shape[-1] != embedding_dim:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor {names} with E = {embedding_dim}, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"x must have a floating dtype, got {x.dtype}")
    if x.shape[0] < 1 or (ndim == 3 and x.shape[1] < 1):
        raise ValueError(f"x must have non-empty batch and sequence dimensions, got {tuple(x.shape)}")


def check_block_state(block: nn.Module, state, batch_size: int, like: torch.Tensor) -> None:
    """``state`` must look like ``block.zero_state(batch_size, like)``: the same named tuple, every
    tensor with the same shape, on ``like``'s device, in ``like``'s dtype (``ValueError`` naming the
    field otherwise). Shapes are compared on the ``meta`` device, so nothing is allocated."""
    expected = block.zero_state(batch_size, like.to("meta"))
    name = type(block).__name__
    if type(state) is not type(expected):
        raise ValueError(f"{name} state must be a {type(expected).__name__} (from forward(..., "
                         f"return_state=True), step or zero_state), got {type(state).__name__}")
    for field, t, ref in zip(expected._fields, state, expected):
        if not isinstance(t, torch.Tensor) or t.shape != ref.shape:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} state.{field} must have shape {tuple(ref.shape)} (batch size "
                             f"{batch_size}), got {got}")
        if t.device != like.device or t.dtype != like.dtype:
            raise ValueError(f"{name} state.{field} is {t.dtype} on {t.device}, the input "
                             f"{like.dtype} on {like.device}")


# --- layers -------------------------------------------------------------------------------------


class CausalConv1d(nn.Module):
    """Depthwise causal convolution over time: each feature has its own kernel of ``K`` taps.

    ``y_t[f] = bias[f] + sum_{j=0}^{K-1} weight[f, j] x_{t-K+1+j}[f]`` (inputs before ``t = 0`` are
    zero, or come from ``state``). The recurrent form keeps the last ``K - 1`` inputs as its state.

    Parameters: ``weight (F, K)`` (official ``conv1d.conv.weight`` is ``(F, 1, K)``), ``bias (F,)``.
    Init as ``torch.nn.Conv1d``: both ``U(-1/sqrt(K), 1/sqrt(K))``.
    """

    def __init__(self, feature_dim: int, kernel_size: int = 4, bias: bool = True):
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        self.feature_dim, self.kernel_size = feature_dim, kernel_size
        self.weight = nn.Parameter(torch.empty(feature_dim, kernel_size))  # (F, K)
        self.bias = nn.Parameter(torch.empty(feature_dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.kernel_size)  # fan_in of a depthwise kernel is K
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def zero_state(self, batch_size: int, like: torch.Tensor) -> torch.Tensor:
        """The empty history: zeros ``(B, K - 1, F)`` with the dtype/device of ``like``."""
        return like.new_zeros(batch_size, self.kernel_size - 1, self.feature_dim)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        """x ``(B, S, F)``, state ``(B, K - 1, F)`` (the previous inputs) or ``None`` for zeros.

        Returns ``y (B, S, F)`` and the new state ``(B, K - 1, F)`` (the last ``K - 1`` inputs).
        """
        B, S, _ = x.shape
        if state is None:
            state = self.zero_state(B, x)
        x_padded = torch.cat([state, x], dim=1)  # (B, K - 1 + S, F)
        # conv1d wants channels first: (B, F, K - 1 + S) -> (B, F, S); one group per feature
        y = F.conv1d(x_padded.transpose(1, 2), self.weight[:, None, :], self.bias,
                     groups=self.feature_dim)
        new_state = x_padded[:, x_padded.shape[1] - (self.kernel_size - 1):]  # (B, K - 1, F)
        return y.transpose(1, 2), new_state  # (B, S, F)

    def step(self, x_t: torch.Tensor, state: torch.Tensor | None = None):
        """One step: x_t ``(B, F)``, state ``(B, K - 1, F)`` -> ``y_t (B, F)``, new state."""
        if state is None:
            state = self.zero_state(x_t.shape[0], x_t)
        window = torch.cat([state, x_t[:, None]], dim=1)  # (B, K, F): x_{t-K+1} .. x_t
        y = (window * self.weight.T).sum(dim=1)  # (B, F)
        if self.bias is not None:
            y = y + self.bias
        return y, window[:, 1:]

    def extra_repr(self) -> str:
        return f"feature_dim={self.feature_dim}, kernel_size={self.kernel_size}"


class LinearHeadwise(nn.Module):
    """Block-diagonal linear map: the ``in_features`` split into ``num_heads`` groups, each mapped by
    its own ``(DH, DH)`` matrix (official ``LinearHeadwiseExpand`` with expand factor 1).

    ``weight (NH, DH_out, DH_in)``, ``bias (NH * DH_out,)`` or ``None``. x ``(..., NH * DH)`` ->
    ``(..., NH * DH)``. Default init ``N(0, 2 / (5 DH))``; the blocks re-initialise with
    :func:`small_init_` on the embedding dimension, as the official layers do.
    """

    def __init__(self, in_features: int, num_heads: int, bias: bool = False):
        super().__init__()
        if num_heads < 1 or in_features % num_heads:
            raise ValueError(f"in_features ({in_features}) must be a multiple of num_heads "
                             f"({num_heads})")
        self.in_features, self.num_heads = in_features, num_heads
        dh = in_features // num_heads
        self.weight = nn.Parameter(torch.empty(num_heads, dh, dh))  # (NH, DH_out, DH_in)
        self.bias = nn.Parameter(torch.zeros(in_features)) if bias else None
        small_init_(self.weight, dh)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_heads = x.reshape(*x.shape[:-1], self.num_heads, -1)  # (..., NH, DH_in)
        y = torch.einsum("...hi,hoi->...ho", x_heads, self.weight)  # (..., NH, DH_out)
        y = y.reshape(*x.shape[:-1], self.in_features)  # (..., NH * DH_out)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, num_heads={self.num_heads}, "
                f"bias={self.bias is not None}")


class LayerNorm(nn.Module):
    """Layer norm over the last dimension, with an optional bias and a "residual" weight.

    ``y = (x - mean) / sqrt(var + eps) * (1 + weight) [+ bias]``: the stored ``weight`` starts at 0,
    so the gain starts at 1 and weight decay pulls it towards 1, not 0 (official ``LayerNorm`` with
    ``residual_weight=True``, ``bias=False``, ``eps=1e-5``).
    """

    def __init__(self, ndim: int, weight: bool = True, bias: bool = False, eps: float = 1e-5,
                 residual_weight: bool = True):
        super().__init__()
        self.ndim, self.eps, self.residual_weight = ndim, eps, residual_weight
        self.weight = nn.Parameter(torch.zeros(ndim)) if weight else None
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            if self.weight is not None:
                self.weight.fill_(0.0 if self.residual_weight else 1.0)
            if self.bias is not None:
                self.bias.zero_()

    @property
    def gain(self) -> torch.Tensor | None:
        """The multiplicative weight actually applied: ``1 + weight`` (or ``weight``)."""
        if self.weight is None:
            return None
        return 1.0 + self.weight if self.residual_weight else self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (self.ndim,), self.gain, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"ndim={self.ndim}, bias={self.bias is not None}, eps={self.eps}"


class MultiHeadLayerNorm(LayerNorm):
    """Layer norm of each head separately, then one gain per feature (official ``MultiHeadLayerNorm``:
    a group norm with one group per head). x ``(..., NH, DH)`` -> ``(..., NH, DH)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        NH, DH = x.shape[-2:]
        if NH * DH != self.ndim:
            raise ValueError(f"expected (..., NH, DH) with NH * DH = {self.ndim}, got {tuple(x.shape)}")
        flat = x.reshape(-1, NH * DH)  # (N, NH * DH): group_norm normalises each of the NH groups
        y = F.group_norm(flat, NH, self.gain, self.bias, self.eps)
        return y.reshape(x.shape)  # (..., NH, DH)


class GatedFeedForward(nn.Module):
    """Gated MLP: ``proj_down(GeLU(gate) * up)`` with ``[gate, up] = proj_up(x)`` (official
    ``GatedFeedForward``, ``ffn_gated``). x ``(..., E)`` -> ``(..., E)``.

    Init: ``proj_up`` :func:`small_init_`, ``proj_down`` :func:`wang_init_` (both on ``E``).
    """

    def __init__(self, embedding_dim: int, inner_dim: int, num_blocks: int = 1, bias: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        self.inner_dim = inner_dim
        self.proj_up = nn.Linear(embedding_dim, 2 * inner_dim, bias=bias)
        self.proj_down = nn.Linear(inner_dim, embedding_dim, bias=bias)
        self.dropout = nn.Dropout(dropout)
        small_init_(self.proj_up.weight, embedding_dim)
        wang_init_(self.proj_down.weight, embedding_dim, num_blocks)
        for lin in (self.proj_up, self.proj_down):
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate_preact, up = self.proj_up(x).split(self.inner_dim, dim=-1)  # (..., D_inner) each
        return self.dropout(self.proj_down(F.gelu(gate_preact) * up))
