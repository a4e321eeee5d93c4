"""Tests for xlstm_edu.figures: every figure draws exactly the data it is given and names it; the block
diagrams are legible (no overlapping boxes, no arrow through a box, text inside its box and at least
9 pt at the book's width) and every shape label is the shape traced from the block."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from conftest import legend_labels  # noqa: E402

import xlstm_edu  # noqa: E402
from xlstm_edu import slstm  # noqa: E402
from xlstm_edu.blocks import ratio_to_slstm_at, xLSTMStackConfig  # noqa: E402
from xlstm_edu.experiments import blocks as xb  # noqa: E402
from xlstm_edu.experiments import gating as eg  # noqa: E402
from xlstm_edu.experiments import mlstm_memory as mm  # noqa: E402
from xlstm_edu.experiments import parallel_forms as pf  # noqa: E402
from xlstm_edu.experiments import slstm as es  # noqa: E402
from xlstm_edu.figures import _style  # noqa: E402
from xlstm_edu.figures import blocks as fb  # noqa: E402
from xlstm_edu.figures import gating as fg  # noqa: E402
from xlstm_edu.figures import language_model as flm  # noqa: E402
from xlstm_edu.figures import lstm as fl  # noqa: E402
from xlstm_edu.figures import mlstm as fm  # noqa: E402
from xlstm_edu.figures import parallel_forms as fpf  # noqa: E402
from xlstm_edu.figures import slstm as fs  # noqa: E402

PACKAGE = Path(xlstm_edu.__file__).parent


pytestmark = pytest.mark.usefixtures("close_figures")


def _ydata(ax):
    return [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]


# --- where matplotlib lives -------------------------------------------------------------------------


def test_only_figures_import_matplotlib():
    pattern = re.compile(r"^\s*(import|from)\s+matplotlib\b", re.MULTILINE)
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if "figures" not in p.relative_to(PACKAGE).parts and pattern.search(p.read_text())]
    assert offenders == []
    assert any(pattern.search(p.read_text()) for p in (PACKAGE / "figures").glob("*.py"))


def test_importing_the_figures_does_not_import_matplotlib():
    stems = sorted(p.stem for p in (PACKAGE / "figures").glob("*.py") if p.stem != "__init__")
    modules = ["xlstm_edu.figures"] + [f"xlstm_edu.figures.{stem}" for stem in stems]
    modules += ["xlstm_edu.widgets.gating", "xlstm_edu.widgets.memory"]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n    importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'IPython')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- chapter 02: the classic LSTM ---------------------------------------------------------------------


def test_gradient_norms_draw_the_geometric_mean_and_the_band():
    curves = {"tanh RNN": np.array([[1.0, 0.1, 0.01], [4.0, 0.4, 0.04]]),
              "LSTM": np.array([[1.0, 0.9, 0.8]])}
    ax = fl.plot_gradient_norms(curves)
    np.testing.assert_allclose(_ydata(ax)[0], [2.0, 0.2, 0.02])  # sqrt of the products
    np.testing.assert_allclose(_ydata(ax)[1], [1.0, 0.9, 0.8])
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), [0, 1, 2])
    assert legend_labels(ax) == list(curves) and ax.get_yscale() == "log"
    band = ax.collections[0].get_paths()[0].vertices  # min-max band of the first curve
    at_zero = band[np.isclose(band[:, 0], 0.0), 1]
    assert at_zero.min() == pytest.approx(1.0) and at_zero.max() == pytest.approx(4.0)


# --- chapter 03: exponential gating -------------------------------------------------------------------


def test_gate_traces_draw_every_state():
    data = eg.gate_traces(S=10, spike_step=4, spike_height=90.0, textbook_dtype="float32")
    fig = fg.plot_gate_traces(data)
    (a, b), (c, d) = np.array(fig.axes).reshape(2, 2)
    tr = data["trace"]
    for ax, expected in [(a, [data["igate_preact"], data["fgate_preact"]]),
                         (b, [tr["m"], tr["log_n_true"]]), (c, [tr["c"], tr["n"]])]:
        for got, want in zip(_ydata(ax), expected):
            np.testing.assert_array_equal(got, want)
    z, h, textbook, bad = d.get_lines()
    np.testing.assert_array_equal(h.get_ydata(), tr["h"])
    ok = np.isfinite(data["h_textbook"])
    assert 0 < ok.sum() < 10  # the spike overflows float32 exp
    np.testing.assert_array_equal(textbook.get_xdata(), np.flatnonzero(ok))
    np.testing.assert_array_equal(bad.get_xdata(), np.flatnonzero(~ok))
    assert "textbook (float32)" in legend_labels(d)[2]


def test_revise_figure_shows_the_sequence_the_outputs_and_the_errors():
    task = eg.revise_task(n_seq=4, S=12, seed=0)
    outputs = eg.revise_outputs(task, 10.0)
    comparison = eg.revise_comparison(betas=(1, 10), n_seq=4, S=12)
    fig = fg.plot_revise(task, outputs, comparison, index=2, beta=10.0)
    ax_a, ax_h, ax_e = fig.axes
    dots, record, stars = ax_a.get_lines()
    np.testing.assert_array_equal(record.get_ydata(), np.maximum.accumulate(task.importance[2]))
    new = np.flatnonzero(np.r_[True, np.diff(task.record[2]) != 0])
    np.testing.assert_array_equal(stars.get_xdata(), new)
    lines = {line.get_label(): line for line in ax_h.get_lines()}
    for name, h in outputs.items():
        np.testing.assert_array_equal(lines[name].get_ydata(), h[2])
    np.testing.assert_array_equal(lines["target"].get_ydata(), task.target[2])
    assert r"$\beta$ = 10" in ax_h.get_title()
    assert legend_labels(ax_e) == list(eg.REVISE_CELLS)
    for line, name in zip(ax_e.get_lines(), eg.REVISE_CELLS):
        np.testing.assert_array_equal(line.get_ydata(), comparison["errors"][name])
    # with the overwrite cell's threshold: its line and the items it overwrites at without a record
    fig = fg.plot_revise(task, outputs, comparison, index=2, beta=10.0, threshold=0.5)
    *_, level, wrong = fig.axes[0].get_lines()
    np.testing.assert_array_equal(level.get_ydata(), [0.5, 0.5])
    a = task.importance[2]
    expected = np.flatnonzero((a > 0.5) & (task.record[2] != np.arange(a.size)))
    np.testing.assert_array_equal(wrong.get_xdata(), expected)


def test_overflow_figure_marks_where_exp_overflows():
    S = 20
    i = (np.arange(S) * 10.0)[None, None, :, None]  # exp(10 t): float16 overflows at t = 2, float32 at 9
    zeros, ones = np.zeros_like(i), np.ones_like(i)
    fig = fg.plot_overflow(i, zeros, ones, zeros)
    ax_i, ax_h = fig.axes
    lines = {line.get_label(): line for line in ax_h.get_lines()}
    h = slstm.recurrent(i, zeros, ones, zeros)[0, 0, :, 0]
    np.testing.assert_allclose(lines["stabilized (float64)"].get_ydata(), h)
    assert np.isfinite(h).all()
    for name, step in (("float32", 9), ("float16", 2)):
        assert lines[f"textbook, {name}"].get_xdata().max() < step  # no point from the overflow on
    for ax in (ax_i, ax_h):  # the dashed lines at the overflow steps, in both panels
        assert sorted(m.get_xdata()[0] for m in ax.get_lines() if m.get_linestyle() == "--") == [2, 9]
    levels = sorted(line.get_ydata()[0] for line in ax_i.get_lines() if line.get_linestyle() == ":")
    np.testing.assert_allclose(levels, [np.log(65504.0), np.log(np.finfo(np.float32).max)], rtol=1e-6)
    assert legend_labels(ax_i) == ["log(max float32)", "log(max float16)"]


def test_average_weights_figure():
    rng = np.random.default_rng(0)
    i, f = rng.normal(size=9), rng.normal(2.0, 1.0, size=9)
    w = eg.average_weights(i, f)
    fig = fg.plot_average_weights(i, f, w)
    ax_g, ax_w = fig.axes[:2]
    gate_i, gate_f = _ydata(ax_g)
    np.testing.assert_array_equal(gate_i, i)
    np.testing.assert_allclose(gate_f, np.log(1.0 / (1.0 + np.exp(-f))), rtol=1e-12)
    np.testing.assert_array_equal(ax_w.images[0].get_array(), w)
    assert "softmax weights" in ax_w.get_title()


# --- chapter 04: sLSTM -------------------------------------------------------------------------------


def test_recurrent_matrix_figure_shows_the_full_matrix():
    _, R = es.random_inputs(1, 2, 1, 3, seed=0)
    ax = fs.plot_recurrent_matrix(R)
    M = es.full_recurrent_matrix(R)
    np.testing.assert_array_equal(ax.images[0].get_array(), M)
    vmin, vmax = ax.images[0].get_clim()
    assert vmax == -vmin == pytest.approx(np.abs(M).max())
    assert [t.get_text() for t in ax.texts] == [f"gate {g}" for g in slstm.GATES]


def test_speed_bars_are_the_times_in_microseconds():
    results = {"DH = 4": {"numpy": 1e-4, "numba": 2e-5}, "DH = 8": {"numpy": 2e-4, "numba": 3e-5}}
    ax = fs.plot_speed(results)
    heights = [p.get_height() for p in ax.patches]
    np.testing.assert_allclose(heights, [100.0, 200.0, 20.0, 30.0])  # grouped by implementation
    assert legend_labels(ax) == ["numpy", "numba"]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(results)


def test_impulse_responses_draw_every_unit_of_every_head():
    _, R = es.random_inputs(1, 2, 1, 3, seed=1)
    responses = {"R = 0": es.impulse_response(np.zeros_like(R), S=12),
                 "random R": es.impulse_response(R, S=12)}
    fig = fs.plot_impulse_responses(responses)
    axes = np.array(fig.axes).reshape(2, 2)
    for r, (title, h) in enumerate(responses.items()):
        for head in range(2):
            ax = axes[r, head]
            assert ax.get_title() == f"{title}: head {head}"
            for unit, line in enumerate(ax.get_lines()):
                np.testing.assert_array_equal(line.get_ydata(), h[head][:, unit])


# --- chapter 05: mLSTM memory -------------------------------------------------------------------------


def test_retrieval_error_figure():
    ds, Ns = [4, 16], [2, 8, 32]
    errors = np.array([[0.1, 0.5, 0.9], [0.02, 0.1, 0.4]])
    fig = fm.plot_retrieval_error(ds, Ns, errors)
    ax_n, ax_x = fig.axes
    lines = ax_n.get_lines()
    for a, d in enumerate(ds):
        measured, estimate = lines[2 * a], lines[2 * a + 1]
        np.testing.assert_array_equal(measured.get_ydata(), errors[a])
        np.testing.assert_allclose(estimate.get_ydata(), 1 - 1 / np.sqrt(1 + (np.array(Ns) - 1) / d))
        np.testing.assert_allclose(ax_x.get_lines()[a].get_xdata(), (np.array(Ns) - 1) / d)
    load_line = ax_x.get_lines()[-1]
    np.testing.assert_allclose(load_line.get_ydata(), 1 - 1 / np.sqrt(1 + load_line.get_xdata()))
    assert legend_labels(ax_n) == ["d = 4", "d = 16"]


def test_memory_figure_shows_C_and_the_error_per_pair():
    data = mm.explorer_data(d=8, n_pairs=6, fgate_preact=2.0)
    fig = fm.plot_memory(data)
    ax_c, ax_e = fig.axes[:2]  # then the colorbar
    np.testing.assert_array_equal(ax_c.images[0].get_array(), data["C"])
    np.testing.assert_allclose([p.get_height() for p in ax_e.patches], data["relative_error"])
    f = 1 / (1 + np.exp(-2.0))
    np.testing.assert_allclose(ax_e.get_lines()[0].get_ydata(), 1 - f ** np.arange(5, -1, -1))
    assert f"{f:.4f}" in ax_e.get_title()


# --- chapter 06: parallel forms -----------------------------------------------------------------------


def test_decay_matrices_figure():
    i, f = pf.hard_gates(1, 1, 12, seed=2)
    log_d = xlstm_edu.mlstm.log_decay_matrix(torch.nn.functional.logsigmoid(f), i)[0, 0].numpy()
    fig = fpf.plot_decay_matrices(log_d, title="t")
    ax_log, ax_stab = fig.axes[:2]  # then the two colorbars
    shown = ax_log.images[0].get_array()
    causal = np.isfinite(log_d)
    np.testing.assert_array_equal(shown.mask, ~causal)
    np.testing.assert_array_equal(shown.data[causal], log_d[causal])
    expected = np.exp(log_d - log_d.max(1, keepdims=True))
    np.testing.assert_allclose(ax_stab.images[0].get_array(), expected)
    marks = ax_stab.get_lines()[0]
    np.testing.assert_array_equal(marks.get_xdata(), log_d.argmax(1))
    assert fig._suptitle.get_text() == "t"


def test_chunk_structure_figure():
    fig = fpf.plot_chunk_structure(10, 4)
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), pf.chunk_structure(10, 4))
    vertical = [line.get_xdata()[0] for line in ax.get_lines()
                if line.get_xdata()[0] == line.get_xdata()[1]]
    assert sorted(vertical) == [3.5, 7.5]  # the chunk boundaries
    assert [t.get_text() for t in ax.texts] == ["$C_{1}, n_{1}$", "$C_{2}, n_{2}$"]


def test_pitfall_figure():
    names = list(pf.LOG_D_BUILDERS)
    rows = [{"S": S, "cumsum_range": 1.0 * S, "cumsum_spacing": S * 1e-7,
             "logd_err": {names[0]: 1e-6 * S, names[1]: 1e-4 * S},
             "h_err": {names[0]: 2e-6, names[1]: 3e-4 * S}} for S in (8, 16, 32)]
    fig = fpf.plot_pitfall(rows)
    stable, diff, spacing = _ydata(fig.axes[0])
    np.testing.assert_allclose(stable, [8e-6, 16e-6, 32e-6])
    np.testing.assert_allclose(diff, [8e-4, 16e-4, 32e-4])
    np.testing.assert_allclose(spacing, [8e-7, 16e-7, 32e-7])
    np.testing.assert_allclose(_ydata(fig.axes[1])[1], [24e-4, 48e-4, 96e-4])
    assert legend_labels(fig.axes[1]) == names


def test_scaling_figure_draws_the_sweeps_and_the_fits():
    times = {"parallel": {"S": [8, 16, 32], "seconds": [1.0, 4.0, 16.0]},
             "chunkwise": {"S": [8, 16, 32], "seconds": [5.0, 5.0, 10.0]}}
    memory = {"parallel": {"S": [8, 16], "MiB": [1.0, 4.0]}}
    fig = fpf.plot_scaling(times, memory, time_min_S=16)
    ax_t, ax_m = fig.axes
    assert legend_labels(ax_t) == ["parallel  (slope 2.00)", "chunkwise  (slope 1.00)"]
    measured, fit, measured_c, fit_c = ax_t.get_lines()
    np.testing.assert_array_equal(measured.get_ydata(), [1.0, 4.0, 16.0])
    np.testing.assert_array_equal(fit.get_xdata(), [16, 32])  # fitted on S >= 16 only
    np.testing.assert_allclose(fit.get_ydata(), [4.0, 16.0])
    np.testing.assert_allclose(fit_c.get_ydata(), [5.0, 10.0])
    assert legend_labels(ax_m) == ["parallel  (slope 2.00)"]


# --- chapter 07: blocks -------------------------------------------------------------------------------

B, S, E, NH = 2, 12, 64, 4  # the chapter's configuration


def _chapter_block(kind):
    x = torch.randn(B, S, E, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return xb.make_block(kind, E, NH), x


def _drawn(kind):
    block, x = _chapter_block(kind)
    ax = fb.draw_block(kind, block=block, x=x)
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = {a.get_gid()[4:]: a.get_window_extent(renderer) for a in ax.patches
             if (a.get_gid() or "").startswith("box:")}
    texts = {t.get_gid(): t for t in ax.texts}
    return block, x, fig, ax, renderer, boxes, texts


@pytest.mark.parametrize("kind", xb.BLOCK_KINDS)
def test_block_diagram_boxes_do_not_overlap_and_text_fits(kind):
    _, _, fig, ax, renderer, boxes, texts = _drawn(kind)
    assert set(boxes) == set(xb.diagram_boxes(kind))
    keys = list(boxes)
    for j, a in enumerate(keys):
        for b in keys[j + 1:]:
            inter = boxes[a].intersection(boxes[a], boxes[b])
            assert inter is None or inter.width <= 0 or inter.height <= 0, f"{a} overlaps {b}"
    for gid, t in texts.items():  # the text of a box lies inside it
        if gid and gid.split(":")[0] in ("label", "shape"):
            box, ext = boxes[gid.split(":")[1]], t.get_window_extent(renderer)
            assert box.x0 - 1 <= ext.x0 and ext.x1 <= box.x1 + 1, gid
            assert box.y0 - 1 <= ext.y0 and ext.y1 <= box.y1 + 1, gid
    for t in ax.texts:  # edge labels sit between the boxes
        if t.get_gid() == "edge-label":
            ext = t.get_window_extent(renderer).shrunk(0.9, 0.9)
            assert all(not ext.overlaps(bb) for bb in boxes.values()), t.get_text()
    width, height = fig.bbox.width, fig.bbox.height
    scale = _style.TEXT_WIDTH_PX / max(_style.TEXT_WIDTH_PX, fig.get_figwidth() * _style.DPI)
    for t in ax.texts:
        ext = t.get_window_extent(renderer)
        assert ext.x0 >= 0 and ext.y0 >= 0 and ext.x1 <= width and ext.y1 <= height, t.get_text()
        assert t.get_fontsize() * scale >= _style.MIN_FONT_PT, t.get_text()
    assert fig.get_figheight() > fig.get_figwidth()  # tall and narrow


@pytest.mark.parametrize("kind", xb.BLOCK_KINDS)
def test_block_diagram_shows_the_traced_shapes(kind):
    block, x, _, ax, _, _, texts = _drawn(kind)
    traced = dict(xb.trace_shapes(block, x))
    for key, box in xb.diagram_boxes(kind).items():
        if box.trace is None:
            assert f"shape:{key}" not in texts
            continue
        shown = texts[f"shape:{key}"].get_text()
        concrete = "(" + ", ".join(str(n) for n in traced[box.trace]) + ")"
        assert shown.replace("\n", " ") == f"{box.shape} = {concrete}", key
        assert texts[f"label:{key}"].get_text() == box.label
    title = texts["title"].get_text()
    assert title.startswith(xb.DIAGRAMS[kind].title) and f"E={E}, NH={NH}" in title


@pytest.mark.parametrize("kind", xb.BLOCK_KINDS)
def test_block_diagram_arrows_connect_the_boxes_around_them(kind):
    block, x = _chapter_block(kind)
    lay = fb.layout(kind, xb.diagram_shapes(kind, block, x))
    d = xb.DIAGRAMS[kind]
    routed = {(r.src, r.dst) for r in lay.routes if r.style == "edge"}
    assert {(s, t) for s, t, _ in d.edges} <= routed
    bypasses = {(r.src, r.dst) for r in lay.routes if r.style == "bypass"}
    assert {(s, t) for s, t, _ in d.bypasses} == bypasses

    def on_border(p, n, tol=1e-6):
        if n.circle:
            return abs(np.hypot(p[0] - n.x, p[1] - n.y) - n.w / 2) < tol
        dx, dy = abs(p[0] - n.x) - n.w / 2, abs(p[1] - n.y) - n.h / 2
        return (abs(dx) < tol and dy <= tol) or (abs(dy) < tol and dx <= tol)

    for r in lay.routes:
        if r.style in ("edge", "bypass", "loop", "concat"):  # arrows end on the target's border
            assert on_border(r.points[-1], lay.nodes[r.dst]), (r.src, r.dst)
        if r.style in ("edge", "bypass", "loop", "tap"):  # and start on the source's
            assert on_border(r.points[0], lay.nodes[r.src]), (r.src, r.dst)
        for p, q in zip(r.points[:-1], r.points[1:]):
            assert p[0] == q[0] or p[1] == q[1]  # horizontal or vertical segments only
            for n in lay.nodes.values():  # never through a box
                inside_x = min(p[0], q[0]) < n.right - 0.01 and max(p[0], q[0]) > n.left + 0.01
                inside_y = min(p[1], q[1]) < n.top - 0.01 and max(p[1], q[1]) > n.bottom + 0.01
                assert not (inside_x and inside_y), (r.src, r.dst, n.box.key)


def test_block_layout_rejects_overlapping_boxes(monkeypatch):
    d = xb.DIAGRAMS["slstm"]
    extra = xb.Box("conv2", "a second conv", "conv", over=("i", "f"))  # on top of the first conv
    rows = tuple(row + (extra,) if any(b.key == "conv" for b in row) else row for row in d.rows)
    monkeypatch.setitem(xb.DIAGRAMS, "slstm", d._replace(rows=rows))
    with pytest.raises(ValueError, match="overlap"):
        fb.layout("slstm")


def test_draw_block_checks_its_arguments():
    block, x = _chapter_block("mlstm")
    with pytest.raises(ValueError, match="kind"):
        fb.draw_block("gru")
    with pytest.raises(ValueError, match="both"):
        fb.draw_block("mlstm", block=block)
    with pytest.raises(ValueError, match="needs a"):
        fb.draw_block("slstm", block=block, x=x)
    ax = fb.draw_block("slstm")  # no block: no shapes, the plain title
    assert not [t for t in ax.texts if (t.get_gid() or "").startswith("shape:")]
    assert next(t for t in ax.texts if t.get_gid() == "title").get_text() == xb.DIAGRAMS["slstm"].title
    lay = fb.layout("mlstm")
    _, given = plt.subplots(figsize=lay.size)  # an axes of the caller's
    assert fb.draw_block("mlstm", given) is given
    np.testing.assert_allclose(given.get_xlim(), lay.xlim)
    assert len([p for p in given.patches if (p.get_gid() or "").startswith("box:")]) == len(lay.nodes)


def test_parameter_count_bars_are_the_counts():
    per_block = {k: xb.component_counts(xb.make_block(k, 32, 4)) for k in ("mlstm", "slstm")}
    stacks = {r: xb.stack_counts(xLSTMStackConfig(embedding_dim=32, num_blocks=2,
                                                  slstm_at=ratio_to_slstm_at(r, 2)))
              for r in ("1:0", "1:1")}
    fig = fb.plot_parameter_counts(per_block, stacks, title="t")
    ax1, ax2 = fig.axes
    counts = [n for c in per_block.values() for n in c.values()]
    np.testing.assert_allclose([p.get_width() for p in ax1.patches], np.array(counts) / 1e6)
    m_counts = list(per_block["mlstm"].values())
    np.testing.assert_allclose([p.get_x() for p in ax1.patches[:len(m_counts)]],
                               np.cumsum([0] + m_counts[:-1]) / 1e6)
    assert legend_labels(ax1)[0] == "m: " + next(iter(per_block["mlstm"]))
    heights = np.array([p.get_height() for p in ax2.patches]).reshape(3, 2)  # kind x stack
    for j, c in enumerate(stacks.values()):
        np.testing.assert_allclose(heights[:, j], [sum(c[k].values()) / 1e6 for k in ("mlstm", "slstm",
                                                                                     "post_blocks_norm")])
    assert fig._suptitle.get_text() == "t"


def test_parameter_scaling_lines_are_the_counts():
    widths = [64, 128, 256]
    counted = {"mlstm": [100, 400, 1700], "slstm": [90, 350, 1500]}
    formula = {"mlstm": [100, 400, 1600], "slstm": [90, 360, 1500]}
    fig = fb.plot_parameter_scaling(widths, counted, formula, {"mlstm": 6.0})
    ax1, ax2 = fig.axes
    y1 = _ydata(ax1)
    np.testing.assert_array_equal(y1[0], formula["mlstm"])
    np.testing.assert_array_equal(y1[1], counted["mlstm"])
    np.testing.assert_allclose(_ydata(ax2)[1], np.array(counted["mlstm"]) / np.array(widths) ** 2)
    assert _ydata(ax2)[2].tolist() == [6.0, 6.0]  # the leading term
    assert "mLSTM block: leading term 6.00 $E^2$" in legend_labels(ax2)


# --- chapter 08: a language model ---------------------------------------------------------------------

_HISTORY = [{"step": 0, "elapsed_s": 0.0, "val_loss": 3.0, "val_bits_per_char": 4.3},
            {"step": 5, "elapsed_s": 1.0, "val_loss": 2.0, "val_bits_per_char": 2.9},
            {"step": 10, "elapsed_s": 2.5, "val_loss": 1.5, "val_bits_per_char": 2.2}]


def test_loss_curves_draw_the_histories():
    results = {"a": {"history": _HISTORY}, "b": {"history": _HISTORY[:2]}}
    ax = flm.plot_loss_curves(results, x="elapsed_s", uniform=32)
    a, b, uniform = ax.get_lines()
    np.testing.assert_array_equal(a.get_xdata(), [0.0, 1.0, 2.5])
    np.testing.assert_array_equal(a.get_ydata(), [4.3, 2.9, 2.2])
    np.testing.assert_array_equal(b.get_ydata(), [4.3, 2.9])
    assert uniform.get_ydata()[0] == pytest.approx(5.0)  # log2 32
    assert legend_labels(ax) == ["a", "b", "uniform over 32"]
    ax_nats = flm.plot_loss_curves(results, bits=False)
    np.testing.assert_array_equal(ax_nats.get_lines()[0].get_ydata(), [3.0, 2.0, 1.5])


def test_loss_comparison_panels():
    results = {"a": {"history": _HISTORY}}
    fig = flm.plot_loss_comparison(results, {"step": "by updates", "elapsed_s": "by time"},
                                   skip_untrained=True)
    ax_s, ax_t = fig.axes
    assert (ax_s.get_title(), ax_t.get_title()) == ("by updates", "by time")
    np.testing.assert_array_equal(ax_s.get_lines()[0].get_xdata(), [0, 5, 10])
    np.testing.assert_array_equal(ax_t.get_lines()[0].get_xdata(), [0.0, 1.0, 2.5])
    assert ax_s.get_ylim()[1] == pytest.approx(2.9 + 0.2) == ax_t.get_ylim()[1]  # shared y axis


def test_generation_cost_lines():
    costs = {"a": [{"context": 1, "time_s": 1e-3, "state_bytes": 2048},
                   {"context": 10, "time_s": 2e-3, "state_bytes": 2048}],
             "b": [{"context": 1, "time_s": 3e-3, "state_bytes": 1024},
                   {"context": 10, "time_s": 4e-3, "state_bytes": 10240}]}
    fig = flm.plot_generation_cost(costs, title="cost")
    ax_t, ax_m = fig.axes
    np.testing.assert_allclose(_ydata(ax_t)[1], [3.0, 4.0])  # ms
    np.testing.assert_allclose(_ydata(ax_m)[1], [1.0, 10.0])  # KiB
    np.testing.assert_array_equal(ax_m.get_lines()[0].get_xdata(), [1, 10])
    assert ax_t.get_xscale() == ax_t.get_yscale() == "log"
    assert legend_labels(ax_m) == ["a", "b"] and fig._suptitle.get_text() == "cost"
