"""Converting raw string values."""

from __future__ import annotations

from confparse.csvish import split_row

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def to_bool(value: str) -> bool:
    """``yes``/``no``, ``true``/``false``, ``on``/``off``, ``1``/``0`` (any case)."""
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def to_int(value: str) -> int:
    """A decimal integer; ``_`` may group digits (``10_000``)."""
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"not an integer: {value!r}") from None


def to_list(value: str) -> list[str]:
    """Comma-separated items (see :func:`confparse.csvish.split_row` for quoting); empty
    items are dropped."""
    return [item for item in split_row(value) if item]
