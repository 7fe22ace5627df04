from datetime import date

import pytest

from spans import Interval


def test_end_before_start_is_rejected():
    with pytest.raises(ValueError, match="before its start"):
        Interval(5, 1)


def test_membership_is_half_open():
    iv = Interval(1, 5)
    assert 1 in iv and 4 in iv
    assert 5 not in iv and 0 not in iv


def test_empty_interval():
    assert Interval(3, 3).empty
    assert 3 not in Interval(3, 3)


def test_overlaps_and_touches():
    assert Interval(1, 5).overlaps(Interval(4, 9))
    assert not Interval(1, 5).overlaps(Interval(5, 9))
    assert Interval(1, 5).touches(Interval(5, 9))
    assert not Interval(1, 5).touches(Interval(6, 9))


def test_intersection():
    assert Interval(1, 5).intersection(Interval(4, 9)) == Interval(4, 5)
    assert Interval(1, 5).intersection(Interval(5, 9)) is None


def test_dates_and_length():
    week = Interval(date(2024, 4, 1), date(2024, 4, 8))
    assert week.length().days == 7
    assert date(2024, 4, 7) in week
