"""`gt sling`, and the agent-side `gt done` and `gt prime`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from gastown.cli import complete
from gastown.cli._common import JsonOpt, TownOpt, chosen_town, open_context
from gastown.cli._output import print_json, say


def register(app: typer.Typer) -> None:
    app.command("sling")(sling)
    app.command("done")(done)
    app.command("prime")(prime)


def sling(
    issues: Annotated[list[str], typer.Argument(
        metavar="ISSUE... [RIG|RIG/POLECAT]", help="Issue id(s), then optionally where.", autocompletion=complete.sling_targets
    )],
    agent: Annotated[str | None, typer.Option("--agent", "-a", help="Runtime to use instead of the rig's.")] = None,
    convoy: Annotated[str | None, typer.Option("--convoy", help="Put the issues in a new convoy with this name.")] = None,
    no_convoy: Annotated[bool, typer.Option("--no-convoy", help="Several issues: make no convoy for them.")] = False,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Hook issues onto polecats and start their agents (queued when at capacity).

    Several issues at once go into a convoy named after the first one's title."""
    from gastown.ledger.ids import ISSUE_ID_RE
    from gastown.roles.mayor_socket import sling_issues

    ctx = open_context(town)
    target = None
    if len(issues) > 1 and not ISSUE_ID_RE.match(issues[-1]):
        target = issues[-1]
        issues = issues[:-1]
    elif len(issues) == 1 and not ISSUE_ID_RE.match(issues[0]) and "/" in issues[0]:
        raise typer.BadParameter("give an issue id before the target", param_hint="ISSUE")
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


def done(
    blocked: Annotated[str | None, typer.Option("--blocked", help="Give up on the issue and say why (it is escalated).")] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
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


def prime(town: TownOpt = None) -> None:
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
