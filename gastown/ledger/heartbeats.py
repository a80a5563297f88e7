"""Heartbeats: each Mayor loop's last sign of life (table ``heartbeats``, one row per loop).

A loop beats ``working`` before each cycle and ``waiting`` after it; `gt up` waits for
every Witness to have beaten ``waiting`` once (one full patrol), and `gt status` shows
how long ago each loop last beat. Writes belong inside ``Ledger.write()``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class Beat:
    loop: str
    at: float
    pid: int
    detail: str | None


def beat(conn: sqlite3.Connection, loop: str, *, pid: int, detail: str, now: float) -> None:
    conn.execute(
        "INSERT INTO heartbeats (loop, at, pid, detail) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (loop) DO UPDATE SET at = excluded.at, pid = excluded.pid, detail = excluded.detail",
        (loop, now, pid, detail),
    )


def list_beats(conn: sqlite3.Connection) -> list[Beat]:
    rows = conn.execute("SELECT loop, at, pid, detail FROM heartbeats ORDER BY loop")
    return [Beat(row["loop"], row["at"], row["pid"], row["detail"]) for row in rows]


def loops_beating_since(conn: sqlite3.Connection, since: float, *, detail: str) -> set[str]:
    """The loops whose last beat, at or after ``since``, said ``detail``."""
    rows = conn.execute("SELECT loop FROM heartbeats WHERE at >= ? AND detail = ?", (since, detail))
    return {row["loop"] for row in rows}
