"""Every page of the built book as a reader meets it: offline, in headless Chromium, no kernel.

Each page of the table of contents is opened once (``visits``); the checks below read what that visit
recorded:

- no page errors, no console errors, no failed requests, no request to any host but 127.0.0.1;
- math rendered by MathJax (every math element typeset, no raw TeX left in the text);
- every image loaded, and shown at its drawn size (not scaled down to the column, where its text would
  shrink below the body's small print);
- no code or output block wider than the page shows (no sideways scrolling);
- no exercise solution (cells tagged ``solution``) visible before its toggle opens, visible after;
- on every page with explorers: moving each control changes what is drawn, and the drawn values equal
  ``xlstm_edu.widgets.reference`` for the settings the page reports;
- page weight (bytes of the page and everything it loads) within a budget; all weights are written to
  ``build/page_weights.json`` and screenshots of each page to ``build/screenshots/``.

Run with ``make test`` (after ``make book``), or alone: ``.venv/bin/pytest browser_tests``.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from conftest import HTML, REPO

BOOK = REPO / "book"
VIEWPORT = {"width": 1440, "height": 900}  # a laptop screen: sidebar, text column, page outline
#: The heaviest a page may be. Every page with math loads ~1.9 MB of theme, fonts and MathJax (1.2 MB of
#: it); its own HTML, figures and explorer data add 0.3-1.2 MB. Catches a page that loads a bundle it
#: does not need (the ipywidgets manager was 3.6 MB, Font Awesome's script 1.5 MB) or oversized images.
MAX_PAGE_BYTES = 3_500_000
RAW_TEX = re.compile(r"\\\(|\\\[|\$\$|\\(frac|begin|mathbf|tilde|sum|odot|sigma)\b")


def _toc_pages() -> list[str]:
    """The pages of ``book/_toc.yml`` as paths of the built HTML, in reading order."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return [f"{f}.html" for f in files]


PAGES = _toc_pages()
if os.environ.get("BOOK_PAGES_BUILT"):  # check only the pages a partial build wrote (for debugging)
    PAGES = [p for p in PAGES if (HTML / p).exists()]

# JavaScript run in the page --------------------------------------------------------------------------
_STATIC_CHECKS = """() => {
  const article = document.querySelector('article') || document.querySelector('main') || document.body;
  // checkVisibility: false inside a closed <details> (whose content keeps its layout box in Chromium)
  const visible = (el) => {
    if (!el) return false;
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 &&
      el.checkVisibility({contentVisibilityAuto: true, opacityProperty: true, visibilityProperty: true});
  };
  const imgs = [...article.querySelectorAll('img')].map(img => ({
    src: img.currentSrc || img.src, complete: img.complete, natural: img.naturalWidth,
    shown: img.getBoundingClientRect().width, alt: img.alt}));
  const wide = [...article.querySelectorAll('pre, div.cell_output, div.output')]
    .filter(el => visible(el) && el.scrollWidth > el.clientWidth + 1)
    .map(el => ({cls: el.className, scroll: el.scrollWidth, client: el.clientWidth,
                 text: el.innerText.split('\\n').reduce((a, b) => a.length >= b.length ? a : b, '')
                       .slice(0, 120)}));
  const clone = article.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, textarea, mjx-container, svg, .xlstm-explorer')
    .forEach(el => el.remove());
  const math = [...article.querySelectorAll('.math')];
  const untypeset = math.filter(el => !el.querySelector('mjx-container')).map(el => el.textContent
    .slice(0, 80));
  const solutions = [...article.querySelectorAll('.tag_solution')].map(cell => {
    const parts = [...cell.querySelectorAll('.cell_input, .cell_output')];
    return {visible: parts.filter(visible).length, parts: parts.length};
  });
  // "Solution" dropdowns (admonitions with class dropdown): everything but the title is hidden
  const dropdowns = [...article.querySelectorAll('.admonition.dropdown')].map(box => {
    const body = [...box.children].filter(el => !el.classList.contains('admonition-title'));
    return {visible: body.filter(visible).length, parts: body.length,
            title: (box.querySelector('.admonition-title') || box).textContent.trim().slice(0, 40)};
  });
  return {imgs, wide, text: clone.innerText, n_math: math.length, untypeset, solutions, dropdowns,
          n_explorers: document.querySelectorAll('.xlstm-explorer').length,
          n_widget_views: document.querySelectorAll(
            'script[type="application/vnd.jupyter.widget-view+json"]').length,
          column: article.getBoundingClientRect().width};
}"""

