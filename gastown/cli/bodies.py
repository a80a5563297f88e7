"""The bodies of the everyday commands, free of typer.

These are what people and agents run most: the listings (`gt issue list`, `gt mq list`,
`gt agents`, `gt status`), `gt sling`, and what an agent runs (`gt done`, `gt prime`,
and the hidden `gt _start` and `gt _end` gastown starts for it). Each is a plain function
of its options. The typer commands in the group modules declare the options (and their
help) and call these; ``gastown.cli.fast`` calls them straight from the command line,
so that the ~100 ms of importing typer is not paid by every listing and every agent.
``tests/test_cli_fast.py`` keeps both ways to the same options and the same output.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gastown.cli._common import chosen_town, open_context
from gastown.cli._output import (
    print_json,
    print_lines,
    print_table,
    say,
    terminal_width,
    use_color,
)
from gastown.safetext import one_line

if TYPE_CHECKING:
    from gastown.ledger.mrs import MR
    from gastown.states import IssueStatus, MRState


# -- the listings ------------------------------------------------------------------------


def issue_list(rig: str | None, status: IssueStatus | None, town: Path | None, json_out: bool) -> None:
    """List issues, most urgent first."""
    from gastown.ledger.issues import choose_rig, list_issues

    ctx = open_context(town, last_good=True)
    if rig is not None:
        choose_rig(ctx.settings.rigs, rig)  # an unknown rig is an error, not an empty list
    issues = list_issues(ctx.ledger.connection(), rig=rig, status=status)
    if json_out:
        print_json([i.to_json() for i in issues])
        return
    print_table(
        ["ID", "P", "STATUS", "RIG", "TITLE"],
        [[i.id, str(i.priority), str(i.status), i.rig, one_line(i.title)] for i in issues],
        empty="no issues",
    )


def mq_list(rig: str | None, states: list[MRState] | None, all_: bool, town: Path | None, json_out: bool) -> None:
    """List merge requests: testing, then queued in merge order, then the rest."""
    from gastown.ledger.timefmt import iso
    from gastown.refinery import queue
    from gastown.refinery.review.records import latest_briefs

    ctx = open_context(town, last_good=True)
    mrs = queue.listing(ctx, rig=rig, states=states, include_done=all_)
    reviews = latest_briefs(ctx, [m.id for m in mrs])
    if json_out:
        print_json(queue.documents(ctx, mrs))
        return
    from gastown.ledger.github import pulls_by_mr

    pulls = pulls_by_mr(ctx.ledger.connection(), [m.id for m in mrs])  # rigs merging through GitHub PRs
    rows = [[m.id, str(m.state), str(m.priority), m.issue, f"{m.rig}/{m.polecat}" if m.polecat else m.rig,
             m.commit_sha[:10], reviews[m.id].cell() if m.id in reviews else "-",
             (iso(m.updated_at) or "")[:19].replace("T", " "), one_line(mr_detail(m), 50)]
            for m in mrs]
    headers = ["MR", "STATE", "P", "ISSUE", "POLECAT", "COMMIT", "REVIEW", "UPDATED", "DETAIL"]
    if pulls:
        headers.insert(7, "PR")
        for row, m in zip(rows, mrs, strict=True):
            pr = pulls.get(m.id)
            row.insert(7, f"#{pr.number} {one_line(pr.checks or pr.state, 30)}" if pr else "-")
    print_table(headers, rows,
                empty="the merge queue is empty" + ("" if all_ else " (--all shows merged and rejected ones)"))


def mr_detail(mr: MR) -> str:
    """The DETAIL cell: for a red gate, why it was red rather than the log's first line."""
    from gastown.refinery.gates import verdict
    from gastown.states import MRState

    if mr.state is MRState.FAILED and mr.gate_log and mr.detail:
        return f"red, {verdict(mr.detail)}"
    return mr.detail or ""


def agents(rig: str | None, town: Path | None, json_out: bool) -> None:
    """List running agents with their state, issue and last line of output."""
    from gastown.config.durations import format_duration
    from gastown.roles.fleet import list_agents

    ctx = open_context(town, last_good=True)
    views = list_agents(ctx, rig)
    if json_out:
        print_json([v.to_json() for v in views])
        return
    now = time.time()
    print_table(
        ["AGENT", "STATE", "ISSUE", "RUNTIME", "AGE", "ACTIVE", "LAST LINE"],
        [
            [
                f"{v.rig}/{v.polecat}" + (f"@{v.host}" if v.host != "local" else ""),
                v.state + (f" ({v.exit_status})" if v.exit_status is not None else ""),
                v.issue,
                v.agent,
                format_duration(now - v.started_at),
                format_duration(now - v.last_activity) + " ago" if v.last_activity else "-",
                one_line(v.last_line or "", 50),
            ]
            for v in views
        ],
        empty="no agents running",
    )


