"""`gt up` and `gt down`."""

from __future__ import annotations

from typing import Annotated

import typer

from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt
from gastown.cli._output import print_json, say


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("down")(down)


def up(
    foreground: Annotated[bool, typer.Option("--foreground", help="Run the Mayor in this terminal (for debugging).")] = False,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Start the Mayor and resume every hooked issue whose agent is not running."""
    from gastown.roles import lifecycle

    ctx = open_context(town)
    if foreground:
        from gastown.roles.mayor import Mayor, configure_logging

        for warning in lifecycle.preflight(ctx):
            say(f"warning: {warning}")
        configure_logging(ctx.town)
        from gastown.cli.relay import answer

        raise typer.Exit(Mayor(ctx, answers={"read": answer}).run())
    report = lifecycle.up(ctx)
    if json_out:
        print_json(report.to_json())
        return
    for warning in report.warnings:
        say(f"warning: {warning}")
    if report.already:
        say(f"the Mayor is already running (pid {report.mayor_pid}); {report.hooked} issue(s) on hooks")
    else:
        say(
            f"the Mayor is up (pid {report.mayor_pid}); {report.hooked} issue(s) on hooks, "
            f"{report.resumed} agent(s) resumed"
        )
    if report.server:
        say(f"the town's server is at {report.server} (triggers: gt trigger list)")
    say("watch: gt status · gt feed · gt attach (the Mayor's log) · gt attach RIG/POLECAT")


def down(
    polecats: Annotated[bool, typer.Option("--polecats", help="Stop only the agents; the Mayor keeps running, paused.")] = False,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds agents get to exit before they are killed.")] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Stop agents and the Mayor. Hooks, worktrees, branches and logs stay; `gt up` resumes."""
    from gastown.roles import lifecycle

    report = lifecycle.down(open_context(town, last_good=True), polecats_only=polecats, timeout=timeout)
    if json_out:
        print_json(report.to_json())
        return
    what = "" if polecats else (" and the Mayor" if report.mayor_stopped else "; no Mayor was running")
    forced = f" ({report.forced} had to be killed)" if report.forced else ""
    say(f"stopped {report.agents_stopped} agent(s){forced}{what}; their work stays on its hooks: `gt up` resumes it")
