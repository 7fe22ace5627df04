import pytest

from textkit import fill, wrap


def test_wraps_greedily():
    assert wrap("the quick brown fox jumps over the lazy dog", 10) == [
        "the quick", "brown fox", "jumps over", "the lazy", "dog"]


def test_normalizes_whitespace():
    assert wrap("  a\n\tb   c  ", 20) == ["a b c"]


def test_splits_words_longer_than_the_width():
    assert wrap("abcdefghijkl xy", 5) == ["abcde", "fghij", "kl xy"]


def test_empty_text_gives_no_lines():
    assert wrap("", 10) == []
    assert wrap("   ", 10) == []


def test_fill_joins_lines():
    assert fill("one two three", 7) == "one two\nthree"


def test_width_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        wrap("text", 0)


def test_word_that_would_fill_the_line_exactly_moves_down():
    assert wrap("aaaa bbbbb", 9) == ["aaaa", "bbbbb"]
    assert fill("aaaa bbbbb", 9) == "aaaa\nbbbbb"


@pytest.mark.parametrize("width", range(1, 16))
def test_lines_never_exceed_the_width(width):
    text = "aa bbb c dddd ee f ggggg hh iii jjjj k lllllll"
    lines = wrap(text, width)
    assert all(len(line) <= width for line in lines)
    assert " ".join(lines).replace(" ", "") == text.replace(" ", "")