def status(town: Path | None, json_out: bool) -> None:
    """Rigs, agents, queued slings, merge queues, holds, escalations, issues and the Mayor."""
    from gastown.views.status import collect_status
    from gastown.views.text import render_status

    snapshot = collect_status(open_context(town, last_good=True))
    if json_out:
        print_json(snapshot.to_json())
        return
    print_lines(render_status(snapshot, width=terminal_width(), color=use_color()))


# -- gt sling ----------------------------------------------------------------------------


def split_sling_args(words: list[str]) -> tuple[list[str], str | None] | None:
    """``ISSUE... [RIG|RIG/POLECAT]`` as (issues, target); None when a target comes
    before any issue id (the caller says so in its own words)."""
    from gastown.ledger.ids import ISSUE_ID_RE

    if len(words) > 1 and not ISSUE_ID_RE.match(words[-1]):
        return words[:-1], words[-1]
    if len(words) == 1 and not ISSUE_ID_RE.match(words[0]) and "/" in words[0]:
        return None
    return words, None


def sling(issues: list[str], target: str | None, agent: str | None, convoy: str | None, no_convoy: bool,
          town: Path | None, json_out: bool) -> None:
    """Hook issues onto polecats and start their agents (queued when at capacity)."""
    from gastown.roles.mayor_socket import sling_issues

    ctx = open_context(town)
    grouped = None
    if len(issues) > 1 or convoy is not None:  # one issue makes no convoy unless named: skip the ledger here
        from gastown.ledger.convoys import for_sling

        grouped = for_sling(ctx.ledger, issues, name=convoy, no_convoy=no_convoy)
    results = sling_issues(ctx, issues, target, agent=agent)
    if json_out:
        docs = [{**r, "convoy": grouped.convoy.id if grouped else None} for r in results]
        print_json(docs if len(docs) > 1 else docs[0])
        return
    if grouped is not None:
        say(f"convoy {grouped.convoy.id} ({grouped.total} issues); follow it with gt convoy show {grouped.convoy.id}")
    mayor_runs = True
    if any(r["status"] == "queued" for r in results):
        from gastown.roles.mayor import running_pid

        mayor_runs = running_pid(ctx.town) is not None
    for r in results:
        where = f"{r['rig']}/{r['polecat']}"
        if r["status"] == "queued" and not mayor_runs:
            say(f"{r['issue']}: queued for rig {r['rig']} (at capacity); no Mayor is running, so nothing starts it: "
                "run `gt up`")
        elif r["status"] == "queued":
            say(f"{r['issue']}: queued for rig {r['rig']} (at capacity); it starts when a polecat frees up")
        elif r["status"] == "already":
            say(f"{r['issue']}: already being worked on by {where} ({r['spawn']})")
        else:
            say(f"{r['issue']}: {r['status']} on {where} (branch {r['branch']}, spawn {r['spawn']}); watch with gt attach {where}")


# -- what an agent runs ------------------------------------------------------------------


def done(blocked: str | None, town: Path | None, json_out: bool) -> None:
    """Run by an agent in its worktree: submit the work to the merge queue."""
    from gastown.hosts.hub_client import is_remote_agent

    if chosen_town(town) is None and is_remote_agent(os.environ):
        from gastown.hosts.hub_client import remote_done

        document = remote_done(os.environ, Path.cwd(), blocked=blocked)  # an agent on another host
    else:
        from gastown.context import Context
        from gastown.roles.done import done as do_done
        from gastown.roles.done import identify

        me = identify(os.environ, Path.cwd(), chosen_town(town))
        # An agent's work is never refused over a typo in gastown.toml: the last good one serves.
        document = do_done(Context(me.town, last_good=True), me, blocked=blocked).to_json()
    if json_out:
        print_json(document)
    else:
        say(document["message"])


def prime(town: Path | None) -> None:
    """Run by an agent: print its role, issue and instructions again."""
    from gastown.hosts.hub_client import is_remote_agent

    if chosen_town(town) is None and is_remote_agent(os.environ):
        from gastown.hosts.hub_client import remote_prime

        say(remote_prime(os.environ))
        return
    from gastown.context import Context
    from gastown.roles.done import identify, prime_text

    me = identify(os.environ, Path.cwd(), chosen_town(town))
    say(prime_text(Context(me.town, last_good=True), me))


def start(spawn: str, town: Path | None) -> None:
    """Bring a starting agent to work (dialogs, ready, prompt)."""
    from gastown.roles.starter import bring_up

    bring_up(open_context(town, last_good=True), spawn)


def end(spawn: str, after: float, town: Path | None) -> None:
    """End a finished spawn's pane (after `gt done`) once its agent has ended its turn."""
    from gastown.ledger import work
    from gastown.roles.done import wait_for_turn_end
    from gastown.roles.polecat import end_spawn

    time.sleep(after)
    ctx = open_context(town, last_good=True)
    wait_for_turn_end(ctx, spawn)
    current = work.get_spawn(ctx.ledger.connection(), spawn)
    if current is not None and current.status == "done":
        end_spawn(ctx, spawn, reason="finished (gt done)")
