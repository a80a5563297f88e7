"""Issues: the units of work, from creation to closing.

Row functions (``create_issue``, ``get_issue``, ``set_issue_status``, ...) take a
connection and run inside the caller's transaction; the operations people reach
through `gt issue` (``create``, ``close``, ``reopen``) take the ``Ledger``, open their
own write transaction and record an event. Statuses and their allowed moves live in
``gastown.states``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gastown.errors import Conflict, InvalidInput, NotFound
from gastown.ledger.events import record_event
from gastown.ledger.ids import ISSUE_ID_RE, new_issue_id
from gastown.ledger.timefmt import iso
from gastown.states import IssueStatus, check_issue_transition

if TYPE_CHECKING:
    from gastown.ledger.db import Ledger

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
    counters_reset_at: float | None = None  # `gt issue reopen`: fix cycles count from here

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
            counters_reset_at=row["counters_reset_at"],
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


def reset_counters(conn: sqlite3.Connection, issue_id: str, *, now: float) -> None:
    """Start the issue's fix-cycle count afresh (merge requests before ``now`` no longer count)."""
    conn.execute("UPDATE issues SET counters_reset_at = ? WHERE id = ?", (now, issue_id))


def count_by_status(conn: sqlite3.Connection) -> dict[str, int]:
    counts = {str(s): 0 for s in IssueStatus}
    for row in conn.execute("SELECT status, COUNT(*) FROM issues GROUP BY status"):
        counts[row[0]] = row[1]
    return counts


def count_with_status(conn: sqlite3.Connection, ids: Collection[str], statuses: Collection[str]) -> int:
    """How many of ``ids`` are in one of ``statuses``."""
    if not ids or not statuses:
        return 0
    sql = (f"SELECT COUNT(*) FROM issues WHERE id IN ({','.join('?' * len(ids))})"
           f" AND status IN ({','.join('?' * len(statuses))})")
    return int(conn.execute(sql, [*ids, *statuses]).fetchone()[0])


def titles_of(conn: sqlite3.Connection, ids: Collection[str]) -> dict[str, str]:
    """Titles of the given issues, in chunks small enough for SQLite's variable limit."""
    wanted = sorted(set(ids))
    titles: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        rows = conn.execute(f"SELECT id, title FROM issues WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        titles.update((row["id"], row["title"]) for row in rows)
    return titles


# -- operations -------------------------------------------------------------------------


def choose_rig(rigs: Collection[str], wanted: str | None) -> str:
    """The rig a new issue goes to: the one named, else the only rig there is. Pure.

    >>> choose_rig(["app"], None), choose_rig(["app", "web"], "web")
    ('app', 'web')
    """
    if wanted is not None:
        if wanted not in rigs:
            known = ", ".join(sorted(rigs)) or "none yet"
            raise NotFound(f"no rig named {wanted!r} in this town (rigs: {known})", hint="add it with `gt rig add`")
        return wanted
    if len(rigs) == 1:
        return next(iter(rigs))
    if not rigs:
        raise NotFound("this town has no rigs yet", hint="add one with `gt rig add NAME REPO`")
    raise NotFound(
        f"this town has {len(rigs)} rigs; say which one with --rig",
        hint="rigs: " + ", ".join(sorted(rigs)),
    )


def create(
    ledger: Ledger, *, title: str, body: str, rig: str | None, priority: int, prefixes: Mapping[str, str]
) -> Issue:
    """A new open issue in ``rig`` (or the only rig), its id under the rig's prefix
    (``prefixes``: rig name -> issue prefix), with an event."""
    rig_name = choose_rig(prefixes, rig)
    with ledger.write() as conn:
        now = ledger.clock()
        issue = create_issue(conn, rig=rig_name, prefix=prefixes[rig_name], title=title, body=body,
                             priority=priority, now=now)
        record_event(conn, "issue", f"created: {_short(title)}", now=now, rig=rig_name, issue=issue.id)
    return issue


def close(ledger: Ledger, issue_id: str, *, reason: str | None) -> Issue:
    """Close the issue (idempotent), with an event."""
    with ledger.write() as conn:
        issue = get_issue(conn, issue_id)
        if issue.status == IssueStatus.CLOSED:
            return issue
        now = ledger.clock()
        issue = set_issue_status(conn, issue_id, IssueStatus.CLOSED, now=now, reason=reason or "closed by hand")
        record_event(conn, "issue", f"closed: {reason or 'by hand'}", now=now, rig=issue.rig, issue=issue_id)
    return issue


def reopen(ledger: Ledger, issue_id: str) -> Issue:
    """Reopen a closed or blocked issue (idempotent for an open one). A blocked issue that
    is still on its hook becomes ``hooked`` again (its agent resumes in its worktree).

    Only the issue's status and an event; ``gastown.roles.by_hand.reopen_issue`` also
    resets its counters and resolves its escalations (what `gt issue reopen` runs)."""
    with ledger.write() as conn:
        issue = get_issue(conn, issue_id)
        if issue.status == IssueStatus.OPEN:
            return issue
        if issue.status not in (IssueStatus.CLOSED, IssueStatus.BLOCKED):
            raise Conflict(
                f"issue {issue_id} is {issue.status}, not closed or blocked",
                hint="only closed or blocked issues can be reopened",
            )
        now = ledger.clock()
        hooked = conn.execute("SELECT 1 FROM hooks WHERE issue = ?", (issue_id,)).fetchone() is not None
        issue = set_issue_status(conn, issue_id, IssueStatus.HOOKED if hooked else IssueStatus.OPEN, now=now)
        record_event(conn, "issue", "reopened" + (" on its hook" if hooked else ""), now=now,
                     rig=issue.rig, issue=issue_id)
    return issue


def edit(
    ledger: Ledger, issue_id: str, *, title: str | None = None, body: str | None = None, priority: int | None = None
) -> tuple[Issue, list[str]]:
    """Change the title, body and/or priority of an issue, with an event naming what changed;
    returns the issue and the fields that changed (none: nothing written). A queued sling
    of the issue takes the new priority; its merge requests keep the one they were
    submitted with."""
    if title is not None:
        check_text("title", title, MAX_TITLE_BYTES)
        if not title.strip():
            raise InvalidInput("the issue title is empty", hint="give the issue a title")
    if body is not None:
        check_text("body", body, MAX_BODY_BYTES)
    if priority is not None and not 0 <= priority <= 4:
        raise InvalidInput(f"priority {priority} is out of range", hint="use 0 (most urgent) to 4")
    with ledger.write() as conn:
        issue = get_issue(conn, issue_id)
        wanted = {"title": title, "body": body, "priority": priority}
        changed = [name for name, value in wanted.items() if value is not None and value != getattr(issue, name)]
        if not changed:
            return issue, []
        now = ledger.clock()
        conn.execute(
            "UPDATE issues SET title = ?, body = ?, priority = ?, updated_at = ? WHERE id = ?",
            (title if title is not None else issue.title, body if body is not None else issue.body,
             priority if priority is not None else issue.priority, now, issue_id),
        )
        if priority is not None and "priority" in changed:
            from gastown.ledger.queue import set_priority

            set_priority(conn, issue_id, priority)
        record_event(conn, "issue", f"edited: {', '.join(changed)}", now=now, rig=issue.rig, issue=issue_id,
                     data={"changed": changed})
        return get_issue(conn, issue_id), changed


def _short(text: str, limit: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
