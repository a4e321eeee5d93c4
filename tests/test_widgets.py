"""The book's explorers (xlstm_edu.widgets): what their JavaScript computes equals the package's
Python reference, what they draw follows the browser test's contract, and their HTML is
self-contained (range inputs with labels only, no URL, valid JSON, nothing MathJax could grab).

The JavaScript runs under node (``/usr/bin/node``; CI installs it too); without node those tests skip.
"""

from __future__ import annotations

import ast
import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from xlstm_edu import widgets
from xlstm_edu.widgets import _html, reference
from xlstm_edu.widgets.gating import gate_explorer
from xlstm_edu.widgets.memory import memory_explorer

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
EPS32 = float(np.finfo(np.float32).eps)
WIDGETS_DIR = Path(widgets.__file__).parent


def _arr(values):
    return np.array([np.nan if v is None else v for v in np.ravel(np.array(values, dtype=object))],
                    dtype=float)


def _assert_series_equal(js, ref, *, rtol, atol, ulp16=False, where=""):
    a, b = _arr(js), _arr(ref)
    assert a.shape == b.shape, where
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{where}: NaN/inf positions")
    ok = ~np.isnan(b)
    if ulp16:  # at most one float16 step apart
        spacing = np.spacing(np.abs(b[ok]).astype(np.float16)).astype(float)
        assert np.all(np.abs(a[ok] - b[ok]) <= spacing), where
    else:
        np.testing.assert_allclose(a[ok], b[ok], rtol=rtol, atol=atol, err_msg=where)


# --- the gate explorer --------------------------------------------------------------------------------

GATE_CASES = [
    {},  # the defaults
    dict(textbook_dtype="float64"),
    dict(textbook_dtype="float16"),
    dict(igate_offset=100.0, textbook_dtype="float32"),  # exp overflows float32 at every step
    dict(igate_offset=12.0, igate_noise=0.0, textbook_dtype="float16"),  # exp overflows float16
    dict(igate_offset=8.0, igate_noise=2.5, textbook_dtype="float16"),  # overflow at some steps
    dict(spike_step=0, spike_height=120.0, textbook_dtype="float32"),  # a spike past float32's max
    dict(spike_step=23, spike_height=-50.0, fgate_preact=-5.0, textbook_dtype="float16"),
    dict(igate_offset=-20.0, igate_noise=10.0, fgate_preact=12.0, textbook_dtype="float32"),
    dict(igate_offset=-20.0, igate_noise=0.0, textbook_dtype="float16"),  # exp(-20) underflows half
    dict(fgate_preact=0.0, textbook_dtype="float16"),  # logaddexp(0, 0): numpy's x == y branch
]


@needs_node
@pytest.mark.parametrize("S, seed", [(24, 0), (7, 3)])
def test_gate_js_equals_gate_traces(S, seed):
    ex = gate_explorer(S=S, seed=seed)
    cases = [{**ex.settings, **c} for c in GATE_CASES]
    for c in cases:
        c["spike_step"] = min(c["spike_step"], S - 1)
    results = _html.run_in_node(ex, cases)
    some_overflow = {"float32": False, "float16": False}
    for settings, js in zip(cases, results):
        ref = reference("gate", settings)
        assert set(js) == set(ref)
        dt = settings["textbook_dtype"]
        for name in ref:
            where = f"{name} for {settings}"
            if name == "h_textbook" and dt == "float32":
                # numpy's float32 exp/tanh/log1p are within an ulp or two of the correctly rounded
                # values the JS gets (Math.fround of float64); measured <= 8 EPS32 on 600 settings
                _assert_series_equal(js[name], ref[name], rtol=16 * EPS32, atol=16 * EPS32, where=where)
            elif name == "h_textbook" and dt == "float16":
                # numpy computes half in float32 and rounds: measured exactly equal on 600 settings
                _assert_series_equal(js[name], ref[name], rtol=0, atol=0, ulp16=True, where=where)
            else:
                _assert_series_equal(js[name], ref[name], rtol=1e-12, atol=1e-12, where=where)
        if dt != "float64" and any(v is None for v in ref["h_textbook"]):
            some_overflow[dt] = True
    assert all(some_overflow.values()), "the cases must include overflow in float32 and float16"


