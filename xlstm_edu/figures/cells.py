r"""The cell diagrams of the LSTM, the sLSTM and the mLSTM, drawn once in one style and reused.

Which chapter shows which: chapter 02 (``02_lstm``) the ``"lstm"`` diagram, chapter 04
(``04_slstm``) the ``"slstm"``, chapter 05 (``05_mlstm``) the ``"mlstm"``; the opening chapter
(``00_why_xlstm``) may show all three side by side (:func:`cell_diagrams`). Usage in a chapter::

    from xlstm_edu.figures import cells
    cells.cell_diagram("slstm");

The three share one layout, so that the reader sees exactly what changes from one to the next:

* **LSTM**: the memory $c$ runs along the top (``c_{t-1}`` in, ``c_t`` out), the four gates
  $\sigma, \sigma, \tanh, \sigma$ sit in a row under it, fed by the pre-activations
  $W_{ih} x_t + W_{hh} h_{t-1} + b$ (a dense $W_{hh}$); $h_t = o_t \odot \tanh(c_t)$.
* **sLSTM**: the input gate becomes $\exp$ (red), a normalizer line $n$ sums the input gates, a
  stabilizer line $m$ keeps $\exp$ in range; the output squashing $\tanh(c_t)$ is replaced by the
  division $c_t / n_t$ (same place in the figure); the recurrent weights $R$ are block-diagonal per head.
* **mLSTM**: the memory is a matrix $C$, written with $v_t k_t^\top$ and read with $q_t$; the gates
  see $x_t$ only (no $h_{t-1}$ enters: no recurrent weights at all), and the output gate lies outside
  the cell (it belongs to the layer).

Each cell is data (:data:`CELLS`: parts on a grid of columns and rows, and edges between them; no
coordinates). :func:`layout` sizes the columns and rows from the text (measured like the block
diagrams, :func:`xlstm_edu.figures.blocks.text_size`), routes every edge straight or with one bend,
and raises ``ValueError`` if two boxes overlap (:func:`xlstm_edu.figures.blocks._check_overlaps`) or
an edge runs through a box. The boxes are drawn with :func:`xlstm_edu.figures.blocks.draw_node`, in the
colors of the block diagrams; a line that crosses another without a dot is not connected to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from ..experiments.blocks import Box
from . import blocks as _blocks
from ._style import TEXT_WIDTH_IN, pyplot

#: The cell kinds, in the order the book introduces them.
CELL_KINDS = ("lstm", "slstm", "mlstm")


class Part(NamedTuple):
    r"""One element of a cell diagram, placed on the grid: column ``col`` (spanning ``span`` columns,
    centered on them) and row ``row`` (0 is the top).

    ``kind``: ``"sigmoid"``, ``"tanh"``, ``"exp"`` (gates, colored by their activation),
    ``"linear"``, ``"state"``, ``"op"`` (a box; an ``"op"`` labelled ``$\times$``, ``+``, ``$\div$`` is
    a circle), ``"in"`` / ``"out"`` (a state or input entering / leaving the cell: text only),
    ``"dot"`` (a junction). ``outside``: drawn outside the cell's frame, with a dashed border.
    """

    key: str
    label: str
    kind: str
    col: int
    row: int
    span: int = 1
    outside: bool = False


class Edge(NamedTuple):
    """An arrow from ``src`` to ``dst`` (a plain line into a junction). ``route``: ``""`` straight (or,
    if the two are neither in one row nor over each other, ``"vh"``), ``"vh"`` vertical out of ``src``
    then horizontal into ``dst``, ``"hv"`` the other way round. ``label`` is written beside the first
    segment, at the fraction ``at`` of its length."""

    src: str
    dst: str
    label: str = ""
    route: str = ""
    at: float = 0.5


class Cell(NamedTuple):
    """A cell as data: its title, parts, edges and a note (a line under the diagram)."""

    title: str
    parts: tuple[Part, ...]
    edges: tuple[Edge, ...]
    note: str = ""


def _op(key, label, col, row, span=1):
    return Part(key, label, "op", col, row, span)


_X, _PLUS, _DIV = "$\\times$", "+", "$\\div$"


def _gates_and_bus(gates, bus_from, extra_bus=()):
    """The row of gates, the bus under it (one junction per gate) and the edges bus -> gate.

    ``gates``: ``(key, activation label, kind, col, span, pre-activation label, row)``; ``bus_from``:
    the key of the junction the bus is fed at; ``extra_bus``: further junctions ``(key, col, span)``.
    """
    parts, edges = [], []
    junctions = []
    for key, label, kind, col, span, pre, row in gates:
        parts.append(Part(key, label, kind, col, row, span))
        parts.append(Part(f"jb_{key}", "", "dot", col, row + 1, span))
        edges.append(Edge(f"jb_{key}", key, pre))
        junctions.append((col, f"jb_{key}"))
    for key, col, span in extra_bus:
        parts.append(Part(key, "", "dot", col, gates[0][6] + 1, span))
        junctions.append((col, key))
    junctions.sort()
    keys = [k for _, k in junctions]
    feed = keys.index(bus_from)
    for a, b in zip(keys[:feed], keys[1:feed + 1]):  # the bus runs out from where it is fed
        edges.append(Edge(b, a))
    for a, b in zip(keys[feed:-1], keys[feed + 1:]):
        edges.append(Edge(a, b))
    return parts, edges


def _lstm() -> Cell:
    g = 2  # the row of the gates
    gates, bus = _gates_and_bus(
        (("f", "$\\sigma$", "sigmoid", 1, 1, "$\\tilde f_t$", g),
         ("i", "$\\sigma$", "sigmoid", 2, 1, "$\\tilde\\imath_t$", g),
         ("g", "$\\tanh$", "tanh", 3, 1, "$\\tilde g_t$", g),
         ("o", "$\\sigma$", "sigmoid", 4, 1, "$\\tilde o_t$", g)), "jb_i")
    parts = (
        Part("c_in", "$c_{t-1}$", "in", 0, 0), _op("mul_f", _X, 1, 0), _op("add_c", _PLUS, 3, 0),
        Part("jc", "", "dot", 5, 0), Part("c_out", "$c_t$", "out", 6, 0),
        _op("mul_ig", _X, 3, 1), Part("tanh_c", "$\\tanh$", "tanh", 5, 1),
        *gates, _op("mul_h", _X, 5, g), Part("h_out", "$h_t$", "out", 6, g),
        _op("add_pre", _PLUS, 2, g + 2),
        Part("W_h", "$W_{hh}$, dense:\nmixes all units", "linear", 1, g + 3),
        Part("W_x", "$W_{ih}$, $b$", "linear", 3, g + 3),
        Part("h_in", "$h_{t-1}$", "in", 1, g + 4), Part("x_in", "$x_t$", "in", 3, g + 4),
    )
    edges = (
        Edge("c_in", "mul_f"), Edge("mul_f", "add_c"), Edge("add_c", "jc"), Edge("jc", "c_out"),
        Edge("f", "mul_f", "$f_t$", at=0.3), Edge("i", "mul_ig", "$i_t$", "vh", at=0.55),
        Edge("g", "mul_ig", "$g_t$"), Edge("mul_ig", "add_c"),
        Edge("jc", "tanh_c"), Edge("tanh_c", "mul_h"), Edge("o", "mul_h", "$o_t$"),
        Edge("mul_h", "h_out"),
        *bus, Edge("add_pre", "jb_i"), Edge("W_h", "add_pre"), Edge("W_x", "add_pre"),
        Edge("h_in", "W_h"), Edge("x_in", "W_x"),
    )
    note = "$c_t = f_t \\odot c_{t-1} + i_t \\odot g_t$,   $h_t = o_t \\odot \\tanh(c_t)$"
    return Cell("LSTM cell", parts, edges, note)


def _slstm() -> Cell:
    g = 4
    gates, bus = _gates_and_bus(
        (("f", "$\\sigma$", "sigmoid", 2, 2, "$\\tilde f_t$", g),
         ("i", "$\\exp$", "exp", 4, 2, "$\\tilde\\imath_t$", g),
         ("z", "$\\tanh$", "tanh", 6, 1, "$\\tilde z_t$", g),
         ("o", "$\\sigma$", "sigmoid", 7, 1, "$\\tilde o_t$", g)), "jb_i", (("jb_m", 1, 1),))
    parts = (
        Part("m_in", "$m_{t-1}$", "in", 0, 0), Part("stab", "$\\max$ (stabilizer)", "state", 1, 0, 4),
        Part("m_out", "$m_t$", "out", 10, 0),
        Part("c_in", "$c_{t-1}$", "in", 0, 1), _op("mul_fc", _X, 2, 1), _op("add_c", _PLUS, 5, 1),
        Part("jc", "", "dot", 8, 1), Part("c_out", "$c_t$", "out", 10, 1),
        _op("mul_iz", _X, 5, 2), _op("div", _DIV, 8, 2),
        Part("n_in", "$n_{t-1}$", "in", 0, 3), _op("mul_fn", _X, 3, 3), _op("add_n", _PLUS, 4, 3),
        Part("jn", "", "dot", 8, 3), Part("n_out", "$n_t$", "out", 10, 3),
        *gates, _op("mul_h", _X, 9, g), Part("h_out", "$h_t$", "out", 10, g),
        _op("add_pre", _PLUS, 4, g + 2, 2),
        Part("R", "$R$, block-diagonal:\nmixes within a head", "linear", 2, g + 3, 2),
        Part("W", "$W$, $b$", "linear", 6, g + 3),
        Part("h_in", "$h_{t-1}$", "in", 2, g + 4, 2), Part("x_in", "$x_t$", "in", 6, g + 4),
    )
    edges = (
        Edge("m_in", "stab"), Edge("stab", "m_out"),
        Edge("c_in", "mul_fc"), Edge("mul_fc", "add_c"), Edge("add_c", "jc"), Edge("jc", "c_out"),
        Edge("n_in", "mul_fn"), Edge("mul_fn", "add_n"), Edge("add_n", "jn"), Edge("jn", "n_out"),
        Edge("f", "mul_fc"), Edge("f", "mul_fn", "$f_t$"),
        Edge("i", "add_n", "$i_t$"), Edge("i", "mul_iz"),
        Edge("z", "mul_iz", "$z_t$", "vh", at=0.25), Edge("mul_iz", "add_c"),
        Edge("jc", "div"), Edge("jn", "div"), Edge("div", "mul_h", "", "hv"),
        Edge("o", "mul_h", "$o_t$"), Edge("mul_h", "h_out"),
        *bus, Edge("jb_m", "stab", "$\\tilde\\imath_t, \\tilde f_t$", at=0.2),
        Edge("add_pre", "jb_i"), Edge("R", "add_pre"), Edge("W", "add_pre"),
        Edge("h_in", "R"), Edge("x_in", "W"),
    )
    note = ("$c_t = f_t c_{t-1} + i_t z_t$,   $n_t = f_t n_{t-1} + i_t$,   $h_t = o_t\\, c_t / n_t$\n"
            "stabilized: $m_t = \\max(\\log f_t + m_{t-1}, \\tilde\\imath_t)$; $c$ and $n$ use "
            "$i_t e^{-m_t}$ and $f_t e^{m_{t-1} - m_t}$")
    return Cell("sLSTM cell", parts, edges, note)


def _mlstm() -> Cell:
    g = 5
    gates, bus = _gates_and_bus(
        (("f", "$\\sigma$", "sigmoid", 2, 2, "$\\tilde f_t$", g),
         ("i", "$\\exp$", "exp", 4, 2, "$\\tilde\\imath_t$", g),
         ("k", "$W_k / \\sqrt{d}$", "linear", 6, 1, "", g),
         ("v", "$W_v$", "linear", 7, 1, "", g),
         ("q", "$W_q$", "linear", 8, 1, "", g),
         ("o", "$\\sigma$", "sigmoid", 12, 1, "$\\tilde o_t$", g)), "jb_i", (("jb_m", 1, 1),))
    parts = (
        Part("m_in", "$m_{t-1}$", "in", 0, 0), Part("stab", "$\\max$ (stabilizer)", "state", 1, 0, 4),
        Part("m_out", "$m_t$", "out", 11, 0),
        Part("C_in", "$C_{t-1}$", "in", 0, 1), _op("mul_fC", _X, 2, 1), _op("add_C", _PLUS, 5, 1),
        Part("jC", "", "dot", 9, 1), Part("C_out", "$C_t$", "out", 11, 1),
        _op("mul_ivk", _X, 5, 2), Part("vk", "$v_t k_t^\\top$", "op", 6, 2, 2),
        Part("num", "$C_t\\, q_t$", "op", 9, 2), _op("div", _DIV, 10, 2),
        Part("n_in", "$n_{t-1}$", "in", 0, 3), _op("mul_fn", _X, 3, 3), _op("add_n", _PLUS, 4, 3),
        Part("jn", "", "dot", 9, 3), Part("n_out", "$n_t$", "out", 11, 3),
        _op("mul_ik", _X, 4, 4), Part("jk", "", "dot", 6, 4), Part("jq", "", "dot", 8, 4),
        Part("den", "$\\max\\{|n_t^\\top q_t|, 1\\}$", "op", 9, 4, 2),
        *gates,
        Part("mul_o", _X, "op", 12, 2, outside=True), Part("h_out", "$h_t$", "out", 13, 2),
        Part("x_in", "$x_t$", "in", 4, g + 2, 2),
    )
    gates_out = tuple(p._replace(outside=True) if p.key in ("o", "jb_o") else p for p in parts)
    edges = (
        Edge("m_in", "stab"), Edge("stab", "m_out"),
        Edge("C_in", "mul_fC"), Edge("mul_fC", "add_C"), Edge("add_C", "jC"), Edge("jC", "C_out"),
        Edge("n_in", "mul_fn"), Edge("mul_fn", "add_n"), Edge("add_n", "jn"), Edge("jn", "n_out"),
        Edge("f", "mul_fC"), Edge("f", "mul_fn", "$f_t$"),
        Edge("i", "mul_ik", "$i_t$", at=0.4), Edge("i", "mul_ivk"), Edge("mul_ik", "add_n"),
        Edge("mul_ivk", "add_C"),
        Edge("k", "jk", "$k_t$"), Edge("jk", "vk"), Edge("jk", "mul_ik"),
        Edge("v", "vk", "$v_t$", at=0.2),
        Edge("vk", "mul_ivk"),
        Edge("q", "jq", "$q_t$"), Edge("jq", "num", "", "vh"), Edge("jq", "den"),
        Edge("jC", "num"), Edge("jn", "den"), Edge("num", "div"), Edge("den", "div"),
        Edge("div", "mul_o", "$\\tilde h_t$"), Edge("o", "mul_o", "$o_t$", at=0.3),
        Edge("mul_o", "h_out"),
        *bus, Edge("jb_m", "stab", "$\\tilde\\imath_t, \\tilde f_t$", at=0.25), Edge("x_in", "jb_i"),
    )
    note = ("$C_t = f_t C_{t-1} + i_t v_t k_t^\\top$,   $n_t = f_t n_{t-1} + i_t k_t$,   "
            "$h_t = o_t \\odot \\tilde h_t$\n"
            "gates from $x_t$ only (no $h_{t-1}$); stabilized as in the sLSTM, "
            "the 1 in the readout becomes $e^{-m_t}$")
    return Cell("mLSTM cell (one head)", gates_out, edges, note)


#: The three cells as data (built once, at import; no matplotlib).
CELLS: dict[str, Cell] = {"lstm": _lstm(), "slstm": _slstm(), "mlstm": _mlstm()}


# --- layout -----------------------------------------------------------------------------------------

_COL_GAP = 0.15  # inches between the widest parts of two neighbouring columns (the mLSTM's 14
# columns fit the book's text width at fontsize 10)
_ROW_GAP = 0.3
_MIN_COL, _MIN_ROW = 0.45, 0.32
_MIN_DOT_ROW = 0.5
_FRAME = 0.16  # between the inside parts and the cell's frame
_TERM_PAD = 0.04  # between a terminal's text and its arrow


@dataclass
class CellLayout:
    """Where :func:`draw_cell` draws everything, in inches (y up)."""

    kind: str
    nodes: dict[str, _blocks.Node]
    routes: list[_blocks.Route] = field(default_factory=list)
    labels: list[_blocks.Label] = field(default_factory=list)
    frame: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # x0, y0, x1, y1
    xlim: tuple[float, float] = (0.0, 1.0)
    ylim: tuple[float, float] = (0.0, 1.0)
    fontsize: float = 10.0

    @property
    def size(self) -> tuple[float, float]:
        """The figure size (inches) at which text has its nominal size."""
        return self.xlim[1] - self.xlim[0], self.ylim[1] - self.ylim[0]


def _check_kind(kind: str) -> Cell:
    if kind not in CELLS:
        raise ValueError(f"kind must be one of {CELL_KINDS}, got {kind!r}")
    return CELLS[kind]


def _size(part: Part, fontsize: float) -> tuple[float, float]:
    if part.kind == "dot":
        return 0.0, 0.0
    if part.kind == "op" and part.label in _blocks._CIRCLE_LABELS:
        return 2 * _blocks._RADIUS, 2 * _blocks._RADIUS
    w, h = _blocks.text_size(part.label, fontsize)
    if part.kind in ("in", "out"):
        return w + 2 * _TERM_PAD, h
    return w + 2 * _blocks._PAD_X, h + 2 * _blocks._PAD_Y


def _grid(sizes: dict[str, tuple[float, float]], parts: tuple[Part, ...]):
    """Column centers (left to right) and row centers (top to bottom, y up), in inches."""
    ncols = max(p.col + p.span for p in parts)
    nrows = max(p.row for p in parts) + 1
    widths = [_MIN_COL] * ncols
    heights = [_MIN_ROW] * nrows
    for p in sorted(parts, key=lambda p: p.span):
        w, h = sizes[p.key]
        cols = range(p.col, p.col + p.span)
        have = sum(widths[c] for c in cols)
        if w + _COL_GAP > have:  # widen the spanned columns evenly
            for c in cols:
                widths[c] += (w + _COL_GAP - have) / p.span
        heights[p.row] = max(heights[p.row], h + _ROW_GAP)
    for r in range(nrows):  # a row of junctions only (the bus): room for the labels above it
        if all(p.kind == "dot" for p in parts if p.row == r):
            heights[r] = _MIN_DOT_ROW
    xs, x = [], 0.0
    for w in widths:
        xs.append(x + w / 2)
        x += w
    ys, y = [], 0.0
    for h in heights:
        ys.append(y - h / 2)
        y -= h
    return xs, ys


def _port(n: _blocks.Node, toward: tuple[float, float], vertical: bool) -> tuple[float, float]:
    """Where a line leaving ``n`` toward the point ``toward`` along one axis (``vertical`` or not)
    meets ``n``'s border (the center of a junction)."""
    if n.box.kind == "dot":
        return n.x, n.y
    if vertical:
        return toward[0], n.y + (n.h / 2 if toward[1] > n.y else -n.h / 2)
    return n.x + (n.w / 2 if toward[0] > n.x else -n.w / 2), toward[1]


