"""xLSTM blocks and stacks, taken apart (chapter "Blocks and stacks").

Everything here runs the package's blocks (:mod:`xlstm_edu.blocks`) and cells (:mod:`xlstm_edu.mlstm`,
:mod:`xlstm_edu.slstm`); nothing re-derives a cell's formula.

* :func:`trace_shapes`: the shape of every intermediate tensor of a block (forward hooks), including
  the cell call (:func:`record_cell_calls`);
* :func:`record_cell_calls`: which function of ``xlstm_edu.mlstm`` / ``xlstm_edu.slstm`` a block
  calls, with its arguments and output;
* :func:`mlstm_block_by_hand`, :func:`slstm_block_by_hand`: a block's output recomputed from its
  submodules and the package's public cell functions (the build-up from the cells);
* :func:`run_steps`, :func:`state_tensors`, :func:`state_nbytes`: the step form and its state;
* :func:`component_counts`, :func:`stack_counts`, :func:`block_parameter_formula`: parameter counts;
* :func:`official_parity`, :func:`official_name_table`: the official NX-AI stack (if installed);
* :func:`draw_block`, :func:`plot_parameter_counts`, :func:`plot_parameter_scaling`: the figures.
"""

from __future__ import annotations

import contextlib
import functools
import re
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import mlstm, slstm
from ..blocks import (
    load_official_state_dict,
    mLSTMBlock,
    official_stack_config,
    sLSTMBlock,
    xLSTMBlockStack,
    xLSTMStackConfig,
)

#: The two block kinds, in the order the chapter shows them.
BLOCK_KINDS = ("slstm", "mlstm")

#: Cell functions a block may call, per cell module (the names the blocks look up at call time).
CELL_FUNCTIONS = {
    "mlstm": ("parallel_torch", "chunkwise_torch", "recurrent_torch", "step"),
    "slstm": ("recurrent_torch", "step_torch"),
}
_CELL_MODULES = {"mlstm": mlstm, "slstm": slstm}


# --- building small blocks --------------------------------------------------------------------------


def make_block(kind: str, embedding_dim: int = 64, num_heads: int = 4, *, dtype=torch.float64,
               seed: int = 0, perturb: float = 0.0, **kwargs) -> nn.Module:
    """A block as a stack would build it (widths rounded as in :class:`xLSTMStackConfig`).

    ``kind`` is ``"mlstm"`` or ``"slstm"``; ``kwargs`` go to the block (e.g. ``backend``,
    ``chunk_size``). ``perturb > 0`` moves every parameter away from its init
    (:func:`perturb_parameters_`), so that gates that start at zero (R, the mLSTM gate weights) matter.
    Seeds torch's global generator with ``seed`` (the init draws from it). Returns the block in eval
    mode.
    """
    cfg = xLSTMStackConfig(embedding_dim=embedding_dim, num_blocks=1, mlstm_num_heads=num_heads,
                           slstm_num_heads=num_heads)
    torch.manual_seed(seed)
    if kind == "mlstm":
        block = mLSTMBlock(embedding_dim, cfg.mlstm_inner_dim, num_heads=num_heads, **kwargs)
    elif kind == "slstm":
        block = sLSTMBlock(embedding_dim, cfg.ff_inner_dim, num_heads=num_heads, **kwargs)
    else:
        raise ValueError(f"kind must be one of {BLOCK_KINDS}, got {kind!r}")
    block = block.to(dtype)
    if perturb:
        perturb_parameters_(block, perturb, seed=seed + 1)
    return block.eval()


def perturb_parameters_(module: nn.Module, scale: float = 0.3, seed: int = 0) -> nn.Module:
    """Add ``N(0, scale^2)`` noise to every parameter in place (float64 draws). Returns ``module``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float64)
            p.add_(scale * noise.to(dtype=p.dtype, device=p.device))
    return module


# --- which cell a block calls -----------------------------------------------------------------------


class CellCall(NamedTuple):
    """One call of a cell function: ``name`` like ``"mlstm.chunkwise_torch"``, its arguments, output."""

    name: str
    args: tuple
    kwargs: dict
    output: object


@contextlib.contextmanager
def record_cell_calls():
    """Record every call of the functions in :data:`CELL_FUNCTIONS` (outermost calls only).

    The blocks look the cell functions up on ``xlstm_edu.mlstm`` and ``xlstm_edu.slstm`` at call time,
    so wrapping those module attributes sees every call; the originals are restored on exit (also after
    an exception). Calls made *inside* a recorded call (``slstm.recurrent_torch`` looping over
    ``step_torch``) are not recorded. Yields the list of :class:`CellCall`, filled as the block runs.
    """
    calls: list[CellCall] = []
    depth = [0]
    originals = []

    def wrap(qualname, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            depth[0] += 1
            try:
                out = fn(*args, **kwargs)
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                calls.append(CellCall(qualname, args, kwargs, out))
            return out
        return wrapper

    try:
        for mod_name, names in CELL_FUNCTIONS.items():
            module = _CELL_MODULES[mod_name]
            for name in names:
                fn = getattr(module, name)
                originals.append((module, name, fn))
                setattr(module, name, wrap(f"{mod_name}.{name}", fn))
        yield calls
    finally:
        for module, name, fn in reversed(originals):
            setattr(module, name, fn)


def _tensors(obj):
    """The tensors in ``obj`` (a tensor, or nested tuples/lists of them), in order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in _tensors(item)]
    return []


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(n) for n in t.shape)


