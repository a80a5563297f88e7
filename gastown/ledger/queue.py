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
    not_before: float | None = None  # after a failed start: not tried again before this time

    def to_json(self) -> dict[str, Any]:
        return {
            "issue": self.issue, "rig": self.rig, "polecat": self.polecat, "agent": self.agent,
            "priority": self.priority, "kind": self.kind, "enqueued_at": iso(self.enqueued_at),
            "failures": self.failures, "last_error": self.last_error, "retry_at": iso(self.not_before),
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


def requeue_after_failure(
    conn: sqlite3.Connection, item: Queued, *, failures: int, error: str, not_before: float
) -> None:
    """Put a sling whose start failed back in the queue (keeping its place) with its
    failures so far and the time before which it is not tried again. The failed start
    may already have taken it out of the queue; it is put back either way."""
    conn.execute(
        "INSERT INTO sling_queue (issue, rig, polecat, agent, priority, kind, start_point, note, enqueued_at, failures,"
        " last_error, not_before) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (issue) DO UPDATE SET failures = excluded.failures, last_error = excluded.last_error,"
        " not_before = excluded.not_before",
        (item.issue, item.rig, item.polecat, item.agent, item.priority, item.kind, item.start_point, item.note,
         item.enqueued_at, failures, error, not_before),
    )


def positions(conn: sqlite3.Connection) -> dict[str, int]:
    """``{issue: 1-based place in its rig's queue}``, in the scheduler's order."""
    places: dict[str, int] = {}
    per_rig: dict[str, int] = {}
    for item in list_queued(conn):
        per_rig[item.rig] = per_rig.get(item.rig, 0) + 1
        places[item.issue] = per_rig[item.rig]
    return places