def _within(x: float, n: _blocks.Node, margin: float = 0.06) -> bool:
    if n.box.kind == "dot" or n.circle or n.box.kind in ("in", "out"):
        return abs(x - n.x) < 1e-9
    return n.left + margin <= x <= n.right - margin


def _route(edge: Edge, s: _blocks.Node, d: _blocks.Node) -> tuple[tuple[float, float], ...]:
    if abs(s.y - d.y) < 1e-9:  # one row: straight across
        return _port(s, (d.x, s.y), False), _port(d, (s.x, d.y), False)
    for x in (d.x, s.x):  # over each other: straight up or down
        if _within(x, s) and _within(x, d):
            return _port(s, (x, d.y), True), _port(d, (x, s.y), True)
    if edge.route == "hv":
        corner = (d.x, s.y)
        return _port(s, corner, False), corner, _port(d, corner, True)
    corner = (s.x, d.y)
    return _port(s, corner, True), corner, _port(d, corner, False)


def layout(kind: str, fontsize: float = 10.0) -> CellLayout:
    """Positions (inches) of the parts, edges and labels of the ``kind`` cell diagram.

    Raises ``ValueError`` for an unknown kind, if two boxes overlap, or if an edge crosses a box.
    """
    cell = _check_kind(kind)
    sizes = {p.key: _size(p, fontsize) for p in cell.parts}
    xs, ys = _grid(sizes, cell.parts)
    nodes = {}
    for p in cell.parts:
        w, h = sizes[p.key]
        x0, x1 = xs[p.col], xs[p.col + p.span - 1]
        if p.span > 1 and p.kind not in ("dot", "in", "out") and w != 2 * _blocks._RADIUS:
            # a wide box covers the centers of its columns (a circle keeps its size)
            w = max(w, x1 - x0 + 0.3)
        nodes[p.key] = _blocks.Node(Box(p.key, p.label, p.kind), p.row, p.label, None, w, h,
                                    x=(x0 + x1) / 2, y=ys[p.row])
    solid = {k: n for k, n in nodes.items() if n.box.kind != "dot"}
    _blocks._check_overlaps(solid)
    lay = CellLayout(kind, nodes, fontsize=fontsize)
    for e in cell.edges:
        pts = _route(e, nodes[e.src], nodes[e.dst])
        style = "line" if nodes[e.dst].box.kind == "dot" else "edge"
        lay.routes.append(_blocks.Route(e.src, e.dst, pts, style))
        if e.label:
            (x0, y0), (x1, y1) = pts[0], pts[1]
            x, y = x0 + e.at * (x1 - x0), y0 + e.at * (y1 - y0)
            if abs(x1 - x0) < 1e-9:  # vertical: the label on the right
                lay.labels.append(_blocks.Label(x + 0.05, y, e.label))
            else:
                lay.labels.append(_blocks.Label(x, y + 0.04, e.label, ha="center", va="bottom"))
    _blocks._check_routes(solid, lay.routes)

    inside = [nodes[p.key] for p in cell.parts if p.kind not in ("in", "out") and not p.outside]
    lay.frame = (min(n.left for n in inside) - _FRAME, min(n.bottom for n in inside) - _FRAME,
                 max(n.right for n in inside) + _FRAME, max(n.top for n in inside) + _FRAME)
    xs_all = [v for n in nodes.values() for v in (n.left, n.right)] + [lay.frame[0], lay.frame[2]]
    ys_all = [v for n in nodes.values() for v in (n.bottom, n.top)] + [lay.frame[1], lay.frame[3]]
    title_h = _blocks.text_size(cell.title, fontsize + 1.5)[1]
    note_h = _blocks.text_size(cell.note, fontsize - 0.5)[1] if cell.note else 0.0
    margin = _blocks._MARGIN
    lay.xlim = (min(xs_all) - margin, max(xs_all) + margin)
    lay.ylim = (min(ys_all) - note_h - 0.15 - margin, max(ys_all) + title_h + 0.1 + margin)
    return lay


