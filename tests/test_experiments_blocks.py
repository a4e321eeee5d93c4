"""Tests for the blocks-and-stacks experiment module (chapter 07); its figures: test_figures.py."""

import pytest
import torch
from torch import nn

from xlstm_edu import mlstm, slstm
from xlstm_edu.blocks import ratio_to_slstm_at, xLSTMBlockStack, xLSTMStackConfig
from xlstm_edu.experiments import blocks as xb
from xlstm_edu.timing import state_nbytes, state_tensors

E, NH = 32, 4


def _x(B=2, S=9, E=E, seed=0):
    return torch.randn(B, S, E, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _forward(block, x):
    with torch.no_grad():
        return block(x)


# --- make_block / perturb ---------------------------------------------------------------------------


def test_make_block_kinds_dtype_and_errors():
    m = xb.make_block("mlstm", E, NH)
    s = xb.make_block("slstm", E, NH)
    assert type(m).__name__ == "mLSTMBlock" and type(s).__name__ == "sLSTMBlock"
    assert all(p.dtype == torch.float64 for p in m.parameters()) and not m.training
    assert m.inner_dim == xLSTMStackConfig(embedding_dim=E).mlstm_inner_dim
    with pytest.raises(ValueError, match="kind"):
        xb.make_block("lstm", E, NH)


def test_perturb_is_seeded_and_moves_zero_parameters():
    a = xb.make_block("slstm", E, NH, perturb=0.3, seed=3)
    b = xb.make_block("slstm", E, NH, perturb=0.3, seed=3)
    plain = xb.make_block("slstm", E, NH, seed=3)
    assert torch.equal(a.R, b.R)
    assert torch.all(plain.R == 0) and float(a.R.detach().abs().max()) > 0.1


# --- record_cell_calls ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["chunkwise", "parallel", "recurrent"])
def test_record_cell_calls_sees_the_mlstm_form(backend):
    block = xb.make_block("mlstm", E, NH, backend=backend, chunk_size=4)
    x = _x()
    with xb.record_cell_calls() as calls:
        y = _forward(block, x)
    assert [c.name for c in calls] == [f"mlstm.{backend}_torch"]
    q = calls[0].args[0]
    assert tuple(q.shape) == (2, NH, 9, block.head_dim)
    assert tuple(calls[0].output[0].shape if backend != "parallel" else calls[0].output.shape) \
        == (2, NH, 9, block.head_dim)
    assert y.shape == x.shape


def test_record_cell_calls_outermost_only_and_steps():
    block = xb.make_block("slstm", E, NH)
    x = _x(S=5)
    with xb.record_cell_calls() as calls:
        _forward(block, x)
        xb.run_steps(block, x[:, :2])
    # recurrent_torch loops over step_torch: those inner calls are not recorded
    assert [c.name for c in calls] == ["slstm.recurrent_fused", "slstm.step_torch", "slstm.step_torch"]
    m_block = xb.make_block("mlstm", E, NH)
    with xb.record_cell_calls() as calls:
        xb.run_steps(m_block, x[:, :3])
    assert [c.name for c in calls] == ["mlstm.step_torch"] * 3


def test_record_cell_calls_restores_functions_after_an_error():
    originals = (mlstm.chunkwise_torch, mlstm.step_torch, slstm.recurrent_fused, slstm.recurrent_torch,
                 slstm.step_torch)
    with pytest.raises(RuntimeError), xb.record_cell_calls():
        assert mlstm.chunkwise_torch is not originals[0]  # wrapped inside
        raise RuntimeError("boom")
    restored = (mlstm.chunkwise_torch, mlstm.step_torch, slstm.recurrent_fused, slstm.recurrent_torch,
                slstm.step_torch)
    assert restored == originals


# --- trace_shapes -----------------------------------------------------------------------------------


def _hooks_left(module):
    return sum(len(m._forward_hooks) for m in module.modules())


@pytest.mark.parametrize("kind", ["mlstm", "slstm"])
def test_trace_shapes_rows(kind):
    block = xb.make_block(kind, E, NH)
    x = _x(B=3, S=7)
    rows = xb.trace_shapes(block, x, with_states=True)
    names = [name for name, _ in rows]
    shapes = dict(rows)
    assert rows[0] == ("x", (3, 7, E)) and rows[-1] == ("y", (3, 7, E))
    cell = "mlstm.chunkwise_torch(...)" if kind == "mlstm" else "slstm.recurrent_fused(...)"
    assert shapes[cell] == (3, NH, 7, block.head_dim)
    assert names.index("conv1d") < names.index(cell) < names.index("outnorm")  # order computed
    width = block.inner_dim if kind == "mlstm" else E
    assert shapes["conv1d[1]"] == (3, 3, width)  # the convolution's state: the last K - 1 inputs
    assert not any(name.startswith("dropout") for name in names)
    assert _hooks_left(block) == 0
    assert "conv1d[1]" not in dict(xb.trace_shapes(block, x))
    assert cell not in dict(xb.trace_shapes(block, x, cells=False))


def test_trace_shapes_of_a_stack_and_format():
    cfg = xLSTMStackConfig(embedding_dim=E, num_blocks=2, slstm_at=(1,), chunk_size=4)
    stack = xLSTMBlockStack(cfg).double()
    rows = xb.trace_shapes(stack, _x(S=5))
    names = [n for n, _ in rows]
    assert "blocks.0.proj_up" in names and "blocks.1.ffn.proj_up" in names
    assert names.index("blocks.0.proj_down") < names.index("blocks.1.norm")
    text = xb.format_trace(rows)
    assert "blocks.1.outnorm" in text and "(2, 5, 32)" in text


def test_eval_shape():
    dims = dict(B=2, S=12, E=64, U=128, NH=4)
    assert xb.eval_shape("(B, S, 2U)", dims) == (2, 12, 256)
    assert xb.eval_shape("(B, 3*NH, 5)", dims) == (2, 12, 5)
    with pytest.raises(ValueError, match="unknown dimension"):
        xb.eval_shape("(B, Q)", dims)
    with pytest.raises(ValueError, match="cannot read"):
        xb.eval_shape("(B, S+1)", dims)


# --- diagrams ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mlstm", "slstm"])
def test_diagram_labels_agree_with_the_trace(kind):
    block = xb.make_block(kind, 64, NH)
    x = _x(S=12, E=64)
    shapes = xb.diagram_shapes(kind, block, x)
    assert shapes["x"] == ("(B, S, E)", (2, 12, 64)) and shapes["cell"][1][1] == NH
    other = "slstm" if kind == "mlstm" else "mlstm"
    with pytest.raises(ValueError, match="needs a"):
        xb.diagram_shapes(other, block, x)


def test_diagram_catches_a_wrong_label(monkeypatch):
    d = xb.DIAGRAMS["mlstm"]
    rows = tuple(tuple(b._replace(shape="(B, S, U)") if b.key == "up" else b for b in row)
                 for row in d.rows)  # the up-projection is 2U wide
    monkeypatch.setitem(xb.DIAGRAMS, "mlstm", d._replace(rows=rows))
    with pytest.raises(ValueError, match="box 'up'"):
        xb.diagram_shapes("mlstm", xb.make_block("mlstm", E, NH), _x())


@pytest.mark.parametrize("kind", ["mlstm", "slstm"])
def test_diagram_description_is_consistent(kind):
    d = xb.DIAGRAMS[kind]
    boxes = xb.diagram_boxes(kind)
    assert len(boxes) == sum(len(row) for row in d.rows)  # keys are unique
    named = [k for edge in d.edges for k in edge[:2]] + [k for edge in d.bypasses for k in edge[:2]]
    named += [k for sources, dst in d.concats for k in (*sources, dst)]
    named += [k for b in boxes.values() for k in (*b.over, *([b.beside] if b.beside else []))]
    assert set(named) <= set(boxes), set(named) - set(boxes)
    assert all((b.trace is None) == (b.shape is None) for b in boxes.values())
    # every box but the input is fed by an edge, a concatenation or a bypass
    fed = {e[1] for e in d.edges} | {dst for _, dst in d.concats} | {e[1] for e in d.bypasses}
    assert fed == set(boxes) - {"x"}
    with pytest.raises(ValueError, match="kind"):
        xb.diagram_boxes("gru")


def test_diagram_title_lists_the_dimensions():
    block = xb.make_block("slstm", E, NH)
    assert xb.diagram_title("slstm") == xb.DIAGRAMS["slstm"].title
    title = xb.diagram_title("slstm", block, _x())
    assert title.splitlines()[1] == f"B=2, S=9, E={E}, NH={NH}, DH={E // NH}, K=4, F=64"


# --- build-up from the cells ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mlstm", "slstm"])
def test_block_by_hand_equals_block(kind):
    by_hand = xb.mlstm_block_by_hand if kind == "mlstm" else xb.slstm_block_by_hand
    kw = dict(chunk_size=5) if kind == "mlstm" else {}
    block = xb.make_block(kind, E, NH, perturb=0.3, seed=2, **kw)
    x = _x(S=13)
    with torch.no_grad():
        y = block(x)
        y_hand = by_hand(block, x)
        other = by_hand(xb.make_block(kind, E, NH, perturb=0.3, seed=5, **kw), x)
    assert float((y_hand - y).abs().max()) < 1e-10
    assert float((other - y).abs().max()) > 1e-3  # control: another block's weights differ


def test_block_by_hand_refuses_training_dropout():
    block = xb.make_block("mlstm", E, NH, dropout=0.5).train()
    with pytest.raises(ValueError, match="dropout"):
        xb.mlstm_block_by_hand(block, _x())


# --- step form and state ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mlstm", "slstm"])
def test_run_steps_equals_forward(kind):
    block = xb.make_block(kind, E, NH, perturb=0.3, seed=1)
    x = _x(S=11)
    y_steps, state = xb.run_steps(block, x)
    with torch.no_grad():
        y, state_seq = block(x, return_state=True)
    assert float((y_steps - y).abs().max()) < 1e-10
    for a, b in zip(state, state_seq):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_run_steps_on_a_mixed_stack_equals_forward():
    cfg = xLSTMStackConfig(embedding_dim=E, num_blocks=3, slstm_at=(1,), chunk_size=4)
    torch.manual_seed(0)
    stack = xb.perturb_parameters_(xLSTMBlockStack(cfg).double(), 0.3, seed=4)
    x = _x(S=10)
    with torch.no_grad():
        y = stack(x)
    y_steps, state = xb.run_steps(stack, x)
    assert float((y_steps - y).abs().max()) < 1e-10
    assert len(state) == 3


def test_state_has_constant_size():
    """The block's state after 3 and after 40 steps: the same tensors, the same bytes (counted)."""
    block = xb.make_block("mlstm", E, NH)
    _, st_short = block(_x(S=3), return_state=True)
    _, st_long = block(_x(S=40), return_state=True)
    rows = state_tensors(st_short)
    assert [r[0] for r in rows] == ["state.conv", "state.c", "state.n", "state.m"]
    U, DH, B = block.inner_dim, block.head_dim, 2
    expected = 8 * (B * 3 * U + B * NH * DH * DH + B * NH * DH + B * NH)
    assert state_nbytes(st_short) == state_nbytes(st_long) == expected
    assert [r[1] for r in rows] == [r[1] for r in state_tensors(st_long)]


# --- parameter counts -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mlstm", "slstm"])
def test_component_counts_cover_every_parameter(kind):
    block = xb.make_block(kind, E, NH)
    counts = xb.component_counts(block)
    assert list(counts) == [label for label, _ in xb.COMPONENTS[kind]]
    assert sum(counts.values()) == sum(p.numel() for p in block.parameters())
    assert all(n > 0 for n in counts.values())
    block.extra = nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="extra"):
        xb.component_counts(block)


