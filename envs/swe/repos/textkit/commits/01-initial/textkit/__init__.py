"""textkit: small, dependency-free text utilities."""

from textkit.slug import slugify
from textkit.tokenize import word_counts, words

__all__ = ["slugify", "word_counts", "words"]
__version__ = "0.1.0"
