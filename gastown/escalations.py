"""Raising escalations: a blocker someone (usually a human) must look at.

An escalation about an issue marks the issue ``blocked`` when its source is the agent
working on it (or a patrol/refinery giving up on it); every escalation is an event.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gastown.context import Context
from gastown.errors import InvalidInput, NotFound
from gastown.ledger.escalations import SEVERITIES, Escalation, insert_escalation
from gastown.ledger.events import record_event
from gastown.ledger.issues import get_issue, set_issue_status
from gastown.ledger.mail import insert_mail
from gastown.states import IssueStatus


def raise_escalation(
    ctx: Context,
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
    """Record an escalation (and block ``issue`` if ``block_issue``) and mail it to ``human``,
    in one transaction."""
    if severity not in SEVERITIES:
        raise InvalidInput(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    with ctx.ledger.write() as conn:
        now = ctx.now()
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


def escalation_mail_body(esc: Escalation) -> str:
    """``Key: value`` lines, a blank line, the message as raised, and how to acknowledge. Pure."""
    agent = f"{esc.rig}/{esc.polecat}" if esc.rig and esc.polecat else None
    lines = [f"Escalation: {esc.id}", f"Severity: {esc.severity}", f"From: {esc.source}"]
    lines += [f"Issue: {esc.issue}"] if esc.issue else []
    lines += [f"Agent: {agent}"] if agent else []
    return "\n".join(lines) + f"\n\n{esc.message}\n\nAcknowledge it with: gt escalate ack {esc.id}\n"


def escalate_from(
    ctx: Context, environ: Mapping[str, str], cwd: Path, message: str, *, severity: str, issue: str | None
) -> Escalation:
    """`gt escalate`: an agent (known by its GT_* env) escalates about its own issue, which
    becomes blocked and its agent is let go; a person escalates about any issue, or none."""
    if not message.strip():
        raise InvalidInput("the escalation message is empty", hint='gt escalate "what blocks the work"')
    agent_issue = environ.get("GT_ISSUE") if environ.get("GT_ROLE") == "polecat" else None
    if agent_issue and (issue is None or issue == agent_issue):
        rig, polecat, spawn = environ.get("GT_RIG"), environ.get("GT_POLECAT"), environ.get("GT_SPAWN")
        esc = raise_escalation(
            ctx, message, severity=severity, source=f"{rig}/{polecat}", issue=agent_issue, rig=rig,
            polecat=polecat, spawn=spawn, block_issue=True,
        )
        return esc
    if issue is not None:
        get_issue(ctx.ledger.connection(), issue)
    return raise_escalation(ctx, message, severity=severity, source=environ.get("USER") or "human", issue=issue)


def acknowledge(ctx: Context, esc_id: str) -> Escalation:
    with ctx.ledger.write() as conn:
        row = conn.execute("SELECT * FROM escalations WHERE id = ?", (esc_id,)).fetchone()
        if row is None:
            raise NotFound(f"no escalation {esc_id}", hint="see `gt escalate list`")
        if row["acked_at"] is None:
            conn.execute("UPDATE escalations SET acked_at = ? WHERE id = ?", (ctx.now(), esc_id))
            record_event(conn, "escalation", f"{esc_id} acknowledged", now=ctx.now(), rig=row["rig"], issue=row["issue"])
        row = conn.execute("SELECT * FROM escalations WHERE id = ?", (esc_id,)).fetchone()
    return Escalation.from_row(row)
