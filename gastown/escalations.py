"""Raising escalations: a blocker someone (usually a human) must look at.

An escalation about an issue marks the issue ``blocked`` when its source is the agent
working on it (or a patrol/refinery giving up on it); every escalation is an event.
"""

from __future__ import annotations

from gastown.context import Context
from gastown.errors import InvalidInput
from gastown.ledger.escalations import SEVERITIES, Escalation, insert_escalation
from gastown.ledger.events import record_event
from gastown.ledger.issues import get_issue, set_issue_status
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
    """Record an escalation (and block ``issue`` if ``block_issue``), in one transaction."""
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
    return esc
