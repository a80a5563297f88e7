"""Pure rendering of the `gt status` page as lines of plain text, and the words and
colours `gt status` and `gt feed` share.

No rich here (it would cost `gt status` ~45 ms of start-up): sections are headings and
``views.table`` tables, coloured with plain SGR codes when ``color`` is on. Every piece
of outside text (titles, agent output, reasons, messages) goes through ``literal()``:
one line, control and bidirectional characters shown as escapes, markup such as
``[bold]`` printed as typed. Every row is one line; past ``width`` the wide columns
(titles, last lines, reasons) give way with an ellipsis, so 50 agents are 50 lines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from gastown.config.durations import format_duration
from gastown.ledger.events import Event
from gastown.safetext import one_line
from gastown.views.status import AgentStatus, MergeQueue, ServerStatus, TownStatus
from gastown.views.table import Cell, format_table, paint

STATE_STYLES = {
    "working": "green", "idle": "cyan", "spawning": "yellow", "stalled": "bold red", "dead": "bold red", "done": "dim",
    "unreachable": "bold yellow",
}
# A mark per state, so the tree reads without colour too.
STATE_MARKS = {"working": "●", "idle": "○", "spawning": "◌", "stalled": "▲", "dead": "✖", "done": "✓", "unreachable": "?"}
PROBLEM_STATES = frozenset({"stalled", "dead", "unreachable"})
KIND_STYLES = {
    "stalled": "bold red", "dead": "bold red", "restart": "red", "blocked": "bold red", "escalation": "bold red",
    "hold": "yellow", "failed": "red", "conflict": "red", "merged": "green", "done": "green", "sling": "cyan",
    "spawn": "cyan", "queued": "blue", "resume": "green", "mayor": "magenta", "review": "magenta",
    "trigger": "blue",
}
MR_STATE_STYLES = {"testing": "yellow", "reviewing": "magenta", "queued": "dim"}
REQUEST_STYLES = {"captured": "yellow", "in_progress": "cyan", "success": "green", "failed": "red"}
SEVERITY_STYLES = {"low": "dim", "medium": "yellow", "high": "red", "critical": "bold red"}
ISSUE_STYLES = {"blocked": "bold red", "hooked": "green", "in_review": "yellow", "closed": "dim"}
MAX_TEXT = 400  # characters kept from any outside text before a cell cuts it to its width
MAX_MRS_SHOWN = 20


# -- words -------------------------------------------------------------------------------


def literal(text: str | None, limit: int = MAX_TEXT) -> str:
    """``text`` as one safe line: whitespace runs folded to one space, control and
    bidirectional characters shown as escapes, cut at ``limit`` characters.

    >>> literal("a\\n  b\\x1b[2J\\u202ec [bold]x[/]")
    'a b\\\\x1b[2J\\\\u202ec [bold]x[/]'
    >>> literal("x" * 10, limit=5)
    'xxxx…'
    """
    return one_line(text, limit)


def ago(seconds: float | None) -> str:
    """``3m`` or ``-``. Pure."""
    return "-" if seconds is None else format_duration(seconds)


def clock_time(ts: float) -> str:
    """``HH:MM:SS`` in local time."""
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def who(rig: str | None, polecat: str | None) -> str:
    """``rig/polecat``, ``rig`` or ``-``. Pure."""
    if rig and polecat:
        return f"{rig}/{polecat}"
    return rig or polecat or "-"


def state_label(state: str, exit_status: int | None = None) -> str:
    """``● working`` or ``✖ dead (1)``. Pure."""
    return f"{STATE_MARKS.get(state, '?')} {state}" + (f" ({exit_status})" if exit_status is not None else "")


def event_line(event: Event) -> str:
    """The plain form of an event, for scripts and logs. Pure but for the local time zone.

    ``HH:MM:SS kind rig/polecat issue message``: always five space-separated fields before
    the message (``-`` for a missing one); the message is ``literal()``.
    """
    message = literal(event.message, limit=10_000)
    return f"{clock_time(event.at)} {event.kind} {who(event.rig, event.polecat)} {event.issue or '-'} {message}"


def counts_line(counts: dict[str, int], styles: dict[str, str], *, color: bool, zeros: bool = False) -> str:
    """``3 working · 1 idle`` with each word in its colour (``none`` when empty). Pure."""
    shown = [(state, n) for state, n in counts.items() if n or zeros]
    if not shown:
        return paint("none", "dim", color=color)
    return paint(" · ", "dim", color=color).join(
        paint(f"{n} {state}", styles.get(state, "") if n else "dim", color=color) for state, n in shown
    )


# -- gt status ---------------------------------------------------------------------------


def render_status(status: TownStatus, *, width: int | None = None, color: bool = False) -> list[str]:
    """The whole `gt status` page, top to bottom, as lines (no newline at their ends)."""
    page = _Page(width, color)
    page.lines += [town_header(status, color=color), mayor_line(status, color=color)]
    if status.config_error is not None:
        page.lines.append(paint(f"gastown.toml has an error, so the last good config is in force: "
                                f"{literal(status.config_error, 300)}", "bold red", color=color))
    if status.server is not None:
        page.lines.append(server_line(status.server, color=color))
    page.section("Rigs", len(status.rigs))
    rigs_table(page, status)
    page.section("Agents", len(status.agents))
    agents_table(page, status.agents)
    if status.queued:
        page.section("Queued slings", len(status.queued))
        queued_table(page, status)
    if status.merge_queues:
        page.section("Merge queue")
        merge_queue_table(page, status.merge_queues)
        in_flight_table(page, status.merge_queues)
    if status.holds:
        page.section("Holds", len(status.holds))
        holds_table(page, status)
    if status.escalations:
        page.section("Open escalations", len(status.escalations))
        escalations_table(page, status)
    if status.triggers:
        page.section("Triggers", len(status.triggers))
        triggers_table(page, status)
    if status.requests:
        page.section("Recent trigger requests")
        requests_table(page, status)
    page.section("Issues")
    page.lines.append(counts_line(status.issues, ISSUE_STYLES, color=color, zeros=True))
    if status.blocked:
        blocked_table(page, status)
    if status.costs:
        page.section("Costs")
        costs_table(page, status.costs)
    return page.lines


class _Page:
    """Lines being written, with the page's width and colour choice."""

    def __init__(self, width: int | None, color: bool) -> None:
        self.width, self.color = width, color
        self.lines: list[str] = []

    def section(self, title: str, count: int | None = None) -> None:
        self.lines += ["", paint(title + (f" ({count})" if count is not None else ""), "bold underline", color=self.color)]

    def note(self, text: str) -> None:
        self.lines.append(paint(text, "dim", color=self.color))

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Cell]], wide: Sequence[str] = ()) -> None:
        cut = [columns.index(c) for c in wide] or None
        self.lines += format_table(columns, rows, width=self.width, wide=cut, color=self.color)


