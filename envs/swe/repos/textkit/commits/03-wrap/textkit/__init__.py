"""textkit: small, dependency-free text utilities."""

from textkit.slug import slugify
from textkit.tokenize import sentences, word_counts, words
from textkit.wrap import fill, wrap

__all__ = ["fill", "sentences", "slugify", "word_counts", "words", "wrap"]
__version__ = "0.1.0"
