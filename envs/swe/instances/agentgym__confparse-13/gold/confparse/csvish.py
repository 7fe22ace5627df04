"""Splitting one delimited line into fields, with quoting."""

from __future__ import annotations


def split_row(line: str, delimiter: str = ",") -> list[str]:
    """The fields of ``line``, stripped of surrounding whitespace. A field may be put in double
    quotes to keep its whitespace and contain the delimiter; inside quotes, two double quotes
    (``""``) stand for one. Only whitespace may follow a closing quote.

    >>> split_row('a, "b, c" ,d')
    ['a', 'b, c', 'd']
    """
    if len(delimiter) != 1 or delimiter in ('"', " ", "\t"):
        raise ValueError(f"invalid delimiter {delimiter!r}")
    fields: list[str] = []
    buf: list[str] = []
    quoted = False  # the current field was quoted
    in_quotes = False
    i = 0
    while i < len(line):
        ch = line[i]
        i += 1
        if in_quotes:
            if ch == '"' and line[i:i + 1] == '"':
                buf.append('"')
                i += 1
            elif ch == '"':
                in_quotes = False
            else:
                buf.append(ch)
        elif ch == '"' and not quoted and not "".join(buf).strip():
            buf = []
            in_quotes = quoted = True
        elif ch == delimiter:
            fields.append("".join(buf) if quoted else "".join(buf).strip())
            buf, quoted = [], False
        elif quoted:
            if not ch.isspace():
                raise ValueError(f"unexpected {ch!r} after a closing quote in {line!r}")
        else:
            buf.append(ch)
    if in_quotes:
        raise ValueError(f"unterminated quote in {line!r}")
    fields.append("".join(buf) if quoted else "".join(buf).strip())
    return fields
