"""Durations as users write them in gastown.toml: ``"90s"``, ``"15m"``, ``"2h"``, ``"1h30m"``.

Pure; no imports beyond the standard library so the CLI can use it at start-up.
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")


def parse_duration(value: object) -> float:
    """Return the number of seconds ``value`` stands for.

    Numbers are taken as seconds. Strings combine ``<n><unit>`` parts with units
    ``ms s m h d``. Raises ``ValueError`` with a sentence fit for a user otherwise.

    >>> parse_duration("90s"), parse_duration("15m"), parse_duration("1h30m"), parse_duration(2)
    (90.0, 900.0, 5400.0, 2.0)
    """
    if isinstance(value, bool):
        raise ValueError('must be a duration like "90s", "15m" or "2h"')
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("must not be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text and _WHOLE.fullmatch(text):
            return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    raise ValueError(f'must be a duration like "90s", "15m" or "2h", not {value!r}')


def format_duration(seconds: float) -> str:
    """Short human form: ``45s``, ``3m``, ``2h05m``, ``3d``.

    >>> format_duration(45), format_duration(185), format_duration(7500), format_duration(90000)
    ('45s', '3m', '2h05m', '1d01h')
    """
    s = int(max(0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"
