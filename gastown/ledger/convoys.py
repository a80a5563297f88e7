"""Convoys: named groups of issues tracked to completion together.

A convoy is ``open`` while any of its issues is not closed and ``closed`` once all are
(a convoy with no issues yet stays open); closing is called landing. An issue may be in
several convoys. Ids are ``cv-xxxxxx``; names are free text, stored and shown exactly
as given and not unique.

A convoy lands (closes itself, with an event) once every one of its issues is closed,
whether by the refinery merging its work or by hand; the Deacon calls
``close_finished`` every patrol and the convoy commands call it before they read, so
what they show is current. Adding an open issue to a landed convoy, or reopening one
of its issues, opens it again. `gt convoy show` says, per issue, what the rest of the
convoy waits on: its agent, its place in the sling queue, its merge request, or the
reason it is blocked and the escalation about it.

Row functions take a connection (writes inside ``Ledger.write()``); the operations
(``create``, ``add``, ``listing``, ``show``, ``view``, ``close_finished``,
``for_sling``) take the ``Ledger``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gastown.errors import InvalidInput, NotFound
from gastown.ledger import work
from gastown.ledger.escalations import latest_for_issue as latest_escalation
from gastown.ledger.events import record_event
from gastown.ledger.ids import new_id
from gastown.ledger.issues import check_text, get_issue
from gastown.ledger.mrs import latest_for_issue as latest_mr
from gastown.ledger.queue import positions as queue_positions
from gastown.ledger.timefmt import iso

if TYPE_CHECKING:
    from gastown.ledger.db import Ledger

MAX_NAME_BYTES = 64 * 1024
CONVOY_ID_PREFIX = "cv-"
AUTO_NAME_LIMIT = 80


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


# -- progress ----------------------------------------------------------------------------


@dataclass(frozen=True)
class IssueProgress:
    """One issue of a convoy and what, if anything, it waits on."""

    id: str
    title: str
    rig: str
    status: str
    reason: str | None = None  # why it is closed or blocked
    polecat: str | None = None  # RIG/POLECAT holding it
    spawn: str | None = None
    agent_state: str | None = None  # spawning, working, idle, stalled, dead, done, not running
    queue_position: int | None = None  # 1-based place in its rig's sling queue
    mr: str | None = None  # latest merge request
    mr_state: str | None = None
    mr_detail: str | None = None
    escalation: str | None = None  # latest escalation about it (open ones first)
    escalation_severity: str | None = None
    escalation_message: str | None = None
    escalation_acked: bool = False

    @property
    def closed(self) -> bool:
        return self.status == "closed"

    @property
    def merged(self) -> bool:
        return self.closed and self.mr_state == "merged"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "rig": self.rig,
            "status": self.status,
            "reason": self.reason,
            "polecat": self.polecat,
            "spawn": self.spawn,
            "agent_state": self.agent_state,
            "queue_position": self.queue_position,
            "mr": {"id": self.mr, "state": self.mr_state, "detail": self.mr_detail} if self.mr else None,
            "escalation": (
                {"id": self.escalation, "severity": self.escalation_severity,
                 "message": self.escalation_message, "acked": self.escalation_acked}
                if self.escalation else None
            ),
            "waiting_on": waiting_on(self),
        }


@dataclass(frozen=True)
class ConvoyView:
    convoy: Convoy
    closed: int
    total: int
    issues: tuple[IssueProgress, ...] = field(default=())

    @property
    def merged(self) -> int:
        return sum(1 for issue in self.issues if issue.merged)

    def to_json(self, *, with_issues: bool = True) -> dict[str, Any]:
        out = {**self.convoy.to_json(), "total": self.total, "closed": self.closed}
        if with_issues:
            out["merged"] = self.merged
            out["issues"] = [issue.to_json() for issue in self.issues]
        return out


def waiting_on(issue: IssueProgress) -> str:
    """One line saying where the issue stands and what it waits on. Pure.

    >>> waiting_on(IssueProgress("app-1", "t", "app", "open", queue_position=2))
    "waiting for a free polecat (#2 in app's queue)"
    """
    if issue.status == "closed":
        if issue.merged:
            return f"merged ({issue.mr})"
        return f"closed: {issue.reason}" if issue.reason else "closed"
    if issue.status == "blocked":
        text = f"blocked: {issue.reason}" if issue.reason else "blocked"
        if issue.escalation:
            acked = ", acknowledged" if issue.escalation_acked else ""
            text += f"; escalation {issue.escalation} [{issue.escalation_severity}{acked}]"
        return text
    if issue.status == "in_review":
        if issue.mr_state == "queued":
            return f"in the merge queue ({issue.mr})"
        if issue.mr_state == "testing":
            return f"being tested by the refinery ({issue.mr})"
        if issue.mr_state in ("conflict", "failed"):
            detail = f": {issue.mr_detail}" if issue.mr_detail else ""
            return f"merge request {issue.mr} {issue.mr_state}{detail}"
        return "in review"
    if issue.status == "hooked":
        who = issue.polecat or "a polecat"
        state = issue.agent_state or "not running"
        if issue.mr_state in ("conflict", "failed"):
            return f"{who} is fixing merge request {issue.mr} ({issue.mr_state}); agent {state}"
        return f"{who}: agent {state}"
    if issue.queue_position is not None:
        return f"waiting for a free polecat (#{issue.queue_position} in {issue.rig}'s queue)"
    return f"not slung yet (gt sling {issue.id})"


def auto_name(titles: Sequence[str], name: str | None, no_convoy: bool) -> str | None:
    """The name of the convoy `gt sling` makes, or None for none. Pure.

    An explicit ``--convoy NAME`` always makes one; several issues make one named after
    the first issue's title unless ``--no-convoy``.

    >>> auto_name(["Fix login", "Fix logout"], None, False), auto_name(["Solo"], None, False)
    ('Fix login', None)
    """
    if no_convoy:
        if name is not None:
            raise InvalidInput("--convoy and --no-convoy contradict each other", hint="use one of them")
        return None
    if name is not None:
        return name
    if len(titles) > 1:
        line = " ".join(titles[0].split())
        return line if len(line) <= AUTO_NAME_LIMIT else line[: AUTO_NAME_LIMIT - 1] + "…"
    return None


# -- operations ---------------------------------------------------------------------------


def create(ledger: Ledger, name: str, issues: Sequence[str] = ()) -> ConvoyView:
    """A new open convoy holding ``issues`` (each must exist; ``NotFound`` names the first that does not)."""
    with ledger.write() as conn:
        now = ledger.clock()
        for issue_id in issues:
            get_issue(conn, issue_id)
        convoy = insert_convoy(conn, name=name, now=now)
        added = add_issues(conn, convoy.id, _unique(issues), now=now)
        record_event(
            conn, "convoy", f"convoy {convoy.id} created with {len(added)} issue(s): {name}", now=now,
            data={"convoy": convoy.id, "issues": added},
        )
        _settle(conn, now)
    return view(ledger, convoy.id)


def add(ledger: Ledger, convoy_ref: str, issues: Sequence[str]) -> tuple[ConvoyView, list[str]]:
    """Add issues to a convoy (by id, or by its exact name if unique); returns the view and
    the issues that were not in it yet. An open issue reopens a landed convoy."""
    if not issues:
        raise InvalidInput("name at least one issue to add", hint="gt convoy add CONVOY ISSUE...")
    with ledger.write() as conn:
        now = ledger.clock()
        convoy = resolve_convoy(conn, convoy_ref)
        added = add_issues(conn, convoy.id, _unique(issues), now=now)
        if added:
            record_event(
                conn, "convoy", f"convoy {convoy.id}: added {', '.join(added)}", now=now,
                data={"convoy": convoy.id, "issues": added},
            )
        _settle(conn, now)
    return view(ledger, convoy.id), added


def listing(ledger: Ledger, *, include_closed: bool = True) -> list[ConvoyView]:
    """Every convoy (open first, then newest) with its progress; no per-issue detail."""
    close_finished(ledger)
    conn = ledger.connection()
    convoys = list_convoys(conn, status=None if include_closed else "open")
    counts = progress(conn)
    return [ConvoyView(c, *counts.get(c.id, (0, 0))) for c in convoys]


def show(ledger: Ledger, convoy_ref: str) -> ConvoyView:
    close_finished(ledger)
    return view(ledger, resolve_convoy(ledger.connection(), convoy_ref).id)


def view(ledger: Ledger, convoy_id: str) -> ConvoyView:
    """The convoy with each issue's progress, from one consistent read of the ledger."""
    with ledger.read() as conn:
        convoy = get_convoy(conn, convoy_id)
        queue = queue_positions(conn)
        issues = tuple(_progress(conn, issue_id, queue) for issue_id in issues_of(conn, convoy_id))
    closed = sum(1 for issue in issues if issue.closed)
    return ConvoyView(convoy, closed, len(issues), issues)


