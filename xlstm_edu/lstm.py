"""The classic LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

``torch.nn.LSTM`` convention, gate order i, f, g, o::

    [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g)        (the constant error carousel)
    h_t = sigmoid(o) tanh(c_t)

x ``(B, S, D_in)``, W_ih ``(4H, D_in)``, W_hh ``(4H, H)``, biases ``(4H,)``; h ``(B, S, H)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange
from torch import nn

from ._checks import backend_of, check_float, check_ndim, check_same_dtype, check_shape
from ._numba import call_with_threads
from .gating import sigmoid, sigmoid_scalar


def step_numpy(h, c, x_proj, W_hh):
    """One LSTM step. h, c ``(B, H)``; x_proj = ``W_ih x + b_ih + b_hh`` ``(B, 4H)``."""
    gates = x_proj + h @ W_hh.T  # (B, 4H)
    i, f, g, o = np.split(gates, 4, axis=-1)  # each (B, H)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    return h, (h, c)


def _project_input(x, W_ih, b_ih, b_hh):
    x_proj = x @ W_ih.T  # (B, S, 4H)
    if b_ih is not None:
        x_proj = x_proj + b_ih
    if b_hh is not None:
        x_proj = x_proj + b_hh
    return x_proj


def recurrent_numpy(x, W_ih, W_hh, b_ih=None, b_hh=None, initial_state=None):
    """Reference loop over :func:`step_numpy`. Returns ``h (B, S, H), (h, c)``."""
    B, S, _ = x.shape
    H = W_hh.shape[1]
    x_proj = _project_input(x, W_ih, b_ih, b_hh)
    state = initial_state if initial_state is not None else (
        np.zeros((B, H), x.dtype), np.zeros((B, H), x.dtype))
    out = np.empty((B, S, H), dtype=x.dtype)
    for t in range(S):
        out[:, t], state = step_numpy(*state, x_proj[:, t], W_hh)
    return out, state


@njit(cache=True, parallel=True)
def _recurrent_numba(x_proj, W_hh, h_state, c_state):
    """Compiled loop. x_proj ``(B, S, 4H)``, W_hh ``(4H, H)``, states ``(B, H)`` updated in place."""
    B, S, H4 = x_proj.shape
    H = H4 // 4
    out = np.empty((B, S, H), dtype=x_proj.dtype)
    for b in prange(B):
        h = h_state[b]
        c = c_state[b]
        gates = np.empty(H4, dtype=x_proj.dtype)
        for t in range(S):
            for r in range(H4):
                acc = x_proj[b, t, r]
                for j in range(H):
                    acc += W_hh[r, j] * h[j]
                gates[r] = acc
            for j in range(H):
                i = sigmoid_scalar(gates[j])
                f = sigmoid_scalar(gates[H + j])
                g = math.tanh(gates[2 * H + j])
                o = sigmoid_scalar(gates[3 * H + j])
                c[j] = f * c[j] + i * g
                h[j] = o * math.tanh(c[j])
                out[b, t, j] = h[j]
    return out


def step_torch(h, c, x_proj, W_hh):
    """One LSTM step in torch (differentiable). Shapes as :func:`step_numpy`."""
    i, f, g, o = (x_proj + h @ W_hh.T).chunk(4, dim=-1)  # each (B, H)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, (h, c)


def recurrent_torch(x, W_ih, W_hh, b_ih=None, b_hh=None, initial_state=None):
    """Loop over :func:`step_torch`. Returns ``h (B, S, H), (h, c)``."""
    B, S, _ = x.shape
    H = W_hh.shape[1]
    x_proj = _project_input(x, W_ih, b_ih, b_hh)  # all input projections in one matmul
    state = initial_state if initial_state is not None else (
        x.new_zeros(B, H), x.new_zeros(B, H))
    outs = []
    for t in range(S):
        h, state = step_torch(*state, x_proj[:, t], W_hh)
        outs.append(h)
    return torch.stack(outs, dim=1), state


def recurrent(x, W_ih, W_hh, b_ih=None, b_hh=None, *, initial_state=None, return_state=False):
    """Classic LSTM over a sequence (batch first).

    Args:
        x: ``(B, S, D_in)``; W_ih ``(4H, D_in)``; W_hh ``(4H, H)``; b_ih, b_hh ``(4H,)`` or None.
        initial_state: optional ``(h, c)``, each ``(B, H)``.

    Returns ``h (B, S, H)`` or ``(h, (h_last, c_last))``. Torch in gives torch out
    (differentiable); numpy in runs the compiled numba loop.
    """
    state = tuple(initial_state) if initial_state is not None else ()
    if initial_state is not None and len(state) != 2:
        raise ValueError(f"initial_state must be a tuple (h, c), got {len(state)} elements")
    state_names = dict(zip(("h_state", "c_state"), state))
    arrays = dict(x=x, W_ih=W_ih, W_hh=W_hh, b_ih=b_ih, b_hh=b_hh, **state_names)
    backend = backend_of(**arrays)
    check_ndim("x", x, 3, "(B, S, D_in)")
    B, S, D_in = x.shape
    if min(B, S, D_in) < 1:
        raise ValueError(f"x must have non-empty dimensions (B, S, D_in), got {tuple(x.shape)}")
    check_ndim("W_hh", W_hh, 2, "(4H, H)")
    H = W_hh.shape[1]
    check_shape("W_hh", W_hh, (4 * H, H), "(4H, H)")
    check_shape("W_ih", W_ih, (4 * H, D_in), "(4H, D_in)")
    for name in ("b_ih", "b_hh"):
        if arrays[name] is not None:
            check_shape(name, arrays[name], (4 * H,), "(4H,)")
    for name, s in state_names.items():
        check_shape(name, s, (B, H), "(B, H)")
    for name, a in arrays.items():
        if a is not None:
            check_float(name, a)
    check_same_dtype(**arrays)

    if backend == "torch":
        h, state = recurrent_torch(x, W_ih, W_hh, b_ih, b_hh, initial_state)
    else:
        x_proj = np.ascontiguousarray(_project_input(x, W_ih, b_ih, b_hh))
        if initial_state is None:
            hs, cs = np.zeros((B, H), x.dtype), np.zeros((B, H), x.dtype)
        else:
            hs, cs = (np.array(s, dtype=x.dtype, copy=True) for s in initial_state)
        h = call_with_threads(_recurrent_numba, B, B * S * 4 * H * H, x_proj,
                              np.ascontiguousarray(W_hh), hs, cs)
        state = (hs, cs)
    return (h, state) if return_state else h


class LSTM(nn.Module):
    """A single-layer, batch-first LSTM module with ``torch.nn.LSTM``'s parameter names.

    ``LSTM.from_torch(torch_lstm)`` copies the weights of a one-layer, unidirectional
    ``torch.nn.LSTM`` so that both give the same outputs.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        k = 1.0 / math.sqrt(hidden_size)  # torch.nn.LSTM's default init: U(-k, k)
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size).uniform_(-k, k))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size).uniform_(-k, k))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size).uniform_(-k, k))
            self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size).uniform_(-k, k))
        else:
            self.bias_ih = self.bias_hh = None

    @classmethod
    def from_torch(cls, lstm: nn.LSTM) -> LSTM:
        """The same weights as a one-layer, unidirectional, batch-first ``torch.nn.LSTM``.

        A ``batch_first=False`` module reads ``(S, B, D_in)``; ours reads ``(B, S, D_in)``, so the two
        would give different outputs on the same tensor: such a module is refused.
        """
        if not isinstance(lstm, nn.LSTM):
            raise ValueError(f"lstm must be a torch.nn.LSTM, got {type(lstm).__name__}")
        if lstm.num_layers != 1 or lstm.bidirectional or lstm.proj_size:
            raise ValueError("only one-layer, unidirectional torch.nn.LSTM without proj_size")
        if not lstm.batch_first:
            raise ValueError("lstm must be built with batch_first=True: xlstm_edu.lstm.LSTM reads "
                             "(B, S, D_in), a batch_first=False module reads (S, B, D_in)")
        module = cls(lstm.input_size, lstm.hidden_size, bias=lstm.bias)
        with torch.no_grad():
            module.weight_ih.copy_(lstm.weight_ih_l0)
            module.weight_hh.copy_(lstm.weight_hh_l0)
            if lstm.bias:
                module.bias_ih.copy_(lstm.bias_ih_l0)
                module.bias_hh.copy_(lstm.bias_hh_l0)
        return module.to(lstm.weight_ih_l0.device, lstm.weight_ih_l0.dtype)

    def forward(self, x, state=None):
        """x ``(B, S, input_size)`` -> ``h (B, S, hidden_size), (h_last, c_last)``."""
        return recurrent(x, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh,
                         initial_state=state, return_state=True)
