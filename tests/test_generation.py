"""Lean generation: the stack stepper (compiled mLSTM block steps) equals the blocks' torch ``step``,
and ``generate`` gives exactly the tokens of the plain loop (forward on the prompt, then ``step`` and
``sample_next_token`` per token) for every model, greedy and seeded sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import rel_err

from xlstm_edu.blocks import stack as stack_module
from xlstm_edu.blocks.stack import xLSTMBlockStack, xLSTMStackConfig
from xlstm_edu.models import sample_next_token, xLSTMLM, xLSTMLMConfig
from xlstm_edu.models.base import PROMPT_STEPS, _sampler
from xlstm_edu.models.baselines import LSTMLM, LSTMLMConfig, TransformerLM, TransformerLMConfig

pytestmark = pytest.mark.usefixtures("one_thread")

V = 30


def perturbed(module: torch.nn.Module, seed: int = 1, scale: float = 0.3) -> torch.nn.Module:
    """Weights moved away from the init, so that every one of them matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module.eval()


def stack(dtype=torch.float64, **kw) -> xLSTMBlockStack:
    torch.manual_seed(0)
    cfg = dict(embedding_dim=32, num_blocks=3, slstm_at=(1,), round_proj_up_to_multiple_of=16,
               conv1d_kernel_size=4, chunk_size=8)
    return perturbed(xLSTMBlockStack(xLSTMStackConfig(**{**cfg, **kw})).to(dtype))


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("kernel_size", [4, 1])
def test_stepper_equals_step_and_forward(dtype, tol, kernel_size):
    st = stack(dtype, conv1d_kernel_size=kernel_size)
    x = torch.randn(3, 14, 32, dtype=dtype, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = st(x)
        _, state = st(x[:, :5], return_state=True)
        before = [t.clone() for s in state for t in s]
        stepper = st.stepper(state)
        assert stepper.compiled
        ref = state
        for t in range(5, 14):
            y_ref, ref = st.step(x[:, t], ref)
            y = stepper(x[:, t])
            assert rel_err(y, y_ref) < tol and rel_err(y, full[:, t]) < tol
        for got, want in zip(stepper.state(), ref):
            assert type(got) is type(want)
            for a, b in zip(got, want):
                assert a.shape == b.shape and (a.numel() == 0 or rel_err(a, b) < tol)
        assert all(torch.equal(a, b) for a, b in zip(before, (t for s in state for t in s)))
        # from the empty state (m = -inf) as well
        stepper, ref = st.stepper(st.zero_state(3, x)), None
        for t in range(4):
            y_ref, ref = st.step(x[:, t], ref)
            assert rel_err(stepper(x[:, t]), y_ref) < tol


def test_stepper_without_compiled_path_is_the_torch_step():
    st = stack()
    x = torch.randn(2, 6, 32, dtype=torch.float64)
    _, state = st(x[:, :3], return_state=True)
    stepper = st.stepper(state)  # gradients on: the blocks' own torch step
    assert not stepper.compiled
    y_ref, _ = st.step(x[:, 3], state)
    assert torch.equal(stepper(x[:, 3]), y_ref)
    with pytest.raises(ValueError, match="state"):
        st.stepper(state[:2])


def test_stepper_sees_changed_weights():
    """The prepared (transposed) weights are cached per block, and rebuilt when a parameter
    changes in place."""
    st = stack()
    x = torch.randn(2, 32, dtype=torch.float64)
    with torch.no_grad():
        st.stepper(st.zero_state(2, x))(x)
        st.blocks[0].proj_up.weight.mul_(1.5)
        st.blocks[2].learnable_skip.add_(0.5)
        y_ref, _ = st.step(x)
        assert rel_err(st.stepper(st.zero_state(2, x))(x), y_ref) < 1e-12


def test_parallel_and_serial_kernels_agree():
    st = stack()
    x = torch.randn(5, 32, dtype=torch.float64)
    block = st.blocks[0]
    weights = stack_module._mlstm_step_weights(block)
    outs = []
    for kernel in (stack_module._mlstm_block_step, stack_module._mlstm_block_step_parallel):
        conv, c, n, m = (t.clone().numpy() for t in block.zero_state(5, x))
        xb = x.clone().numpy()
        kernel(xb, *weights[:6], conv, *weights[6:14], c, n, m, *weights[14:])
        outs.append((xb, conv, c, n, m))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


# --- generate: the same tokens as the plain loop -----------------------------------------------------

def plain_generate(model, idx, max_new_tokens, **kw):
    """The loop as it was: forward on the prompt, then one checked step and one sample per token."""
    with torch.no_grad():
        logits, state = model(idx, return_state=True)
        logits, out = logits[:, -1], [idx]
        for _ in range(max_new_tokens):
            token = sample_next_token(logits, **kw)
            out.append(token[:, None])
            logits, state = model.step(token, state)
    return torch.cat(out, dim=1)


def xlstm(dtype, slstm_at=(1,)):
    torch.manual_seed(0)
    cfg = xLSTMLMConfig(vocab_size=V, embedding_dim=32, num_blocks=3, slstm_at=slstm_at,
                        round_proj_up_to_multiple_of=16, chunk_size=8)
    return perturbed(xLSTMLM(cfg).to(dtype))


def lstm(fused):
    torch.manual_seed(0)
    return perturbed(LSTMLM(LSTMLMConfig(V, embedding_dim=24, hidden_size=24, num_layers=2,
                                         fused=fused)).double())


def transformer():
    torch.manual_seed(0)
    return perturbed(TransformerLM(TransformerLMConfig(V, context_length=80, embedding_dim=16,
                                                       num_heads=2, num_layers=2)).double())


MODELS = {
    "xlstm64": lambda: xlstm(torch.float64),
    "xlstm32": lambda: xlstm(torch.float32),
    "xlstm_mlstm_only": lambda: xlstm(torch.float64, slstm_at=()),
    "lstm_fused": lambda: lstm(True),
    "lstm": lambda: lstm(False),
    "transformer": transformer,
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("S0", [1, 5, PROMPT_STEPS + 3])  # stepped through / read by forward
def test_generate_gives_the_tokens_of_the_plain_loop(name, S0):
    model = MODELS[name]()
    prompt = torch.randint(0, V, (2, S0), generator=torch.Generator().manual_seed(S0))
    n = 20
    greedy = model.generate(prompt, n, top_k=1)
    assert greedy.dtype == torch.int64 and greedy.shape == (2, S0 + n)
    assert torch.equal(greedy, plain_generate(model, prompt, n, top_k=1))
    for kw in (dict(), dict(temperature=0.7, top_k=5)):
        lean = model.generate(prompt, n, generator=torch.Generator().manual_seed(3), **kw)
        plain = plain_generate(model, prompt, n, generator=torch.Generator().manual_seed(3), **kw)
        assert torch.equal(lean, plain)


def test_greedy_breaks_ties_and_fails_on_nan_as_sample_next_token():
    logits = torch.tensor([[0.0, 2.0, 2.0, 1.0], [3.0, 0.0, 1.0, 2.0]] * 50)  # ties in every other row
    got = _sampler(1.0, 1, torch.Generator().manual_seed(0))(logits)
    want = sample_next_token(logits, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(got, want) and set(got[0::2].tolist()) == {1, 2}
    unique = torch.tensor([[0.0, 2.0, 1.0], [5.0, 0.0, 1.0]])
    assert torch.equal(_sampler(0.5, 1, None)(unique), torch.tensor([1, 0]))
    nan = torch.tensor([[0.0, float("nan"), 1.0]])
    with pytest.raises(RuntimeError):
        sample_next_token(nan, top_k=1)
    with pytest.raises(RuntimeError):
        _sampler(1.0, 1, None)(nan)
    assert torch.equal(_sampler(1.0, 1, None)(torch.zeros(3, 1)), torch.zeros(3, dtype=torch.int64))


def test_generate_restores_mode_and_leaves_the_prompt_alone():
    model = xlstm(torch.float64)
    model.train()
    prompt = torch.randint(0, V, (1, 4))
    copy = prompt.clone()
    out = model.generate(prompt, 5, top_k=1)
    assert model.training and torch.equal(prompt, copy) and torch.equal(out[:, :4], prompt)
    out[:, 0] = 0  # an ordinary tensor (not an inference tensor): writable
