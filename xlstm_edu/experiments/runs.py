"""Experiments made of many independent training runs, run one after another or in processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from .._progress import tqdm


def run_all(fn: Callable[..., list[dict]], runs: list[tuple], s: dict, device: str, jobs: int,
            progress: bool) -> list[dict]:
    """The rows of ``fn(*run, s, device)`` for every run, in the order of ``runs``, computed in
    ``jobs`` processes (1: in this one). ``fn`` must seed itself from its arguments, so that the rows
    do not depend on ``jobs``; the processes are spawned (no forked torch state)."""
    bar = tqdm(total=len(runs), desc="runs", disable=not progress, unit="run")
    out: list[list[dict]] = []
    try:
        if jobs == 1:
            for r in runs:
                out.append(fn(*r, s, device))
                bar.set_postfix_str(" ".join(map(str, r)))
                bar.update(1)
        else:
            with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(fn, *r, s, device) for r in runs]
                for r, f in zip(runs, futures):
                    out.append(f.result())
                    bar.set_postfix_str(" ".join(map(str, r)))
                    bar.update(1)
    finally:
        bar.close()
    return [row for rows in out for row in rows]
