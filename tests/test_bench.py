"""The issue-10 benchmarks run and report what they count (their times are never asserted)."""

from __future__ import annotations

import pytest
import torch

from xlstm_edu import bench
from xlstm_edu.models import build_model


def test_the_training_models_have_about_equal_parameters():
    params = {name: sum(p.numel() for p in build_model(c).parameters())
              for name, c in bench.training_configs().items()}
    assert all(abs(p - 225_000) < 0.1 * 225_000 for p in params.values()), params
    gen = {name: sum(p.numel() for p in build_model(c).parameters())
           for name, c in bench.generation_configs().items()}
    assert all(abs(p - 1_000_000) < 0.1 * 1_000_000 for p in gen.values()), gen


def test_bench_training_counts_flops_per_token():
    rows = bench.bench_training(B=2, S=16, rounds=1, repeats=1)
    assert [r["model"] for r in rows] == ["LSTM (fused)", "xLSTM[1:0]", "xLSTM[1:1]"]
    lstm = rows[0]
    # the fused LSTM's matmul FLOPs per token: forward 2 * 4H(E + H) per layer, backward twice that,
    # plus the tied output layer (2 E V forward, 4 E V backward)
    E = H = 116
    expected = 3 * (2 * 2 * 4 * H * (E + H) + 2 * E * 84)
    assert lstm["MFLOP_per_token"] * 1e6 == pytest.approx(expected, rel=0.02)
    assert rows[1]["MFLOP_per_token"] > 0 and rows[0]["vs_fused_LSTM"] == 1.0


def test_bench_slstm_and_generation_run():
    rows = bench.bench_slstm_training(B=1, NH=2, DH=4, S=5, rounds=1, repeats=1)
    assert "torch reference loop" in [r["impl"] for r in rows]
    gen = bench.bench_generation(new_tokens=3, rounds=1, repeats=1)
    assert [r["model"] for r in gen] == ["LSTM (fused)", "xLSTM[1:0]"]
    assert gen[0]["vs_fused_LSTM"] == 1.0


def test_bench_cli_rejects_bad_threads(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["training", "--threads", "0"])
    assert exc.value.code == 2
    assert torch.get_num_threads() >= 1
