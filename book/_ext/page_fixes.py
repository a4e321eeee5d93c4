"""Fixes to the pages Jupyter Book 1 writes, found by the browser test (``browser_tests/``).

- Jupyter Book always loads ``sphinx_thebe``; with Thebe off (``launch_buttons.thebe: false``) its inline
  configuration script still ends up in every page twice, and the second copy fails with
  ``Identifier 'THEBE_JS_URL' has already been declared``. The book has no Thebe button, so the pages
  get none of its scripts.
- Any script that ends up in a page twice (same file, or same inline body) is kept once.
- The theme loads Font Awesome twice: as web fonts from its CSS (what draws the icons) and as a 1.5 MB
  script that redraws the same icons as SVG. The pages keep the fonts and drop the script (written into
  the theme's template, so it is taken out of the written pages at the end of the build).
- Cross-references to names the package re-exports (``xlstm_edu.training.train`` is
  ``xlstm_edu.training.loop.train``) resolve to where the API reference (``api.md``) documents them.
  Inside the API reference's docstrings, a reference to something it does not document (a private
  helper, a module left out) is shown as code without a link instead of failing the nitpicky build;
  everywhere else (the chapters) a broken reference still fails it.
"""

from __future__ import annotations

import re
from pathlib import Path

_FONTAWESOME_JS = re.compile(
    r'[ \t]*<(?:script[^>]*src|link[^>]*href)="[^"]*_static/scripts/fontawesome\.js[^"]*"[^>]*>'
    r'(?:</script>)?[ \t]*\n?')


def _key(js) -> tuple:
    attributes = getattr(js, "attributes", {}) or {}
    return (getattr(js, "filename", None) or "", attributes.get("body"))


def _is_thebe(js) -> bool:
    filename = str(getattr(js, "filename", None) or "")
    body = (getattr(js, "attributes", {}) or {}).get("body") or ""
    return filename.endswith("sphinx-thebe.js") or "thebe" in filename or "THEBE_JS_URL" in body


def _clean_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for js in scripts:
        key = _key(js)
        if _is_thebe(js) or key in seen:
            continue
        seen.add(key)
        kept.append(js)
    scripts[:] = kept


def _drop_fontawesome_js(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = _FONTAWESOME_JS.sub("", text)
        if new != text:
            page.write_text(new, encoding="utf-8")


API_PAGE = "api"


def _canonical_names(target: str) -> list[str]:
    """Other names of the object ``target`` names: ``module.qualname`` where it is defined, then the
    same name under each package above that module (where a package's ``__all__`` documents it)."""
    import importlib

    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return []
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if not (module and qualname):
            return []
        packages = module.split(".")
        names = [".".join(packages[:n] + [qualname]) for n in range(len(packages), 0, -1)]
        return [n for n in names if n != target]
    return []


def _resolve_reexports(app, env, node, contnode):
    if node.get("refdomain") != "py":
        return None
    domain = env.get_domain("py")
    for name in _canonical_names(node["reftarget"]):
        alias = node.deepcopy()
        alias["reftarget"] = name
        found = domain.resolve_xref(env, node.get("refdoc", ""), app.builder, node["reftype"], name,
                                    alias, contnode)
        if found is not None:
            return found
    if node.get("refdoc") == API_PAGE:
        return contnode
    return None


def setup(app):
    app.connect("missing-reference", _resolve_reexports)
    app.connect("html-page-context", _clean_scripts, priority=900)
    app.connect("build-finished", _drop_fontawesome_js)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
