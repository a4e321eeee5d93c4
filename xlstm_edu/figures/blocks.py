"""Figures of the chapter "Blocks and stacks": the two block diagrams and the parameter counts.

The diagrams are laid out here, automatically, from the description in
:data:`xlstm_edu.experiments.blocks.DIAGRAMS` (rows of boxes, edges, bypasses; no coordinates).
All lengths are inches and the figure is made at the size of the layout, so text is exactly
``fontsize`` points:

* sizes: a box is as wide as its text (measured with matplotlib's text-to-path, no renderer needed),
  a row as tall as its tallest box; rows are stacked from the bottom, with a channel between two
  rows for the arrows;
* x: the boxes of a row are spread evenly over the width of the widest row, unless a box is placed
  ``over`` other boxes (centered on them; with ``span`` as wide as they are together) or ``beside``
  one;
* arrows run straight up where source and target overlap, else up to the channel under the target,
  across and up (several targets of one source in one row share the way up). An arrow whose way up
  is blocked by a box, and every bypass (dashed), runs in a lane outside the boxes it passes; shorter
  connections take the inner lanes;
* :func:`layout` raises ``ValueError`` if two boxes overlap or an arrow crosses a box.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..experiments.blocks import (
    DIAGRAMS,
    Box,
    Diagram,
    diagram_shapes,
    diagram_title,
)
from ._style import TEXT_WIDTH_IN, pyplot

_COLORS = {"io": "#eeeeee", "norm": "#fde7c2", "linear": "#cfe3f7", "conv": "#d9f0d3", "cell": "#f7c9c9",
           "op": "#ffffff",
           # the gates of the cell diagrams (xlstm_edu.figures.cells), colored by their activation
           "sigmoid": "#cfe3f7", "tanh": "#d9f0d3", "exp": "#f7c9c9", "state": "#fde7c2"}
#: Labels drawn as a circle (pointwise operations); the last two only occur in the cell diagrams.
_CIRCLE_LABELS = ("+", "$\\odot$", "$\\times$", "$\\div$")
_LINE = "0.25"  # color of the arrows
_BYPASS = "0.45"  # color of the dashed bypasses
_LOOP = "tab:red"

# Lengths in inches.
_PAD_X, _PAD_Y = 0.09, 0.05  # text to box border
_RADIUS = 0.15  # of the "+" and "⊙" circles
_GAP_X = 0.3  # between two boxes of an evenly spread row
_GAP_BESIDE = 0.45  # between a box and one placed beside it (more if the arrow between has a label)
_CHANNEL = 0.36  # between two rows
_BUS = 0.24  # extra channel under a box that takes a concatenation
_LANE = 0.24  # between a lane and the boxes it passes, and between two lanes
_LOOP_W = 0.28  # how far the recurrent loop reaches out of its box
_MARGIN = 0.1  # around everything


class Route(NamedTuple):
    """One drawn connection: ``points`` (inches) from source to target; ``style`` is ``"edge"``,
    ``"bypass"`` (dashed), ``"loop"``, ``"concat"`` (the arrow from a concatenation into its box),
    ``"bus"`` or ``"tap"`` (the lines of a concatenation, no arrow)."""

    src: str
    dst: str
    points: tuple[tuple[float, float], ...]
    style: str


class Label(NamedTuple):
    """A text outside the boxes: edge and bypass labels, the loop's, the concatenation's."""

    x: float
    y: float
    text: str
    ha: str = "left"
    va: str = "center"
    rotation: float = 0.0
    color: str = "0.2"


@dataclass
class Node:
    """A placed box: center ``x, y``, size ``w, h`` (inches); ``reach`` is how far the recurrent loop
    and its label stick out on the right."""

    box: Box
    row: int
    label: str
    shape: str | None
    w: float
    h: float
    x: float = float("nan")
    y: float = float("nan")
    reach: float = 0.0

    @property
    def circle(self) -> bool:
        return self.box.label in _CIRCLE_LABELS

    @property
    def left(self) -> float:
        return self.x - self.w / 2

    @property
    def right(self) -> float:
        return self.x + self.w / 2

    @property
    def bottom(self) -> float:
        return self.y - self.h / 2

    @property
    def top(self) -> float:
        return self.y + self.h / 2


@dataclass
class Layout:
    """Everything :func:`draw_block` draws, in inches: boxes, routes, labels, the title."""

    kind: str
    nodes: dict[str, Node]
    routes: list[Route] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    taps: list[tuple[float, float]] = field(default_factory=list)
    title: str = ""
    note: str = ""
    xlim: tuple[float, float] = (0.0, 1.0)
    ylim: tuple[float, float] = (0.0, 1.0)
    fontsize: float = 10.0

    @property
    def size(self) -> tuple[float, float]:
        """The figure size (inches) at which text has its nominal size."""
        return self.xlim[1] - self.xlim[0], self.ylim[1] - self.ylim[0]


def text_size(text: str, fontsize: float, linespacing: float = 1.2) -> tuple[float, float]:
    """Width and height (inches) of ``text`` (lines separated by ``\\n``, mathtext allowed)."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop = FontProperties(size=fontsize)
    to_path = TextToPath()
    lines = text.split("\n")
    width = max(to_path.get_text_width_height_descent(line, prop, ismath=line.count("$") >= 2)[0]
                for line in lines)
    return width / 72.0, len(lines) * fontsize * linespacing / 72.0


