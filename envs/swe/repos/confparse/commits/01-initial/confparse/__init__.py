"""confparse: a small INI dialect with typed getters."""

from confparse.errors import ConfigError, ParseError
from confparse.ini import DEFAULT, Config, parse

__all__ = ["DEFAULT", "Config", "ConfigError", "ParseError", "parse"]
__version__ = "0.1.0"
