"""Pure rendering: ``TownStatus`` snapshots and events to rich renderables.

No printing and no I/O here; callers hand the result to their one console. Every piece
of text that came from outside (issue titles, agent output, event messages, reasons)
goes through ``literal()`` and into a ``rich.text.Text``: one line, control and
bidirectional characters shown as escapes, markup such as ``[bold]`` printed as typed.
Every row is ``no_wrap`` with an ellipsis, so 50 agents are 50 lines in 100 columns.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gastown.config.durations import format_duration
from gastown.ledger.events import Event
from gastown.views.status import AgentStatus, MergeQueue, TownStatus, count_states

STATE_STYLES = {
    "working": "green", "idle": "cyan", "spawning": "yellow", "stalled": "bold red", "dead": "bold red", "done": "dim",
}
# A mark per state, so the tree reads without colour too.
STATE_MARKS = {"working": "●", "idle": "○", "spawning": "◌", "stalled": "▲", "dead": "✖", "done": "✓"}
PROBLEM_STATES = frozenset({"stalled", "dead"})
KIND_STYLES = {
    "stalled": "bold red", "dead": "bold red", "restart": "red", "blocked": "bold red", "escalation": "bold red",
    "hold": "yellow", "failed": "red", "conflict": "red", "merged": "green", "done": "green", "sling": "cyan",
    "spawn": "cyan", "queued": "blue", "resume": "green", "mayor": "magenta", "review": "magenta",
}
MR_STATE_STYLES = {"testing": "yellow", "reviewing": "magenta", "queued": "dim"}
SEVERITY_STYLES = {"low": "dim", "medium": "yellow", "high": "red", "critical": "bold red"}
MAX_TEXT = 400  # characters kept from any outside text before rich truncates it to the cell
MAX_MRS_SHOWN = 20

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


# -- text ------------------------------------------------------------------------------


def literal(text: str | None, limit: int = MAX_TEXT) -> str:
    """``text`` as one safe line: whitespace runs folded to one space, control and
    bidirectional characters shown as escapes, cut at ``limit`` characters.

    >>> literal("a\\n  b\\x1b[2J\\u202ec [bold]x[/]")
    'a b\\\\x1b[2J\\\\u202ec [bold]x[/]'
    >>> literal("x" * 10, limit=5)
    'xxxx…'
    """
    line = " ".join((text or "").split())
    line = _UNSAFE.sub(_escape, line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def lit(text: str | None, style: str = "", limit: int = MAX_TEXT) -> Text:
    """A one-line ``Text`` of outside text: never markup, never wrapped (ellipsis instead)."""
    return Text(literal(text, limit), style=style, no_wrap=True, overflow="ellipsis")


def ago(seconds: float | None) -> str:
    """``3m`` or ``-``. Pure."""
    return "-" if seconds is None else format_duration(seconds)


def clock_time(ts: float) -> str:
    """``HH:MM:SS`` in local time."""
    return dt.datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def state_text(state: str, exit_status: int | None = None) -> Text:
    label = f"{STATE_MARKS.get(state, '?')} {state}" + (f" ({exit_status})" if exit_status is not None else "")
    return Text(label, style=STATE_STYLES.get(state, ""), no_wrap=True, overflow="ellipsis")


def who(rig: str | None, polecat: str | None) -> str:
    """``rig/polecat``, ``rig`` or ``-``. Pure."""
    if rig and polecat:
        return f"{rig}/{polecat}"
    return rig or polecat or "-"


def event_line(event: Event) -> str:
    """The plain form of an event, for scripts and logs. Pure but for the local time zone.

    ``HH:MM:SS kind rig/polecat issue message``: always five space-separated fields before
    the message (``-`` for a missing one); the message is ``literal()``.
    """
    message = literal(event.message, limit=10_000)
    return f"{clock_time(event.at)} {event.kind} {who(event.rig, event.polecat)} {event.issue or '-'} {message}"


def _one_line(*parts: Text | str) -> Text:
    line = Text(no_wrap=True, overflow="ellipsis")
    for part in parts:
        line.append(part if isinstance(part, Text) else Text(part))
    return line


def _table(*columns: str, wide: Sequence[str] = ()) -> Table:
    """A borderless table; every column ellipsizes. ``wide`` columns give up width first."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", collapse_padding=True)
    for column in columns:
        wraps = column in wide  # the cell Text itself never wraps; the column may shrink
        table.add_column(column, no_wrap=not wraps, overflow="ellipsis", min_width=4 if wraps else None)
    return table


