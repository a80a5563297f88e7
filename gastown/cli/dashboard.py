"""`gt dashboard [--open]`: the dashboard's URL (served by `gt serve`)."""

from __future__ import annotations

from typing import Annotated

import typer

from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt
from gastown.cli._output import print_error, print_json, say

PROBE_TIMEOUT_S = 0.5


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)


def dashboard(
    open_: Annotated[bool, typer.Option("--open", help="Also open it in your web browser.")] = False,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Print the URL of the town's dashboard (from [server] host and port); --open opens it.

    Says so on stderr when nothing answers there yet (`gt serve`, started by `gt up`,
    serves it)."""
    from gastown.server.dashboard.security import is_loopback
    from gastown.server.dashboard.settings import dashboard_url

    ctx = open_context(town)
    server = ctx.config.server
    url = dashboard_url(server)
    listening = _answers(url)
    if json_out:
        print_json({"url": url, "listening": listening, "enabled": server.enabled,
                    "token": server.token_env is not None})
    else:
        say(url)
        if not server.enabled:
            print_error("gt: [server] enabled is false, so `gt up` starts no server for it")
        elif server.token_env is None and not is_loopback(server.host):
            print_error(f"gt: the server refuses to listen on {server.host} without a token; "
                        "set [server] token_env, or host = \"127.0.0.1\"")
        elif not listening:
            print_error("gt: nothing answers there yet; `gt serve` (started by `gt up`) serves the dashboard")
    if open_:
        import webbrowser

        webbrowser.open(url)


def _answers(url: str) -> bool:
    """Whether something accepts connections at ``url``'s host and port (one TCP connect)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False
