"""Bibliography labels that match the book's author-year citations.

The default pybtex style (``alpha``) labels entries like ``[BPoppelLH25]``, built from the raw BibTeX
names, while the text cites ``(Beck et al., 2024)``. This Sphinx extension registers the pybtex style
``author_year``: the ``plain`` formatting with labels written the way the text cites, "Beck et al.,
2024" (one author: "Kohonen, 1972"; two: "Anderson and Rosenfeld, 1988"). Entries that would get the
same label are told apart by the letter already in their ``year`` field (2025a, 2025b), which the
in-text citations show too; a clash left over gets a letter here, so two entries never share a label.
"""

from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.sorting import BaseSortingStyle


def _last_name(person) -> str:
    """The last name as printed: LaTeX accents decoded (``P{\\"o}ppel`` -> ``Pöppel``)."""
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels "Surname, year", "A and B, year" or "A et al., year"."""

    def format_labels(self, sorted_entries):
        labels = [self.format_label(entry) for entry in sorted_entries]
        count, seen = Counter(labels), Counter()
        for label in labels:
            if count[label] == 1:
                yield label
            else:
                yield label + chr(ord("a") + seen[label])
                seen[label] += 1

    def format_label(self, entry) -> str:
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [_last_name(p) for p in persons]
        if not names:
            who = entry.fields.get("key", entry.key)
        elif len(names) == 1:
            who = names[0]
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = f"{names[0]} et al."
        year = entry.fields.get("year", "")
        return f"{who}, {year}" if year else who


class FirstAuthorYearSortingStyle(BaseSortingStyle):
    """Sorted by first author, then year, then title: the order of an author-year reference list."""

    def sorting_key(self, entry):
        persons = entry.persons.get("author") or entry.persons.get("editor") or []
        first = _last_name(persons[0]).lower() if persons else entry.key
        return first, entry.fields.get("year", ""), entry.fields.get("title", "").lower()


class AuthorYearStyle(PlainStyle):
    default_label_style = AuthorYearLabelStyle
    default_sorting_style = FirstAuthorYearSortingStyle


def setup(app):
    register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
