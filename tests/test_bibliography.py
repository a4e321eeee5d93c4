"""The bibliography: labels in the author-year form the text cites, and no two entries cited alike."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

pybtex = pytest.importorskip("pybtex")
from pybtex.database import parse_file  # noqa: E402

BOOK = Path(__file__).resolve().parents[1] / "book"


def _labels_module():
    spec = importlib.util.spec_from_file_location("author_year_labels",
                                                  BOOK / "_ext" / "author_year_labels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _labels() -> dict[str, str]:
    mod = _labels_module()
    entries = parse_file(str(BOOK / "references.bib")).entries
    ordered = mod.FirstAuthorYearSortingStyle().sort(list(entries.values()))
    labels = mod.AuthorYearLabelStyle().format_labels(ordered)
    return {e.key: label for e, label in zip(ordered, labels)}


def test_labels_are_author_year_and_readable():
    labels = _labels()
    assert labels["beck2024xlstm"] == "Beck et al., 2024"
    assert labels["hochreiter1997lstm"] == "Hochreiter and Schmidhuber, 1997"
    assert labels["kohonen1972correlation"] == "Kohonen, 1972"
    form = re.compile(r"^[^\W\d][\w\-' ]* ?(et al\.| and [^\W\d][\w\-' ]*)?, \d{4}[a-z]?$")
    for key, label in labels.items():
        assert form.match(label), (key, label)  # no raw LaTeX ({\"o}), no alpha codes (BPoppelLH25)


def test_no_two_entries_share_a_citation():
    labels = _labels()
    assert len(set(labels.values())) == len(labels), labels
    # the in-text citation is the author part and the year field: distinct too (2025a / 2025b)
    assert labels["beck2025tfla"] != labels["beck2025xlstm7b"]


def test_clashing_labels_get_letters():
    mod = _labels_module()
    from pybtex.database import Entry, Person

    def entry(title):
        e = Entry("misc", fields={"year": "2025", "title": title})
        e.persons["author"] = [Person("Beck, M."), Person("Lippe, P."), Person("Hochreiter, S.")]
        return e

    assert list(mod.AuthorYearLabelStyle().format_labels([entry("A"), entry("B")])) == [
        "Beck et al., 2025a", "Beck et al., 2025b"]
