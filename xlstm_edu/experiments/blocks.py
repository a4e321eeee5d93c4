"""xLSTM blocks and stacks, taken apart (chapter "Blocks and stacks").

Everything here runs the package's blocks (:mod:`xlstm_edu.blocks`) and cells (:mod:`xlstm_edu.mlstm`,
:mod:`xlstm_edu.slstm`); nothing re-derives a cell's formula.

* :func:`trace_shapes`: the shape of every intermediate tensor of a block (forward hooks), including
  the cell call (:func:`record_cell_calls`);
* :func:`record_cell_calls`: which function of ``xlstm_edu.mlstm`` / ``xlstm_edu.slstm`` a block
  calls, with its arguments and output;
* :func:`mlstm_block_by_hand`, :func:`slstm_block_by_hand`: a block's output recomputed from its
  submodules and the package's public cell functions (the build-up from the cells);
* :func:`run_steps`: the step form (its state is read with :func:`xlstm_edu.timing.state_tensors`);
* :func:`component_counts`, :func:`stack_counts`, :func:`block_parameter_formula`: parameter counts;
* :func:`official_parity`, :func:`official_name_table`: the official NX-AI stack (if installed);
* :data:`DIAGRAMS`, :func:`diagram_shapes`: each block as boxes and arrows (data without coordinates;
  :mod:`xlstm_edu.figures.blocks` lays them out and draws them), its shape labels checked against the
  code.
"""

from __future__ import annotations

import contextlib
import functools
import re
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import mlstm, official, slstm
from ..blocks import (
    load_official_state_dict,
    mLSTMBlock,
    sLSTMBlock,
    xLSTMBlockStack,
    xLSTMStackConfig,
)

#: The two block kinds, in the order the chapter shows them.
BLOCK_KINDS = ("slstm", "mlstm")

