"""`gt agents`, `gt peek`, `gt attach`, `gt nudge`."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from gastown.cli import bodies, complete
from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt
from gastown.cli._output import print_verbatim, say


def register(app: typer.Typer) -> None:
    app.command("agents")(agents)
    app.command("peek")(peek)
    app.command("attach")(attach)
    app.command("nudge")(nudge)


def agents(
    rig: Annotated[str | None, typer.Option("--rig", "-r", help="Only this rig.", autocompletion=complete.rigs)] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List running agents with their state, issue and last line of output."""
    bodies.agents(rig, town, json_out)


def peek(
    target: Annotated[str, typer.Argument(metavar="RIG/POLECAT", autocompletion=complete.polecats)],
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many lines.")] = 40,
    town: TownOpt = None,
) -> None:
    """Print an agent's last lines (from its pane, or its log once the pane is gone)."""
    from gastown.roles.fleet import peek as do_peek

    spawn, rows, live = do_peek(open_context(town, last_good=True), target, lines)
    if not live:
        say(f"-- {target} is not on screen ({spawn.status}); the end of its log {spawn.log_path}:")
    for row in rows:
        print_verbatim(row)  # the pane as it is: gt peek is the one command that shows raw text


def attach(
    target: Annotated[str | None, typer.Argument(metavar="[RIG/POLECAT]", help="Agent to watch (default: the mayor session).", autocompletion=complete.polecats)] = None,
    town: TownOpt = None,
) -> None:
    """Attach this terminal to an agent's pane (detach again with the tmux prefix, then d)."""
    from gastown.roles.fleet import attach_argv

    argv = attach_argv(open_context(town, last_good=True), target)
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX",) or "switch-client" in argv}
    os.execvpe(argv[0], argv, env)


def nudge(
    target: Annotated[str, typer.Argument(metavar="RIG/POLECAT", autocompletion=complete.polecats)],
    message: Annotated[str, typer.Argument(help="What to type into the agent.")],
    now: Annotated[bool, typer.Option("--now", help="Type even if the agent is busy.")] = False,
    town: TownOpt = None,
) -> None:
    """Type a message into an agent, once it is idle (verified)."""
    from gastown.roles.fleet import nudge as do_nudge

    result = do_nudge(open_context(town), target, message, now=now)
    say(f"delivered to {target} after {result.waited:.1f}s")
