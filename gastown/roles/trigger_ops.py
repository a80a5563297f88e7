"""What `gt trigger` does: describe triggers, fire one now, pause, resume, rotate its token.

``describe`` is also what `gt status` shows. Firing goes through the same door as a
webhook (``intake.capture``: same queue, same in-flight limit) and never moves a
schedule's slots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gastown.context import Context
from gastown.errors import Conflict, GastownError, InvalidInput, NotFound
from gastown.ledger import triggers as trigger_rows
from gastown.ledger.timefmt import iso
from gastown.roles.intake import Captured, capture, wake_mayor
from gastown.triggers.policy import Refuse
from gastown.triggers.template import RequestFacts


@dataclass(frozen=True)
class TriggerView:
    """One trigger as `gt trigger show` and `gt status` show it."""

    name: str
    kind: str
    rig: str
    agent: str | None
    url: str | None  # the full URL to POST to (webhooks); it holds the token
    paused: bool
    in_flight: int
    max_in_flight: int
    auth: str
    secret_env: str | None
    max_body: int
    priority: int
    filter: dict[str, str | None] | None
    schedule: str | None
    timezone: str | None
    next_run: float | None
    last_slot: float | None
    last_request: trigger_rows.Request | None
    problems: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        return "paused" if self.paused else "active"

    def to_json(self) -> dict[str, Any]:
        last = self.last_request
        return {
            "name": self.name, "kind": self.kind, "rig": self.rig, "agent": self.agent, "url": self.url,
            "paused": self.paused, "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
            "auth": self.auth if self.kind == "webhook" else None, "secret_env": self.secret_env,
            "max_body": self.max_body, "priority": self.priority, "filter": self.filter,
            "schedule": self.schedule, "timezone": self.timezone, "next_run": iso(self.next_run),
            "last_run": iso(self.last_slot) if self.kind == "schedule" else None,
            "last_request": last.to_json(payload=False) if last else None, "problems": list(self.problems),
        }


def _config_of(ctx: Context, name: str) -> Any:
    cfg = ctx.config.triggers.get(name)
    if cfg is None:
        known = ", ".join(sorted(ctx.config.triggers)) or "none yet"
        raise NotFound(f"no trigger {name!r} in gastown.toml (triggers: {known})",
                       hint="add a [triggers.NAME] table (see docs/triggers.md)")
    return cfg


def describe(ctx: Context, names: list[str] | None = None, *, read_only: bool = False) -> list[TriggerView]:
    """Every configured trigger (or those named), each with its token made if new (with
    ``read_only``, as `gt status` asks: nothing is written, and a trigger never seen yet
    shows no URL)."""
    from gastown.roles.serving import hook_url
    from gastown.runtimes.registry import resolve_runtime
    from gastown.triggers.cron import Schedule, next_run

    wanted = names if names is not None else sorted(ctx.config.triggers)
    configs = {name: _config_of(ctx, name) for name in wanted}
    if read_only:
        known = trigger_rows.trigger_states(ctx.ledger.connection())
        states = {name: known.get(name) for name in wanted}
    else:
        with ctx.ledger.write() as conn:
            states = {name: trigger_rows.ensure_trigger(conn, name, now=ctx.now()) for name in wanted}
    conn = ctx.ledger.connection()
    counts = trigger_rows.in_flight_counts(conn)
    views = []
    for name in wanted:
        cfg, state = configs[name], states[name]
        recent = trigger_rows.list_requests(conn, name, limit=1)
        problems = []
        if cfg.rig not in ctx.config.rigs:
            problems.append(f"rig {cfg.rig!r} is not in gastown.toml")
        if cfg.agent is not None:
            try:
                resolve_runtime(ctx.config, cfg.agent)
            except GastownError as exc:
                problems.append(exc.message)
        if cfg.kind == "webhook" and cfg.auth != "none" and cfg.secret_env and not ctx.environ.get(cfg.secret_env):
            problems.append(f"{cfg.secret_env} is not set in this environment (the server needs it to check requests)")
        views.append(TriggerView(
            name=name, kind=cfg.kind, rig=cfg.rig, agent=cfg.agent,
            url=hook_url(ctx, name, state.token) if cfg.kind == "webhook" and state else None,
            paused=bool(state and state.paused), in_flight=counts.get(name, 0), max_in_flight=cfg.max_in_flight,
            auth=cfg.auth,
            secret_env=cfg.secret_env, max_body=cfg.max_body, priority=cfg.priority,
            filter=cfg.filter.model_dump() if cfg.filter else None, schedule=cfg.schedule,
            timezone=cfg.timezone if cfg.kind == "schedule" else None,
            next_run=next_run(Schedule.parse(cfg.schedule, cfg.timezone), ctx.now()) if cfg.schedule else None,
            last_slot=state.last_slot if state else None, last_request=recent[0] if recent else None,
            problems=problems,
        ))
    return views


def requests(ctx: Context, name: str, *, limit: int = trigger_rows.KEEP_REQUESTS) -> list[trigger_rows.Request]:
    """A trigger's request history, newest first (also for a trigger no longer configured)."""
    conn = ctx.ledger.connection()
    if name not in ctx.config.triggers and trigger_rows.get_trigger(conn, name) is None:
        _config_of(ctx, name)
    return trigger_rows.list_requests(conn, name, limit=limit)


def set_paused(ctx: Context, name: str, paused: bool) -> TriggerView:
    _config_of(ctx, name)
    trigger_rows.pause(ctx.ledger, name, paused=paused)
    return describe(ctx, [name])[0]


def rotate(ctx: Context, name: str) -> TriggerView:
    cfg = _config_of(ctx, name)
    if cfg.kind != "webhook":
        raise InvalidInput(f"trigger {name} is a schedule: it has no URL to rotate")
    trigger_rows.rotate(ctx.ledger, name)
    return describe(ctx, [name])[0]


def fire(ctx: Context, name: str, body: str = "") -> Captured:
    """Invoke a trigger now, as if it were called (webhook) or its time had come (schedule):
    same issue template, same queue and in-flight limit; a schedule's slots do not move."""
    cfg = _config_of(ctx, name)
    size = len(body.encode("utf-8"))
    if size > cfg.max_body:
        raise InvalidInput(f"the body is {size} bytes; trigger {name} takes at most {cfg.max_body}")
    now = ctx.now()
    facts = RequestFacts(
        received_at=now, method="POST" if cfg.kind == "webhook" else "SCHEDULE",
        path=f"/hooks/{name}/…" if cfg.kind == "webhook" else "", body=body,
        scheduled_at=now if cfg.kind == "schedule" else None,
    )
    result = capture(ctx, name, facts, source="fire")
    if isinstance(result, Refuse):
        error = InvalidInput if result.status == 413 else Conflict
        raise error(result.message)
    wake_mayor(ctx)
    return result
