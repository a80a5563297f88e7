"""Escalations: blockers raised by agents, patrols, the refinery or people, for a person.

Everything about them lives here: the rows, raising one (which may block its issue and
always mails ``human``, in one transaction), acknowledging, and ageing.

An escalation about an issue marks the issue ``blocked`` when its source is the agent
working on it, or a patrol or the refinery giving up on it; every escalation is an
event. One that nobody acknowledges for hours is aged: its severity goes up once.

Conventions of this package: row functions take a connection and run inside the
caller's transaction; operations (``raise_escalation``, ``escalate_from``,
``acknowledge``) take the ``Ledger`` and open (or join) a write transaction themselves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gastown.errors import InvalidInput, NotFound
from gastown.ledger.events import record_event
from gastown.ledger.ids import new_id
from gastown.ledger.issues import get_issue, set_issue_status
from gastown.ledger.mail import insert_mail
from gastown.ledger.timefmt import iso
from gastown.states import IssueStatus

if TYPE_CHECKING:
    from gastown.ledger.db import Ledger

SEVERITIES = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class Escalation:
    id: str
    issue: str | None
    rig: str | None
    polecat: str | None
    spawn: str | None
    severity: str
    message: str
    source: str
    created_at: float
    aged_at: float | None
    acked_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Escalation:
        return cls(**{key: row[key] for key in row.keys()})

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "issue": self.issue,
            "rig": self.rig,
            "polecat": self.polecat,
            "spawn": self.spawn,
            "severity": self.severity,
            "message": self.message,
            "source": self.source,
            "created_at": iso(self.created_at),
            "aged_at": iso(self.aged_at),
            "acked_at": iso(self.acked_at),
            "open": self.acked_at is None,
        }


# -- rows -------------------------------------------------------------------------------


def insert_escalation(
    conn: sqlite3.Connection,
    *,
    message: str,
    severity: str,
    source: str,
    now: float,
    issue: str | None = None,
    rig: str | None = None,
    polecat: str | None = None,
    spawn: str | None = None,
) -> Escalation:
    esc_id = new_id("esc")
    conn.execute(
        "INSERT INTO escalations (id, issue, rig, polecat, spawn, severity, message, source, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (esc_id, issue, rig, polecat, spawn, severity, message, source, now),
    )
    return get_escalation(conn, esc_id)


def find_escalation(conn: sqlite3.Connection, esc_id: str) -> Escalation | None:
    row = conn.execute("SELECT * FROM escalations WHERE id = ?", (esc_id,)).fetchone()
    return Escalation.from_row(row) if row else None


def get_escalation(conn: sqlite3.Connection, esc_id: str) -> Escalation:
    esc = find_escalation(conn, esc_id)
    if esc is None:
        raise NotFound(f"no escalation {esc_id}", hint="see `gt escalate list`")
    return esc


def list_escalations(conn: sqlite3.Connection, *, open_only: bool = False) -> list[Escalation]:
    sql = "SELECT * FROM escalations"
    if open_only:
        sql += " WHERE acked_at IS NULL"
    sql += " ORDER BY created_at DESC"
    return [Escalation.from_row(row) for row in conn.execute(sql)]


def latest_for_issue(conn: sqlite3.Connection, issue: str) -> Escalation | None:
    """The issue's most relevant escalation: the newest open one, else the newest."""
    row = conn.execute(
        "SELECT * FROM escalations WHERE issue = ? ORDER BY acked_at IS NOT NULL, created_at DESC LIMIT 1", (issue,)
    ).fetchone()
    return Escalation.from_row(row) if row else None


def due_for_ageing(conn: sqlite3.Connection, *, raised_before: float) -> list[Escalation]:
    """Open escalations raised before ``raised_before`` that were never aged."""
    rows = conn.execute(
        "SELECT * FROM escalations WHERE acked_at IS NULL AND aged_at IS NULL AND created_at < ? ORDER BY created_at",
        (raised_before,),
    )
    return [Escalation.from_row(row) for row in rows]


def age_escalation(conn: sqlite3.Connection, esc_id: str, *, now: float) -> Escalation | None:
    """Raise an open, never-aged escalation's severity one step (``critical`` stays); records
    an event. Returns the aged escalation, or None if it was acknowledged or aged meanwhile."""
    esc = find_escalation(conn, esc_id)
    if esc is None or esc.acked_at is not None or esc.aged_at is not None:
        return None
    higher = next_severity(esc.severity)
    conn.execute("UPDATE escalations SET severity = ?, aged_at = ? WHERE id = ?", (higher, now, esc_id))
    record_event(
        conn, "escalation", f"{esc_id} unacknowledged for hours: now {higher}: {esc.message}",
        now=now, rig=esc.rig, issue=esc.issue,
    )
    return get_escalation(conn, esc_id)


