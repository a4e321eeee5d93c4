"""Helpers for the book's notebooks.

The chapters show package code instead of copying it: ``show_source(xlstm_edu.mlstm.recurrent)``
renders the function's real source, so the text and the package cannot drift apart.
IPython is imported lazily, inside the function, so importing ``xlstm_edu`` stays light.
"""

from __future__ import annotations

import inspect
import re
import textwrap


def _in_ipython() -> bool:
    """True when running inside an IPython shell or a Jupyter kernel."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    return get_ipython() is not None


def show_source(obj: object) -> None:
    """Display the source code of a function, class, method or module.

    In Jupyter (or any IPython shell) the source is shown as a syntax-highlighted ``python`` code
    block; elsewhere it is printed. Returns ``None``, so a call as the last line of a cell shows the
    code once.

    >>> import xlstm_edu
    >>> xlstm_edu.show_source(xlstm_edu.show_source)  # doctest: +SKIP
    """
    source = textwrap.dedent(inspect.getsource(obj)).rstrip("\n")
    if not _in_ipython():
        print(source)
        return
    from IPython.display import Markdown, display

    # A fence longer than any run of backticks in the source, so it cannot end the block early.
    longest = max((len(run) for run in re.findall(r"`+", source)), default=0)
    fence = "`" * max(3, longest + 1)
    display(Markdown(f"{fence}python\n{source}\n{fence}"))
