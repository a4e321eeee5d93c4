"""xlstm_edu: the companion package of the book "Learning xLSTM".

The layers, bottom up (a layer imports only the layers below it)::

    cells: gating, lstm, slstm, mlstm    <-  blocks  <-  models  <-  training, data  <-  cli
    beside them: timing (time and memory) <- bench; official (the NX-AI reference packages);
                 experiments (chapter computations: data in, data out) <- figures (all matplotlib),
                 widgets (explorers); results (the stored results the chapters load)

Each cell has a numpy reference, a numba CPU path and a differentiable, device-agnostic torch path;
numpy in gives numpy out, torch in gives torch out. ``import xlstm_edu`` loads the cells, blocks and
models only (torch, numpy, numba, tqdm); everything else is imported when used.
"""

__version__ = "0.1.0"

from . import blocks, gating, lstm, mlstm, models, slstm  # noqa: E402
from .notebook import show_source  # noqa: E402

__all__ = ["blocks", "gating", "lstm", "mlstm", "models", "slstm", "show_source", "__version__"]
