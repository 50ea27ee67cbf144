"""A small subword (BPE) baseline to compare bytes against.

Chapter 01 contrasts a byte vocabulary with a BPE tokenizer trained on our
own corpus. :func:`train_bpe` trains a sentencepiece BPE model entirely in
memory (no files are written) and :func:`edit_distance` measures how far
two id sequences are apart, so a one-character typo can be compared at the
byte level and at the token level.

``sentencepiece`` is imported lazily: the rest of ``bltlib`` does not need
it.
"""
from __future__ import annotations

import io
from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    import sentencepiece

__all__ = ["train_bpe", "edit_distance", "UNK_PIECE", "WORD_START"]

UNK_PIECE = "<unk>"
WORD_START = "\u2581"  # "▁", sentencepiece's marker for a preceding space


def train_bpe(lines: Iterable[str], vocab_size: int, *,
              byte_fallback: bool = False,
              character_coverage: float = 1.0,
              normalization: str = "identity",
              remove_extra_whitespaces: bool = True,
              num_threads: int = 1) -> "sentencepiece.SentencePieceProcessor":
    """Train a sentencepiece BPE model in memory and return its processor.

    Args:
        lines: training sentences, one string each (no newlines needed).
        vocab_size: size of the vocabulary, specials included (``<unk>``,
            ``<s>``, ``</s>``, plus 256 ``<0xNN>`` pieces with byte fallback).
        byte_fallback: spell characters outside the vocabulary as UTF-8
            byte pieces instead of mapping them to ``<unk>``.
        character_coverage: fraction of the training characters that must be
            in the vocabulary; 1.0 keeps every character seen in training.
        normalization: sentencepiece normalization rule; ``"identity"``
            (the default here) leaves the characters as given;
            sentencepiece's own default is ``"nmt_nfkc"``.
        remove_extra_whitespaces: sentencepiece's default (True) strips
            leading and trailing spaces and squeezes runs of spaces into
            one, so decoding does not give back indentation.
        num_threads: trainer threads; 1 keeps training reproducible.

    Returns:
        A ``sentencepiece.SentencePieceProcessor`` loaded from the model.

    Raises:
        ValueError: if ``lines`` holds no non-empty sentence.
    """
    import sentencepiece as spm

    sentences = [s for s in lines if s.strip()]
    if not sentences:
        raise ValueError("train_bpe needs at least one non-empty sentence")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type="bpe",
        vocab_size=int(vocab_size),
        byte_fallback=byte_fallback,
        character_coverage=character_coverage,
        normalization_rule_name=normalization,
        remove_extra_whitespaces=remove_extra_whitespaces,
        num_threads=num_threads,
        input_sentence_size=0,  # use every sentence, no sampling
        minloglevel=2,  # quiet: warnings and errors only
    )
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def edit_distance(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """Levenshtein distance: fewest insertions, deletions, substitutions.

    Works on any sequences (strings, lists of ids, lists of pieces).

    >>> edit_distance("world", "wrold")
    2
    >>> edit_distance([1, 2, 3], [1, 9, 3])
    1
    """
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))  # distances from a[:0] to b[:j]
    for i, x in enumerate(a, start=1):
        cur = [i]
        for j, y in enumerate(b, start=1):
            cur.append(min(prev[j] + 1,            # delete x
                           cur[j - 1] + 1,         # insert y
                           prev[j - 1] + (x != y)))  # substitute
        prev = cur
    return prev[-1]
