"""The book's experiments by name: ``python -m xlstm_edu experiment NAME [--quick] [--out FILE]``.

Each experiment is a function ``run(*, quick, seed, device, progress) -> (settings, rows)`` in its
chapter's module: ``settings`` is a flat dict of what it used, ``rows`` a list of flat result rows,
each with ``metric`` and ``value`` and the keys that identify it (see :mod:`xlstm_edu.results`).
:func:`run_experiment` adds the common settings (command, versions, seed, wall time) and writes the
file. The modules are imported only when their experiment runs.
"""

from __future__ import annotations

import importlib
import os
import platform
import time
from dataclasses import dataclass

import torch

from .. import results


@dataclass(frozen=True)
class Experiment:
    summary: str  # one line for --help
    module: str  # where the function lives
    function: str = "run"
    chapter: str = ""  # the chapter that loads the stored result
    parallel: bool = False  # made of independent runs: its function takes ``jobs`` (processes)


EXPERIMENTS = {
    "language-model": Experiment(
        "five language models of equal size trained for the same wall time on Shakespeare",
        "xlstm_edu.experiments.language_model", chapter="08_language_model"),
    "formal-languages": Experiment(
        "parity, even pairs, cycle navigation and modular arithmetic: five models trained on short "
        "strings, tested on longer ones", "xlstm_edu.experiments.formal_languages",
        chapter="09_state_tracking", parallel=True),
    "mqar": Experiment(
        "multi-query associative recall: accuracy against the number of key-value pairs and the "
        "mLSTM head dimension", "xlstm_edu.experiments.recall", chapter="10_associative_recall",
        parallel=True),
    "tmaze": Experiment(
        "T-maze: success at the junction against corridor length for a memoryless agent, LSTM, "
        "sLSTM, mLSTM and minLSTM", "xlstm_edu.experiments.tmaze", chapter="13_memory_for_agents",
        parallel=True),
    "time-series": Experiment(
        "multi-step forecasts of a noisy sine, CO2, sunspots and El Nino: naive, seasonal "
        "naive, linear, LSTM, xLSTM variants and minLSTM", "xlstm_edu.experiments.time_series",
        chapter="11_forecasting"),
    "min-rnn": Experiment(
        "minGRU and minLSTM against xLSTM and LSTM at equal size: validation loss, training and "
        "generation speed, memory; the parallel scan against the loop", "xlstm_edu.experiments.min_rnn",
        chapter="12_minimal_rnns"),
}


def run_experiment(name: str, *, quick: bool = False, seed: int = 0, device: str = "cpu",
                   out=None, command: str | None = None, progress: bool = True, jobs: int = 1) -> dict:
    """Run experiment ``name`` and return its result (written to ``out`` when given). ``jobs``: training
    runs at once, for the experiments made of independent runs (``Experiment.parallel``)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {sorted(EXPERIMENTS)}")
    if jobs != 1 and not EXPERIMENTS[name].parallel:
        raise ValueError(f"experiment {name!r} is one run; it takes no jobs")
    if out is not None:
        results.check_result_path(out)  # before the work, not after
    spec = EXPERIMENTS[name]
    run = getattr(importlib.import_module(spec.module), spec.function)
    from .. import __version__

    t0 = time.perf_counter()
    extra = {"jobs": jobs} if spec.parallel else {}
    own_settings, rows = run(quick=quick, seed=seed, device=device, progress=progress, **extra)
    settings = {
        "experiment": name,
        "command": command or f"python -m xlstm_edu experiment {name}" + (" --quick" if quick else ""),
        "quick": quick, "seed": seed, "device": device,
        "xlstm_edu": __version__, "torch": torch.__version__, "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
                   "threads",
        "wall_s": time.perf_counter() - t0,
        **own_settings,
    }
    result = {"settings": settings, "results": rows}
    results.validate(result, name)
    if out is not None:
        results.write(out, result)
    return result
