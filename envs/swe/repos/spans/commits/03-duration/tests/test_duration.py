from datetime import timedelta

import pytest

from spans import format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("1h30m", 5400),
    ("45s", 45),
    ("2d", 172800),
    ("1w 2d 3h 4m 5s", 788645),
    ("90m", 5400),
], ids=["1h30m", "45s", "2d", "all-units-spaced", "90m"])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "h", "1x", "30m1h", "1h1h", "-1h"], ids=[
    "empty", "no-unit", "no-number", "bad-unit", "wrong-order", "repeated-unit", "negative"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration():
    assert format_duration(timedelta(hours=1, minutes=30)) == "1h30m"
    assert format_duration(timedelta(seconds=45)) == "45s"
    assert format_duration(timedelta(minutes=90)) == "1h30m"


def test_format_zero_and_fractions():
    assert format_duration(timedelta(0)) == "0s"
    assert format_duration(timedelta(seconds=2, milliseconds=700)) == "2s"


def test_format_negative_is_rejected():
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))