@pytest.mark.parametrize("kw", [dict(), dict(bias=True), dict(mlstm_num_heads=2, slstm_num_heads=8),
                                dict(conv1d_kernel_size=2, qkv_proj_blocksize=8),
                                dict(mlstm_proj_factor=1.5, ff_proj_factor=2.0)])
@pytest.mark.parametrize("width", [64, 96, 320])
def test_formula_equals_counted(kw, width):
    cfg = xLSTMStackConfig(embedding_dim=width, num_blocks=1, **kw)
    for kind in xb.BLOCK_KINDS:
        assert xb.block_parameter_formula(kind, cfg) == xb.counted_block_parameters(kind, cfg)
    with pytest.raises(ValueError, match="kind"):
        xb.block_parameter_formula("gru", cfg)


def test_stack_counts_match_a_real_stack():
    for ratio in ("1:0", "1:1", "0:1"):
        cfg = xLSTMStackConfig(embedding_dim=E, num_blocks=4, slstm_at=ratio_to_slstm_at(ratio, 4))
        counts = xb.stack_counts(cfg)
        total = sum(n for part in counts.values() for n in part.values())
        assert total == xLSTMBlockStack(cfg).num_parameters()
        per_kind = {k: sum(counts[k].values()) for k in ("mlstm", "slstm")}
        assert per_kind["mlstm"] == cfg.num_mlstm_blocks * xb.block_parameter_formula("mlstm", cfg)
        assert per_kind["slstm"] == len(cfg.slstm_at) * xb.block_parameter_formula("slstm", cfg)
    assert sum(xb.stack_counts(xLSTMStackConfig(embedding_dim=E, num_blocks=2))["slstm"].values()) == 0


