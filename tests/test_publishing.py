"""Publishing the book: the Pages workflow builds what `make book` builds, and the page fixes of
``book/_ext/page_fixes.py`` do what they say (the browser test checks the built pages themselves)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pages_workflow_builds_with_make_book_and_deploys_the_html():
    flow = yaml.safe_load((REPO / ".github" / "workflows" / "pages.yml").read_text())
    steps = flow["jobs"]["build"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert "make book" in runs
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "book/_build/html"
    deploy = flow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert any(str(s.get("uses", "")).startswith("actions/deploy-pages") for s in deploy["steps"])
    assert flow["permissions"]["pages"] == "write" and flow["permissions"]["id-token"] == "write"


def test_makefile_serves_the_built_book_on_localhost():
    makefile = (REPO / "Makefile").read_text()
    serve = makefile.split("\nserve:", 1)[1].split("\n\n", 1)[0]
    assert "http.server" in serve and "--bind 127.0.0.1" in serve and "book/_build/html" in serve


def test_fontawesome_script_tag_is_removed_and_nothing_else():
    fixes = _load(REPO / "book" / "_ext" / "page_fixes.py", "page_fixes")
    page = ('<head>\n  <script defer src="../_static/scripts/fontawesome.js?digest=55c2"></script>\n'
            '  <link rel="preload" as="script" href="../_static/scripts/fontawesome.js?digest=55c2" />\n'
            '  <script src="../_static/scripts/bootstrap.js?digest=55c2"></script>\n</head>')
    cleaned = fixes._FONTAWESOME_JS.sub("", page)
    assert "fontawesome.js" not in cleaned
    assert '<script src="../_static/scripts/bootstrap.js?digest=55c2"></script>' in cleaned


def test_reexported_names_resolve_to_where_they_are_defined():
    fixes = _load(REPO / "book" / "_ext" / "page_fixes.py", "page_fixes")
    names = fixes._canonical_names("xlstm_edu.training.train")
    assert names[0] == "xlstm_edu.training.loop.train"
    assert "xlstm_edu.training.train" not in names  # the name itself is not an alternative
    assert fixes._canonical_names("xlstm_edu.no_such_module.f") == []


def test_duplicate_and_thebe_scripts_are_dropped():
    fixes = _load(REPO / "book" / "_ext" / "page_fixes.py", "page_fixes")

    class JS:
        def __init__(self, filename, body=None):
            self.filename, self.attributes = filename, ({"body": body} if body else {})

    scripts = [JS("a.js"), JS(None, 'const THEBE_JS_URL = "x"'), JS("sphinx-thebe.js"), JS("a.js"),
               JS(None, "var x = 1"), JS(None, "var x = 1"), JS("b.js")]
    context = {"script_files": scripts}
    fixes._clean_scripts(None, "p", "page.html", context, None)
    kept = [(js.filename, js.attributes.get("body")) for js in context["script_files"]]
    assert kept == [("a.js", None), (None, "var x = 1"), ("b.js", None)]
