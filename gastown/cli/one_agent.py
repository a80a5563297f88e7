"""`gt stop`, `gt restart`, `gt unsling`: one agent (or one issue) at a time, by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt
from gastown.cli._output import print_json, say

if TYPE_CHECKING:
    from gastown.roles.by_hand import HandResult

TargetArg = Annotated[str, typer.Argument(metavar="RIG/POLECAT", help="The agent, e.g. app/rivet (see `gt agents`).")]


def register(app: typer.Typer) -> None:
    app.command("stop")(stop)
    app.command("restart")(restart)
    app.command("unsling")(unsling)


def stop(target: TargetArg, town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """Stop one agent and keep its hook: the issue waits until `gt restart` (or `gt sling`)."""
    from gastown.roles.by_hand import stop as do_stop

    _show(do_stop(open_context(town, last_good=True), target), json_out)


def restart(target: TargetArg, town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """Start one agent afresh in the same worktree and branch, with a resume prompt."""
    from gastown.roles.by_hand import restart as do_restart

    _show(do_restart(open_context(town), target), json_out)


def unsling(
    issue: Annotated[str, typer.Argument(metavar="ISSUE", help="Issue id, e.g. app-k3x9q.")],
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Take an issue off its polecat: stop the agent, archive unmerged work, issue back to open."""
    from gastown.roles.by_hand import unsling as do_unsling

    _show(do_unsling(open_context(town), issue), json_out)


def _show(result: HandResult, json_out: bool) -> None:
    if json_out:
        print_json(result.to_json())
    else:
        say(result.message)
