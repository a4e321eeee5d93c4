"""Load weights of the official NX-AI ``xlstm.xLSTMBlockStack`` (version 2.0.6) into ours.

Our blocks compute what the official blocks compute, with a flatter module tree (no layer / cell
nesting) and a few parameters stored in another layout. Name mapping, official -> ours, for block
``i`` (``(shape)`` where the layout changes; E model width, U mLSTM inner width, K conv taps,
NH/DH sLSTM heads and head size)::

    # every block
    blocks.i.xlstm_norm.weight                   -> blocks.i.norm.weight
    blocks.i.xlstm.conv1d.conv.weight (F, 1, K)  -> blocks.i.conv1d.weight (F, K)
    blocks.i.xlstm.conv1d.conv.bias              -> blocks.i.conv1d.bias
    # mLSTM block
    blocks.i.xlstm.proj_up.{weight,bias}         -> blocks.i.proj_up.{weight,bias}
    blocks.i.xlstm.{q,k,v}_proj.{weight,bias}    -> blocks.i.{q,k,v}_proj.{weight,bias}
    blocks.i.xlstm.mlstm_cell.igate.{weight,bias}-> blocks.i.igate.{weight,bias}
    blocks.i.xlstm.mlstm_cell.fgate.{weight,bias}-> blocks.i.fgate.{weight,bias}
    blocks.i.xlstm.mlstm_cell.outnorm.weight     -> blocks.i.outnorm.weight
    blocks.i.xlstm.learnable_skip                -> blocks.i.learnable_skip
    blocks.i.xlstm.proj_down.{weight,bias}       -> blocks.i.proj_down.{weight,bias}
    # sLSTM block
    blocks.i.xlstm.fgate.weight                  -> blocks.i.igate.weight   (sic, see below)
    blocks.i.xlstm.igate.weight                  -> blocks.i.fgate.weight   (sic)
    blocks.i.xlstm.{z,o}gate.weight              -> blocks.i.{z,o}gate.weight
    blocks.i.xlstm.slstm_cell._recurrent_kernel_ -> blocks.i.R (NH, DH, 4, DH)
        vanilla backend: (NH, 4 DH, DH) = [head, gate, d_out, d_in]
        cuda backend:    (NH, DH, 4 DH) = [head, d_in, gate, d_out]
    blocks.i.xlstm.slstm_cell._bias_ (4 NH DH)   -> blocks.i.b (NH, 4, DH)
        vanilla backend: flat [gate, head, d];   cuda backend: flat [head, gate, d]
    blocks.i.xlstm.group_norm.weight             -> blocks.i.outnorm.weight
    blocks.i.ffn_norm.weight                     -> blocks.i.ffn_norm.weight
    blocks.i.ffn.proj_{up,down}.weight           -> blocks.i.ffn.proj_{up,down}.weight
    # after the blocks
    post_blocks_norm.weight                      -> post_blocks_norm.weight

Two things to know:

* The official ``sLSTMLayer.forward`` feeds the output of its module named ``fgate`` into the
  *input* gate slot of the cell and ``igate`` into the forget slot
  (``i, f, z, o = fgate(x_conv), igate(x_conv), zgate(x), ogate(x)``). Both see the same input and
  have the same init, so the names are swapped but nothing else; we name ours by the slot they feed.
* The sLSTM backend is told apart by the shape of ``_recurrent_kernel_`` (``(NH, 4 DH, DH)``:
  vanilla, ``(NH, DH, 4 DH)``: cuda); the bias layout follows the same backend.

:func:`xlstm_edu.official.build_stack` builds the official stack that matches one of ours (for tests
and the book); this module itself never imports the official package.
"""

from __future__ import annotations

import torch

from .mlstm_block import mLSTMBlock
from .stack import xLSTMBlockStack

_COMMON = {"xlstm_norm.weight": "norm.weight", "xlstm.conv1d.conv.weight": "conv1d.weight",
           "xlstm.conv1d.conv.bias": "conv1d.bias"}
