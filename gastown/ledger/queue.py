"""The sling queue: slings waiting for capacity (table ``sling_queue``, one row per issue).

`gt sling` queues an issue when the rig or town is at capacity, its runtime is held or a
budget is spent; the scheduler starts queued slings oldest-highest-priority first. A
fix cycle sent back by the refinery is queued the same way (``kind="fix"`` with the
commit to start from and the note for the prompt). Writes belong inside
``Ledger.write()``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from typing import Any

from gastown.ledger.timefmt import iso


@dataclass(frozen=True)
class Queued:
    issue: str
    rig: str
    polecat: str | None
    agent: str | None
    priority: int
    kind: str
    start_point: str | None
    note: str | None
    enqueued_at: float
    failures: int
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "issue": self.issue, "rig": self.rig, "polecat": self.polecat, "agent": self.agent,
            "priority": self.priority, "kind": self.kind, "enqueued_at": iso(self.enqueued_at),
            "failures": self.failures, "last_error": self.last_error,
        }


_COLUMNS = tuple(f.name for f in fields(Queued))


def _queued(row: sqlite3.Row) -> Queued:
    return Queued(**{name: row[name] for name in _COLUMNS})


def list_queued(conn: sqlite3.Connection, rig: str | None = None) -> list[Queued]:
    """Queued slings in the order the scheduler takes them (priority, then age)."""
    if rig is None:
        rows = conn.execute("SELECT * FROM sling_queue ORDER BY priority, enqueued_at, issue")
    else:
        rows = conn.execute("SELECT * FROM sling_queue WHERE rig = ? ORDER BY priority, enqueued_at, issue", (rig,))
    return [_queued(row) for row in rows]


def get_queued(conn: sqlite3.Connection, issue: str) -> Queued | None:
    row = conn.execute("SELECT * FROM sling_queue WHERE issue = ?", (issue,)).fetchone()
    return _queued(row) if row else None


def enqueue(
    conn: sqlite3.Connection, *, issue: str, rig: str, polecat: str | None, agent: str | None, priority: int,
    kind: str, start_point: str | None, note: str | None, now: float,
) -> bool:
    """Queue a sling; an issue already queued keeps its place. Returns whether it was added."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO sling_queue (issue, rig, polecat, agent, priority, kind, start_point, note, enqueued_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (issue, rig, polecat, agent, priority, kind, start_point, note, now),
    )
    return cur.rowcount > 0


def set_priority(conn: sqlite3.Connection, issue: str, priority: int) -> None:
    """A queued sling takes its issue's new priority (`gt issue edit --priority`)."""
    conn.execute("UPDATE sling_queue SET priority = ? WHERE issue = ?", (priority, issue))


def dequeue(conn: sqlite3.Connection, issue: str) -> bool:
    return conn.execute("DELETE FROM sling_queue WHERE issue = ?", (issue,)).rowcount > 0


def count_failure(conn: sqlite3.Connection, issue: str, error: str) -> int:
    """Record one more failed start of a queued sling; returns its failures so far."""
    conn.execute("UPDATE sling_queue SET failures = failures + 1, last_error = ? WHERE issue = ?", (error, issue))
    row = conn.execute("SELECT failures FROM sling_queue WHERE issue = ?", (issue,)).fetchone()
    return int(row[0]) if row else 0


def positions(conn: sqlite3.Connection) -> dict[str, int]:
    """``{issue: 1-based place in its rig's queue}``, in the scheduler's order."""
    places: dict[str, int] = {}
    per_rig: dict[str, int] = {}
    for item in list_queued(conn):
        per_rig[item.rig] = per_rig.get(item.rig, 0) + 1
        places[item.issue] = per_rig[item.rig]
    return places
