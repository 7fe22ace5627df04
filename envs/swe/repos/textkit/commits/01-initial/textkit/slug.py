"""URL slugs."""

from __future__ import annotations

import re
import unicodedata

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def slugify(text: str, sep: str = "-", max_length: int | None = None) -> str:
    """A lowercase ASCII slug of ``text``: accents are stripped, every run of other characters
    becomes one ``sep``, and no ``sep`` leads or trails.

    With ``max_length``, a longer slug is shortened to at most that many characters by
    dropping whole words from its end; only a first word that is itself too long is cut.

    >>> slugify("Crème brûlée, s'il vous plaît!")
    'creme-brulee-s-il-vous-plait'
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NON_ALNUM.sub(sep, ascii_text.lower()).strip(sep)
    if max_length is not None and len(slug) > max_length:
        slug = slug[:max_length].rstrip(sep)
    return slug
