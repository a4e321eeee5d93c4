"""Progress bars for the package's slow loops: tqdm's notebook bars where ipywidgets is installed, its
text bars everywhere else. (``tqdm.auto`` alone warns at import, in every Jupyter kernel without
ipywidgets, such as the book's build; the book's pages have no ipywidgets.)"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("ipywidgets") is not None:
    from tqdm.auto import tqdm, trange
else:
    from tqdm.std import tqdm, trange

__all__ = ["tqdm", "trange"]