@needs_node
def test_gate_float16_rounding_matches_numpy():
    """The JS round-to-half (ties to even, subnormals, overflow to inf) equals numpy's cast."""
    x = np.concatenate([np.array([0.0, -0.0, 65504.0, 65519.99, 65520.0, -65520.0, 1e6, 6.1e-5, 6e-8,
                                  2.98e-8, 2.99e-8, 1e-9, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11]),
                        np.random.default_rng(0).standard_normal(500) * 10.0 ** np.arange(-8, 5, 0.026)])
    probe = _html.Explorer("probe", {}, [], dict(x=x.tolist()),
                           "function compute(s, data) { return {x: data.x.map(roundHalf)}; }\n"
                           "function draw() { return ''; }")
    got = _arr(_html.run_in_node(probe, [{}])[0]["x"])
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).astype(float)
    inf = ~np.isfinite(want)
    assert np.all(inf[4:7]) and not inf[3]  # 65520, -65520 and 1e6 overflow; 65519.99 does not
    np.testing.assert_array_equal(got[~inf], want[~inf])
    assert np.all(np.isnan(got[inf]))  # infinities come back as null (the contract's JSON)


# --- the memory explorer ------------------------------------------------------------------------------

MEMORY_CASES = [
    {},
    dict(keys="random"),
    dict(n_pairs=1),
    dict(n_pairs=32, keys="one-hot"),  # keys repeat after d pairs
    dict(n_pairs=32, keys="random", newest_igate_preact=6.0),
    dict(n_pairs=20, fgate_preact=-2.0, newest_igate_preact=-4.0),  # fast forgetting, m < 0
    dict(n_pairs=12, fgate_preact=12.0, keys="random"),
]


@needs_node
@pytest.mark.parametrize("d, seed", [(16, 0), (5, 2)])
def test_memory_js_equals_explorer_data(d, seed):
    ex = memory_explorer(d=d, seed=seed)
    cases = [{**ex.settings, **c} for c in MEMORY_CASES]
    for c in cases:
        c["n_pairs"] = min(c["n_pairs"], 2 * d)
    for settings, js in zip(cases, _html.run_in_node(ex, cases)):
        ref = reference("memory", settings)
        assert set(ref) <= set(js)
        for name in ref:
            _assert_series_equal(js[name], ref[name], rtol=1e-12, atol=1e-12, where=f"{name} {settings}")
        assert np.array(js["C"]).shape == (d, d)


# --- what is drawn --------------------------------------------------------------------------------

