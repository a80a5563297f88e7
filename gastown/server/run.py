"""Running the server: refuse an unsafe address, hold the town's server lock, bind, describe
the bound address in ``.gastown/run/server.json``, serve with uvicorn until a signal.

One server per town (``.gastown/run/server.lock``). Binding a non-loopback address is
refused unless ``[server] token_env`` names a variable that holds a token, and a
configured ``token_env`` whose variable is empty is refused on any address (the server
would otherwise run open). The access log is off: request paths carry hook tokens; the
hooks log their own line without them.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Mapping

from gastown._internal.log import logger
from gastown.config.schema import ServerConfig
from gastown.context import Context
from gastown.errors import Conflict, InvalidInput

log = logger("gastown.server")

# The server gives way to the Mayor for CPU: a flood of requests must not slow a patrol.
NICENESS = 5


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("example.org")
    (True, True, True, False, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, cfg: ServerConfig, environ: Mapping[str, str]) -> None:
    """Refuse an address that would expose the town without a token. Pure.

    >>> check_bind("127.0.0.1", ServerConfig(), {})
    >>> check_bind("0.0.0.0", ServerConfig(), {})
    Traceback (most recent call last):
    ...
    gastown.errors.InvalidInput: refusing to serve on 0.0.0.0 without a token: anyone who can reach it could call the town's endpoints
    """
    if cfg.token_env and not environ.get(cfg.token_env):
        raise InvalidInput(
            f"[server] token_env names {cfg.token_env}, which is not set (or empty) in this environment",
            hint=f"export {cfg.token_env}=<a long random token> before starting the server",
        )
    if not is_loopback(host) and not cfg.token_env:
        raise InvalidInput(
            f"refusing to serve on {host} without a token: anyone who can reach it could call the town's endpoints",
            hint="set [server] token_env to the NAME of a variable holding a long random token, "
                 "or serve on 127.0.0.1 (behind a proxy that adds TLS)",
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one); raises ``Conflict``
    when the port is taken and ``InvalidInput`` for an address this machine lacks."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidInput(f"cannot serve on {host}: {exc.strerror}", hint="set [server] host to an address of this machine") from None
    family, kind, _, _, address = infos[0]
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every keep-alive answer waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, kind, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48):  # EADDRINUSE (Linux, macOS)
            raise Conflict(
                f"port {port} on {host} is already in use",
                hint="stop what listens there, or set [server] port (0 picks a free port)",
            ) from None
        raise InvalidInput(f"cannot serve on {host}:{port}: {exc.strerror}",
                           hint="set [server] host and port to an address of this machine") from None
    sock.set_inheritable(True)
    return sock


def serve(ctx: Context, *, host: str | None = None, port: int | None = None) -> int:
    """Serve the town until SIGTERM/SIGINT; returns the exit code. Raises ``InvalidInput``
    (unsafe or unknown address), ``Conflict`` (another server runs for this town, or the
    port is taken)."""
    import uvicorn

    from gastown._internal.locks import try_lock_forever
    from gastown.roles import serving
    from gastown.server.app import create_app
    from gastown.server.dashboard.serving import DashboardServer

    cfg = ctx.config.server
    host = host if host is not None else cfg.host
    port = port if port is not None else cfg.port
    check_bind(host, cfg, ctx.environ)
    town = ctx.town
    town.run_dir.mkdir(parents=True, exist_ok=True)
    fd = try_lock_forever(serving.lock_path(town))
    if fd is None:
        running = serving.running_server(town)
        raise Conflict(
            "a server already runs for this town" + (f" (pid {running.pid}, {running.url})" if running else ""),
            hint="stop it first (`gt down`, or Ctrl-C where it runs)",
        )
    try:
        sock = bind(host, port)
        bound_port = sock.getsockname()[1]
        app = create_app(town, environ=ctx.environ, clock=ctx.clock, host=host)
        record = serving.ServerRecord(os.getpid(), host, bound_port, ctx.now())
        serving.write_record(town, record)
        try:
            os.nice(NICENESS)
        except OSError:
            pass
        log.info("serving town %s on %s (pid %d)", town.root, record.url, os.getpid())
        config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", server_header=False,
            timeout_graceful_shutdown=5, timeout_keep_alive=5,
        )
        try:
            DashboardServer(config, app.state.dashboard).run(sockets=[sock])
        finally:
            serving.remove_record(town, os.getpid())
            sock.close()
            log.info("server stopped (pid %d)", os.getpid())
    finally:
        os.close(fd)
    return 0


def configure_logging(ctx: Context) -> None:
    """The server logs to stdout (its tmux window) and to .gastown/logs/server.log."""
    from gastown.roles.serving import log_path

    ctx.town.logs_dir.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    root = logger("gastown")
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(log_path(ctx.town))):
        handler.setFormatter(fmt)
        root.addHandler(handler)
