"""Experiments of the chapter "The classic LSTM": vanishing gradients in a tanh RNN vs an LSTM, timings.

The central measurement is :func:`input_gradient_norms`: how strongly the output at the *last* step
of a sequence depends on the input ``d`` steps earlier, ``||d ell_S / d x_{S-1-d}||``. In a tanh RNN
this falls off exponentially with ``d``; in an LSTM the cell state ``c_t = f_t c_{t-1} + i_t g_t``
(the constant error carousel) passes the gradient back multiplied by the forget gate ``f_t`` per
step, so with forget gates near 1 it decays much more slowly. The control :class:`CarouselOnlyLSTM`
cuts every other path (``h_{t-1}`` detached from the gates), and :func:`carousel_norm_prediction`
predicts what is left from the forget gates alone.

:func:`time_lstm_paths` times the implementations and the parts of the numba path side by side, so
that the chapter can show where the time goes; :func:`lstm_multiply_adds` counts their work.

Models are batch-first and return ``(out (B, S, H), state)``: ``torch.nn.RNN``, ``torch.nn.LSTM``
and :class:`xlstm_edu.lstm.LSTM` all qualify.
"""

from __future__ import annotations

import functools
import warnings
from collections import Counter
from collections.abc import Callable, Sequence

import numba
import numpy as np
import torch
from torch import nn

from .._numba import call_with_threads
from ..lstm import (
    LSTM,
    _project_input,
    _recurrent_numba,
    recurrent,
    recurrent_numpy,
    recurrent_torch,
    step_torch,
)
from ..models import count_parameters  # noqa: F401  (the chapter counts its models' parameters)
from ..timing import interleaved_medians

__all__ = [
    "run_all_implementations",
    "make_rnn",
    "spectral_radius",
    "make_lstm",
    "CarouselOnlyLSTM",
    "set_forget_bias",
    "count_parameters",
    "input_gradient_norms",
    "gradient_norm_curves",
    "decay_per_step",
    "forget_gate_activations",
    "unit_forget_gates",
    "carousel_norm_prediction",
    "curve_summary",
    "time_lstm_paths",
    "lstm_multiply_adds",
    "torch_lstm_ops",
]


def run_all_implementations(torch_lstm: nn.LSTM, x: torch.Tensor) -> dict[str, tuple[np.ndarray, ...]]:
    """Run one ``torch.nn.LSTM``'s weights through all four implementations, from the zero state.

    x ``(B, S, D_in)`` (torch, the dtype of ``torch_lstm``). Returns ``{name: (h, h_last, c_last)}``
    as numpy arrays, h ``(B, S, H)``, h_last and c_last ``(B, H)``, for the names
    ``"numpy reference"``, ``"numba"``, ``"torch loop (ours)"`` and ``"torch.nn.LSTM"``.
    ``torch_lstm`` must be batch-first and have biases.
    """
    if not (torch_lstm.batch_first and torch_lstm.bias):
        raise ValueError("torch_lstm must be built with batch_first=True and bias=True")
    ours = LSTM.from_torch(torch_lstm)  # same weights, our differentiable torch loop
    weights = [p.detach().numpy() for p in (ours.weight_ih, ours.weight_hh, ours.bias_ih, ours.bias_hh)]
    x_np = x.numpy()
    h_ref, (h_ref_last, c_ref_last) = recurrent_numpy(x_np, *weights)  # plain numpy loop
    h_nb, (h_nb_last, c_nb_last) = recurrent(x_np, *weights, return_state=True)  # numba kernel
    with torch.no_grad():
        h_ours, (h_ours_last, c_ours_last) = ours(x)  # torch loop over step_torch
        h_pt, (h_pt_last, c_pt_last) = torch_lstm(x)  # PyTorch's kernel; states (1, B, H)
    return {
        "numpy reference": (h_ref, h_ref_last, c_ref_last),
        "numba": (h_nb, h_nb_last, c_nb_last),
        "torch loop (ours)": (h_ours.numpy(), h_ours_last.numpy(), c_ours_last.numpy()),
        "torch.nn.LSTM": (h_pt.numpy(), h_pt_last[0].numpy(), c_pt_last[0].numpy()),
    }


