from textkit import slugify


def test_lowercases_and_joins_words():
    assert slugify("Hello World") == "hello-world"


def test_strips_accents():
    assert slugify("Crème brûlée") == "creme-brulee"


def test_collapses_punctuation_and_trims_separators():
    assert slugify("  --Hello,   World!!  ") == "hello-world"


def test_custom_separator():
    assert slugify("Hello World", sep="_") == "hello_world"


def test_max_length_leaves_short_slugs_alone():
    assert slugify("short title", max_length=50) == "short-title"


def test_empty_and_symbol_only_input():
    assert slugify("") == ""
    assert slugify("!!!") == ""
