"""Benchmarks: ``python -m xlstm_edu.bench COMMAND`` prints markdown tables (``--help`` lists them).

* ``mlstm``: forward and forward+backward time of every mLSTM form against the official kernels, vs S
  (``--device cuda``: on the GPU, with the peak GPU memory of each pass);
* ``recurrent``: numba against a plain numpy loop and a torch loop (sLSTM, mLSTM);
* ``memory``: peak memory of one call of each mLSTM form, vs S;
* ``agreement``: max differences against ``torch.nn.LSTM`` and the official NX-AI kernels;
* ``matmul``: GFLOP/s of a large matmul, the practical ceiling of this machine;
* ``training``: training tokens/s of the fused LSTM, xLSTM[1:0] and xLSTM[1:1] language models at
  about equal parameters, with the GFLOP/s each step achieves against the matmul ceiling;
* ``slstm``: sLSTM forward and forward+backward, the package's forms against the official vanilla
  backend;
* ``generation``: time to generate 100 tokens, a ~1M-parameter xLSTM[1:0] against a fused LSTM.

Speed is measured here, never asserted in tests. Every figure is a median of repeated calls, and
implementations are compared side by side in one process, in interleaved rounds
(:mod:`xlstm_edu.timing`), because these machines are noisy. Peak memory is measured in a fresh child
process. The comparisons with the official packages need the test requirements.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys

import numpy as np
import torch

from . import lstm, mlstm, official, slstm
from .timing import limited_threads, median_time, peak_memory_mib


def mlstm_inputs(B=1, NH=4, S=1024, DHQK=64, DHV=64, dtype=torch.float32, device="cpu", seed=0,
                 requires_grad=False):
    """Random mLSTM inputs ``(q, k, v, igate_preact, fgate_preact)`` in a typical regime."""
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(B, NH, S, DHQK, generator=g) for _ in range(2))
    v = torch.randn(B, NH, S, DHV, generator=g)
    i = torch.randn(B, NH, S, generator=g)
    f = torch.randn(B, NH, S, generator=g) + 3.0
    out = [x.to(device=device, dtype=dtype).requires_grad_(requires_grad) for x in (q, k, v, i, f)]
    return tuple(out)


def chunkwise_flops(B, NH, S, DHQK, DHV, L):
    """Matrix-product FLOPs of the chunkwise forward (2 per multiply-add; elementwise work ignored).

    Intra-chunk ``Q K^T`` and ``P V`` (``S * L * (DHQK + DHV)``), chunk memories ``K^T V`` and
    read-outs ``Q C`` (``2 * S * DHQK * DHV``), normalizer read-outs (``S * DHQK``), counted per head.
    """
    per_head = 2 * (S * L * (DHQK + DHV) + 2 * S * DHQK * DHV + S * DHQK)
    return B * NH * per_head


def matmul_gflops(n: int = 2048, repeats: int = 7) -> float:
    """GFLOP/s of a large square float32 torch matmul: the practical ceiling of this machine."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / median_time(lambda: a @ b, repeats=repeats) / 1e9


def _mlstm_impls(chunk_size=64, device="cpu"):
    impls = {
        "recurrent numba": ("numpy", lambda *a: mlstm.recurrent(*a)),
        "recurrent torch": ("torch", lambda *a: mlstm.recurrent(*a)),
        "parallel torch": ("torch", lambda *a: mlstm.parallel(*a)),
        "chunkwise torch": ("torch", lambda *a: mlstm.chunkwise(*a, chunk_size=chunk_size)),
    }
    for name, fn in official.mlstm_kernels(device, chunk_size).items():
        impls[name] = ("torch", fn)
    return impls


# Where a form is too slow or too large to time at a given S (quadratic memory, per-step Python).
_MAX_S = {"parallel": 4096, "recurrent torch": 4096, "official recurrent": 4096,
          "official parallel": 4096}
_MAX_S_BACKWARD = {"recurrent torch": 1024, "official recurrent": 1024}


def _limit(name, table):
    for key, s_max in table.items():
        if key in name:
            return s_max
    return None


