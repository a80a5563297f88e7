"""The event log: one row per thing that happened, for `gt feed` and post-mortems.

Kinds in use: sling, queued, spawn, ready, prompt, nudge, dialog, stall, restart, dead,
done, blocked, escalation, hold, resume, stop, unsling, mr, merged, conflict, failed,
rejected, sendback, gate, mail, convoy, reap, mayor, issue, trigger, notify. Messages are one line.
The event log is also the one source of notifications (``roles.notifier``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from gastown.ledger.timefmt import iso


@dataclass(frozen=True)
class Event:
    id: int
    at: float
    kind: str
    rig: str | None
    polecat: str | None
    spawn: str | None
    issue: str | None
    message: str
    data: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Event:
        return cls(
            id=row["id"],
            at=row["at"],
            kind=row["kind"],
            rig=row["rig"],
            polecat=row["polecat"],
            spawn=row["spawn"],
            issue=row["issue"],
            message=row["message"],
            data=json.loads(row["data"]) if row["data"] else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": iso(self.at),
            "kind": self.kind,
            "rig": self.rig,
            "polecat": self.polecat,
            "spawn": self.spawn,
            "issue": self.issue,
            "message": self.message,
            "data": self.data,
        }


def record_event(
    conn: sqlite3.Connection,
    kind: str,
    message: str,
    *,
    now: float,
    rig: str | None = None,
    polecat: str | None = None,
    spawn: str | None = None,
    issue: str | None = None,
    data: dict[str, Any] | None = None,
) -> int:
    """Append one event; newlines in ``message`` are folded so it stays one line."""
    line = " ".join(message.split("\n"))
    cur = conn.execute(
        "INSERT INTO events (at, kind, rig, polecat, spawn, issue, message, data)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (now, kind, rig, polecat, spawn, issue, line, json.dumps(data) if data else None),
    )
    return int(cur.lastrowid or 0)


def list_events(
    conn: sqlite3.Connection,
    *,
    after_id: int = 0,
    since: float | None = None,
    issue: str | None = None,
    rig: str | None = None,
    kinds: tuple[str, ...] = (),
    limit: int | None = None,
    newest_first: bool = False,
) -> list[Event]:
    where: list[str] = ["id > ?"]
    args: list[Any] = [after_id]
    if since is not None:
        where.append("at >= ?")
        args.append(since)
    if issue is not None:
        where.append("issue = ?")
        args.append(issue)
    if rig is not None:
        where.append("rig = ?")
        args.append(rig)
    if kinds:
        where.append(f"kind IN ({','.join('?' * len(kinds))})")
        args.extend(kinds)
    sql = f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY id {'DESC' if newest_first else 'ASC'}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [Event.from_row(row) for row in conn.execute(sql, args)]


def last_event_id(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])


def count_events(conn: sqlite3.Connection, *, kinds: tuple[str, ...], since: float) -> int:
    """Events of ``kinds`` recorded at or after ``since``."""
    row = conn.execute(
        f"SELECT COUNT(*) FROM events WHERE kind IN ({','.join('?' * len(kinds))}) AND at >= ?", (*kinds, since)
    ).fetchone()
    return int(row[0])


def has_event_with(conn: sqlite3.Connection, *, issue: str, kind: str, data: dict[str, Any]) -> bool:
    """Whether the issue has an event of ``kind`` whose data holds every key/value of ``data``."""
    where = " AND ".join("json_extract(data, ?) = ?" for _ in data)
    args: list[Any] = [issue, kind]
    for key, value in data.items():
        args += [f"$.{key}", value]
    row = conn.execute(f"SELECT 1 FROM events WHERE issue = ? AND kind = ? AND {where} LIMIT 1", args).fetchone()
    return row is not None
