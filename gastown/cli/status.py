"""`gt status` and `gt feed`: the town at a glance, once or live."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from gastown.cli import bodies
from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt
from gastown.cli._output import console, say


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("feed")(feed)


def status(town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """Rigs, agents, queued slings, merge queues, holds, escalations, issues and the Mayor."""
    bodies.status(town, json_out)


PlainOpt = Annotated[bool, typer.Option(
    "--plain", help="Stream events as lines: HH:MM:SS kind rig/polecat issue message.")]
ProblemsOpt = Annotated[bool, typer.Option(
    "--problems", help="Only what needs a person: stalled and dead agents, blocked issues, escalations, holds.")]
SinceOpt = Annotated[str | None, typer.Option(
    "--since", metavar="DURATION", help='Start this far back, e.g. "90s", "15m", "2h".')]
LinesOpt = Annotated[int, typer.Option(
    "-n", "--lines", min=0, help="Events to start with when --since is not given (plain mode).")]
OnceOpt = Annotated[bool, typer.Option("--once", help="Print what there is and exit instead of following.")]
IntervalOpt = Annotated[float, typer.Option("--interval", min=0.1, hidden=True, help="Seconds between refreshes.")]
FeedJsonOpt = Annotated[bool, typer.Option(
    "--json", help="One JSON object per event and line (fields in docs/status-and-feed.md); implies --plain.")]


def feed(
    plain: PlainOpt = False,
    problems: ProblemsOpt = False,
    since: SinceOpt = None,
    lines: LinesOpt = 20,
    once: OnceOpt = False,
    interval: IntervalOpt = 1.0,
    town: TownOpt = None,
    json_out: FeedJsonOpt = False,
) -> None:
    """Watch the town live: agents by rig, the merge queue and the event stream (Ctrl-C exits)."""
    from gastown.config.durations import parse_duration
    from gastown.errors import InvalidInput
    from gastown.views.feed import EventCursor, LiveFeed, stream_plain

    ctx = open_context(town, last_good=True)
    start: float | None = None
    if since is not None:
        try:
            start = ctx.now() - parse_duration(since)
        except ValueError as exc:
            raise InvalidInput(f"--since {exc}", hint='give a duration such as "90s", "15m" or "2h"') from None
    try:
        if plain or json_out or not sys.stdout.isatty():
            cursor = EventCursor(ctx.ledger.connection, since=start, backlog=lines, problems=problems)
            stream_plain(cursor, say, as_json=json_out, follow=not once, interval=interval)
        elif once:
            out = console()
            out.print(LiveFeed(ctx, out, problems=problems, since=start).frame())
        else:
            out = console()
            LiveFeed(ctx, out, problems=problems, since=start, interval=interval).run()
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a feed ends: not a failure
    except BrokenPipeError:
        # The reader went away (`gt feed --plain | head`): stop quietly, without a flush error at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
