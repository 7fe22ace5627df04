"""The half-open interval type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True, order=True)
class Interval:
    """The half-open interval ``[start, end)`` over any ordered values (numbers, dates,
    datetimes). ``start`` must not come after ``end``; ``start == end`` is the empty interval.

    >>> Interval(1, 5).overlaps(Interval(4, 9))
    True
    >>> Interval(1, 5).overlaps(Interval(5, 9))
    False
    """

    start: Any
    end: Any

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"interval end {self.end!r} is before its start {self.start!r}")

    @property
    def empty(self) -> bool:
        return self.start == self.end

    def __contains__(self, value: Any) -> bool:
        return self.start <= value < self.end

    def length(self) -> Any:
        """``end - start`` (a number, or a timedelta for dates)."""
        return self.end - self.start

    def overlaps(self, other: Interval) -> bool:
        """Whether the two intervals share at least one point."""
        return self.start < other.end and other.start < self.end

    def touches(self, other: Interval) -> bool:
        """Whether one interval ends exactly where the other starts."""
        return self.end == other.start or other.end == self.start

    def intersection(self, other: Interval) -> Optional[Interval]:
        """The common part of both intervals, or ``None`` when they do not overlap."""
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Interval(start, end) if start < end else None