def bench_mlstm(sizes=(256, 1024, 4096, 16384), repeats=7, backward=True, device="cpu",
                max_seconds=20.0, chunk_size=64, only=None, rounds=3):
    """Forward (and forward+backward) times in ms for every form at each S. Returns rows.

    Each figure is the median over ``rounds`` rounds of a median of ``repeats`` calls; a round
    visits every implementation in turn, so a burst of load elsewhere hits all of them alike. The
    backward pass is ``torch.autograd.grad`` of ``h.sum()`` with respect to all five inputs. On a CUDA
    device each row also has ``fwd_peak_MiB`` and ``fwd_bwd_peak_MiB``: the peak of
    ``torch.cuda.max_memory_allocated`` during the timed calls, minus what was allocated before them
    (the inputs), in MiB.
    ``only``: keep the implementations whose name contains this text (e.g. "chunkwise"). Large
    parallel-form runs leave the allocator with fragmented memory that slows whatever runs next,
    so compare the chunkwise forms in a process of their own.
    """
    impls = {name: impl for name, impl in _mlstm_impls(chunk_size, device).items()
             if only is None or only in name}
    cuda = _is_cuda(device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rows = []
    for S in sizes:
        inputs = mlstm_inputs(S=S, device=device)
        grad_inputs = tuple(x.detach().requires_grad_(True) for x in inputs)
        samples = {}
        for _ in range(rounds):
            for name, (kind, fn) in impls.items():
                s_max = _limit(name, _MAX_S)
                if (s_max is not None and S > s_max) or (kind == "numpy" and cuda):
                    continue
                args = tuple(x.cpu().numpy() for x in inputs) if kind == "numpy" else inputs

                def fwd(fn=fn, args=args):
                    with torch.no_grad():
                        fn(*args)
                    sync()

                sample = samples.setdefault(name, {"fwd_ms": [], "fwd_bwd_ms": []})
                base = _reset_cuda_peak() if cuda else 0
                sample["fwd_ms"].append(1e3 * median_time(fwd, repeats=repeats,
                                                          max_seconds=max_seconds))
                if cuda:
                    sample.setdefault("fwd_peak_MiB", []).append(_cuda_peak_mib(base))
                s_max_b = _limit(name, _MAX_S_BACKWARD)
                if backward and kind == "torch" and (s_max_b is None or S <= s_max_b):

                    def fwd_bwd(fn=fn, grad_inputs=grad_inputs):
                        torch.autograd.grad(fn(*grad_inputs).sum(), grad_inputs)
                        sync()

                    base = _reset_cuda_peak() if cuda else 0
                    sample["fwd_bwd_ms"].append(1e3 * median_time(
                        fwd_bwd, repeats=repeats, max_seconds=max_seconds))
                    if cuda:
                        sample.setdefault("fwd_bwd_peak_MiB", []).append(_cuda_peak_mib(base))
        for name, sample in samples.items():
            row = {"S": S, "impl": name}
            row.update({key: statistics.median(vals) for key, vals in sample.items() if vals})
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def _is_cuda(device) -> bool:
    return torch.device(device).type == "cuda"


def _reset_cuda_peak() -> int:
    """Start a peak-memory window on the current CUDA device; returns the bytes allocated now."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def _cuda_peak_mib(base: int) -> float:
    """Peak CUDA memory allocated since :func:`_reset_cuda_peak` above ``base``, in MiB."""
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def mlstm_call(form: str, S: int, B: int = 1, NH: int = 4, DHQK: int = 64, DHV: int = 64,
               chunk_size: int = 64, backward: bool = False):
    """One call of an mLSTM form on :func:`mlstm_inputs`, ready to run: the target of
    :func:`xlstm_edu.timing.peak_memory_mib` (``"xlstm_edu.bench:mlstm_call"``). A warm-up on 8 steps
    does the imports and first-call work outside the measurement."""
    forms = {"recurrent": mlstm.recurrent, "parallel": mlstm.parallel,
             "chunkwise": lambda *a: mlstm.chunkwise(*a, chunk_size=chunk_size)}
    if form not in forms:
        raise ValueError(f"form must be one of {sorted(forms)}, got {form!r}")
    fn = forms[form]
    forms["chunkwise"](*mlstm_inputs(S=8))
    inputs = mlstm_inputs(B=B, NH=NH, S=S, DHQK=DHQK, DHV=DHV, requires_grad=backward)

    def call():
        with torch.set_grad_enabled(backward):
            h = fn(*inputs)
            if backward:
                h.sum().backward()

    return call


def peak_memory(form: str, S: int, **kwargs) -> float:
    """Peak memory growth (MiB) of one call of ``form`` at length ``S`` (:func:`mlstm_call`), in a
    fresh child process."""
    return peak_memory_mib("xlstm_edu.bench:mlstm_call", form=form, S=S, **kwargs)


def bench_slstm_recurrent(B=1, NH=4, DH=64, S=1024, repeats=5):
    """ms per sequence: numpy reference loop vs numba vs torch loop (sLSTM and mLSTM recurrent)."""
    rng = np.random.default_rng(0)
    gates = [rng.standard_normal((B, NH, S, DH)).astype(np.float32) for _ in range(4)]
    R = (0.1 * rng.standard_normal((NH, DH, 4, DH))).astype(np.float32)
    m_in = tuple(x.numpy() for x in mlstm_inputs(B=B, NH=NH, S=S, DHQK=DH, DHV=DH))
    t_gates = [torch.from_numpy(g) for g in gates]
    t_m = tuple(torch.from_numpy(x) for x in m_in)
    rows = []
    with torch.no_grad():
        for cell, ref, fast, tor in [
            ("sLSTM", lambda: slstm.recurrent_numpy(*gates, R), lambda: slstm.recurrent(*gates, R),
             lambda: slstm.recurrent(*t_gates, torch.from_numpy(R))),
            ("mLSTM", lambda: mlstm.recurrent_numpy(*m_in), lambda: mlstm.recurrent(*m_in),
             lambda: mlstm.recurrent(*t_m)),
        ]:
            t_ref = median_time(ref, repeats=repeats, warmup=1)
            t_fast = median_time(fast, repeats=repeats * 4, warmup=1)
            t_torch = median_time(tor, repeats=repeats, warmup=1)
            rows.append({"cell": cell, "numpy_loop_ms": 1e3 * t_ref, "numba_ms": 1e3 * t_fast,
                         "torch_loop_ms": 1e3 * t_torch, "numba_speedup": t_ref / t_fast})
    return rows


def training_configs() -> dict:
    """The language models of the training benchmark, about 225k parameters each (vocabulary 84)."""
    from .models import xLSTMLMConfig
    from .models.baselines import LSTMLMConfig

    xlstm = dict(vocab_size=84, embedding_dim=128, num_blocks=2, round_proj_up_to_multiple_of=16)
    return {
        "LSTM (fused)": LSTMLMConfig(84, embedding_dim=116, hidden_size=116, num_layers=2, fused=True),
        "xLSTM[1:0]": xLSTMLMConfig(**xlstm, slstm_at=()),
        "xLSTM[1:1]": xLSTMLMConfig(**xlstm, slstm_at=(1,)),
    }


def _training_step(model, B: int, S: int, seed: int = 0):
    """One forward+backward of cross-entropy on random tokens ``(B, S)`` (gradients set to None)."""
    g = torch.Generator().manual_seed(seed)
    V = model.config.vocab_size
    tokens = torch.randint(0, V, (B, S + 1), generator=g)  # (B, S + 1)
    x, y = tokens[:, :-1], tokens[:, 1:]

    def step():
        for p in model.parameters():
            p.grad = None
        logits = model(x)  # (B, S, V)
        torch.nn.functional.cross_entropy(logits.reshape(B * S, V), y.reshape(B * S)).backward()

    return step


def bench_training(B: int = 16, S: int = 128, rounds: int = 5, repeats: int = 3, seed: int = 0):
    """Rows per model: parameters, ms per training step (forward+backward, median of interleaved
    rounds), tokens/s, the ratio to the fused LSTM, FLOPs of the matrix products per token and the
    GFLOP/s they run at."""
    from .models import build_model
    from .timing import count_flops, interleaved_medians

    models, steps = {}, {}
    for name, config in training_configs().items():
        torch.manual_seed(seed)
        models[name] = build_model(config).train()
        steps[name] = _training_step(models[name], B, S, seed)
    seconds = interleaved_medians(steps, rounds=rounds, repeats=repeats, warmup=1)
    base = seconds["LSTM (fused)"]
    rows = []
    for name, model in models.items():
        # torch's fused LSTM kernel is one opaque op the FLOP counter does not see: count the same
        # arithmetic through the unfused path (same weights, same products)
        config = training_configs()[name]
        if getattr(config, "fused", False):
            torch.manual_seed(seed)
            flops = count_flops(_training_step(build_model(dataclasses.replace(config, fused=False)),
                                               B, S, seed))
        else:
            flops = count_flops(steps[name])
        rows.append({"model": name, "params": sum(p.numel() for p in model.parameters()),
                     "step_ms": 1e3 * seconds[name], "tokens_per_s": B * S / seconds[name],
                     "vs_fused_LSTM": base / seconds[name], "MFLOP_per_token": flops / (B * S) / 1e6,
                     "GFLOP_s": flops / seconds[name] / 1e9})
    return rows


def bench_slstm_training(B: int = 16, NH: int = 4, DH: int = 32, S: int = 128, rounds: int = 5,
                         repeats: int = 3, dtype=torch.float32, seed: int = 0):
    """ms of the sLSTM forward and forward+backward: the package's forms (``slstm.recurrent_fused``
    where it exists, the torch reference loop) and the official vanilla backend (if installed)."""
    from .timing import interleaved_medians

    g = torch.Generator().manual_seed(seed)
    gates = [torch.randn(B, NH, S, DH, generator=g, dtype=dtype) for _ in range(4)]
    gates[1] = gates[1] + 3.0  # forget gates mostly open
    R = 0.1 * torch.randn(NH, DH, 4, DH, generator=g, dtype=dtype)
    impls = {"torch reference loop": lambda *a: slstm.recurrent_torch(*a)[0]}
    if hasattr(slstm, "recurrent_fused"):
        impls = {"fused (numba fwd + bwd)": lambda *a: slstm.recurrent_fused(*a)[0], **impls}
    if official.available("xlstm"):
        impls["official vanilla"] = lambda *a: official.vanilla_slstm(*a, grad=True)

    def forward(fn):
        def run():
            with torch.no_grad():
                fn(*gates, R)
        return run

    def forward_backward(fn):
        def run():
            inputs = [t.detach().requires_grad_() for t in (*gates, R)]
            fn(*inputs).sum().backward()
        return run

    fwd = interleaved_medians({k: forward(f) for k, f in impls.items()}, rounds=rounds, repeats=repeats)
    fwd_bwd = interleaved_medians({k: forward_backward(f) for k, f in impls.items()}, rounds=rounds,
                                  repeats=repeats)
    ref = "official vanilla" if "official vanilla" in impls else "torch reference loop"
    return [{"impl": k, "fwd_ms": 1e3 * fwd[k], "fwd_bwd_ms": 1e3 * fwd_bwd[k],
             f"fwd_bwd_speedup_vs_{ref.split()[-1]}": fwd_bwd[ref] / fwd_bwd[k]} for k in impls]


def generation_configs() -> dict:
    """The generation benchmark's models: about 1M parameters each (vocabulary 84)."""
    from .models import xLSTMLMConfig
    from .models.baselines import LSTMLMConfig

    return {
        "LSTM (fused)": LSTMLMConfig(84, embedding_dim=256, hidden_size=256, num_layers=2, fused=True),
        "xLSTM[1:0]": xLSTMLMConfig(vocab_size=84, embedding_dim=192, num_blocks=4, slstm_at=()),
    }


