import pytest

from textkit import camel_case, pascal_case, snake_case


@pytest.mark.parametrize("name, expected", [
    ("fooBarBaz", "foo_bar_baz"),
    ("FooBar", "foo_bar"),
    ("foo-bar baz", "foo_bar_baz"),
    ("already_snake", "already_snake"),
    ("version2Update", "version2_update"),
], ids=["camel", "pascal", "spaces-and-dashes", "already-snake", "digit"])
def test_snake_case(name, expected):
    assert snake_case(name) == expected


def test_camel_case():
    assert camel_case("foo_bar_baz") == "fooBarBaz"
    assert camel_case("Foo Bar") == "fooBar"


def test_pascal_case():
    assert pascal_case("foo bar") == "FooBar"
    assert pascal_case("fooBar") == "FooBar"


def test_empty_names():
    assert snake_case("") == ""
    assert camel_case("") == ""
    assert pascal_case("") == ""


@pytest.mark.parametrize("name, expected", [
    ("HTTPServerError", "http_server_error"),
    ("parseJSONResponse", "parse_json_response"),
    ("userID", "user_id"),
    ("IOError", "io_error"),
])
def test_snake_case_keeps_acronyms_together(name, expected):
    assert snake_case(name) == expected


def test_camel_and_pascal_case_of_acronyms():
    assert camel_case("HTTPServer") == "httpServer"
    assert pascal_case("parseJSONResponse") == "ParseJsonResponse"