def town_header(status: TownStatus, *, color: bool = False) -> str:
    name = f" · {paint(literal(status.name), 'bold', color=color)}" if status.name else ""
    return paint("gastown", "bold", color=color) + name + paint(
        f" · {clock_time(status.at)} · {literal(status.root)}", "dim", color=color
    )


def mayor_line(status: TownStatus, *, color: bool = False) -> str:
    mayor = status.mayor
    if not mayor.running:
        line = "Mayor: " + paint("not running", "bold red", color=color) + paint(" (start it with `gt up`)", "dim", color=color)
    else:
        line = "Mayor: " + paint("running", "green", color=color) + (f" (pid {mayor.pid})" if mayor.pid and mayor.pid > 0 else "")
    if mayor.loops:
        beats = [paint(f"{literal(b.loop, 40)} {ago(b.age_s)}", "yellow" if b.stale else "", color=color) for b in mayor.loops]
        line += paint(" · loops: ", "dim", color=color) + paint(", ", "dim", color=color).join(beats)
    return line


def server_line(server: ServerStatus, *, color: bool = False) -> str:
    """``Server: http://127.0.0.1:8470 healthy (pid 123)``, or why it is not."""
    if server.running:
        healthy = bool(server.health and server.health.ok)
        line = "Server: " + literal(server.url, 80) + paint(
            " healthy" if healthy else " UNHEALTHY", "green" if healthy else "bold red", color=color
        ) + f" (pid {server.pid})"
        if server.health and not server.health.ok:
            line += paint(f": {literal(server.health.detail, 80)}", "dim", color=color)
        return line
    if server.enabled:
        return "Server: " + paint("not running", "bold red", color=color) + paint(
            f" ({literal(server.url, 60)}; `gt up` starts it)", "dim", color=color
        )
    return "Server: " + paint("disabled ([server] enabled = false)", "dim", color=color)


