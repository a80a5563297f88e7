"""The town at a glance: one ``TownStatus`` snapshot, for `gt status` and `gt feed`.

Cost of ``collect_status``: short indexed ledger reads, ONE ``tmux list-panes -a``
(inside ``fleet.list_agents``), a stat and a 64 KiB tail read of each agent's log, and a
try of the Mayor's lock file. Never a pane capture and never a write, so the feed can
take one every couple of seconds without slowing the Mayor down.

Every record here (a ``NamedTuple``: cheaper to define than a dataclass, and `gt status`
defines them on every run) has ``to_json()``; the fields are documented in
``docs/status-and-feed.md``. Times are ISO 8601 UTC strings, durations are seconds
(``*_s``, rounded to 0.1) measured from the snapshot's ``at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from gastown.context import Context
from gastown.ledger import holds as hold_rows
from gastown.ledger import rounds
from gastown.ledger.escalations import Escalation, list_escalations
from gastown.ledger.heartbeats import list_beats
from gastown.ledger.holds import HoldKind
from gastown.ledger.issues import count_by_status, list_issues, titles_of
from gastown.ledger.mrs import MR, SENT_BACK_STATES, list_mrs, queue_order
from gastown.ledger.queue import Queued, list_queued
from gastown.ledger.timefmt import iso
from gastown.refinery.queue import RigStatus
from gastown.refinery.queue import status as queue_status
from gastown.roles.fleet import AgentView
from gastown.states import AgentState, IssueStatus, MRState

if TYPE_CHECKING:
    import sqlite3

    from gastown.ledger.triggers import Request
    from gastown.roles.serving import Health
    from gastown.roles.trigger_ops import TriggerView

# Problems first, so a list cut short for space keeps what needs a person.
AGENT_STATE_ORDER: tuple[str, ...] = (
    AgentState.DEAD, AgentState.UNREACHABLE, AgentState.STALLED, AgentState.SPAWNING, AgentState.WORKING, AgentState.IDLE, AgentState.DONE,
)
# A loop heartbeat older than this is flagged stale (the Deacon's own minimum threshold).
STALE_BEAT_S = 60.0


def _secs(value: float | None) -> float | None:
    return None if value is None else round(max(0.0, value), 1)


class AgentStatus(NamedTuple):
    """One agent (an active spawn) as ``gt agents`` sees it, plus its issue's title and ages."""

    agent: AgentView
    title: str | None
    age_s: float
    quiet_s: float | None

    @property
    def state(self) -> str:
        return self.agent.state

    def to_json(self) -> dict[str, Any]:
        return {**self.agent.to_json(), "title": self.title, "age_s": _secs(self.age_s), "quiet_s": _secs(self.quiet_s)}


class QueuedSling(NamedTuple):
    """A sling waiting for capacity (or for its runtime's rate limit to lift)."""

    item: Queued
    title: str | None
    waited_s: float

    def to_json(self) -> dict[str, Any]:
        return {**self.item.to_json(), "title": self.title, "waited_s": _secs(self.waited_s)}


class InFlightMR(NamedTuple):
    """A merge request being tested, in review, or waiting its turn."""

    mr: MR
    title: str | None
    waited_s: float

    def to_json(self) -> dict[str, Any]:
        mr = self.mr
        return {
            "id": mr.id, "issue": mr.issue, "title": self.title, "polecat": mr.polecat, "state": str(mr.state),
            "priority": mr.priority, "fix_cycle": mr.fix_cycle, "attempts": mr.attempts,
            "created_at": iso(mr.created_at), "waited_s": _secs(self.waited_s),
        }


class MergeQueue(NamedTuple):
    """One rig's merge queue: counts by state, the MRs in flight, the last round, the hold."""

    rig: str
    target: str
    batch: int
    counts: dict[str, int]
    in_flight: list[InFlightMR]
    running_round: int | None
    last_round: rounds.Round | None
    hold: rounds.Hold | None

    @property
    def sent_back(self) -> int:
        return sum(self.counts.get(state, 0) for state in SENT_BACK_STATES)

    def to_json(self) -> dict[str, Any]:
        return {
            "rig": self.rig,
            "target": self.target,
            "batch": self.batch,
            "queued": self.counts.get(MRState.QUEUED, 0),
            "reviewing": self.counts.get(MRState.REVIEWING, 0),
            "testing": self.counts.get(MRState.TESTING, 0),
            "sent_back": self.sent_back,
            "states": dict(self.counts),
            "in_flight": [m.to_json() for m in self.in_flight],
            "running_round": self.running_round,
            "last_round": self.last_round.to_json() if self.last_round else None,
            "hold": self.hold.to_json() if self.hold else None,
        }


