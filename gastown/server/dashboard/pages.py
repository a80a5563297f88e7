"""What each page shows: its data (read through the same functions the CLI uses) and its
live parts (*fragments*), which the hub re-renders once per snapshot for every viewer.

A *view key* names one page's live data: ``town``, ``mq``, ``convoys``, ``events``,
``triggers``, ``agent:<rig>/<polecat>`` or ``mr:<id>``. ``gather`` functions read only
(short ledger reads; the snapshot already holds the tmux and log facts) and return the
template's variables; nothing here writes or prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gastown.errors import InvalidInput, NotFound
from gastown.ledger import convoys, mrs, work
from gastown.ledger.events import Event, list_events
from gastown.ledger.issues import find_issue, list_issues, titles_of
from gastown.names import NAME_RE
from gastown.server.dashboard.handle import TownHandle
from gastown.server.dashboard.rendering import render
from gastown.server.dashboard.text import tail, visible_block
from gastown.states import IssueStatus, MRState
from gastown.views.feed import PROBLEM_KINDS
from gastown.views.status import AgentStatus, TownStatus

RECENT_EVENTS = 30  # on the town page
PAGE_EVENTS = 100  # on the events page (live ones are added up to 500)
OPEN_ISSUES = 100  # open issues listed for slinging
DONE_MRS = 15  # merged or rejected MRs shown per rig
CONVOYS = 50
LOG_LINES = 300  # log lines an agent page starts with


class TriggerSource(Protocol):
    """Where the triggers page gets its rows and its pause/resume (``gt serve``'s triggers).

    ``triggers()`` returns one dict per trigger with at least ``name``, ``kind``, ``rig``,
    ``paused`` and ``in_flight``, and optionally ``requests``: the latest requests, each
    with ``id``, ``at`` (unix time), ``status`` and ``issue``. Never the trigger's token.
    """

    def triggers(self) -> list[dict[str, Any]]: ...

    def pause(self, name: str) -> None: ...

    def resume(self, name: str) -> None: ...


@dataclass(frozen=True)
class Site:
    """What every page may read: the town and, when ``gt serve`` provides them, triggers."""

    handle: TownHandle
    triggers: TriggerSource | None = None


Gather = Callable[[Site, TownStatus, str], dict[str, Any]]


@dataclass(frozen=True)
class Page:
    template: str
    fragments: dict[str, str]  # element id -> partial template
    gather: Gather


def parse_view(key: str) -> tuple[str, str]:
    """``agent:app/ace`` -> (``agent``, ``app/ace``); refuses unknown views and bad names.

    >>> parse_view("town"), parse_view("agent:app/ace"), parse_view("mr:mr-k3x9q2")
    (('town', ''), ('agent', 'app/ace'), ('mr', 'mr-k3x9q2'))
    """
    name, _, arg = key.partition(":")
    if name not in PAGES:
        raise InvalidInput(f"there is no dashboard view {name!r}")
    if name == "agent":
        rig, _, polecat = arg.partition("/")
        if not (NAME_RE.match(rig) and NAME_RE.match(polecat)):
            raise InvalidInput(f"{arg!r} is not RIG/POLECAT")
    elif name == "mr":
        if not arg.startswith("mr-") or not arg[3:].isalnum():
            raise InvalidInput(f"{arg!r} is not a merge request id")
    elif arg:
        raise InvalidInput(f"the view {name!r} takes no argument")
    return name, arg


def render_fragments(site: Site, view: str, snapshot: TownStatus) -> dict[str, str]:
    """Every fragment of ``view`` (id -> HTML, CSRF sentinel not yet replaced)."""
    name, arg = parse_view(view)
    page = PAGES[name]
    context = page.gather(site, snapshot, arg)
    return {element: render(partial, **context) for element, partial in page.fragments.items()}


def render_page(site: Site, view: str, snapshot: TownStatus, **extra: Any) -> str:
    """The whole page of ``view`` (CSRF sentinel not yet replaced)."""
    name, arg = parse_view(view)
    page = PAGES[name]
    return render(page.template, view=view, **page.gather(site, snapshot, arg), **extra)


# -- shared -----------------------------------------------------------------------------


def common(site: Site, snapshot: TownStatus) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for agent in snapshot.agents:
        counts[agent.state] = counts.get(agent.state, 0) + 1
    return {
        "status": snapshot,
        "now": snapshot.at,
        "town_name": snapshot.name or Path(snapshot.root).name,
        "config_error": site.handle.config_error,
        "state_counts": counts,
        "mq_totals": {
            "queued": sum(m.counts.get("queued", 0) for m in snapshot.merge_queues),
            "testing": sum(m.counts.get("testing", 0) for m in snapshot.merge_queues),
            "sent_back": sum(m.sent_back for m in snapshot.merge_queues),
        },
        "active_holds": [h for h in snapshot.holds if h.active],
    }


def event_row(event: Event) -> dict[str, Any]:
    """An event as the page's event lists and the stream show it (message made visible)."""
    from gastown.server.dashboard.rendering import lit

    return {
        "id": event.id, "at": event.at, "kind": event.kind, "rig": event.rig, "polecat": event.polecat,
        "issue": event.issue, "message": lit(event.message, 600), "problem": event.kind in PROBLEM_KINDS,
    }


def recent_events(site: Site, limit: int, *, problems: bool = False) -> list[dict[str, Any]]:
    conn = site.handle.ctx.ledger.connection()
    kinds = PROBLEM_KINDS if problems else ()
    return [event_row(e) for e in list_events(conn, kinds=kinds, limit=limit, newest_first=True)]


# -- the pages ----------------------------------------------------------------------------


def gather_town(site: Site, snapshot: TownStatus, arg: str) -> dict[str, Any]:
    ctx = site.handle.ctx
    conn = ctx.ledger.connection()
    open_issues = list_issues(conn, status=IssueStatus.OPEN)
    queued = {q.item.issue for q in snapshot.queued}
    return {
        **common(site, snapshot),
        "open_issues": [i for i in open_issues if i.id not in queued][:OPEN_ISSUES],
        "open_total": len(open_issues),
        "events": recent_events(site, RECENT_EVENTS),
        "rig_names": sorted(ctx.config.rigs),
    }


def find_agent(snapshot: TownStatus, rig: str, polecat: str) -> AgentStatus | None:
    for agent in snapshot.agents:
        if agent.agent.rig == rig and agent.agent.polecat == polecat:
            return agent
    return None


def gather_agent(site: Site, snapshot: TownStatus, arg: str) -> dict[str, Any]:
    from gastown.roles.fleet import find_spawn

    ctx = site.handle.ctx
    rig, _, polecat = arg.partition("/")
    spawn = find_spawn(ctx, arg)  # NotFound for an unknown rig or polecat
    conn = ctx.ledger.connection()
    issue = find_issue(conn, spawn.issue)
    hook = work.hook_of_polecat(conn, rig, polecat)
    live = find_agent(snapshot, rig, polecat)
    return {
        **common(site, snapshot),
        "rig": rig, "polecat": polecat, "target": arg,
        "spawn": spawn,
        "agent": live if live is not None and live.agent.spawn == spawn.id else None,
        "issue": issue,
        "body": visible_block(issue.body, 200) if issue is not None and issue.body else [],
        "hook": hook if hook is not None and hook.issue == spawn.issue else None,
        "spawns": work.spawns_of_issue(conn, spawn.issue),
        "mr": mrs.latest_for_issue(conn, spawn.issue),
        "events": [event_row(e) for e in list_events(conn, issue=spawn.issue, limit=50, newest_first=True)],
    }


def agent_run(site: Site, target: str) -> tuple[Path, str]:
    """(log path, spawn id) of the run an agent page shows: the hooked one, else the latest."""
    from gastown.roles.fleet import find_spawn

    spawn = find_spawn(site.handle.ctx, target)
    return Path(spawn.log_path), spawn.id


def agent_log(site: Site, target: str) -> tuple[str, list[str], int]:
    """(spawn id, last lines, offset to follow from) for an agent page."""
    path, spawn_id = agent_run(site, target)
    lines, offset = tail(path, LOG_LINES)
    return spawn_id, lines, offset


def gather_mq(site: Site, snapshot: TownStatus, arg: str) -> dict[str, Any]:
    from gastown.refinery import queue

    ctx = site.handle.ctx
    rigs: list[dict[str, Any]] = []
    wanted: list[str] = []
    for rig_status in queue.status(ctx):
        active = queue.listing(ctx, rig=rig_status.rig)
        done = queue.listing(ctx, rig=rig_status.rig, states=[MRState.MERGED, MRState.REJECTED])[:DONE_MRS]
        rigs.append({"status": rig_status, "active": active, "done": done})
        wanted += [m.issue for m in [*active, *done]]
    return {**common(site, snapshot), "rigs": rigs, "titles": titles_of(ctx.ledger.connection(), wanted)}


def gather_mr(site: Site, snapshot: TownStatus, arg: str) -> dict[str, Any]:
    ctx = site.handle.ctx
    conn = ctx.ledger.connection()
    mr = mrs.get_mr(conn, arg)
    issue = find_issue(conn, mr.issue)
    gate_log: list[str] = []
    if mr.gate_log:
        path = Path(mr.gate_log)
        if not path.is_absolute():
            path = ctx.town.root / path
        if path.resolve().is_relative_to(ctx.town.root):
            gate_log, _ = tail(path, 200)
    return {
        **common(site, snapshot), "mr": mr, "issue": issue,
        "detail": visible_block(mr.detail, 200) if mr.detail else [], "gate_log": gate_log,
    }


def gather_convoys(site: Site, snapshot: TownStatus, arg: str) -> dict[str, Any]:
    views = convoys.listing(site.handle.ctx.ledger, include_closed=True)
    ordered = sorted(views, key=lambda v: (v.convoy.status != "open", -v.convoy.created_at))
    return {**common(site, snapshot), "convoys": ordered[:CONVOYS], "convoy_total": len(views)}


def gather_events(site: Site, snapshot: TownStatus, arg: str) -> dict[str, Any]:
    return common(site, snapshot)


def gather_triggers(site: Site, snapshot: TownStatus, arg: str) -> dict[str, Any]:
    rows = site.triggers.triggers() if site.triggers is not None else []
    return {**common(site, snapshot), "available": site.triggers is not None, "triggers": rows}


SUMMARY = {"summary": "_summary.html"}
PAGES: dict[str, Page] = {
    "town": Page("town.html", {**SUMMARY, "rigs": "town/_rigs.html", "agents": "town/_agents.html",
                                "side": "town/_side.html", "slingable": "town/_slingable.html"}, gather_town),
    "agent": Page("agent.html", {**SUMMARY, "agent-state": "agent/_state.html"}, gather_agent),
    "mq": Page("mq.html", {**SUMMARY, "queues": "mq/_queues.html"}, gather_mq),
    "mr": Page("mr.html", {**SUMMARY, "mr-state": "mr/_state.html"}, gather_mr),
    "convoys": Page("convoys.html", {**SUMMARY, "convoys": "convoys/_list.html"}, gather_convoys),
    "events": Page("events.html", SUMMARY, gather_events),
    "triggers": Page("triggers.html", {**SUMMARY, "triggers": "triggers/_list.html"}, gather_triggers),
}


def check_exists(site: Site, view: str) -> None:
    """``NotFound`` when a view's subject (an agent, an MR) does not exist."""
    name, arg = parse_view(view)
    if name == "agent":
        from gastown.roles.fleet import find_spawn

        find_spawn(site.handle.ctx, arg)
    elif name == "mr" and mrs.find_mr(site.handle.ctx.ledger.connection(), arg) is None:
        raise NotFound(f"no merge request {arg} in this town", hint="see the merge queue page")