_WEIGHT = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  return (nav ? nav.encodedBodySize : 0) + res.reduce((a, r) => a + r.encodedBodySize, 0);
}"""

_DRAWN = """(root) => {
  const out = {};
  root.querySelectorAll('[data-series]').forEach(el => {
    out[el.dataset.series] = {values: JSON.parse(el.dataset.values), shape: el.dataset.shape || null};
  });
  return {settings: JSON.parse(root.dataset.settings || 'null'), series: out};
}"""


def _wait_for_math(page):
    page.wait_for_function(
        "() => !window.MathJax || (window.MathJax.startup && window.MathJax.startup.promise)",
        timeout=20_000)
    page.evaluate("() => window.MathJax ? MathJax.startup.promise.then(() => true) : true")


def _explorers(page) -> list[dict]:
    """Move every control of every explorer one step with the keyboard; record what was drawn before
    and after, and the settings the explorer reports."""
    found = []
    for root in page.query_selector_all(".xlstm-explorer"):
        name = root.get_attribute("data-explorer")
        controls = []
        for control in root.query_selector_all("input[type=range], [role=slider]"):
            before = page.evaluate(_DRAWN, root)
            at_max = control.evaluate(
                "el => Number(el.value ?? el.getAttribute('aria-valuenow')) >= "
                "Number(el.max ?? el.getAttribute('aria-valuemax'))")
            control.focus()
            control.press("ArrowLeft" if at_max else "ArrowRight")
            page.wait_for_timeout(50)
            after = page.evaluate(_DRAWN, root)
            label = control.get_attribute("aria-label") or control.get_attribute("id") or "?"
            controls.append({"label": label, "changed": before["series"] != after["series"],
                             "before": before, "after": after})
        found.append({"name": name, "controls": controls, "final": page.evaluate(_DRAWN, root)})
    return found


def _open_solutions(page) -> list[dict]:
    states = []
    for box in page.query_selector_all(".admonition.dropdown"):
        title = box.query_selector(".admonition-title") or box.query_selector("button")
        if title is not None:
            title.click()
        page.wait_for_timeout(50)
        body = box.query_selector_all(":scope > :not(.admonition-title)")
        states.append({"visible": sum(p.is_visible() for p in body), "parts": len(body)})
    for cell in page.query_selector_all(".tag_solution"):
        for summary in cell.query_selector_all("summary"):
            summary.click()
        parts = cell.query_selector_all(".cell_input, .cell_output")
        states.append({"visible": sum(p.is_visible() for p in parts), "parts": len(parts)})
    return states


@pytest.fixture(scope="session")
def visits(browser, book_url, shots_dir):
    """Open every page once and record what the checks read."""
    records = {}
    for path in PAGES:
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        rec = {"errors": [], "console": [], "failed": [], "off_host": []}

        def route(r, rec=rec):
            host = urlparse(r.request.url).hostname
            if r.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
                r.continue_()
            else:
                rec["off_host"].append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page.on("pageerror", lambda e, rec=rec: rec["errors"].append(str(e)))
        page.on("console", lambda m, rec=rec: m.type == "error" and rec["console"].append(m.text))
        page.on("requestfailed", lambda r, rec=rec: rec["failed"].append(f"{r.url} ({r.failure})"))
        page.on("response", lambda r, rec=rec: r.status >= 400 and rec["failed"].append(
            f"{r.url} (HTTP {r.status})"))
        page.goto(f"{book_url}/{path}", wait_until="load")
        page.wait_for_load_state("networkidle")
        _wait_for_math(page)
        rec["static"] = page.evaluate(_STATIC_CHECKS)
        rec["bytes"] = page.evaluate(_WEIGHT)
        page.screenshot(path=str(shots_dir / (path.replace("/", "__")[:-5] + ".jpg")),
                        full_page=True, type="jpeg", quality=55)
        rec["explorers"] = _explorers(page)
        rec["solutions_opened"] = _open_solutions(page)
        page.wait_for_timeout(100)  # errors raised by the interactions arrive asynchronously
        records[path] = rec
        context.close()
    weights = {p: r["bytes"] for p, r in records.items()}
    (REPO / "build").mkdir(exist_ok=True)
    (REPO / "build" / "page_weights.json").write_text(json.dumps(weights, indent=1) + "\n")
    return records


@pytest.mark.parametrize("path", PAGES)
def test_no_errors_and_nothing_off_host(visits, path):
    rec = visits[path]
    assert not rec["errors"], f"page errors: {rec['errors']}"
    assert not rec["console"], f"console errors: {rec['console']}"
    assert not rec["failed"], f"failed requests: {rec['failed']}"
    assert not rec["off_host"], f"requests to other hosts: {rec['off_host']}"


@pytest.mark.parametrize("path", PAGES)
def test_no_ipywidgets_outputs(visits, path):
    """ipywidgets outputs need a kernel (or the 3.6 MB widget manager) and are dead in a static page; the
    book's explorers are self-contained HTML instead."""
    n = visits[path]["static"]["n_widget_views"]
    assert n == 0, f"{n} ipywidgets output(s): they show nothing without a kernel"


@pytest.mark.parametrize("path", PAGES)
def test_math_rendered(visits, path):
    static = visits[path]["static"]
    assert not static["untypeset"], f"math not typeset: {static['untypeset'][:5]}"
    raw = RAW_TEX.findall(static["text"])
    snippets = [static["text"][max(m.start() - 40, 0):m.end() + 40]
                for m in RAW_TEX.finditer(static["text"])][:3]
    assert not raw, f"raw TeX in the page text: {snippets}"