def close_finished(ledger: Ledger) -> list[str]:
    """Close every open convoy whose issues are all closed (and reopen a closed one that
    holds an open issue again); returns the ids it closed.

    Idempotent and cheap: one read query when nothing is due, a write only when
    something changes. Each change records a ``convoy`` event.
    """
    conn = ledger.connection()
    if not finished_open(conn) and not unfinished_closed(conn):
        return []
    with ledger.write() as conn:
        return _settle(conn, ledger.clock())


def for_sling(ledger: Ledger, issues: Sequence[str], *, name: str | None, no_convoy: bool) -> ConvoyView | None:
    """The convoy `gt sling ISSUE...` puts its issues in (see ``auto_name``), or None.

    Slinging the same issues again under the same name reuses the open convoy made the
    first time instead of making a twin.
    """
    conn = ledger.connection()
    titles = [get_issue(conn, issue_id).title for issue_id in issues]
    wanted = auto_name(titles, name, no_convoy)
    if wanted is None:
        return None
    unique = _unique(issues)
    for convoy in list_convoys(conn, status="open"):
        if convoy.name == wanted and issues_of(conn, convoy.id) == unique:
            return view(ledger, convoy.id)
    return create(ledger, wanted, unique)


# -- helpers ----------------------------------------------------------------------------


