"""Every public figure of xlstm_edu.figures, drawn with small inputs of the sizes and labels the
chapters use, is readable in the book: saved as the inline backend saves it (PNG, dpi 100, tight
bounding box) it is at most the text column wide (784 px), every drawn text is at least 9 pt, and no
two tick labels of an axis overlap (:func:`xlstm_edu.figures._style.readability_problems`). The
checker itself is tested on figures that break each rule."""

from __future__ import annotations

import inspect
import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from xlstm_edu.blocks import ratio_to_slstm_at, xLSTMStackConfig  # noqa: E402
from xlstm_edu.experiments import blocks as xb  # noqa: E402
from xlstm_edu.experiments import gating as eg  # noqa: E402
from xlstm_edu.experiments import mlstm_memory as mm  # noqa: E402
from xlstm_edu.experiments import parallel_forms as pf  # noqa: E402
from xlstm_edu.experiments import slstm as es  # noqa: E402
from xlstm_edu.figures import _style  # noqa: E402
from xlstm_edu.figures import blocks as fb  # noqa: E402
from xlstm_edu.figures import cells as fc  # noqa: E402
from xlstm_edu.figures import gating as fg  # noqa: E402
from xlstm_edu.figures import language_model as flm  # noqa: E402
from xlstm_edu.figures import lstm as fl  # noqa: E402
from xlstm_edu.figures import mlstm as fm  # noqa: E402
from xlstm_edu.figures import parallel_forms as fpf  # noqa: E402
from xlstm_edu.figures import recall as fr  # noqa: E402
from xlstm_edu.figures import slstm as fs  # noqa: E402
from xlstm_edu.figures import state_tracking as fst  # noqa: E402

pytestmark = pytest.mark.usefixtures("close_figures")

MODULES = (fb, fc, fg, flm, fl, fm, fpf, fr, fs, fst)
#: Public functions of the figure modules that do not draw a figure (layout and measuring helpers).
NOT_FIGURES = {"blocks.layout", "blocks.text_size", "blocks.draw_node", "cells.layout"}
MODELS = ("LSTM", "Transformer", "xLSTM[1:0]", "xLSTM[1:1]", "xLSTM[0:1]")
rng = np.random.default_rng(0)


def _fig(result):
    return result.figure if hasattr(result, "figure") and not isinstance(result, plt.Figure) else result


# --- inputs like the chapters' ------------------------------------------------------------------------

def _gradient_norms():
    d = np.arange(100)
    curves = {"tanh RNN, H=64": np.exp(-0.5 * d)[None].repeat(5, 0)}
    for name, rate in (("default init", 0.3), ("forget bias 1", 0.1), ("forget bias 3", 0.02)):
        curves[f"LSTM, H=32, {name}"] = np.exp(-rate * d)[None].repeat(5, 0) * rng.uniform(1, 2, (5, 1))
    return fl.plot_gradient_norms(curves)


def _average_weights():
    i, f = rng.normal(0.0, 2.0, 30), rng.normal(2.5, 1.5, 30)
    return fg.plot_average_weights(i, f, eg.average_weights(i, f))


def _revise(threshold):
    task = eg.revise_task(n_seq=4, S=64, seed=0)
    outputs = eg.revise_outputs(task, 100.0)
    comparison = eg.revise_comparison(betas=(0.3, 1, 3, 10, 30, 100, 300, 1000), n_seq=8, S=16)
    return fg.plot_revise(task, outputs, comparison, index=1, beta=100.0, threshold=threshold)


def _overflow():
    S = 40
    i = np.linspace(0.0, 120.0, S)[None, None, :, None]
    zeros = np.zeros_like(i)
    return fg.plot_overflow(i, zeros + 3.0, np.ones_like(i) * 0.5, zeros)


def _gate_traces():
    data = eg.gate_traces(S=40, seed=0, igate_offset=0.0, igate_noise=1.0, spike_step=13,
                          spike_height=60.0, fgate_preact=3.0, textbook_dtype="float16")
    return fg.plot_gate_traces(data)


def _recurrent_matrix():
    _, R = es.random_inputs(1, 4, 1, 8, seed=0)  # the chapter's NH = 4, DH = 8
    return fs.plot_recurrent_matrix(R)


def _speed():
    names = ("numpy reference loop", "numba kernel", "torch loop (1 thread)", "torch loop (2 threads)")
    timings = {f"DH = {dh}": {n: 1e-6 * (k + 1) ** 2 * dh for k, n in enumerate(names)}
               for dh in (16, 64)}
    return fs.plot_speed(timings)


