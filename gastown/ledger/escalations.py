"""Escalations: blockers raised by agents, patrols, the refinery or people, for a person.

Everything about them lives here: the rows, raising one (which may block its issue and
always mails ``human``, in one transaction), acknowledging, and ageing.

An escalation about an issue marks the issue ``blocked`` when its source is the agent
working on it, or a patrol or the refinery giving up on it; every escalation is an
event. One that nobody acknowledges for hours is aged: its severity goes up once.

Each escalation records its *cause*, so it can resolve itself once the cause is gone
(the Deacon looks every patrol; ``gt issue reopen`` and closing do it at once):

=======================  ==================================================
``blocked:<issue>``      the issue is blocked; gone when it is not any more
``issue:<issue>``        raised about an issue; gone when it is closed
``hold:<scope>``         a hold (``refinery:<rig>``, ``budget:...``); gone when released
``notify:<name>``        a notifier fails; gone when it delivers again
(none)                   a person's free-form escalation: only ``gt escalate ack`` ends it
=======================  ==================================================

An escalation is *open* until it is acknowledged or resolved; raising one whose cause
and message match an open one returns that one instead of piling up a copy.

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
    cause: str | None = None
    resolved_at: float | None = None
    resolution: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Escalation:
        return cls(**{key: row[key] for key in row.keys()})

    @property
    def open(self) -> bool:
        """Neither acknowledged by a person nor resolved by its cause going away."""
        return self.acked_at is None and self.resolved_at is None

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
            "cause": self.cause,
            "resolved_at": iso(self.resolved_at),
            "resolution": self.resolution,
            "open": self.open,
        }


# -- causes -----------------------------------------------------------------------------


def cause_blocked(issue: str) -> str:
    return f"blocked:{issue}"


def cause_issue(issue: str) -> str:
    return f"issue:{issue}"


def cause_hold(scope: object) -> str:
    """``scope`` is a ``holds.HoldScope`` (its ``str()`` is the stored form)."""
    return f"hold:{scope}"


def cause_notifier(name: str) -> str:
    return f"notify:{name}"


def parse_cause(cause: str | None) -> tuple[str, str] | None:
    """``(kind, subject)`` of a stored cause, or None for none (or a form never written).

    >>> parse_cause("blocked:app-k3x9q"), parse_cause("hold:refinery:app"), parse_cause(None)
    (('blocked', 'app-k3x9q'), ('hold', 'refinery:app'), None)
    """
    if not cause:
        return None
    kind, _, subject = cause.partition(":")
    if kind not in ("blocked", "issue", "hold", "notify") or not subject:
        return None
    return kind, subject


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
    cause: str | None = None,
) -> Escalation:
    esc_id = new_id("esc")
    conn.execute(
        "INSERT INTO escalations (id, issue, rig, polecat, spawn, severity, message, source, created_at, cause)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (esc_id, issue, rig, polecat, spawn, severity, message, source, now, cause),
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


_OPEN = "acked_at IS NULL AND resolved_at IS NULL"


def list_escalations(conn: sqlite3.Connection, *, open_only: bool = False) -> list[Escalation]:
    sql = "SELECT * FROM escalations"
    if open_only:
        sql += f" WHERE {_OPEN}"
    sql += " ORDER BY created_at DESC"
    return [Escalation.from_row(row) for row in conn.execute(sql)]


def open_escalations(conn: sqlite3.Connection, *, issue: str | None = None, cause: str | None = None) -> list[Escalation]:
    """Open escalations (oldest first), of one issue and/or one cause."""
    sql, args = f"SELECT * FROM escalations WHERE {_OPEN}", list[str]()
    if issue is not None:
        sql, args = sql + " AND issue = ?", [*args, issue]
    if cause is not None:
        sql, args = sql + " AND cause = ?", [*args, cause]
    return [Escalation.from_row(row) for row in conn.execute(sql + " ORDER BY created_at, id", args)]


def latest_for_issue(conn: sqlite3.Connection, issue: str) -> Escalation | None:
    """The issue's most relevant escalation: the newest open one, else the newest."""
    row = conn.execute(
        f"SELECT * FROM escalations WHERE issue = ? ORDER BY NOT ({_OPEN}), created_at DESC LIMIT 1", (issue,)
    ).fetchone()
    return Escalation.from_row(row) if row else None