def bench_generation(new_tokens: int = 100, rounds: int = 5, repeats: int = 3, seed: int = 0):
    """ms to generate ``new_tokens`` greedily (``top_k=1``) from a one-token prompt."""
    from .models import build_model
    from .timing import interleaved_medians

    prompt = torch.zeros(1, 1, dtype=torch.long)
    models, fns = {}, {}
    for name, config in generation_configs().items():
        torch.manual_seed(seed)
        models[name] = build_model(config).eval()
        fns[name] = (lambda m: lambda: m.generate(prompt, new_tokens, top_k=1))(models[name])
    seconds = interleaved_medians(fns, rounds=rounds, repeats=repeats, warmup=1)
    base = seconds["LSTM (fused)"]
    return [{"model": name, "params": sum(p.numel() for p in m.parameters()),
             "ms": 1e3 * seconds[name], "ms_per_token": 1e3 * seconds[name] / new_tokens,
             "vs_fused_LSTM": seconds[name] / base} for name, m in models.items()]


def _regime_inputs(regime, dtype, S, seed=0):
    """mLSTM inputs in the typical or the hard regime (input gates U(-15, 15), forget N(0, 3))."""
    g = torch.Generator().manual_seed(seed)
    B, NH, DH = 2, 4, 16
    q, k, v = (torch.randn(B, NH, S, DH, generator=g, dtype=torch.float64) for _ in range(3))
    if regime == "typical":
        i = torch.randn(B, NH, S, generator=g, dtype=torch.float64)
        f = torch.randn(B, NH, S, generator=g, dtype=torch.float64) + 3.0
    else:
        i = torch.rand(B, NH, S, generator=g, dtype=torch.float64) * 30.0 - 15.0
        f = torch.randn(B, NH, S, generator=g, dtype=torch.float64) * 3.0
    return tuple(x.to(dtype) for x in (q, k, v, i, f))