def spectral_radius(W: torch.Tensor) -> float:
    """The largest absolute eigenvalue of a square matrix."""
    return float(torch.linalg.eigvals(W.detach()).abs().max())


_spectral_radius = spectral_radius  # make_rnn's argument of the same name hides the function


def make_rnn(input_size: int, hidden_size: int, *, seed: int, spectral_radius: float | None = None,
             dtype=torch.float64) -> nn.RNN:
    """A one-layer, batch-first tanh RNN with torch's default initialization, seeded.

    With ``spectral_radius`` given, the recurrent matrix ``W_hh`` is rescaled to that spectral radius
    (torch's default ``U(-k, k)``, ``k = 1/sqrt(hidden_size)``, gives about ``1/sqrt(3)``).
    """
    torch.manual_seed(seed)
    rnn = nn.RNN(input_size, hidden_size, nonlinearity="tanh", batch_first=True).to(dtype)
    if spectral_radius is not None:
        with torch.no_grad():
            W = rnn.weight_hh_l0  # (H, H)
            W.mul_(spectral_radius / _spectral_radius(W))
    return rnn


def set_forget_bias(lstm: nn.Module, value: float) -> None:
    """Set the forget-gate bias of an LSTM (ours or ``torch.nn.LSTM``) to ``value``.

    The forget gate is the second of the four gate blocks (order i, f, g, o). Its total bias is
    ``b_ih + b_hh``; we put ``value`` in ``b_ih`` and zero in ``b_hh``.
    """
    if isinstance(lstm, nn.LSTM):
        b_ih, b_hh = lstm.bias_ih_l0, lstm.bias_hh_l0
    else:
        b_ih, b_hh = lstm.bias_ih, lstm.bias_hh
    if b_ih is None:
        raise ValueError("the LSTM has no bias")
    H = lstm.hidden_size
    with torch.no_grad():
        b_ih[H:2 * H] = value
        b_hh[H:2 * H] = 0.0


class CarouselOnlyLSTM(LSTM):
    """Our :class:`~xlstm_edu.lstm.LSTM` with ``h_{t-1}`` detached from the gate pre-activations.

    The forward pass gives the same numbers (it runs the same :func:`~xlstm_edu.lstm.step_torch`), but
    backpropagation can reach an earlier step only along the cell state ``c_t = f_t c_{t-1} + i_t g_t``:
    the constant error carousel alone, as in the truncated gradient of Hochreiter & Schmidhuber (1997).
    The control of the chapter's experiment: what is left when the paths through ``h_{t-1}`` are cut.
    """

    def forward(self, x, state=None):
        """x ``(B, S, input_size)`` -> ``h (B, S, hidden_size), (h_last, c_last)``."""
        B, S, _ = x.shape
        x_proj = _project_input(x, self.weight_ih, self.bias_ih, self.bias_hh)  # (B, S, 4H)
        h, c = state if state is not None else (x.new_zeros(B, self.hidden_size),) * 2
        outs = []
        for t in range(S):
            # the gates see h_{t-1} but pass no gradient into it; c_{t-1} keeps its gradient
            h, (_, c) = step_torch(h.detach(), c, x_proj[:, t], self.weight_hh)
            outs.append(h)
        return torch.stack(outs, dim=1), (h, c)


def make_lstm(input_size: int, hidden_size: int, *, seed: int, forget_bias: float | None = None,
              carousel_only: bool = False, dtype=torch.float64) -> LSTM:
    """Our :class:`xlstm_edu.lstm.LSTM` (torch's default init, seeded), optionally with a forget bias.

    ``forget_bias=None`` keeps the default init, where the forget-gate biases are small (``U(-k, k)``
    with ``k = 1/sqrt(hidden_size)``, twice), so the forget gates start near ``sigmoid(0) = 0.5``.
    ``carousel_only=True`` builds the same weights as a :class:`CarouselOnlyLSTM` (the gradient flows
    back along the cell state only).
    """
    torch.manual_seed(seed)
    model = (CarouselOnlyLSTM if carousel_only else LSTM)(input_size, hidden_size).to(dtype)
    if forget_bias is not None:
        set_forget_bias(model, forget_bias)
    return model


