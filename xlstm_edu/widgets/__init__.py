"""ipywidgets explorers used in the book (import ipywidgets and matplotlib lazily)."""
