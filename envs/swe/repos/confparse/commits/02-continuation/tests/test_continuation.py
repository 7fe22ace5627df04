import pytest

from confparse import ParseError, parse


def test_indented_lines_continue_a_value():
    config = parse("[motd]\ntext = Welcome\n    to the server\n\tenjoy\nnext = 1\n")
    assert config.get("motd", "text") == "Welcome\nto the server\nenjoy"
    assert config.get("motd", "next") == "1"


def test_comments_inside_a_value_are_skipped():
    config = parse("[a]\nitems = one\n    # not a value\n    two\n")
    assert config.get("a", "items") == "one\ntwo"


def test_continuation_in_default_section():
    assert parse("banner = a\n  b\n").get("any", "banner") == "a\nb"


@pytest.mark.parametrize("text, lineno", [
    ("  orphan\n", 1),
    ("[a]\n    orphan = 1\n", 2),
], ids=["first-line", "after-section"])
def test_indented_line_without_a_key(text, lineno):
    with pytest.raises(ParseError, match=f"line {lineno}: an indented line"):
        parse(text)
