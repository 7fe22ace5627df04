"""Splitting text into words."""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


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
