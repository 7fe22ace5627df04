"""Parsing the INI dialect.

::

    # a comment            ; also a comment
    name = demo            (keys before the first section belong to DEFAULT)
    [section]
    key = value
    other: value

A line holds a key and its value separated by the first ``=`` or ``:`` on it. Keys are
case-insensitive (stored lower-case); section names are case-sensitive. Every section
inherits the keys of ``DEFAULT``.
"""

from __future__ import annotations

from typing import Callable, Dict, Tuple

from confparse.errors import ParseError
from confparse.values import to_bool, to_int, to_list

DEFAULT = "DEFAULT"
_MISSING = object()


class Config:
    """Parsed sections (see :func:`parse`)."""

    def __init__(self, sections: Dict[str, Dict[str, str]]) -> None:
        self._sections = {name: dict(keys) for name, keys in sections.items()}
        self._sections.setdefault(DEFAULT, {})

    def sections(self) -> list[str]:
        """Section names in file order, ``DEFAULT`` excluded."""
        return [name for name in self._sections if name != DEFAULT]

    def items(self, section: str) -> Dict[str, str]:
        """The keys of ``section``, inherited ``DEFAULT`` keys included."""
        if section not in self._sections:
            raise KeyError(f"no section {section!r}")
        return {**self._sections[DEFAULT], **self._sections[section]}

    def __contains__(self, section: str) -> bool:
        return section in self._sections

    def get(self, section: str, key: str, default: object = _MISSING) -> str:
        """The raw value of ``key`` in ``section`` (or in ``DEFAULT``)."""
        key = key.lower()
        for name in (section, DEFAULT):
            if key in self._sections.get(name, {}):
                return self._sections[name][key]
        if default is not _MISSING:
            return default  # type: ignore[return-value]
        raise KeyError(f"no key {key!r} in section {section!r}")

    def _typed(self, convert: Callable[[str], object], section: str, key: str, default: object) -> object:
        raw = self.get(section, key, default=None)
        if raw is None:
            if default is _MISSING:
                raise KeyError(f"no key {key!r} in section {section!r}")
            return default
        try:
            return convert(raw)
        except ValueError as e:
            raise ValueError(f"[{section}] {key}: {e}") from None

    def getint(self, section: str, key: str, default: object = _MISSING) -> int:
        return self._typed(to_int, section, key, default)  # type: ignore[return-value]

    def getbool(self, section: str, key: str, default: object = _MISSING) -> bool:
        return self._typed(to_bool, section, key, default)  # type: ignore[return-value]

    def getlist(self, section: str, key: str, default: object = _MISSING) -> list:
        return self._typed(to_list, section, key, default)  # type: ignore[return-value]


def _split_pair(line: str, lineno: int) -> Tuple[str, str]:
    if "=" in line:
        key, _, value = line.partition("=")
    elif ":" in line:
        key, _, value = line.partition(":")
    else:
        raise ParseError(lineno, f"expected 'key = value' or 'key: value', got {line!r}")
    key = key.strip().lower()
    if not key:
        raise ParseError(lineno, "empty key")
    return key, value.strip()


def parse(text: str) -> Config:
    """Parse INI ``text`` (see the module docstring); :class:`ParseError` names the bad line.

    >>> parse("[server]\\nport = 8080\\n").getint("server", "port")
    8080
    """
    sections: Dict[str, Dict[str, str]] = {DEFAULT: {}}
    current = sections[DEFAULT]
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ParseError(lineno, f"unclosed section header {line!r}")
            name = line[1:-1].strip()
            if not name:
                raise ParseError(lineno, "empty section name")
            current = sections.setdefault(name, {})
            continue
        key, value = _split_pair(line, lineno)
        if key in current:
            raise ParseError(lineno, f"duplicate key {key!r}")
        current[key] = value
    return Config(sections)

