"""mLSTM: matrix memory with the covariance update rule, in three equal forms.

* :func:`recurrent`: one step at a time, constant memory (generation);
* :func:`parallel`: all steps at once with a decay matrix, ``S^2`` memory (short sequences);
* :func:`chunkwise`: chunks of ``L`` steps, linear in ``S``, matmul-rich (training).

All three take ``q, k (B, NH, S, DHQK)``, ``v (B, NH, S, DHV)`` and gate pre-activations
``(B, NH, S)``, follow the official ``mlstm_kernels`` conventions and return ``h (B, NH, S, DHV)``.
"""

import torch

from ._validate import validate_step
from .chunkwise_form import chunkwise, chunkwise_numpy, chunkwise_torch
from .parallel_form import (
    log_decay_matrix,
    log_decay_matrix_cumsum_difference,
    parallel,
    parallel_numpy,
    parallel_torch,
)
from .recurrent_form import (
    recurrent,
    recurrent_numpy,
    recurrent_torch,
    step_numpy,
    step_torch,
    zero_state,
)

__all__ = [
    "recurrent", "parallel", "chunkwise", "step", "zero_state",
    "recurrent_numpy", "recurrent_torch", "parallel_numpy", "parallel_torch",
    "chunkwise_numpy", "chunkwise_torch", "step_numpy", "step_torch",
    "log_decay_matrix", "log_decay_matrix_cumsum_difference",
]


def step(c_state, n_state, m_state, q, k, v, igate_preact, fgate_preact, *, eps=1e-6):
    """One recurrent step: q, k ``(B, NH, DHQK)``, v ``(B, NH, DHV)``, gates ``(B, NH)``.

    Returns ``h (B, NH, DHV), (c_state, n_state, m_state)``; torch or numpy like the inputs. The
    state comes from :func:`zero_state` (or a form's ``return_state``); ``zero_state(..., empty=True)``
    (``m_state = -inf``) is the empty state the blocks use.
    """
    validate_step(c_state, n_state, m_state, q, k, v, igate_preact, fgate_preact)
    if isinstance(q, torch.Tensor):
        return step_torch(c_state, n_state, m_state, q, k, v, igate_preact, fgate_preact, eps)
    return step_numpy(c_state, n_state, m_state, q, k, v, igate_preact, fgate_preact, eps)
