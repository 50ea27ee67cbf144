"""Byte vocabulary, encode/decode and the streaming UTF-8 decoder."""
import pytest

from bltlib import bytes as B

TRICKY = ["", "plain ASCII", "naïve café", "Ελληνικά", "日本語のテキスト",
          "emoji 🙂👍🏽", "mixed\r\nnew\nlines\r", "tab\tand\x00nul",
          "Наука", "مرحبا", "Tiếng Việt"]


def test_vocab_layout():
    assert B.VOCAB_SIZE == 260
    assert len({B.PAD_ID, B.BOS_ID, B.EOS_ID, B.MASK_ID}) == 4
    assert max(B.PAD_ID, B.BOS_ID, B.EOS_ID, B.MASK_ID) < B.OFFSET
    assert B.encode(b"\x00\xff") == [B.OFFSET, B.OFFSET + 255]


@pytest.mark.parametrize("text", TRICKY)
def test_round_trip(text):
    ids = B.encode(text, bos=True, eos=True)
    assert ids[0] == B.BOS_ID and ids[-1] == B.EOS_ID
    assert all(B.OFFSET <= i < B.VOCAB_SIZE for i in ids[1:-1])
    assert B.decode(ids) == text
    assert B.decode_bytes(ids) == text.encode("utf-8")


def test_invalid_utf8_never_crashes_or_vanishes():
    raw = b"ok \xff\xfe end \xc3"  # two invalid bytes and a cut-off char
    text = B.decode(B.encode(raw))
    assert text.startswith("ok ") and "end" in text
    assert text.count("\ufffd") == 3
    shown = B.decode(B.encode(raw), errors="backslashreplace")
    assert "\\xff" in shown and "\\xc3" in shown


def test_bad_inputs():
    with pytest.raises(TypeError, match="str or bytes"):
        B.encode(123)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        B.decode([300])
    with pytest.raises(ValueError):
        B.decode([-1])


def test_id_labels():
    assert B.id_to_str(B.BOS_ID) == "<BOS>"
    assert B.id_to_str(B.MASK_ID) == "<MASK>"
    assert B.id_to_str(ord("a") + B.OFFSET) == "'a'"
    assert B.id_to_str(0xC3 + B.OFFSET) == "0xC3"


@pytest.mark.parametrize("text", TRICKY)
def test_stream_decoder_any_split(text):
    raw = text.encode("utf-8")
    for cut in range(len(raw) + 1):
        dec = B.StreamDecoder()
        out = dec.push(raw[:cut]) + dec.push(raw[cut:]) + dec.flush()
        assert out == text


def test_stream_decoder_byte_by_byte_and_ids():
    text = "é🙂x"
    dec = B.StreamDecoder()
    pieces = [dec.push(bytes([b])) for b in text.encode()]
    assert "".join(pieces) + dec.flush() == text
    assert pieces[0] == ""  # first half of é is held back, not dropped
    dec = B.StreamDecoder()
    assert dec.push(B.encode("hé", bos=True), ids=True) == "hé"


def test_stream_decoder_dangling_and_invalid():
    dec = B.StreamDecoder()
    assert dec.push(b"a\xe2\x82") == "a"  # incomplete euro sign held
    assert dec.flush() == "\ufffd"  # ...and reported, not dropped
    dec = B.StreamDecoder()
    assert dec.push(b"\xffb") == "\ufffdb"


def test_visible_is_one_character_per_id():
    from bltlib.bytes import EOS_ID, MASK_ID, visible
    ids = B.encode("a b\n\t\xe9".encode("latin-1")) + [EOS_ID, MASK_ID]
    assert visible(ids) == "a·b↵??∎?"
    assert len(visible(ids)) == len(ids)
    with pytest.raises(ValueError):
        visible([999])


def test_greedy_id_never_picks_a_special_id():
    import torch

    from bltlib.bytes import BOS_ID, EOS_ID, MASK_ID, PAD_ID
    from bltlib.inference.sampling import greedy_id
    logits = torch.zeros(260)
    for special in (PAD_ID, BOS_ID, MASK_ID):
        logits[special] = 100.0
    logits[70] = 5.0
    assert greedy_id(logits) == 70
    logits[EOS_ID] = 50.0
    assert greedy_id(logits) == EOS_ID
