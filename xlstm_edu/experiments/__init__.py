"""Experiments behind the book's figures, one module per chapter (kept testable, out of notebooks).

These may import matplotlib lazily; the cells (``xlstm_edu.lstm``, ``gating``, ``slstm``, ``mlstm``)
never import them.
"""
