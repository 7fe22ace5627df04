"""Converting identifiers between naming conventions."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-]+")
_ACRONYM_END = re.compile(r"([A-Z]+)([A-Z][a-z])")
_WORD_START = re.compile(r"([a-z0-9])([A-Z])")
_UNDERSCORES = re.compile(r"_+")


def snake_case(name: str) -> str:
    """``name`` in snake_case: a word starts at each capital letter (a run of capitals such as
    an acronym is one word), spaces and hyphens become underscores.

    >>> snake_case("parseResponseBody")
    'parse_response_body'
    """
    s = _SEPARATORS.sub("_", name.strip())
    s = _ACRONYM_END.sub(r"\1_\2", s)
    s = _WORD_START.sub(r"\1_\2", s)
    return _UNDERSCORES.sub("_", s).strip("_").lower()


def camel_case(name: str) -> str:
    """``name`` in camelCase (the words of :func:`snake_case`).

    >>> camel_case("parse_response_body")
    'parseResponseBody'
    """
    first, *rest = snake_case(name).split("_")
    return first + "".join(word.capitalize() for word in rest)


def pascal_case(name: str) -> str:
    """``name`` in PascalCase (the words of :func:`snake_case`).

    >>> pascal_case("parse response body")
    'ParseResponseBody'
    """
    return "".join(word.capitalize() for word in snake_case(name).split("_"))
