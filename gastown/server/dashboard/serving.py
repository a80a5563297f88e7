"""Serving the dashboard with uvicorn, so that stopping the server ends its event streams.

uvicorn's graceful shutdown waits for every open response to finish, and an event
stream never finishes by itself: ``DashboardServer`` ends the streams first. ``gt
serve`` uses it (or calls ``app.close_streams`` itself); the tests and the benchmark
run it in a thread on a socket bound to port 0.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette

from gastown.server.dashboard.app import close_streams

GRACEFUL_S = 10  # the most a stopping server waits for requests other than streams


class DashboardServer(uvicorn.Server):
    """A uvicorn server that ends the dashboard's streams before it waits on connections."""

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self.dashboard = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await close_streams(self.dashboard)
        await super().shutdown(sockets)


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket (port 0: a free port, read it from ``getsockname()``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every keep-alive answer waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def make_server(app: Starlette, *, log_level: str = "warning") -> DashboardServer:
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off",
                            timeout_graceful_shutdown=GRACEFUL_S, proxy_headers=False, server_header=False)
    return DashboardServer(config, app)


@contextmanager
def serve_in_thread(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` from a background thread; yields its base URL; always stops it
    (streams ended, thread joined) when the block ends."""
    sock = bind(host, port)
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="dashboard-server", daemon=True)
    thread.start()
    try:
        for _ in range(400):
            if server.started:
                break
            if not thread.is_alive():
                raise RuntimeError("the dashboard server stopped while starting")
            threading.Event().wait(0.025)
        name, bound_port = sock.getsockname()[:2]
        yield f"http://{'[' + name + ']' if ':' in name else name}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
