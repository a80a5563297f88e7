"""`gt sling`, and the agent-side `gt done` and `gt prime`."""

from __future__ import annotations

from typing import Annotated

import typer

from gastown.cli import bodies, complete
from gastown.cli._options import JsonOpt, TownOpt


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
    split = bodies.split_sling_args(issues)
    if split is None:
        raise typer.BadParameter("give an issue id before the target", param_hint="ISSUE")
    bodies.sling(*split, agent, convoy, no_convoy, town, json_out)


def done(
    blocked: Annotated[str | None, typer.Option("--blocked", help="Give up on the issue and say why (it is escalated).")] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run by an agent in its worktree: submit the work to the merge queue."""
    bodies.done(blocked, town, json_out)


def prime(town: TownOpt = None) -> None:
    """Run by an agent: print its role, issue and instructions again."""
    bodies.prime(town)
