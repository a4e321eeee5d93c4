"""Models at equal size: the width that brings a model to a target parameter count.

The xLSTM paper compares architectures at (nearly) equal parameter counts; :func:`match_parameters`
finds that width for any of the package's models (or any ``config -> model`` builder), counting on the
``meta`` device so that no memory is used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._checks import check_bool, check_int, check_number
from .base import count_parameters


def _count_for(config, build: Callable[[Any], nn.Module] | None, exclude_embedding: bool) -> int:
    """Parameter count of the model ``config`` describes, built without allocating memory."""
    if build is None:
        from . import build_model  # the package's dispatch on config types (xLSTM and baselines)

        build = build_model

    def count(model: nn.Module) -> int:
        if exclude_embedding:
            return model.num_parameters(exclude_embedding=True)
        return count_parameters(model)

    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            return count(build(config))
    except (NotImplementedError, RuntimeError):  # an initialiser that meta tensors do not support
        return count(build(config))


def match_parameters(make_config, target: int, *, key: str | tuple[str, ...] = "embedding_dim",
                     build: Callable[[Any], nn.Module] | None = None, multiple_of: int = 1,
                     max_width: int = 8192, rtol: float = 0.05, exclude_embedding: bool = False):
    """The width that brings a model closest to ``target`` parameters: ``(config, num_parameters)``.

    Args:
        make_config: a function ``width -> config``, or a config whose field(s) ``key`` are set to the
            width (``dataclasses.replace``).
        target: the parameter count to reach.
        key: with a config for ``make_config``: the field, or fields, that take the width (an
            ``LSTMLMConfig`` with tied weights needs ``("embedding_dim", "hidden_size")``).
        build: ``config -> model``; default :func:`xlstm_edu.models.build_model` (the xLSTM model and
            the baselines here).
        multiple_of: widths tried are multiples of this (e.g. ``num_heads``, or 8 for fast kernels).
        max_width: the largest width tried.
        rtol: tolerance. The count grows with the width in steps (about ``2 * multiple_of / width`` of
            the count when it is quadratic in the width, under 2.5% above width 80); a best match
            further than ``rtol * target`` from the target raises ``ValueError``.
        exclude_embedding: count without the embeddings (``model.num_parameters(exclude_embedding=
            True)``): the same work per token in the layers, whatever the embedding tables add.

    Models are built on the ``meta`` device (no memory used). The count must not decrease as the width
    grows: the search doubles the width until the count reaches the target, then bisects.
    """
    check_int("target", target)
    check_int("multiple_of", multiple_of)
    check_int("max_width", max_width, minimum=multiple_of)
    check_number("rtol", rtol, 0, 1, exclusive_minimum=True, exclusive_maximum=True)
    check_bool("exclude_embedding", exclude_embedding)
    if dataclasses.is_dataclass(make_config) and not isinstance(make_config, type):
        base, keys = make_config, (key,) if isinstance(key, str) else tuple(key)
        names = {f.name for f in dataclasses.fields(base)}
        for k in keys:
            if k not in names:
                raise ValueError(f"{type(base).__name__} has no field {k!r}")

        def make_config(width, base=base, keys=keys):
            return dataclasses.replace(base, **dict.fromkeys(keys, width))
    elif not callable(make_config):
        raise ValueError("make_config must be a function width -> config, or a config dataclass")

    counts: dict[int, int] = {}

    def count(m: int) -> int:  # parameters at width m * multiple_of
        if m not in counts:
            counts[m] = _count_for(make_config(m * multiple_of), build, exclude_embedding)
        return counts[m]

    top = max_width // multiple_of
    lo, hi = 1, 1
    while count(hi) < target:  # gallop: 1, 2, 4, ... (in units of multiple_of)
        if hi == top:
            raise ValueError(f"even width {top * multiple_of} gives only {count(top):,} parameters "
                             f"< target {target:,}; raise max_width")
        lo, hi = hi, min(2 * hi, top)
    while lo < hi:  # smallest m with count(m) >= target
        mid = (lo + hi) // 2
        if count(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    best = min((m for m in (lo - 1, lo) if m >= 1), key=lambda m: abs(count(m) - target))
    n = count(best)
    if abs(n - target) > rtol * target:
        raise ValueError(
            f"no width within rtol={rtol} of {target:,} parameters: width {best * multiple_of} gives "
            f"{n:,}; change multiple_of, rtol or the other sizes"
        )
    return make_config(best * multiple_of), n