def _impulse_responses():
    _, R = es.random_inputs(1, 4, 1, 8, seed=1, r_scale=3.0)  # the chapter's 4 heads
    pulses = ((0, 0), (2, 3))
    return fs.plot_impulse_responses({
        "R = 0": es.impulse_response(np.zeros_like(R), S=80, pulses=pulses),
        "random R": es.impulse_response(R, S=80, pulses=pulses)})


def _retrieval_error():
    ds, Ns = [16, 32, 64, 128], [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    errors = np.array([mm.crosstalk_theory(np.array(Ns, float), d) for d in ds])
    return fm.plot_retrieval_error(ds, Ns, errors)


def _memory():
    return fm.plot_memory(mm.explorer_data(d=16, n_pairs=8, fgate_preact=3.0))


def _decay_matrices():
    i, f = pf.hard_gates(1, 1, 32, seed=1)
    log_d = torch.nn.functional.logsigmoid(f)
    from xlstm_edu import mlstm

    return fpf.plot_decay_matrices(mlstm.log_decay_matrix(log_d, i)[0, 0],
                                   title="Decay matrix of one head, S = 32, hard gates")


def _pitfall_rows(scale, sizes=(256, 512, 1024, 2048)):
    names = list(pf.LOG_D_BUILDERS)
    return [{"S": S, "cumsum_range": scale * S, "cumsum_spacing": scale * S * 6e-8,
             "logd_err": {names[0]: 1e-6, names[1]: scale * S * 6e-8},
             "h_err": {names[0]: 2e-7, names[1]: scale * 1e-7}} for S in sizes]


def _sweep(forms, sizes, key, power):
    return {f: {"S": list(sizes), key: [1e-6 * S ** p for S in sizes]} for f, p in zip(forms, power)}


def _scaling():
    forms = ("recurrent", "parallel", "chunkwise")
    times = _sweep(forms, (256, 512, 1024, 2048, 4096), "seconds", (1, 2, 1))
    largest = _sweep(("parallel", "chunkwise"), (512, 1024, 2048), "MiB", (2, 1))
    return fpf.plot_scaling(times, largest, memory_label="largest tensor (MiB)",
                            memory_title="memory: the largest tensor of one call (counted)")


def _training_cost():
    forms = ("recurrent", "parallel", "chunkwise")
    sizes = (128, 256, 512, 1024, 2048, 4096)
    saved = {f: {"S": list(sizes), "bytes": [2 ** 10 * S ** p for S in sizes]}
             for f, p in zip(forms, (1, 2, 1))}
    return fpf.plot_training_cost(saved, _sweep(forms, sizes, "seconds", (1, 2, 1)),
                                  saved_min_S=256, time_min_S=256)


def _block(kind, shapes=True):
    if not shapes:
        return fb.draw_block(kind)
    x = torch.randn(2, 12, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return fb.draw_block(kind, block=xb.make_block(kind, 64, 4), x=x)


def _parameter_counts():  # the chapter's E = 768, 24 blocks (built on the meta device: no memory)
    per_block = {k: xb.component_counts(xb.build_on_meta(xLSTMStackConfig(
        embedding_dim=768, num_blocks=1, slstm_at=(0,) if k == "slstm" else ())).blocks[0])
        for k in ("mlstm", "slstm")}
    stacks = {f"xLSTM[{r}]": xb.stack_counts(xLSTMStackConfig(embedding_dim=768, num_blocks=24,
                                                              slstm_at=ratio_to_slstm_at(r, 24)))
              for r in ("1:0", "1:1", "0:1")}
    return fb.plot_parameter_counts(per_block, stacks,
                                    title="Parameters at E = 768, 24 blocks, 4 heads (stack only, "
                                          "no embedding)")


def _parameter_scaling():
    widths = list(range(64, 1025, 64))
    cfgs = [xLSTMStackConfig(embedding_dim=w, num_blocks=1) for w in widths]
    counted = {k: [xb.counted_block_parameters(k, c) for c in cfgs] for k in ("mlstm", "slstm")}
    leading = {k: xb.leading_coefficient(k, cfgs[0]) for k in counted}
    return fb.plot_parameter_scaling(widths, counted, counted, leading)


def _lm_results():
    out = {}
    for k, name in enumerate(MODELS):
        steps = np.linspace(0, 1400 - 100 * k, 8)
        bits = 2.0 + 4.5 * np.exp(-steps / 200) + 0.05 * k
        out[name] = {"history": [{"step": int(s), "train_s": s / 10, "val_bits_per_char": b,
                                  "val_loss": b * np.log(2)} for s, b in zip(steps, bits)]}
    return out


def _loss_comparison(which):
    if which == "live":
        return flm.plot_loss_comparison(_lm_results(), {
            "step": "Equal updates (60), about 100k parameters",
            "train_s": "The same runs against training time"}, uniform=65)
    return flm.plot_loss_comparison(_lm_results(), {
        "train_s": "Equal wall time (120 s per model)", "step": "The same runs against updates"},
        skip_untrained=True)


def _generation_cost():
    contexts = (16, 64, 256, 1024)
    costs = {"xLSTM[1:1], recurrent step": [dict(context=T, time_s=1e-3, state_bytes=40_000)
                                            for T in contexts],
             "Transformer, KV cache": [dict(context=T, time_s=1e-3 * (1 + T / 500),
                                            state_bytes=2048 * (T + 1)) for T in contexts],
             "Transformer, no cache (carries token ids)": [
                 dict(context=T, time_s=1e-3 * (1 + T / 50), state_bytes=8 * T) for T in contexts]}
    return flm.plot_generation_cost(
        costs, title="Generating one more token after T tokens (batch 1, one CPU thread)")


def _lengths_curves(models=MODELS, max_length=256):
    lengths = np.arange(1, max_length + 1)
    return {m: (lengths, np.clip(1.0 - 0.002 * k * lengths, 0.5, 1.0),
                np.clip(0.95 - 0.002 * k * lengths, 0.45, 1.0), np.ones(max_length))
            for k, m in enumerate(models)}


def _accuracy_grid():
    tasks = ("parity", "even pairs", "cycle navigation", "modular arithmetic")
    return fst.plot_accuracy_grid({t: _lengths_curves() for t in tasks}, max_train_length=40,
                                  chance={"parity": 0.5, "even pairs": 0.5, "cycle navigation": 0.2,
                                          "modular arithmetic": 0.2})


def _state_trace(S):
    x = rng.integers(0, 2, S)
    y = np.cumsum(x) % 2
    return fst.plot_state_trace(x, y, np.where(y == 1, 0.8, -0.8) + rng.normal(0, 0.1, S), threshold=0.0,
                                value_label="$h_t$ of the hand-set unit",
                                title="One sLSTM unit with $R_z = -K$: the flip-flop of parity")


def _score_tables(which):
    if which == "09":
        tasks = ["parity", "even pairs", "cycle navigation", "modular arithmetic"]
        return fst.plot_score_table(rng.uniform(0, 1, (5, 4)), list(MODELS), tasks,
                                    title="Scaled test accuracy (lengths 41-256), mean of 3 seeds, "
                                          "1000 updates")
    rows = ["LSTM", "Transformer", "xLSTM[1:0] (mLSTM)", "xLSTM[1:1] (mLSTM + sLSTM)",
            "xLSTM[0:1] (sLSTM)"]
    cols = ["parity\n(scaled, mean)"] + [f"MQAR\n{n} pairs" for n in (4, 8, 16)]
    return fst.plot_score_table(rng.uniform(0, 1, (5, 4)), rows, cols,
                                label="score (parity: scaled accuracy; MQAR: accuracy)",
                                title="Stored runs of chapters 09 and 10")


def _recall_accuracy():
    stored = (2, 4, 8, 16, 32, 63)
    curves = {f"d = {d}": (stored, [min(1.0, d / (2 * n)) for n in stored]) for d in (20, 40, 80, 160)}
    return fr.plot_accuracy(curves, chance=1 / 32,
                            xlabel="pairs written into one head (random unit keys)",
                            title="The package's mLSTM cell as a lookup table")


def _recall_histories(n=11):
    return {m: [{"step": 50 * j, "accuracy": min(1.0, 0.03 + 0.1 * j * k / 2),
                 "val_loss": 3.5 / (1 + j * k / 4)} for j in range(n)]
            for k, m in enumerate(("LSTM", "Transformer", "xLSTM[1:0]"))}


def _capacity():
    pairs = [4, 8, 16, 32]
    by_pairs = {m: (pairs, [max(0.02, 1.0 - k * n / 64) for n in pairs]) for k, m in enumerate(MODELS)}
    by_dim = {f"{n} pairs": ([20, 40, 80, 160], [0.3, 0.6, 0.99, 1.0]) for n in (8, 16)}
    return fr.plot_capacity(by_pairs, by_dim, chance=1 / 32,
                            pairs_baselines={"1/N: a value of the sequence at random":
                                             (pairs, [1 / n for n in pairs])})


def _state_size():
    contexts = (16, 64, 256, 1024, 4096)
    sizes = {"Transformer (KV cache)": (contexts, [2 * 2 * T * 128 * 4 for T in contexts]),
             "xLSTM[1:0], 1 head of 160 (trained live)": (contexts, [120_000] * 5),
             "xLSTM[1:0], 8 heads of 20": (contexts, [20_000] * 5),
             "LSTM (trained live)": (contexts, [2_000] * 5)}
    return fr.plot_state_size(sizes, title="What each model carries to the next token")


#: name -> function drawing it (a figure or axes); every public figure function is drawn at least once.
CASES = {
    "lstm.plot_gradient_norms": _gradient_norms,
    "gating.plot_average_weights": _average_weights,
    "gating.plot_revise": lambda: _revise(None),
    "gating.plot_revise threshold": lambda: _revise(0.55),
    "gating.plot_overflow": _overflow,
    "gating.plot_gate_traces": _gate_traces,
    "slstm.plot_recurrent_matrix": _recurrent_matrix,
    "slstm.plot_speed": _speed,
    "slstm.plot_impulse_responses": _impulse_responses,
    "mlstm.plot_retrieval_error": _retrieval_error,
    "mlstm.plot_memory": _memory,
    "parallel_forms.plot_decay_matrices": _decay_matrices,
    "parallel_forms.plot_chunk_structure": lambda: fpf.plot_chunk_structure(S=32, L=8),
    "parallel_forms.plot_pitfall": lambda: fpf.plot_pitfall(_pitfall_rows(1.0)),
    "parallel_forms.plot_pitfall regimes": lambda: fpf.plot_pitfall(
        {"realistic": _pitfall_rows(1.0), "hard": _pitfall_rows(1e3)}),
    "parallel_forms.plot_scaling": _scaling,
    "parallel_forms.plot_training_cost": _training_cost,
    "blocks.draw_block mlstm": lambda: _block("mlstm"),
    "blocks.draw_block slstm": lambda: _block("slstm"),
    "blocks.draw_block mlstm plain": lambda: _block("mlstm", shapes=False),
    "blocks.plot_parameter_counts": _parameter_counts,
    "blocks.plot_parameter_scaling": _parameter_scaling,
    "cells.cell_diagram lstm": lambda: fc.cell_diagram("lstm"),
    "cells.cell_diagram slstm": lambda: fc.cell_diagram("slstm"),
    "cells.cell_diagram mlstm": lambda: fc.cell_diagram("mlstm"),
    "cells.cell_diagrams": lambda: fc.cell_diagrams(),
    "cells.draw_cell": lambda: fc.draw_cell("slstm", plt.figure(figsize=fc.layout("slstm").size)
                                            .add_axes((0, 0, 1, 1))),
    "language_model.plot_loss_curves": lambda: flm.plot_loss_curves(_lm_results(), uniform=65),
    "language_model.plot_loss_comparison live": lambda: _loss_comparison("live"),
    "language_model.plot_loss_comparison stored": lambda: _loss_comparison("stored"),
    "language_model.plot_generation_cost": _generation_cost,
    "state_tracking.plot_accuracy_by_length": lambda: fst.plot_accuracy_by_length(
        _lengths_curves(("LSTM", "xLSTM[0:1]")), max_train_length=40, chance=0.5,
        title="Parity after 300 updates: accuracy of the answer after L bits"),
    "state_tracking.plot_accuracy_grid": _accuracy_grid,
    "state_tracking.plot_state_trace 60": lambda: _state_trace(60),
    "state_tracking.plot_state_trace 200": lambda: _state_trace(200),
    "state_tracking.plot_score_table 09": lambda: _score_tables("09"),
    "state_tracking.plot_score_table 00": lambda: _score_tables("00"),
    "recall.plot_accuracy": _recall_accuracy,
    "recall.plot_capacity": _capacity,
    "recall.plot_training_curves": lambda: fr.plot_training_curves(_recall_histories(), chance=1 / 32),
    "recall.plot_training": lambda: fr.plot_training(
        _recall_histories(), keys=("accuracy", "val_loss"),
        chance={"accuracy": 1 / 32, "val_loss": np.log(32)},
        title="MQAR, 8 pairs in 64 tokens: held-out accuracy and loss"),
    "recall.plot_state_size": _state_size,
}


def test_every_public_figure_function_is_drawn():
    public = set()
    for module in MODULES:
        short = module.__name__.rsplit(".", 1)[1]
        for name, obj in vars(module).items():
            if (inspect.isfunction(obj) and obj.__module__ == module.__name__
                    and not name.startswith("_")):
                public.add(f"{short}.{name}")
    covered = {case.split(" ")[0] for case in CASES}
    assert public - NOT_FIGURES - covered == set()


@pytest.mark.parametrize("case", list(CASES))
def test_figure_is_readable_in_the_book(case):
    fig = _fig(CASES[case]())
    assert _style.readability_problems(fig) == []


# --- the checker --------------------------------------------------------------------------------------

def test_checker_measures_the_saved_png():
    fig, ax = plt.subplots(figsize=(7.0, 3.0))
    ax.plot([0, 1], [0, 1])
    width, height = _style.saved_size_px(fig)
    buf = io.BytesIO()  # decoded, not read from the header
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    buf.seek(0)
    assert plt.imread(buf).shape[:2] == (height, width)
    fig.canvas.draw()  # the tight box (inches) and the default padding of 0.1 inch on each side
    tight = fig.get_tightbbox(fig.canvas.get_renderer())
    assert abs(width - 100 * (tight.width + 0.2)) <= 1 and abs(height - 100 * (tight.height + 0.2)) <= 1
    assert width < 7.0 * 100  # the tight box crops the empty margin
    assert _style.readability_problems(fig) == []


def test_checker_finds_a_wide_figure():
    fig, ax = plt.subplots(figsize=(11.0, 3.0))
    ax.plot([0, 1], [0, 1])
    (problem,) = _style.readability_problems(fig)
    assert "px wide" in problem and "11.00 x 3.00" in problem


def test_checker_finds_text_outside_the_axes_that_widens_the_figure():
    fig, ax = plt.subplots(figsize=(7.0, 3.0))
    ax.plot([0, 1], [0, 1], label="a rather long legend entry placed outside on the right")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    assert any("px wide" in p for p in _style.readability_problems(fig))


def test_checker_finds_small_text_of_every_kind():
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    ax.plot([0, 1], [0, 1], label="legend 7")
    ax.legend(fontsize=7)
    ax.text(0.5, 0.5, "note 8", fontsize=8)
    ax.annotate("arrow 6", (0.2, 0.2), fontsize=6)
    ax.set_title("title 8.5", fontsize=8.5)
    ax.tick_params(axis="y", labelsize=7.5)
    ax.text(0.1, 0.9, "invisible 5", fontsize=5, visible=False)  # not drawn: no problem
    ax.text(0.1, 0.8, "", fontsize=5)
    problems = _style.readability_problems(fig)
    small = sorted(p.split("'")[1] for p in problems if " pt " in p)
    y_ticks = [t.get_text() for t in ax.get_yticklabels()
               if ax.get_ylim()[0] <= t.get_position()[1] <= ax.get_ylim()[1]]
    assert small == sorted(["legend 7", "note 8", "arrow 6", "title 8.5", *y_ticks])
    assert len(problems) == len(small)


def test_checker_finds_a_small_mathtext_and_colorbar_label():
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    im = ax.imshow(np.eye(3))
    fig.colorbar(im, ax=ax).set_label(r"$w_{ts}$", fontsize=8)
    assert [p for p in _style.readability_problems(fig) if " pt " in p] == [
        "text '$w_{ts}$' is 8 pt (at least 9)"]


def test_checker_finds_overlapping_tick_labels_and_ignores_hidden_axes():
    fig, (ax, hidden) = plt.subplots(2, 1, figsize=(3.0, 4.0))
    ax.set_xticks(range(20), [f"label {k}" for k in range(20)])
    hidden.set_xticks(range(20), [f"label {k}" for k in range(20)])
    hidden.set_visible(False)
    problems = _style.readability_problems(fig)
    assert problems and all("x tick labels" in p and "overlap" in p for p in problems)
    assert len(problems) < 20 * 19  # the hidden axes adds none
    fig2, ax2 = plt.subplots(figsize=(3.0, 4.0))
    ax2.set_xticks(range(3), ["a", "b", "c"])
    assert _style.readability_problems(fig2) == []


def test_pyplot_applies_the_book_fonts():
    plt_ = _style.pyplot()
    for key, value in _style.BOOK_RC.items():
        assert plt_.rcParams[key] == value, key
