"""xlstm_edu: the companion package of the book "Learning xLSTM".

Cells (bottom layer): :mod:`~xlstm_edu.lstm`, :mod:`~xlstm_edu.gating`, :mod:`~xlstm_edu.slstm`,
:mod:`~xlstm_edu.mlstm`. Each cell has a numpy reference, a numba CPU path and a differentiable,
device-agnostic torch path; numpy in gives numpy out, torch in gives torch out.
Blocks (middle layer): :mod:`~xlstm_edu.blocks`; language models (top layer): :mod:`~xlstm_edu.models`.
"""

from . import blocks, gating, lstm, mlstm, models, slstm
from .notebook import show_source  # noqa: F401

__version__ = "0.1.0"
__all__ = ["blocks", "gating", "lstm", "mlstm", "models", "slstm", "show_source", "__version__"]
