"""Tokenizers: text to integer ids and back, behind one interface, saved as JSON.

- :class:`CharTokenizer`: one id per character (the vocabulary of Karpathy's char-rnn and of
  "Tiny Shakespeare"); about 84 ids for the plays. Id 0 is reserved for characters the tokenizer was not
  fitted on.
- :class:`BPETokenizer`: byte-level byte-pair encoding (Sennrich et al. 2016; the byte-level variant of
  GPT-2, Radford et al. 2019), trained here with Hugging Face ``tokenizers``. Every string maps to
  bytes first, so there are no unknown inputs and ``decode(encode(x)) == x`` for any text.

Both share :class:`Tokenizer`: ``encode(text) -> list[int]``, ``encode_array(text) -> np.ndarray``
(int64), ``decode(ids) -> str``, ``vocab_size``, ``save(path)`` / ``load(path)``. The JSON file has a
``"type"`` field, so :func:`tokenizer_from_file` reads either kind back.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from .._progress import tqdm

__all__ = [
    "Tokenizer",
    "CharTokenizer",
    "BPETokenizer",
    "tokenizer_from_dict",
    "tokenizer_from_file",
]


def _check_text(text) -> str:
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    return text


def _as_id_list(ids, vocab_size: int) -> list[int]:
    """A 1-D sequence of ids (list, numpy array or tensor) as a list of ints in ``[0, vocab_size)``."""
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {arr.shape}; decode one sequence at a time")
    if arr.size == 0:
        return []
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= vocab_size:
        bad = lo if lo < 0 else hi
        raise ValueError(f"id {bad} is outside the vocabulary [0, {vocab_size})")
    return arr.tolist()


class Tokenizer(ABC):
    """What the training code needs from a tokenizer. Subclasses set ``type`` (the JSON tag)."""

    type: ClassVar[str]

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids: every id is in ``[0, vocab_size)``."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Text to ids."""

    @abstractmethod
    def decode(self, ids) -> str:
        """Ids (list, 1-D numpy array or 1-D tensor) to text."""

    @abstractmethod
    def to_dict(self) -> dict:
        """A JSON-serialisable description, with ``"type": self.type``."""

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict) -> Tokenizer:
        """Inverse of :meth:`to_dict`."""

    def encode_array(self, text: str) -> np.ndarray:
        """Text to a 1-D int64 array of ids (what the batch loader takes)."""
        return np.asarray(self.encode(text), dtype=np.int64)

    def save(self, path) -> None:
        """Write :meth:`to_dict` as JSON (UTF-8)."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path) -> Tokenizer:
        """Read a file written by :meth:`save`; on a subclass, the file's type must match it."""
        tok = tokenizer_from_file(path)
        if cls is not Tokenizer and not isinstance(tok, cls):
            raise ValueError(f"{path} holds a {type(tok).__name__}, not a {cls.__name__}")
        return tok


# --- characters -------------------------------------------------------------------------------------

UNK_ID = 0  # CharTokenizer's id for characters outside its vocabulary
UNK_CHAR = "\ufffd"  # ... and the character it decodes to (the Unicode replacement character)
_UNKNOWN_POLICIES = ("error", "replace")


class CharTokenizer(Tokenizer):
    """One id per character: id 0 for unknown characters, then the fitted characters in sorted order.

    Args:
        chars: the vocabulary (distinct single characters, any order; sorted here).
        unknown: what :meth:`encode` does with a character outside ``chars``: ``"error"`` raises a
            ``ValueError`` naming it, ``"replace"`` maps it to id 0 (decoded as U+FFFD).
    """

    type = "char"

    def __init__(self, chars: Iterable[str], unknown: str = "error"):
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"chars must be single characters, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("chars must be distinct")
        if UNK_CHAR in chars:
            raise ValueError(f"{UNK_CHAR!r} (U+FFFD) is reserved for unknown characters")
        if not chars:
            raise ValueError("chars must not be empty")
        if unknown not in _UNKNOWN_POLICIES:
            raise ValueError(f"unknown must be one of {_UNKNOWN_POLICIES}, got {unknown!r}")
        self.chars = sorted(chars)  # id i + 1 is chars[i]
        self.unknown = unknown
        self._itos = [UNK_CHAR, *self.chars]
        # code points, sorted, for the vectorised lookup in encode_array
        self._codes = np.array([ord(c) for c in self.chars], dtype=np.uint32)

    @classmethod
    def fit(cls, text: str, unknown: str = "error") -> CharTokenizer:
        """The vocabulary of ``text`` (U+FFFD in the text counts as unknown)."""
        return cls(set(_check_text(text)) - {UNK_CHAR}, unknown=unknown)

    @property
    def vocab_size(self) -> int:
        return len(self._itos)

    def encode_array(self, text: str) -> np.ndarray:
        codes = np.frombuffer(_check_text(text).encode("utf-32-le"), dtype=np.uint32)  # (len(text),)
        pos = np.searchsorted(self._codes, codes)  # index into self.chars where each would go
        pos_clipped = np.minimum(pos, len(self._codes) - 1)
        known = self._codes[pos_clipped] == codes
        if not known.all():
            if self.unknown == "error":
                missing = sorted({chr(c) for c in codes[~known]})
                raise ValueError(
                    f"characters not in the vocabulary: {missing[:20]!r}"
                    f"{' ...' if len(missing) > 20 else ''}; fit on more text or create the "
                    "tokenizer with unknown='replace'"
                )
        return np.where(known, pos_clipped + 1, UNK_ID).astype(np.int64)

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def decode(self, ids) -> str:
        return "".join(self._itos[i] for i in _as_id_list(ids, self.vocab_size))

    def to_dict(self) -> dict:
        return {"type": self.type, "chars": self.chars, "unknown": self.unknown}

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        return cls(d["chars"], unknown=d.get("unknown", "error"))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, unknown={self.unknown!r})"