def _shape_text(symbolic: str, traced: tuple[int, ...], two_lines: bool) -> str:
    concrete = "(" + ", ".join(str(n) for n in traced) + ")"
    return f"{symbolic}\n= {concrete}" if two_lines else f"{symbolic} = {concrete}"


def _make_nodes(diagram: Diagram, shapes: dict, fontsize: float) -> dict[str, Node]:
    nodes = {}
    for r, row in enumerate(diagram.rows):
        crowded = sum(not b.over and not b.beside for b in row) > 1  # boxes spread evenly
        for box in row:
            shape = None
            if box.key in shapes:  # in a crowded row the concrete shape gets a line of its own
                shape = _shape_text(*shapes[box.key], two_lines=crowded)
            if box.label in _CIRCLE_LABELS:
                nodes[box.key] = Node(box, r, box.label, None, 2 * _RADIUS, 2 * _RADIUS)
                continue
            w, h = text_size(box.label, fontsize)
            if shape:
                sw, sh = text_size(shape, fontsize - 0.5)
                w, h = max(w, sw), h + sh
            nodes[box.key] = Node(box, r, box.label, shape, w + 2 * _PAD_X, h + 2 * _PAD_Y)
    return nodes


def _edge_label(diagram: Diagram, a: str, b: str) -> str:
    return next((lab for s, d, lab in diagram.edges if {s, d} == {a, b}), "")


def _place_x(diagram: Diagram, nodes: dict[str, Node], fontsize: float) -> float:
    """Set every node's ``x``; returns the width over which free boxes are spread."""
    free_rows = [[nodes[b.key] for b in row if not b.over and not b.beside] for row in diagram.rows]
    width = max((len(row) * (max(n.w for n in row) + _GAP_X) if len(row) > 1 else row[0].w)
                for row in free_rows if row)
    for row in free_rows:
        for j, n in enumerate(row):
            n.x = width / 2 if len(row) == 1 else (j + 0.5) * width / len(row)
    pending = [n for n in nodes.values() if np.isnan(n.x)]
    while pending:
        progress = False
        for n in list(pending):
            refs = n.box.over or (n.box.beside,)
            if any(np.isnan(nodes[k].x) for k in refs):
                continue
            if n.box.over:
                lo = min(nodes[k].left for k in refs)
                hi = max(nodes[k].right for k in refs)
                if n.box.span:
                    n.w = max(n.w, hi - lo)
                n.x = (lo + hi) / 2
            else:
                ref = nodes[n.box.beside]
                label = _edge_label(diagram, n.box.key, ref.box.key)
                gap = _GAP_BESIDE  # an arrow label between the two must fit
                if label:
                    gap = max(gap, text_size(label, fontsize - 0.5)[0] + 0.25)
                n.x = ref.right + ref.reach + gap + n.w / 2
            pending.remove(n)
            progress = True
        if not progress:
            raise ValueError(f"cannot place {[n.box.key for n in pending]}: circular placement hints")
    return width


