"""Input validation, one helper per kind of check, called at the boundary of every public function.

Bad input fails here, before any work is done, with a ``ValueError`` that names the argument and
says what was expected; nothing is silently broadcast, cast or clipped.

* arrays (cells): :func:`backend_of`, :func:`check_float`, :func:`check_shape`, :func:`check_ndim`,
  :func:`check_same_dtype`;
* scalars (configs, options): :func:`check_int`, :func:`check_number`, :func:`check_bool`,
  :func:`check_choice`;
* token ids (models): :func:`check_tokens`;
* recurrent states (blocks, models): :func:`check_batch`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

#: Set to ``False`` to skip the NaN/inf scan of inputs (it costs one pass over the data and, on a GPU,
#: one host synchronisation per call).
CHECK_FINITE = True


# --- arrays ---------------------------------------------------------------------------------------

def backend_of(**arrays) -> str:
    """Return ``"torch"`` or ``"numpy"`` for the given (non-``None``) arrays; reject mixtures."""
    kinds = {}
    for name, a in arrays.items():
        if a is None:
            continue
        if isinstance(a, torch.Tensor):
            kinds.setdefault("torch", name)
        elif isinstance(a, np.ndarray):
            kinds.setdefault("numpy", name)
        else:
            raise ValueError(
                f"{name} must be a numpy array or a torch tensor, got {type(a).__name__}"
            )
    if len(kinds) > 1:
        raise ValueError(
            "mixed numpy arrays and torch tensors: "
            f"{kinds['numpy']} is a numpy array but {kinds['torch']} is a torch tensor; "
            "pass all inputs as one kind"
        )
    if not kinds:
        raise ValueError("no input arrays given")
    return next(iter(kinds))


def check_float(name: str, a, *, allow_neg_inf: bool = False) -> None:
    """Floating dtype (numpy: float32/float64; torch: any floating dtype) and finite values.

    ``allow_neg_inf``: ``-inf`` is a valid value (a stabilizer state ``m`` before the first step);
    NaN and ``+inf`` are still refused.
    """
    if isinstance(a, torch.Tensor):
        if not a.is_floating_point():
            raise ValueError(f"{name} must have a floating dtype, got {a.dtype}")
        if CHECK_FINITE and a.numel():
            lo, hi = torch.aminmax(a.detach())
            _check_extremes(name, float(lo), float(hi), allow_neg_inf)
    else:
        if a.dtype not in (np.float32, np.float64):
            raise ValueError(f"{name} must be float32 or float64, got {a.dtype}")
        if CHECK_FINITE and a.size:
            _check_extremes(name, float(a.min()), float(a.max()), allow_neg_inf)


def _check_extremes(name: str, lo: float, hi: float, allow_neg_inf: bool) -> None:
    """min and max propagate NaN and are infinite if any entry is: one cheap pass, no mask."""
    if math.isnan(lo) or math.isnan(hi) or hi == math.inf or (lo == -math.inf and not allow_neg_inf):
        what = "NaN or +inf" if allow_neg_inf else "NaN or infinite"
        raise ValueError(f"{name} contains {what} values")


def check_shape(name: str, a, expected: tuple, names: str) -> None:
    """Check ``a.shape == expected``; ``names`` spells the dimensions, e.g. ``"(B, NH, S, DHQK)"``."""
    if a.ndim != len(expected):
        raise ValueError(
            f"{name} must have {len(expected)} dimensions {names}, got shape {tuple(a.shape)}"
        )
    if tuple(a.shape) != tuple(expected):
        raise ValueError(
            f"{name} must have shape {names} = {tuple(expected)}, got {tuple(a.shape)}"
        )


def check_ndim(name: str, a, ndim: int, names: str) -> None:
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions {names}, got shape {tuple(a.shape)}")


def check_same_dtype(**arrays) -> None:
    """All given arrays share one dtype (and, for torch, one device)."""
    items = [(n, a) for n, a in arrays.items() if a is not None]
    n0, a0 = items[0]
    for n, a in items[1:]:
        if a.dtype != a0.dtype:
            raise ValueError(f"{n} has dtype {a.dtype} but {n0} has dtype {a0.dtype}; use one dtype")
        if isinstance(a, torch.Tensor) and a.device != a0.device:
            raise ValueError(f"{n} is on {a.device} but {n0} is on {a0.device}")


# --- scalars --------------------------------------------------------------------------------------

def check_int(name: str, value, minimum: int | None = 1, maximum: int | None = None) -> int:
    """An integer (not a bool) in ``[minimum, maximum]`` (``None``: no bound). Returns it as ``int``."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or (minimum is not None and value < minimum) or (maximum is not None and value > maximum)):
        raise ValueError(f"{name} must be {_integer(minimum, maximum)}, got {value!r}")
    return int(value)


