"""Timestamps: stored as unix seconds (REAL), shown as ISO 8601 UTC in JSON."""

from __future__ import annotations

import datetime as dt


def iso(ts: float | None) -> str | None:
    """``2026-11-23T18:54:00.123Z`` or None.

    >>> iso(0)
    '1970-01-01T00:00:00.000Z'
    """
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
