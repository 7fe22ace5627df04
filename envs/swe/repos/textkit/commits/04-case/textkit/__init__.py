"""textkit: small, dependency-free text utilities."""

from textkit.case import camel_case, pascal_case, snake_case
from textkit.slug import slugify
from textkit.tokenize import sentences, word_counts, words
from textkit.wrap import fill, wrap

__all__ = ["camel_case", "fill", "pascal_case", "sentences", "slugify", "snake_case", "word_counts", "words",
           "wrap"]
__version__ = "0.1.0"
