"""Helpers shared by the figure modules: the book's text width, lazy pyplot, showing in a widget.

matplotlib is imported inside the functions, so importing this module does not import it.
"""

from __future__ import annotations

#: Width of the book's text column in pixels; a figure wider than this is shown scaled down to it.
TEXT_WIDTH_PX = 784

#: The resolution the book's figures are rendered at (matplotlib's default ``figure.dpi``).
DPI = 100

#: The smallest font size (points, after the book's scaling) the figures aim for.
MIN_FONT_PT = 9.0


def pyplot():
    """``matplotlib.pyplot``, imported on first use."""
    import matplotlib.pyplot as plt

    return plt


def show_in_output(fig, out) -> None:
    """Show ``fig`` in the ipywidgets ``Output`` ``out`` (replacing what it showed), then close it,
    so that a redrawing widget does not pile up open figures."""
    from IPython.display import display

    with out:
        out.clear_output(wait=True)
        display(fig)
    pyplot().close(fig)