def _place_y(diagram: Diagram, nodes: dict[str, Node]) -> list[tuple[float, float, float]]:
    """Set every node's ``y``; returns ``(bottom, top, channel below)`` per row."""
    targets = {dst for _, dst in diagram.concats}
    rows, y = [], 0.0
    for r, row in enumerate(diagram.rows):
        channel = 0.0 if r == 0 else _CHANNEL + (_BUS if any(b.key in targets for b in row) else 0.0)
        y += channel
        height = max(nodes[b.key].h for b in row)
        for b in row:
            nodes[b.key].y = y + height / 2
        rows.append((y, y + height, channel))
        y += height
    return rows


def _check_overlaps(nodes: dict[str, Node]) -> None:
    items = list(nodes.values())
    for j, a in enumerate(items):
        for b in items[j + 1:]:
            if (a.left < b.right + b.reach and b.left < a.right + a.reach
                    and a.bottom < b.top and b.bottom < a.top):
                raise ValueError(f"boxes {a.box.key!r} and {b.box.key!r} overlap")


def _blocked(nodes: dict[str, Node], x: float, row_lo: int, row_hi: int, eps: float = 0.05) -> bool:
    """Whether a vertical line at ``x`` through the rows strictly between the two hits a box."""
    return any(row_lo < n.row < row_hi and n.left - eps < x < n.right + n.reach + eps
               for n in nodes.values())


def _span(n: Node, margin: float = 0.12) -> tuple[float, float]:
    return (n.x, n.x) if n.circle else (n.left + margin, n.right - margin)


def _route_edges(diagram: Diagram, nodes: dict[str, Node], rows, lay: Layout, lane_requests: list):
    bends: dict[tuple[str, int], list[Node]] = {}
    for src, dst, label in diagram.edges:
        s, d = nodes[src], nodes[dst]
        if d.row == s.row:  # side by side: straight across
            sign = 1.0 if d.x > s.x else -1.0
            p, q = (s.x + sign * s.w / 2, s.y), (d.x - sign * d.w / 2, d.y)
            lay.routes.append(Route(src, dst, (p, q), "edge"))
            if label:
                lay.labels.append(Label((p[0] + q[0]) / 2, s.y + 0.04, label, ha="center", va="bottom"))
            continue
        if d.row < s.row:
            raise ValueError(f"edge {src!r} -> {dst!r} runs downwards: the diagrams read bottom to top")
        lo, hi = max(_span(s)[0], _span(d)[0]), min(_span(s)[1], _span(d)[1])
        narrow = s if s.w <= d.w else d
        if lo <= hi:
            x = min(max(narrow.x, lo), hi)
            if abs(x - narrow.x) <= 0.25 * narrow.w and not _blocked(nodes, x, s.row, d.row):
                lay.routes.append(Route(src, dst, ((x, s.top), (x, d.bottom)), "edge"))
                if label:
                    lay.labels.append(Label(x + 0.05, (s.top + d.bottom) / 2, label))
                continue
        bends.setdefault((src, d.row), []).append(d)
    for (src, row), targets in bends.items():
        s = nodes[src]
        lo, hi = _span(s)
        mean = float(np.mean([t.x for t in targets]))
        inside = [t.x for t in targets if lo <= t.x <= hi]
        x0 = min(inside, key=lambda v: abs(v - mean)) if inside else min(max(mean, lo), hi)
        y_c = rows[row][0] - rows[row][2] / 2
        for t in targets:
            label = _edge_label(diagram, src, t.box.key)
            if _blocked(nodes, x0, s.row, row):
                lane_requests.append((src, t.box.key, label, "edge"))
                continue
            pts = [(x0, s.top), (x0, y_c), (t.x, y_c), (t.x, t.bottom)]
            if abs(x0 - t.x) < 1e-9:
                pts = [pts[0], pts[3]]
            lay.routes.append(Route(src, t.box.key, tuple(pts), "edge"))
            if label:
                lay.labels.append(Label(t.x + 0.05, (y_c + t.bottom) / 2, label))


