from datetime import date

import pytest

from spans import business_days, daterange, is_weekend


def test_daterange_excludes_the_end():
    days = list(daterange(date(2024, 5, 30), date(2024, 6, 2)))
    assert days == [date(2024, 5, 30), date(2024, 5, 31), date(2024, 6, 1)]


def test_daterange_step():
    assert [d.day for d in daterange(date(2024, 5, 1), date(2024, 5, 8), step=3)] == [1, 4, 7]
    with pytest.raises(ValueError):
        list(daterange(date(2024, 5, 1), date(2024, 5, 8), step=0))


def test_is_weekend():
    assert is_weekend(date(2024, 5, 18)) and is_weekend(date(2024, 5, 19))
    assert not is_weekend(date(2024, 5, 17))


def test_business_days_of_a_week():
    assert business_days(date(2024, 5, 13), date(2024, 5, 20)) == 5


def test_business_days_of_an_empty_or_reversed_range():
    assert business_days(date(2024, 5, 13), date(2024, 5, 13)) == 0
    assert business_days(date(2024, 5, 20), date(2024, 5, 13)) == 0


def test_business_days_skip_weekday_holidays():
    holidays = [date(2024, 5, 15), date(2024, 5, 15)]  # listed twice, counted once
    assert business_days(date(2024, 5, 13), date(2024, 5, 20), holidays) == 4