def _param_dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def input_gradient_norms(model: nn.Module, S: int, *, batch_size: int = 16, seed: int = 0) -> np.ndarray:
    """Norms of the gradient of the last step's output with respect to every input.

    Feeds ``x ~ N(0, 1)`` of shape ``(batch_size, S, model.input_size)`` from the zero state, takes
    the loss ``ell_b = u . h_{b, S-1}`` with a fixed random unit vector ``u`` (a linear read-out of the
    last hidden state; the samples of the batch do not interact, so one backward pass gives every
    sample's gradient) and returns

        ``norms[d] = mean_b || d ell_b / dx_{b, S-1-d} ||``,   ``d = 0 .. S-1``,

    i.e. indexed by the *distance* ``d`` from the last step (``d = 0`` is the last input itself).
    Shape ``(S,)``, numpy float64.
    """
    if S < 1 or batch_size < 1:
        raise ValueError(f"S and batch_size must be positive, got S={S}, batch_size={batch_size}")
    dtype = _param_dtype(model)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, S, model.input_size, generator=g, dtype=torch.float64)
    x = x.to(dtype).requires_grad_(True)  # (B, S, D_in)
    out, _ = model(x)  # (B, S, H)
    u = torch.randn(out.shape[-1], generator=g, dtype=torch.float64).to(dtype)
    u = u / u.norm()
    (out[:, -1] @ u).sum().backward()
    norms = x.grad.detach().to(torch.float64).norm(dim=-1).mean(dim=0)  # (S,), indexed by t
    return norms.flip(0).numpy()  # indexed by d = S-1-t


def gradient_norm_curves(make_model: Callable[[int], nn.Module], S: int, seeds: Sequence[int], *,
                         batch_size: int = 16) -> np.ndarray:
    """:func:`input_gradient_norms` for one freshly built model per seed: ``(len(seeds), S)``.

    ``make_model(seed)`` builds the model; the same seed also draws the inputs.
    """
    return np.stack([input_gradient_norms(make_model(s), S, batch_size=batch_size, seed=s)
                     for s in seeds])


def decay_per_step(norms: np.ndarray, start: int, stop: int) -> float:
    """The factor by which ``norms`` shrinks per step on ``d in [start, stop)``.

    A least-squares line through ``log norms[d]``; returns ``exp(slope)``. A value of 0.5 means the
    gradient halves with every step further back; 1.0 means it does not decay. For a 2-D array
    (seeds, S) the line is fitted to the mean of the logs (the geometric mean over seeds).
    """
    norms = np.asarray(norms, dtype=np.float64)
    if norms.ndim == 2:
        log_norms = np.log(norms).mean(axis=0)
    elif norms.ndim == 1:
        log_norms = np.log(norms)
    else:
        raise ValueError(f"norms must be (S,) or (seeds, S), got shape {norms.shape}")
    if not 0 <= start < stop - 1 < log_norms.shape[0]:
        raise ValueError(f"need 0 <= start < stop - 1 < S, got start={start}, stop={stop}")
    d = np.arange(start, stop)
    slope = np.polyfit(d, log_norms[start:stop], 1)[0]
    return float(np.exp(slope))