class HoldStatus(NamedTuple):
    """A hold (``ledger.holds``): a runtime's rate limit, a spent budget (the town's or a
    rig's), a rig's refinery hold, or the pause of `gt down --polecats`."""

    scope: str
    kind: str  # runtime | budget | refinery | pause
    subject: str
    reason: str
    since: float
    until: float | None
    active: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope, "kind": self.kind, "subject": self.subject, "reason": self.reason,
            "since": iso(self.since), "until": iso(self.until), "active": self.active,
        }


class LoopBeat(NamedTuple):
    """The last heartbeat of one Mayor loop."""

    loop: str
    at: float
    age_s: float
    pid: int
    detail: str | None

    @property
    def stale(self) -> bool:
        return self.age_s > STALE_BEAT_S

    def to_json(self) -> dict[str, Any]:
        return {
            "loop": self.loop, "at": iso(self.at), "age_s": _secs(self.age_s), "pid": self.pid,
            "detail": self.detail, "stale": self.stale,
        }


class MayorStatus(NamedTuple):
    """Whether the Mayor holds its lock, and its loops' heartbeats.

    ``pid`` is None when no Mayor runs and -1 when one runs but its pid file is unreadable.
    """

    pid: int | None
    loops: list[LoopBeat]

    @property
    def running(self) -> bool:
        return self.pid is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "pid": self.pid if self.pid is not None and self.pid > 0 else None,
            "loops": [beat.to_json() for beat in self.loops],
        }


class RigSummary(NamedTuple):
    name: str
    branch: str
    agent: str
    max_polecats: int
    agents: dict[str, int]
    queued: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "branch": self.branch, "agent": self.agent, "max_polecats": self.max_polecats,
            "agents": dict(self.agents), "queued": self.queued,
        }


class BlockedIssue(NamedTuple):
    id: str
    rig: str
    title: str
    reason: str | None
    since: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "rig": self.rig, "title": self.title, "reason": self.reason, "since": iso(self.since)}


class EscalationStatus(NamedTuple):
    escalation: Escalation
    age_s: float

    def to_json(self) -> dict[str, Any]:
        return {**self.escalation.to_json(), "age_s": _secs(self.age_s)}


class ServerStatus(NamedTuple):
    """The town's HTTP server: wanted (``[server] enabled``), running, where, how healthy."""

    enabled: bool
    url: str
    pid: int | None
    health: Health | None  # None when it is not running

    @property
    def running(self) -> bool:
        return self.pid is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled, "running": self.running, "url": self.url, "pid": self.pid,
            "healthy": bool(self.health and self.health.ok), "health": self.health.to_json() if self.health else None,
        }


class TownStatus(NamedTuple):
    """Everything `gt status` shows, taken at ``at`` (unix seconds)."""

    root: str
    name: str | None
    max_polecats: int
    at: float
    mayor: MayorStatus
    rigs: list[RigSummary]
    agents: list[AgentStatus]
    queued: list[QueuedSling]
    merge_queues: list[MergeQueue]
    holds: list[HoldStatus]
    escalations: list[EscalationStatus]
    issues: dict[str, int]
    blocked: list[BlockedIssue]
    # Token costs (gastown.costs): today, all time, budgets; None only in synthetic tests.
    costs: dict[str, Any] | None = None
    server: ServerStatus | None = None
    triggers: Sequence[TriggerView] = ()
    requests: Sequence[Request] = ()  # the newest trigger requests, newest first
    config_error: str | None = None  # gastown.toml does not validate: the town runs on the last good one

    def to_json(self) -> dict[str, Any]:
        return {
            "town": {"root": self.root, "name": self.name, "max_polecats": self.max_polecats},
            "at": iso(self.at),
            "mayor": self.mayor.to_json(),
            "rigs": [r.to_json() for r in self.rigs],
            "agents": [a.to_json() for a in self.agents],
            "queued": [q.to_json() for q in self.queued],
            "merge_queue": [m.to_json() for m in self.merge_queues],
            "holds": [h.to_json() for h in self.holds],
            "escalations": [e.to_json() for e in self.escalations],
            "issues": dict(self.issues),
            "blocked": [b.to_json() for b in self.blocked],
            "costs": self.costs,
            "server": self.server.to_json() if self.server else None,
            "triggers": [t.to_json() for t in self.triggers],
            "requests": [r.to_json(payload=False) for r in self.requests],
            "config_error": self.config_error,
        }