def _outermost(nodes: dict[str, Node], n: Node, side: int) -> bool:
    return all(m is n or m.row != n.row or side * (m.x - n.x) < 0 for m in nodes.values())


def _route_lanes(nodes: dict[str, Node], width: float, lay: Layout, requests: list) -> None:
    lanes = {1: [], -1: []}  # side -> [(row_lo, row_hi, x)]
    attached = {1: set(), -1: set()}
    requests = sorted(requests, key=lambda r: abs(nodes[r[1]].row - nodes[r[0]].row))
    for src, dst, label, style in requests:
        s, d = nodes[src], nodes[dst]
        lo, hi = sorted((s.row, d.row))
        prefer = 1 if (s.x + d.x) / 2 >= width / 2 - 1e-9 else -1
        for side in (prefer, -prefer):
            if src in attached[side] or dst in attached[side]:
                continue
            if not (_outermost(nodes, s, side) and _outermost(nodes, d, side)):
                continue
            passed = [n for n in nodes.values() if lo <= n.row <= hi]
            if side == 1:
                x = max(n.right + n.reach for n in passed) + _LANE
                x = max([x] + [lx + _LANE for a, b, lx in lanes[1] if a <= hi and lo <= b])
            else:
                x = min(n.left for n in passed) - _LANE
                x = min([x] + [lx - _LANE for a, b, lx in lanes[-1] if a <= hi and lo <= b])
            break
        else:
            raise ValueError(f"no lane for {src!r} -> {dst!r}")
        lanes[side].append((lo, hi, x))
        attached[side].update((src, dst))
        p = (s.x + side * s.w / 2, s.y)
        q = (d.x + side * d.w / 2, d.y)
        lay.routes.append(Route(src, dst, (p, (x, s.y), (x, d.y), q), style))
        if label and style == "bypass":
            lay.labels.append(Label(x, (s.y + d.y) / 2, label, ha="center", rotation=90, color=_BYPASS))
        elif label:
            lay.labels.append(Label((p[0] + x) / 2, s.y + 0.04, label, ha="center", va="bottom"))


def layout(kind: str, shapes: dict | None = None, fontsize: float = 10.0, title: str = "",
           note: str = "") -> Layout:
    """Positions (inches) of the boxes, arrows and labels of the ``kind`` diagram.

    ``shapes``: ``{key: (symbolic, traced)}`` from :func:`xlstm_edu.experiments.blocks.diagram_shapes`
    (boxes without an entry show no shape). Raises ``ValueError`` if boxes overlap or an arrow
    crosses a box.
    """
    if kind not in DIAGRAMS:
        raise ValueError(f"kind must be one of {tuple(DIAGRAMS)}, got {kind!r}")
    diagram = DIAGRAMS[kind]
    nodes = _make_nodes(diagram, shapes or {}, fontsize)
    lay = Layout(kind, nodes, title=title or diagram.title, note=note, fontsize=fontsize)
    if diagram.loop:
        loop_key, loop_label = diagram.loop
        nodes[loop_key].reach = _LOOP_W + 0.06 + text_size(loop_label, fontsize)[0]
    width = _place_x(diagram, nodes, fontsize)
    rows = _place_y(diagram, nodes)
    _check_overlaps(nodes)

    lane_requests = [(src, dst, label, "bypass") for src, dst, label in diagram.bypasses]
    _route_edges(diagram, nodes, rows, lay, lane_requests)
    for sources, dst in diagram.concats:  # taps on the sources' arrows, a bus, one arrow in
        d = nodes[dst]
        y_bus = rows[d.row][0] - _BUS
        xs = [nodes[k].x for k in sources]
        for k in sources:
            lay.routes.append(Route(k, dst, ((nodes[k].x, nodes[k].top), (nodes[k].x, y_bus)), "tap"))
            lay.taps.append((nodes[k].x, y_bus))
        lay.routes.append(Route(sources[0], dst, ((min(xs), y_bus), (d.x, y_bus)), "bus"))
        lay.routes.append(Route(sources[-1], dst, ((d.x, y_bus), (d.x, d.bottom)), "concat"))
        lay.labels.append(Label((max(xs) + d.x) / 2, y_bus - 0.04, "concatenate", ha="center", va="top"))
    _route_lanes(nodes, width, lay, lane_requests)
    if diagram.loop:
        n = nodes[diagram.loop[0]]
        r, dy = n.right, 0.12
        pts = ((r, n.y + dy), (r + _LOOP_W, n.y + dy), (r + _LOOP_W, n.y - dy), (r, n.y - dy))
        lay.routes.append(Route(n.box.key, n.box.key, pts, "loop"))
        lay.labels.append(Label(r + _LOOP_W + 0.06, n.y, diagram.loop[1], color=_LOOP))
    _check_routes(nodes, lay.routes)

    xs = [x for rt in lay.routes for x, _ in rt.points]
    xs += [v for n in nodes.values() for v in (n.left, n.right + n.reach)]
    x_lo, x_hi = min(xs) - _MARGIN, max(xs) + _MARGIN
    title_h = text_size(lay.title, fontsize + 1.5)[1]
    y_top = rows[-1][1] + 0.12 + title_h + _MARGIN
    note_h = text_size(note, fontsize - 0.5)[1] + 0.1 if note else 0.0
    lay.xlim, lay.ylim = (x_lo, x_hi), (-_MARGIN - note_h, y_top)
    return lay


