"""Calendar days and business days."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Iterable, Iterator


def daterange(start: date, end: date, step: int = 1) -> Iterator[date]:
    """The dates from ``start`` (included) to ``end`` (excluded), ``step`` days apart.

    >>> [d.day for d in daterange(date(2024, 5, 1), date(2024, 5, 8), step=3)]
    [1, 4, 7]
    """
    if step < 1:
        raise ValueError(f"step must be at least 1 day, got {step}")
    current = start
    while current < end:
        yield current
        current += timedelta(days=step)


def is_weekend(day: date) -> bool:
    """Saturday or Sunday."""
    return day.weekday() >= 5


def business_days(start: date, end: date, holidays: Iterable[date] = ()) -> int:
    """How many business days (Monday to Friday, except ``holidays``) lie in ``[start, end)``.
    A holiday that falls on a weekend or outside the range changes nothing.

    >>> business_days(date(2024, 5, 13), date(2024, 5, 20))  # Monday to the next Monday
    5
    """
    if end <= start:
        return 0
    days_off = set(holidays)
    return sum(1 for day in daterange(start, end) if not is_weekend(day) and day not in days_off)
