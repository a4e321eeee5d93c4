"""Baseline language models: step == forward, causality, KV cache, sampling, equal sizes, configs."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from xlstm_edu.models import build_model, count_parameters, match_parameters
from xlstm_edu.models.baselines import (
    LSTMLM,
    LSTMLMConfig,
    TransformerLM,
    TransformerLMConfig,
    causal_attention,
    causal_attention_reference,
)

V = 23


def lstm_model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=V, embedding_dim=12, hidden_size=12, num_layers=2)
    return LSTMLM(LSTMLMConfig(**{**cfg, **kw})).double()


def transformer_model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=V, context_length=24, embedding_dim=16, num_heads=4, num_layers=2)
    return TransformerLM(TransformerLMConfig(**{**cfg, **kw})).double()


MODELS = {"lstm": lstm_model, "transformer": transformer_model}


def tokens(B=3, S=20, seed=1):
    return torch.randint(0, V, (B, S), generator=torch.Generator().manual_seed(seed))


def run_steps(step, idx, state=None):
    out = []
    for t in range(idx.shape[1]):
        logits, state = step(idx[:, t], state)  # (B, V)
        out.append(logits)
    return torch.stack(out, dim=1), state  # (B, S, V)


@pytest.mark.parametrize("name, path", [("lstm", "step"), ("transformer", "step"),
                                        ("transformer", "step_no_cache")])
def test_step_by_step_equals_forward(name, path):
    model = MODELS[name]()
    idx = tokens()
    full = model(idx)
    assert full.shape == (3, 20, V) and full.dtype == torch.float64
    stepped, _ = run_steps(getattr(model, path), idx)
    assert (stepped - full).abs().max() < 1e-10


def test_fused_lstm_is_the_same_model():
    """config.fused runs the same parameters through torch.nn.LSTM's kernel: same logits, same grads."""
    loop, fused = lstm_model(), lstm_model(fused=True)
    fused.load_state_dict(loop.state_dict())
    idx = tokens()
    a, sa = loop(idx, return_state=True)
    b, sb = fused(idx, return_state=True)
    assert (a - b).abs().max() < 1e-12
    assert all((x - y).abs().max() < 1e-12 for layer_a, layer_b in zip(sa, sb)
               for x, y in zip(layer_a, layer_b))
    a.square().mean().backward()
    b.square().mean().backward()
    for (name, p), q in zip(loop.named_parameters(), fused.parameters()):
        assert (p.grad - q.grad).abs().max() < 1e-12, name
    stepped, _ = run_steps(fused.step, idx)
    assert (stepped - b).abs().max() < 1e-10


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_state_continues_a_sequence(name):
    """forward(prefix) then forward(rest, state) == forward(whole): the cache / recurrent state carries
    everything (for the Transformer this runs the masked path with more keys than queries)."""
    model = MODELS[name]()
    idx = tokens()
    full = model(idx)
    first, state = model(idx[:, :7], return_state=True)
    rest, state = model(idx[:, 7:15], state, return_state=True)
    last, _ = run_steps(model.step, idx[:, 15:], state)
    assert (torch.cat([first, rest, last], dim=1) - full).abs().max() < 1e-10


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_causality(name):
    model = MODELS[name]()
    idx = tokens()
    t0 = 11
    changed = idx.clone()
    changed[:, t0] = (changed[:, t0] + 1) % V
    a, b = model(idx), model(changed)
    assert torch.allclose(a[:, :t0], b[:, :t0], rtol=0, atol=1e-12)  # the past ignores the future
    assert (a[:, t0:] - b[:, t0:]).abs().amax(dim=(0, 2)).min() > 1e-6  # the future sees the change


@pytest.mark.parametrize("Sq, Sk", [(9, 9), (1, 9), (4, 9)])
def test_attention_matches_reference(Sq, Sk):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, Sq, 5, generator=g, dtype=torch.float64)
    k, v = (torch.randn(2, 3, Sk, 5, generator=g, dtype=torch.float64) for _ in range(2))
    ref = causal_attention_reference(q, k, v)
    assert (causal_attention(q, k, v) - ref).abs().max() < 1e-12
    # the last query sees every key: plain softmax attention
    plain = torch.softmax(q[:, :, -1:] @ k.transpose(-2, -1) / 5**0.5, dim=-1) @ v
    assert (ref[:, :, -1:] - plain).abs().max() < 1e-12


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_generate_is_deterministic_with_a_generator(name):
    model = MODELS[name]()
    prompt = tokens(B=2, S=5)
    a = model.generate(prompt, 30, generator=torch.Generator().manual_seed(7))
    b = model.generate(prompt, 30, generator=torch.Generator().manual_seed(7))
    c = model.generate(prompt, 30, generator=torch.Generator().manual_seed(8))
    assert a.shape == (2, 35) and torch.equal(a[:, :5], prompt)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert model.generate(prompt, 0).shape == prompt.shape


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_greedy_generation_follows_the_logits(name):
    model = MODELS[name]()
    model.train()
    out = model.generate(tokens(B=2, S=4), 6, top_k=1)
    assert model.training  # mode restored
    for t in range(4, 10):
        assert torch.equal(out[:, t], model(out[:, :t])[:, -1].argmax(-1))


def test_transformer_cache_and_window_give_the_same_tokens():
    model = transformer_model()  # context_length 24: 6 + 40 tokens slide the window
    prompt = tokens(B=2, S=6)
    kw = dict(temperature=0.8, top_k=10)
    with_cache = model.generate(prompt, 40, generator=torch.Generator().manual_seed(1), **kw)
    without = model.generate(prompt, 40, generator=torch.Generator().manual_seed(1), use_cache=False,
                             **kw)
    assert torch.equal(with_cache, without)
    long_prompt = tokens(B=1, S=30)  # longer than the context: the last 24 tokens are read
    out = model.generate(long_prompt, 1, top_k=1)
    assert torch.equal(out[:, -1], model(long_prompt[:, -24:])[:, -1].argmax(-1))


