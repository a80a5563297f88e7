"""Hidden helpers gastown starts in the background: `gt _start SPAWN`, `gt _end SPAWN`,
the Mayor's keeper and the Mayor itself."""

from __future__ import annotations

from typing import Annotated

import typer

from gastown.cli import bodies
from gastown.cli._common import open_context
from gastown.cli._options import TownOpt


def register(app: typer.Typer) -> None:
    app.command("_start", hidden=True)(start)
    app.command("_end", hidden=True)(end)
    app.command("_keeper", hidden=True)(keeper)
    app.command("_mayor", hidden=True)(mayor)


def start(spawn: str, town: TownOpt = None) -> None:
    """Bring a starting agent to work (dialogs, ready, prompt)."""
    bodies.start(spawn, town)


def end(
    spawn: str,
    after: Annotated[float, typer.Option("--after", help="Seconds to wait first.")] = 0.0,
    town: TownOpt = None,
) -> None:
    """End a finished spawn's pane (after `gt done`) once its agent has ended its turn."""
    bodies.end(spawn, after, town)


def keeper(town: TownOpt = None) -> None:
    """Run the Mayor and restart it when it dies (what the `mayor` tmux window runs)."""
    from gastown.roles.lifecycle import keep_mayor

    raise typer.Exit(keep_mayor(open_context(town, last_good=True).town))


def mayor(town: TownOpt = None) -> None:
    """The Mayor process itself."""
    from gastown.roles.mayor import Mayor, configure_logging

    ctx = open_context(town, last_good=True)
    configure_logging(ctx.town)
    from gastown.cli.relay import answer

    raise typer.Exit(Mayor(ctx, answers={"read": answer}).run())
