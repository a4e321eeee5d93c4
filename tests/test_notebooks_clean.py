"""The chapter notebooks are committed clean and follow the book's rules.

* no outputs, no execution counts, no saved widget state (the book build produces those);
* the first code cell is the install cell, verbatim (stubs marked ``STUB:`` are skipped);
* no ``sys.path`` edits and no star imports: every notebook runs top to bottom in a fresh kernel
  against the installed package.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = REPO / "book" / "chapters"
NOTEBOOKS = sorted(CHAPTERS.glob("*.ipynb"))

def _tools_chapters():
    """``tools/chapters.py``: the install cell, made from the repository URL in ``book/_config.yml``."""
    spec = importlib.util.spec_from_file_location("tools_chapters", REPO / "tools" / "chapters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOLS = _tools_chapters()
INSTALL_CELL = TOOLS.install_cell()

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
        f"{INSTALL_CELL}\n--- found ---\n{first}\n(`python tools/chapters.py --sync` writes it)"
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


#: OWNER/NAME in a GitHub or Colab address of a repository
REPO_ADDRESS = re.compile(r"(?:github\.com|colab\.research\.google\.com/github)/([\w.-]+/[\w.-]+?)"
                          r"(?:\.git)?(?=[/\"\s)\]]|$)")


def test_repository_url_is_written_in_one_place():
    """The config's URL is the one every install cell and README's Colab links use; no other GitHub
    address of the book's repository appears anywhere in the chapters or the README."""
    url = TOOLS.repository_url()
    owner_name = url.removeprefix("https://github.com/")
    texts = {p.name: p.read_text(encoding="utf-8") for p in [*NOTEBOOKS, REPO / "README.md"]}
    for name, text in texts.items():
        for found in REPO_ADDRESS.findall(text):
            if found.split("/")[0] in ("NX-AI",):  # the official code, cited
                continue
            assert found == owner_name, f"{name}: repository {found!r}, the config says {owner_name!r}"
    readme = texts["README.md"]
    assert TOOLS.colab_prefix() in readme, "README.md: the Colab links do not use the config's URL"


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


SOLUTION_DROPDOWN = re.compile(r"\{admonition\}\s*Solution\s*\n:class: dropdown")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_have_one_style(path):
    """Every exercise solution looks the same: a "Solution" dropdown (markdown, closed) followed by the
    code that works it out in a cell tagged ``hide-cell`` and ``solution`` (hidden, outputs included;
    the browser test checks both stay hidden until opened). ``hide-cell`` is used for nothing else, and
    no solution is hidden with ``hide-input`` (which leaves its output, the answer, visible)."""
    cells = _load(path)["cells"]
    for i, cell in enumerate(cells):
        tags = _tags(cell)
        if "hide-cell" in tags or "solution" in tags:
            assert {"hide-cell", "solution"} <= set(tags), (
                f"{path.name}, cell {i}: a hidden solution cell is tagged both hide-cell and solution "
                f"(has {tags})")
            before = _source(cells[i - 1]) if i else ""
            assert cells[i - 1]["cell_type"] == "markdown" and SOLUTION_DROPDOWN.search(before), (
                f"{path.name}, cell {i}: a solution cell follows its 'Solution' dropdown "
                "(:::{admonition} Solution / :class: dropdown)")
        assert "hide-input" not in tags and "hide-output" not in tags, (
            f"{path.name}, cell {i}: tagged {tags}; solutions are hidden whole with hide-cell")