def _diff(ours, ref):
    ours, ref = (torch.as_tensor(x).double() for x in (ours, ref))
    abs_err = (ours - ref).abs().max().item()
    return abs_err, abs_err / ref.abs().max().item()


def agreement(S=256):
    """Max abs / rel differences against torch.nn.LSTM and the official NX-AI kernels (needs the
    test-only packages ``xlstm`` and ``mlstm-kernels``), float32 and float64, typical and hard."""
    from .lstm import LSTM

    kernels = official.mlstm_kernels("cpu")
    if not kernels or not official.available("xlstm"):
        raise RuntimeError("agreement needs the official packages xlstm and mlstm_kernels "
                           "(pip install -r requirements-test.txt)")
    seq = kernels["official recurrent (native_sequence)"]
    par = kernels["official parallel (native_stablef_autograd)"]
    chk = kernels["official chunkwise (native_autograd)"]
    rows = []
    for dtype in (torch.float32, torch.float64):
        for regime in ("typical", "hard"):
            a = _regime_inputs(regime, dtype, S)
            a_np = tuple(x.numpy() for x in a)
            with torch.no_grad():
                ref_seq = seq(*a)
                checks = {
                    "mLSTM recurrent (torch) vs native_sequence": (mlstm.recurrent(*a), ref_seq),
                    "mLSTM recurrent (numba) vs native_sequence": (mlstm.recurrent(*a_np), ref_seq),
                    "mLSTM parallel vs parallel--native_stablef": (mlstm.parallel(*a), par(*a)),
                    "mLSTM chunkwise vs chunkwise--native": (mlstm.chunkwise(*a, chunk_size=64),
                                                             chk(*a)),
                }
                g = torch.Generator().manual_seed(1)
                gates = [torch.randn(2, 4, S, 16, generator=g, dtype=torch.float64) for _ in range(4)]
                if regime == "hard":
                    gates[0] = torch.rand(2, 4, S, 16, generator=g, dtype=torch.float64) * 30 - 15
                    gates[1] = gates[1] * 3.0
                R = torch.randn(4, 16, 4, 16, generator=g, dtype=torch.float64) * 0.1
                gates, R = [x.to(dtype) for x in gates], R.to(dtype)
                ref_s = official.vanilla_slstm(*gates, R)
                checks["sLSTM (torch) vs xlstm vanilla"] = (slstm.recurrent(*gates, R), ref_s)
                checks["sLSTM (numba) vs xlstm vanilla"] = (
                    slstm.recurrent(*[x.numpy() for x in gates], R.numpy()), ref_s)
                torch.manual_seed(2)
                tl = torch.nn.LSTM(16, 32, batch_first=True).to(dtype)
                x = torch.randn(2, S, 16, dtype=dtype) * (3.0 if regime == "hard" else 1.0)
                ref_l = tl(x)[0]
                checks["LSTM (torch) vs torch.nn.LSTM"] = (LSTM.from_torch(tl)(x)[0], ref_l)
                params = [p.detach().numpy() for p in (tl.weight_ih_l0, tl.weight_hh_l0,
                                                       tl.bias_ih_l0, tl.bias_hh_l0)]
                checks["LSTM (numba) vs torch.nn.LSTM"] = (
                    lstm.recurrent(x.numpy(), *params), ref_l)
            for name, (ours, ref) in checks.items():
                abs_err, rel = _diff(ours, ref)
                rows.append({"check": name, "dtype": str(dtype).replace("torch.", ""),
                             "regime": regime, "max_abs": abs_err, "max_rel": rel})
    return rows


