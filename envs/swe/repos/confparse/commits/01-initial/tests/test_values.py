import pytest

from confparse.values import to_bool, to_int, to_list


@pytest.mark.parametrize("text, expected", [
    ("yes", True), ("No", False), ("TRUE", True), ("off", False), (" 1 ", True), ("0", False),
], ids=["yes", "No", "TRUE", "off", "padded-1", "0"])
def test_to_bool(text, expected):
    assert to_bool(text) is expected


def test_to_bool_rejects_other_words():
    with pytest.raises(ValueError, match="not a boolean"):
        to_bool("maybe")


def test_to_int():
    assert to_int(" 42 ") == 42
    assert to_int("10_000") == 10000
    with pytest.raises(ValueError, match="not an integer"):
        to_int("4.2")


def test_to_list():
    assert to_list("a, b ,c") == ["a", "b", "c"]
    assert to_list("") == []
