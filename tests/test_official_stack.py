"""Parity with the official NX-AI ``xlstm`` (2.0.6) block stack and language model on CPU.

The official mLSTM layer runs its pure-torch parallel form; the sLSTM uses ``backend="vanilla"``.
Official weights (moved away from their init, so that every gate and R matter) load into ours through
:func:`xlstm_edu.blocks.load_official_state_dict`; the outputs must agree to float64 round-off
(and to 1e-4 relative in float32).
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from conftest import rel_err

from xlstm_edu import official
from xlstm_edu.blocks import load_official_state_dict, xLSTMBlockStack, xLSTMStackConfig
from xlstm_edu.blocks.official import official_to_ours
from xlstm_edu.models import xLSTMLM, xLSTMLMConfig

xlstm = pytest.importorskip("xlstm")

S = 40
TOL = {torch.float64: 1e-10, torch.float32: 1e-4}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest


def our_config(**kw) -> xLSTMStackConfig:
    base = dict(embedding_dim=32, num_blocks=2, slstm_at=(1,), context_length=S, mlstm_num_heads=4,
                slstm_num_heads=2, chunk_size=16)
    return xLSTMStackConfig(**{**base, **kw})


def perturbed_official(cfg: xLSTMStackConfig, dtype, scale=0.5, seed=1):
    """An official stack for ``cfg`` with every parameter moved away from its init."""
    off = official.build_stack(cfg, dtype)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in off.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype))
    return off


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("kw", [dict(slstm_at=(1,)), dict(slstm_at=(0,), bias=True)],
                         ids=["m-s", "s-m-bias"])
def test_forward_matches_official_stack(dtype, kw):
    cfg = our_config(**kw)
    off = perturbed_official(cfg, dtype)
    ours = load_official_state_dict(xLSTMBlockStack(cfg).to(dtype), off.state_dict())
    x = torch.randn(3, S, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(dtype)
    with torch.no_grad():
        y_off = off(x)
        y = ours(x)
        state, ys = None, []
        for t in range(S):
            y_t, state = ours.step(x[:, t], state)
            ys.append(y_t)
    assert y.dtype == dtype
    assert rel_err(y, y_off) < TOL[dtype]
    assert rel_err(torch.stack(ys, 1), y_off) < TOL[dtype]  # our recurrent steps, too


def test_loaded_weights_are_used():
    """A control: a different official stack gives clearly different outputs."""
    cfg = our_config()
    ours = load_official_state_dict(xLSTMBlockStack(cfg).double(),
                                    perturbed_official(cfg, torch.float64).state_dict())
    other = perturbed_official(cfg, torch.float64, seed=2)
    x = torch.randn(2, S, 32, dtype=torch.float64)
    with torch.no_grad():
        assert rel_err(ours(x), other(x)) > 1e-3


def test_fresh_init_matches_official_init():
    """The deterministic parts of the official init are identical; the random ones share the scale."""
    cfg = our_config(embedding_dim=64, num_blocks=3, slstm_at=(1,), mlstm_num_heads=2, slstm_num_heads=4)
    ours = xLSTMBlockStack(cfg).state_dict()
    theirs = official_to_ours(official.build_stack(cfg).state_dict(), xLSTMBlockStack(cfg))
    mlstm_fixed = ("norm.weight", "igate.weight", "fgate.weight", "fgate.bias", "learnable_skip",
                   "outnorm.weight")
    slstm_fixed = ("norm.weight", "R", "b", "outnorm.weight", "ffn_norm.weight")
    fixed = [f"blocks.{i}.{name}" for i in (0, 2) for name in mlstm_fixed]
    fixed += [f"blocks.1.{name}" for name in slstm_fixed] + ["post_blocks_norm.weight"]
    for key in fixed:
        assert torch.equal(ours[key], theirs[key]), key
    assert torch.count_nonzero(theirs["blocks.1.b"][:, 1]) > 0  # the powerlaw forget bias
    random = [key for key in ours if key not in fixed and ours[key].numel() >= 2000]
    assert len(random) == 6  # proj_up, proj_down of both mLSTM blocks and of the feed-forward
    for key in random:  # enough samples for a 10% check of the spread
        assert abs(ours[key].std() / theirs[key].std() - 1) < 0.1, key


def test_cuda_layout_of_slstm_weights_loads_the_same():
    """Official checkpoints trained with the CUDA sLSTM store R and b in another layout."""
    from xlstm.blocks.slstm.cell import sLSTMCell_cuda

    cfg = our_config()
    off = perturbed_official(cfg, torch.float32)
    vanilla = off.blocks[1].xlstm.slstm_cell
    cell_cfg = copy.deepcopy(vanilla.config)
    cell_cfg.backend = "cuda"
    cuda_cell = sLSTMCell_cuda(cell_cfg, skip_backend_init=True)  # no GPU needed to hold weights
    cuda_cell.recurrent_kernel[:] = vanilla.recurrent_kernel[:]  # official layout conversions
    cuda_cell.bias[:] = vanilla.bias[:]
    sd = dict(off.state_dict())
    sd["blocks.1.xlstm.slstm_cell._recurrent_kernel_"] = cuda_cell._recurrent_kernel_.detach()
    sd["blocks.1.xlstm.slstm_cell._bias_"] = cuda_cell._bias_.detach()
    assert not torch.equal(sd["blocks.1.xlstm.slstm_cell._bias_"], vanilla._bias_)
    from_cuda = load_official_state_dict(xLSTMBlockStack(cfg), sd).state_dict()
    from_vanilla = load_official_state_dict(xLSTMBlockStack(cfg), off.state_dict()).state_dict()
    for key in from_vanilla:
        assert torch.equal(from_cuda[key], from_vanilla[key]), key


def test_loader_rejects_a_different_architecture():
    off = perturbed_official(our_config(), torch.float32)
    with pytest.raises(ValueError, match="missing"):
        load_official_state_dict(xLSTMBlockStack(our_config(slstm_at=(0,))), off.state_dict())
    with pytest.raises(ValueError, match="wrong shapes"):
        load_official_state_dict(xLSTMBlockStack(our_config(mlstm_num_heads=2)), off.state_dict())
    with pytest.raises(ValueError, match="_recurrent_kernel_"):
        load_official_state_dict(xLSTMBlockStack(our_config(slstm_num_heads=4)), off.state_dict())


def test_language_model_matches_official():
    cfg = xLSTMLMConfig(vocab_size=48, **dataclasses.asdict(our_config(slstm_at=(0,))))
    stack_cfg = official.stack_config(cfg.stack_config())
    init_fields = {f.name: getattr(stack_cfg, f.name)
                   for f in dataclasses.fields(xlstm.xLSTMBlockStackConfig) if f.init}
    off = xlstm.xLSTMLMModel(xlstm.xLSTMLMModelConfig(**init_fields, vocab_size=48, tie_weights=True))
    off = off.double()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in off.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    model = xLSTMLM(cfg).double().load_official_state_dict(off.state_dict())
    idx = torch.randint(0, 48, (2, S), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert rel_err(model(idx), off(idx)) < 1e-10