def markdown_table(rows, columns, floatfmt="{:.2f}"):
    """Rows of dicts as a markdown table (missing entries as '-')."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            cells.append("-" if v is None else floatfmt.format(v) if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _summarize_mlstm(rows, ceiling):
    by = {(r["impl"], r["S"]): r for r in rows}
    out = []
    ours, off = "chunkwise torch", "official chunkwise (native_autograd)"
    if (ours, 4096) in by and (off, 4096) in by:
        out.append(f"- chunkwise fwd speed-up vs official at S=4096: "
                   f"{by[(off, 4096)]['fwd_ms'] / by[(ours, 4096)]['fwd_ms']:.2f}x")
        if "fwd_bwd_ms" in by[(ours, 4096)] and "fwd_bwd_ms" in by[(off, 4096)]:
            out.append(f"- chunkwise fwd+bwd speed-up vs official at S=4096: "
                       f"{by[(off, 4096)]['fwd_bwd_ms'] / by[(ours, 4096)]['fwd_bwd_ms']:.2f}x")
    rec_off = "official recurrent (native_sequence)"
    for S in (1024, 4096):
        if ("recurrent numba", S) in by and (rec_off, S) in by:
            out.append(f"- numba recurrent speed-up vs official recurrent at S={S}: "
                       f"{by[(rec_off, S)]['fwd_ms'] / by[('recurrent numba', S)]['fwd_ms']:.1f}x")
    if (ours, 16384) in by and (ours, 4096) in by:
        out.append(f"- chunkwise time(16384)/time(4096): "
                   f"{by[(ours, 16384)]['fwd_ms'] / by[(ours, 4096)]['fwd_ms']:.2f}")
    for S in (4096, 16384):
        if (ours, S) in by:
            gflops = chunkwise_flops(1, 4, S, 64, 64, 64) / (by[(ours, S)]["fwd_ms"] / 1e3) / 1e9
            out.append(f"- chunkwise fwd at S={S}: {gflops:.1f} GFLOP/s" + (
                "" if ceiling != ceiling else  # NaN: no CPU ceiling measured (a GPU run)
                f" = {gflops / ceiling:.2f} of a 2048^2 matmul ({ceiling:.1f} GFLOP/s)"))
    return "\n".join(out)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sequence lengths must be positive, got {text!r}")
    return sizes


def _device(text: str) -> str:
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"expected 'cpu' or 'cuda[:N]', got {text!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"expected 'cpu' or 'cuda[:N]', got {text!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError("--device cuda: no CUDA device is available here")
    return text


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    summary = "\n\n".join(__doc__.replace("``", "").split("\n\n")[:2])  # the first two paragraphs
    p = _Parser(prog="python -m xlstm_edu.bench", formatter_class=argparse.RawDescriptionHelpFormatter,
                description=summary,
                epilog="Run 'python -m xlstm_edu.bench COMMAND --help' for its options.")
    sub = p.add_subparsers(dest="what", required=True, metavar="COMMAND", parser_class=_Parser)
    pm = sub.add_parser("mlstm", formatter_class=fmt,
                        help="mLSTM forms vs the official kernels: time vs S",
                        description="Forward and forward+backward time (ms) of the recurrent, parallel "
                                    "and chunkwise forms and of the official mlstm_kernels, at each S; "
                                    "B=1, NH=4, DHQK=DHV=64, float32. On a CUDA device also the peak "
                                    "GPU memory (MiB above the inputs) of each pass.")
    pm.add_argument("--sizes", type=_sizes, default="256,1024,4096,16384",
                    help="comma-separated sequence lengths S")
    pm.add_argument("--repeats", type=_positive, default=7, help="calls per timing (median)")
    pm.add_argument("--rounds", type=_positive, default=3, help="interleaved rounds (median over them)")
    pm.add_argument("--no-backward", action="store_true", help="time the forward pass only")
    pm.add_argument("--device", type=_device, default="cpu",
                    help="'cpu' or 'cuda' / 'cuda:N' (adds the official Triton kernel and the peak "
                         "GPU memory of the forward and forward+backward passes)")
    pm.add_argument("--chunk-size", type=_positive, default=64,
                    help="chunk length of the chunkwise forms")
    pm.add_argument("--only", default=None, metavar="TEXT",
                    help="only the implementations whose name contains TEXT (e.g. chunkwise)")
    sub.add_parser("recurrent", help="numba vs numpy loop vs torch loop (sLSTM, mLSTM), S=1024",
                   description="ms per sequence of the sLSTM and mLSTM recurrences: the numpy "
                               "reference loop, the numba kernel and the torch loop (B=1, NH=4, DH=64, "
                               "S=1024, float32).")
    sub.add_parser("matmul", help="GFLOP/s of a 2048^2 float32 matmul",
                   description="The practical compute ceiling of this machine.")
    sub.add_parser("agreement", help="max differences vs torch.nn.LSTM and the official kernels",
                   description="Max absolute and relative differences of every form against "
                               "torch.nn.LSTM and the official NX-AI kernels, float32 and float64, "
                               "typical and hard gates (needs the test requirements).")
    for name, text in (("training", "training tokens/s at equal parameters (B=16, S=128, 1 thread)"),
                       ("slstm", "sLSTM forward and forward+backward vs the official vanilla backend"),
                       ("generation", "time to generate 100 tokens (xLSTM[1:0] vs fused LSTM)")):
        ps = sub.add_parser(name, formatter_class=fmt, help=text,
                            description=text + "; medians of interleaved rounds.")
        ps.add_argument("--threads", type=_positive, default=1, help="torch and numba threads")
    pmem = sub.add_parser("memory", formatter_class=fmt, help="peak memory of each mLSTM form vs S",
                          description="Peak memory growth (MiB) of one call of each mLSTM form, "
                                      "measured in a fresh child process per point.")
    pmem.add_argument("--sizes", type=_sizes, default="256,1024,4096,8192",
                      help="comma-separated sequence lengths S")
    pmem.add_argument("--backward", action="store_true", help="include the backward pass")
    return p


def _issue_benchmarks(what: str) -> None:
    """The training, sLSTM and generation benchmarks (run with the threads already limited)."""
    if what == "training":
        rows = bench_training()
        print("forward+backward, cross-entropy on random tokens, B=16, S=128")
        print(markdown_table(rows, ["model", "params", "step_ms", "tokens_per_s", "vs_fused_LSTM",
                                    "MFLOP_per_token", "GFLOP_s"], "{:.2f}"))
        print(f"matmul ceiling: {matmul_gflops():.1f} GFLOP/s")
    elif what == "slstm":
        rows = bench_slstm_training()
        print("sLSTM B=16, NH=4, DH=32, S=128, float32")
        print(markdown_table(rows, list(rows[0]), "{:.2f}"))
    else:
        rows = bench_generation()
        print("100 new tokens, greedy, one-token prompt, batch 1")
        print(markdown_table(rows, ["model", "params", "ms", "ms_per_token", "vs_fused_LSTM"],
                             "{:.2f}"))


def main(argv=None):
    args = _parser().parse_args(argv)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
    if args.what == "agreement":
        print(markdown_table(agreement(), ["check", "dtype", "regime", "max_abs", "max_rel"],
                             "{:.1e}"))
    elif args.what == "matmul":
        print(f"{matmul_gflops():.1f} GFLOP/s")
    elif args.what == "recurrent":
        rows = bench_slstm_recurrent()
        print(markdown_table(rows, ["cell", "numpy_loop_ms", "numba_ms", "torch_loop_ms",
                                    "numba_speedup"]))
    elif args.what in ("training", "slstm", "generation"):
        with limited_threads(args.threads):
            _issue_benchmarks(args.what)
    elif args.what == "memory":
        rows = []
        for S in args.sizes:
            row = {"S": S}
            for form in ("recurrent", "parallel", "chunkwise"):
                if form == "recurrent" and args.backward and S > 1024:
                    continue
                row[form + "_MiB"] = peak_memory(form, S, backward=args.backward)
            rows.append(row)
        print(markdown_table(rows, ["S", "recurrent_MiB", "parallel_MiB", "chunkwise_MiB"], "{:.1f}"))
    else:
        if _is_cuda(args.device):
            torch.cuda.set_device(torch.device(args.device))
            print(f"device {args.device}: {torch.cuda.get_device_name()}")
        ceiling = float("nan") if _is_cuda(args.device) else matmul_gflops()
        rows = bench_mlstm(args.sizes, repeats=args.repeats, backward=not args.no_backward,
                           device=args.device, chunk_size=args.chunk_size, only=args.only,
                           rounds=args.rounds)
        columns = ["S", "impl", "fwd_ms", "fwd_bwd_ms"]
        if _is_cuda(args.device):
            columns += ["fwd_peak_MiB", "fwd_bwd_peak_MiB"]
        print(markdown_table(rows, columns))
        print(_summarize_mlstm(rows, ceiling))


if __name__ == "__main__":
    main()