def _check_routes(nodes: dict[str, Node], routes: list[Route], eps: float = 0.02) -> None:
    """Raise if a segment of a route passes through the inside of a box (its ends may touch one)."""
    for rt in routes:
        for (x0, y0), (x1, y1) in zip(rt.points[:-1], rt.points[1:]):
            for n in nodes.values():
                inside_x = min(x0, x1) < n.right - eps and max(x0, x1) > n.left + eps
                if inside_x and min(y0, y1) < n.top - eps and max(y0, y1) > n.bottom + eps:
                    raise ValueError(f"the arrow {rt.src!r} -> {rt.dst!r} crosses the box {n.box.key!r}")


def draw_node(ax, key: str, n: Node, fontsize: float, ls: str = "-") -> None:
    """Draw one placed box (a rounded box colored by its kind, or a circle for ``+``, ``\\odot``,
    ``\\times``, ``\\div``) with its label (and shape); the artists' gids are ``box:key``,
    ``label:key``, ``shape:key``. Shared by the block diagrams and the cell diagrams
    (:mod:`xlstm_edu.figures.cells`); ``ls`` is the border's line style."""
    from matplotlib.patches import Circle, FancyBboxPatch

    if n.circle:
        patch = Circle((n.x, n.y), n.w / 2, fc="white", ec="0.25", lw=0.9, zorder=3)
        ax.add_patch(patch)
        patch.set_gid(f"box:{key}")
        ax.text(n.x, n.y, n.label, ha="center", va="center_baseline", fontsize=fontsize + 2,
                zorder=4, gid=f"label:{key}")
        return
    patch = FancyBboxPatch((n.left, n.bottom), n.w, n.h, boxstyle="round,pad=0,rounding_size=0.06",
                           fc=_COLORS[n.box.kind], ec="0.3", lw=0.8, ls=ls, zorder=3)
    ax.add_patch(patch)
    patch.set_gid(f"box:{key}")
    label_h = text_size(n.label, fontsize)[1]
    ax.text(n.x, n.top - _PAD_Y - label_h / 2, n.label, ha="center", va="center", fontsize=fontsize,
            linespacing=1.2, zorder=4, gid=f"label:{key}")
    if n.shape:
        shape_h = text_size(n.shape, fontsize - 0.5)[1]
        ax.text(n.x, n.bottom + _PAD_Y + shape_h / 2, n.shape, ha="center", va="center",
                fontsize=fontsize - 0.5, color="0.25", linespacing=1.2, zorder=4, gid=f"shape:{key}")


