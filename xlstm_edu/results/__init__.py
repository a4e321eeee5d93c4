"""Stored results of the book's experiments, shipped inside the package.

Every stored result a chapter loads is made by ``python -m xlstm_edu experiment NAME [--quick]
[--out FILE.json]`` (:mod:`xlstm_edu.experiments.registry`) and saved here as ``NAME.json``, so a
chapter opened alone (in Colab, say) finds it with :func:`load`. One schema for all of them::

    {"settings": {"experiment": NAME, "command": ..., "quick": ..., "seed": ..., "device": ...,
                  "xlstm_edu": version, "torch": version, "python": version, "machine": {...},
                  "wall_s": seconds, ...the experiment's own settings...},
     "results": [{"metric": ..., "value": ..., ...keys that identify the row (model, task, step)...},
                 ...]}

Rows are flat: every value is a number, a string, a bool or null (no nested objects), so a table or a
plot is a filter over rows (:func:`select`).
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

#: Keys every ``settings`` object has.
SETTINGS_KEYS = ("experiment", "command", "quick", "seed", "device", "xlstm_edu", "torch", "python",
                 "wall_s")

_SCALARS = (str, int, float, bool, type(None))


def stored_path(name: str):
    """The stored result ``NAME.json`` inside the installed package (a ``Traversable``)."""
    return resources.files(__name__) / f"{name}.json"


def load(name_or_path) -> dict:
    """A result: the stored one of experiment ``name`` (e.g. ``"language-model"``), or the JSON file at
    a path (anything with a ``/`` or ending in ``.json``). Checked with :func:`validate`."""
    text = str(name_or_path)
    if text.endswith(".json") or "/" in text or os.sep in text:
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"{path}: no such result file")
        raw = path.read_text(encoding="utf-8")
    else:
        path = stored_path(text)
        if not path.is_file():
            known = sorted(p.name[:-5] for p in resources.files(__name__).iterdir()
                           if p.name.endswith(".json"))
            raise ValueError(f"no stored result {text!r}; stored: {known}")
        raw = path.read_text(encoding="utf-8")
    try:
        result = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    validate(result, str(path))
    return result


def validate(result, where: str = "result") -> None:
    """``ValueError`` unless ``result`` follows the schema of the module docstring."""
    if not isinstance(result, dict) or set(result) != {"settings", "results"}:
        raise ValueError(f"{where}: must be an object with exactly 'settings' and 'results'")
    settings, rows = result["settings"], result["results"]
    if not isinstance(settings, dict):
        raise ValueError(f"{where}: 'settings' must be an object")
    missing = [k for k in SETTINGS_KEYS if k not in settings]
    if missing:
        raise ValueError(f"{where}: settings lack {missing}")
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{where}: 'results' must be a non-empty list of rows")
    for j, row in enumerate(rows):
        if not isinstance(row, dict) or not {"metric", "value"} <= set(row):
            raise ValueError(f"{where}: row {j} must be an object with 'metric' and 'value'")
        nested = [k for k, v in row.items() if not isinstance(v, _SCALARS)]
        if nested:
            raise ValueError(f"{where}: row {j} is not flat (keys {nested} hold objects or lists)")


def check_result_path(path) -> Path:
    """``path`` can take a result file: not a directory, in a folder that exists and is writable."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name like result.json")
    if path.suffix != ".json":
        raise ValueError(f"{path}: a result file ends in .json")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{parent} does not exist (or is not a directory)")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{parent} is not writable")
    return path


def write(path, result: dict) -> Path:
    """Write ``result`` (checked first) to ``path`` as indented JSON, atomically: a crash leaves the
    old file whole."""
    path = check_result_path(path)
    validate(result, str(path))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def select(result: dict, **keys) -> list[dict]:
    """The rows whose entries equal all of ``keys`` (e.g. ``select(r, metric="final_val_loss")``)."""
    return [row for row in result["results"] if all(row.get(k) == v for k, v in keys.items())]


def value(result: dict, **keys):
    """The ``value`` of the one row matching ``keys``; ``ValueError`` if none or several match."""
    rows = select(result, **keys)
    if len(rows) != 1:
        raise ValueError(f"{len(rows)} rows match {keys}, expected exactly one")
    return rows[0]["value"]
