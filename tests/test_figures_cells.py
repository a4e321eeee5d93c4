"""Tests for xlstm_edu.figures.cells: the LSTM, sLSTM and mLSTM cell diagrams draw, show the symbols
that make each cell what it is, and are legible (no overlapping boxes, no arrow through a box, text
inside its box and at least 9 pt at the book's width)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from xlstm_edu.figures import _style, cells  # noqa: E402

pytestmark = pytest.mark.usefixtures("close_figures")


def _texts(fig) -> dict[str, list[str]]:
    """The figure's texts by the first part of their gid (``label``, ``in``, ``out``, ...)."""
    out: dict[str, list[str]] = {}
    for ax in fig.axes:
        for t in ax.texts:
            out.setdefault((t.get_gid() or "").split(":")[0], []).append(t.get_text())
    return out


def _all_text(fig) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


@pytest.mark.parametrize("kind", cells.CELL_KINDS)
def test_each_cell_draws_at_the_size_of_its_layout(kind):
    fig = cells.cell_diagram(kind)
    np.testing.assert_allclose(fig.get_size_inches(), cells.layout(kind).size)
    ax = fig.axes[0]
    keys = {p.key for p in cells.CELLS[kind].parts if p.kind not in ("in", "out", "dot")}
    drawn = {(p.get_gid() or "")[4:] for p in ax.patches if (p.get_gid() or "").startswith("box:")}
    assert drawn == keys
    arrows = [p for p in ax.patches if (p.get_gid() or "").startswith(("edge:", "line:"))]
    assert len(arrows) == len(cells.CELLS[kind].edges)
    assert _texts(fig)["title"] == [cells.CELLS[kind].title]


def test_cell_diagram_draws_into_a_given_axes():
    plt = matplotlib.pyplot
    fig, ax = plt.subplots(figsize=cells.layout("slstm").size)
    assert cells.cell_diagram("slstm", ax) is fig
    np.testing.assert_allclose(ax.get_xlim(), cells.layout("slstm").xlim)


def test_lstm_shows_its_gates_and_the_tanh_on_the_output():
    fig = cells.cell_diagram("lstm")
    texts = _texts(fig)
    assert sorted(texts["in"]) == sorted(["$c_{t-1}$", "$h_{t-1}$", "$x_t$"])
    assert sorted(texts["out"]) == sorted(["$c_t$", "$h_t$"])
    assert texts["label"].count("$\\sigma$") == 3 and texts["label"].count("$\\tanh$") == 2
    assert "$\\exp$" not in texts["label"] and "$\\div$" not in texts["label"]
    assert {"$\\tilde g_t$", "$g_t$", "$f_t$", "$i_t$", "$o_t$"} <= set(texts["edge-label"])
    edges = {(e.src, e.dst) for e in cells.CELLS["lstm"].edges}
    assert {("jc", "tanh_c"), ("tanh_c", "mul_h"), ("o", "mul_h")} <= edges  # h = o * tanh(c)
    assert "dense" in _all_text(fig)


def test_slstm_shows_exp_the_normalizer_the_stabilizer_and_no_output_tanh():
    fig = cells.cell_diagram("slstm")
    texts = _texts(fig)
    assert sorted(texts["in"]) == sorted(["$c_{t-1}$", "$n_{t-1}$", "$m_{t-1}$", "$h_{t-1}$", "$x_t$"])
    assert sorted(texts["out"]) == sorted(["$c_t$", "$n_t$", "$m_t$", "$h_t$"])
    labels = texts["label"]
    assert "$\\exp$" in labels and "$\\div$" in labels
    assert labels.count("$\\tanh$") == 1  # the cell input z only: h = o * c / n
    assert any("stabilizer" in lab for lab in labels)
    assert any("block-diagonal" in lab for lab in labels)
    assert {"$\\tilde z_t$", "$z_t$", "$\\tilde\\imath_t$"} <= set(texts["edge-label"])
    edges = {(e.src, e.dst) for e in cells.CELLS["slstm"].edges}
    assert {("jc", "div"), ("jn", "div"), ("div", "mul_h"), ("i", "add_n"), ("h_in", "R")} <= edges