# --- drawing ----------------------------------------------------------------------------------------


def draw_cell(kind: str, ax, fontsize: float = 10.0):
    """Draw the ``kind`` cell diagram into ``ax`` (which should have the size :func:`layout` gives,
    ``layout(kind).size``, for the text to have ``fontsize`` points). Returns ``ax``."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path
    from matplotlib.patheffects import Normal, Stroke

    cell = _check_kind(kind)
    lay = layout(kind, fontsize)
    outside = {p.key for p in cell.parts if p.outside}
    ax.set_xlim(*lay.xlim)
    ax.set_ylim(*lay.ylim)
    ax.set_aspect("equal")
    ax.axis("off")
    x0, y0, x1, y1 = lay.frame
    frame = FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0,rounding_size=0.12",
                           fc="#f6f6f6", ec="0.45", lw=1.0, zorder=0)
    frame.set_gid("frame")
    ax.add_patch(frame)

    degree: dict[str, int] = {}
    for rt in lay.routes:
        for k in (rt.src, rt.dst):
            degree[k] = degree.get(k, 0) + 1
    for key, n in lay.nodes.items():
        if n.box.kind == "dot":
            if degree.get(key, 0) >= 3:  # a branch point
                ax.plot([n.x], [n.y], "o", ms=3.8, color=_blocks._LINE, zorder=4, gid=f"dot:{key}")
        elif n.box.kind in ("in", "out"):
            ax.text(n.x, n.y, n.label, ha="center", va="center", fontsize=fontsize + 0.5, zorder=4,
                    gid=f"{n.box.kind}:{key}")
        else:
            _blocks.draw_node(ax, key, n, fontsize, ls="--" if key in outside else "-")

    halo = [Stroke(linewidth=4.0, foreground="#f6f6f6"), Normal()]  # a crossing line shows a gap
    for rt in lay.routes:
        codes = [Path.MOVETO] + [Path.LINETO] * (len(rt.points) - 1)
        head = "-|>" if rt.style == "edge" else "-"
        arrow = FancyArrowPatch(path=Path(rt.points, codes), arrowstyle=head, mutation_scale=10, lw=1.0,
                                zorder=2, color=_blocks._LINE, shrinkA=0, shrinkB=0,
                                joinstyle="miter", capstyle="butt")
        arrow.set_path_effects(halo)
        arrow.set_gid(f"{rt.style}:{rt.src}->{rt.dst}")
        ax.add_patch(arrow)
    for lab in lay.labels:
        ax.text(lab.x, lab.y, lab.text, ha=lab.ha, va=lab.va, color=lab.color, fontsize=fontsize - 0.5,
                zorder=5, gid="edge-label")
    ax.text((x0 + x1) / 2, max(y1, max(n.top for n in lay.nodes.values())) + 0.08, cell.title,
            ha="center", va="bottom", fontsize=fontsize + 1.5, gid="title")
    if cell.note:
        bottom = min(y0, min(n.bottom for n in lay.nodes.values()))
        ax.text((lay.xlim[0] + lay.xlim[1]) / 2, bottom - 0.12, cell.note, ha="center", va="top",
                fontsize=fontsize - 0.5, color="0.25", linespacing=1.4, gid="note")
    return ax


def cell_diagram(kind: str, ax=None, fontsize: float = 10.0):
    """The ``kind`` cell (``"lstm"``, ``"slstm"`` or ``"mlstm"``) as a d2l-style diagram.

    Without ``ax`` a figure is made at the size of the layout (text at ``fontsize`` points) and
    returned; with ``ax`` the diagram is drawn into it and its figure is returned.
    """
    _check_kind(kind)
    if ax is None:
        fig = pyplot().figure(figsize=layout(kind, fontsize).size)
        ax = fig.add_axes((0, 0, 1, 1))
    draw_cell(kind, ax, fontsize)
    return ax.figure


def cell_diagrams(kinds=CELL_KINDS, fontsize: float = 10.0, ncols: int | None = None):
    """Several cell diagrams in one figure, ``ncols`` per row, at one common scale so that the same
    part has the same size in each. The default ``ncols`` is the most for which every row fits the
    book's text width (:data:`~xlstm_edu.figures._style.TEXT_WIDTH_IN`; at ``fontsize`` 10 that is
    one: the three are stacked). Returns the figure."""
    kinds = tuple(kinds)
    for kind in kinds:
        _check_kind(kind)
    if not kinds:
        raise ValueError(f"kinds must name at least one of {CELL_KINDS}")
    sizes = [layout(k, fontsize).size for k in kinds]
    gap = 0.25

    def row_widths(n):
        return [sum(w for w, _ in sizes[r:r + n]) + gap * (len(sizes[r:r + n]) - 1)
                for r in range(0, len(sizes), n)]

    if ncols is None:
        ncols = max([n for n in range(1, len(kinds) + 1) if max(row_widths(n)) <= TEXT_WIDTH_IN],
                    default=1)
    nrows = -(-len(kinds) // ncols)
    rows = [sizes[r * ncols:(r + 1) * ncols] for r in range(nrows)]
    width = max(sum(w for w, _ in row) + gap * (len(row) - 1) for row in rows)
    heights = [max(h for _, h in row) for row in rows]
    height = sum(heights) + gap * (nrows - 1)
    fig = pyplot().figure(figsize=(width, height))
    top = height
    for r, row in enumerate(rows):
        left = (width - sum(w for w, _ in row) - gap * (len(row) - 1)) / 2
        for c, (w, h) in enumerate(row):
            y = top - heights[r] + (heights[r] - h) / 2
            ax = fig.add_axes((left / width, y / height, w / width, h / height))
            draw_cell(kinds[r * ncols + c], ax, fontsize)
            left += w + gap
        top -= heights[r] + gap
    return fig


__all__ = ["CELLS", "CELL_KINDS", "Cell", "CellLayout", "Edge", "Part", "cell_diagram", "cell_diagrams",
           "draw_cell", "layout"]
