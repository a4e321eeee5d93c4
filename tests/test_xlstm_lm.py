"""The xLSTM language model: step == forward, generation (prefill + constant-memory steps),
sampling options and their errors, config round trips, build_model, and a short training run."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from conftest import rel_err

from xlstm_edu.models import build_model, sample_next_token, xLSTMLM, xLSTMLMConfig

V = 40


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest


def lm_config(**kw) -> xLSTMLMConfig:
    base = dict(vocab_size=V, embedding_dim=32, num_blocks=3, slstm_at=(1,), context_length=32,
                mlstm_num_heads=4, slstm_num_heads=4, chunk_size=8)
    return xLSTMLMConfig(**{**base, **kw})


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = xLSTMLM(lm_config()).double()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # away from the init, so that every weight matters
        for p in m.stack.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return m.eval()


def tokens(B=2, S=23, seed=0):
    return torch.randint(0, V, (B, S), generator=torch.Generator().manual_seed(seed))


def test_step_logits_equal_forward_logits(model):
    idx = tokens()
    logits = model(idx)
    assert logits.shape == (2, 23, V) and logits.dtype == torch.float64
    state, steps = None, []
    for t in range(idx.shape[1]):
        step_logits, state = model.step(idx[:, t], state)
        steps.append(step_logits)
    assert rel_err(torch.stack(steps, 1), logits) < 1e-10
    head, state = model(idx[:, :9], return_state=True)  # prefill, then continue
    assert rel_err(torch.cat([head, model(idx[:, 9:], state)], 1), logits) < 1e-10


def test_generate_is_deterministic_with_a_seeded_generator(model):
    prompt = tokens(S=5)
    runs = [model.generate(prompt, 12, top_k=10, generator=torch.Generator().manual_seed(s))
            for s in (7, 7, 8)]
    assert runs[0].shape == (2, 17) and runs[0].dtype == prompt.dtype
    assert torch.equal(runs[0][:, :5], prompt)
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])
    assert torch.equal(model.generate(prompt, 0), prompt)


def test_top_k_1_is_greedy_and_matches_full_recomputation(model):
    prompt = tokens(S=6)
    out = model.generate(prompt, 10, top_k=1, temperature=0.7)
    greedy = prompt
    for _ in range(10):  # reference: re-read the whole text each time, take the argmax
        next_token = model(greedy)[:, -1].argmax(-1, keepdim=True)
        greedy = torch.cat([greedy, next_token], 1)
    assert torch.equal(out, greedy)


def test_generate_restores_training_mode(model):
    model.train()
    model.generate(tokens(S=3), 2)
    assert model.training


def test_sample_next_token_respects_top_k():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0, -1.0]]).repeat(200, 1)
    g = torch.Generator().manual_seed(0)
    drawn = sample_next_token(logits, temperature=5.0, top_k=2, generator=g)
    assert set(drawn.tolist()) == {1, 3}
    drawn = sample_next_token(logits, temperature=5.0, generator=g)  # all five appear without top_k
    assert set(drawn.tolist()) == {0, 1, 2, 3, 4}
    assert torch.equal(sample_next_token(logits, top_k=1), torch.ones(200, dtype=torch.int64))


@pytest.mark.parametrize("kw, match", [
    (dict(temperature=0.0), "temperature"),
    (dict(temperature=-1.0), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(temperature=float("inf")), "temperature"),
    (dict(temperature="1"), "temperature"),
    (dict(top_k=0), "top_k"),
    (dict(top_k=2.5), "top_k"),
    (dict(max_new_tokens=-1), "max_new_tokens"),
])
def test_generate_argument_errors(model, kw, match):
    kw = {"max_new_tokens": 3, **kw}
    with pytest.raises(ValueError, match=match):
        model.generate(tokens(S=4), **kw)


def test_token_errors(model):
    with pytest.raises(ValueError, match="in \\[0, 40\\)"):
        model(torch.full((1, 3), V))
    with pytest.raises(ValueError, match="integer dtype"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"\(B, S\)"):
        model(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\(B,\)"):
        model.step(torch.zeros(2, 1, dtype=torch.int64))


def test_weight_tying_and_parameter_count():
    tied = xLSTMLM(lm_config())
    untied = xLSTMLM(lm_config(tie_weights=False))
    assert tied.lm_head.weight is tied.token_embedding.weight
    assert untied.num_parameters() - tied.num_parameters() == V * 32
    assert tied.num_parameters(exclude_embedding=True) == tied.stack.num_parameters()


def test_config_round_trips_and_build_model():
    cfg = lm_config(slstm_at=[2, 0])
    d = cfg.to_dict()
    assert d["model"] == "xlstm" and cfg.slstm_at == (0, 2)
    assert xLSTMLMConfig.from_dict(json.loads(json.dumps(d))) == cfg
    model = xLSTMLM.from_config(d)
    assert model.config == cfg and model.to_dict() == d
    torch.manual_seed(0)
    a = build_model(d)
    torch.manual_seed(0)
    b = build_model(cfg)
    assert isinstance(a, xLSTMLM) and a.config == cfg
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert dataclasses.asdict(cfg.stack_config()).items() <= dataclasses.asdict(cfg).items()


@pytest.mark.parametrize("config, match", [
    ({"embedding_dim": 32}, "model"),
    ({"model": "gru"}, "model"),
    ({"model": "xlstm", "vocab": 10}, "unknown"),
    ({"model": "xlstm", "vocab_size": 0}, "vocab_size"),
    ([1, 2], "dict"),
])
def test_build_model_errors(config, match):
    with pytest.raises(ValueError, match=match):
        build_model(config)


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    model = xLSTMLM(lm_config(num_blocks=2, slstm_at=(1,)))
    idx = torch.arange(24).remainder(6).repeat(4, 1)  # a periodic text: easy to learn
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss_fn():
        logits = model(idx[:, :-1])
        return F.cross_entropy(logits.reshape(-1, V), idx[:, 1:].reshape(-1))

    first = loss_fn().item()
    for _ in range(10):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    assert loss_fn().item() < 0.3 * first


@pytest.mark.cuda
def test_on_cuda_matches_cpu(model):
    idx = tokens(S=13)
    gpu = xLSTMLM(model.config).double().cuda().eval()
    gpu.load_state_dict(model.state_dict())
    logits = gpu(idx.cuda())
    assert logits.device.type == "cuda"
    assert rel_err(logits, model(idx)) < 1e-10
    state, steps = None, []
    for t in range(idx.shape[1]):
        step_logits, state = gpu.step(idx[:, t].cuda(), state)
        steps.append(step_logits)
    assert rel_err(torch.stack(steps, 1), logits) < 1e-10
    out = gpu.generate(idx[:, :4].cuda(), 6, top_k=1)
    assert out.device.type == "cuda"
    assert torch.equal(out.cpu(), model.generate(idx[:, :4], 6, top_k=1))


# --- defects a new user hit (each of these failed before the fix) ---------------------------------


def test_a_tiny_temperature_is_greedy_not_nan(model):
    """logits / 1e-300 used to give inf - inf = NaN probabilities; the row maximum is subtracted
    first (in float64), so a tiny temperature is greedy."""
    idx = tokens(B=2, S=5)
    greedy = model.generate(idx, 6, top_k=1)
    tiny = model.generate(idx, 6, temperature=1e-300, generator=torch.Generator().manual_seed(0))
    assert torch.equal(tiny, greedy)
    logits = torch.tensor([[0.0, 1e30, -1e30]], dtype=torch.float32)
    assert sample_next_token(logits, temperature=1e-300).tolist() == [1]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32])
def test_any_integer_token_dtype_reads_like_int64(model, dtype):
    """The token check admitted uint8 etc., but the embedding refused them: they are read as int64."""
    idx = tokens(B=2, S=9)
    with torch.no_grad():
        torch.testing.assert_close(model(idx.to(dtype)), model(idx), rtol=0, atol=0)
    logits, _ = model.step(idx[:, 0].to(dtype))
    assert logits.shape == (2, V)


def test_generate_returns_int64_ids_above_the_prompt_dtype_range():
    """A uint8 prompt used to make generate cast new ids to uint8, wrapping ids above 255."""
    torch.manual_seed(0)
    big = xLSTMLM(lm_config(vocab_size=300, num_blocks=1, slstm_at=()))
    with torch.no_grad():  # make the model prefer the ids above 255
        big.token_embedding.weight[256:] *= 0
        big.token_embedding.weight[256:] += 3 * big.token_embedding.weight[:44].mean(0)
    prompt = torch.tensor([[250, 255]], dtype=torch.uint8)
    out = big.generate(prompt, 30, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.int64 and out[0, :2].tolist() == [250, 255]
    assert 255 < int(out[0, 2:].max()) < 300  # ids a uint8 cannot hold were drawn
    manual = big.generate(prompt.long(), 30, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, manual)  # the same ids as from an int64 prompt, none wrapped