def draw_block(kind: str, ax=None, block=None, x=None, fontsize: float = 10.0, note: str | None = None):
    """Draw the ``"slstm"`` or ``"mlstm"`` block as boxes and arrows (data flow bottom to top).

    With a ``block`` and an input ``x (B, S, E)``, every box that stands for a tensor shows its
    symbolic shape and the shape traced from the block
    (:func:`xlstm_edu.experiments.blocks.diagram_shapes`, which checks that the two agree), and the
    title lists the dimensions. Without ``ax`` a figure is made at the size of the layout
    (:attr:`Layout.size`, about 7 x 10 inches), where the text is ``fontsize`` points; an ``ax``
    passed in should have that size. ``note``: a line under the diagram (default: how to read it).
    Returns ``ax``.
    """
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path

    if kind not in DIAGRAMS:
        raise ValueError(f"kind must be one of {tuple(DIAGRAMS)}, got {kind!r}")
    if (block is None) != (x is None):
        raise ValueError("pass both block and x (for shape labels), or neither")
    shapes = diagram_shapes(kind, block, x) if block is not None else {}
    if note is None:
        note = "data flow bottom to top" + ("; shapes traced from xlstm_edu.blocks" if shapes else "")
    lay = layout(kind, shapes, fontsize, title=diagram_title(kind, block, x), note=note)
    if ax is None:
        fig = pyplot().figure(figsize=lay.size)
        ax = fig.add_axes((0, 0, 1, 1))
    else:
        ax.set_aspect("equal")
    ax.set_xlim(*lay.xlim)
    ax.set_ylim(*lay.ylim)
    ax.axis("off")

    for key, n in lay.nodes.items():
        draw_node(ax, key, n, fontsize)

    styles = {"edge": dict(color=_LINE, ls="-"), "bypass": dict(color=_BYPASS, ls="--"),
              "loop": dict(color=_LOOP, ls="-"), "concat": dict(color=_LINE, ls="-"),
              "bus": dict(color=_LINE, ls="-"), "tap": dict(color=_LINE, ls="-")}
    for rt in lay.routes:
        style = styles[rt.style]
        if rt.style in ("bus", "tap"):
            xs, ys = zip(*rt.points)
            ax.plot(xs, ys, lw=0.9, zorder=2, gid=f"{rt.style}:{rt.src}->{rt.dst}", **style)
            continue
        codes = [Path.MOVETO] + [Path.LINETO] * (len(rt.points) - 1)
        arrow = FancyArrowPatch(path=Path(rt.points, codes), arrowstyle="-|>", mutation_scale=10,
                                lw=1.0 if rt.style == "loop" else 0.9, zorder=2,
                                linestyle=style["ls"], color=style["color"])
        arrow.set_gid(f"{rt.style}:{rt.src}->{rt.dst}")
        ax.add_patch(arrow)
    for x_tap, y_tap in lay.taps:
        ax.plot([x_tap], [y_tap], "o", ms=3.5, color=_LINE, zorder=4)
    for lab in lay.labels:
        ax.text(lab.x, lab.y, lab.text, ha=lab.ha, va=lab.va, rotation=lab.rotation, color=lab.color,
                fontsize=fontsize - 0.5, zorder=5, gid="edge-label",
                bbox=dict(fc="white", ec="none", pad=0.6, alpha=0.9))
    top_row = max(n.top for n in lay.nodes.values())
    ax.text((lay.xlim[0] + lay.xlim[1]) / 2, top_row + 0.12, lay.title, ha="center", va="bottom",
            fontsize=fontsize + 1.5, linespacing=1.3, gid="title")
    if lay.note:
        ax.text((lay.xlim[0] + lay.xlim[1]) / 2, -0.08, lay.note, ha="center", va="top",
                fontsize=fontsize - 0.5, color="0.3", gid="note")
    return ax


# --- the parameter-count figures --------------------------------------------------------------------

_NAMES = {"mlstm": "mLSTM block", "slstm": "sLSTM block"}


