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


def test_business_days_ignore_weekend_holidays():
    assert business_days(date(2021, 12, 20), date(2021, 12, 27), [date(2021, 12, 25)]) == 5


def test_business_days_ignore_holidays_outside_the_range():
    holidays = [date(2021, 1, 1), date(2021, 12, 24), date(2022, 1, 3)]
    assert business_days(date(2021, 12, 20), date(2021, 12, 27), holidays) == 4
