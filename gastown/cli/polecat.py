"""`gt polecat list/remove`."""

from __future__ import annotations

from typing import Annotated

import typer

from gastown.cli import complete
from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt, command_group
from gastown.cli._output import print_json, print_table, say

app = command_group("List and remove polecats (worker slots with their worktrees).")


@app.command("list")
def list_(
    rig: Annotated[str | None, typer.Option("--rig", "-r", help="Only this rig.", autocompletion=complete.rigs)] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List polecats: idle or working, branch, uncommitted and unmerged work."""
    from gastown.roles.fleet import list_polecats

    ctx = open_context(town, last_good=True)
    if rig is not None and rig not in ctx.settings.rigs:
        from gastown.errors import NotFound

        raise NotFound(f"no rig named {rig!r} in this town", hint="see `gt rig list`")
    views = list_polecats(ctx, rig)
    if json_out:
        print_json([v.to_json() for v in views])
        return
    print_table(
        ["POLECAT", "STATE", "ISSUE", "BRANCH", "AHEAD", "DIRTY"],
        [[f"{v.rig}/{v.name}", v.state, v.issue or "-", v.branch or "-", str(v.ahead), str(v.dirty)] for v in views],
        empty="no polecats yet",
    )


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(metavar="[RIG/]NAME", autocompletion=complete.polecats)],
    rig: Annotated[str | None, typer.Option(
        "--rig", "-r", help="The polecat's rig (needed with several rigs).", autocompletion=complete.rigs
    )] = None,
    force: Annotated[bool, typer.Option("--force", help="Archive unmerged or uncommitted work under refs/gastown/archive/ and remove anyway.")] = False,
    town: TownOpt = None,
) -> None:
    """Remove an idle polecat and its worktree (refuses with unmerged work unless --force)."""
    from gastown.ledger.issues import choose_rig
    from gastown.roles.fleet import remove_polecat

    ctx = open_context(town)
    if "/" in name:
        rig, name = name.split("/", 1)
    rig_name = choose_rig(ctx.settings.rigs, rig)
    archived = remove_polecat(ctx, rig_name, name, force=force)
    say(f"removed {rig_name}/{name}" + (f"; its work is archived at {archived}" if archived else ""))
