"""Input validation shared by every cell: one backend, floating dtypes, exact shapes, finite values.

Every public function calls these before computing, so that bad input fails with a ``ValueError``
that names the argument and the expected shape, and is never silently broadcast.
"""

from __future__ import annotations

import numpy as np
import torch

#: Set to ``False`` to skip the NaN/inf scan of inputs (it costs one pass over the data and, on a GPU,
#: one host synchronisation per call).
CHECK_FINITE = True


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


def check_float(name: str, a) -> None:
    """Floating dtype (numpy: float32/float64; torch: any floating dtype) and, optionally, finite."""
    if isinstance(a, torch.Tensor):
        if not a.is_floating_point():
            raise ValueError(f"{name} must have a floating dtype, got {a.dtype}")
        if CHECK_FINITE and a.numel() and not _finite_extremes(*torch.aminmax(a.detach())):
            raise ValueError(f"{name} contains NaN or infinite values")
    else:
        if a.dtype not in (np.float32, np.float64):
            raise ValueError(f"{name} must be float32 or float64, got {a.dtype}")
        if CHECK_FINITE and a.size and not _finite_extremes(a.min(), a.max()):
            raise ValueError(f"{name} contains NaN or infinite values")


def _finite_extremes(lo, hi) -> bool:
    """min and max propagate NaN, and are infinite if any entry is: one cheap pass, no mask."""
    return bool(np.isfinite(float(lo)) and np.isfinite(float(hi)))


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


def check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
