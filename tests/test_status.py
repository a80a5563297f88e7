"""`gt status`: the snapshot, its rendering at 50 agents in 100 columns, and the real command."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from gastown.context import Context
from gastown.ledger.escalations import Escalation
from gastown.ledger.events import Event
from gastown.ledger.mrs import _example as example_mr
from gastown.ledger import rounds
from gastown.ledger.holds import HoldScope
from gastown.roles.fleet import AgentView
from gastown.ledger.queue import Queued
from gastown.states import AgentState, MRState
from gastown.town import Town
from gastown.views import text
from gastown.views.status import (
    AgentStatus,
    BlockedIssue,
    EscalationStatus,
    HoldStatus,
    InFlightMR,
    LoopBeat,
    MayorStatus,
    MergeQueue,
    QueuedSling,
    RigSummary,
    TownStatus,
    collect_status,
    count_states,
    sort_agents,
)
from tests.helpers import create_issue, gt_json, record_tmux_calls, retry_until, run_gt, set_config
from tests.test_sling import add_agents

NOW = 1_800_000_000.0
HOSTILE = "[bold]x[/] $(rm -rf ~) `id` \x1b[2J\u202eevil\nsecond line " + "very long title " * 20
STATES = [str(s) for s in AgentState]
RIGS = ("app", "api", "web-frontend")


def console(width: int = 100, height: int = 40) -> Console:
    return Console(file=io.StringIO(), width=width, height=height, color_system=None, legacy_windows=False, _environ={})


def output(renderable: object, width: int = 100, height: int = 40) -> str:
    con = console(width, height)
    con.print(renderable)
    out = con.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def agent(n: int, rig: str, state: str, title: str) -> AgentStatus:
    view = AgentView(
        rig=rig, polecat=f"polecat{n:02d}", issue=f"{rig[:3]}-{n:05d}", spawn=f"sp-{n:06d}", agent="claude",
        state=state, pane=f"%{n}", started_at=NOW - 60 * n, last_activity=NOW - n, last_line=f"step {n}: " + HOSTILE,
        restarts=n % 3, nudges=0, exit_status=1 if state == "dead" else None,
    )
    return AgentStatus(view, title, age_s=60.0 * n, quiet_s=float(n))


def synthetic_status(agents: int = 50) -> TownStatus:
    """A busy town: ``agents`` agents across three rigs in every state, hostile text everywhere."""
    rows = [agent(n, RIGS[n % 3], STATES[n % len(STATES)], HOSTILE if n % 5 == 0 else f"issue number {n}")
            for n in range(agents)]
    queued = [
        QueuedSling(Queued(f"app-q{n:04d}", "app", None, None, n % 5, "fresh", None, None, NOW - 100 * n, n % 2,
                           "boom" if n % 2 else None), HOSTILE, 100.0 * n)
        for n in range(6)
    ]
    queues = []
    for i, rig in enumerate(RIGS):
        mrs = [
            InFlightMR(example_mr(id=f"mr-{i}{n:05d}", rig=rig, issue=f"{rig[:3]}-m{n:04d}", polecat=f"polecat{n:02d}",
                                  state=MRState.TESTING if n == 0 else MRState.QUEUED, created_at=NOW - 50 * n),
                       HOSTILE, 50.0 * n)
            for n in range(8)
        ]
        last = rounds.Round(7, rig, NOW - 500, NOW - 400, "abc", ("mr-1",), None, (), 3, "merged", None)
        hold = rounds.Hold(HoldScope.refinery(rig), "gates red on the target: " + HOSTILE, NOW - 30, None) if i == 1 else None
        queues.append(MergeQueue(rig, "main", 4, {"queued": 7, "testing": 1, "conflict": 1, "failed": 0, "merged": 9,
                                                 "rejected": 0}, mrs, 12 if i == 0 else None, last, hold))
    holds = [
        HoldStatus("runtime:claude", "runtime", "claude", "usage limit reached " + HOSTILE, NOW - 60, NOW + 600, True),
        HoldStatus("refinery:api", "refinery", "api", "gates red", NOW - 30, None, True),
        HoldStatus("pause:polecats", "pause", "polecats", "gt down --polecats", NOW - 10, None, True),
    ]
    esc = Escalation("esc-abc123", "app-00005", "app", "polecat05", None, "high", HOSTILE, "witness", NOW - 90,
                     None, None)
    return TownStatus(
        root="/tmp/town", name="acme", max_polecats=12, at=NOW,
        mayor=MayorStatus(4242, [LoopBeat("witness:app", NOW - 2, 2.0, 4242, "waiting"),
                                 LoopBeat("deacon", NOW - 300, 300.0, 4242, "working")]),
        rigs=[RigSummary(rig, "main", "claude", 4, count_states(a.state for a in rows if a.agent.rig == rig), 2)
              for rig in RIGS],
        agents=sort_agents(rows), queued=queued, merge_queues=queues, holds=holds,
        escalations=[EscalationStatus(esc, 90.0)],
        issues={"open": 3, "hooked": 50, "in_review": 24, "closed": 100, "blocked": 1},
        blocked=[BlockedIssue("app-00005", "app", HOSTILE, "gave up: " + HOSTILE, NOW - 90)],
    )


def page(status: TownStatus, width: int | None = 100, color: bool = False) -> str:
    return "\n".join(text.render_status(status, width=width, color=color)) + "\n"


def test_status_at_fifty_agents_fits_100_columns_and_prints_hostile_text_literally() -> None:
    status = synthetic_status(50)
    out = page(status)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    start = lines.index("Agents (50)") + 2
    section = lines[start:lines.index("", start)]
    assert len(section) == 50, "one line per agent, never wrapped"
    assert len({line.split()[0] for line in section}) == 50 and all(line.split()[0].count("/") == 1 for line in section)
    for state in STATES:
        assert f" {state}" in out, state
    assert "[bold]x[/]" in out, "markup in a title must print as typed"
    assert "\\x1b[2J" in out and "\x1b" not in out, "escape sequences are shown, never sent"
    assert "\\u202e" in out and "\u202e" not in out
    assert "…" in out, "long titles are cut with an ellipsis"
    assert "second line" in out and "evil\n" not in out
    assert "HELD" in out and "not running" not in out and "pid 4242" in out
    assert "esc-abc123" in out and "app-q0000" in out and "50 hooked" in out
    assert "Costs" not in out


def test_status_render_is_pure_and_width_safe_when_narrow() -> None:
    status = synthetic_status(10)
    for width in (60, 80, 120):
        out = page(status, width=width)
        assert max(len(line) for line in out.splitlines()) <= width
    assert page(status) == page(status)
    assert max(len(line) for line in page(status, width=None).splitlines()) > 120, "piped: nothing is cut"


def test_status_in_colour_adds_only_colour_codes() -> None:
    status = synthetic_status(10)
    coloured = page(status, color=True)
    assert "\x1b[1;31m" in coloured and "\x1b[32m" in coloured, "dead agents red, working green"
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == page(status), "the same page, only coloured"


def test_costs_render_today_total_and_budgets() -> None:
    costs = {"today_usd": 1.25, "total_usd": 12.5, "today_tokens": 1200, "total_tokens": 98765,
             "unpriced_spawns": 1, "budget_usd": 20.0, "rig_budgets": {"app": {"budget_usd": 5.0, "today_usd": 0.5}}}
    out = page(synthetic_status(2)._replace(costs=costs))
    assert "$1.25 of $20.00 budget" in out and "$12.50" in out and "98,765" in out
    assert "rig app today" in out and "unpriced runs" in out


def test_status_json_document_has_every_section() -> None:
    doc = json.loads(json.dumps(synthetic_status(6).to_json()))
    assert set(doc) == {"town", "at", "mayor", "rigs", "agents", "queued", "merge_queue", "holds", "escalations",
                        "issues", "blocked", "costs", "server", "triggers", "requests", "config_error"}
    first = doc["agents"][0]
    wanted = {"rig", "polecat", "issue", "title", "state", "agent", "age_s", "quiet_s", "last_line", "restarts"}
    assert wanted <= first.keys()
    assert doc["mayor"]["running"] is True and doc["mayor"]["loops"][1]["stale"] is True
    assert doc["merge_queue"][0]["in_flight"][0]["state"] == "testing"
    assert {h["kind"] for h in doc["holds"]} == {"runtime", "refinery", "pause"}
    assert doc["holds"][0]["until"].endswith("Z")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("plain", "plain"),
        ("[red]markup[/red]", "[red]markup[/red]"),
        ("two\nlines\r\n\tand tabs", "two lines and tabs"),
        ("esc \x1b[31m bell \x07", "esc \\x1b[31m bell \\x07"),
        ("bidi \u202eabc\u2066", "bidi \\u202eabc\\u2066"),
        ("emoji 🚀 漢字", "emoji 🚀 漢字"),
    ],
    ids=["plain", "markup", "newlines", "controls", "bidi", "wide"],
)
def test_literal(raw: str, expected: str) -> None:
    assert text.literal(raw) == expected


def test_event_line_has_five_fields_before_the_message() -> None:
    event = Event(1, NOW, "stalled", "app", "ace", "sp-1", "app-k3x9q", "agent is\nstalled [b]x[/b]", None)
    fields = text.event_line(event).split(" ", 4)
    assert fields[1:4] == ["stalled", "app/ace", "app-k3x9q"]
    assert fields[4] == "agent is stalled [b]x[/b]"
    bare = Event(2, NOW, "mayor", None, None, None, None, "up", None)
    assert text.event_line(bare).split(" ", 4)[1:] == ["mayor", "-", "-", "up"]


# -- the real command against a real town -------------------------------------------------


@pytest.mark.tmux
def test_gt_status_json_shows_agents_queue_counts_and_escalations(rig_town: Path, tmux_socket: str) -> None:
    add_agents(rig_town)
    set_config(rig_town, "town", {"max_polecats": 1})
    ids = [create_issue(rig_town, title) for title in ("[bold]first[/]", "second", "third")]
    slung = gt_json("sling", *ids, "--agent", "argbot", cwd=rig_town)
    assert [r["status"] for r in slung] == ["started", "queued", "queued"]
    run_gt("escalate", "the build server is on fire", "--severity", "high", cwd=rig_town, check=True)

    doc = retry_until(
        lambda: (d := gt_json("status", cwd=rig_town))["agents"] and d["agents"][0]["last_line"] and d,
        timeout=15, what="the agent to print its first line",
    )
    (working,) = doc["agents"]
    assert working["issue"] == ids[0] and working["title"] == "[bold]first[/]"
    assert working["state"] in ("spawning", "working") and working["agent"] == "argbot"
    assert working["age_s"] >= 0 and working["restarts"] == 0
    assert [q["issue"] for q in doc["queued"]] == ids[1:]
    assert all(q["waited_s"] >= 0 and q["title"] for q in doc["queued"])
    assert doc["issues"]["hooked"] == 1 and doc["issues"]["open"] == 2
    assert doc["rigs"] == [{"name": "app", "branch": "main", "agent": "claude", "max_polecats": 1,
                            "agents": {**{s: 0 for s in STATES}, working["state"]: 1}, "queued": 2}]
    assert doc["mayor"] == {"running": False, "pid": None, "loops": []}
    assert doc["merge_queue"][0]["rig"] == "app" and doc["merge_queue"][0]["queued"] == 0
    assert [e["message"] for e in doc["escalations"]] == ["the build server is on fire"]
    assert doc["escalations"][0]["severity"] == "high" and doc["costs"]["total_usd"] == 0

    text = run_gt("status", cwd=rig_town, check=True).stdout
    assert "[bold]first[/]" in text and "the build server is on fire" in text and ids[2] in text

    ctx = Context(Town(rig_town))
    calls = record_tmux_calls(ctx)
    snapshot = collect_status(ctx)
    assert [a.agent.issue for a in snapshot.agents] == [ids[0]]
    assert [c[0] for c in calls] == ["list-panes"], "one batched tmux query, never a capture"


def test_gt_status_in_a_fresh_town_needs_no_tmux_server(town: Path) -> None:
    doc = gt_json("status", cwd=town)
    assert doc["agents"] == [] and doc["rigs"] == [] and doc["queued"] == [] and doc["merge_queue"] == []
    assert doc["mayor"]["running"] is False and doc["issues"]["open"] == 0
    assert "no rigs yet" in run_gt("status", cwd=town, check=True).stdout
