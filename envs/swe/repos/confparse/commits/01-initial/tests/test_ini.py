import pytest

from confparse import DEFAULT, ParseError, parse

SAMPLE = """\
# service configuration
name = demo
; DEFAULT keys are inherited

[server]
Host = localhost
port: 8080
debug = yes
tags = web, api ,, internal

[client]
retries = 3
"""


def test_sections_in_file_order():
    assert parse(SAMPLE).sections() == ["server", "client"]


def test_both_separators():
    config = parse(SAMPLE)
    assert config.get("server", "host") == "localhost"
    assert config.get("server", "port") == "8080"


def test_keys_are_case_insensitive():
    assert parse(SAMPLE).get("server", "HOST") == "localhost"


def test_default_keys_are_inherited():
    config = parse(SAMPLE)
    assert config.get("client", "name") == "demo"
    assert config.items("client") == {"name": "demo", "retries": "3"}
    assert DEFAULT not in config.sections()


def test_typed_getters():
    config = parse(SAMPLE)
    assert config.getint("server", "port") == 8080
    assert config.getbool("server", "debug") is True
    assert config.getlist("server", "tags") == ["web", "api", "internal"]
    assert config.getint("server", "missing", default=7) == 7


def test_bad_typed_value_names_the_key():
    with pytest.raises(ValueError, match=r"\[server\] host: not an integer"):
        parse(SAMPLE).getint("server", "host")


def test_missing_key():
    with pytest.raises(KeyError, match="no key 'nope'"):
        parse(SAMPLE).get("server", "nope")


def test_value_may_contain_the_other_separator():
    assert parse("[a]\ntime = 12:30\n").get("a", "time") == "12:30"


@pytest.mark.parametrize("text, lineno", [
    ("[server\nport = 1\n", 1),
    ("[a]\nno separator here\n", 2),
    ("[a]\nx = 1\nX = 2\n", 3),
    ("[]\n", 1),
    ("[a]\n= value\n", 2),
], ids=["unclosed-header", "no-separator", "duplicate-key", "empty-section", "empty-key"])
def test_parse_errors_name_the_line(text, lineno):
    with pytest.raises(ParseError, match=f"line {lineno}:"):
        parse(text)