def next_severity(severity: str) -> str:
    """One step up; an unknown severity counts as ``medium``. Pure.

    >>> next_severity("low"), next_severity("critical"), next_severity("bogus")
    ('medium', 'critical', 'high')
    """
    level = SEVERITIES.index(severity) if severity in SEVERITIES else 1
    return SEVERITIES[min(level + 1, len(SEVERITIES) - 1)]


# -- operations -------------------------------------------------------------------------


def record_escalation(
    conn: sqlite3.Connection,
    message: str,
    *,
    now: float,
    severity: str = "medium",
    source: str,
    issue: str | None = None,
    rig: str | None = None,
    polecat: str | None = None,
    spawn: str | None = None,
    block_issue: bool = False,
) -> Escalation:
    """Record an escalation (blocking ``issue`` if ``block_issue``), its event, and the mail
    to ``human``. Run inside ``Ledger.write()``."""
    if severity not in SEVERITIES:
        raise InvalidInput(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    if issue is not None:
        current = get_issue(conn, issue)
        rig = rig or current.rig
        if block_issue and current.status != IssueStatus.BLOCKED:
            set_issue_status(conn, issue, IssueStatus.BLOCKED, now=now, reason=message)
    esc = insert_escalation(
        conn, message=message, severity=severity, source=source, now=now,
        issue=issue, rig=rig, polecat=polecat, spawn=spawn,
    )
    record_event(
        conn, "escalation", f"[{severity}] {message}", now=now, rig=rig, polecat=polecat, spawn=spawn,
        issue=issue, data={"escalation": esc.id, "source": source},
    )
    insert_mail(
        conn, sender=source, recipient="human", subject=f"[{severity}] escalation {esc.id}",
        body=escalation_mail_body(esc), now=now,
    )
    return esc


def raise_escalation(
    ledger: Ledger,
    message: str,
    *,
    severity: str = "medium",
    source: str,
    issue: str | None = None,
    rig: str | None = None,
    polecat: str | None = None,
    spawn: str | None = None,
    block_issue: bool = False,
) -> Escalation:
    """``record_escalation`` in its own (or the caller's) write transaction."""
    with ledger.write() as conn:
        return record_escalation(
            conn, message, now=ledger.clock(), severity=severity, source=source, issue=issue, rig=rig,
            polecat=polecat, spawn=spawn, block_issue=block_issue,
        )


def escalation_mail_body(esc: Escalation) -> str:
    """``Key: value`` lines, a blank line, the message as raised, and how to acknowledge. Pure."""
    agent = f"{esc.rig}/{esc.polecat}" if esc.rig and esc.polecat else None
    lines = [f"Escalation: {esc.id}", f"Severity: {esc.severity}", f"From: {esc.source}"]
    lines += [f"Issue: {esc.issue}"] if esc.issue else []
    lines += [f"Agent: {agent}"] if agent else []
    return "\n".join(lines) + f"\n\n{esc.message}\n\nAcknowledge it with: gt escalate ack {esc.id}\n"


def escalate_from(
    ledger: Ledger, environ: Mapping[str, str], message: str, *, severity: str, issue: str | None
) -> Escalation:
    """`gt escalate`: an agent (known by its GT_* env) escalates about its own issue, which
    becomes blocked and its agent is let go; a person escalates about any issue, or none."""
    if not message.strip():
        raise InvalidInput("the escalation message is empty", hint='gt escalate "what blocks the work"')
    agent_issue = environ.get("GT_ISSUE") if environ.get("GT_ROLE") == "polecat" else None
    if agent_issue and (issue is None or issue == agent_issue):
        rig, polecat, spawn = environ.get("GT_RIG"), environ.get("GT_POLECAT"), environ.get("GT_SPAWN")
        return raise_escalation(
            ledger, message, severity=severity, source=f"{rig}/{polecat}", issue=agent_issue, rig=rig,
            polecat=polecat, spawn=spawn, block_issue=True,
        )
    if issue is not None:
        get_issue(ledger.connection(), issue)
    return raise_escalation(ledger, message, severity=severity, source=environ.get("USER") or "human", issue=issue)


def acknowledge(ledger: Ledger, esc_id: str) -> Escalation:
    """Mark an escalation acknowledged (idempotent: the first time is kept), with an event."""
    with ledger.write() as conn:
        esc = get_escalation(conn, esc_id)
        if esc.acked_at is None:
            now = ledger.clock()
            conn.execute("UPDATE escalations SET acked_at = ? WHERE id = ?", (now, esc_id))
            record_event(conn, "escalation", f"{esc_id} acknowledged", now=now, rig=esc.rig, issue=esc.issue)
        return get_escalation(conn, esc_id)
