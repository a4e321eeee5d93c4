"""Self-contained HTML explorers: controls, an SVG figure and the code that redraws it, in one output.

An explorer is an object with ``_repr_html_`` (and ``_repr_mimebundle_``), so a notebook cell that
ends with it shows it in Jupyter, Colab and the book's static pages alike. Its HTML needs no kernel,
no network and no external file: moving a control recomputes and redraws the figure in the browser.
The math stays in Python: the JavaScript implements only the small recurrence the figure shows, on
data (seeded noise, random keys) that Python draws with the very functions of the package reference,
and the tests compare what the JavaScript computes with that reference.

How to build one (``xlstm_edu/widgets/gating.py`` is a complete example)::

    from ._html import Control, Explorer, load_js

    def my_explorer(S=24, seed=0):
        return Explorer(
            name="mine",                                   # data-explorer="mine"; a key of REFERENCES
            fixed=dict(S=S, seed=seed),                    # reference kwargs that no control changes
            controls=[Control("offset", "input offset", -5.0, 5.0, 0.5, 0.0),
                      Control("dtype", "float type", options=("float64", "float32"), value="float32")],
            data=dict(noise=noise.tolist()),               # what the JS needs, drawn by Python
            js=load_js("mine.js"),                         # defines compute() and draw() (see below)
            title="what the figure shows")

    def reference(settings):                               # the same series, from the package
        return {"curve": package_function(**settings)["curve"].tolist()}

and add ``"mine": mine.reference`` to :data:`xlstm_edu.widgets.REFERENCES`.

``mine.js`` defines two functions (plain ES2017, no modules, no template literals; it is pasted after
``_explorer.js``, the shared runtime, inside one function scope, so the runtime's helpers are in scope
and nothing becomes global):

* ``compute(settings, data)`` -> ``{series_name: number[] | number[][], ...}``: pure, no DOM, so the
  tests run it under node (:func:`run_in_node`). For an explorer that only shows precomputed results
  (say a forecast per horizon), ``compute`` just picks them out of ``data``.
* ``draw(settings, data, result, fig)`` -> SVG markup (a string). ``fig`` is ``{uid, width}``: a
  unique id prefix (for clip paths) and the width to lay out for (the column's, 480 to 784 px; redrawn
  when it changes, never scaled). Build the markup with the runtime: ``svgFigure(width, height, body,
  label)``, ``linePanel({x, y, w, h, id, title, xlabel, ylabel, xs, ylim, series})`` (each series
  ``{name, label, values, color, line, marker, dash, bars}``; ``name`` sets ``data-series``) and
  ``heatmapPanel({x, y, w, h, title, name, matrix, xlabel, ylabel})``: axes, ticks, legend, text of
  at least 12 px. Also there: ``rounder(dtype)``/``caster(dtype)``/``roundHalf`` (float32 and float16
  arithmetic as numpy does it), ``jsonSafe``, ``fmt``, ``esc``.

A test then compares ``run_in_node(explorer, settings_list)`` with ``reference`` for a few settings,
extreme ones included (``tests/test_widgets.py`` shows how, and checks the drawn markup too).

The contract with the browser test (``browser_tests/test_book_pages.py``) and the tests here:

1. The root is ``<div class="xlstm-explorer" data-explorer="NAME" id="UID">``; every control is a
   labelled ``<input type="range">`` (a ``<label for>`` and an ``aria-label``) that the arrow keys
   move. A categorical control (``options``) is a range of integer steps ``0 .. len(options) - 1``;
   its shown value and ``aria-valuetext`` are the option's name.
2. After every redraw the root has ``data-settings`` = JSON of the keyword arguments of the Python
   reference for the current control values: ``fixed`` followed by one entry per control (its number,
   or its option's name).
3. Every drawn series is one SVG element with ``data-series="name"`` and ``data-values`` = JSON list of
   the values in data coordinates (``null`` for NaN and infinities); a heatmap is one element with the
   flattened (row-major) matrix in ``data-values`` and ``data-shape`` = ``[rows, columns]``.
4. ``xlstm_edu.widgets.reference(NAME, settings)`` returns ``{series_name: list}`` computed by the
   package for those settings; every series it returns is drawn under the same name.

The text contains no ``$`` and no backslash-parenthesis (MathJax would typeset them), the JSON data sit
in a ``<script type="application/json">`` with ``<``, ``>`` and ``&`` escaped, and the script finds its
root as the explorer around ``document.currentScript`` (the unique id as a fallback) and touches nothing
outside it, so two explorers on one page and a re-run cell work independently.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources

#: The widest figure the book's text column shows unscaled (pixels); the SVGs are at most this wide.
FIGURE_WIDTH_PX = 784

_counter = itertools.count()


@dataclass(frozen=True)
class Control:
    """One range input. Numeric: ``min``, ``max``, ``step``, ``value``. Categorical: ``options`` (the
    names) and ``value`` (one of them); the input then moves over the integers ``0 .. len - 1``."""

    name: str  # the keyword argument of the reference that this control sets
    label: str  # what the reader sees next to the control
    min: float = 0.0
    max: float = 1.0
    step: float = 1.0
    value: float | str = 0.0
    options: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.options is not None:
            if self.value not in self.options:
                raise ValueError(f"control {self.name!r}: value {self.value!r} is not one of "
                                 f"{self.options}")
        elif not (self.min <= self.value <= self.max and self.step > 0):
            raise ValueError(f"control {self.name!r}: need min <= value <= max and step > 0, got "
                             f"{self.min}, {self.value}, {self.max}, step {self.step}")

    def spec(self) -> dict:
        """The control as the runtime reads it (JSON)."""
        return dict(name=self.name, label=self.label, options=list(self.options or []) or None)

    def input_html(self, uid: str) -> str:
        """``<label>``, ``<input type="range">`` and the ``<output>`` that shows the value."""
        cid = f"{uid}-{self.name}"
        if self.options is not None:
            lo, hi, step = 0, len(self.options) - 1, 1
            value, shown = self.options.index(self.value), self.value
        else:
            lo, hi, step, value, shown = self.min, self.max, self.step, self.value, self.value
        label = html.escape(self.label)
        return (f'<div class="xe-control"><label for="{cid}">{label}</label>'
                f'<input type="range" id="{cid}" data-name="{self.name}" min="{lo}" max="{hi}" '
                f'step="{step}" value="{value}" aria-label="{label}" aria-valuetext="{shown}">'
                f'<output for="{cid}">{html.escape(str(shown))}</output></div>')


def load_js(name: str) -> str:
    """The text of a JavaScript file shipped in this package (``xlstm_edu/widgets/NAME``)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _json_for_script(obj) -> str:
    """JSON that is safe inside ``<script>`` (no ``</script>``, no entity) and has no NaN."""
    text = json.dumps(obj, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def finite_or_none(values) -> list:
    """A flat or nested list of floats with NaN and infinities as ``None`` (the contract's ``null``)."""
    if isinstance(values, (list, tuple)):
        return [finite_or_none(v) for v in values]
    if hasattr(values, "tolist"):
        return finite_or_none(values.tolist())
    v = float(values)
    return v if math.isfinite(v) else None


_CSS = """
.xlstm-explorer{max-width:784px;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 font-size:14px;color:#222;margin:0.5em 0}
.xlstm-explorer .xe-title{font-weight:600;margin:0 0 0.3em 0}
.xlstm-explorer .xe-controls{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));
 gap:2px 14px;margin-bottom:6px}
.xlstm-explorer .xe-control{display:grid;align-items:center;gap:6px;
 grid-template-columns:190px minmax(60px,1fr) minmax(64px,auto)}
.xlstm-explorer .xe-control label{font-size:13px}
.xlstm-explorer .xe-control input{width:100%;margin:0}
.xlstm-explorer .xe-control output{font-size:13px;font-variant-numeric:tabular-nums}
.xlstm-explorer .xe-figure svg{display:block;max-width:100%;height:auto}
"""


class Explorer:
    """A self-contained HTML explorer (see the module docstring for the contract).

    Args:
        name: the explorer's name (``data-explorer``; the key of its reference).
        fixed: keyword arguments of the reference that no control changes (JSON-able).
        controls: the :class:`Control` list, in the order the settings list them.
        data: JSON-able data for ``compute`` (no NaN or infinities).
        js: source defining ``compute(settings, data)`` and ``draw(settings, data, result, fig)``.
        title: one line shown above the controls.
    """

    def __init__(self, name: str, fixed: dict, controls: list[Control], data: dict, js: str,
                 title: str = ""):
        names = [c.name for c in controls]
        if len(set(names)) != len(names) or set(names) & set(fixed):
            raise ValueError(f"control names must be unique and not in fixed, got {names} and "
                             f"{sorted(fixed)}")
        self.name, self.fixed, self.controls, self.data, self.js = name, dict(fixed), controls, data, js
        self.title = title

    @property
    def settings(self) -> dict:
        """The reference's keyword arguments at the controls' initial values."""
        return {**self.fixed, **{c.name: c.value for c in self.controls}}

    def spec(self) -> dict:
        """What the runtime reads: fixed settings, the controls, the data."""
        return dict(name=self.name, fixed=self.fixed, controls=[c.spec() for c in self.controls],
                    data=self.data)

    def script(self, uid: str) -> str:
        """The inline script: runtime, explorer code and the call that mounts it on ``uid``."""
        return ("(function(){\n'use strict';\n" + load_js("_explorer.js") + "\n" + self.js
                + f"\nmount(document.getElementById({json.dumps(uid)}), compute, draw);\n}})();")

    def to_html(self, uid: str | None = None) -> str:
        """The explorer's HTML: root, controls, figure, data and script."""
        uid = uid or f"xlstm-explorer-{self.name}-{next(_counter)}-{id(self) % 100000}"
        controls = "".join(c.input_html(uid) for c in self.controls)
        title = f'<div class="xe-title">{html.escape(self.title)}</div>' if self.title else ""
        return (f'<div class="xlstm-explorer" data-explorer="{self.name}" id="{uid}">'
                f"<style>{_CSS}</style>{title}"
                f'<div class="xe-controls">{controls}</div>'
                '<div class="xe-figure"><em>(this figure is drawn by JavaScript in the page)</em></div>'
                '<script type="application/json" class="xe-spec">'
                f"{_json_for_script(self.spec())}</script>"
                f"<script>{self.script(uid)}</script></div>")

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {"text/html": self.to_html(), "text/plain": repr(self)}

    def __repr__(self) -> str:
        return f"<{self.name} explorer: {json.dumps(self.settings)}>"


def run_in_node(explorer: Explorer, settings_list: list[dict], *, draw: bool = False,
                node: str | None = None) -> list:
    """Run the explorer's ``compute`` (and, with ``draw``, its ``draw``) under node for each settings
    dict. Returns a list of ``result`` dicts, or of ``(result, svg)`` with ``draw``. For tests."""
    node = node or shutil.which("node")
    if node is None:
        raise ValueError("node is not installed (needed to run the explorer's JavaScript)")
    harness = (
        "'use strict';\n" + load_js("_explorer.js") + "\n" + explorer.js + "\n"
        + f"const SPEC = {json.dumps(explorer.spec())};\n"
        + f"const CASES = {json.dumps(settings_list)};\n"
        + "const out = CASES.map(s => { const r = compute(s, SPEC.data);\n"
        + "  const keep = {}; for (const k of Object.keys(r)) keep[k] = jsonSafe(r[k]);\n"
        + ("  return [keep, draw(s, SPEC.data, r, {uid: 'test', width: FIGURE_WIDTH})];"
           if draw else "  return keep;")
        + "});\nprocess.stdout.write(JSON.stringify(out));\n")
    proc = subprocess.run([node, "-"], input=harness, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"node failed:\n{proc.stderr}")
    return json.loads(proc.stdout)
