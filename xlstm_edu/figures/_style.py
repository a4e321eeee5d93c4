"""Helpers shared by the figure modules: the book's text width and fonts, lazy pyplot, a readability
check.

matplotlib is imported inside the functions, so importing this module does not import it.

The book shows a figure the way the notebook's inline backend saves it (PNG, ``dpi=100``,
``bbox_inches="tight"``). A saved figure wider than the text column (:data:`TEXT_WIDTH_PX`) is scaled
down to it, and its text with it; so every figure here is at most :data:`TEXT_WIDTH_IN` wide, panels
are stacked rather than put side by side, and every text is at least :data:`MIN_FONT_PT`.
:func:`readability_problems` checks both on a drawn figure.
"""

from __future__ import annotations

#: Width of the book's text column in pixels; a figure wider than this is shown scaled down to it.
TEXT_WIDTH_PX = 784

#: The resolution the book's figures are rendered at (matplotlib's default ``figure.dpi``).
DPI = 100

#: The smallest font size (points) of any text in a figure: 9 pt at 100 dpi is 12.5 px, the size of
#: the body's small print.
MIN_FONT_PT = 9.0

#: The widest figure (inches) that is shown unscaled, with room for the tight bounding box's padding.
TEXT_WIDTH_IN = 7.6

#: matplotlib settings of the book's figures (applied by :func:`pyplot` on first use): text 10 pt,
#: tick labels and legends 9 pt, titles 10.5 pt.
BOOK_RC = {
    "font.size": 10.0,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10.0,
    "xtick.labelsize": 9.0,
    "ytick.labelsize": 9.0,
    "legend.fontsize": 9.0,
    "legend.title_fontsize": 9.0,
    "figure.titlesize": 11.0,
}

_rc_applied = False


def pyplot():
    """``matplotlib.pyplot``, imported on first use; the first call also applies :data:`BOOK_RC`."""
    global _rc_applied
    import matplotlib.pyplot as plt

    if not _rc_applied:
        plt.rcParams.update(BOOK_RC)
        _rc_applied = True
    return plt


def saved_size_px(fig, dpi: float = DPI) -> tuple[int, int]:
    """Width and height (pixels) of ``fig`` saved as the inline backend saves it (PNG at ``dpi``,
    ``bbox_inches="tight"``), read from the PNG header."""
    import io
    import struct

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    head = buf.getvalue()[16:24]  # the IHDR chunk: width, height (big-endian)
    width, height = struct.unpack(">II", head)
    return width, height


def _drawn_texts(fig):
    """``(text, fontsize in points, window extent, artist)`` of every text the renderer draws when
    ``fig`` is drawn (tick labels, legends, annotations, titles, colorbar labels, mathtext)."""
    from matplotlib.backends.backend_agg import RendererAgg

    renderer = RendererAgg(fig.bbox.width, fig.bbox.height, fig.dpi)
    drawn = []
    draw_text, draw_tex = renderer.draw_text, renderer.draw_tex

    def record_text(gc, x, y, s, prop, angle, ismath=False, mtext=None):
        drawn.append((s, prop.get_size_in_points(), mtext))
        return draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    def record_tex(gc, x, y, s, prop, angle, *, mtext=None):
        drawn.append((s, prop.get_size_in_points(), mtext))
        return draw_tex(gc, x, y, s, prop, angle, mtext=mtext)

    renderer.draw_text, renderer.draw_tex = record_text, record_tex
    fig.draw(renderer)
    return drawn, renderer


def _overlapping_tick_labels(fig, renderer) -> list[str]:
    """Tick labels of one axis that overlap each other."""
    problems = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            lo, hi = sorted(axis.get_view_interval())
            labels = []
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - 1e-9 * (hi - lo) <= tick.get_loc() <= hi + 1e-9 * (hi - lo):
                    continue
                for t in (tick.label1, tick.label2):
                    if t.get_visible() and t.get_text().strip():
                        labels.append(t)
            extents = [(t.get_text(), t.get_window_extent(renderer)) for t in labels]
            for j, (a, ea) in enumerate(extents):
                for b, eb in extents[j + 1:]:
                    inter = ea.intersection(ea, eb)
                    if inter is not None and inter.width > 0.5 and inter.height > 0.5:
                        problems.append(f"{name} tick labels {a!r} and {b!r} overlap"
                                        f" (axes {ax.get_title()!r})")
    return problems


def readability_problems(fig, *, dpi: float = DPI, max_width_px: int = TEXT_WIDTH_PX,
                         min_font_pt: float = MIN_FONT_PT) -> list[str]:
    """What makes ``fig`` hard to read in the book, as a list of sentences (empty: none).

    * saved as the inline backend saves it (:func:`saved_size_px`), it is wider than ``max_width_px``
      (the page would scale it, and its text, down);
    * a text that is drawn (tick labels, legend entries, annotations, titles, colorbar labels; empty
      and invisible ones are not drawn) is smaller than ``min_font_pt`` points;
    * two tick labels of one axis overlap.
    """
    problems = []
    width, _ = saved_size_px(fig, dpi)
    if width > max_width_px:
        problems.append(f"saved {width} px wide (at most {max_width_px}); figsize "
                        f"{fig.get_figwidth():.2f} x {fig.get_figheight():.2f} in")
    drawn, renderer = _drawn_texts(fig)
    for s, size, _ in drawn:
        if s.strip() and size < min_font_pt - 1e-9:
            problems.append(f"text {s!r} is {size:g} pt (at least {min_font_pt:g})")
    problems += _overlapping_tick_labels(fig, renderer)
    return problems
