"""The app factory and the one object the app holds about the town.

``create_app(town)`` builds a Starlette app around a ``TownServer``: the town's
``Context`` (its ledger, config and clock), re-reading gastown.toml when it changes (an
invalid edit is logged and the previous config kept), and the token every non-hook
endpoint needs when ``[server] token_env`` is set. No module-level state: two apps for
two towns live side by side.

Routes, in order: ``/healthz`` (behind ``TokenGate``), ``/hooks/...`` (each hook checks
its own token and secret), ``/github/<rig>`` (GitHub's signed deliveries), ``/agent/...``
(remote agents reporting back; each request checks its spawn's own token, so neither
the gate nor the dashboard's guard applies), and everything else to the dashboard mounted at ``/``
(pages, ``/api/``, ``/stream``), whose own guard checks the same token (a bearer header,
or the cookie its login form sets) and refuses foreign ``Host`` headers without one.
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gastown._internal.log import logger
from gastown.context import Context
from gastown.errors import GastownError
from gastown.town import Town

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.types import ASGIApp, Receive, Scope, Send

    from gastown.config.schema import TownConfig
    from gastown.ledger.triggers import TriggerState

log = logger("gastown.server")
WAKE_EVERY = 0.1  # seconds; the Mayor polls its wake-up files four times a second


class TownServer:
    """The town as the server sees it. Thread-safe: handlers call it from worker threads."""

    def __init__(self, town: Town, *, environ: Mapping[str, str], clock: Callable[[], float] = time.time) -> None:
        self.ctx = Context(town, clock=clock, environ=environ)
        self.started_at = clock()
        self._lock = threading.Lock()
        self._last_wake = 0.0
        self._wake_pending = False
        self._config_mtime = self._mtime()
        self.ctx.config  # noqa: B018 - an invalid config fails at start, with its key path
        self.ensure_triggers()
        from gastown.roles import intake  # noqa: F401 - imported now, not on the first request

    def _mtime(self) -> float:
        try:
            return self.ctx.town.config_path.stat().st_mtime
        except OSError:
            return 0.0

    def config(self) -> TownConfig:
        """The config, re-read if gastown.toml changed since the last look (one stat)."""
        mtime = self._mtime()
        if mtime != self._config_mtime:
            with self._lock:
                if mtime != self._config_mtime:
                    self._config_mtime = mtime
                    try:
                        self.ctx.reload_config()
                        log.info("gastown.toml reloaded")
                        self.ensure_triggers()
                    except GastownError as exc:
                        log.error("gastown.toml changed but is invalid; keeping the previous config: %s", exc)
        return self.ctx.config

    def ensure_triggers(self) -> None:
        """Every configured trigger has its row (and URL token) from the moment the server sees it."""
        from gastown.ledger import triggers as rows

        names = set(self.ctx.config.triggers)
        if not names or names <= set(rows.trigger_states(self.ctx.ledger.connection())):
            return
        with self.ctx.ledger.write() as conn:
            for name in sorted(names):
                rows.ensure_trigger(conn, name, now=self.ctx.now())

    def wake_mayor(self) -> None:
        """Wake the Mayor's trigger desk, at most every ``WAKE_EVERY`` seconds: the desk
        reads every captured request when it wakes, so one wake-up serves a burst."""
        now = time.monotonic()
        if now - self._last_wake >= WAKE_EVERY:
            self._last_wake = now
            from gastown.roles.intake import wake_mayor

            wake_mayor(self.ctx)
        elif not self._wake_pending:
            self._wake_pending = True  # the last request of a burst still wakes it, a moment later
            timer = threading.Timer(WAKE_EVERY, self._wake_later)
            timer.daemon = True
            timer.start()

    def _wake_later(self) -> None:
        from gastown.roles.intake import wake_mayor

        self._wake_pending = False
        self._last_wake = time.monotonic()
        wake_mayor(self.ctx)

    def trigger_state(self, name: str) -> TriggerState | None:
        from gastown.ledger.triggers import get_trigger

        return get_trigger(self.ctx.ledger.connection(), name)

    def token(self) -> str | None:
        """The server token from the environment, if ``[server] token_env`` names one."""
        from gastown.roles.serving import server_token

        return server_token(self.config().server, self.ctx.environ)


def create_app(
    town: Town, *, environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.time,
    host: str = "127.0.0.1",
) -> Starlette:
    """The ASGI app for ``town`` served on ``host``. ``environ`` holds the secrets
    (default: this process's). ``app.state.dashboard`` is the mounted dashboard, whose
    event streams must be closed before the server waits on its connections."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Mount

    from gastown.server import agent_api, github_events, health, hooks
    from gastown.server.dashboard.app import create_dashboard_app

    server = TownServer(town, environ=os.environ if environ is None else environ, clock=clock)
    dashboard = create_dashboard_app(town.root, token=server.token(), host=host, triggers=ServedTriggers(server),
                                     clock=clock)
    app = Starlette(
        routes=[*health.routes(), *hooks.routes(), *github_events.routes(), *agent_api.routes(), Mount("/", app=dashboard)],
        middleware=[Middleware(TokenGate, server=server)],
    )
    app.state.town_server = server
    app.state.dashboard = dashboard
    return app


class ServedTriggers:
    """The dashboard's view of the triggers (its ``TriggerSource``), through the same
    functions as `gt trigger`; never a trigger's URL, which holds its token."""

    RECENT = 5

    def __init__(self, server: TownServer) -> None:
        self.server = server

    def triggers(self) -> list[dict[str, Any]]:
        from gastown.roles.trigger_ops import describe, requests

        ctx = self.server.ctx
        self.server.config()  # a changed gastown.toml is read first
        rows = []
        for view in describe(ctx, read_only=True):
            doc = view.to_json()
            doc.pop("url", None)
            doc["requests"] = [
                {"id": r.id, "at": r.received_at, "status": str(r.state), "issue": r.issue}
                for r in requests(ctx, view.name, limit=self.RECENT)
            ]
            rows.append(doc)
        return rows

    def pause(self, name: str) -> None:
        from gastown.roles.trigger_ops import set_paused

        set_paused(self.server.ctx, name, True)

    def resume(self, name: str) -> None:
        from gastown.roles.trigger_ops import set_paused

        set_paused(self.server.ctx, name, False)


def town_server(request: Any) -> TownServer:
    server: TownServer = request.app.state.town_server
    return server


class TokenGate:
    """With a server token configured, the server's own endpoints (``/healthz``) need
    ``Authorization: Bearer <token>``; 401 otherwise. The hooks check their own token and
    secret, and the dashboard's guard gates everything else with the same token."""

    GATED = ("/healthz",)

    def __init__(self, app: ASGIApp, server: TownServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.GATED):
            await self.app(scope, receive, send)
            return
        token = self.server.token()
        if token is not None:
            given = ""
            for name, value in scope.get("headers", []):
                if name == b"authorization":
                    given = value.decode("latin-1")
            scheme, _, credential = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(credential.strip().encode(), token.encode()):
                from starlette.responses import JSONResponse

                response = JSONResponse(
                    {"error": "this endpoint needs the server token: Authorization: Bearer <token>"}, status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
