"""xLSTM blocks and block stacks: components against plain references, forward == step == continued
forward (float64), the three mLSTM forms inside a block, the official init schemes, config
validation and error messages."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import rel_err

from xlstm_edu.blocks import (
    CausalConv1d,
    GatedFeedForward,
    LayerNorm,
    LinearHeadwise,
    MultiHeadLayerNorm,
    mLSTMBlock,
    ratio_to_slstm_at,
    sLSTMBlock,
    xLSTMBlockStack,
    xLSTMStackConfig,
)
from xlstm_edu.blocks.components import powerlaw_blockdependent_forget_bias, proj_up_dim

E = 32


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest


def perturb_(module: torch.nn.Module, scale: float = 0.3, seed: int = 1) -> torch.nn.Module:
    """Move every parameter away from its init (R != 0, gate weights != 0), reproducibly."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p))
    return module


def stack_config(**kw) -> xLSTMStackConfig:
    base = dict(embedding_dim=E, num_blocks=3, slstm_at=(1,), context_length=40, mlstm_num_heads=4,
                slstm_num_heads=4, chunk_size=8)
    return xLSTMStackConfig(**{**base, **kw})


def rand_x(B=2, S=37, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, S, E, generator=g, dtype=torch.float64).to(dtype)


def run_steps(module, x):
    """Feed x ``(B, S, E)`` one step at a time; returns ``(B, S, E)`` and the last state."""
    state, ys = None, []
    for t in range(x.shape[1]):
        y, state = module.step(x[:, t], state)
        ys.append(y)
    return torch.stack(ys, dim=1), state


def make_mlstm_block(backend="chunkwise", **kw):
    return perturb_(mLSTMBlock(E, 64, num_heads=4, backend=backend, chunk_size=8, **kw).double())


def make_slstm_block(**kw):
    return perturb_(sLSTMBlock(E, 64, num_heads=4, **kw).double())


# --- components -------------------------------------------------------------------------------------


def test_causal_conv_matches_torch_conv1d_and_its_step():
    conv = CausalConv1d(6, kernel_size=4).double()
    x = torch.randn(2, 11, 6, dtype=torch.float64)
    ref = torch.nn.Conv1d(6, 6, 4, padding=3, groups=6).double()
    with torch.no_grad():
        ref.weight.copy_(conv.weight[:, None, :])
        ref.bias.copy_(conv.bias)
    y_ref = ref(x.transpose(1, 2))[:, :, :11].transpose(1, 2)  # pad both sides, keep the causal part
    y, state = conv(x)
    assert rel_err(y, y_ref) < 1e-13
    assert torch.equal(state, x[:, -3:])
    y_steps, s = [], None
    for t in range(11):
        y_t, s = conv.step(x[:, t], s)
        y_steps.append(y_t)
    assert rel_err(torch.stack(y_steps, 1), y) < 1e-13
    y1, s1 = conv(x[:, :2])  # shorter than the kernel: the state keeps zeros in front
    y2, _ = conv(x[:, 2:], s1)
    assert rel_err(torch.cat([y1, y2], 1), y) < 1e-13


def test_linear_headwise_is_block_diagonal():
    lin = LinearHeadwise(12, num_heads=3, bias=True).double()
    with torch.no_grad():
        lin.bias.normal_()
    dense = torch.block_diag(*lin.weight)  # (12, 12)
    x = torch.randn(4, 5, 12, dtype=torch.float64)
    assert rel_err(lin(x), x @ dense.T + lin.bias) < 1e-13


def test_norms():
    ln = LayerNorm(8).double()
    with torch.no_grad():
        ln.weight.normal_()
    x = torch.randn(3, 8, dtype=torch.float64)
    assert rel_err(ln(x), F.layer_norm(x, (8,), eps=1e-5) * (1 + ln.weight)) < 1e-13
    mh = MultiHeadLayerNorm(12).double()
    with torch.no_grad():
        mh.weight.normal_()
    h = torch.randn(2, 5, 3, 4, dtype=torch.float64)  # (B, S, NH, DH)
    per_head = F.layer_norm(h, (4,), eps=1e-5) * (1 + mh.weight.reshape(3, 4))
    assert rel_err(mh(h), per_head) < 1e-13
    with pytest.raises(ValueError, match="NH \\* DH"):
        mh(torch.randn(2, 5, 2, 4, dtype=torch.float64))


def test_gated_feedforward():
    ff = GatedFeedForward(8, 16).double()
    x = torch.randn(3, 8, dtype=torch.float64)
    gate, up = (x @ ff.proj_up.weight.T).split(16, dim=-1)
    assert rel_err(ff(x), (F.gelu(gate) * up) @ ff.proj_down.weight.T) < 1e-13