_MLSTM = {
    **{f"xlstm.{p}.{w}": f"{p}.{w}" for p in ("proj_up", "q_proj", "k_proj", "v_proj", "proj_down")
       for w in ("weight", "bias")},
    **{f"xlstm.mlstm_cell.{g}.{w}": f"{g}.{w}" for g in ("igate", "fgate") for w in ("weight", "bias")},
    "xlstm.mlstm_cell.outnorm.weight": "outnorm.weight",
    "xlstm.learnable_skip": "learnable_skip",
}
_SLSTM = {
    "xlstm.fgate.weight": "igate.weight",  # the official layer's swap, see the module docstring
    "xlstm.igate.weight": "fgate.weight",
    "xlstm.zgate.weight": "zgate.weight",
    "xlstm.ogate.weight": "ogate.weight",
    "xlstm.slstm_cell._recurrent_kernel_": "R",
    "xlstm.slstm_cell._bias_": "b",
    "xlstm.group_norm.weight": "outnorm.weight",
    "ffn_norm.weight": "ffn_norm.weight",
    "ffn.proj_up.weight": "ffn.proj_up.weight",
    "ffn.proj_down.weight": "ffn.proj_down.weight",
}


def _slstm_R_and_b(R_int: torch.Tensor, b_int: torch.Tensor, NH: int, DH: int):
    """Official internal sLSTM ``(R, b)`` -> ours ``R (NH, DH, 4, DH)``, ``b (NH, 4, DH)``."""
    if tuple(R_int.shape) == (NH, 4 * DH, DH):  # vanilla: [head, gate * d_out, d_in]
        R = R_int.reshape(NH, 4, DH, DH).permute(0, 3, 1, 2)  # -> [head, d_in, gate, d_out]
        b = b_int.reshape(4, NH, DH).permute(1, 0, 2)  # [gate, head, d] -> [head, gate, d]
    elif tuple(R_int.shape) == (NH, DH, 4 * DH):  # cuda: [head, d_in, gate * d_out]
        R = R_int.reshape(NH, DH, 4, DH)
        b = b_int.reshape(NH, 4, DH)
    else:
        raise ValueError(f"sLSTM _recurrent_kernel_ has shape {tuple(R_int.shape)}; expected "
                         f"{(NH, 4 * DH, DH)} (vanilla) or {(NH, DH, 4 * DH)} (cuda)")
    return R, b


def official_to_ours(official_state_dict: dict, stack: xLSTMBlockStack) -> dict:
    """Rename and reshape an official stack state dict into our ``stack``'s names (see the table).

    Raises ``ValueError`` listing the keys that are missing, unexpected, or of the wrong shape.
    """
    src = dict(official_state_dict)
    out, used = {}, set()

    def take(src_key: str, dst_key: str):
        if src_key in src:
            out[dst_key] = src[src_key]
            used.add(src_key)

    for i, block in enumerate(stack.blocks):
        table = {**_COMMON, **(_MLSTM if isinstance(block, mLSTMBlock) else _SLSTM)}
        for src_key, dst_key in table.items():
            take(f"blocks.{i}.{src_key}", f"blocks.{i}.{dst_key}")
        if f"blocks.{i}.conv1d.weight" in out:
            out[f"blocks.{i}.conv1d.weight"] = out[f"blocks.{i}.conv1d.weight"].squeeze(1)  # (F, K)
        if f"blocks.{i}.R" in out and f"blocks.{i}.b" in out:
            out[f"blocks.{i}.R"], out[f"blocks.{i}.b"] = _slstm_R_and_b(
                out[f"blocks.{i}.R"], out[f"blocks.{i}.b"], block.num_heads, block.head_dim)
    take("post_blocks_norm.weight", "post_blocks_norm.weight")

    ours = stack.state_dict()
    missing = sorted(set(ours) - set(out))
    unexpected = sorted(set(src) - used)
    wrong = [f"{k}: official {tuple(v.shape)} vs ours {tuple(ours[k].shape)}"
             for k, v in out.items() if k in ours and tuple(v.shape) != tuple(ours[k].shape)]
    if missing or unexpected or wrong:
        raise ValueError("official state dict does not fit this stack (check num_blocks, slstm_at, "
                         f"heads and widths): missing {missing}, unexpected {unexpected}, "
                         f"wrong shapes {wrong}")
    return out


def load_official_state_dict(stack: xLSTMBlockStack, official_state_dict: dict) -> xLSTMBlockStack:
    """Copy the weights of an official ``xlstm.xLSTMBlockStack`` (its ``state_dict()``) into ``stack``.

    The values are converted to our parameters' dtype and device. Returns ``stack``.
    """
    mapped = official_to_ours(official_state_dict, stack)
    ours = stack.state_dict()
    with torch.no_grad():
        for key, value in mapped.items():
            ours[key].copy_(value)
    return stack
