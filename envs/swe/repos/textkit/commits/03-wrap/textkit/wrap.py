"""Greedy word wrapping."""

from __future__ import annotations


def wrap(text: str, width: int = 70) -> list[str]:
    """The words of ``text`` (split on any whitespace) packed greedily into lines of at most
    ``width`` characters, one space between words. A word longer than ``width`` is split
    into pieces of ``width`` characters.

    >>> wrap("the quick brown fox jumps", 10)
    ['the quick', 'brown fox', 'jumps']
    """
    if width < 1:
        raise ValueError(f"width must be at least 1, got {width}")
    lines: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > width:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:width])
            word = word[width:]
        if not current:
            current = word
        elif len(current) + len(word) <= width:
            current += " " + word
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def fill(text: str, width: int = 70) -> str:
    """:func:`wrap`'s lines joined with newlines."""
    return "\n".join(wrap(text, width))
