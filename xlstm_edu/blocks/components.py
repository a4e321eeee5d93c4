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

Speed on the CPU: the block-diagonal projections (blocks of 4) and the depthwise convolution are tiny
matrix products that BLAS runs at a few GFLOP/s, with copies around them. On the CPU (float32/64)
:func:`headwise_linear` and :class:`CausalConv1d` run compiled numba kernels with hand-written
backward passes instead (about 10x faster forward+backward at the block's sizes); the torch code is the
reference, and what runs on other devices and dtypes. Both give the same values and gradients.
"""

from __future__ import annotations

import math

import numba
import torch
import torch.nn.functional as F
from numba import njit, prange
from torch import nn
from torch.autograd.function import once_differentiable

from .._numba import call_with_threads

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


# --- compiled CPU kernels (numba) ---------------------------------------------------------------


#: below this many rows (a generation step: one per sequence) the calls cost more than the work, and
#: the torch path is faster
KERNEL_MIN_ROWS = 64


def _use_kernels(*tensors: torch.Tensor) -> bool:
    """The numba kernels run for CPU float32/float64 tensors of one dtype; anything else (CUDA, half
    precision, mixed dtypes) takes the torch reference path."""
    dtype = tensors[0].dtype
    return all(t.device.type == "cpu" and t.dtype == dtype for t in tensors) and dtype in (
        torch.float32, torch.float64)


def _np(t: torch.Tensor):
    """A contiguous numpy view of a CPU tensor (a copy only if it is not contiguous)."""
    return t.detach().contiguous().numpy()


@njit(cache=True, parallel=True)
def _headwise4_forward(x, wv, y):
    """``y[m, n, 4p + o] = sum_i W_m[p, o, i] x[n, 4p + i]`` for blocks of 4.

    x ``(N, U)``, wv ``(M, 16, P)`` with ``wv[m, 4o + i, p] = W_m[p, o, i]`` (contiguous in the head
    ``p``, so the inner loop over heads vectorizes), y ``(M, N, U)``. Rows ``n`` in parallel.
    """
    N = x.shape[0]
    M, _, P = wv.shape
    for n in prange(N):
        xr = x[n]
        for m in range(M):
            yr = y[m, n]
            w = wv[m]
            for p in range(P):
                x0, x1, x2, x3 = xr[4 * p], xr[4 * p + 1], xr[4 * p + 2], xr[4 * p + 3]
                yr[4 * p] = w[0, p] * x0 + w[1, p] * x1 + w[2, p] * x2 + w[3, p] * x3
                yr[4 * p + 1] = w[4, p] * x0 + w[5, p] * x1 + w[6, p] * x2 + w[7, p] * x3
                yr[4 * p + 2] = w[8, p] * x0 + w[9, p] * x1 + w[10, p] * x2 + w[11, p] * x3
                yr[4 * p + 3] = w[12, p] * x0 + w[13, p] * x1 + w[14, p] * x2 + w[15, p] * x3


@njit(cache=True, parallel=True)
def _headwise4_backward(gy, x, wv, gx, gwv_parts):
    """Backward of :func:`_headwise4_forward`: ``gx[n, 4p + i] = sum_{m, o} W_m[p, o, i]
    gy[m, n, 4p + o]`` and the weight gradient ``sum_n gy[m, n, 4p + o] x[n, 4p + i]`` (layout of
    ``wv``), summed over the rows of each of ``T`` parts into ``gwv_parts (T, M, 16, P)`` (one part
    per thread; the caller adds them up)."""
    N = x.shape[0]
    M, _, P = wv.shape
    T = gwv_parts.shape[0]
    for part in prange(T):
        acc = gwv_parts[part]
        acc[:] = 0
        for n in range(part * N // T, (part + 1) * N // T):
            xr, gxr = x[n], gx[n]
            gxr[:] = 0
            for m in range(M):
                gr, w, a = gy[m, n], wv[m], acc[m]
                for p in range(P):
                    x0, x1, x2, x3 = xr[4 * p], xr[4 * p + 1], xr[4 * p + 2], xr[4 * p + 3]
                    g0, g1, g2, g3 = gr[4 * p], gr[4 * p + 1], gr[4 * p + 2], gr[4 * p + 3]
                    gxr[4 * p] += w[0, p] * g0 + w[4, p] * g1 + w[8, p] * g2 + w[12, p] * g3
                    gxr[4 * p + 1] += w[1, p] * g0 + w[5, p] * g1 + w[9, p] * g2 + w[13, p] * g3
                    gxr[4 * p + 2] += w[2, p] * g0 + w[6, p] * g1 + w[10, p] * g2 + w[14, p] * g3
                    gxr[4 * p + 3] += w[3, p] * g0 + w[7, p] * g1 + w[11, p] * g2 + w[15, p] * g3
                    a[0, p] += g0 * x0
                    a[1, p] += g0 * x1
                    a[2, p] += g0 * x2
                    a[3, p] += g0 * x3
                    a[4, p] += g1 * x0
                    a[5, p] += g1 * x1
                    a[6, p] += g1 * x2
                    a[7, p] += g1 * x3
                    a[8, p] += g2 * x0
                    a[9, p] += g2 * x1
                    a[10, p] += g2 * x2
                    a[11, p] += g2 * x3
                    a[12, p] += g3 * x0
                    a[13, p] += g3 * x1
                    a[14, p] += g3 * x2
                    a[15, p] += g3 * x3


def _threads_for(rows: int, work: float) -> int:
    """Threads :func:`call_with_threads` gives a call (for sizing per-thread partial sums)."""
    from .._numba import PARALLEL_MIN_WORK
    return 1 if work < PARALLEL_MIN_WORK else max(1, min(rows, numba.get_num_threads()))


class _Headwise4(torch.autograd.Function):
    """:func:`headwise_linear` for blocks of 4 through the numba kernels: x ``(N, U)``, weights
    ``(P, 4, 4)`` each -> one ``(N, U)`` output per weight."""

    @staticmethod
    def forward(ctx, x, *weights):
        N, U = x.shape
        x = x.detach().contiguous()
        wv = torch.stack([w.detach().permute(1, 2, 0).reshape(16, -1) for w in weights])  # (M, 16, P)
        y = x.new_empty(len(weights), N, U)
        call_with_threads(_headwise4_forward, N, y.numel() * 4, x.numpy(), wv.numpy(), y.numpy())
        ctx.save_for_backward(x)
        ctx.wv = wv
        return tuple(y.unbind(0))

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads):
        (x,) = ctx.saved_tensors
        wv = ctx.wv
        N, U = x.shape
        M, _, P = wv.shape
        gy = torch.stack(grads)  # (M, N, U)
        work = 8 * gy.numel()
        parts = x.new_empty(_threads_for(N, work), M, 16, P)
        gx = torch.empty_like(x)
        call_with_threads(_headwise4_backward, N, work, gy.numpy(), x.numpy(), wv.numpy(), gx.numpy(),
                          parts.numpy())
        gw = parts.sum(0).reshape(M, 4, 4, P).permute(0, 3, 1, 2)  # (M, P, DH_out, DH_in)
        return (gx, *gw.unbind(0))


def headwise_linear(x: torch.Tensor, *weights: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Block-diagonal maps of one input: x ``(..., NH * DH)``, each weight ``(NH, DH_out, DH_in)``
    (:class:`LinearHeadwise`) -> a tuple of outputs ``(..., NH * DH)``, one per weight (no bias).

    The q and k projections of the mLSTM block read the same input: one call reads it once. CPU
    float32/64 with blocks of 4 and at least :data:`KERNEL_MIN_ROWS` rows run the numba kernels
    (:class:`_Headwise4`); the rest (a generation step, other devices) the einsum.
    """
    NH, DH, _ = weights[0].shape
    rows = x.numel() // max(1, x.shape[-1])
    if DH == 4 and rows >= KERNEL_MIN_ROWS and x.shape[-1] == NH * DH and _use_kernels(x, *weights):
        lead = x.shape[:-1]
        ys = _Headwise4.apply(x.reshape(-1, NH * DH), *weights)  # (N, U) each
        return tuple(y.reshape(*lead, NH * DH) for y in ys)
    x_heads = x.reshape(*x.shape[:-1], NH, -1)  # (..., NH, DH_in)
    return tuple(torch.einsum("...hi,hoi->...ho", x_heads, w).reshape(x.shape)  # (..., NH * DH_out)
                 for w in weights)


@njit(cache=True, parallel=True)
def _causal_conv_forward(x_padded, weight_t, bias, y):
    """``y[b, t, f] = bias[f] + sum_j weight_t[j, f] x_padded[b, t + j, f]``: x_padded
    ``(B, K - 1 + S, F)``, weight_t ``(K, F)``, y ``(B, S, F)``; rows ``(b, t)`` in parallel."""
    B, S, F = y.shape
    K = weight_t.shape[0]
    for r in prange(B * S):
        b, t = r // S, r % S
        yr = y[b, t]
        yr[:] = bias
        for j in range(K):
            xr, wr = x_padded[b, t + j], weight_t[j]
            for f in range(F):
                yr[f] += wr[f] * xr[f]


@njit(cache=True, parallel=True)
def _causal_conv_backward(gy, x_padded, weight_t, gx_padded, gw_parts):
    """Backward of :func:`_causal_conv_forward`: ``gx_padded`` and, per batch row, the gradients of
    ``weight_t`` (rows ``0 .. K-1`` of ``gw_parts (B, K + 1, F)``) and of the bias (row ``K``)."""
    B, S, F = gy.shape
    K = weight_t.shape[0]
    for b in prange(B):
        acc, gxb = gw_parts[b], gx_padded[b]
        acc[:] = 0
        gxb[:] = 0
        for t in range(S):
            g = gy[b, t]
            for f in range(F):
                acc[K, f] += g[f]
            for j in range(K):
                xr, gr, wr, ar = x_padded[b, t + j], gxb[t + j], weight_t[j], acc[j]
                for f in range(F):
                    gr[f] += wr[f] * g[f]
                    ar[f] += g[f] * xr[f]


class _CausalConv(torch.autograd.Function):
    """Depthwise causal convolution through the numba kernels: x_padded ``(B, K - 1 + S, F)``,
    weight ``(F, K)``, bias ``(F,)`` or ``None`` -> ``(B, S, F)``."""

    @staticmethod
    def forward(ctx, x_padded, weight, bias):
        B, SP, F = x_padded.shape
        K = weight.shape[1]
        weight_t = weight.detach().t().contiguous()  # (K, F)
        b = bias.detach() if bias is not None else weight_t.new_zeros(F)
        x_padded = x_padded.contiguous()
        y = x_padded.new_empty(B, SP - K + 1, F)
        call_with_threads(_causal_conv_forward, B * (SP - K + 1), y.numel() * K, x_padded.numpy(),
                          weight_t.numpy(), b.numpy(), y.numpy())
        ctx.save_for_backward(x_padded, weight_t)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x_padded, weight_t = ctx.saved_tensors
        B, S, F = gy.shape
        K = weight_t.shape[0]
        gx = torch.empty_like(x_padded)
        parts = gx.new_empty(B, K + 1, F)
        call_with_threads(_causal_conv_backward, B, 2 * gy.numel() * K, _np(gy), x_padded.numpy(),
                          weight_t.numpy(), gx.numpy(), parts.numpy())
        total = parts.sum(0)  # (K + 1, F)
        return gx, total[:K].t(), total[K] if ctx.has_bias else None


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
        new_state = x_padded[:, x_padded.shape[1] - (self.kernel_size - 1):]  # (B, K - 1, F)
        if _use_kernels(x_padded, self.weight):
            return _CausalConv.apply(x_padded, self.weight, self.bias), new_state  # (B, S, F)
        # conv1d wants channels first: (B, F, K - 1 + S) -> (B, F, S); one group per feature
        y = F.conv1d(x_padded.transpose(1, 2), self.weight[:, None, :], self.bias,
                     groups=self.feature_dim)
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
        (y,) = headwise_linear(x, self.weight)  # (..., NH * DH_out)
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
    a group norm with one group per head). x ``(..., NH, DH)`` -> ``(..., NH, DH)``; ``heads_axis``
    says where the heads are when they are not next to ``DH`` (``1`` for the mLSTM's ``(B, NH, S, DH)``:
    no transpose before the norm)."""

    def forward(self, x: torch.Tensor, heads_axis: int = -2) -> torch.Tensor:
        if x.ndim < 2 or x.shape[heads_axis] * x.shape[-1] != self.ndim:
            raise ValueError(f"expected heads NH on axis {heads_axis} and DH last with NH * DH = "
                             f"{self.ndim}, got {tuple(x.shape)}")
        NH, DH = x.shape[heads_axis], x.shape[-1]
        # the group norm of the official layer, as a layer norm over each head's DH features (the same
        # arithmetic; torch's CPU layer norm is ~10x faster than its group norm), then the gain
        y = F.layer_norm(x, (DH,), None, None, self.eps)  # (..., DH)
        shape = [1] * x.ndim  # the gain (NH, DH) broadcast along every axis but the heads and DH
        shape[heads_axis], shape[-1] = NH, DH
        if self.weight is not None:
            y = y * self.gain.view(shape)
        return y + self.bias.view(shape) if self.bias is not None else y


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
