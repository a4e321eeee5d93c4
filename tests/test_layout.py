"""The package's layout: no import cycles, lower layers never import higher ones, matplotlib only in
``figures``, and ``import xlstm_edu`` stays light.

The import graph is read statically from the source (every ``import`` and ``from ... import``,
including those inside functions), so a cycle hidden behind a lazy import is found too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "xlstm_edu"

#: The layers, bottom up. A module may import modules of its own layer and of the layers below.
LAYERS = [
    {"_checks", "_numba", "_progress", "notebook"},  # helpers every layer may use
    {"gating", "lstm", "slstm", "mlstm", "minrnn"},  # cells
    {"blocks", "official"},  # blocks; adapters to the official packages (they mirror the blocks)
    {"models"},
    {"data", "timing", "results"},
    {"training", "bench"},
    {"experiments"},
    {"figures", "widgets"},
    {"cli", "__main__"},
]
CELLS = {"gating", "lstm", "slstm", "mlstm", "minrnn"}
DRAWING = {"matplotlib", "ipywidgets", "IPython", "anywidget", "plotly"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (``from . import x`` resolved)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module
            out.add(prefix)
            out.update(f"{prefix}.{alias.name}" for alias in node.names)  # submodules imported by name
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path) if m in modules and m != name}
    return graph


GRAPH = _graph()


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    top = _top(module)
    for j, layer in enumerate(LAYERS):
        if top in layer:
            return j
    raise AssertionError(f"{module}: its top-level name {top!r} is in no layer of LAYERS; add it")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _package_edges() -> dict[str, set[str]]:
    """The graph with packages' ``__init__`` re-exports left out: ``xlstm_edu.mlstm`` importing its own
    submodules is how a package is built, not a cycle between layers."""
    return {m: {d for d in deps if not (m.startswith(d + ".") or d.startswith(m + "."))}
            for m, deps in GRAPH.items()}


def test_the_graph_is_read():
    assert "xlstm_edu.mlstm.chunkwise_form" in GRAPH
    assert "xlstm_edu.gating" in GRAPH["xlstm_edu.mlstm.recurrent_form"]


def test_no_import_cycles():
    cycles = _cycles(_package_edges())
    assert not cycles, f"import cycles: {cycles}"


def test_cycle_detection_finds_a_cycle():
    """A negative control for the test above."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_lower_layers_never_import_higher_ones(module):
    if module == "xlstm_edu":
        return  # the package's __init__ re-exports the public layers
    mine = _layer(module)
    higher = sorted(d for d in GRAPH[module] if d != "xlstm_edu" and _layer(d) > mine)
    assert not higher, f"{module} (layer {mine}) imports higher layers: {higher}"


def test_cells_import_no_drawing_widgets_or_experiments():
    for module, path in ((m, p) for m, p in ((_module_name(p), p) for p in PACKAGE.rglob("*.py"))
                         if _top(m) in CELLS):
        imported = _imports(path)
        bad = sorted(i for i in imported if i.split(".")[0] in DRAWING
                     or _top(i) in {"experiments", "figures", "widgets", "bench", "cli"}
                     and i.startswith("xlstm_edu"))
        assert not bad, f"cell module {module} imports {bad}"


def test_matplotlib_only_in_figures():
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        uses = sorted(i for i in _imports(path) if i.split(".")[0] == "matplotlib")
        if _top(module) != "figures":
            assert not uses, f"{module} imports {uses}: matplotlib belongs in xlstm_edu.figures"


def test_import_xlstm_edu_stays_light():
    """A fresh interpreter: importing the package loads the cells, blocks and models only."""
    code = ("import sys, xlstm_edu; heavy = " + repr(sorted(DRAWING | {"xlstm", "mlstm_kernels",
                                                                        "tokenizers", "safetensors"}))
            + "; print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or "
              "m.split('.')[:2] in (['xlstm_edu', 'experiments'], ['xlstm_edu', 'figures'], "
              "['xlstm_edu', 'training'], ['xlstm_edu', 'widgets'])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