def test_mlstm_has_q_k_v_a_matrix_memory_and_no_h_into_the_gates():
    fig = cells.cell_diagram("mlstm")
    texts = _texts(fig)
    assert sorted(texts["in"]) == sorted(["$C_{t-1}$", "$n_{t-1}$", "$m_{t-1}$", "$x_t$"])
    assert sorted(texts["out"]) == sorted(["$C_t$", "$n_t$", "$m_t$", "$h_t$"])
    assert {"$q_t$", "$k_t$", "$v_t$", "$\\tilde h_t$"} <= set(texts["edge-label"])
    labels = texts["label"]
    assert {"$W_q$", "$W_v$", "$v_t k_t^\\top$", "$\\exp$", "$\\div$"} <= set(labels)
    assert "$\\tanh$" not in labels
    cell = cells.CELLS["mlstm"]
    assert not any("h_{t-1}" in p.label for p in cell.parts)  # no recurrence into the gates
    # the output gate lies outside the cell's frame, with a dashed border
    ax = fig.axes[0]
    patches = {p.get_gid(): p for p in ax.patches}
    frame = patches["frame"].get_window_extent()
    for key in ("o", "mul_o"):
        box = patches[f"box:{key}"]
        assert box.get_window_extent().x0 > frame.x1, key
    assert patches["box:o"].get_linestyle() == "--"
    assert patches["box:f"].get_linestyle() == "-"


@pytest.mark.parametrize("kind", cells.CELL_KINDS)
def test_cell_diagram_is_legible(kind):
    fig = cells.cell_diagram(kind)
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = {p.get_gid()[4:]: p.get_window_extent(renderer) for p in ax.patches
             if (p.get_gid() or "").startswith("box:")}
    keys = list(boxes)
    for j, a in enumerate(keys):
        for b in keys[j + 1:]:
            inter = boxes[a].intersection(boxes[a], boxes[b])
            assert inter is None or inter.width <= 0 or inter.height <= 0, f"{a} overlaps {b}"
    scale = _style.TEXT_WIDTH_PX / max(_style.TEXT_WIDTH_PX, fig.get_figwidth() * _style.DPI)
    for t in ax.texts:
        gid = t.get_gid() or ""
        ext = t.get_window_extent(renderer)
        if gid.startswith("label:"):  # a box's text lies inside it
            box = boxes[gid[6:]]
            assert box.x0 - 1 <= ext.x0 and ext.x1 <= box.x1 + 1, gid
            assert box.y0 - 1 <= ext.y0 and ext.y1 <= box.y1 + 1, gid
        if gid == "edge-label":  # edge labels sit between the boxes
            assert all(not ext.shrunk(0.9, 0.9).overlaps(bb) for bb in boxes.values()), t.get_text()
        assert ext.x0 >= 0 and ext.y0 >= 0, gid
        assert ext.x1 <= fig.bbox.width and ext.y1 <= fig.bbox.height, gid
        assert t.get_fontsize() * scale >= _style.MIN_FONT_PT, t.get_text()


@pytest.mark.parametrize("kind", cells.CELL_KINDS)
def test_cell_edges_are_straight_or_bent_once_and_end_on_their_parts(kind):
    lay = cells.layout(kind)
    assert {(r.src, r.dst) for r in lay.routes} == {(e.src, e.dst) for e in cells.CELLS[kind].edges}

    def on_border(p, n, tol=1e-6):
        if n.box.kind == "dot":
            return np.hypot(p[0] - n.x, p[1] - n.y) < tol
        dx, dy = abs(p[0] - n.x) - n.w / 2, abs(p[1] - n.y) - n.h / 2
        return (abs(dx) < tol and dy <= tol) or (abs(dy) < tol and dx <= tol)

    for r in lay.routes:
        assert len(r.points) in (2, 3)
        assert on_border(r.points[0], lay.nodes[r.src]), (r.src, r.dst)
        assert on_border(r.points[-1], lay.nodes[r.dst]), (r.src, r.dst)
        for p, q in zip(r.points[:-1], r.points[1:]):
            assert p[0] == q[0] or p[1] == q[1]  # horizontal or vertical segments only


