"""Tests for bltlib.tokenizers: the in-memory BPE baseline, edit distance."""
from __future__ import annotations

import random

import pytest

from bltlib.tokenizers import UNK_PIECE, WORD_START, edit_distance, train_bpe

pytest.importorskip("sentencepiece")


def _corpus(n: int = 1500, seed: int = 0) -> list[str]:
    """Sentences of made-up lowercase words: a stand-in for real text."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                     for _ in range(rng.randint(2, 8))) for _ in range(300)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 12)))
            .capitalize() + "." for _ in range(n)]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return _corpus()


def test_edit_distance_basics():
    assert edit_distance("", "") == 0
    assert edit_distance("abc", "") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("world", "wrold") == 2  # a swap is two edits
    assert edit_distance([1, 2, 3], [1, 9, 3]) == 1
    assert edit_distance(b"abc", b"abd") == 1


def test_edit_distance_symmetric_and_bounded():
    rng = random.Random(1)
    for _ in range(50):
        a = [rng.randint(0, 3) for _ in range(rng.randint(0, 9))]
        b = [rng.randint(0, 3) for _ in range(rng.randint(0, 9))]
        d = edit_distance(a, b)
        assert d == edit_distance(b, a)
        assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))


def test_train_bpe_roundtrip_and_size(corpus):
    sp = train_bpe(corpus, 200)
    assert sp.get_piece_size() == 200
    for line in corpus[:20]:
        assert sp.decode(sp.encode(line)) == line
    # merges compress: fewer pieces than characters on training text
    n_pieces = sum(len(sp.encode(s)) for s in corpus[:100])
    n_chars = sum(len(s) for s in corpus[:100])
    assert n_pieces < 0.7 * n_chars


def test_train_bpe_is_deterministic(corpus):
    a = train_bpe(corpus, 150).serialized_model_proto()
    b = train_bpe(corpus, 150).serialized_model_proto()
    assert a == b


def test_unseen_script_unk_vs_byte_fallback(corpus):
    text = "мир"  # Cyrillic: never seen in the corpus
    plain = train_bpe(corpus, 200)
    pieces = plain.encode(text, out_type=str)
    assert UNK_PIECE in [plain.id_to_piece(i) for i in plain.encode(text)]
    assert pieces[0] == WORD_START
    assert plain.decode(plain.encode(text)) != text  # information is lost

    fb = train_bpe(corpus, 400, byte_fallback=True)
    pieces = fb.encode(text, out_type=str)
    assert pieces == [WORD_START] + [f"<0x{b:02X}>" for b in text.encode()]
    assert fb.decode(fb.encode(text)) == text  # lossless, byte by byte


def test_train_bpe_rejects_empty_input():
    with pytest.raises(ValueError):
        train_bpe(["", "  "], 100)


def test_extra_whitespace_squeezed_by_default(corpus):
    text = "abc  de"
    squeeze = train_bpe(corpus, 200)
    keep = train_bpe(corpus, 200, remove_extra_whitespaces=False)
    assert squeeze.decode(squeeze.encode(text)) == "abc de"
    assert keep.decode(keep.encode(text)) == text
