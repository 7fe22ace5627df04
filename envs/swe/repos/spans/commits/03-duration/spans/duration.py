"""Durations written like ``1h30m`` or ``2w3d``."""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {"w": 7 * 24 * 3600, "d": 24 * 3600, "h": 3600, "m": 60, "s": 1}
"""Unit letters and their length in seconds, largest first."""
_PART = re.compile(r"(\d+)([wdhms])")


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``"1h30m"``, ``"2d"`` or ``"1w 2d 3h 4m 5s"``: whole numbers
    followed by a unit letter (see :data:`UNITS`), each unit at most once, largest first.

    >>> parse_duration("1h30m")
    datetime.timedelta(seconds=5400)
    """
    compact = "".join(text.split())
    if not compact:
        raise ValueError("empty duration")
    order = list(UNITS)
    seconds = 0
    pos = 0
    last = -1
    for match in _PART.finditer(compact):
        if match.start() != pos:
            break
        rank = order.index(match.group(2))
        if rank <= last:
            raise ValueError(f"invalid duration {text!r}: units must appear once, largest first")
        last = rank
        seconds += int(match.group(1)) * UNITS[match.group(2)]
        pos = match.end()
    if pos != len(compact):
        raise ValueError(f"invalid duration {text!r}")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The canonical text of ``delta``, the inverse of :func:`parse_duration`: every non-zero
    unit from weeks down to seconds, ``"0s"`` for zero. Fractions of a second are dropped;
    negative durations are rejected.

    >>> format_duration(timedelta(hours=1, minutes=30))
    '1h30m'
    """
    if delta < timedelta(0):
        raise ValueError(f"negative duration {delta!r}")
    remaining = delta.seconds
    parts = []
    for unit, size in UNITS.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"
