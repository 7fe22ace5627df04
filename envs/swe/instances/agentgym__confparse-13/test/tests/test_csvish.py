import pytest

from confparse import parse, split_row


def test_plain_fields_are_stripped():
    assert split_row("a,b,c") == ["a", "b", "c"]
    assert split_row(" a , b ") == ["a", "b"]


def test_quoted_fields_keep_delimiters_and_whitespace():
    assert split_row('a, "b, c" ,d') == ["a", "b, c", "d"]
    assert split_row('" padded "') == [" padded "]


def test_empty_fields():
    assert split_row("a,,b") == ["a", "", "b"]
    assert split_row("") == [""]
    assert split_row('""') == [""]


def test_other_delimiter():
    assert split_row("a; b;c", delimiter=";") == ["a", "b", "c"]
    with pytest.raises(ValueError, match="invalid delimiter"):
        split_row("a", delimiter='"')


@pytest.mark.parametrize("line", ['"open', 'a, "b', '"a" b', '"a"b,c'], ids=[
    "unterminated", "unterminated-later", "text-after-quote", "text-before-delimiter"])
def test_malformed_quotes(line):
    with pytest.raises(ValueError):
        split_row(line)


def test_getlist_uses_quoting():
    config = parse('[team]\nnames = "Smith, J", Doe ,, "Ng"\n')
    assert config.getlist("team", "names") == ["Smith, J", "Doe", "Ng"]


def test_doubled_quotes_inside_quotes():
    assert split_row('"say ""hi""", bye') == ['say "hi"', "bye"]
    assert split_row('""""') == ['"']
    assert split_row('a, """quoted"""') == ["a", '"quoted"']


def test_getlist_with_doubled_quotes():
    config = parse('[messages]\ngreetings = "She said ""hello""", hi\n')
    assert config.getlist("messages", "greetings") == ['She said "hello"', "hi"]
