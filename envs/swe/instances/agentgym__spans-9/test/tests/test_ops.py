from datetime import date, timedelta

from spans import Interval, gaps, merge, total_length


def test_merge_overlapping():
    assert merge([Interval(5, 8), Interval(1, 3), Interval(2, 4)]) == [Interval(1, 4), Interval(5, 8)]


def test_merge_touching():
    assert merge([Interval(1, 3), Interval(3, 5)]) == [Interval(1, 5)]


def test_merge_keeps_disjoint_intervals_and_drops_empty_ones():
    assert merge([Interval(7, 9), Interval(4, 4), Interval(1, 2)]) == [Interval(1, 2), Interval(7, 9)]


def test_merge_nothing():
    assert merge([]) == []


def test_merge_dates():
    a = Interval(date(2024, 4, 1), date(2024, 4, 5))
    b = Interval(date(2024, 4, 3), date(2024, 4, 9))
    assert merge([b, a]) == [Interval(date(2024, 4, 1), date(2024, 4, 9))]


def test_gaps():
    assert gaps([Interval(2, 4), Interval(6, 7)], within=Interval(0, 10)) == [
        Interval(0, 2), Interval(4, 6), Interval(7, 10)]


def test_gaps_clip_to_the_window():
    assert gaps([Interval(-5, 1), Interval(8, 20)], within=Interval(0, 10)) == [Interval(1, 8)]
    assert gaps([], within=Interval(0, 3)) == [Interval(0, 3)]


def test_total_length():
    assert total_length([Interval(1, 3), Interval(2, 6), Interval(10, 11)]) == 6
    days = [Interval(date(2024, 4, 1), date(2024, 4, 3))]
    assert total_length(days, zero=timedelta(0)) == timedelta(days=2)


def test_merge_an_interval_contained_in_another():
    assert merge([Interval(1, 10), Interval(2, 3)]) == [Interval(1, 10)]
    assert merge([Interval(2, 3), Interval(1, 10), Interval(4, 12)]) == [Interval(1, 12)]


def test_gaps_and_total_length_with_nested_intervals():
    nested = [Interval(0, 8), Interval(2, 4)]
    assert gaps(nested, within=Interval(0, 10)) == [Interval(8, 10)]
    assert total_length(nested) == 8


def test_merge_nested_dates():
    day = Interval(date(2024, 4, 1), date(2024, 4, 2))
    week = Interval(date(2024, 3, 30), date(2024, 4, 6))
    assert merge([week, day]) == [week]
