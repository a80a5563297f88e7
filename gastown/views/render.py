"""Pure rendering of `gt feed`'s full-screen frame as rich renderables.

No printing and no I/O here; callers hand the result to their one console (a
``SafeConsole``, which escapes any control character that still gets through). Every
piece of text that came from outside (issue titles, agent output, event messages,
reasons) goes through ``literal()`` and into a ``rich.text.Text``: one line, control and
bidirectional characters shown as escapes, markup such as ``[bold]`` printed as typed.
`gt status` is plain text (``views/text.py``); the words and colours are shared.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gastown.ledger.events import Event
from gastown.views.status import AgentStatus, MergeQueue, TownStatus, count_states
from gastown.views.text import (
    KIND_STYLES,
    MAX_TEXT,
    MR_STATE_STYLES,
    PROBLEM_STATES,
    SEVERITY_STYLES,
    STATE_MARKS,
    STATE_STYLES,
    ago,
    clock_time,
    literal,
    who,
)


def lit(text: str | None, style: str = "", limit: int = MAX_TEXT) -> Text:
    """A one-line ``Text`` of outside text: never markup, never wrapped (ellipsis instead)."""
    return Text(literal(text, limit), style=style, no_wrap=True, overflow="ellipsis")


def _one_line(*parts: Text | str) -> Text:
    line = Text(no_wrap=True, overflow="ellipsis")
    for part in parts:
        line.append(part if isinstance(part, Text) else Text(part))
    return line


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
    if status.config_error is not None:
        line.append(" · gastown.toml BROKEN (last good in force; see gt status)", style="bold red")
    server = status.server
    if server is not None and server.enabled:
        healthy = server.running and bool(server.health and server.health.ok)
        line.append(" · server ")
        line.append("up" if healthy else ("UNHEALTHY" if server.running else "DOWN"),
                    style="green" if healthy else "bold red")
    in_flight = sum(t.in_flight for t in status.triggers)
    if in_flight:
        line.append(f" · {in_flight} requests in flight", style="blue")
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
