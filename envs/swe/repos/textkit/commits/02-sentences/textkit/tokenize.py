"""Splitting text into words and sentences."""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_SENTENCE_END = re.compile(r"([.!?]+)(\s+)")

ABBREVIATIONS = frozenset({"dr", "e.g", "etc", "i.e", "jr", "mr", "mrs", "ms", "prof", "sr", "st", "vs"})
"""Words that end with a period without ending a sentence (written without the final period)."""


def words(text: str) -> list[str]:
    """The words of ``text`` in order: runs of letters and digits, with inner apostrophes
    kept ("don't" is one word). Punctuation and whitespace separate words.

    >>> words("Don't panic -- it's only 42.")
    ["Don't", 'panic', "it's", 'only', '42']
    """
    return _WORD.findall(text)


def word_counts(text: str, *, lower: bool = True) -> Counter:
    """How often each word of ``text`` occurs (case-folded unless ``lower=False``)."""
    tokens = words(text)
    if lower:
        tokens = [t.lower() for t in tokens]
    return Counter(tokens)


def sentences(text: str) -> list[str]:
    """Split ``text`` into sentences.

    A sentence ends at a run of ``.``, ``!`` or ``?`` followed by whitespace, except where a
    period ends one of the :data:`ABBREVIATIONS` (in any letter case). Sentences are stripped
    of surrounding whitespace; the text after the last end is a sentence too.

    >>> sentences("Bring fruit, e.g. apples. Then leave!")
    ['Bring fruit, e.g. apples.', 'Then leave!']
    """
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        before = text[start:match.start()].split()
        last_word = before[-1] if before else ""
        if match.group(1) == "." and last_word in ABBREVIATIONS:
            continue
        sentence = text[start:match.end(1)].strip()
        if sentence:
            out.append(sentence)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out
