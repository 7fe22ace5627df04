"""Errors raised by confparse."""


class ConfigError(Exception):
    """Base class of confparse's errors."""


class ParseError(ConfigError):
    """The text is not valid; ``lineno`` is the 1-based line at fault."""

    def __init__(self, lineno: int, message: str) -> None:
        super().__init__(f"line {lineno}: {message}")
        self.lineno = lineno
