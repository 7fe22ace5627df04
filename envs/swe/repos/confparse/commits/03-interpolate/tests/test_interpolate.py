import pytest

from confparse import InterpolationError, interpolate, parse


def test_reference_in_the_same_section():
    config = interpolate(parse("[paths]\nroot = /srv\nlogs = ${root}/logs\n"))
    assert config.get("paths", "logs") == "/srv/logs"


def test_reference_to_default():
    config = interpolate(parse("root = /srv\n[app]\nlogs = ${root}/logs\n"))
    assert config.get("app", "logs") == "/srv/logs"


def test_reference_to_another_section():
    config = interpolate(parse("[db]\nhost = db.local\n[app]\nurl = pg://${db:host}:5432\n"))
    assert config.get("app", "url") == "pg://db.local:5432"


def test_chained_and_repeated_references():
    config = interpolate(parse("[a]\nx = 1\ny = ${x}${x}\nz = <${y}>\n"))
    assert config.get("a", "z") == "<11>"


def test_values_without_references_are_unchanged():
    config = interpolate(parse("[a]\nplain = $HOME and {braces}\n"))
    assert config.get("a", "plain") == "$HOME and {braces}"


def test_unknown_reference():
    with pytest.raises(InterpolationError, match=r"\[a\] x: unknown reference \$\{nope\}"):
        interpolate(parse("[a]\nx = ${nope}\n"))
