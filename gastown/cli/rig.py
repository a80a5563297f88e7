"""`gt rig add/list/remove`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gastown.cli import complete
from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt, command_group
from gastown.cli._output import print_json, print_table, say

app = command_group("Add, list and remove rigs (projects).")


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Rig name: lowercase letters, digits, '-' or '_'.")],
    source: Annotated[str, typer.Argument(help="Upstream repository: URL or local path.")],
    branch: Annotated[str | None, typer.Option("--branch", help="Target branch (default: the upstream's default).")] = None,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Issue id prefix (default: from the name).")] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Runtime for this rig (default: town.default_agent).")] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Clone SOURCE as the rig's hub and add [rigs.NAME] to gastown.toml (keeping your comments)."""
    from gastown.rigs import add_rig

    ctx = open_context(town)
    info = add_rig(ctx, name, source, branch=branch, prefix=prefix, agent=agent, cwd=Path.cwd())
    if json_out:
        print_json(info.to_json())
    else:
        say(f"added rig {info.name}: {info.repo} (branch {info.branch}, prefix {info.prefix}, agent {info.agent})")


@app.command("list")
def list_(town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """List the town's rigs."""
    from gastown.rigs import list_rigs

    rigs = list_rigs(open_context(town))
    if json_out:
        print_json([r.to_json() for r in rigs])
        return
    print_table(
        ["RIG", "PREFIX", "BRANCH", "AGENT", "REPO"],
        [[r.name, r.prefix, r.branch, r.agent, r.repo + ("" if r.hub_present else "  (hub missing)")] for r in rigs],
        empty="no rigs yet: add one with `gt rig add NAME REPO`",
    )


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The rig to remove.", autocompletion=complete.rigs)],
    keep_files: Annotated[bool, typer.Option("--keep-files", help="Leave <town>/NAME where it is.")] = False,
    town: TownOpt = None,
) -> None:
    """Remove a rig from gastown.toml; its hub and worktrees are moved aside, never deleted."""
    from gastown.rigs import remove_rig

    moved = remove_rig(open_context(town), name, keep_files=keep_files)
    say(f"removed rig {name}" + (f"; its files (hub, worktrees, archived work) are in {moved}" if moved else ""))