@pytest.mark.parametrize("path", PAGES)
def test_images_loaded_at_drawn_size(visits, path):
    static = visits[path]["static"]
    broken = [i["src"][:100] for i in static["imgs"] if not i["complete"] or i["natural"] == 0]
    assert not broken, f"images that did not load: {broken}"
    shrunk = [(i["src"][-60:], i["natural"], round(i["shown"])) for i in static["imgs"]
              if i["shown"] < 0.95 * i["natural"]]
    assert not shrunk, (
        f"figures scaled down (their text shrinks below the body's small print): {shrunk}; the "
        f"column is {static['column']:.0f} px: draw them at most that wide")


@pytest.mark.parametrize("path", PAGES)
def test_no_sideways_scrolling(visits, path):
    wide = visits[path]["static"]["wide"]
    assert not wide, "code or output wider than the page (longest line shown): " + "; ".join(
        f"{w['scroll']} > {w['client']} px: {w['text']!r}" for w in wide[:5])


@pytest.mark.parametrize("path", PAGES)
def test_solutions_hidden_until_opened(visits, path):
    rec = visits[path]
    shown = [s for s in rec["static"]["solutions"] if s["visible"]]
    assert not shown, f"{len(shown)} exercise solution cell(s) visible before they are opened"
    shown = [s["title"] for s in rec["static"]["dropdowns"] if s["visible"]]
    assert not shown, f"dropdown(s) {shown} show their content before they are opened"
    closed = [s for s in rec["solutions_opened"] if s["visible"] == 0]
    assert not closed, f"{len(closed)} solution(s) still hidden after opening their toggle"


def _same(drawn, ref, rtol, atol):
    a = [None if v is None else float(v) for v in drawn]
    b = [None if (v is None or not math.isfinite(v)) else float(v) for v in ref]
    if len(a) != len(b):
        return False
    return all((x is None and y is None) or (x is not None and y is not None and
               math.isclose(x, y, rel_tol=rtol, abs_tol=atol)) for x, y in zip(a, b))


def _tolerance(settings) -> tuple[float, float]:
    """(rtol, atol) for an explorer's drawn values against numpy's. In float64 both agree to rounding.
    The float32/float16 emulations use the browser's correctly rounded exp/tanh/log1p, numpy its own
    SIMD ones (off by an ulp at times): about 1e-6 apart in float32 on outputs bounded by 1, one float16
    step (1e-3 at 1) in float16. tests/test_widgets.py checks the emulations more tightly under node."""
    text = json.dumps(settings)
    if "float16" in text:
        return 1e-3, 1e-3
    if "float32" in text:
        return 1e-5, 2e-6
    return 1e-9, 1e-12


@pytest.mark.parametrize("path", PAGES)
def test_explorers_respond_and_match_the_package(visits, path):
    explorers = visits[path]["explorers"]
    if visits[path]["static"]["n_explorers"] == 0:
        return  # a page without explorers
    from xlstm_edu.widgets import reference

    assert len(explorers) == visits[path]["static"]["n_explorers"]
    for ex in explorers:
        assert ex["controls"], f"explorer {ex['name']} has no keyboard-operable control"
        dead = [c["label"] for c in ex["controls"] if not c["changed"]]
        assert not dead, f"explorer {ex['name']}: moving {dead} changed nothing that is drawn"
        for state in [c["after"] for c in ex["controls"]]:
            ref = reference(ex["name"], state["settings"])
            for name, values in ref.items():
                drawn = state["series"].get(name)
                assert drawn is not None, f"explorer {ex['name']}: series {name!r} not drawn"
                flat = [float(x) for x in _flatten(values)]
                assert _same(drawn["values"], flat, *_tolerance(state["settings"])), (
                    f"explorer {ex['name']}, settings {state['settings']}: drawn {name!r} differs from "
                    f"xlstm_edu's")


def _flatten(values):
    if isinstance(values, (list, tuple)):
        for v in values:
            yield from _flatten(v)
    elif hasattr(values, "tolist"):
        yield from _flatten(values.tolist())
    else:
        yield values


@pytest.mark.parametrize("path", PAGES)
def test_page_weight(visits, path):
    assert visits[path]["bytes"] <= MAX_PAGE_BYTES, (
        f"{visits[path]['bytes'] / 1e6:.2f} MB loaded; budget {MAX_PAGE_BYTES / 1e6:.1f} MB")


def test_every_toc_page_was_built():
    missing = [p for p in PAGES if not (HTML / p).exists()]
    assert not missing, f"pages in _toc.yml that the build did not write: {missing}"


def test_screenshots_kept(visits, shots_dir):
    shots = {p.name for p in Path(shots_dir).glob("*.jpg")}
    missing = [p for p in PAGES if p.replace("/", "__")[:-5] + ".jpg" not in shots]
    assert not missing, f"no screenshot for {missing}"
