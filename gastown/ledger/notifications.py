"""Where each ``[[notify]]`` entry is in the event log (table ``notify_cursors``).

One row per notifier, keyed by its identity (``roles.notify_policy.notifier_key``): the
id of the last event it has dealt with, and whether it is failing (since when, and the
last error). Keeping the cursor in the ledger is what makes every event notify once
even across a Mayor restart. Writes belong inside ``Ledger.write()``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Cursor:
    notifier: str
    last_event: int
    failing_since: float | None
    last_error: str | None
    updated_at: float


def get_cursor(conn: sqlite3.Connection, notifier: str) -> Cursor | None:
    row = conn.execute("SELECT * FROM notify_cursors WHERE notifier = ?", (notifier,)).fetchone()
    return Cursor(**{k: row[k] for k in row.keys()}) if row else None


def start_cursor(conn: sqlite3.Connection, notifier: str, *, last_event: int, now: float) -> Cursor:
    """The notifier's cursor, made at ``last_event`` if it has none (a new notifier hears
    what happens from now on, not the whole history)."""
    conn.execute(
        "INSERT OR IGNORE INTO notify_cursors (notifier, last_event, updated_at) VALUES (?, ?, ?)",
        (notifier, last_event, now),
    )
    cursor = get_cursor(conn, notifier)
    assert cursor is not None
    return cursor


def advance(conn: sqlite3.Connection, notifier: str, *, last_event: int, now: float) -> None:
    """Move the cursor forward (never back)."""
    conn.execute(
        "UPDATE notify_cursors SET last_event = MAX(last_event, ?), updated_at = ? WHERE notifier = ?",
        (last_event, now, notifier),
    )


def set_failing(conn: sqlite3.Connection, notifier: str, *, error: str | None, now: float) -> bool:
    """Mark the notifier failing (``error``) or working again (None); returns whether that
    changed its state (so the change is reported once)."""
    cursor = get_cursor(conn, notifier)
    was_failing = cursor is not None and cursor.failing_since is not None
    if error is None:
        conn.execute("UPDATE notify_cursors SET failing_since = NULL, last_error = NULL, updated_at = ? WHERE notifier = ?",
                     (now, notifier))
        return was_failing
    conn.execute(
        "UPDATE notify_cursors SET failing_since = COALESCE(failing_since, ?), last_error = ?, updated_at = ?"
        " WHERE notifier = ?", (now, error, now, notifier),
    )
    return not was_failing
