"""ipywidgets explorers used in the book (ipywidgets imported lazily; the figures they redraw are
in :mod:`xlstm_edu.figures`, the data they show in :mod:`xlstm_edu.experiments`)."""