# --- shapes ----------------------------------------------------------------------------------------


def trace_shapes(module: nn.Module, x: torch.Tensor, *, cells: bool = True,
                 with_states: bool = False) -> list[tuple[str, tuple[int, ...]]]:
    """Run ``module(x)`` and list ``(name, shape)`` of every intermediate output, in the order computed.

    Forward hooks on all submodules (dropout left out: the identity here) give one row per submodule
    call, named as in ``module.named_modules()``; with ``cells=True`` the cell function calls appear
    too, as ``"mlstm.chunkwise_torch(...)"`` with the shape of ``h``. A submodule that returns a tuple
    (the causal convolution returns its output and its new state) gives its first tensor; with
    ``with_states=True`` the others follow as ``"name[j]"``. The first row is the input ``"x"``, the
    last the module's output ``"y"``. The hooks are removed afterwards.
    """
    rows: list[tuple[str, tuple[int, ...]]] = [("x", _shape(x))]
    handles = []

    def hook(name):
        def fn(_mod, _inp, out):
            if cells:  # a cell call that finished before this submodule: its row comes first
                _flush_cell_rows()
            tensors = _tensors(out)
            if not tensors:
                return
            rows.append((name, _shape(tensors[0])))
            if with_states:
                rows.extend((f"{name}[{j}]", _shape(t)) for j, t in enumerate(tensors[1:], start=1))
        return fn

    seen_calls = [0]
    recorded: list[CellCall] = []

    def _flush_cell_rows():
        for call in recorded[seen_calls[0]:]:
            rows.append((f"{call.name}(...)", _shape(_tensors(call.output)[0])))
        seen_calls[0] = len(recorded)

    for name, sub in module.named_modules():
        if name and not isinstance(sub, (nn.Dropout, nn.ModuleList, nn.Identity)):
            handles.append(sub.register_forward_hook(hook(name)))
    try:
        with (record_cell_calls() if cells else contextlib.nullcontext([])) as calls, torch.no_grad():
            recorded = calls
            y = module(x)
            if cells:
                _flush_cell_rows()
    finally:
        for h in handles:
            h.remove()
    rows.append(("y", _shape(_tensors(y)[0])))
    return rows


def format_trace(rows, width: int = 34) -> str:
    """The rows of :func:`trace_shapes` as a two-column text table."""
    lines = [f"{'tensor (module or cell call)':<{width}} shape", "-" * (width + 20)]
    lines += [f"{name:<{width}} {tuple(shape)}" for name, shape in rows]
    return "\n".join(lines)


