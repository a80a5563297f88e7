"""Hidden helpers gastown starts in the background: `gt _start SPAWN`, `gt _end SPAWN`,
the Mayor's keeper and the Mayor itself."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from gastown.cli._common import TownOpt, open_context


def register(app: typer.Typer) -> None:
    app.command("_start", hidden=True)(start)
    app.command("_end", hidden=True)(end)
    app.command("_keeper", hidden=True)(keeper)
    app.command("_mayor", hidden=True)(mayor)


def start(spawn: str, town: TownOpt = None) -> None:
    """Bring a starting agent to work (dialogs, ready, prompt)."""
    from gastown.roles.starter import bring_up

    bring_up(open_context(town, last_good=True), spawn)


def end(
    spawn: str,
    after: Annotated[float, typer.Option("--after", help="Seconds to wait first.")] = 0.0,
    town: TownOpt = None,
) -> None:
    """End a finished spawn's pane (after `gt done`) once its agent has ended its turn."""
    from gastown.ledger import work
    from gastown.roles.done import wait_for_turn_end
    from gastown.roles.polecat import end_spawn

    time.sleep(after)
    ctx = open_context(town, last_good=True)
    wait_for_turn_end(ctx, spawn)
    current = work.get_spawn(ctx.ledger.connection(), spawn)
    if current is not None and current.status == "done":
        end_spawn(ctx, spawn, reason="finished (gt done)")


def keeper(town: TownOpt = None) -> None:
    """Run the Mayor and restart it when it dies (what the `mayor` tmux window runs)."""
    from gastown.roles.lifecycle import keep_mayor

    raise typer.Exit(keep_mayor(open_context(town, last_good=True).town))


def mayor(town: TownOpt = None) -> None:
    """The Mayor process itself."""
    from gastown.roles.mayor import Mayor, configure_logging

    ctx = open_context(town, last_good=True)
    configure_logging(ctx.town)
    raise typer.Exit(Mayor(ctx).run())