def test_transformer_context_limit():
    model = transformer_model()
    with pytest.raises(ValueError, match="context_length"):
        model(tokens(B=1, S=25))
    _, cache = model(tokens(B=1, S=24), return_state=True)
    assert cache[0][0].shape == (1, 4, 24, 4)  # (B, NH, T, DH)
    with pytest.raises(ValueError, match="context_length"):
        model.step(torch.tensor([0]), cache)


def test_training_reduces_the_loss():
    for make in MODELS.values():
        model = make().float()
        x = (torch.arange(16) * 5 + torch.arange(4)[:, None] * 3) % V  # (4, 16): learnable pattern
        opt = torch.optim.Adam(model.parameters(), lr=3e-2)
        losses = []
        for _ in range(25):
            loss = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.5 * losses[0]
        assert all(p.grad is not None for p in model.parameters())


def test_parameter_counts():
    tied, untied = lstm_model(), lstm_model(tie_weights=False)
    assert untied.num_parameters() - tied.num_parameters() == V * 12
    assert tied.num_parameters() == sum(p.numel() for p in tied.parameters())
    assert tied.num_parameters(exclude_embedding=True) == tied.num_parameters() - V * 12
    t = transformer_model()
    assert t.num_parameters(exclude_embedding=True) == t.num_parameters() - (V + 24) * 16
    assert t.head.weight is t.token_embedding.weight


def test_match_parameters():
    target = 60_000
    cfg, n = match_parameters(TransformerLMConfig(vocab_size=V, num_heads=4, num_layers=2), target,
                              multiple_of=4)
    assert abs(n - target) <= 0.05 * target
    assert n == TransformerLM(cfg).num_parameters() and cfg.embedding_dim % 4 == 0
    for w in (cfg.embedding_dim - 4, cfg.embedding_dim + 4):  # the neighbours are no closer
        other = TransformerLM(dataclasses.replace(cfg, embedding_dim=w)).num_parameters()
        assert abs(other - target) >= abs(n - target)
    lstm_cfg, m = match_parameters(LSTMLMConfig(vocab_size=V), target,
                                   key=("embedding_dim", "hidden_size"))
    assert abs(m - target) <= 0.05 * target and lstm_cfg.hidden_size == lstm_cfg.embedding_dim
    assert m == LSTMLM(lstm_cfg).num_parameters()
    # a function works too
    cfg2, n2 = match_parameters(lambda w: TransformerLMConfig(vocab_size=V, num_heads=4, num_layers=2,
                                                              embedding_dim=w), target, multiple_of=4)
    assert (cfg2, n2) == (cfg, n)


def test_match_parameters_errors():
    base = LSTMLMConfig(vocab_size=V, tie_weights=False)
    count = {w: LSTMLM(dataclasses.replace(base, hidden_size=w)).num_parameters() for w in (40, 41)}
    between = (count[40] + count[41]) // 2  # no width gets within 1e-4 of this
    with pytest.raises(ValueError, match="no width within"):
        match_parameters(base, between, key="hidden_size", rtol=1e-4)
    with pytest.raises(ValueError, match="max_width"):
        match_parameters(base, 10**9, key="hidden_size", max_width=64)
    with pytest.raises(ValueError, match="no field"):
        match_parameters(base, 1000, key="width")


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        TransformerLMConfig(vocab_size=V, embedding_dim=30, num_heads=4)
    with pytest.raises(ValueError, match="num_layers"):
        TransformerLMConfig(vocab_size=V, num_layers=0)
    with pytest.raises(ValueError, match="dropout"):
        TransformerLMConfig(vocab_size=V, dropout=1.0)
    with pytest.raises(ValueError, match="vocab_size"):
        LSTMLMConfig(vocab_size=True)
    with pytest.raises(ValueError, match="tie_weights"):
        LSTMLMConfig(vocab_size=V, embedding_dim=8, hidden_size=16)
    LSTMLMConfig(vocab_size=V, embedding_dim=8, hidden_size=16, tie_weights=False)
    with pytest.raises(ValueError, match="unknown"):
        LSTMLMConfig.from_dict({"vocab_size": V, "width": 3})
    with pytest.raises(ValueError, match="not 'lstm'"):
        LSTMLMConfig.from_dict(TransformerLMConfig(vocab_size=V).to_dict())


def test_serialisation_round_trip():
    for model in (lstm_model(), transformer_model()):
        d = model.to_dict()
        assert d["model"] in ("lstm", "transformer")
        again = type(model).from_config(d)
        assert again.config == model.config
        assert type(build_model(d)) is type(model)
        assert type(build_model(model.config)) is type(model)


def test_bad_inputs():
    model = transformer_model()
    with pytest.raises(ValueError, match="integer"):
        model(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\[0, 23\)"):
        model(torch.tensor([[0, 23]]))
    with pytest.raises(ValueError, match=r"\(B,\)"):
        model.step(torch.tensor([[1]]))
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(tokens(), -1)
    with pytest.raises(ValueError, match="one \\(h, c\\) per layer"):
        lstm_model()(tokens(), state=((None, None),))


def test_count_parameters_counts_shared_tensors_once():
    model = transformer_model()
    assert count_parameters(model) == sum(p.numel() for p in set(model.parameters()))