def due_for_ageing(conn: sqlite3.Connection, *, raised_before: float) -> list[Escalation]:
    """Open escalations raised before ``raised_before`` that were never aged."""
    rows = conn.execute(
        f"SELECT * FROM escalations WHERE {_OPEN} AND aged_at IS NULL AND created_at < ? ORDER BY created_at",
        (raised_before,),
    )
    return [Escalation.from_row(row) for row in rows]


def age_escalation(conn: sqlite3.Connection, esc_id: str, *, now: float) -> Escalation | None:
    """Raise an open, never-aged escalation's severity one step (``critical`` stays); records
    an event. Returns the aged escalation, or None if it was acknowledged or aged meanwhile."""
    esc = find_escalation(conn, esc_id)
    if esc is None or not esc.open or esc.aged_at is not None:
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
    cause: str | None = None,
) -> Escalation:
    """Record an escalation (blocking ``issue`` if ``block_issue``), its event, and the mail
    to ``human``. Run inside ``Ledger.write()``.

    ``cause`` defaults to ``blocked:<issue>`` when it blocks, else ``issue:<issue>`` when
    it is about an issue. An open escalation with the same cause and message is returned
    as it is (no second row, event or mail); blocking still happens.
    """
    if severity not in SEVERITIES:
        raise InvalidInput(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    if cause is None and issue is not None:
        cause = cause_blocked(issue) if block_issue else cause_issue(issue)
    if issue is not None:
        current = get_issue(conn, issue)
        rig = rig or current.rig
        if block_issue and current.status != IssueStatus.BLOCKED:
            set_issue_status(conn, issue, IssueStatus.BLOCKED, now=now, reason=message)
            record_event(conn, "blocked", f"blocked: {message}", now=now, rig=rig, polecat=polecat, spawn=spawn,
                         issue=issue, data={"source": source})
    if cause is not None:
        same = [e for e in open_escalations(conn, cause=cause) if e.message == message]
        if same:
            return same[0]
    esc = insert_escalation(
        conn, message=message, severity=severity, source=source, now=now,
        issue=issue, rig=rig, polecat=polecat, spawn=spawn, cause=cause,
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
    cause: str | None = None,
) -> Escalation:
    """``record_escalation`` in its own (or the caller's) write transaction."""
    with ledger.write() as conn:
        return record_escalation(
            conn, message, now=ledger.clock(), severity=severity, source=source, issue=issue, rig=rig,
            polecat=polecat, spawn=spawn, block_issue=block_issue, cause=cause,
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


def acknowledge_all(ledger: Ledger) -> list[Escalation]:
    """`gt escalate ack --all`: acknowledge every open escalation (one event); returns them."""
    with ledger.write() as conn:
        now = ledger.clock()
        acked = open_escalations(conn)
        if acked:
            conn.execute(f"UPDATE escalations SET acked_at = ? WHERE {_OPEN}", (now,))
            record_event(conn, "escalation", f"{len(acked)} escalation(s) acknowledged at once", now=now,
                         data={"acknowledged": [e.id for e in acked]})
        return [get_escalation(conn, e.id) for e in acked]


def resolve_escalation(conn: sqlite3.Connection, esc_id: str, *, resolution: str, now: float) -> Escalation | None:
    """Mark an open escalation resolved (its cause is gone), with an event; None if it was
    no longer open. Run inside ``Ledger.write()``."""
    esc = find_escalation(conn, esc_id)
    if esc is None or not esc.open:
        return None
    conn.execute("UPDATE escalations SET resolved_at = ?, resolution = ? WHERE id = ?", (now, resolution, esc_id))
    record_event(conn, "escalation", f"{esc_id} resolved: {resolution}", now=now, rig=esc.rig, issue=esc.issue,
                 data={"escalation": esc_id, "resolved": resolution})
    return get_escalation(conn, esc_id)


def resolve_for_issue(conn: sqlite3.Connection, issue: str, *, resolution: str, now: float) -> list[Escalation]:
    """Resolve every open escalation about ``issue``; returns those resolved."""
    done = [resolve_escalation(conn, e.id, resolution=resolution, now=now) for e in open_escalations(conn, issue=issue)]
    return [e for e in done if e is not None]


def resolve_cause(conn: sqlite3.Connection, cause: str, *, resolution: str, now: float) -> list[Escalation]:
    """Resolve every open escalation with ``cause``; returns those resolved."""
    done = [resolve_escalation(conn, e.id, resolution=resolution, now=now) for e in open_escalations(conn, cause=cause)]
    return [e for e in done if e is not None]