@torch.no_grad()
def forget_gate_activations(lstm: LSTM, S: int, *, batch_size: int = 16, seed: int = 0) -> np.ndarray:
    """The forget gates ``f_t = sigmoid(f~_t)`` that :func:`input_gradient_norms` meets, ``(B, S, H)``.

    Runs our LSTM on the same inputs (same seed) and recomputes the forget-gate block (the second of
    i, f, g, o) of the pre-activations ``W_ih x_t + b_ih + W_hh h_{t-1} + b_hh`` from its outputs.
    """
    g = torch.Generator().manual_seed(seed)
    dtype = _param_dtype(lstm)
    x = torch.randn(batch_size, S, lstm.input_size, generator=g, dtype=torch.float64).to(dtype)
    h, _ = lstm(x)  # (B, S, H)
    h_prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)  # (B, S, H): h_{t-1}
    preact = x @ lstm.weight_ih.T + h_prev @ lstm.weight_hh.T  # (B, S, 4H)
    if lstm.bias_ih is not None:
        preact = preact + lstm.bias_ih + lstm.bias_hh
    H = lstm.hidden_size
    return torch.sigmoid(preact[..., H:2 * H]).numpy()


def curve_summary(curves) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per distance ``d``: the geometric mean over seeds of ``curves (seeds, S)`` (the mean of the
    logs, as in :func:`decay_per_step`) and the smallest and largest value. Three arrays ``(S,)``."""
    c = np.asarray(curves, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"curves must be (seeds, S), got shape {c.shape}")
    return np.exp(np.log(c).mean(axis=0)), c.min(axis=0), c.max(axis=0)


def unit_forget_gates(forget_gates: np.ndarray) -> np.ndarray:
    """Each unit's typical forget gate: the geometric mean of ``forget_gates (B, S, H)`` (e.g. from
    :func:`forget_gate_activations`) over the batch and the steps, ``(H,)``.

    Along the carousel, unit ``j`` passes a gradient ``d`` steps back multiplied by the product of its
    ``d`` forget gates, which is about ``phi_j ** d`` for this ``phi_j``.
    """
    f = np.asarray(forget_gates, dtype=np.float64)
    if f.ndim != 3:
        raise ValueError(f"forget_gates must be (B, S, H), got shape {f.shape}")
    return np.exp(np.log(f).mean(axis=(0, 1)))


def carousel_norm_prediction(unit_gates: np.ndarray, S: int) -> np.ndarray:
    """The gradient-norm curve that the carousel alone predicts from each unit's forget gate, ``(S,)``.

    With unit ``j`` shrinking the gradient by ``phi_j = unit_gates[j]`` per step and the units weighted
    equally, the norm at distance ``d`` is ``sqrt(mean_j phi_j ** (2 d))`` (1 at ``d = 0``). For
    large ``d`` the largest ``phi_j`` dominates the sum, so the curve decays more slowly than the mean
    gate would suggest. Feed it (per seed) to :func:`decay_per_step`.
    """
    phi = np.asarray(unit_gates, dtype=np.float64)
    if phi.ndim != 1 or not np.all((phi > 0) & (phi <= 1)):
        raise ValueError(f"unit_gates must be (H,) with values in (0, 1], got shape {phi.shape}")
    d = np.arange(S)[:, None]  # (S, 1)
    return np.sqrt(np.mean(phi[None, :] ** (2 * d), axis=1))


@functools.cache
def _numba_kernel_fastmath():
    """The package's compiled loop :func:`~xlstm_edu.lstm._recurrent_numba`, the same source compiled
    with ``fastmath=True``: LLVM may then reorder the additions of each dot product and vectorize it."""
    return numba.njit(fastmath=True, parallel=True)(_recurrent_numba.py_func)


def lstm_multiply_adds(B: int, S: int, D_in: int, H: int) -> dict[str, int]:
    """Multiply-adds of one LSTM forward pass in its matrix products (elementwise work not counted):
    ``"input projection"`` ``B S 4H D_in`` (``W_ih x_t`` for all steps) and ``"recurrence"``
    ``B S 4H H`` (``W_hh h_{t-1}``, one step after the other)."""
    return {"input projection": B * S * 4 * H * D_in, "recurrence": B * S * 4 * H * H}


def time_lstm_paths(B: int = 8, S: int = 256, D_in: int = 32, H: int = 64, *, repeat: int = 7,
                    rounds: int = 3, dtype=torch.float32, seed: int = 0) -> dict[str, float]:
    """Median forward times (seconds, no gradients) of the LSTM implementations and of the parts of the
    numba path, same weights, timed side by side in ``rounds`` interleaved rounds of ``repeat`` calls
    (:func:`xlstm_edu.timing.interleaved_medians`).

    Keys: ``"numpy reference loop"`` (:func:`~xlstm_edu.lstm.recurrent_numpy`), ``"torch loop"``
    (:func:`~xlstm_edu.lstm.recurrent_torch`), ``"numba"`` (:func:`~xlstm_edu.lstm.recurrent` on numpy
    arrays), its two parts ``"numba: input projection"`` (the one numpy matmul before the loop) and
    ``"numba: compiled loop"`` (the kernel alone), ``"numba loop, fastmath"`` (the same kernel source
    compiled with ``fastmath=True``), ``"torch.nn.LSTM, oneDNN off"`` (PyTorch's own C++ loop, with
    ``torch.backends.mkldnn`` disabled) and ``"torch.nn.LSTM"`` (which on a CPU in float32 hands the
    sequence to oneDNN's LSTM where PyTorch is built with it). Multiply-adds: :func:`lstm_multiply_adds`.
    """
    torch.manual_seed(seed)
    ref = nn.LSTM(D_in, H, batch_first=True).to(dtype)
    weights_t = (ref.weight_ih_l0.detach(), ref.weight_hh_l0.detach(),
                 ref.bias_ih_l0.detach(), ref.bias_hh_l0.detach())
    weights_n = tuple(w.numpy() for w in weights_t)
    W_ih, W_hh, b_ih, b_hh = weights_n
    x_t = torch.randn(B, S, D_in, dtype=dtype)  # (B, S, D_in)
    x_n = x_t.numpy()
    x_proj = np.ascontiguousarray(_project_input(x_n, W_ih, b_ih, b_hh))  # (B, S, 4H)
    fastmath = _numba_kernel_fastmath()

    def run_kernel(kernel):
        hs, cs = np.zeros((B, H), x_n.dtype), np.zeros((B, H), x_n.dtype)
        return call_with_threads(kernel, B, B * S * 4 * H * H, x_proj, W_hh, hs, cs)

    def run_ref():
        with torch.no_grad():
            return ref(x_t)

    def run_ref_aten():
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # some versions warn about TF32 when the flags change
            with torch.backends.mkldnn.flags(enabled=False):
                return ref(x_t)

    def run_torch_loop():
        with torch.no_grad():
            return recurrent_torch(x_t, *weights_t)

    return interleaved_medians({
        "numpy reference loop": lambda: recurrent_numpy(x_n, *weights_n),
        "torch loop": run_torch_loop,
        "numba": lambda: recurrent(x_n, *weights_n),
        "numba: input projection": lambda: _project_input(x_n, W_ih, b_ih, b_hh),
        "numba: compiled loop": lambda: run_kernel(_recurrent_numba),
        "numba loop, fastmath": lambda: run_kernel(fastmath),
        "torch.nn.LSTM, oneDNN off": run_ref_aten,
        "torch.nn.LSTM": run_ref,
    }, rounds=rounds, repeats=repeat)


def torch_lstm_ops(B: int, S: int, D_in: int, H: int, *, onednn: bool = True,
                   dtype=torch.float32) -> Counter:
    """``Counter({op name: calls})`` of the aten operators one forward pass of ``torch.nn.LSTM`` runs
    (``torch.profiler``, nested calls included), with ``torch.backends.mkldnn`` enabled or not."""
    torch.manual_seed(0)
    ref = nn.LSTM(D_in, H, batch_first=True).to(dtype)
    x = torch.randn(B, S, D_in, dtype=dtype)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.backends.mkldnn.flags(enabled=onednn):
            ref(x)  # warm-up outside the profile
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                ref(x)
    return Counter({e.key: e.count for e in prof.key_averages() if e.key.startswith("aten::")})
