"""Convoys: named groups of issues tracked to completion together.

A convoy lands (closes itself, with an event) once every one of its issues is closed,
whether by the refinery merging its work or by hand; the Deacon calls
``close_finished`` every patrol and the convoy commands call it before they read, so
what they show is current. Adding an open issue to a landed convoy, or reopening one
of its issues, opens it again. `gt convoy show` says, per issue, what the rest of the
convoy waits on: its agent, its place in the sling queue, its merge request, or the
reason it is blocked and the escalation about it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gastown.context import Context
from gastown.errors import InvalidInput
from gastown.ledger import convoys as rows
from gastown.ledger import work
from gastown.ledger.convoys import Convoy
from gastown.ledger.events import record_event
from gastown.ledger.issues import get_issue

AUTO_NAME_LIMIT = 80


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


# -- commands ---------------------------------------------------------------------------


def create(ctx: Context, name: str, issues: Sequence[str] = ()) -> ConvoyView:
    """A new open convoy holding ``issues`` (each must exist; ``NotFound`` names the first that does not)."""
    with ctx.ledger.write() as conn:
        now = ctx.now()
        for issue_id in issues:
            get_issue(conn, issue_id)
        convoy = rows.insert_convoy(conn, name=name, now=now)
        added = rows.add_issues(conn, convoy.id, _unique(issues), now=now)
        record_event(
            conn, "convoy", f"convoy {convoy.id} created with {len(added)} issue(s): {name}", now=now,
            data={"convoy": convoy.id, "issues": added},
        )
        _settle(conn, now)
    return view(ctx, convoy.id)


def add(ctx: Context, convoy_ref: str, issues: Sequence[str]) -> tuple[ConvoyView, list[str]]:
    """Add issues to a convoy (by id, or by its exact name if unique); returns the view and
    the issues that were not in it yet. An open issue reopens a landed convoy."""
    if not issues:
        raise InvalidInput("name at least one issue to add", hint="gt convoy add CONVOY ISSUE...")
    with ctx.ledger.write() as conn:
        now = ctx.now()
        convoy = rows.resolve_convoy(conn, convoy_ref)
        added = rows.add_issues(conn, convoy.id, _unique(issues), now=now)
        if added:
            record_event(
                conn, "convoy", f"convoy {convoy.id}: added {', '.join(added)}", now=now,
                data={"convoy": convoy.id, "issues": added},
            )
        _settle(conn, now)
    return view(ctx, convoy.id), added


def listing(ctx: Context, *, include_closed: bool = True) -> list[ConvoyView]:
    """Every convoy (open first, then newest) with its progress; no per-issue detail."""
    close_finished(ctx)
    conn = ctx.ledger.connection()
    convoys = rows.list_convoys(conn, status=None if include_closed else "open")
    counts = rows.progress(conn)
    return [ConvoyView(c, *counts.get(c.id, (0, 0))) for c in convoys]


def show(ctx: Context, convoy_ref: str) -> ConvoyView:
    close_finished(ctx)
    return view(ctx, rows.resolve_convoy(ctx.ledger.connection(), convoy_ref).id)


def view(ctx: Context, convoy_id: str) -> ConvoyView:
    """The convoy with each issue's progress, from one consistent read of the ledger."""
    with ctx.ledger.read() as conn:
        convoy = rows.get_convoy(conn, convoy_id)
        queue = _queue_positions(conn)
        issues = tuple(_progress(conn, issue_id, queue) for issue_id in rows.issues_of(conn, convoy_id))
    closed = sum(1 for issue in issues if issue.closed)
    return ConvoyView(convoy, closed, len(issues), issues)


def close_finished(ctx: Context) -> list[str]:
    """Close every open convoy whose issues are all closed (and reopen a closed one that
    holds an open issue again); returns the ids it closed.

    Idempotent and cheap: one read query when nothing is due, a write only when
    something changes. Each change records a ``convoy`` event.
    """
    conn = ctx.ledger.connection()
    if not rows.finished_open(conn) and not rows.unfinished_closed(conn):
        return []
    with ctx.ledger.write() as conn:
        return _settle(conn, ctx.now())


def for_sling(ctx: Context, issues: Sequence[str], *, name: str | None, no_convoy: bool) -> ConvoyView | None:
    """The convoy `gt sling ISSUE...` puts its issues in (see ``auto_name``), or None.

    Slinging the same issues again under the same name reuses the open convoy made the
    first time instead of making a twin.
    """
    conn = ctx.ledger.connection()
    titles = [get_issue(conn, issue_id).title for issue_id in issues]
    wanted = auto_name(titles, name, no_convoy)
    if wanted is None:
        return None
    unique = _unique(issues)
    for convoy in rows.list_convoys(conn, status="open"):
        if convoy.name == wanted and rows.issues_of(conn, convoy.id) == unique:
            return view(ctx, convoy.id)
    return create(ctx, wanted, unique)


# -- helpers ----------------------------------------------------------------------------


def _settle(conn: sqlite3.Connection, now: float) -> list[str]:
    closed = []
    for convoy_id in rows.finished_open(conn):
        convoy = rows.set_convoy_status(conn, convoy_id, "closed", now=now)
        total = len(rows.issues_of(conn, convoy_id))
        record_event(
            conn, "convoy", f"convoy {convoy_id} landed: all {total} issue(s) closed: {convoy.name}", now=now,
            data={"convoy": convoy_id, "status": "closed"},
        )
        closed.append(convoy_id)
    for convoy_id in rows.unfinished_closed(conn):
        convoy = rows.set_convoy_status(conn, convoy_id, "open", now=now)
        record_event(
            conn, "convoy", f"convoy {convoy_id} reopened: it has open issues again: {convoy.name}", now=now,
            data={"convoy": convoy_id, "status": "open"},
        )
    return closed


def _queue_positions(conn: sqlite3.Connection) -> dict[str, int]:
    """``{issue: place in its rig's sling queue}``, in the scheduler's order."""
    places: dict[str, int] = {}
    per_rig: dict[str, int] = {}
    for row in conn.execute("SELECT issue, rig FROM sling_queue ORDER BY priority, enqueued_at, issue"):
        per_rig[row["rig"]] = per_rig.get(row["rig"], 0) + 1
        places[row["issue"]] = per_rig[row["rig"]]
    return places


def _progress(conn: sqlite3.Connection, issue_id: str, queue: dict[str, int]) -> IssueProgress:
    issue = get_issue(conn, issue_id)
    found: dict[str, Any] = {}
    hook = work.get_hook(conn, issue_id)
    if hook is not None:
        found["polecat"] = f"{hook.rig}/{hook.polecat}"
        spawn = work.get_spawn(conn, hook.spawn) if hook.spawn else None
        found["spawn"] = spawn.id if spawn else None
        found["agent_state"] = _agent_state(spawn)
    mr = conn.execute(
        "SELECT id, state, detail FROM mrs WHERE issue = ? ORDER BY created_at DESC, id DESC LIMIT 1", (issue_id,)
    ).fetchone()
    if mr is not None:
        found.update(mr=mr["id"], mr_state=mr["state"], mr_detail=mr["detail"])
    esc = conn.execute(
        "SELECT id, severity, message, acked_at FROM escalations WHERE issue = ?"
        " ORDER BY acked_at IS NOT NULL, created_at DESC LIMIT 1", (issue_id,)
    ).fetchone()
    if esc is not None and (issue.status == "blocked" or esc["acked_at"] is None):
        found.update(
            escalation=esc["id"], escalation_severity=esc["severity"], escalation_message=esc["message"],
            escalation_acked=esc["acked_at"] is not None,
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
