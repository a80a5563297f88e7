"""Issue rows: create, read, list and move between statuses."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from gastown.errors import InvalidInput, NotFound
from gastown.ledger.ids import ISSUE_ID_RE, new_issue_id
from gastown.ledger.timefmt import iso
from gastown.states import IssueStatus, check_issue_transition

MAX_TITLE_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Issue:
    id: str
    rig: str
    title: str
    body: str
    priority: int
    status: IssueStatus
    created_at: float
    updated_at: float
    closed_at: float | None
    close_reason: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Issue:
        return cls(
            id=row["id"],
            rig=row["rig"],
            title=row["title"],
            body=row["body"],
            priority=row["priority"],
            status=IssueStatus(row["status"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            closed_at=row["closed_at"],
            close_reason=row["close_reason"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rig": self.rig,
            "title": self.title,
            "body": self.body,
            "priority": self.priority,
            "status": str(self.status),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "closed_at": iso(self.closed_at),
            "close_reason": self.close_reason,
        }


def check_text(what: str, text: str, limit: int) -> str:
    """Refuse text SQLite cannot store faithfully (undecodable bytes) or that is absurdly large."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"the {what} is not valid UTF-8", hint="pass text encoded as UTF-8") from None
    if size > limit:
        raise InvalidInput(f"the {what} is {size} bytes; the limit is {limit}", hint="shorten it or attach a file path instead")
    return text


def create_issue(
    conn: sqlite3.Connection, *, rig: str, prefix: str, title: str, body: str, priority: int, now: float
) -> Issue:
    """Insert a new open issue under a fresh unique id (retrying on the rare clash).

    Must run inside ``Ledger.write()``.
    """
    check_text("title", title, MAX_TITLE_BYTES)
    check_text("body", body, MAX_BODY_BYTES)
    if not title.strip():
        raise InvalidInput("the issue title is empty", hint="give the issue a title")
    if not 0 <= priority <= 4:
        raise InvalidInput(f"priority {priority} is out of range", hint="use 0 (most urgent) to 4")
    for _ in range(50):
        issue_id = new_issue_id(prefix)
        try:
            conn.execute(
                "INSERT INTO issues (id, rig, title, body, priority, status, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, 'open', ?, ?)",
                (issue_id, rig, title, body, priority, now, now),
            )
        except sqlite3.IntegrityError:
            continue
        return get_issue(conn, issue_id)
    raise InvalidInput(f"could not find a free issue id with prefix {prefix!r}")


def find_issue(conn: sqlite3.Connection, issue_id: str) -> Issue | None:
    row = conn.execute("SELECT * FROM issues WHERE id = ?", (issue_id,)).fetchone()
    return Issue.from_row(row) if row else None


def get_issue(conn: sqlite3.Connection, issue_id: str) -> Issue:
    issue = find_issue(conn, issue_id)
    if issue is None:
        if not ISSUE_ID_RE.match(issue_id):
            raise NotFound(
                f"{issue_id!r} is not an issue id (they look like app-k3x9q)",
                hint="list issues with `gt issue list`",
            )
        raise NotFound(f"no issue {issue_id} in this town", hint="list issues with `gt issue list`")
    return issue


def list_issues(
    conn: sqlite3.Connection, *, rig: str | None = None, status: IssueStatus | None = None
) -> list[Issue]:
    sql = "SELECT * FROM issues"
    where, args = [], []
    if rig is not None:
        where.append("rig = ?")
        args.append(rig)
    if status is not None:
        where.append("status = ?")
        args.append(str(status))
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY priority, created_at, id"
    return [Issue.from_row(row) for row in conn.execute(sql, args)]


def set_issue_status(
    conn: sqlite3.Connection, issue_id: str, new: IssueStatus, *, now: float, reason: str | None = None
) -> Issue:
    """Move an issue to ``new`` if the transition table allows it. Run inside ``Ledger.write()``."""
    issue = get_issue(conn, issue_id)
    check_issue_transition(issue_id, issue.status, new)
    closed_at = now if new == IssueStatus.CLOSED else None
    close_reason = reason if new in (IssueStatus.CLOSED, IssueStatus.BLOCKED) else None
    conn.execute(
        "UPDATE issues SET status = ?, updated_at = ?, closed_at = ?, close_reason = ? WHERE id = ?",
        (str(new), now, closed_at, close_reason, issue_id),
    )
    return get_issue(conn, issue_id)


def count_by_status(conn: sqlite3.Connection) -> dict[str, int]:
    counts = {str(s): 0 for s in IssueStatus}
    for row in conn.execute("SELECT status, COUNT(*) FROM issues GROUP BY status"):
        counts[row[0]] = row[1]
    return counts
