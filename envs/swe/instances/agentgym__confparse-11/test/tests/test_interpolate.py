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


def test_self_reference_is_a_cycle():
    with pytest.raises(InterpolationError, match="reference cycle s:x -> s:x"):
        interpolate(parse("[s]\nx = ${x}\n"))


def test_cycle_through_other_keys():
    text = "[paths]\ndata = ${cache}/data\ncache = ${data}/cache\n"
    with pytest.raises(InterpolationError, match="reference cycle paths:data -> paths:cache -> paths:data"):
        interpolate(parse(text))


def test_cycle_across_sections():
    with pytest.raises(InterpolationError, match="reference cycle"):
        interpolate(parse("[a]\nx = ${b:y}\n[b]\ny = ${a:x}\n"))


def test_shared_reference_is_not_a_cycle():
    config = interpolate(parse("[a]\nbase = /srv\nx = ${base}\ny = ${base}${x}\n"))
    assert config.get("a", "y") == "/srv/srv"
