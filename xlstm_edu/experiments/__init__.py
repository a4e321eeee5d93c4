"""Experiments behind the book's figures, one module per chapter (kept testable, out of notebooks).

Pure computations, data in and data out: they draw nothing (the figures that show their results are
in :mod:`xlstm_edu.figures`, which imports these modules, never the other way round); the cells
(``xlstm_edu.lstm``, ``gating``, ``slstm``, ``mlstm``) never import them.
"""
