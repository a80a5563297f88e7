"""Convoy rows: named groups of issues tracked to completion together.

A convoy is ``open`` while any of its issues is not closed and ``closed`` once all are
(a convoy with no issues yet stays open). An issue may be in several convoys. Ids are
``cv-xxxxxx``; names are free text, stored and shown exactly as given and not unique.
Every function runs on a connection the caller owns; writes belong inside
``Ledger.write()``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gastown.errors import InvalidInput, NotFound
from gastown.ledger.ids import new_id
from gastown.ledger.issues import check_text, get_issue
from gastown.ledger.timefmt import iso

MAX_NAME_BYTES = 64 * 1024
CONVOY_ID_PREFIX = "cv-"


@dataclass(frozen=True)
class Convoy:
    id: str
    name: str
    status: str  # open | closed
    created_at: float
    updated_at: float
    closed_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Convoy:
        return cls(
            id=row["id"],
            name=row["name"],
            status=row["status"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            closed_at=row["closed_at"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "closed_at": iso(self.closed_at),
        }


def insert_convoy(conn: sqlite3.Connection, *, name: str, now: float) -> Convoy:
    """A new, empty, open convoy under a fresh id (retrying on the rare clash)."""
    check_text("convoy name", name, MAX_NAME_BYTES)
    if not name.strip():
        raise InvalidInput("the convoy name is empty", hint="give the convoy a name")
    for _ in range(50):
        convoy_id = new_id("cv")
        try:
            conn.execute(
                "INSERT INTO convoys (id, name, status, created_at, updated_at) VALUES (?, ?, 'open', ?, ?)",
                (convoy_id, name, now, now),
            )
        except sqlite3.IntegrityError:
            continue
        return get_convoy(conn, convoy_id)
    raise InvalidInput("could not find a free convoy id")


def find_convoy(conn: sqlite3.Connection, convoy_id: str) -> Convoy | None:
    row = conn.execute("SELECT * FROM convoys WHERE id = ?", (convoy_id,)).fetchone()
    return Convoy.from_row(row) if row else None


def get_convoy(conn: sqlite3.Connection, convoy_id: str) -> Convoy:
    convoy = find_convoy(conn, convoy_id)
    if convoy is None:
        raise NotFound(f"no convoy {convoy_id} in this town", hint="list convoys with `gt convoy list`")
    return convoy


def resolve_convoy(conn: sqlite3.Connection, ref: str) -> Convoy:
    """The convoy whose id is ``ref``, else the one convoy whose name is exactly ``ref``.

    Raises ``NotFound`` when none matches and ``InvalidInput`` when several share the name.
    """
    convoy = find_convoy(conn, ref)
    if convoy is not None:
        return convoy
    rows = conn.execute("SELECT * FROM convoys WHERE name = ? ORDER BY created_at, id", (ref,)).fetchall()
    if len(rows) == 1:
        return Convoy.from_row(rows[0])
    if len(rows) > 1:
        ids = ", ".join(row["id"] for row in rows)
        raise InvalidInput(f"{len(rows)} convoys are named {ref!r} ({ids})", hint="name the convoy by its id")
    if ref.startswith(CONVOY_ID_PREFIX):
        raise NotFound(f"no convoy {ref} in this town", hint="list convoys with `gt convoy list`")
    raise NotFound(
        f"no convoy has the id or name {ref!r}", hint="convoy ids look like cv-k3x9q2; list them with `gt convoy list`"
    )


def list_convoys(conn: sqlite3.Connection, *, status: str | None = None) -> list[Convoy]:
    """Open convoys first, then newest first."""
    sql = "SELECT * FROM convoys"
    args: list[Any] = []
    if status is not None:
        sql += " WHERE status = ?"
        args.append(status)
    sql += " ORDER BY status = 'closed', created_at DESC, id"
    return [Convoy.from_row(row) for row in conn.execute(sql, args)]


def add_issues(conn: sqlite3.Connection, convoy_id: str, issues: Iterable[str], *, now: float) -> list[str]:
    """Add issues (each must exist) to the convoy; returns those not already in it.

    Adding an issue that is not closed to a closed convoy reopens the convoy.
    """
    convoy = get_convoy(conn, convoy_id)
    added = []
    for issue_id in issues:
        issue = get_issue(conn, issue_id)
        inserted = conn.execute(
            "INSERT OR IGNORE INTO convoy_issues (convoy, issue, added_at) VALUES (?, ?, ?)",
            (convoy.id, issue.id, now),
        ).rowcount
        if inserted:
            added.append(issue.id)
    if added:
        conn.execute("UPDATE convoys SET updated_at = ? WHERE id = ?", (now, convoy.id))
    return added


def issues_of(conn: sqlite3.Connection, convoy_id: str) -> list[str]:
    """The convoy's issue ids in the order they were added."""
    rows = conn.execute(
        "SELECT issue FROM convoy_issues WHERE convoy = ? ORDER BY added_at, rowid", (convoy_id,)
    )
    return [row[0] for row in rows]


