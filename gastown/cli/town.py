"""`gt init` and `gt doctor`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from gastown.cli._common import chosen_town
from gastown.cli._options import JsonOpt, TownOpt
from gastown.cli._output import print_json, say
from gastown.errors import ExitCode, GastownError


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("doctor")(doctor)


def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the town (default: the current directory).")] = Path("."),
    json_out: JsonOpt = False,
) -> None:
    """Create a town: gastown.toml with commented defaults, .gastown/ and the ledger."""
    from gastown.rigs import init_town

    result = init_town(directory)
    if json_out:
        print_json({"town": str(result.town.root), "created": result.created})
        return
    if result.created:
        say(f"created town {result.town.root}")
        say("next: gt rig add NAME REPO   (then gt issue create, gt sling)")
    else:
        say(f"{result.town.root} is already a town; its config was left as it is")


def doctor(
    no_gates: Annotated[bool, typer.Option("--no-gates", help="Do not run each rig's gates on its target.")] = False,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check tmux, git, the config, runtimes, each rig's hub and gates; say how to fix each problem."""
    from gastown.doctor import Check, check_tools, check_town
    from gastown.town import find_town

    checks = check_tools()
    try:
        found = find_town(chosen_town(town), os.environ, Path.cwd())
        checks += check_town(found.root, gates=not no_gates)
    except GastownError as exc:
        checks.append(Check("town", False, exc.message, exc.hint))
    if json_out:
        print_json({"ok": all(c.ok for c in checks), "checks": [c.to_json() for c in checks]})
    else:
        marks = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
        for check in checks:
            say(f"[{marks[check.level]}] {check.name}: {check.detail}")
            if check.level != "ok" and check.fix:
                say(f"       fix: {check.fix}")
    if not all(c.ok for c in checks):
        raise typer.Exit(int(ExitCode.FAILURE))
