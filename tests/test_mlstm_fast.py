"""The fast mLSTM block paths against the reference arithmetic they replace (float64, 1e-10): the numba
block-diagonal projections and causal convolution (values and every gradient), the layer-norm form of
the multi-head norm against the official group norm, the whole block against the pre-fusion block
(einsum projections, ``cat([q, k, v])`` into two gate layers, ``conv1d``, ``group_norm``, recurrent
cell), the chunkwise form's gradients against the recurrent form's, and the lean ``step(check=False)``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from xlstm_edu import mlstm
from xlstm_edu.blocks import CausalConv1d, MultiHeadLayerNorm, components, mLSTMBlock
from xlstm_edu.blocks.components import headwise_linear

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-10


@pytest.fixture
def kernel_calls(monkeypatch):
    """Kernels for every size (tests use few rows), and a count of the numba calls, to show they ran."""
    monkeypatch.setattr(components, "KERNEL_MIN_ROWS", 1)
    calls = {"headwise": 0, "conv": 0}
    for name, key in (("_Headwise4", "headwise"), ("_CausalConv", "conv")):
        fn = getattr(components, name)
        original = fn.apply

        def counted(*args, _original=original, _key=key):
            calls[_key] += 1
            return _original(*args)
        monkeypatch.setattr(fn, "apply", counted)
    return calls


def max_diff(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b, strict=True))


def grads(out, tensors, seed=5):
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad(out, tensors, g)


@pytest.mark.parametrize("lead", [(3, 7), (5,)])
@pytest.mark.parametrize("num_weights", [1, 2])
def test_headwise_kernel_equals_einsum(lead, num_weights, kernel_calls):
    g = torch.Generator().manual_seed(0)
    U = 32  # 8 blocks of 4
    x_big = torch.randn(*lead, 2 * U, generator=g, dtype=torch.float64)
    x = x_big[..., :U].requires_grad_(False).clone().requires_grad_()  # contiguous leaf
    x_view = x_big.requires_grad_()[..., U:]  # a non-contiguous view, as the branch a of proj_up
    ws = [torch.randn(8, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
          for _ in range(num_weights)]
    for inp, leaf in ((x, x), (x_view, x_big)):
        fast = headwise_linear(inp, *ws)
        ref = [torch.einsum("...hi,hoi->...ho", inp.reshape(*lead, 8, 4), w).reshape(*lead, U)
               for w in ws]
        assert max_diff(fast, ref) < TOL
        out_fast = sum((i + 1) * y for i, y in enumerate(fast))
        out_ref = sum((i + 1) * y for i, y in enumerate(ref))
        assert max_diff(grads(out_fast, [leaf, *ws]), grads(out_ref, [leaf, *ws])) < TOL
    assert kernel_calls["headwise"] == 2


def test_headwise_kernel_gradcheck(kernel_calls):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 8, generator=g, dtype=torch.float64, requires_grad=True)
    w1, w2 = (torch.randn(2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
              for _ in range(2))
    assert torch.autograd.gradcheck(lambda *t: headwise_linear(*t), (x, w1, w2))
    assert kernel_calls["headwise"] > 0


def test_headwise_other_block_sizes_take_the_einsum():
    x = torch.randn(2, 3, 12, dtype=torch.float64)
    w = torch.randn(4, 3, 3, dtype=torch.float64)
    (y,) = headwise_linear(x, w)
    ref = torch.einsum("...hi,hoi->...ho", x.reshape(2, 3, 4, 3), w).reshape(2, 3, 12)
    assert (y - ref).abs().max() < TOL


@pytest.mark.parametrize("bias", [True, False])
def test_causal_conv_kernel_equals_conv1d(bias, kernel_calls):
    torch.manual_seed(0)
    conv = CausalConv1d(12, 4, bias=bias).double()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 9, 12, generator=g, dtype=torch.float64, requires_grad=True)
    state = torch.randn(3, 3, 12, generator=g, dtype=torch.float64, requires_grad=True)
    params = [conv.weight] + ([conv.bias] if bias else [])
    y, new_state = conv(x, state)
    x_padded = torch.cat([state, x], dim=1)
    ref = F.conv1d(x_padded.transpose(1, 2), conv.weight[:, None, :], conv.bias,
                   groups=12).transpose(1, 2)
    assert (y - ref).abs().max() < TOL
    assert torch.equal(new_state, x_padded[:, -3:])
    assert max_diff(grads(y, [x, state, *params]), grads(ref, [x, state, *params])) < TOL
    assert torch.autograd.gradcheck(lambda a, s: conv(a, s)[0], (x[:1, :5].detach().requires_grad_(),
                                                                  state[:1].detach().requires_grad_()))
    assert kernel_calls["conv"] > 0


def test_multihead_norm_equals_group_norm_and_takes_heads_anywhere():
    norm = MultiHeadLayerNorm(12).double()
    with torch.no_grad():
        norm.weight.normal_()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)  # (B, S, NH, DH)
    y = norm(x)
    ref = F.group_norm(x.reshape(-1, 12), 3, norm.gain, None, norm.eps).reshape(x.shape)
    assert (y - ref).abs().max() < TOL
    assert max_diff(grads(y, [x, norm.weight]), grads(ref, [x, norm.weight])) < TOL
    y_heads_first = norm(x.transpose(1, 2), heads_axis=1)  # (B, NH, S, DH)
    assert (y_heads_first.transpose(1, 2) - y).abs().max() < TOL
    with pytest.raises(ValueError, match="NH \\* DH = 12"):
        norm(x, heads_axis=1)


def reference_block_forward(blk: mLSTMBlock, x: torch.Tensor) -> torch.Tensor:
    """The block as it was computed before the fusion: one op per formula, recurrent cell."""
    B, S, _ = x.shape
    U, NH, DH = blk.inner_dim, blk.num_heads, blk.head_dim
    a, b = blk.proj_up(blk.norm(x)).split(U, dim=-1)
    K = blk.conv1d.kernel_size
    x_padded = torch.cat([a.new_zeros(B, K - 1, U), a], dim=1)
    a_conv = F.conv1d(x_padded.transpose(1, 2), blk.conv1d.weight[:, None, :], blk.conv1d.bias,
                      groups=U).transpose(1, 2)
    a_conv = F.silu(a_conv)

    def headwise(proj, t):
        P = proj.weight.shape[0]
        y = torch.einsum("...hi,hoi->...ho", t.reshape(B, S, P, -1), proj.weight).reshape(B, S, U)
        return y + proj.bias if proj.bias is not None else y

    q, k, v = headwise(blk.q_proj, a_conv), headwise(blk.k_proj, a_conv), headwise(blk.v_proj, a)
    qkv = torch.cat([q, k, v], dim=-1)
    i_pre, f_pre = blk.igate(qkv).transpose(1, 2), blk.fgate(qkv).transpose(1, 2)
    q, k, v = (t.reshape(B, S, NH, DH).transpose(1, 2) for t in (q, k, v))
    h, _ = mlstm.recurrent_torch(q, k, v, i_pre, f_pre, mlstm.zero_state(B, NH, DH, DH, q, empty=True),
                                 eps=blk.eps)
    h = F.group_norm(h.transpose(1, 2).reshape(B * S, U), NH, blk.outnorm.gain, None,
                     blk.outnorm.eps).reshape(B, S, U)
    h = (h + blk.learnable_skip * a_conv) * F.silu(b)
    return x + blk.proj_down(h)


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("bias", [False, True])
def test_block_gradients_equal_the_reference_block(kernels, bias, monkeypatch, kernel_calls):
    if not kernels:  # the torch path that runs on CUDA, here on the CPU
        monkeypatch.setattr(components, "_use_kernels", lambda *t: False)
    torch.manual_seed(0)
    blk = mLSTMBlock(16, 32, num_heads=2, chunk_size=4, bias=bias).double()
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():  # away from the init (zero gate weights, unit skip)
        for p in blk.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    x = torch.randn(3, 11, 16, generator=g, dtype=torch.float64, requires_grad=True)  # S % L != 0
    tensors = [x, *blk.parameters()]
    y, ref = blk(x), reference_block_forward(blk, x)
    assert (y - ref).abs().max() < TOL
    assert max_diff(grads(y, tensors), grads(ref, tensors)) < TOL
    assert (kernel_calls["headwise"] == 2 and kernel_calls["conv"] == 1) is kernels


def test_small_calls_take_the_torch_path():
    """A generation step (B rows) is cheaper through torch than through a kernel call."""
    x = torch.randn(components.KERNEL_MIN_ROWS - 1, 8, dtype=torch.float64)
    w = torch.randn(2, 4, 4, dtype=torch.float64)
    (y,) = headwise_linear(x, w)
    assert torch.equal(y, torch.einsum("...hi,hoi->...ho", x.reshape(-1, 2, 4), w).reshape(x.shape))


@pytest.mark.parametrize("S, L", [(12, 4), (13, 4), (7, 16)])
def test_chunkwise_gradients_equal_recurrent(S, L):
    g = torch.Generator().manual_seed(6)
    B, NH, DHQK, DHV = 2, 3, 5, 4

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)

    q, k, v, i_pre = r(B, NH, S, DHQK), r(B, NH, S, DHQK), r(B, NH, S, DHV), r(B, NH, S)
    f_pre = (torch.randn(B, NH, S, generator=g, dtype=torch.float64) + 2).requires_grad_()
    c0, n0 = r(B, NH, DHQK, DHV), r(B, NH, DHQK)
    m0 = torch.randn(B, NH, generator=g, dtype=torch.float64, requires_grad=True)
    inputs = [q, k, v, i_pre, f_pre, c0, n0, m0]

    def out(fn, *extra):
        h, (c, n, m) = fn(q, k, v, i_pre, f_pre, *extra, (c0, n0, m0))
        return torch.cat([h.flatten(), c.flatten(), n.flatten(), m.flatten()])

    fast, ref = out(mlstm.chunkwise_torch, L), out(mlstm.recurrent_torch)
    assert (fast - ref).abs().max() < TOL
    assert max_diff(grads(fast, inputs), grads(ref, inputs)) < TOL


def test_step_without_checks_equals_step_with_them():
    torch.manual_seed(0)
    blk = mLSTMBlock(16, 32, num_heads=2).double()
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    state_a = state_b = None
    for t in range(5):
        y_a, state_a = blk.step(x[:, t], state_a)
        y_b, state_b = blk.step(x[:, t], state_b, check=False)
        assert torch.equal(y_a, y_b)
    assert all(torch.equal(a, b) for a, b in zip(state_a, state_b, strict=True))
    assert (blk(x)[:, -1] - y_b).abs().max() < TOL
    with pytest.raises(ValueError, match="state"):
        blk.step(x[:, 0], state_a[:3])