# -- gathering ---------------------------------------------------------------------------


def collect_status(ctx: Context) -> TownStatus:
    """Take a snapshot of the town. Reads only; raises ``ToolMissing`` without tmux.

    The agents come first (their one tmux query runs outside any ledger transaction);
    everything else is read in one consistent ledger snapshot.
    """
    from gastown.roles.fleet import list_agents
    from gastown.roles.mayor import running_pid

    views = list_agents(ctx)
    mayor_pid = running_pid(ctx.town)
    now = ctx.now()
    config = ctx.settings
    with ctx.ledger.read() as conn:
        queued_items = list_queued(conn)
        merge_rows = _merge_queues(ctx, now)
        wanted = [v.issue for v in views] + [q.issue for q in queued_items]
        wanted += [m.issue for rig_rows in merge_rows for m in rig_rows[1]]
        titles = titles_of(conn, wanted)
        holds = _holds(conn, now)
        beats = _beats(conn, now)
        escalations = [EscalationStatus(e, now - e.created_at) for e in list_escalations(conn, open_only=True)]
        issues = count_by_status(conn)
        blocked = _blocked(conn)

    agents = sort_agents(
        AgentStatus(v, titles.get(v.issue), now - v.started_at,
                    None if v.last_activity is None else now - v.last_activity)
        for v in views
    )
    queued = [QueuedSling(q, titles.get(q.issue), now - q.enqueued_at) for q in queued_items]
    merge_queues = [
        MergeQueue(
            rig=status.rig, target=status.settings.target, batch=status.settings.batch, counts=status.counts,
            in_flight=[InFlightMR(m, titles.get(m.issue), now - m.created_at) for m in mrs],
            running_round=status.running, last_round=status.last_round, hold=status.hold,
        )
        for status, mrs in merge_rows
    ]
    rigs = [
        RigSummary(
            name=name,
            branch=rig.branch,
            agent=rig.agent or config.town.default_agent,
            max_polecats=min(rig.max_polecats or config.town.max_polecats, config.town.max_polecats),
            agents=count_states(a.state for a in agents if a.agent.rig == name),
            queued=sum(1 for q in queued if q.item.rig == name),
        )
        for name, rig in sorted(config.rigs.items())
    ]
    triggers, requests = _triggers(ctx)
    return TownStatus(
        root=str(ctx.town.root), name=config.town.name, max_polecats=config.town.max_polecats, at=now,
        mayor=MayorStatus(mayor_pid, beats), rigs=rigs, agents=agents, queued=queued, merge_queues=merge_queues,
        holds=holds, escalations=escalations, issues=issues, blocked=blocked, costs=cost_summary(ctx),
        server=server_status(ctx), triggers=triggers, requests=requests, config_error=config_problem(ctx),
    )


def config_problem(ctx: Context) -> str | None:
    """Why gastown.toml on disk does not validate now, or None. Read afresh for every
    snapshot (a live feed sees an edit): a hash of the file, pydantic only when it changed."""
    from gastown.errors import ConfigError

    try:
        ctx.town.settings()
    except ConfigError as exc:
        return exc.message
    return None


RECENT_REQUESTS = 8


def server_status(ctx: Context) -> ServerStatus:
    """Where the HTTP server runs and whether ``/healthz`` answers (a short probe)."""
    from gastown.roles import serving

    record = serving.running_server(ctx.town)
    health = None
    if record is not None:
        health = serving.probe(record, serving.server_token(ctx.settings.server, ctx.environ), timeout=1.0)
    return ServerStatus(ctx.settings.server.enabled, serving.base_url(ctx), record.pid if record else None, health)