def test_cell_layout_rejects_overlapping_boxes(monkeypatch):
    cell = cells.CELLS["lstm"]
    extra = cells.Part("f2", "$\\sigma$", "sigmoid", 1, 2)  # on top of the forget gate
    monkeypatch.setitem(cells.CELLS, "lstm", cell._replace(parts=cell.parts + (extra,)))
    with pytest.raises(ValueError, match="overlap"):
        cells.layout("lstm")


def test_cell_layout_rejects_an_arrow_through_a_box(monkeypatch):
    cell = cells.CELLS["lstm"]
    through = cells.Edge("c_in", "c_out")  # along the memory line, through the x and + circles
    monkeypatch.setitem(cells.CELLS, "lstm", cell._replace(edges=cell.edges + (through,)))
    with pytest.raises(ValueError, match="crosses"):
        cells.layout("lstm")


def test_bad_kind_names_the_kinds():
    for call in (lambda: cells.cell_diagram("gru"), lambda: cells.layout("gru"),
                 lambda: cells.cell_diagrams(("lstm", "gru"))):
        with pytest.raises(ValueError, match="'lstm', 'slstm', 'mlstm'"):
            call()
    with pytest.raises(ValueError, match="at least one"):
        cells.cell_diagrams(())


def test_cell_diagrams_side_by_side_at_one_scale():
    fig = cells.cell_diagrams(ncols=3)
    titles = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == "title"]
    assert titles == [cells.CELLS[k].title for k in cells.CELL_KINDS]
    sizes = [cells.layout(k).size for k in cells.CELL_KINDS]
    np.testing.assert_allclose(fig.get_figwidth(), sum(w for w, _ in sizes) + 0.25 * 2)
    for ax, (w, h) in zip(fig.axes, sizes):  # each axes as large as its layout: one scale
        bbox = ax.get_position()
        np.testing.assert_allclose([bbox.width * fig.get_figwidth(), bbox.height * fig.get_figheight()],
                                   [w, h])
    lefts = [ax.get_position().x0 for ax in fig.axes]
    assert lefts == sorted(lefts)  # side by side, in order
    stacked = cells.cell_diagrams(("lstm", "slstm"), ncols=1)
    assert stacked.axes[0].get_position().y0 > stacked.axes[1].get_position().y0


def test_cell_diagrams_default_to_as_many_per_row_as_fit_the_text_width(monkeypatch):
    fig = cells.cell_diagrams()  # the three do not fit side by side: stacked, at one scale
    assert fig.get_figwidth() <= _style.TEXT_WIDTH_IN
    sizes = [cells.layout(k).size for k in cells.CELL_KINDS]
    np.testing.assert_allclose(fig.get_figwidth(), max(w for w, _ in sizes))
    np.testing.assert_allclose(fig.get_figheight(), sum(h for _, h in sizes) + 0.25 * 2)
    bottoms = [ax.get_position().y0 for ax in fig.axes]
    assert bottoms == sorted(bottoms, reverse=True)  # top to bottom, in order
    for ax, (w, h) in zip(fig.axes, sizes):
        bbox = ax.get_position()
        np.testing.assert_allclose([bbox.width * fig.get_figwidth(), bbox.height * fig.get_figheight()],
                                   [w, h])
    # a wider page: as many per row as fit (here the first two, the third below them)
    two = sizes[0][0] + 0.25 + sizes[1][0]
    monkeypatch.setattr(cells, "TEXT_WIDTH_IN", two + 0.01)
    fig = cells.cell_diagrams()
    (a, b, c) = (ax.get_position() for ax in fig.axes)
    assert a.x0 < b.x0 and c.y0 < min(a.y0, b.y0)
    np.testing.assert_allclose(fig.get_figwidth(), two)
