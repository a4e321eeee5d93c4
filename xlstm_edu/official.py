"""The official NX-AI implementations behind the book's interfaces: the one place that imports them.

The packages ``xlstm`` and ``mlstm_kernels`` (version 2.0.6; installed with the test requirements,
not with ``xlstm_edu``) are the references the package is checked against. Each function imports them
when called, so this module imports without them; :func:`available` says whether they are there.

* :func:`vanilla_slstm`: the official sLSTM (vanilla torch backend) with ``xlstm_edu.slstm``'s
  ``(B, NH, S, DH)`` interface;
* :func:`mlstm_kernels`: the official mLSTM kernels that run on this device, by name, all with
  ``xlstm_edu.mlstm``'s ``(q, k, v, igate_preact, fgate_preact)`` interface;
* :func:`stack_config`, :func:`build_stack`: the official ``xLSTMBlockStack`` that matches one of our
  stack configs (its weights load into ours with :func:`xlstm_edu.blocks.load_official_state_dict`).
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import torch

#: The official mLSTM kernels compared with ours, by our name -> official kernel name. The CPU ones are
#: pure torch; the Triton kernel needs a GPU.
MLSTM_KERNELS = {
    "official recurrent (native_sequence)": "native_sequence__native",
    "official parallel (native_stablef_autograd)": "parallel--native_stablef_autograd",
    "official chunkwise (native_autograd)": "chunkwise--native_autograd",
    "official chunkwise (triton_xl_chunk)": "chunkwise--triton_xl_chunk",
}


def available(package: str = "both") -> bool:
    """Whether ``"xlstm"``, ``"mlstm_kernels"`` or ``"both"`` are installed."""
    names = ("xlstm", "mlstm_kernels") if package == "both" else (package,)
    return all(importlib.util.find_spec(name) is not None for name in names)


def vanilla_slstm(igate_preact, fgate_preact, zgate_preact, ogate_preact, R, *, grad: bool = False):
    """The official sLSTM (``xlstm`` package, vanilla torch backend) from a zero state.

    Same interface as :func:`xlstm_edu.slstm.recurrent`: gates ``(B, NH, S, DH)``, ``R`` of shape
    ``(NH, DH, 4, DH)``; returns ``h (B, NH, S, DH)``; numpy in gives numpy out. ``grad=True`` (torch
    tensors) keeps autograd on, so gradients flow back to the gates and ``R`` (the official backward:
    autograd through its Python loop).
    """
    from xlstm.blocks.slstm.src.vanilla import slstm_forward, slstm_pointwise_function_registry

    is_numpy = isinstance(igate_preact, np.ndarray)
    gates = [torch.as_tensor(g) for g in (igate_preact, fgate_preact, zgate_preact, ogate_preact)]
    R = torch.as_tensor(R)
    B, NH, S, DH = gates[0].shape
    kw = dict(dtype=gates[0].dtype, device=gates[0].device)
    x = torch.stack(gates, dim=0)  # (4, B, NH, S, DH)
    x = x.permute(3, 1, 0, 2, 4).reshape(S, B, 4 * NH * DH)  # (S, B, gate*head*dim): gate-major
    R_int = R.permute(0, 2, 3, 1).reshape(NH, 4 * DH, DH)  # (NH, gate*d_out, d_in)
    states = torch.zeros(4, B, NH * DH, **kw)  # (h, c, n, m), all zero: the official zero state
    b = torch.zeros(4 * NH * DH, **kw)  # the bias is already inside the pre-activations
    with torch.set_grad_enabled(grad and not is_numpy):
        all_states, _, _ = slstm_forward(x, states, R_int, b,
                                         slstm_pointwise_function_registry["slstm"])
    h = all_states[0, 1:].reshape(S, B, NH, DH).permute(1, 2, 0, 3)  # (B, NH, S, DH)
    return h.numpy() if is_numpy else h


def mlstm_kernels(device: str = "cpu", chunk_size: int = 64) -> dict:
    """``{name: fn(q, k, v, igate_preact, fgate_preact) -> h}`` for the official kernels that run on
    ``device`` (:data:`MLSTM_KERNELS`; Triton only off the CPU and where it imports). ``{}`` without
    ``mlstm_kernels``. The recurrent kernel keeps its state in the input dtype (its default would
    truncate float64)."""
    if not available("mlstm_kernels"):
        return {}
    from mlstm_kernels.torch import get_mlstm_kernel, get_mlstm_sequence_kernel

    sequence = get_mlstm_sequence_kernel(MLSTM_KERNELS["official recurrent (native_sequence)"])
    parallel = get_mlstm_kernel(MLSTM_KERNELS["official parallel (native_stablef_autograd)"])
    chunkwise = get_mlstm_kernel(MLSTM_KERNELS["official chunkwise (native_autograd)"])
    kernels = {
        "official recurrent (native_sequence)": lambda *a: sequence(*a, dtype_state=a[0].dtype),
        "official parallel (native_stablef_autograd)": parallel,
        "official chunkwise (native_autograd)": lambda *a: chunkwise(*a, chunk_size=chunk_size),
    }
    if torch.device(device).type != "cpu":
        try:
            triton = get_mlstm_kernel(MLSTM_KERNELS["official chunkwise (triton_xl_chunk)"])
            kernels["official chunkwise (triton_xl_chunk)"] = (
                lambda *a: triton(*a, chunk_size=chunk_size))
        except Exception as err:  # no triton on this machine
            print(f"official triton kernel unavailable: {err}", file=sys.stderr)
    return kernels


def stack_config(config, slstm_backend: str = "vanilla"):
    """The official ``xlstm.xLSTMBlockStackConfig`` that builds the same stack as our ``config``
    (an :class:`xlstm_edu.blocks.xLSTMStackConfig`).

    ``slstm_backend="vanilla"`` runs on the CPU (any dtype); ``"cuda"`` needs a GPU and compiles a
    kernel. The official mLSTM layer always runs its pure-torch parallel form forward; its
    ``context_length`` (the size of its causal mask) must be at least the sequence length.
    """
    import xlstm

    c = config
    mlstm_block = slstm_block = None
    if c.num_mlstm_blocks:
        mlstm_block = xlstm.mLSTMBlockConfig(mlstm=xlstm.mLSTMLayerConfig(
            conv1d_kernel_size=c.conv1d_kernel_size, qkv_proj_blocksize=c.qkv_proj_blocksize,
            num_heads=c.mlstm_num_heads, proj_factor=c.mlstm_proj_factor,
            round_proj_up_to_multiple_of=c.round_proj_up_to_multiple_of))
    if c.slstm_at:
        slstm_block = xlstm.sLSTMBlockConfig(
            slstm=xlstm.sLSTMLayerConfig(backend=slstm_backend, num_heads=c.slstm_num_heads,
                                         conv1d_kernel_size=c.conv1d_kernel_size,
                                         bias_init="powerlaw_blockdependent"),
            feedforward=xlstm.FeedForwardConfig(
                proj_factor=c.ff_proj_factor, act_fn="gelu",
                round_proj_up_to_multiple_of=c.round_proj_up_to_multiple_of))
    return xlstm.xLSTMBlockStackConfig(
        mlstm_block=mlstm_block, slstm_block=slstm_block, context_length=c.context_length,
        num_blocks=c.num_blocks, embedding_dim=c.embedding_dim,
        add_post_blocks_norm=c.add_post_blocks_norm, bias=c.bias, dropout=c.dropout,
        slstm_at=list(c.slstm_at))


def build_stack(config, dtype=torch.float32, slstm_backend: str = "vanilla"):
    """The official ``xlstm.xLSTMBlockStack`` for our stack ``config``, in ``dtype``."""
    import xlstm

    return xlstm.xLSTMBlockStack(stack_config(config, slstm_backend)).to(dtype)
