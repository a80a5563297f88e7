"""`gt diff RIG/POLECAT|MR|ISSUE`: a piece of work's change against its target."""

from __future__ import annotations

from typing import Annotated

import typer

from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt
from gastown.cli._output import page, print_json, say


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)


def diff(
    ref: Annotated[str, typer.Argument(metavar="RIG/POLECAT|MR|ISSUE", help="An agent's worktree, a merge request or an issue.")],
    stat: Annotated[bool, typer.Option("--stat", help="Only the files changed and how much (git's diffstat).")] = False,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show the change a piece of work makes against its target, through your pager."""
    from gastown.roles.diffs import diff as make_diff

    result = make_diff(open_context(town), ref, stat=stat)
    if json_out:
        print_json(result.to_json())
        return
    if not result.text and not result.untracked:
        say(f"{result.subject}: no change against {result.target}")
        return
    header = f"# {result.subject} ({result.source}) against {result.target} at {result.base[:12]}\n"
    untracked = "".join(f"# untracked, not shown: {name}\n" for name in result.untracked)
    page(header + untracked + result.text)
