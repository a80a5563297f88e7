"""Recording a trigger request: the one door by which webhooks, schedules and `gt trigger
fire` bring work into the town.

``capture`` renders the trigger's title and prompt from the request (pure, outside any
transaction), then in ONE write transaction checks the delivery id, the pause and the
in-flight limit (``triggers.policy.admit``), creates the issue and records the request;
then it wakes the Mayor, whose trigger desk slings the issue. It never touches git or
tmux, so the server can answer 202 within milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gastown.context import Context
from gastown.errors import InvalidInput
from gastown.ledger import triggers as trigger_rows
from gastown.ledger.events import record_event
from gastown.ledger.issues import create_issue
from gastown.triggers.policy import Accept, Intake, Refuse, Replay, admit
from gastown.triggers.template import RequestFacts, render, render_title

if TYPE_CHECKING:
    import sqlite3


@dataclass(frozen=True)
class Captured:
    """A request recorded now, or (``replayed``) the first answer to a repeated delivery."""

    request: str
    issue: str | None
    replayed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"request": self.request, "issue": self.issue}


def capture(
    ctx: Context, name: str, facts: RequestFacts, *, source: str, delivery: str | None = None,
    after: Callable[[sqlite3.Connection], None] | None = None,
) -> Captured | Refuse:
    """Record one request of trigger ``name`` with its issue, or say why not (a ``Refuse``
    with the HTTP status: 409 paused, 429 at the limit, 413 too big to be an issue, 503
    the trigger's rig is gone). A ``delivery`` id seen before returns the first answer and
    records nothing. ``after(conn)``, if given, runs inside the same transaction (a
    schedule moves its last slot there). The caller wakes the Mayor (``wake_mayor``):
    the server coalesces the wake-ups of a burst."""
    cfg = ctx.config.triggers[name]
    if cfg.rig not in ctx.config.rigs:
        return Refuse(503, f"trigger {name} names rig {cfg.rig!r}, which is not in gastown.toml")
    title = render_title(cfg.title, facts, fallback=f"{name}: {source} request")
    body = render(cfg.prompt, facts)
    with ctx.ledger.write() as conn:
        now = ctx.now()
        state = trigger_rows.get_trigger(conn, name) or trigger_rows.ensure_trigger(conn, name, now=now)
        replay = trigger_rows.find_delivery(conn, name, delivery) if delivery else None
        decision = admit(Intake(state.paused, trigger_rows.count_in_flight(conn, name), cfg.max_in_flight, replay), name)
        if after is not None:
            after(conn)
        if isinstance(decision, Replay):
            return Captured(decision.request, decision.issue, replayed=True)
        if not isinstance(decision, Accept):
            return decision
        try:
            issue = create_issue(conn, rig=cfg.rig, prefix=ctx.config.rig_prefix(cfg.rig), title=title, body=body,
                                 priority=cfg.priority, now=now)
        except InvalidInput as exc:
            return Refuse(413, f"the request renders to an issue gastown cannot hold: {exc.message}")
        request = trigger_rows.insert_request(
            conn, trigger=name, source=source, now=now, issue=issue.id, method=facts.method, path=facts.path,
            query=facts.query, headers=facts.headers, body=facts.body, source_ip=facts.source_ip, delivery=delivery,
            scheduled_for=facts.scheduled_at,
        )
        if delivery:
            trigger_rows.record_delivery(conn, name, delivery, request=request.id, issue=issue.id, now=now)
        record_event(conn, "trigger", f"{name}: {source} request {request.id} captured as {issue.id}", now=now,
                     rig=cfg.rig, issue=issue.id, data={"trigger": name, "request": request.id, "source": source})
    return Captured(request.id, issue.id)


def wake_mayor(ctx: Context) -> None:
    """Tell the Mayor's trigger desk there is a request to act on (it also looks every 5 s)."""
    from gastown.wake import wake

    wake(ctx.town, "triggers")
