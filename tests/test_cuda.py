"""The torch forms run unchanged on a CUDA device, and the GPU benchmark runs (each CUDA test skips
without one)."""

from __future__ import annotations

import pytest
import torch
from conftest import mlstm_inputs, rel_err, slstm_inputs

from xlstm_edu import bench, lstm, mlstm, slstm, timing
from xlstm_edu.experiments import parallel_forms as pf

FORMS = {
    "recurrent": mlstm.recurrent,
    "parallel": mlstm.parallel,
    "chunkwise": lambda *a: mlstm.chunkwise(*a, chunk_size=16),
    "chunkwise_odd": lambda *a: mlstm.chunkwise(*a, chunk_size=7),
}


@pytest.mark.cuda
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("regime", ["typical", "hard"])
def test_mlstm_forms_on_cuda_match_cpu_float64(form, regime):
    cpu = mlstm_inputs(S=70, regime=regime)
    ref = FORMS[form](*cpu)
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-3)):
        dev = [x.to("cuda", dtype) for x in cpu]
        h = FORMS[form](*dev)
        assert h.device.type == "cuda" and h.dtype == dtype
        assert rel_err(h, ref) < tol


@pytest.mark.cuda
def test_mlstm_gradients_on_cuda():
    cpu = [x.requires_grad_(True) for x in mlstm_inputs(S=40, regime="hard")]
    mlstm.chunkwise(*cpu, chunk_size=8).sum().backward()
    dev = [x.detach().to("cuda").requires_grad_(True) for x in cpu]
    mlstm.chunkwise(*dev, chunk_size=8).sum().backward()
    for a, b in zip(dev, cpu):
        assert a.grad.device.type == "cuda"
        assert rel_err(a.grad, b.grad) < 1e-9


@pytest.mark.cuda
def test_mlstm_state_on_cuda():
    cpu = mlstm_inputs(S=33)
    _, st_ref = mlstm.recurrent(*cpu, return_state=True)
    _, st = mlstm.chunkwise(*[x.cuda() for x in cpu], chunk_size=5, return_state=True)
    for a, b in zip(st, st_ref):
        assert a.device.type == "cuda" and rel_err(a, b) < 1e-10


@pytest.mark.cuda
def test_slstm_and_lstm_on_cuda():
    args = slstm_inputs(S=20, regime="hard")
    ref = slstm.recurrent(*args)
    h = slstm.recurrent(*[x.cuda() for x in args])
    assert h.device.type == "cuda" and rel_err(h, ref) < 1e-10
    torch_lstm = torch.nn.LSTM(4, 6, batch_first=True).double()
    x = torch.randn(2, 9, 4, dtype=torch.float64)
    ref, _ = torch_lstm(x)
    ours, _ = lstm.LSTM.from_torch(torch_lstm).cuda()(x.cuda())
    assert ours.device.type == "cuda" and rel_err(ours, ref) < 1e-10


@pytest.mark.cuda
def test_chunkwise_matches_official_triton_kernel_where_available():
    mk = pytest.importorskip("mlstm_kernels.torch")
    try:
        kernel = mk.get_mlstm_kernel("chunkwise--triton_xl_chunk")
    except Exception as err:  # triton missing on this machine
        pytest.skip(f"official triton kernel unavailable: {err}")
    q, k, v, i, f = (x.to("cuda", torch.float32) for x in mlstm_inputs(
        B=1, NH=2, S=256, DHQK=64, DHV=64, regime="typical"))
    try:
        h_off = kernel(q, k, v, i, f, chunk_size=64)
    except Exception as err:
        pytest.skip(f"official triton kernel does not run here: {err}")
    h = mlstm.chunkwise(q, k, v, i, f, chunk_size=64)
    assert rel_err(h, h_off) < 1e-2  # triton kernel computes in reduced precision (tf32)


@pytest.mark.cuda
def test_bench_mlstm_on_cuda_times_and_peak_memory():
    """``python -m xlstm_edu.bench mlstm --device cuda``: time and peak GPU memory of both passes; the
    forward+backward peak holds at least what autograd saves (counted, the same graph as on the CPU)."""
    S = 256
    (row,) = bench.bench_mlstm((S,), repeats=1, rounds=1, device="cuda", only="chunkwise torch")
    assert row["impl"] == "chunkwise torch" and row["fwd_ms"] > 0 and row["fwd_bwd_ms"] > 0
    inputs = bench.mlstm_inputs(S=S, device="cuda", requires_grad=True)
    saved = timing.saved_tensor_bytes(lambda: mlstm.chunkwise(*inputs, chunk_size=64), exclude=inputs)
    cpu = pf.training_saved_bytes((S,), forms=("chunkwise",))["chunkwise"]["bytes"][0]
    assert saved == cpu
    assert row["fwd_bwd_peak_MiB"] >= saved / 2**20
    assert row["fwd_bwd_peak_MiB"] > row["fwd_peak_MiB"] > 0


@pytest.mark.cuda
def test_bench_cli_on_cuda_prints_the_device_and_memory_columns(capsys):
    bench.main(["mlstm", "--device", "cuda", "--sizes", "64", "--repeats", "1", "--rounds", "1",
                "--only", "chunkwise torch"])
    out = capsys.readouterr().out
    assert torch.cuda.get_device_name() in out
    assert "fwd_peak_MiB" in out and "fwd_bwd_peak_MiB" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without a GPU")
def test_bench_cli_device_cuda_without_a_gpu_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["mlstm", "--device", "cuda"])
    assert exit_info.value.code == 2
    assert "no CUDA device is available" in capsys.readouterr().err
