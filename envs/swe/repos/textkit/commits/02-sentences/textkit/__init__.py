"""textkit: small, dependency-free text utilities."""

from textkit.slug import slugify
from textkit.tokenize import sentences, word_counts, words

__all__ = ["sentences", "slugify", "word_counts", "words"]
__version__ = "0.1.0"