def check_positive_int(name: str, value) -> int:
    return check_int(name, value, minimum=1)


def check_number(name: str, value, minimum: float | None = None, maximum: float | None = None, *,
                 exclusive_minimum: bool = False, exclusive_maximum: bool = False) -> float:
    """A finite real number (not a bool, not NaN or inf) in the given range. Returns it as ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    low_bad = minimum is not None and (value <= minimum if exclusive_minimum else value < minimum)
    high_bad = maximum is not None and (value >= maximum if exclusive_maximum else value > maximum)
    if low_bad or high_bad:
        lo = "" if minimum is None else f"{'>' if exclusive_minimum else '>='} {minimum}"
        hi = "" if maximum is None else f"{'<' if exclusive_maximum else '<='} {maximum}"
        raise ValueError(f"{name} must be a number {' and '.join(p for p in (lo, hi) if p)}, "
                         f"got {value!r}")
    return float(value)


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(name: str, value, choices) -> object:
    if value not in tuple(choices):
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def _integer(minimum, maximum) -> str:
    if maximum is None and minimum in (0, 1):
        return "a positive integer" if minimum == 1 else "a non-negative integer"
    if minimum is not None and maximum is not None:
        return f"an integer in [{minimum}, {maximum}]"
    if minimum is None and maximum is None:
        return "an integer"
    return f"an integer >= {minimum}" if minimum is not None else f"an integer <= {maximum}"


# --- token ids and states -------------------------------------------------------------------------

def check_tokens(name: str, tokens, ndim: int, names: str, vocab_size: int) -> torch.Tensor:
    """An integer tensor of ``ndim`` dimensions (``names``), non-empty, ids in ``[0, vocab_size)``.

    Any integer dtype is accepted (uint8 is a fine way to store a small vocabulary); returns the ids
    as int64, the dtype ``torch.nn.Embedding`` needs.
    """
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != ndim:
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"{name} must be an integer tensor {names}, got {shape}")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise ValueError(f"{name} must have an integer dtype, got {tokens.dtype}")
    if tokens.numel() == 0:
        raise ValueError(f"{name} must be non-empty {names}, got shape {tuple(tokens.shape)}")
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"{name}: token ids must be in [0, {vocab_size}), got range [{lo}, {hi}]")
    return tokens.long()


def check_batch(name: str, state, batch_size: int, like: torch.Tensor | None = None) -> None:
    """Every tensor in ``state`` (nested tuples/lists) has ``batch_size`` rows, and, with ``like``,
    its device and floating dtype (integer tensors, e.g. token ids, keep their own dtype)."""
    for t in _tensors(state):
        if t.dim() == 0 or t.shape[0] != batch_size:
            raise ValueError(f"{name} is for batch size {t.shape[0] if t.dim() else '()'}, "
                             f"but the input has batch size {batch_size}")
        if like is not None:
            if t.device != like.device:
                raise ValueError(f"{name} is on {t.device}, the model on {like.device}")
            if t.is_floating_point() and t.dtype != like.dtype:
                raise ValueError(f"{name} has dtype {t.dtype}, the model {like.dtype}")


def _tensors(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in _tensors(item)]
    if obj is None:
        return []
    raise ValueError(f"a state holds tensors in tuples, got {type(obj).__name__}")
