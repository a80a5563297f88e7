"""The scheduler: start queued slings as capacity frees up (rig and town caps, holds).

Oldest-highest-priority first; a queued issue whose runtime is rate limited waits; a
sling that keeps failing is dropped from the queue after three tries and escalated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gastown.context import Context
from gastown.errors import GastownError
from gastown.ledger.events import record_event
from gastown.ledger.timefmt import iso

if TYPE_CHECKING:
    from gastown.roles.polecat import SlingResult

log = logging.getLogger(__name__)
MAX_FAILURES = 3


@dataclass(frozen=True)
class Queued:
    issue: str
    rig: str
    polecat: str | None
    agent: str | None
    priority: int
    kind: str
    start_point: str | None
    note: str | None
    enqueued_at: float
    failures: int
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "issue": self.issue, "rig": self.rig, "polecat": self.polecat, "agent": self.agent,
            "priority": self.priority, "kind": self.kind, "enqueued_at": iso(self.enqueued_at),
            "failures": self.failures, "last_error": self.last_error,
        }


def queued(ctx: Context) -> list[Queued]:
    rows = ctx.ledger.connection().execute("SELECT * FROM sling_queue ORDER BY priority, enqueued_at, issue")
    return [Queued(**{k: row[k] for k in row.keys()}) for row in rows]


def dispatch(ctx: Context) -> list[SlingResult]:
    """Start as many queued slings as the caps, holds and budgets allow; returns what started.

    Also refreshes the token usage of running agents and the budget holds first, so a
    budget reached mid-run stops the next start.
    """
    from gastown.costs import budget_block, check_budgets, collect
    from gastown.roles.polecat import at_capacity, runtime_held, sling
    from gastown.runtimes.registry import rig_runtime_name

    collect(ctx)
    check_budgets(ctx)
    started = []
    for item in queued(ctx):
        status = ctx.ledger.connection().execute("SELECT status FROM issues WHERE id = ?", (item.issue,)).fetchone()
        if status is None or status[0] in ("closed", "in_review"):
            with ctx.ledger.write() as conn:
                conn.execute("DELETE FROM sling_queue WHERE issue = ?", (item.issue,))
            continue
        if item.rig not in ctx.config.rigs:
            continue
        runtime = rig_runtime_name(ctx.config, item.rig, item.agent)
        if runtime_held(ctx, runtime) or at_capacity(ctx, item.rig) or budget_block(ctx, item.rig):
            continue
        try:
            result = sling(
                ctx, item.issue, item.polecat and f"{item.rig}/{item.polecat}", agent=item.agent,
                kind=item.kind, start_point=item.start_point, note=item.note, from_queue=True,
            )
        except GastownError as exc:
            _failed(ctx, item, exc)
            continue
        with ctx.ledger.write() as conn:
            conn.execute("DELETE FROM sling_queue WHERE issue = ?", (item.issue,))
        started.append(result)
    return started


def _failed(ctx: Context, item: Queued, exc: GastownError) -> None:
    from gastown.escalations import raise_escalation

    log.warning("scheduler: sling of %s failed: %s", item.issue, exc)
    with ctx.ledger.write() as conn:
        conn.execute(
            "UPDATE sling_queue SET failures = failures + 1, last_error = ? WHERE issue = ?", (str(exc), item.issue)
        )
        record_event(conn, "sling", f"queued sling failed: {exc}", now=ctx.now(), rig=item.rig, issue=item.issue)
        if item.failures + 1 < MAX_FAILURES:
            return
        conn.execute("DELETE FROM sling_queue WHERE issue = ?", (item.issue,))
    raise_escalation(
        ctx, f"could not start {item.issue} after {MAX_FAILURES} tries: {exc}", severity="high",
        source="scheduler", issue=item.issue, rig=item.rig,
    )