def test_leading_coefficient_is_the_large_width_limit():
    cfg = xLSTMStackConfig(embedding_dim=4096, num_blocks=1)  # 1.3 * 4096 is close to a multiple of 64
    for kind in xb.BLOCK_KINDS:
        ratio = xb.counted_block_parameters(kind, cfg) / 4096**2
        assert ratio == pytest.approx(xb.leading_coefficient(kind, cfg), rel=0.02)
    with pytest.raises(ValueError):
        xb.leading_coefficient("gru", cfg)


# --- the official stack (needs the xlstm package; skipped per test without it) ----------------------


def _official_cfg(S=12):
    return xLSTMStackConfig(embedding_dim=E, num_blocks=2, slstm_at=(1,), context_length=S,
                            slstm_num_heads=2, chunk_size=5)


def test_official_parity():
    pytest.importorskip("xlstm")
    x = _x(S=12)
    diffs = xb.official_parity(_official_cfg(), x)
    assert diffs["forward"] < 1e-10 * diffs["scale"] and diffs["step"] < 1e-10 * diffs["scale"]
    with pytest.raises(ValueError, match="context_length"):
        xb.official_parity(_official_cfg(S=8), x)


def test_official_name_table():
    pytest.importorskip("xlstm")
    from xlstm_edu import official as official_packages

    cfg = _official_cfg()
    rows = xb.official_name_table(cfg)
    official = official_packages.build_stack(cfg).state_dict()
    assert [r[0] for r in rows] == list(official)
    ours = xLSTMBlockStack(cfg).state_dict()
    assert sorted(r[2] for r in rows) == sorted(ours)
    for _, off_shape, our_name, our_shape in rows:
        assert tuple(ours[our_name].shape) == our_shape
        assert torch.Size(off_shape).numel() == torch.Size(our_shape).numel()
    names = {off: our for off, _, our, _ in rows}
    assert names["blocks.1.xlstm.fgate.weight"] == "blocks.1.igate.weight"  # the official layer's swap
