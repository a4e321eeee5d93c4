"""xLSTM blocks and block stacks (middle layer: built on the cells :mod:`xlstm_edu.mlstm` and
:mod:`xlstm_edu.slstm`; the language models in :mod:`xlstm_edu.models` build on these).

* :class:`mLSTMBlock`: pre up-projection block around the mLSTM (matrix memory);
* :class:`sLSTMBlock`: post up-projection block around the sLSTM (scalar memory, memory mixing);
* :class:`xLSTMBlockStack` with its flat :class:`xLSTMStackConfig`, and :func:`ratio_to_slstm_at`
  for the paper's xLSTM[a:b] notation;
* :mod:`~xlstm_edu.blocks.components`: convolution, headwise linear, norms, gated feed-forward;
* :mod:`~xlstm_edu.blocks.official`: load weights of the official ``xlstm`` stack (the official
  package itself is reached through :mod:`xlstm_edu.official`).

Every block and the stack run a whole sequence (``forward``) or one step (``step``) with a
constant-size state; both give the same outputs.
"""

from . import components, official
from .components import (
    CausalConv1d,
    GatedFeedForward,
    LayerNorm,
    LinearHeadwise,
    MultiHeadLayerNorm,
)
from .minrnn_block import MinRNNBlock, MinRNNBlockState
from .mlstm_block import mLSTMBlock, mLSTMBlockState
from .official import load_official_state_dict, official_to_ours
from .slstm_block import sLSTMBlock, sLSTMBlockState
from .stack import ratio_to_slstm_at, xLSTMBlockStack, xLSTMStackConfig

__all__ = [
    "CausalConv1d", "GatedFeedForward", "LayerNorm", "LinearHeadwise", "MultiHeadLayerNorm",
    "mLSTMBlock", "mLSTMBlockState", "MinRNNBlock", "MinRNNBlockState", "sLSTMBlock", "sLSTMBlockState",
    "xLSTMBlockStack", "xLSTMStackConfig", "ratio_to_slstm_at",
    "load_official_state_dict", "official_to_ours", "components", "official",
]