def test_proj_up_dim_rounds_up_like_the_official_config():
    assert proj_up_dim(128, 1.3) == 192  # 166.4 -> next multiple of 64
    assert proj_up_dim(32, 2.0) == 64
    assert proj_up_dim(100, 2.0, multiple_of=8) == 200
    assert proj_up_dim(100, 1.3, multiple_of=8) == 136  # 130 -> 136


# --- initialisation ---------------------------------------------------------------------------------


def test_mlstm_block_official_init():
    torch.manual_seed(0)
    block = mLSTMBlock(128, 256, num_heads=4, num_blocks=2)
    assert torch.allclose(block.fgate.bias, torch.linspace(3.0, 6.0, 4))
    assert torch.count_nonzero(block.fgate.weight) == 0 and torch.count_nonzero(block.igate.weight) == 0
    assert torch.equal(block.learnable_skip, torch.ones(256))
    assert torch.count_nonzero(block.norm.weight) == 0  # the gain 1 + weight starts at 1
    small = math.sqrt(2 / (5 * 128))
    assert abs(block.proj_up.weight.std().item() / small - 1) < 0.05
    wang = 2 / 2 / math.sqrt(128)
    assert abs(block.proj_down.weight.std().item() / wang - 1) < 0.05
    assert 0.05 < block.igate.bias.std().item() < 0.2  # N(0, 0.1) over 4 heads: loose


def test_slstm_block_official_init():
    block = sLSTMBlock(E, 64, num_heads=4, block_idx=1, num_blocks=3)
    assert torch.count_nonzero(block.R) == 0
    fb = powerlaw_blockdependent_forget_bias(8, 1, 3)
    assert torch.allclose(block.b[:, 1], fb.expand(4, 8))
    assert torch.count_nonzero(block.b[:, [0, 2, 3]]) == 0
    assert fb[0] == 5.0 and torch.isclose(fb[-1], torch.tensor(-7.0))
    assert torch.all(fb[1:] < fb[:-1])  # open forget gates first, then shorter memories
    deeper = powerlaw_blockdependent_forget_bias(8, 2, 3)
    assert torch.all(deeper[1:-1] > fb[1:-1])  # deeper blocks keep more units open


# --- forward == step == continued forward (float64) ------------------------------------------------


@pytest.mark.parametrize("make", [make_mlstm_block, make_slstm_block], ids=["mlstm", "slstm"])
def test_block_step_equals_forward(make):
    block = make()
    x = rand_x()
    y, state = block(x, return_state=True)
    y_steps, state_steps = run_steps(block, x)
    assert rel_err(y_steps, y) < 1e-10
    for a, b in zip(state_steps, state):
        finite = torch.isfinite(b)
        assert torch.equal(finite, torch.isfinite(a))
        assert rel_err(a[finite], b[finite]) < 1e-10
    y1, s1 = block(x[:, :13], return_state=True)  # continue from a state: same outputs
    assert rel_err(torch.cat([y1, block(x[:, 13:], s1)], 1), y) < 1e-10


def test_mlstm_block_forms_agree():
    x = rand_x(S=29)
    block = make_mlstm_block()
    ys = {}
    for backend in ("chunkwise", "parallel", "recurrent"):
        block.backend = backend
        ys[backend] = block(x)
    assert rel_err(ys["parallel"], ys["chunkwise"]) < 1e-10
    assert rel_err(ys["recurrent"], ys["chunkwise"]) < 1e-10


@pytest.fixture
def mixed_stack():
    torch.manual_seed(0)
    return perturb_(xLSTMBlockStack(stack_config(num_blocks=4, slstm_at=(1, 2))).double())


def test_stack_step_equals_forward(mixed_stack):
    x = rand_x()
    y = mixed_stack(x)
    y_steps, state = run_steps(mixed_stack, x)
    assert rel_err(y_steps, y) < 1e-10
    assert [type(s).__name__ for s in state] == ["mLSTMBlockState", "sLSTMBlockState",
                                                 "sLSTMBlockState", "mLSTMBlockState"]
    y1, s1 = mixed_stack(x[:, :20], return_state=True)
    y2, s2 = mixed_stack(x[:, 20:], s1, return_state=True)
    assert rel_err(torch.cat([y1, y2], 1), y) < 1e-10
    y_more, _ = mixed_stack.step(x[:, 0], s2)  # the state from forward also drives step
    assert y_more.shape == (2, E)