def _heading(title: str, count: int | None = None) -> Text:
    return Text(title + (f" ({count})" if count is not None else ""), style="bold underline")


def state_counts_text(counts: dict[str, int], *, zeros: bool = False) -> Text:
    """``3 working · 1 idle`` with each state in its colour (``none`` when empty)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    shown = [(state, n) for state, n in counts.items() if n or zeros]
    for i, (state, n) in enumerate(shown):
        if i:
            text.append(" · ", style="dim")
        text.append(f"{n} {state}", style=STATE_STYLES.get(state, ""))
    if not shown:
        text.append("none", style="dim")
    return text


# -- gt status -------------------------------------------------------------------------


def render_status(status: TownStatus) -> RenderableType:
    """The whole `gt status` page, top to bottom."""
    parts: list[RenderableType] = [town_header(status), mayor_line(status)]
    parts += ["", _heading("Rigs", len(status.rigs)), rigs_table(status)]
    parts += ["", _heading("Agents", len(status.agents)), agents_table(status.agents)]
    if status.queued:
        parts += ["", _heading("Queued slings", len(status.queued)), queued_table(status)]
    if status.merge_queues:
        parts += ["", _heading("Merge queue"), merge_queue_table(status.merge_queues)]
        in_flight = in_flight_table(status.merge_queues)
        if in_flight is not None:
            parts.append(in_flight)
    if status.holds:
        parts += ["", _heading("Holds", len(status.holds)), holds_table(status)]
    if status.escalations:
        parts += ["", _heading("Open escalations", len(status.escalations)), escalations_table(status)]
    parts += ["", _heading("Issues"), issues_line(status.issues)]
    if status.blocked:
        parts.append(blocked_table(status))
    costs = render_costs(status.costs)
    if costs is not None:
        parts += ["", _heading("Costs"), costs]
    return Group(*parts)


def render_costs(costs: dict[str, Any] | None) -> RenderableType | None:
    """Token costs today and in all, with the budgets; nothing when unknown."""
    if not costs:
        return None
    table = _table("WHAT", "TOKENS", "COST")
    budget = costs.get("budget_usd")
    today = f"${costs['today_usd']:.2f}" + (f" of ${budget:.2f} budget" if budget else "")
    table.add_row(lit("today"), lit(f"{costs['today_tokens']:,}"), lit(today))
    table.add_row(lit("in all"), lit(f"{costs['total_tokens']:,}"), lit(f"${costs['total_usd']:.2f}"))
    for rig, rig_cost in costs.get("rig_budgets", {}).items():
        table.add_row(lit(f"rig {rig} today"), lit(""), lit(f"${rig_cost['today_usd']:.2f} of ${rig_cost['budget_usd']:.2f}"))
    if costs.get("unpriced_spawns"):
        table.add_row(lit("unpriced runs"), lit(str(costs["unpriced_spawns"])), lit("add [prices] for their model"))
    return table


def town_header(status: TownStatus) -> Text:
    line = Text("gastown", style="bold", no_wrap=True, overflow="ellipsis")
    if status.name:
        line.append(" · ")
        line.append(literal(status.name), style="bold")
    line.append(f" · {clock_time(status.at)} · ", style="dim")
    line.append(literal(status.root), style="dim")
    return line


def mayor_line(status: TownStatus) -> Text:
    mayor = status.mayor
    line = Text("Mayor: ", no_wrap=True, overflow="ellipsis")
    if not mayor.running:
        line.append("not running", style="bold red")
        line.append(" (start it with `gt up`)", style="dim")
    else:
        line.append("running", style="green")
        if mayor.pid and mayor.pid > 0:
            line.append(f" (pid {mayor.pid})")
    if mayor.loops:
        line.append(" · loops: ", style="dim")
        for i, beat in enumerate(mayor.loops):
            if i:
                line.append(", ", style="dim")
            line.append(f"{literal(beat.loop, 40)} {ago(beat.age_s)}", style="yellow" if beat.stale else "")
    return line


def rigs_table(status: TownStatus) -> RenderableType:
    if not status.rigs:
        return Text("no rigs yet: add one with `gt rig add NAME REPO`", style="dim")
    mq = {m.rig: m for m in status.merge_queues}
    table = _table("RIG", "BRANCH", "RUNTIME", "CAP", "QUEUED", "MQ", "AGENTS", wide=("AGENTS",))
    for rig in status.rigs:
        queue = mq.get(rig.name)
        mq_text = f"{queue.counts.get('queued', 0)}q {queue.counts.get('testing', 0)}t" if queue else "-"
        table.add_row(
            lit(rig.name), lit(rig.branch), lit(rig.agent), str(rig.max_polecats), str(rig.queued),
            Text(mq_text + (" HELD" if queue and queue.hold else ""), style="red" if queue and queue.hold else ""),
            state_counts_text(rig.agents),
        )
    return table


def agents_table(agents: Sequence[AgentStatus]) -> RenderableType:
    if not agents:
        return Text("no agents running", style="dim")
    table = _table("AGENT", "STATE", "ISSUE", "TITLE", "RUNTIME", "AGE", "QUIET", "RST", "LAST LINE",
                   wide=("TITLE", "LAST LINE"))
    for a in agents:
        v = a.agent
        table.add_row(
            lit(who(v.rig, v.polecat)), state_text(v.state, v.exit_status), lit(v.issue), lit(a.title),
            lit(v.agent), ago(a.age_s), ago(a.quiet_s), str(v.restarts) if v.restarts else "",
            lit(v.last_line, "dim"),
        )
    return table


def queued_table(status: TownStatus) -> RenderableType:
    table = _table("ISSUE", "RIG", "PRI", "WAITED", "TRIES", "TITLE", wide=("TITLE",))
    for q in status.queued:
        item = q.item
        table.add_row(
            lit(item.issue), lit(who(item.rig, item.polecat)), f"p{item.priority}", ago(q.waited_s),
            Text(str(item.failures), style="red") if item.failures else "", lit(q.title),
        )
    return table


def merge_queue_table(queues: Sequence[MergeQueue]) -> RenderableType:
    table = _table("RIG", "TARGET", "QUEUED", "REVIEWING", "TESTING", "SENT BACK", "LAST ROUND", "STATE",
                   wide=("STATE",))
    for q in queues:
        last = q.last_round
        last_text = f"#{last.id} {last.outcome} ({last.gate_runs} runs)" if last else "-"
        if q.hold is not None:
            state = lit(f"HELD: {literal(q.hold.reason)}", "bold red")
        elif q.running_round is not None:
            state = Text(f"round #{q.running_round} running", style="yellow")
        else:
            state = Text("ready", style="green")
        table.add_row(
            lit(q.rig), lit(q.target), str(q.counts.get("queued", 0)), str(q.counts.get("reviewing", 0)),
            str(q.counts.get("testing", 0)), str(q.sent_back), lit(last_text), state,
        )
    return table


def in_flight_table(queues: Sequence[MergeQueue], limit: int = MAX_MRS_SHOWN) -> RenderableType | None:
    mrs = [m for q in queues for m in q.in_flight]
    if not mrs:
        return None
    table = _table("MR", "STATE", "ISSUE", "POLECAT", "PRI", "WAITED", "TITLE", wide=("TITLE",))
    for m in mrs[:limit]:
        mr = m.mr
        table.add_row(
            lit(mr.id), Text(str(mr.state), style=MR_STATE_STYLES.get(str(mr.state), "")), lit(mr.issue),
            lit(who(mr.rig, mr.polecat)), f"p{mr.priority}", ago(m.waited_s), lit(m.title),
        )
    if len(mrs) > limit:
        return Group(table, Text(f"… and {len(mrs) - limit} more (gt mq list)", style="dim"))
    return table


def holds_table(status: TownStatus) -> RenderableType:
    table = _table("HOLD", "ON", "SINCE", "UNTIL", "REASON", wide=("REASON",))
    for h in status.holds:
        until = "until released" if h.until is None else (
            f"in {format_duration(h.until - status.at)}" if h.active else "expired"
        )
        table.add_row(
            Text(h.kind, style="yellow" if h.active else "dim"), lit(h.subject), ago(status.at - h.since) + " ago",
            until, lit(h.reason),
        )
    return table


def escalations_table(status: TownStatus) -> RenderableType:
    table = _table("ID", "SEVERITY", "AGE", "ISSUE", "FROM", "MESSAGE", wide=("MESSAGE",))
    for e in status.escalations:
        esc = e.escalation
        table.add_row(
            lit(esc.id), Text(esc.severity, style=SEVERITY_STYLES.get(esc.severity, "")), ago(e.age_s),
            lit(esc.issue or "-"), lit(esc.source), lit(esc.message),
        )
    return table


def issues_line(counts: dict[str, int]) -> Text:
    styles = {"blocked": "bold red", "hooked": "green", "in_review": "yellow", "closed": "dim"}
    text = Text(no_wrap=True, overflow="ellipsis")
    for i, (status, n) in enumerate(counts.items()):
        if i:
            text.append(" · ", style="dim")
        text.append(f"{n} {status}", style=styles.get(status, "") if n else "dim")
    return text


def blocked_table(status: TownStatus) -> RenderableType:
    table = _table("BLOCKED", "SINCE", "TITLE", "REASON", wide=("TITLE", "REASON"))
    for b in status.blocked:
        table.add_row(lit(b.id, "red"), ago(status.at - b.since) + " ago", lit(b.title), lit(b.reason, "dim"))
    return table


# -- gt feed ---------------------------------------------------------------------------


def render_feed(
    status: TownStatus,
    events: Sequence[Event],
    *,
    width: int,
    height: int,
    problems: bool = False,
    now: float | None = None,
) -> RenderableType:
    """One full-screen frame of `gt feed`: a header line, the agent tree by rig beside the
    merge queue (and holds, escalations, blocked issues), the newest events at the bottom.

    Exactly ``height`` lines of at most ``width`` columns; lists too long for their panel
    keep their problems and say how many more there are. ``now`` is the clock shown in
    the header (default: when the snapshot was taken).
    """
    height = max(height, 8)
    events_h = max(4, height // 3)
    body_h = height - 1 - events_h
    agents = [a for a in status.agents if a.state in PROBLEM_STATES] if problems else list(status.agents)
    side_w = max(30, width * 2 // 5) if width >= 80 else 0
    tree = Panel(
        agent_tree(status, agents, body_h - 2, problems=problems),
        title="Problem agents" if problems else "Agents", title_align="left", height=body_h, padding=(0, 1),
    )
    if side_w:
        side = Panel(
            side_panel(status, body_h - 2, problems=problems),
            title="Holds and escalations" if problems else "Merge queue", title_align="left", height=body_h,
            padding=(0, 1), width=side_w,
        )
        body: RenderableType = Table.grid(expand=True)
        assert isinstance(body, Table)
        body.add_column(ratio=1)
        body.add_column(width=side_w)
        body.add_row(tree, side)
    else:
        body = tree
    feed = Panel(
        event_lines(events[-(events_h - 2):] if events_h > 2 else []),
        title="Problems" if problems else "Events", title_align="left", height=events_h, padding=(0, 1),
    )
    return Group(feed_header(status, problems=problems, now=now), body, feed)


def feed_header(status: TownStatus, *, problems: bool = False, now: float | None = None) -> Text:
    line = Text(clock_time(status.at if now is None else now), style="bold", no_wrap=True, overflow="ellipsis")
    if status.name:
        line.append(f" {literal(status.name, 40)}", style="bold")
    line.append(" · Mayor ")
    line.append("up" if status.mayor.running else "DOWN", style="green" if status.mayor.running else "bold red")
    line.append(f" · {len(status.agents)} agents: ")
    line.append_text(state_counts_text(count_states(a.state for a in status.agents)))
    if status.queued:
        line.append(f" · {len(status.queued)} queued", style="blue")
    queued = sum(q.counts.get("queued", 0) for q in status.merge_queues)
    testing = sum(q.counts.get("testing", 0) for q in status.merge_queues)
    reviewing = sum(q.counts.get("reviewing", 0) for q in status.merge_queues)
    line.append(f" · mq {queued} queued, {testing} testing" + (f", {reviewing} in review" if reviewing else ""))
    if status.escalations:
        line.append(f" · {len(status.escalations)} escalations", style="bold red")
    if status.costs:
        line.append(f" · ${status.costs['today_usd']:.2f} today")
    active_holds = [h for h in status.holds if h.active]
    if active_holds:
        line.append(f" · {len(active_holds)} holds", style="yellow")
    if problems:
        line.append(" · problems only", style="dim")
    return line


def fit_counts(counts: Sequence[int], budget: int) -> list[int]:
    """Share ``budget`` lines among groups of ``counts`` items: one each first (while
    lines last), the rest in proportion, never more than a group has. Pure.

    >>> fit_counts([30, 15, 5], 100), fit_counts([30, 15, 5], 20), fit_counts([1, 99], 10)
    ([30, 15, 5], [12, 6, 2], [1, 9])
    """
    if sum(counts) <= budget:
        return list(counts)
    alloc = [0] * len(counts)
    left = max(0, budget)
    for i, count in enumerate(counts):
        if count and left:
            alloc[i] = 1
            left -= 1
    rest = [c - a for c, a in zip(counts, alloc, strict=True)]
    total = sum(rest)
    if not left or not total:
        return alloc
    shares = [left * r / total for r in rest]
    for i, share in enumerate(shares):
        alloc[i] += int(share)
    spare = budget - sum(alloc)
    for i in sorted(range(len(counts)), key=lambda i: shares[i] - int(shares[i]), reverse=True):
        if spare > 0 and alloc[i] < counts[i]:
            alloc[i] += 1
            spare -= 1
    return alloc


def agent_tree(status: TownStatus, agents: Sequence[AgentStatus], rows: int, *, problems: bool = False) -> Text:
    """Rigs and their agents, one line each, cut to ``rows`` lines (problems kept first)."""
    rigs = [r.name for r in status.rigs]
    rigs += sorted({a.agent.rig for a in agents} - set(rigs))
    by_rig = {rig: [a for a in agents if a.agent.rig == rig] for rig in rigs}
    if problems:
        rigs = [rig for rig in rigs if by_rig[rig]]
    if not rigs:
        return Text("no problem agents" if problems else "no rigs yet", style="dim")
    branches = {r.name: r.branch for r in status.rigs}
    shown = fit_counts([len(by_rig[rig]) for rig in rigs], rows - len(rigs))
    lines: list[Text] = []
    for rig, room in zip(rigs, shown, strict=True):
        members = by_rig[rig]
        head = Text(literal(rig, 40), style="bold", no_wrap=True, overflow="ellipsis")
        if rig in branches:
            head.append(f" → {literal(branches[rig], 40)}", style="dim")
        head.append("  ")
        head.append_text(state_counts_text(count_states(a.state for a in members)))
        lines.append(head)
        cut = room < len(members)
        visible = members[: room - 1] if cut and room > 0 else members[:room]
        for i, a in enumerate(visible):
            last = i == len(visible) - 1 and not cut
            lines.append(agent_line(a, "└ " if last else "├ "))
        if cut and room > 0:
            rest = count_states(a.state for a in members[len(visible):])
            more = Text(f"└ … {len(members) - len(visible)} more: ", style="dim", no_wrap=True, overflow="ellipsis")
            more.append_text(state_counts_text(rest))
            lines.append(more)
    return Text("\n", no_wrap=True, overflow="ellipsis").join(lines)


def agent_line(a: AgentStatus, branch: str) -> Text:
    v = a.agent
    style = STATE_STYLES.get(v.state, "")
    line = Text(branch, style="dim", no_wrap=True, overflow="ellipsis")
    line.append(f"{literal(v.polecat, 12):<12} ", style="dim" if v.state == "done" else "")
    line.append(f"{STATE_MARKS.get(v.state, '?')} {v.state:<8} ", style=style)
    line.append(f"{literal(v.issue, 14)} ", style="dim" if v.state == "done" else "")
    line.append(f"{ago(a.age_s):>5} ", style="dim")
    if v.restarts:
        line.append(f"↻{v.restarts} ", style="red")
    line.append_text(lit(v.last_line or a.title or "", "dim"))
    return line


def side_panel(status: TownStatus, rows: int, *, problems: bool = False) -> Text:
    """Holds, escalations and blocked issues first (they need a person), then each rig's queue."""
    trouble: list[Text] = []
    for h in status.holds:
        if h.active:
            trouble.append(_one_line(Text(f"⏸ {h.kind} {literal(h.subject, 30)}: ", style="yellow"), lit(h.reason)))
    for e in status.escalations:
        esc = e.escalation
        trouble.append(_one_line(
            Text(f"! {esc.severity} ", style=SEVERITY_STYLES.get(esc.severity, "")), lit(esc.message),
        ))
    for b in status.blocked:
        trouble.append(_one_line(Text(f"⊘ {literal(b.id, 20)} ", style="red"), lit(b.title)))
    lines: list[Text] = []
    if problems:
        lines = trouble or [Text("no holds, escalations or blocked issues", style="dim")]
    else:
        queue_lines = merge_queue_lines(status.merge_queues, max(0, rows - min(len(trouble), rows // 2)))
        lines = queue_lines + trouble
    if len(lines) > rows:
        lines = lines[: max(0, rows - 1)] + [Text(f"… {len(lines) - rows + 1} more", style="dim")]
    return Text("\n", no_wrap=True, overflow="ellipsis").join(lines)


def merge_queue_lines(queues: Sequence[MergeQueue], rows: int) -> list[Text]:
    """Per rig: counts and state, then its MRs in flight as room allows."""
    if not queues:
        return [Text("no rigs yet", style="dim")]
    room = fit_counts([len(q.in_flight) for q in queues], rows - len(queues))
    lines = []
    for q, n in zip(queues, room, strict=True):
        head = Text(literal(q.rig, 30), style="bold", no_wrap=True, overflow="ellipsis")
        if q.hold is not None:
            head.append(" HELD", style="bold red")
        elif q.running_round is not None:
            head.append(f" round #{q.running_round}", style="yellow")
        head.append(f" · {q.counts.get('queued', 0)} queued · {q.counts.get('testing', 0)} testing")
        if q.counts.get("reviewing", 0):
            head.append(f" · {q.counts['reviewing']} in review", style="magenta")
        if q.sent_back:
            head.append(f" · {q.sent_back} sent back", style="red")
        lines.append(head)
        for m in q.in_flight[:n]:
            lines.append(_one_line(
                Text(f"  {m.mr.state!s:<9} ", style=MR_STATE_STYLES.get(str(m.mr.state), "dim")),
                f"{literal(m.mr.issue, 14)} {ago(m.waited_s):>5} ", lit(m.title, "dim"),
            ))
    return lines


def event_lines(events: Iterable[Event]) -> Text:
    """Events oldest first (newest at the bottom), one line each, kinds coloured."""
    lines = []
    for ev in events:
        line = Text(clock_time(ev.at) + " ", style="dim", no_wrap=True, overflow="ellipsis")
        line.append(f"{literal(ev.kind, 10):<10} ", style=KIND_STYLES.get(ev.kind, ""))
        line.append(f"{literal(who(ev.rig, ev.polecat), 18):<18} ")
        line.append(f"{literal(ev.issue or '-', 12):<12} ", style="dim")
        line.append_text(lit(ev.message))
        lines.append(line)
    if not lines:
        return Text("no events yet", style="dim")
    return Text("\n", no_wrap=True, overflow="ellipsis").join(lines)