def _triggers(ctx: Context) -> tuple[list[TriggerView], list[Request]]:
    """The triggers (read only) and the newest requests of any trigger; a town without
    triggers reads nothing (and `gt status` imports none of their code)."""
    if not ctx.settings.triggers:
        return [], []
    from gastown.ledger.triggers import recent_requests
    from gastown.roles.trigger_ops import describe

    return describe(ctx, read_only=True), recent_requests(ctx.ledger.connection(), limit=RECENT_REQUESTS)


def cost_summary(ctx: Context) -> dict[str, Any]:
    """Today's and all-time token costs, and the budgets (what `gt costs` details)."""
    from gastown.costs import grand_total, local_day, spent, totals

    today = local_day(ctx.now())
    all_time = grand_total(totals(ctx, "rig"))
    todays = grand_total(totals(ctx, "rig", since_day=today))
    return {
        "today_usd": round(todays.cost, 4),
        "total_usd": round(all_time.cost, 4),
        "today_tokens": todays.input + todays.output + todays.cache_read + todays.cache_write,
        "total_tokens": all_time.input + all_time.output + all_time.cache_read + all_time.cache_write,
        "unpriced_spawns": all_time.unpriced,
        "budget_usd": ctx.settings.town.budget,
        "rig_budgets": {
            rig: {"budget_usd": cfg.budget, "today_usd": round(spent(ctx, rig=rig), 4)}
            for rig, cfg in sorted(ctx.settings.rigs.items()) if cfg.budget is not None
        },
    }


def sort_agents(agents: Iterable[AgentStatus]) -> list[AgentStatus]:
    """By rig, then problems first (``AGENT_STATE_ORDER``), then polecat name. Pure."""
    rank = {state: i for i, state in enumerate(AGENT_STATE_ORDER)}
    return sorted(agents, key=lambda a: (a.agent.rig, rank.get(a.state, len(rank)), a.agent.polecat))


def count_states(states: Iterable[str]) -> dict[str, int]:
    """Every agent state with its count (zeros included), in ``AgentState`` order. Pure.

    >>> count_states(["idle", "working", "idle"])["idle"]
    2
    """
    counts = {str(s): 0 for s in AgentState}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return counts


def _merge_queues(ctx: Context, now: float) -> list[tuple[RigStatus, list[MR]]]:
    """Each rig's queue status with its MRs in flight: testing, in review, then queued in take order."""
    conn = ctx.ledger.connection()
    result = []
    for status in queue_status(ctx):
        mrs = list_mrs(conn, status.rig, [MRState.TESTING, MRState.REVIEWING, MRState.QUEUED])
        first = [m for m in mrs if m.state == MRState.TESTING] + [m for m in mrs if m.state == MRState.REVIEWING]
        result.append((status, first + queue_order([m for m in mrs if m.state == MRState.QUEUED], now)))
    return result


def _holds(conn: sqlite3.Connection, now: float) -> list[HoldStatus]:
    return [
        HoldStatus(
            scope=str(h.scope), kind=str(h.scope.kind), subject=_hold_subject(h.scope), reason=h.reason,
            since=h.created_at, until=h.until, active=h.active(now),
        )
        for h in hold_rows.list_holds(conn)
    ]


def _hold_subject(scope: hold_rows.HoldScope) -> str:
    """What a hold is about, in words: a runtime or rig name, ``town`` or ``polecats``."""
    if scope.subject is not None:
        return scope.subject
    return "polecats" if scope.kind == HoldKind.PAUSE else "town"


def _beats(conn: sqlite3.Connection, now: float) -> list[LoopBeat]:
    return [LoopBeat(b.loop, b.at, now - b.at, b.pid, b.detail) for b in list_beats(conn)]


def _blocked(conn: sqlite3.Connection) -> list[BlockedIssue]:
    issues = sorted(list_issues(conn, status=IssueStatus.BLOCKED), key=lambda i: (i.updated_at, i.id))
    return [BlockedIssue(i.id, i.rig, i.title, i.close_reason, i.updated_at) for i in issues]
