"""References between values: ``${key}`` and ``${section:key}``."""

from __future__ import annotations

import re

from confparse.errors import ConfigError
from confparse.ini import Config

_REF = re.compile(r"\$\{([^}]*)\}")


class InterpolationError(ConfigError):
    """A reference that cannot be resolved."""


def interpolate(config: Config) -> Config:
    """A copy of ``config`` in which every ``${key}`` (a key of the same section, or of
    ``DEFAULT``) and every ``${section:key}`` is replaced by that key's value, itself
    interpolated. A reference to a missing key raises :class:`InterpolationError`, and so does
    a value that refers back to itself, directly or through other references.

    >>> from confparse import parse
    >>> interpolate(parse("root = /srv\\n[app]\\nlogs = ${root}/logs\\n")).get("app", "logs")
    '/srv/logs'
    """

    def resolve(section: str, key: str) -> str:
        raw = config.get(section, key)

        def replace(match: re.Match) -> str:
            ref = match.group(1)
            ref_section, _, ref_key = ref.rpartition(":")
            try:
                return resolve(ref_section.strip() or section, ref_key.strip().lower())
            except KeyError:
                raise InterpolationError(f"[{section}] {key}: unknown reference ${{{ref}}}") from None

        return _REF.sub(replace, raw)

    return Config({name: {key: resolve(name, key) for key in keys} for name, keys in config._sections.items()})
