"""The scheduler: start queued slings as capacity frees up (rig and town caps, holds, budgets).

Gather a ``Capacity`` snapshot and the queue from the ledger, let
``admission.plan_dispatch`` decide, then act on each decision, re-checking admission
right before each start (a `gt sling` from a shell may have taken the slot since).
Oldest-highest-priority first; a queued issue whose runtime is rate limited waits. A
sling whose start fails goes back to the queue with its failures counted on the issue's
queue row (not on the spawn, which is new each try) and waits ``admission.retry_delay``
(5 s, then 10 s) before the next try; after three failures the issue is parked
(``blocked``) with one escalation and leaves the queue.
"""

from __future__ import annotations

from gastown._internal.log import logger
from gastown.context import Context
from gastown.errors import GastownError
from gastown.ledger import holds, queue, work
from gastown.ledger.escalations import record_escalation
from gastown.ledger.events import record_event
from gastown.ledger.holds import HoldKind
from gastown.ledger.issues import find_issue
from gastown.ledger.queue import Queued
from gastown.roles.admission import (
    Capacity,
    Drop,
    Start,
    admit,
    plan_dispatch,
    retry_delay,
)
from gastown.roles.polecat import SlingResult, sling
from gastown.runtimes.registry import rig_runtime_name
from gastown.states import IssueStatus

log = logger(__name__)
MAX_FAILURES = 3


def queued(ctx: Context) -> list[Queued]:
    return queue.list_queued(ctx.ledger.connection())


def gather_capacity(ctx: Context) -> Capacity:
    """Caps from the config, slots and holds from the ledger, budgets from today's usage."""
    from gastown.costs import budget_blocks, read_budgets
    from gastown.ledger.hosts import host_statuses

    config = ctx.config
    conn = ctx.ledger.connection()
    slots: dict[str, int] = {}
    host_slots: dict[str, int] = {}
    for rig, host in work.slots_by_host(conn):
        slots[rig] = slots.get(rig, 0) + 1
        host_slots[host] = host_slots.get(host, 0) + 1
    return Capacity(
        town_cap=config.town.max_polecats,
        rig_caps={name: rig.max_polecats or config.town.max_polecats for name, rig in config.rigs.items()},
        slots=slots,
        runtime_holds={h.scope.subject or "": h.until for h in holds.list_holds(conn, HoldKind.RUNTIME)},
        budget_blocks=budget_blocks(read_budgets(ctx)),
        rig_hosts={name: tuple(rig.hosts) for name, rig in config.rigs.items()},
        host_caps={name: host.max_polecats for name, host in config.hosts.items() if host.max_polecats},
        host_slots=host_slots,
        unreachable=frozenset(name for name, status in host_statuses(conn).items() if not status.reachable),
    )


def dispatch(ctx: Context) -> list[SlingResult]:
    """Start as many queued slings as the caps, holds and budgets allow; returns what started.

    Also refreshes the token usage of running agents and the budget holds first, so a
    budget reached mid-run stops the next start.
    """
    from gastown.costs import check_budgets, collect

    collect(ctx)
    check_budgets(ctx)
    items = queued(ctx)
    if not items:
        return []
    conn = ctx.ledger.connection()
    statuses = {i.issue: issue.status for i in items if (issue := find_issue(conn, i.issue)) is not None}
    runtimes = {i.issue: rig_runtime_name(ctx.config, i.rig, i.agent) for i in items if i.rig in ctx.config.rigs}
    started = []
    for decision in plan_dispatch(items, statuses, runtimes, gather_capacity(ctx), ctx.now()):
        if isinstance(decision, Drop):
            _drop(ctx, decision.item, decision.reason)
        elif isinstance(decision, Start):
            result = _start(ctx, decision.item, decision.runtime)
            if result is not None:
                started.append(result)
    return started


def _drop(ctx: Context, item: Queued, reason: str) -> None:
    with ctx.ledger.write() as conn:
        if queue.dequeue(conn, item.issue):
            record_event(conn, "queued", f"dropped from the sling queue: {reason}", now=ctx.now(), rig=item.rig,
                         issue=item.issue)


def _start(ctx: Context, item: Queued, runtime: str) -> SlingResult | None:
    if not admit(item.rig, runtime, gather_capacity(ctx), ctx.now()):
        return None  # the slot went to someone else since the plan was made
    try:
        result = sling(
            ctx, item.issue, item.polecat and f"{item.rig}/{item.polecat}", agent=item.agent,
            kind=item.kind, start_point=item.start_point, note=item.note, from_queue=True,
        )
    except GastownError as exc:
        _failed(ctx, item, exc)
        return None
    with ctx.ledger.write() as conn:
        queue.dequeue(conn, item.issue)
    return result


def _failed(ctx: Context, item: Queued, exc: GastownError) -> None:
    """Count a failed start on the issue's queue row: retry later, or park it after
    ``MAX_FAILURES`` (blocked, one escalation). A failed sling has already taken the row
    out of the queue and rolled its claim back; the row is put back from ``item``."""
    log.warning("scheduler: sling of %s failed: %s", item.issue, exc)
    with ctx.ledger.write() as conn:
        now = ctx.now()
        failures = item.failures + 1
        if failures < MAX_FAILURES:
            delay = retry_delay(failures)
            queue.requeue_after_failure(conn, item, failures=failures, error=str(exc), not_before=now + delay)
            record_event(conn, "sling", f"start {failures} of {MAX_FAILURES} failed, retrying in {delay:.0f}s: {exc}",
                         now=now, rig=item.rig, issue=item.issue, data={"failures": failures, "retry_in": delay})
            return
        queue.dequeue(conn, item.issue)
        record_event(conn, "sling", f"start {failures} of {MAX_FAILURES} failed; parked: {exc}", now=now,
                     rig=item.rig, issue=item.issue, data={"failures": failures})
        # Blocked, not left as it was: an issue in review with no agent and no queue entry
        # would otherwise wait forever without anyone seeing it.
        issue = find_issue(conn, item.issue)
        record_escalation(
            conn, f"could not start {item.issue} after {MAX_FAILURES} tries: {exc}", now=now, severity="high",
            source="scheduler", issue=item.issue, rig=item.rig,
            block_issue=issue is not None and issue.status != IssueStatus.CLOSED,
        )
