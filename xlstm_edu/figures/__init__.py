"""The book's figures: the only place in ``xlstm_edu`` that imports matplotlib (always inside the
functions, so ``import xlstm_edu.figures`` does not import it).

One module per chapter topic, and :mod:`~xlstm_edu.figures.cells` for the cell diagrams that
chapters 02, 04 and 05 share: :mod:`~xlstm_edu.figures.lstm`, :mod:`~xlstm_edu.figures.gating`,
:mod:`~xlstm_edu.figures.slstm`, :mod:`~xlstm_edu.figures.mlstm`,
:mod:`~xlstm_edu.figures.parallel_forms`, :mod:`~xlstm_edu.figures.blocks`,
:mod:`~xlstm_edu.figures.language_model`, :mod:`~xlstm_edu.figures.state_tracking`,
:mod:`~xlstm_edu.figures.recall`. Each draws what the matching
:mod:`xlstm_edu.experiments` module computes (data in, a matplotlib figure or axes out) and never
re-derives it; the experiments never import the figures.
"""

