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


def test_max_length_drops_whole_words():
    assert slugify("The quick brown fox", max_length=12) == "the-quick"
    assert slugify("hello world foo", max_length=13) == "hello-world"


def test_max_length_keeps_a_slug_that_fits_exactly():
    assert slugify("hello world foo", max_length=11) == "hello-world"
    assert slugify("hello world", max_length=11) == "hello-world"


def test_max_length_with_custom_separator():
    assert slugify("one two three", sep="__", max_length=10) == "one__two"


def test_max_length_cuts_a_first_word_that_is_too_long():
    assert slugify("Supercalifragilistic words", max_length=5) == "super"