def test_stack_gradients_reach_every_parameter(mixed_stack):
    x = rand_x(S=19).requires_grad_(True)
    mixed_stack(x).square().mean().backward()
    for name, p in mixed_stack.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name
    assert torch.isfinite(x.grad).all()


def test_stack_is_causal(mixed_stack):
    x = rand_x(S=20)
    x2 = x.clone()
    x2[:, 12:] += torch.randn_like(x2[:, 12:])  # (a constant shift would vanish in the LayerNorm)
    y, y2 = mixed_stack(x), mixed_stack(x2)
    assert (y[:, :12] - y2[:, :12]).abs().max() < 1e-12
    assert (y[:, 12:] - y2[:, 12:]).abs().max() > 1e-3


def test_stack_follows_dtype():
    stack = xLSTMBlockStack(stack_config(num_blocks=2))
    y = stack(rand_x(S=9, dtype=torch.float32))
    assert y.dtype == torch.float32 and y.shape == (2, 9, E)
    y_t, state = stack.step(rand_x(S=1, dtype=torch.float32)[:, 0])
    assert y_t.dtype == torch.float32 and state[0].c.dtype == torch.float32


def test_stack_dropout_only_in_training():
    stack = perturb_(xLSTMBlockStack(stack_config(num_blocks=2, dropout=0.5)).double())
    x = rand_x(S=9)
    stack.eval()
    assert torch.equal(stack(x), stack(x))
    stack.train()
    assert not torch.equal(stack(x), stack(x))


# --- configs and errors -------------------------------------------------------------------------


def test_ratio_to_slstm_at():
    assert ratio_to_slstm_at("1:1", 4) == (1, 3)
    assert ratio_to_slstm_at("7:1", 8) == (7,)
    assert ratio_to_slstm_at("7:1", 16) == (7, 15)
    assert ratio_to_slstm_at("1:0", 3) == ()
    assert ratio_to_slstm_at("0:1", 3) == (0, 1, 2)
    assert len(ratio_to_slstm_at("3:1", 12)) == 3
    for bad, n in [("7:1", 2), ("1-1", 4), ("0:0", 2), ("a:b", 2), ("1:1", 0)]:
        with pytest.raises(ValueError):
            ratio_to_slstm_at(bad, n)


@pytest.mark.parametrize("kw, match", [
    (dict(embedding_dim=0), "embedding_dim"),
    (dict(num_blocks=2, slstm_at=(2,)), "slstm_at"),
    (dict(slstm_at=(1, 1)), "repeated"),
    (dict(slstm_at="1:1"), "ratio_to_slstm_at"),
    (dict(mlstm_num_heads=3), "multiple of mlstm_num_heads"),
    (dict(slstm_num_heads=5), "slstm_num_heads"),
    (dict(slstm_num_heads=32), "head dim"),
    (dict(mlstm_backend="fast"), "mlstm_backend"),
    (dict(dropout=1.0), "dropout"),
    (dict(mlstm_proj_factor=0), "mlstm_proj_factor"),
    (dict(chunk_size=0), "chunk_size"),
])
def test_config_errors(kw, match):
    with pytest.raises(ValueError, match=match):
        stack_config(**kw)


def test_config_round_trip():
    cfg = stack_config(slstm_at=[2, 0])
    assert cfg.slstm_at == (0, 2) and cfg.block_types == ("s", "m", "s")
    assert xLSTMStackConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        xLSTMStackConfig.from_dict({**cfg.to_dict(), "heads": 3})


def test_stack_input_errors():
    stack = xLSTMBlockStack(stack_config(num_blocks=2))
    with pytest.raises(ValueError, match="E = 32"):
        stack(torch.randn(2, 5, 16))
    with pytest.raises(ValueError, match="floating"):
        stack(torch.ones(2, 5, E, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\(B, E\)"):
        stack.step(torch.randn(2, 5, E))
    with pytest.raises(ValueError, match="block states"):
        stack(torch.randn(2, 5, E), state=(None,))
    with pytest.raises(ValueError, match="xLSTMStackConfig"):
        xLSTMBlockStack({"embedding_dim": 32})


@pytest.mark.cuda
def test_stack_on_cuda_float32(mixed_stack):
    x = rand_x(S=21)
    gpu = xLSTMBlockStack(mixed_stack.config).cuda()
    gpu.load_state_dict(mixed_stack.state_dict())
    y = gpu(x.float().cuda())
    assert y.device.type == "cuda" and y.dtype == torch.float32
    assert rel_err(y, mixed_stack(x)) < 1e-4
    y_steps, _ = run_steps(gpu, x.float().cuda())
    assert rel_err(y_steps, y) < 1e-4