def plot_parameter_counts(block_counts: dict[str, dict[str, int]],
                          stacks: dict[str, dict[str, dict[str, int]]], title: str = ""):
    """Top: one block of each kind, split by component (stacked horizontal bars; from
    :func:`xlstm_edu.experiments.blocks.component_counts`). Bottom: whole stacks
    (``{"xLSTM[1:0]": stack_counts(...), ...}``), split by block kind. Returns the figure."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(TEXT_WIDTH_IN, 8.5),
                                   gridspec_kw=dict(height_ratios=(1.2, 1)))
    colors = iter(plt.get_cmap("tab20").colors)
    for row, (kind, counts) in enumerate(block_counts.items()):
        left = 0.0
        for label, n in counts.items():
            ax1.barh(row, n / 1e6, left=left, color=next(colors), edgecolor="white", height=0.6,
                     label=f"{_NAMES[kind][0]}: {label}")
            left += n / 1e6
        ax1.text(left, row, f" {left:.2f} M", va="center")
    ax1.set_yticks(range(len(block_counts)), [_NAMES[k] for k in block_counts])
    ax1.set_xlabel("parameters (millions)")
    ax1.set_xlim(0, 1.18 * ax1.get_xlim()[1])
    ax1.set_title("one block, by component")
    ax1.legend(ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.17), frameon=False)

    kinds = (("mlstm", "mLSTM blocks", "tab:blue"), ("slstm", "sLSTM blocks", "tab:red"),
             ("post_blocks_norm", "final LayerNorm", "0.5"))
    bottoms = [0.0] * len(stacks)
    for kind, label, color in kinds:
        values = [sum(c[kind].values()) / 1e6 for c in stacks.values()]
        ax2.bar(list(stacks), values, bottom=bottoms, color=color, label=label, width=0.6)
        bottoms = [b + v for b, v in zip(bottoms, values)]
    for j, total in enumerate(bottoms):
        ax2.text(j, total, f"{total:.2f} M", ha="center", va="bottom")
    ax2.set_ylim(0, 1.3 * max(bottoms))
    ax2.set_ylabel("parameters (millions)")
    ax2.set_title("whole stack, by block kind")
    ax2.legend(ncol=3, loc="upper left", frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_parameter_scaling(widths, counted: dict[str, list[int]], formula: dict[str, list[int]],
                           leading: dict[str, float] | None = None, title: str = ""):
    """Top: parameters of one block against the width ``E`` (log-log), counted (markers) and from the
    formula (lines), with an ``E^2`` reference. Bottom: the same divided by ``E^2``, with the
    ``leading`` coefficients (dashed; :func:`xlstm_edu.experiments.blocks.leading_coefficient`).
    Returns the figure."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(TEXT_WIDTH_IN, 8.0), layout="constrained")
    colors = {"mlstm": "tab:blue", "slstm": "tab:red"}
    w = np.asarray(widths, dtype=float)
    for kind in counted:
        c, f = np.asarray(counted[kind], float), np.asarray(formula[kind], float)
        name, color = _NAMES[kind], colors[kind]
        ax1.plot(w, f, "-", color=color, lw=1.2, label=f"{name}: formula")
        ax1.plot(w, c, "o", color=color, ms=4, mfc="none", label=f"{name}: counted")
        ax2.plot(w, f / w**2, "-", color=color, lw=1.2, label=f"{name}: formula")
        ax2.plot(w, c / w**2, "o", color=color, ms=4, mfc="none", label=f"{name}: counted")
        if leading and kind in leading:
            ax2.axhline(leading[kind], color=color, ls="--", lw=0.9,
                        label=f"{name}: leading term {leading[kind]:.2f} $E^2$")
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
    ax1.set_title("log-log: both grow as $E^2$")
    ax2.set_title("divided by $E^2$ (steps: F rounded up to a multiple of 64)")
    ax1.legend(loc="lower right")
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.suptitle(title or "Parameters of one block against the width")
    return fig


__all__ = ["Label", "Layout", "Node", "Route", "draw_block", "draw_node", "layout",
           "plot_parameter_counts", "plot_parameter_scaling", "text_size"]