# --- byte-level BPE ---------------------------------------------------------------------------------

# A place where a long text can be cut without changing its byte-level pre-tokens: after a single
# newline that follows a non-space and precedes a non-space (GPT-2's pre-tokenizer makes that newline a
# token of its own on both sides of the cut, and never joins it to the next word).
_SAFE_CUT = re.compile(r"(?<=\S\n)(?=\S)")


def _split_long(text: str, chunk_chars: int) -> list[str]:
    """Cut ``text`` into pieces of about ``chunk_chars`` at :data:`_SAFE_CUT` points."""
    pieces, start = [], 0
    while len(text) - start > chunk_chars:
        cut = _SAFE_CUT.search(text, start + chunk_chars)
        if cut is None:
            break
        pieces.append(text[start:cut.start()])
        start = cut.start()
    pieces.append(text[start:])
    return pieces


class BPETokenizer(Tokenizer):
    """Byte-level BPE (a Hugging Face ``tokenizers.Tokenizer`` inside).

    The text is split into GPT-2 pre-tokens (words with their leading space, runs of punctuation,
    whitespace), each pre-token into its UTF-8 bytes, and learned merges join frequent neighbours. No
    normaliser, no added prefix space, no special tokens: the ids spell the text exactly. Train one
    with :meth:`train`.
    """

    type = "bpe"
    chunk_chars = 1 << 16  # long texts are encoded in pieces of about this many characters, in parallel

    def __init__(self, hf_tokenizer):
        self.hf = hf_tokenizer

    @classmethod
    def train(cls, texts, vocab_size: int = 1024, *, min_frequency: int = 2,
              progress: bool = False) -> BPETokenizer:
        """Learn ``vocab_size - 256`` merges (at most) on ``texts`` (a string or an iterable of strings).

        ``vocab_size`` counts the 256 byte tokens; it must be at least 257. ``min_frequency``: a pair
        seen fewer times is never merged (so the vocabulary can end up smaller). ``progress`` shows the
        ``tokenizers`` progress bar.
        """
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 257:
            raise ValueError(
                f"vocab_size must be an integer >= 257 (256 bytes + merges), got {vocab_size!r}"
            )
        if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
            raise ValueError(f"min_frequency must be an integer >= 1, got {min_frequency!r}")
        texts = [texts] if isinstance(texts, str) else list(texts)
        pieces = [p for t in texts for p in _split_long(_check_text(t), cls.chunk_chars)]
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen or not
            show_progress=progress,
        )
        hf.train_from_iterator(pieces, trainer=trainer)
        return cls(hf)

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str, *, progress: bool | None = None) -> list[int]:
        """Text to ids. Long texts are cut at safe points (same ids as in one piece) and encoded in
        parallel; ``progress`` (default: for texts over 1 M characters) shows a bar."""
        pieces = _split_long(_check_text(text), self.chunk_chars)
        if len(pieces) == 1:
            return self.hf.encode(text).ids
        if progress is None:
            progress = len(text) > 1_000_000
        # encode_batch_fast (tokenizers >= 0.20) skips the character offsets we do not use
        fast = getattr(self.hf, "encode_batch_fast", self.hf.encode_batch)
        ids: list[int] = []
        group = 16  # pieces per call
        with tqdm(total=len(text), unit="char", unit_scale=True, desc="BPE encode",
                  disable=not progress) as bar:
            for g in range(0, len(pieces), group):
                batch = pieces[g:g + group]
                for enc in fast(batch):
                    ids.extend(enc.ids)
                bar.update(sum(map(len, batch)))
        return ids

    def decode(self, ids) -> str:
        return self.hf.decode(_as_id_list(ids, self.vocab_size), skip_special_tokens=False)

    def to_dict(self) -> dict:
        return {"type": self.type, "tokenizer": json.loads(self.hf.to_str())}

    @classmethod
    def from_dict(cls, d: dict) -> BPETokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        return cls(HFTokenizer.from_str(json.dumps(d["tokenizer"])))

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


# --- reading either kind ----------------------------------------------------------------------------

_TYPES: dict[str, type[Tokenizer]] = {CharTokenizer.type: CharTokenizer, BPETokenizer.type: BPETokenizer}


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Rebuild a tokenizer from :meth:`Tokenizer.to_dict`, dispatching on ``d["type"]``."""
    if not isinstance(d, dict) or "type" not in d:
        raise ValueError("a tokenizer description must be a dict with a 'type' field")
    if d["type"] not in _TYPES:
        raise ValueError(f"unknown tokenizer type {d['type']!r}; known: {sorted(_TYPES)}")
    return _TYPES[d["type"]].from_dict(d)


def tokenizer_from_file(path) -> Tokenizer:
    """Read a tokenizer saved with :meth:`Tokenizer.save` (either kind)."""
    return tokenizer_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
