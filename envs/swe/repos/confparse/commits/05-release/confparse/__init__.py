"""confparse: a small INI dialect with typed getters."""

from confparse.csvish import split_row
from confparse.errors import ConfigError, ParseError
from confparse.ini import DEFAULT, Config, parse
from confparse.interpolate import InterpolationError, interpolate

__all__ = ["DEFAULT", "Config", "ConfigError", "InterpolationError", "ParseError", "interpolate", "parse",
           "split_row"]
__version__ = "0.2.0"