def _settle(conn: sqlite3.Connection, now: float) -> list[str]:
    closed = []
    for convoy_id in finished_open(conn):
        convoy = set_convoy_status(conn, convoy_id, "closed", now=now)
        total = len(issues_of(conn, convoy_id))
        record_event(
            conn, "convoy", f"convoy {convoy_id} landed: all {total} issue(s) closed: {convoy.name}", now=now,
            data={"convoy": convoy_id, "status": "closed"},
        )
        closed.append(convoy_id)
    for convoy_id in unfinished_closed(conn):
        convoy = set_convoy_status(conn, convoy_id, "open", now=now)
        record_event(
            conn, "convoy", f"convoy {convoy_id} reopened: it has open issues again: {convoy.name}", now=now,
            data={"convoy": convoy_id, "status": "open"},
        )
    return closed


def _progress(conn: sqlite3.Connection, issue_id: str, queue: dict[str, int]) -> IssueProgress:
    issue = get_issue(conn, issue_id)
    found: dict[str, Any] = {}
    hook = work.get_hook(conn, issue_id)
    if hook is not None:
        found["polecat"] = f"{hook.rig}/{hook.polecat}"
        spawn = work.get_spawn(conn, hook.spawn) if hook.spawn else None
        found["spawn"] = spawn.id if spawn else None
        found["agent_state"] = _agent_state(spawn)
    mr = latest_mr(conn, issue_id)
    if mr is not None:
        found.update(mr=mr.id, mr_state=str(mr.state), mr_detail=mr.detail)
    esc = latest_escalation(conn, issue_id)
    if esc is not None and (issue.status == "blocked" or esc.open):
        found.update(
            escalation=esc.id, escalation_severity=esc.severity, escalation_message=esc.message,
            escalation_acked=esc.acked_at is not None,
        )
    return IssueProgress(
        id=issue.id, title=issue.title, rig=issue.rig, status=str(issue.status), reason=issue.close_reason,
        queue_position=queue.get(issue_id), **found,
    )


def _agent_state(spawn: work.Spawn | None) -> str:
    """The agent's state as the Witness last saw it (the ledger's view; no tmux call)."""
    if spawn is None or spawn.status in ("ended", "failed"):
        return "not running"
    if spawn.status == "done":
        return "done"
    if spawn.status == "starting":
        return "spawning"
    return spawn.observed


def _unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ids))