def triggers_table(page: _Page, status: TownStatus) -> None:
    rows: list[list[Cell]] = []
    for t in status.triggers:
        last = t.last_request
        last_text = "-" if last is None else (
            f"{literal(last.id)} {literal(str(last.state))} {ago(status.at - last.received_at)} ago"
        )
        note: Cell = ("-", "dim")
        if t.problems:
            note = (literal(t.problems[0]), "red")
        elif t.next_run is not None:
            note = f"next {clock_time(t.next_run)} ({ago(t.next_run - status.at)})"
        rows.append([literal(t.name, 30), literal(t.kind), literal(t.rig, 30),
                     (t.state, "yellow" if t.paused else "green"), f"{t.in_flight}/{t.max_in_flight}", last_text, note])
    page.table(("NAME", "KIND", "RIG", "STATE", "IN FLIGHT", "LAST REQUEST", "NEXT / PROBLEM"), rows,
               wide=("NEXT / PROBLEM",))


def requests_table(page: _Page, status: TownStatus) -> None:
    rows: list[list[Cell]] = [
        [literal(r.id), literal(r.trigger, 30), (literal(str(r.state)), REQUEST_STYLES.get(str(r.state), "")),
         ago(status.at - r.received_at), literal(r.issue or "-"), literal(r.mr or "-"), (literal(r.outcome or "-"), "dim")]
        for r in status.requests
    ]
    page.table(("ID", "TRIGGER", "STATE", "AGE", "ISSUE", "MR", "OUTCOME"), rows, wide=("OUTCOME",))


def rigs_table(page: _Page, status: TownStatus) -> None:
    if not status.rigs:
        page.note("no rigs yet: add one with `gt rig add NAME REPO`")
        return
    mq = {m.rig: m for m in status.merge_queues}
    rows: list[list[Cell]] = []
    for rig in status.rigs:
        queue = mq.get(rig.name)
        mq_text = f"{queue.counts.get('queued', 0)}q {queue.counts.get('testing', 0)}t" if queue else "-"
        held = queue is not None and queue.hold is not None
        agents = ", ".join(f"{n} {state}" for state, n in rig.agents.items() if n) or "none"
        rows.append([literal(rig.name), literal(rig.branch), literal(rig.agent), str(rig.max_polecats), str(rig.queued),
                     (mq_text + (" HELD" if held else ""), "red" if held else ""), agents])
    page.table(("RIG", "BRANCH", "RUNTIME", "CAP", "QUEUED", "MQ", "AGENTS"), rows, wide=("AGENTS",))


def agents_table(page: _Page, agents: Sequence[AgentStatus]) -> None:
    if not agents:
        page.note("no agents running")
        return
    rows: list[list[Cell]] = [
        [literal(who(a.agent.rig, a.agent.polecat) + (f"@{a.agent.host}" if a.agent.host != "local" else "")), (state_label(a.state, a.agent.exit_status), STATE_STYLES.get(a.state, "")),
         literal(a.agent.issue), literal(a.title), literal(a.agent.agent), ago(a.age_s), ago(a.quiet_s),
         str(a.agent.restarts) if a.agent.restarts else "", (literal(a.agent.last_line), "dim")]
        for a in agents
    ]
    page.table(("AGENT", "STATE", "ISSUE", "TITLE", "RUNTIME", "AGE", "QUIET", "RST", "LAST LINE"), rows,
               wide=("TITLE", "LAST LINE"))


def queued_table(page: _Page, status: TownStatus) -> None:
    rows: list[list[Cell]] = [
        [literal(q.item.issue), literal(who(q.item.rig, q.item.polecat)), f"p{q.item.priority}", ago(q.waited_s),
         (str(q.item.failures), "red") if q.item.failures else "", literal(q.title)]
        for q in status.queued
    ]
    page.table(("ISSUE", "RIG", "PRI", "WAITED", "TRIES", "TITLE"), rows, wide=("TITLE",))