def block_dims(block: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """The symbols of the chapter's shape labels for ``block`` and an input ``x (B, S, E)``:
    ``B, S, E, NH, DH, K`` and ``D`` (mLSTM inner width) or ``F`` (sLSTM feed-forward width)."""
    B, S, E = x.shape
    dims = dict(B=B, S=S, E=E, NH=block.num_heads, DH=block.head_dim, K=block.conv1d.kernel_size)
    if isinstance(block, mLSTMBlock):
        dims["D"] = block.inner_dim
    elif isinstance(block, sLSTMBlock):
        dims["F"] = block.ffn.inner_dim
    else:
        raise ValueError(f"expected an mLSTMBlock or sLSTMBlock, got {type(block).__name__}")
    return dims


def eval_shape(symbolic: str, dims: dict[str, int]) -> tuple[int, ...]:
    """``"(B, S, 2D)"`` with ``dims`` -> ``(2, 12, 256)``; entries are products like ``2D`` or
    ``3*NH``."""
    out = []
    for entry in symbolic.strip().strip("()").split(","):
        match = re.fullmatch(r"\s*(\d*)\s*\*?\s*([A-Za-z]*)\s*", entry)
        if match is None or not (match.group(1) or match.group(2)):
            raise ValueError(f"cannot read shape entry {entry!r} of {symbolic!r}")
        factor = int(match.group(1)) if match.group(1) else 1
        name = match.group(2)
        if name and name not in dims:
            raise ValueError(f"unknown dimension {name!r} in {symbolic!r}; known: {sorted(dims)}")
        out.append(factor * (dims[name] if name else 1))
    return tuple(out)


# --- the build-up from the cells --------------------------------------------------------------------


def mlstm_block_by_hand(block: mLSTMBlock, x: torch.Tensor) -> torch.Tensor:
    """The mLSTM block's output from its submodules and the public cell
    :func:`xlstm_edu.mlstm.parallel`.

    x ``(B, S, E)`` -> ``(B, S, E)``, without dropout. The block itself runs the chunkwise form from the
    empty state (``m = -inf``); the parallel form has no state either, so both must agree to rounding.
    """
    if block.training and block.dropout.p > 0:
        raise ValueError("mlstm_block_by_hand leaves out dropout: call block.eval() first")
    B, S, E = x.shape
    NH, DH, D = block.num_heads, block.head_dim, block.inner_dim
    a, b = block.proj_up(block.norm(x)).split(D, dim=-1)  # (B, S, D) each
    a_conv = F.silu(block.conv1d(a)[0])  # (B, S, D): causal conv, then swish
    q, k, v = block.q_proj(a_conv), block.k_proj(a_conv), block.v_proj(a)  # (B, S, D) each
    qkv = torch.cat([q, k, v], dim=-1)  # (B, S, 3D)
    i_pre, f_pre = block.igate(qkv), block.fgate(qkv)  # (B, S, NH) each

    def heads(t):  # (B, S, D) -> (B, NH, S, DH)
        return t.reshape(B, S, NH, DH).transpose(1, 2)

    h = mlstm.parallel(heads(q), heads(k), heads(v), i_pre.transpose(1, 2), f_pre.transpose(1, 2),
                       eps=block.eps)  # (B, NH, S, DH)
    h = block.outnorm(h.transpose(1, 2)).reshape(B, S, D)  # norm per head, heads side by side
    h = (h + block.learnable_skip * a_conv) * F.silu(b)  # skip, then the output gate swish(b)
    return x + block.proj_down(h)  # (B, S, E)


def slstm_block_by_hand(block: sLSTMBlock, x: torch.Tensor) -> torch.Tensor:
    """The sLSTM block's output from its submodules and the public cell
    :func:`xlstm_edu.slstm.recurrent`.

    x ``(B, S, E)`` -> ``(B, S, E)``, without dropout.
    """
    if block.training and block.dropout.p > 0:
        raise ValueError("slstm_block_by_hand leaves out dropout: call block.eval() first")
    B, S, E = x.shape
    NH, DH = block.num_heads, block.head_dim
    x_norm = block.norm(x)  # (B, S, E)
    x_conv = F.silu(block.conv1d(x_norm)[0])  # (B, S, E): only the i and f gates see it

    def heads(t):  # (B, S, E) -> (B, NH, S, DH)
        return t.reshape(B, S, NH, DH).transpose(1, 2)

    bias = block.b[:, :, None, :]  # (NH, 4, 1, DH): one bias per gate, broadcast over time
    i_pre = heads(block.igate(x_conv)) + bias[:, 0]  # (B, NH, S, DH)
    f_pre = heads(block.fgate(x_conv)) + bias[:, 1]
    z_pre = heads(block.zgate(x_norm)) + bias[:, 2]
    o_pre = heads(block.ogate(x_norm)) + bias[:, 3]
    h = slstm.recurrent(i_pre, f_pre, z_pre, o_pre, block.R)  # (B, NH, S, DH), R mixes inside heads
    x = x + block.outnorm(h.transpose(1, 2)).reshape(B, S, E)  # first residual
    gate, up = block.ffn.proj_up(block.ffn_norm(x)).split(block.ffn.inner_dim, dim=-1)  # (B, S, F)
    return x + block.ffn.proj_down(F.gelu(gate) * up)  # second residual: gated MLP


# --- the step form and its state --------------------------------------------------------------------


def run_steps(module: nn.Module, x: torch.Tensor, state=None):
    """``module.step`` over every time step of x ``(B, S, E)``: returns ``y (B, S, E)`` and the final
    state."""
    ys = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            y_t, state = module.step(x[:, t], state)
            ys.append(y_t)
    return torch.stack(ys, dim=1), state


def state_tensors(state, prefix: str = "state") -> list[tuple[str, tuple[int, ...], int]]:
    """Flatten a block or stack state into ``(name, shape, bytes)`` rows.

    Named tuples give their field names (``state.blocks[0].c``... for a stack: ``state[0].c``).
    """
    if isinstance(state, torch.Tensor):
        return [(prefix, _shape(state), state.numel() * state.element_size())]
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return [row for name, item in zip(state._fields, state)
                for row in state_tensors(item, f"{prefix}.{name}")]
    if isinstance(state, (tuple, list)):
        return [row for j, item in enumerate(state) for row in state_tensors(item, f"{prefix}[{j}]")]
    raise ValueError(f"cannot read a state of type {type(state).__name__}")


def state_nbytes(state) -> int:
    """Total bytes of the tensors of a state."""
    return sum(nbytes for _, _, nbytes in state_tensors(state))


# --- parameter counts -------------------------------------------------------------------------------

#: Parameter groups of each block, as (label, parameter-name prefixes); every parameter is in one.
COMPONENTS = {
    "mlstm": (
        ("LayerNorm", ("norm.",)),
        ("up-projection", ("proj_up.",)),
        ("causal conv", ("conv1d.",)),
        ("q, k, v (block-diagonal)", ("q_proj.", "k_proj.", "v_proj.")),
        ("gates i, f", ("igate.", "fgate.")),
        ("GroupNorm + skip", ("outnorm.", "learnable_skip")),
        ("down-projection", ("proj_down.",)),
    ),
    "slstm": (
        ("LayerNorms", ("norm.", "ffn_norm.")),
        ("causal conv", ("conv1d.",)),
        ("W: i, f, z, o (block-diagonal)", ("igate.", "fgate.", "zgate.", "ogate.")),
        ("R (block-diagonal)", ("R",)),
        ("bias b", ("b",)),
        ("GroupNorm", ("outnorm.",)),
        ("gated MLP", ("ffn.",)),
    ),
}


def _kind(block: nn.Module) -> str:
    if isinstance(block, mLSTMBlock):
        return "mlstm"
    if isinstance(block, sLSTMBlock):
        return "slstm"
    raise ValueError(f"expected an mLSTMBlock or sLSTMBlock, got {type(block).__name__}")


def component_counts(block: nn.Module) -> dict[str, int]:
    """Parameters of one block per component (labels of :data:`COMPONENTS`); raises ``ValueError`` if
    a parameter belongs to no component."""
    counts = {label: 0 for label, _ in COMPONENTS[_kind(block)]}
    for name, p in block.named_parameters():
        label = next((lab for lab, prefixes in COMPONENTS[_kind(block)]
                      if any(name == pre or name.startswith(pre) for pre in prefixes)), None)
        if label is None:
            raise ValueError(f"parameter {name!r} belongs to no component of {COMPONENTS[_kind(block)]}")
        counts[label] += p.numel()
    return counts


def build_on_meta(config: xLSTMStackConfig) -> xLSTMBlockStack:
    """The stack on the ``meta`` device: shapes without memory or init cost (for counting)."""
    with torch.device("meta"):
        return xLSTMBlockStack(config)


def stack_counts(config: xLSTMStackConfig) -> dict[str, dict[str, int]]:
    """Parameters of a stack per block kind and component: ``{"mlstm": {...}, "slstm": {...},
    "post_blocks_norm": {"LayerNorm": n}}`` (components summed over the blocks of that kind; a kind
    with no block has all zeros). Counted on a meta-device stack."""
    stack = build_on_meta(config)
    out = {kind: {label: 0 for label, _ in COMPONENTS[kind]} for kind in ("mlstm", "slstm")}
    for block in stack.blocks:
        for label, n in component_counts(block).items():
            out[_kind(block)][label] += n
    out["post_blocks_norm"] = {"LayerNorm": sum(p.numel() for p in stack.post_blocks_norm.parameters())}
    return out


def block_parameter_formula(kind: str, config: xLSTMStackConfig) -> int:
    """Parameters of one block of ``config``, from the formula (no module built).

    With ``E`` the width, ``K`` the conv taps, ``NH`` the heads of that block kind:

    * mLSTM (``D`` inner width, ``P`` the q/k/v block size, ``[.]`` only with ``bias``):
      ``3 D E + D (K + 3 + 3 P + 6 NH) + E + 2 NH  [+ 2D + 3D + E]``;
    * sLSTM (``F`` feed-forward width): ``3 E F + 8 E^2 / NH + E (K + 8)``.
    """
    E, K = config.embedding_dim, config.conv1d_kernel_size
    if kind == "mlstm":
        D, NH, P = config.mlstm_inner_dim, config.mlstm_num_heads, config.qkv_proj_blocksize
        n = 3 * D * E + D * (K + 3 + 3 * P + 6 * NH) + E + 2 * NH
        return n + (5 * D + E if config.bias else 0)
    if kind == "slstm":
        Fd, NH = config.ff_inner_dim, config.slstm_num_heads
        return 3 * E * Fd + 8 * E * E // NH + E * (K + 8)
    raise ValueError(f"kind must be one of {BLOCK_KINDS}, got {kind!r}")


def counted_block_parameters(kind: str, config: xLSTMStackConfig) -> int:
    """Parameters of one block of ``config``, counted on a meta-device stack of that one kind."""
    if kind not in BLOCK_KINDS:
        raise ValueError(f"kind must be one of {BLOCK_KINDS}, got {kind!r}")
    one = xLSTMStackConfig.from_dict({**config.to_dict(), "num_blocks": 1,
                                      "slstm_at": (0,) if kind == "slstm" else ()})
    return sum(p.numel() for p in build_on_meta(one).blocks[0].parameters())


# --- the official stack -----------------------------------------------------------------------------


def official_name_table(config: xLSTMStackConfig) -> list[tuple[str, tuple, str, tuple]]:
    """Where each official parameter lands in our stack: rows ``(official name, official shape,
    our name, our shape)``, in the official order. Needs the ``xlstm`` package.

    Found, not typed: each official tensor is filled with its own number (1, 2, ...), the state dict goes
    through :func:`xlstm_edu.blocks.official_to_ours`, and each of our tensors is matched by its value.
    """
    import xlstm  # book/test-time dependency only

    from ..blocks import official_to_ours

    official = xlstm.xLSTMBlockStack(official_stack_config(config)).double()
    tagged = {name: torch.full_like(t, float(j + 1), dtype=torch.float64)
              for j, (name, t) in enumerate(official.state_dict().items())}
    ours = official_to_ours(tagged, xLSTMBlockStack(config).double())
    by_tag = {}
    for our_name, t in ours.items():
        values = torch.unique(t)
        if values.numel() != 1:
            raise RuntimeError(f"{our_name} mixes several official tensors")
        by_tag[int(values.item())] = (our_name, _shape(t))
    return [(name, _shape(t), *by_tag[j + 1]) for j, (name, t) in enumerate(tagged.items())]


def official_parity(config: xLSTMStackConfig, x: torch.Tensor, *, scale: float = 0.5,
                    seed: int = 1) -> dict[str, float]:
    """Build the official stack for ``config``, move its weights away from their init, load them into
    ours, and compare on ``x (B, S, E)`` (dtype of ``x``; ``config.context_length >= S``).

    Returns max absolute differences ``{"forward": ours vs official, "step": our steps vs official,
    "scale": max |official output|}``. Needs the ``xlstm`` package.
    """
    import xlstm  # book/test-time dependency only

    if config.context_length < x.shape[1]:
        raise ValueError(f"context_length ({config.context_length}) must be >= S ({x.shape[1]}): the "
                         "official mLSTM layer's causal mask has that size")
    official = xlstm.xLSTMBlockStack(official_stack_config(config)).to(x.dtype)
    perturb_parameters_(official, scale, seed=seed)
    ours = load_official_state_dict(xLSTMBlockStack(config).to(x.dtype), official.state_dict())
    with torch.no_grad():
        y_official = official(x)
        y_ours = ours(x)
    y_steps, _ = run_steps(ours, x)
    return {"forward": float((y_ours - y_official).abs().max()),
            "step": float((y_steps - y_official).abs().max()),
            "scale": float(y_official.abs().max())}


# --- the block diagrams -----------------------------------------------------------------------------


class _Node(NamedTuple):
    x: float
    y: float
    label: str
    kind: str  # color key: "io", "norm", "linear", "conv", "cell", "op"
    trace: str | None = None  # row of trace_shapes whose shape this box shows
    shape: str | None = None  # symbolic shape, checked against the trace
    width: float = 2.6


_COLORS = {"io": "#eeeeee", "norm": "#fde7c2", "linear": "#cfe3f7", "conv": "#d9f0d3", "cell": "#f7c9c9",
           "op": "#ffffff"}

#: Layouts of the two blocks (data bottom to top, as in the paper's figures). ``edges``: arrows
#: ``(from, to[, label])``; ``bus``: ``(sources, to, y)``, several tensors concatenated into one box;
#: ``bypass``: dashed connections ``(from, to, x of the vertical line)`` (residuals and the skip).
LAYOUTS = {
    "slstm": {
        "nodes": {
            "x": _Node(5, 0, "input $x$", "io", "x", "(B, S, E)"),
            "norm": _Node(5, 1.1, "LayerNorm", "norm", "norm", "(B, S, E)"),
            "conv": _Node(2.5, 2.3, "causal conv (K) + swish", "conv", "conv1d", "(B, S, E)", 3.4),
            "i": _Node(1.4, 3.6, "$W_i$ (headwise)", "linear", "igate", "(B, S, E)", 2.0),
            "f": _Node(3.6, 3.6, "$W_f$ (headwise)", "linear", "fgate", "(B, S, E)", 2.0),
            "z": _Node(6.2, 3.6, "$W_z$ (headwise)", "linear", "zgate", "(B, S, E)", 2.0),
            "o": _Node(8.4, 3.6, "$W_o$ (headwise)", "linear", "ogate", "(B, S, E)", 2.0),
            "cell": _Node(4.9, 5.0,
                          "sLSTM cell (slstm.recurrent_torch): NH heads, $R$ mixes inside a head",
                          "cell", "slstm.recurrent_torch(...)", "(B, NH, S, DH)", 8.0),
            "outnorm": _Node(5, 6.2, "GroupNorm (per head)", "norm", "outnorm", "(B, S, NH, DH)"),
            "res1": _Node(5, 7.2, "+", "op", None, None, 0.5),
            "ffn_norm": _Node(5, 8.2, "LayerNorm", "norm", "ffn_norm", "(B, S, E)"),
            "ffn_up": _Node(5, 9.3, "up-projection (PF $\\approx$ 4/3)", "linear", "ffn.proj_up",
                            "(B, S, 2F)", 3.0),
            "gelu": _Node(5, 10.4, "GeLU(gate) $\\odot$ up", "op", None, None, 2.4),
            "ffn_down": _Node(5, 11.4, "down-projection", "linear", "ffn.proj_down", "(B, S, E)", 3.0),
            "res2": _Node(5, 12.4, "+", "op", None, None, 0.5),
            "y": _Node(5, 13.4, "output $y$", "io", "y", "(B, S, E)"),
        },
        "edges": [
            ("x", "norm"), ("norm", "conv"), ("conv", "i"), ("conv", "f"), ("norm", "z"), ("norm", "o"),
            ("i", "cell", "$\\tilde\\imath$"), ("f", "cell", "$\\tilde f$"),
            ("z", "cell", "$\\tilde z$"), ("o", "cell", "$\\tilde o$"),
            ("cell", "outnorm", "$h$"), ("outnorm", "res1"),
            ("res1", "ffn_norm"), ("ffn_norm", "ffn_up"), ("ffn_up", "gelu", "gate, up"),
            ("gelu", "ffn_down"), ("ffn_down", "res2"), ("res2", "y"),
        ],
        "bus": [],
        "bypass": [("x", "res1", 10.3), ("res1", "res2", 0.3)],
        "loop": "cell",  # recurrent connection drawn on this box
        "title": "sLSTM block (post up-projection)",
    },
    "mlstm": {
        "nodes": {
            "x": _Node(5, 0, "input $x$", "io", "x", "(B, S, E)"),
            "norm": _Node(5, 1.1, "LayerNorm", "norm", "norm", "(B, S, E)"),
            "up": _Node(5, 2.2, "up-projection (PF 2) into $a$, $b$", "linear", "proj_up", "(B, S, 2D)",
                        4.2),
            "conv": _Node(2.4, 3.5, "causal conv (K) + swish", "conv", "conv1d", "(B, S, D)", 3.2),
            "q": _Node(1.3, 4.8, "$q$ (block-diag.)", "linear", "q_proj", "(B, S, D)", 2.0),
            "k": _Node(3.5, 4.8, "$k$ (block-diag.)", "linear", "k_proj", "(B, S, D)", 2.0),
            "v": _Node(5.7, 4.8, "$v$ (block-diag.)", "linear", "v_proj", "(B, S, D)", 2.0),
            "gates": _Node(7.55, 7.2, "gates $\\tilde\\imath, \\tilde f$\nfrom $[q, k, v]$", "linear",
                           "igate", "(B, S, NH)", 2.3),
            "cell": _Node(3.5, 7.2, "mLSTM cell (mlstm.chunkwise_torch): NH heads", "cell",
                          "mlstm.chunkwise_torch(...)", "(B, NH, S, DH)", 5.0),
            "outnorm": _Node(3.5, 8.4, "GroupNorm (per head)", "norm", "outnorm", "(B, S, NH, DH)"),
            "skip": _Node(3.5, 9.5, "+", "op", None, None, 0.5),
            "swish": _Node(9.3, 4.8, "swish($b$)", "op", None, None, 1.3),
            "mul": _Node(5, 10.5, "$\\odot$", "op", None, None, 0.5),
            "down": _Node(5, 11.5, "down-projection", "linear", "proj_down", "(B, S, E)", 3.0),
            "res": _Node(5, 12.5, "+", "op", None, None, 0.5),
            "y": _Node(5, 13.5, "output $y$", "io", "y", "(B, S, E)"),
        },
        "edges": [
            ("x", "norm"), ("norm", "up"), ("up", "conv", "$a$"), ("up", "v", "$a$"),
            ("up", "swish", "$b$"), ("conv", "q"), ("conv", "k"), ("q", "cell"), ("k", "cell"),
            ("v", "cell"), ("gates", "cell"), ("cell", "outnorm", "$h$"), ("outnorm", "skip"),
            ("skip", "mul"), ("swish", "mul", "output gate"), ("mul", "down"), ("down", "res"),
            ("res", "y"),
        ],
        "bus": [(("q", "k", "v"), "gates", 5.75)],
        "bypass": [("x", "res", 10.3), ("conv", "skip", 0.1)],
        "loop": None,
        "title": "mLSTM block (pre up-projection)",
    },
}

_BOX_HEIGHT = 0.62
_CIRCLE = 0.25  # radius of the "+" and "⊙" circles


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def diagram_shapes(kind: str, block: nn.Module, x: torch.Tensor) -> dict[str, tuple[str, tuple]]:
    """For each box of the ``kind`` diagram that shows a shape: ``(symbolic, traced)`` shapes.

    Raises ``ValueError`` if a symbolic label, evaluated with :func:`block_dims`, differs from the
    traced shape: the labels in the figure are checked against the code.
    """
    if kind != _kind(block):
        raise ValueError(f"the {kind!r} diagram needs a {kind} block, got {type(block).__name__}")
    traced = dict(trace_shapes(block, x))
    dims = block_dims(block, x)
    out = {}
    for key, node in LAYOUTS[kind]["nodes"].items():
        if node.trace is None:
            continue
        if node.trace not in traced:
            raise ValueError(f"box {key!r}: no traced tensor {node.trace!r}")
        expected = eval_shape(node.shape, dims)
        if expected != traced[node.trace]:
            raise ValueError(f"box {key!r}: label {node.shape} = {expected} but the block computes "
                             f"{traced[node.trace]}")
        out[key] = (node.shape, traced[node.trace])
    return out


def _is_circle(n: _Node) -> bool:
    return n.label in ("+", "$\\odot$")


def _half_width(n: _Node) -> float:
    return _CIRCLE if _is_circle(n) else n.width / 2


def _half_height(n: _Node) -> float:
    return _CIRCLE if _is_circle(n) else _BOX_HEIGHT / 2


def draw_block(kind: str, ax=None, block: nn.Module | None = None, x: torch.Tensor | None = None,
               fontsize: float = 7.5):
    """Draw the ``"slstm"`` or ``"mlstm"`` block as boxes and arrows on ``ax``.

    With a ``block`` and an input ``x (B, S, E)``, every box that stands for a tensor is labelled with
    its symbolic shape and the shape traced from the block (:func:`diagram_shapes`, which checks that
    the two agree). ``fontsize`` is that of the box labels (the others follow it); a figure of about
    8 x 10 inches per block suits it. Returns ``ax``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if kind not in LAYOUTS:
        raise ValueError(f"kind must be one of {tuple(LAYOUTS)}, got {kind!r}")
    if (block is None) != (x is None):
        raise ValueError("pass both block and x (for shape labels), or neither")
    layout = LAYOUTS[kind]
    nodes = layout["nodes"]
    shapes = diagram_shapes(kind, block, x) if block is not None else {}
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 10))
    line = dict(color="0.25", lw=0.9)

    def arrow(p, q, **kw):
        style = dict(arrowstyle="-|>", mutation_scale=9, shrinkA=0, shrinkB=0, **line)
        style.update(kw)
        ax.add_patch(FancyArrowPatch(p, q, **style))

    def clip(value, n, margin=0.15):
        half = _half_width(n) - margin if not _is_circle(n) else 0.0
        return min(max(value, n.x - half), n.x + half)

    for key, n in nodes.items():
        if _is_circle(n):
            ax.add_patch(plt.Circle((n.x, n.y), _CIRCLE, fc="white", ec="0.25", lw=0.9, zorder=3))
            ax.text(n.x, n.y, n.label, ha="center", va="center", fontsize=fontsize + 2.5, zorder=4)
            continue
        ax.add_patch(FancyBboxPatch((n.x - n.width / 2, n.y - _BOX_HEIGHT / 2), n.width, _BOX_HEIGHT,
                                    boxstyle="round,pad=0.02,rounding_size=0.12", fc=_COLORS[n.kind],
                                    ec="0.3", lw=0.8, zorder=3))
        text = n.label
        if key in shapes:
            symbolic, traced = shapes[key]
            text += f"\n{symbolic} = {_shape_text(traced)}"
        ax.text(n.x, n.y, text, ha="center", va="center", fontsize=fontsize, zorder=4, linespacing=1.15)

    for edge in layout["edges"]:
        src, dst = nodes[edge[0]], nodes[edge[1]]
        label = edge[2] if len(edge) > 2 else None
        if abs(src.y - dst.y) < 1e-9:  # side by side: horizontal arrow
            sign = 1 if dst.x > src.x else -1
            p, q = (src.x + sign * _half_width(src), src.y), (dst.x - sign * _half_width(dst), dst.y)
            arrow(p, q)
        elif _is_circle(dst) and abs(src.x - dst.x) > 0.3:  # up, then into the side of a circle
            p = (src.x, src.y + _half_height(src))
            q = (dst.x + (_CIRCLE if src.x > dst.x else -_CIRCLE), dst.y)
            ax.plot([p[0], p[0]], [p[1], q[1]], **line)
            arrow((p[0], q[1]), q)
            q = (p[0], q[1])  # for the label: on the vertical part
        else:  # bottom to top, vertical where the boxes overlap
            end_x = clip(src.x, dst)
            p = (clip(end_x, src), src.y + _half_height(src))
            q = (end_x, dst.y - _half_height(dst))
            arrow(p, q)
        if label:
            mx, my = (p[0] + q[0]) / 2, (p[1] + q[1]) / 2
            ax.text(mx + 0.12, my, label, fontsize=fontsize + 0.5, color="0.2", ha="left", va="center",
                    bbox=dict(fc="white", ec="none", pad=0.3, alpha=0.8), zorder=5)

    for sources, dst_key, y_bus in layout["bus"]:  # concatenation: taps on the sources' arrows
        dst = nodes[dst_key]
        xs = [nodes[s].x for s in sources]
        for s in sources:
            n = nodes[s]
            ax.plot([n.x, n.x], [n.y + _half_height(n), y_bus], **line)
            ax.plot([n.x], [y_bus], "o", ms=3, color="0.25", zorder=4)
        ax.plot([min(xs), dst.x], [y_bus, y_bus], **line)
        arrow((dst.x, y_bus), (dst.x, dst.y - _half_height(dst)))
        ax.text(dst.x, y_bus - 0.18, "concatenate", fontsize=fontsize, color="0.3", ha="center",
                va="top")

    for src_key, dst_key, x_line in layout["bypass"]:
        s, d = nodes[src_key], nodes[dst_key]
        start_x = s.x + np.sign(x_line - s.x) * _half_width(s)
        end_x = d.x + np.sign(x_line - d.x) * _half_width(d)
        dashed = dict(color="0.45", lw=0.9, ls="--")
        ax.plot([start_x, x_line, x_line], [s.y, s.y, d.y], zorder=1, **dashed)
        arrow((x_line, d.y), (end_x, d.y), color="0.45", ls="--")

    if layout["loop"]:
        n = nodes[layout["loop"]]
        right = n.x + n.width / 2
        arrow((right, n.y + 0.12), (right, n.y - 0.12), connectionstyle="arc3,rad=-2.2", color="tab:red",
              lw=1.0)
        ax.text(right + 0.25, n.y - 0.45, "$R\\,h_{t-1}$", fontsize=fontsize + 1, color="tab:red",
                va="center")

    ys = [n.y for n in nodes.values()]
    ax.set_xlim(-0.2, 10.6)
    ax.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    ax.axis("off")
    title = layout["title"]
    if block is not None:
        dims = block_dims(block, x)
        title += "\n" + ", ".join(f"{k}={v}" for k, v in dims.items())
    ax.set_title(title, fontsize=fontsize + 2.5)
    return ax


# --- the parameter-count figures --------------------------------------------------------------------


def plot_parameter_counts(block_counts: dict[str, dict[str, int]],
                          stacks: dict[str, dict[str, dict[str, int]]], title: str = ""):
    """Top: one block of each kind, split by component (stacked horizontal bars). Bottom: whole stacks
    (``{"xLSTM[1:0]": stack_counts(...), ...}``), split by block kind. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 8.5), gridspec_kw=dict(height_ratios=(1.2, 1)))
    colors = iter(plt.get_cmap("tab20").colors)
    names = {"mlstm": "mLSTM block", "slstm": "sLSTM block"}
    for row, (kind, counts) in enumerate(block_counts.items()):
        left = 0.0
        for label, n in counts.items():
            ax1.barh(row, n / 1e6, left=left, color=next(colors), edgecolor="white", height=0.6,
                     label=f"{names[kind][0]}: {label}")
            left += n / 1e6
        ax1.text(left, row, f" {left:.2f} M", va="center", fontsize=8)
    ax1.set_yticks(range(len(block_counts)), [names[k] for k in block_counts])
    ax1.set_xlabel("parameters (millions)")
    ax1.set_xlim(0, 1.18 * ax1.get_xlim()[1])
    ax1.set_title("one block, by component", fontsize=9)
    ax1.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.17), frameon=False)

    kinds = (("mlstm", "mLSTM blocks", "tab:blue"), ("slstm", "sLSTM blocks", "tab:red"),
             ("post_blocks_norm", "final LayerNorm", "0.5"))
    bottoms = [0.0] * len(stacks)
    for kind, label, color in kinds:
        values = [sum(c[kind].values()) / 1e6 for c in stacks.values()]
        ax2.bar(list(stacks), values, bottom=bottoms, color=color, label=label, width=0.6)
        bottoms = [b + v for b, v in zip(bottoms, values)]
    for j, total in enumerate(bottoms):
        ax2.text(j, total, f"{total:.2f} M", ha="center", va="bottom", fontsize=8)
    ax2.set_ylim(0, 1.3 * max(bottoms))
    ax2.set_ylabel("parameters (millions)")
    ax2.set_title("whole stack, by block kind", fontsize=9)
    ax2.legend(fontsize=8, ncol=3, loc="upper left", frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def leading_coefficient(kind: str, config: xLSTMStackConfig) -> float:
    """The limit of (parameters per block) / ``E^2`` for large ``E`` without rounding: ``3 PF`` for the
    mLSTM block (``proj_up`` and ``proj_down``), ``3 PF_ff + 8 / NH`` for the sLSTM block (gated MLP,
    then ``W`` and ``R``)."""
    if kind == "mlstm":
        return 3.0 * config.mlstm_proj_factor
    if kind == "slstm":
        return 3.0 * config.ff_proj_factor + 8.0 / config.slstm_num_heads
    raise ValueError(f"kind must be one of {BLOCK_KINDS}, got {kind!r}")


def plot_parameter_scaling(widths, counted: dict[str, list[int]], formula: dict[str, list[int]],
                           leading: dict[str, float] | None = None, title: str = ""):
    """Left: parameters of one block against the width ``E`` (log-log), counted (markers) and from the
    formula (lines), with an ``E^2`` reference. Right: the same divided by ``E^2``, with the
    ``leading`` coefficients (dashed). Returns the figure."""
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    colors = {"mlstm": "tab:blue", "slstm": "tab:red"}
    names = {"mlstm": "mLSTM block", "slstm": "sLSTM block"}
    w = np.asarray(widths, dtype=float)
    for kind in counted:
        c, f = np.asarray(counted[kind], float), np.asarray(formula[kind], float)
        ax1.plot(w, f, "-", color=colors[kind], lw=1.2, label=f"{names[kind]}: formula")
        ax1.plot(w, c, "o", color=colors[kind], ms=4, mfc="none", label=f"{names[kind]}: counted")
        ax2.plot(w, f / w**2, "-", color=colors[kind], lw=1.2, label=f"{names[kind]}: formula")
        ax2.plot(w, c / w**2, "o", color=colors[kind], ms=4, mfc="none", label=f"{names[kind]}: counted")
        if leading and kind in leading:
            ax2.axhline(leading[kind], color=colors[kind], ls="--", lw=0.9,
                        label=f"{names[kind]}: leading term {leading[kind]:.2f} $E^2$")
    first = next(iter(counted))
    ax1.plot(w, counted[first][-1] * (w / w[-1]) ** 2, ":", color="0.4", label="$\\propto E^2$")
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax2.set_xscale("log", base=2)
    for ax in (ax1, ax2):
        ax.set_xlabel("embedding dimension $E$")
        ax.grid(alpha=0.3, which="both")
    ax1.set_ylabel("parameters per block")
    ax2.set_ylabel("parameters per block / $E^2$")
    ax1.set_title("log-log: both grow as $E^2$", fontsize=9)
    ax2.set_title("divided by $E^2$ (steps: F rounded up to a multiple of 64)", fontsize=9)
    ax1.legend(fontsize=7.5)
    ax2.legend(fontsize=7.5)
    fig.suptitle(title or "Parameters of one block against the width", fontsize=10)
    fig.tight_layout()
    return fig