class _SVG(HTMLParser):
    """Collects the data-series elements, the font sizes and the svg size of drawn markup."""

    def __init__(self):
        super().__init__()
        self.series, self.fonts, self.svg = {}, [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self.svg = a
        if "font-size" in a:
            self.fonts.append(float(a["font-size"]))
        if "data-series" in a:
            assert a["data-series"] not in self.series, f"series {a['data-series']} drawn twice"
            self.series[a["data-series"]] = (json.loads(a["data-values"]),
                                             json.loads(a["data-shape"]) if "data-shape" in a else None)


@needs_node
@pytest.mark.parametrize("make, cases", [(lambda: gate_explorer(S=24, seed=0), GATE_CASES[:5]),
                                         (lambda: memory_explorer(d=16, seed=0), MEMORY_CASES)])
def test_drawn_series_carry_the_computed_values(make, cases):
    ex = make()
    settings = [{**ex.settings, **c} for c in cases]
    for s, (result, svg) in zip(settings, _html.run_in_node(ex, settings, draw=True)):
        parsed = _SVG()
        parsed.feed(svg)
        assert parsed.svg is not None and float(parsed.svg["width"]) <= _html.FIGURE_WIDTH_PX
        assert parsed.fonts and min(parsed.fonts) >= 12, "text smaller than 12 px"
        ref = reference(ex.name, s)
        for name, values in ref.items():
            assert name in parsed.series, f"series {name} not drawn"
            drawn, shape = parsed.series[name]
            if name == "C":
                assert shape == [s["d"], s["d"]]
                drawn = np.array(drawn).reshape(shape).tolist()
            assert drawn == result[name]  # exactly what compute() returned, null for NaN/inf
            _assert_series_equal(drawn, values, rtol=2e-6, atol=2e-6, where=name)
        if "h_textbook" in ref:
            assert any(v is None for v in parsed.series["h_textbook"][0]) == (
                any(v is None for v in ref["h_textbook"]))


# --- the HTML -----------------------------------------------------------------------------------------

class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.scripts, self._in = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in = dict(attrs)
            self.scripts.append([dict(attrs), ""])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in = None

    def handle_data(self, data):
        if self._in is not None:
            self.scripts[-1][1] += data


@pytest.mark.parametrize("make", [lambda: gate_explorer(S=24, seed=0), lambda: memory_explorer(d=16)])
def test_html_is_self_contained(make):
    ex = make()
    page = ex._repr_html_()
    assert ex._repr_mimebundle_()["text/html"].startswith('<div class="xlstm-explorer"')
    p = _Tags()
    p.feed(page)
    root = p.tags[0]
    assert root[0] == "div" and root[1]["class"] == "xlstm-explorer"
    assert root[1]["data-explorer"] == ex.name
    # controls: range inputs only, each with a <label for> and an aria-label; no other form elements
    inputs = [a for t, a in p.tags if t == "input"]
    assert [a["type"] for a in inputs] == ["range"] * len(ex.controls)
    labels = {a["for"] for t, a in p.tags if t == "label"}
    assert all(a["id"] in labels and a["aria-label"] for a in inputs)
    assert not [t for t, _ in p.tags if t in ("button", "select", "textarea", "iframe", "img", "link")]
    for c, a in zip(ex.controls, inputs):
        assert a["data-name"] == c.name
        if c.options:  # categorical: integer steps over the options, the name shown
            assert (a["min"], a["max"], a["step"]) == ("0", str(len(c.options) - 1), "1")
            assert c.options[int(a["value"])] == c.value == a["aria-valuetext"]
    # no network, nothing MathJax could typeset
    assert not re.search(r"https?:|//[a-z]|src=|href=|@import|url\((?!#)", page, re.I)
    assert "$" not in page and "\\(" not in page and "\\[" not in page
    # the data: valid JSON, with the settings and the controls the page reports
    (spec_attrs, spec_text), (code_attrs, code) = p.scripts
    assert spec_attrs["type"] == "application/json" and "type" not in code_attrs
    spec = json.loads(spec_text)
    assert spec["fixed"] == {k: v for k, v in ex.settings.items() if k in spec["fixed"]}
    assert [c["name"] for c in spec["controls"]] == [c.name for c in ex.controls]
    assert root[1]["id"] in code and "</" not in spec_text
    # two explorers on one page (or a re-run cell) do not share ids
    assert html.unescape(make()._repr_html_()).count(root[1]["id"]) == 0


def test_settings_are_the_reference_kwargs():
    g, m = gate_explorer(S=10, seed=4), memory_explorer(d=6, seed=1)
    assert list(g.settings) == ["S", "seed", "igate_offset", "igate_noise", "spike_step", "spike_height",
                                "fgate_preact", "textbook_dtype"]
    assert g.settings["S"] == 10 and g.settings["spike_step"] == 10 // 3
    assert list(m.settings) == ["d", "seed", "n_pairs", "fgate_preact", "newest_igate_preact", "keys"]
    for name, ex in (("gate", g), ("memory", m)):
        ref = reference(name, ex.settings)  # the kwargs run the package function as they are
        assert all(isinstance(v, list) for v in ref.values())
    assert np.shape(reference("memory", m.settings)["C"]) == (6, 6)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="unknown explorer"):
        reference("forecast-typo", {})
    with pytest.raises(ValueError, match="S"):
        gate_explorer(S=1)
    with pytest.raises(ValueError, match="d"):
        memory_explorer(d=0)
    with pytest.raises(ValueError, match="seed"):
        memory_explorer(d=4, seed=-1)
    with pytest.raises(ValueError, match="not one of"):
        _html.Control("keys", "keys", options=("a", "b"), value="c")
    with pytest.raises(ValueError, match="min <= value <= max"):
        _html.Control("x", "x", 0.0, 1.0, 0.1, 2.0)
    with pytest.raises(ValueError, match="unique"):
        _html.Explorer("x", {"a": 1}, [_html.Control("a", "a")], {}, "")


def test_no_ipywidgets_in_widgets():
    for path in WIDGETS_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] in ("ipywidgets", "matplotlib")], path.name
    for path in WIDGETS_DIR.glob("*.js"):  # the JS is pasted into the page: no $ for MathJax
        text = path.read_text(encoding="utf-8")
        assert "$" not in text and "`" not in text and "\\(" not in text, path.name
