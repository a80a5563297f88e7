"""`gt serve`: the town's HTTP server in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer

from gastown.cli._common import open_context
from gastown.cli._options import TownOpt


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on (default: the server host in gastown.toml, 127.0.0.1).", show_default=False)] = None,
    port: Annotated[int | None, typer.Option("--port", min=0, max=65535, help="Port (default: the server port in gastown.toml, 8470; 0 picks a free one).", show_default=False)] = None,
    town: TownOpt = None,
) -> None:
    """Run the town's HTTP server (webhook triggers, the dashboard, /healthz) until Ctrl-C.

    `gt up` runs it for you when the server is enabled in gastown.toml; run it by hand to watch it."""
    from gastown.server.run import configure_logging
    from gastown.server.run import serve as run_server

    ctx = open_context(town)
    configure_logging(ctx)
    raise typer.Exit(run_server(ctx, host=host, port=port))
