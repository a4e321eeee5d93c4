"""Multi-step forecasters: context ``(B, L)`` -> the next ``H`` values ``(B, H)`` at once.

Every forecaster is the same three parts: a linear input embedding of each value (1 -> E), a
sequence model over the ``L`` context steps, and a linear head from the state at the last step to
all ``H`` future values (a "direct" multi-step forecast: no feeding back of predictions). The
model sees the context relative to its last value and predicts the change from it (``y_hat = x_L +
head(...)``), so a series that trends out of the range of its training part (CO2) needs no
extrapolation of the input embedding. The sequence model is one of :data:`FORECASTER_KINDS`:

* ``"LSTM"``: ``torch.nn.LSTM`` with ``num_blocks`` layers;
* ``"xLSTM[a:b]"``: the package's block stack (:class:`~xlstm_edu.blocks.xLSTMBlockStack`) with
  mLSTM and sLSTM blocks in the ratio ``a:b`` (``"xLSTM[1:0]"`` mLSTM only, ``"xLSTM[0:1]"`` sLSTM
  only, ``"xLSTM[1:1]"`` alternating);
* ``"minLSTM"``: :func:`xlstm_edu.minrnn.minlstm` (Feng et al. 2024) with its gates and candidate
  projected from the input, ``num_blocks`` residual layers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .._checks import check_choice, check_float, check_int, check_ndim
from ..blocks.stack import ratio_to_slstm_at, xLSTMBlockStack, xLSTMStackConfig

FORECASTER_KINDS = ("LSTM", "xLSTM[1:0]", "xLSTM[0:1]", "xLSTM[1:1]", "minLSTM")


@dataclass
class ForecasterConfig:
    kind: str = "xLSTM[1:0]"  # one of FORECASTER_KINDS
    context_length: int = 48  # L: past values read
    horizon: int = 24  # H: future values predicted
    embedding_dim: int = 32  # E: width of the sequence model
    num_blocks: int = 1  # layers of the LSTM / minLSTM, blocks of the xLSTM stack
    num_heads: int = 4  # heads of the mLSTM and sLSTM cells

    def __post_init__(self):
        check_choice("ForecasterConfig.kind", self.kind, FORECASTER_KINDS)
        for name in ("context_length", "horizon", "embedding_dim", "num_blocks", "num_heads"):
            check_int(f"ForecasterConfig.{name}", getattr(self, name))
        if self.kind.startswith("xLSTM"):
            ratio_to_slstm_at(self.kind[6:-1], self.num_blocks)  # raises if the stack is too short

    def to_dict(self) -> dict:
        return asdict(self)


class _MinLSTMLayers(nn.Module):
    """``num_blocks`` residual layers ``x + minlstm(W_f x, W_i x, W_h x)``: (B, S, E) -> (B, S, E)."""

    def __init__(self, width: int, num_blocks: int):
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(width, 3 * width) for _ in range(num_blocks))
        with torch.no_grad():
            for proj in self.proj:
                proj.bias[:width].fill_(2.0)  # forget pre-activation: start by remembering
        self.norm = nn.LayerNorm(width)

    def forward(self, x):
        from ..minrnn import minlstm  # the cell (imported when first used)

        for proj in self.proj:
            k_f, k_i, k_h = proj(x).chunk(3, dim=-1)  # (B, S, E) each
            x = x + minlstm(k_f, k_i, k_h)
        return self.norm(x)


class Forecaster(nn.Module):
    """``x (B, L)`` scaled past values -> ``(B, H)`` scaled forecasts of the next ``H`` values."""

    def __init__(self, config: ForecasterConfig):
        super().__init__()
        if not isinstance(config, ForecasterConfig):
            raise ValueError(f"config must be a ForecasterConfig, got {type(config).__name__}")
        self.config = cfg = config
        E = cfg.embedding_dim
        self.embedding = nn.Linear(1, E)
        if cfg.kind == "LSTM":
            self.core = nn.LSTM(E, E, num_layers=cfg.num_blocks, batch_first=True)
        elif cfg.kind == "minLSTM":
            self.core = _MinLSTMLayers(E, cfg.num_blocks)
        else:
            self.core = xLSTMBlockStack(xLSTMStackConfig(
                embedding_dim=E, num_blocks=cfg.num_blocks,
                slstm_at=ratio_to_slstm_at(cfg.kind[6:-1], cfg.num_blocks),
                context_length=cfg.context_length, mlstm_num_heads=cfg.num_heads,
                slstm_num_heads=cfg.num_heads, round_proj_up_to_multiple_of=8,
                mlstm_backend="chunkwise", chunk_size=16))
        self.head = nn.Linear(E, cfg.horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_ndim("x", x, 2, "(B, L)")
        check_float("x", x)
        level = x[:, -1:]  # (B, 1): the last known value
        h = self.embedding((x - level).unsqueeze(-1))  # (B, L) -> (B, L, 1) -> (B, L, E)
        h = self.core(h)
        if isinstance(h, tuple):  # nn.LSTM returns (output, (h_n, c_n))
            h = h[0]
        return level + self.head(h[:, -1])  # the last step (B, E) -> (B, H), plus the level
