import pytest

from textkit import sentences, word_counts, words


def test_words_split_on_punctuation_and_whitespace():
    assert words("Hello, world!  How are\tyou?") == ["Hello", "world", "How", "are", "you"]


def test_words_keep_inner_apostrophes():
    assert words("Don't stop, it's fine") == ["Don't", "stop", "it's", "fine"]


def test_words_keep_digits_and_non_ascii_letters():
    assert words("Café au lait costs 3 euros") == ["Café", "au", "lait", "costs", "3", "euros"]


def test_words_drop_underscores_and_dashes():
    assert words("snake_case -- dash") == ["snake", "case", "dash"]


def test_word_counts_fold_case_by_default():
    assert word_counts("The cat and the hat") == {"the": 2, "cat": 1, "and": 1, "hat": 1}


def test_word_counts_can_keep_case():
    assert word_counts("The the", lower=False) == {"The": 1, "the": 1}


def test_sentences_split_on_terminal_punctuation():
    assert sentences("One. Two! Three?") == ["One.", "Two!", "Three?"]


def test_sentences_keep_lowercase_abbreviations():
    assert sentences("Bring fruit, e.g. apples. Then leave.") == ["Bring fruit, e.g. apples.", "Then leave."]


def test_sentences_without_final_punctuation():
    assert sentences("First. second part") == ["First.", "second part"]


def test_sentences_keep_repeated_punctuation():
    assert sentences("Really?! Yes.") == ["Really?!", "Yes."]


def test_sentences_of_blank_text():
    assert sentences("   ") == []


def test_sentences_keep_capitalized_abbreviations():
    assert sentences("Dr. Smith met Mr. Jones. They talked.") == ["Dr. Smith met Mr. Jones.", "They talked."]


@pytest.mark.parametrize("title", ["Prof.", "PROF.", "Mrs.", "St."])
def test_sentences_abbreviation_at_the_start(title):
    assert sentences(f"{title} Lee is here. Welcome!") == [f"{title} Lee is here.", "Welcome!"]