def merge_queue_table(page: _Page, queues: Sequence[MergeQueue]) -> None:
    rows: list[list[Cell]] = []
    for q in queues:
        last = q.last_round
        state: Cell = ("ready", "green")
        if q.hold is not None:
            state = (f"HELD: {literal(q.hold.reason)}", "bold red")
        elif q.running_round is not None:
            state = (f"round #{q.running_round} running", "yellow")
        rows.append([literal(q.rig), literal(q.target), str(q.counts.get("queued", 0)), str(q.counts.get("reviewing", 0)),
                     str(q.counts.get("testing", 0)), str(q.sent_back),
                     f"#{last.id} {last.outcome} ({last.gate_runs} runs)" if last else "-", state])
    page.table(("RIG", "TARGET", "QUEUED", "REVIEWING", "TESTING", "SENT BACK", "LAST ROUND", "STATE"), rows,
               wide=("STATE",))


def in_flight_table(page: _Page, queues: Sequence[MergeQueue], limit: int = MAX_MRS_SHOWN) -> None:
    mrs = [m for q in queues for m in q.in_flight]
    if not mrs:
        return
    rows: list[list[Cell]] = [
        [literal(m.mr.id), (str(m.mr.state), MR_STATE_STYLES.get(str(m.mr.state), "")), literal(m.mr.issue),
         literal(who(m.mr.rig, m.mr.polecat)), f"p{m.mr.priority}", ago(m.waited_s), literal(m.title)]
        for m in mrs[:limit]
    ]
    page.table(("MR", "STATE", "ISSUE", "POLECAT", "PRI", "WAITED", "TITLE"), rows, wide=("TITLE",))
    if len(mrs) > limit:
        page.note(f"… and {len(mrs) - limit} more (gt mq list)")


def holds_table(page: _Page, status: TownStatus) -> None:
    rows: list[list[Cell]] = []
    for h in status.holds:
        until = "until released" if h.until is None else (
            f"in {format_duration(h.until - status.at)}" if h.active else "expired"
        )
        rows.append([(h.kind, "yellow" if h.active else "dim"), literal(h.subject), ago(status.at - h.since) + " ago",
                     until, literal(h.reason)])
    page.table(("HOLD", "ON", "SINCE", "UNTIL", "REASON"), rows, wide=("REASON",))


def escalations_table(page: _Page, status: TownStatus) -> None:
    rows: list[list[Cell]] = [
        [literal(e.escalation.id), (e.escalation.severity, SEVERITY_STYLES.get(e.escalation.severity, "")), ago(e.age_s),
         literal(e.escalation.issue or "-"), literal(e.escalation.source), literal(e.escalation.message)]
        for e in status.escalations
    ]
    page.table(("ID", "SEVERITY", "AGE", "ISSUE", "FROM", "MESSAGE"), rows, wide=("MESSAGE",))


def blocked_table(page: _Page, status: TownStatus) -> None:
    rows: list[list[Cell]] = [
        [(literal(b.id), "red"), ago(status.at - b.since) + " ago", literal(b.title), (literal(b.reason), "dim")]
        for b in status.blocked
    ]
    page.table(("BLOCKED", "SINCE", "TITLE", "REASON"), rows, wide=("TITLE", "REASON"))


def costs_table(page: _Page, costs: dict[str, Any]) -> None:
    """Token costs today and in all, with the budgets."""
    budget = costs.get("budget_usd")
    rows = [
        ["today", f"{costs['today_tokens']:,}", f"${costs['today_usd']:.2f}" + (f" of ${budget:.2f} budget" if budget else "")],
        ["in all", f"{costs['total_tokens']:,}", f"${costs['total_usd']:.2f}"],
    ]
    for rig, rig_cost in costs.get("rig_budgets", {}).items():
        rows.append([f"rig {literal(rig)} today", "", f"${rig_cost['today_usd']:.2f} of ${rig_cost['budget_usd']:.2f}"])
    if costs.get("unpriced_spawns"):
        rows.append(["unpriced runs", str(costs["unpriced_spawns"]), "add [prices] for their model"])
    page.table(("WHAT", "TOKENS", "COST"), rows)
