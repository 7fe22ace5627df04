"""Operations on collections of intervals."""

from __future__ import annotations

from typing import Any, Iterable

from spans.interval import Interval


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """The union of ``intervals`` as a sorted list of disjoint intervals. Intervals that
    overlap, contain one another or touch (one ends where the next starts) are merged into
    one; empty intervals are dropped.

    >>> merge([Interval(5, 8), Interval(1, 3), Interval(2, 4)])
    [Interval(start=1, end=4), Interval(start=5, end=8)]
    """
    merged: list[Interval] = []
    for iv in sorted(i for i in intervals if not i.empty):
        if merged and iv.start <= merged[-1].end:
            merged[-1] = Interval(merged[-1].start, iv.end)
        else:
            merged.append(iv)
    return merged


def gaps(intervals: Iterable[Interval], within: Interval) -> list[Interval]:
    """The parts of ``within`` that none of ``intervals`` covers, in order.

    >>> gaps([Interval(2, 4), Interval(6, 7)], within=Interval(0, 10))
    [Interval(start=0, end=2), Interval(start=4, end=6), Interval(start=7, end=10)]
    """
    out: list[Interval] = []
    cursor = within.start
    for iv in merge(intervals):
        if iv.end <= cursor:
            continue
        if iv.start >= within.end:
            break
        if iv.start > cursor:
            out.append(Interval(cursor, iv.start))
        cursor = iv.end
    if cursor < within.end:
        out.append(Interval(cursor, within.end))
    return out


def total_length(intervals: Iterable[Interval], zero: Any = 0) -> Any:
    """The length of the union of ``intervals`` (pass ``zero=timedelta(0)`` for dates)."""
    total = zero
    for iv in merge(intervals):
        total = total + iv.length()
    return total