def convoys_of_issue(conn: sqlite3.Connection, issue_id: str) -> list[str]:
    rows = conn.execute("SELECT convoy FROM convoy_issues WHERE issue = ? ORDER BY added_at", (issue_id,))
    return [row[0] for row in rows]


def progress(conn: sqlite3.Connection, convoy_ids: Sequence[str] | None = None) -> dict[str, tuple[int, int]]:
    """``{convoy: (closed issues, all issues)}`` in one query (every convoy when ids is None)."""
    sql = (
        "SELECT ci.convoy, SUM(i.status = 'closed'), COUNT(*) FROM convoy_issues ci"
        " JOIN issues i ON i.id = ci.issue"
    )
    args: list[Any] = []
    if convoy_ids is not None:
        if not convoy_ids:
            return {}
        sql += f" WHERE ci.convoy IN ({','.join('?' * len(convoy_ids))})"
        args.extend(convoy_ids)
    sql += " GROUP BY ci.convoy"
    return {row[0]: (int(row[1] or 0), int(row[2])) for row in conn.execute(sql, args)}


def finished_open(conn: sqlite3.Connection) -> list[str]:
    """Open convoys that have issues, all of them closed: they are due to close."""
    rows = conn.execute(
        "SELECT c.id FROM convoys c WHERE c.status = 'open'"
        " AND EXISTS (SELECT 1 FROM convoy_issues ci WHERE ci.convoy = c.id)"
        " AND NOT EXISTS (SELECT 1 FROM convoy_issues ci JOIN issues i ON i.id = ci.issue"
        "                 WHERE ci.convoy = c.id AND i.status != 'closed')"
        " ORDER BY c.created_at"
    )
    return [row[0] for row in rows]


def unfinished_closed(conn: sqlite3.Connection) -> list[str]:
    """Closed convoys holding an issue that is not closed (added or reopened since)."""
    rows = conn.execute(
        "SELECT DISTINCT c.id FROM issues i JOIN convoy_issues ci ON ci.issue = i.id"
        " JOIN convoys c ON c.id = ci.convoy WHERE i.status != 'closed' AND c.status = 'closed'"
    )
    return [row[0] for row in rows]


def set_convoy_status(conn: sqlite3.Connection, convoy_id: str, status: str, *, now: float) -> Convoy:
    """Mark the convoy ``open`` or ``closed`` (closed_at is set on closing, cleared on reopening)."""
    if status not in ("open", "closed"):
        raise ValueError(f"convoy status {status!r}")
    conn.execute(
        "UPDATE convoys SET status = ?, updated_at = ?, closed_at = ? WHERE id = ?",
        (status, now, now if status == "closed" else None, convoy_id),
    )
    return get_convoy(conn, convoy_id)