#: Cell functions a block may call, per cell module (the names the blocks look up at call time).
CELL_FUNCTIONS = {
    "mlstm": ("parallel_torch", "chunkwise_torch", "recurrent_torch", "step_torch"),
    "slstm": ("recurrent_fused", "recurrent_torch", "step_torch"),
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
    ``step_torch``, or ``recurrent_fused`` falling back to it) are not recorded. Yields the list of
    :class:`CellCall`, filled as the block runs.
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
    ``B, S, E, NH, DH, K`` and ``U`` (mLSTM inner width) or ``F`` (sLSTM feed-forward width)."""
    B, S, E = x.shape
    dims = dict(B=B, S=S, E=E, NH=block.num_heads, DH=block.head_dim, K=block.conv1d.kernel_size)
    if isinstance(block, mLSTMBlock):
        dims["U"] = block.inner_dim
    elif isinstance(block, sLSTMBlock):
        dims["F"] = block.ffn.inner_dim
    else:
        raise ValueError(f"expected an mLSTMBlock or sLSTMBlock, got {type(block).__name__}")
    return dims


def eval_shape(symbolic: str, dims: dict[str, int]) -> tuple[int, ...]:
    """``"(B, S, 2U)"`` with ``dims`` -> ``(2, 12, 256)``; entries are products like ``2U`` or
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
    NH, DH, U = block.num_heads, block.head_dim, block.inner_dim
    a, b = block.proj_up(block.norm(x)).split(U, dim=-1)  # (B, S, U) each
    a_conv = F.silu(block.conv1d(a)[0])  # (B, S, U): causal conv, then swish
    q, k, v = block.q_proj(a_conv), block.k_proj(a_conv), block.v_proj(a)  # (B, S, U) each
    qkv = torch.cat([q, k, v], dim=-1)  # (B, S, 3U)
    i_pre, f_pre = block.igate(qkv), block.fgate(qkv)  # (B, S, NH) each

    def heads(t):  # (B, S, U) -> (B, NH, S, DH)
        return t.reshape(B, S, NH, DH).transpose(1, 2)

    h = mlstm.parallel(heads(q), heads(k), heads(v), i_pre.transpose(1, 2), f_pre.transpose(1, 2),
                       eps=block.eps)  # (B, NH, S, DH)
    h = block.outnorm(h.transpose(1, 2)).reshape(B, S, U)  # norm per head, heads side by side
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

    * mLSTM (``U`` inner width, ``P`` the q/k/v block size, ``[.]`` only with ``bias``):
      ``3 U E + U (K + 3 + 3 P + 6 NH) + E + 2 NH  [+ 2U + 3U + E]``;
    * sLSTM (``F`` feed-forward width): ``3 E F + 8 E^2 / NH + E (K + 8)``.
    """
    E, K = config.embedding_dim, config.conv1d_kernel_size
    if kind == "mlstm":
        U, NH, P = config.mlstm_inner_dim, config.mlstm_num_heads, config.qkv_proj_blocksize
        n = 3 * U * E + U * (K + 3 + 3 * P + 6 * NH) + E + 2 * NH
        return n + (5 * U + E if config.bias else 0)
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
    from ..blocks import official_to_ours

    official_stack = official.build_stack(config, torch.float64)
    tagged = {name: torch.full_like(t, float(j + 1), dtype=torch.float64)
              for j, (name, t) in enumerate(official_stack.state_dict().items())}
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
    if config.context_length < x.shape[1]:
        raise ValueError(f"context_length ({config.context_length}) must be >= S ({x.shape[1]}): the "
                         "official mLSTM layer's causal mask has that size")
    official_stack = official.build_stack(config, x.dtype)
    perturb_parameters_(official_stack, scale, seed=seed)
    ours = load_official_state_dict(xLSTMBlockStack(config).to(x.dtype), official_stack.state_dict())
    with torch.no_grad():
        y_official = official_stack(x)
        y_ours = ours(x)
    y_steps, _ = run_steps(ours, x)
    return {"forward": float((y_ours - y_official).abs().max()),
            "step": float((y_steps - y_official).abs().max()),
            "scale": float(y_official.abs().max())}


# --- the block diagrams (data only: xlstm_edu.figures.blocks lays them out and draws them) ---------


class Box(NamedTuple):
    r"""One box of a block diagram. No coordinates: :mod:`xlstm_edu.figures.blocks` places it.

    ``kind`` is the color key (``"io"``, ``"norm"``, ``"linear"``, ``"conv"``, ``"cell"``, ``"op"``; an
    ``"op"`` labelled ``+`` or ``$\odot$`` is a circle). ``trace`` names the row of
    :func:`trace_shapes` whose shape the box shows, ``shape`` its symbolic shape (checked by
    :func:`diagram_shapes`). Placement hints, relative to other boxes: ``over`` centers the box over
    (or under) those boxes, ``span`` makes it as wide as they are together, ``beside`` puts it to the
    right of that box of the same row. Without a hint, the boxes of a row are spread evenly.
    """

    key: str
    label: str
    kind: str
    trace: str | None = None
    shape: str | None = None
    over: tuple[str, ...] = ()
    span: bool = False
    beside: str | None = None


class Diagram(NamedTuple):
    """A block as data: ``rows`` of boxes from the input (bottom) to the output (top).

    ``edges``: arrows ``(from, to, label)`` (``""``: no label); ``concats``: ``(sources, to)``, tensors
    concatenated into one box; ``bypasses``: dashed connections ``(from, to, label)`` around the boxes
    between them (residuals, the learnable skip); ``loop``: ``(box, label)``, a recurrent connection.
    """

    title: str
    rows: tuple[tuple[Box, ...], ...]
    edges: tuple[tuple[str, str, str], ...]
    concats: tuple[tuple[tuple[str, ...], str], ...] = ()
    bypasses: tuple[tuple[str, str, str], ...] = ()
    loop: tuple[str, str] | None = None


#: The two blocks, data bottom to top as in the paper's figures.
DIAGRAMS = {
    "slstm": Diagram(
        title="sLSTM block (post up-projection)",
        rows=(
            (Box("x", "input $x$", "io", "x", "(B, S, E)"),),
            (Box("norm", "LayerNorm", "norm", "norm", "(B, S, E)"),),
            (Box("conv", "causal conv ($K$) + swish", "conv", "conv1d", "(B, S, E)", over=("i", "f"),
                 span=True),),
            (Box("i", "$W_i$ (headwise)", "linear", "igate", "(B, S, E)"),
             Box("f", "$W_f$ (headwise)", "linear", "fgate", "(B, S, E)"),
             Box("z", "$W_z$ (headwise)", "linear", "zgate", "(B, S, E)"),
             Box("o", "$W_o$ (headwise)", "linear", "ogate", "(B, S, E)")),
            (Box("cell", "sLSTM cell (slstm.recurrent_fused): NH heads\n$R$ mixes inside a head",
                 "cell", "slstm.recurrent_fused(...)", "(B, NH, S, DH)", over=("i", "o"), span=True),),
            (Box("outnorm", "GroupNorm (per head)", "norm", "outnorm", "(B, S, NH, DH)"),),
            (Box("res1", "+", "op"),),
            (Box("ffn_norm", "LayerNorm", "norm", "ffn_norm", "(B, S, E)"),),
            (Box("ffn_up", "up-projection (PF $\\approx$ 4/3)", "linear", "ffn.proj_up", "(B, S, 2F)"),),
            (Box("gelu", "GeLU(gate) $\\odot$ up", "op"),),
            (Box("ffn_down", "down-projection", "linear", "ffn.proj_down", "(B, S, E)"),),
            (Box("res2", "+", "op"),),
            (Box("y", "output $y$", "io", "y", "(B, S, E)"),),
        ),
        edges=(
            ("x", "norm", ""), ("norm", "conv", ""), ("conv", "i", ""), ("conv", "f", ""),
            ("norm", "z", ""), ("norm", "o", ""), ("i", "cell", "$\\tilde\\imath$"),
            ("f", "cell", "$\\tilde f$"), ("z", "cell", "$\\tilde z$"), ("o", "cell", "$\\tilde o$"),
            ("cell", "outnorm", "$h$"), ("outnorm", "res1", ""),
            ("res1", "ffn_norm", ""), ("ffn_norm", "ffn_up", ""), ("ffn_up", "gelu", "gate, up"),
            ("gelu", "ffn_down", ""), ("ffn_down", "res2", ""), ("res2", "y", ""),
        ),
        bypasses=(("x", "res1", "residual"), ("res1", "res2", "residual")),
        loop=("cell", "$R\\,h_{t-1}$"),
    ),
    "mlstm": Diagram(
        title="mLSTM block (pre up-projection)",
        rows=(
            (Box("x", "input $x$", "io", "x", "(B, S, E)"),),
            (Box("norm", "LayerNorm", "norm", "norm", "(B, S, E)"),),
            (Box("up", "up-projection (PF 2) into $a$, $b$", "linear", "proj_up", "(B, S, 2U)"),),
            (Box("conv", "causal conv ($K$) + swish", "conv", "conv1d", "(B, S, U)", over=("q", "k"),
                 span=True),),
            (Box("q", "$q$ (block-diag.)", "linear", "q_proj", "(B, S, U)"),
             Box("k", "$k$ (block-diag.)", "linear", "k_proj", "(B, S, U)"),
             Box("v", "$v$ (block-diag.)", "linear", "v_proj", "(B, S, U)")),
            (Box("cell", "mLSTM cell (mlstm.chunkwise_torch)\nNH heads", "cell",
                 "mlstm.chunkwise_torch(...)", "(B, NH, S, DH)", over=("q", "v"), span=True),
             Box("gates", "gates $\\tilde\\imath, \\tilde f$", "linear", "igate", "(B, S, NH)",
                 beside="cell")),
            (Box("outnorm", "GroupNorm (per head)", "norm", "outnorm", "(B, S, NH, DH)"),),
            (Box("skip", "+", "op"),),
            (Box("mul", "$\\odot$", "op"), Box("swish", "swish($b$)", "op", beside="mul")),
            (Box("down", "down-projection", "linear", "proj_down", "(B, S, E)"),),
            (Box("res", "+", "op"),),
            (Box("y", "output $y$", "io", "y", "(B, S, E)"),),
        ),
        edges=(
            ("x", "norm", ""), ("norm", "up", ""), ("up", "conv", "$a$"), ("up", "v", "$a$"),
            ("up", "swish", "$b$"), ("conv", "q", ""), ("conv", "k", ""), ("q", "cell", ""),
            ("k", "cell", ""), ("v", "cell", ""), ("gates", "cell", ""), ("cell", "outnorm", "$h$"),
            ("outnorm", "skip", ""), ("skip", "mul", ""), ("swish", "mul", "output gate"),
            ("mul", "down", ""), ("down", "res", ""), ("res", "y", ""),
        ),
        concats=((("q", "k", "v"), "gates"),),
        bypasses=(("conv", "skip", "learnable skip"), ("x", "res", "residual")),
    ),
}


def diagram_boxes(kind: str) -> dict[str, Box]:
    """The boxes of the ``kind`` diagram by key, bottom row first."""
    if kind not in DIAGRAMS:
        raise ValueError(f"kind must be one of {tuple(DIAGRAMS)}, got {kind!r}")
    return {box.key: box for row in DIAGRAMS[kind].rows for box in row}


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
    for key, box in diagram_boxes(kind).items():
        if box.trace is None:
            continue
        if box.trace not in traced:
            raise ValueError(f"box {key!r}: no traced tensor {box.trace!r}")
        expected = eval_shape(box.shape, dims)
        if expected != traced[box.trace]:
            raise ValueError(f"box {key!r}: label {box.shape} = {expected} but the block computes "
                             f"{traced[box.trace]}")
        out[key] = (box.shape, traced[box.trace])
    return out


def diagram_title(kind: str, block: nn.Module | None = None, x: torch.Tensor | None = None) -> str:
    """The diagram's title; with a block and an input, a second line with :func:`block_dims`."""
    title = DIAGRAMS[kind].title
    if block is not None:
        title += "\n" + ", ".join(f"{k}={v}" for k, v in block_dims(block, x).items())
    return title


# --- the parameter-count limit ---------------------------------------------------------------------


def leading_coefficient(kind: str, config: xLSTMStackConfig) -> float:
    """The limit of (parameters per block) / ``E^2`` for large ``E`` without rounding: ``3 PF`` for the
    mLSTM block (``proj_up`` and ``proj_down``), ``3 PF_ff + 8 / NH`` for the sLSTM block (gated MLP,
    then ``W`` and ``R``)."""
    if kind == "mlstm":
        return 3.0 * config.mlstm_proj_factor
    if kind == "slstm":
        return 3.0 * config.ff_proj_factor + 8.0 / config.slstm_num_heads
    raise ValueError(f"kind must be one of {BLOCK_KINDS}, got {kind!r}")
