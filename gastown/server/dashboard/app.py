"""The dashboard as one Starlette application: pages, live stream, actions, JSON API.

``create_dashboard_app(town_root, token=..., host=...)`` builds it; ``gt serve`` mounts
it at ``/`` (its tests start it with uvicorn on 127.0.0.1). The app needs no lifespan:
its hub starts reading when the first page opens a stream and stops when the last one
closes. Before a server waits on its open connections at shutdown it must call
``close_streams(app)`` (``serving.DashboardServer`` does), or the streams would hold
the shutdown up.

Pages (GET): ``/`` the town, ``/agents/<rig>/<polecat>``, ``/mq``, ``/mq/<mr>``,
``/convoys``, ``/events``, ``/triggers``; ``/stream`` (SSE, ``stream.py``); actions
(POST, ``actions.py``); ``/api/*`` (``gastown/server/api.py``); ``/login``.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from gastown.errors import ConfigError, GastownError
from gastown.ledger.events import last_event_id
from gastown.server.api import api_routes
from gastown.server.dashboard import actions, security
from gastown.server.dashboard.handle import TownHandle
from gastown.server.dashboard.hub import Hub
from gastown.server.dashboard.pages import (
    PAGE_EVENTS,
    Site,
    TriggerSource,
    agent_log,
    check_exists,
    recent_events,
    render_fragments,
    render_page,
)
from gastown.server.dashboard.rendering import render
from gastown.server.dashboard.stream import event_stream
from gastown.server.dashboard.web import (
    COOKIE_FLAGS,
    csrf_refusal,
    flash,
    on_gastown_error,
    on_unexpected,
    page,
    read_form,
)

SESSION_DAYS = 7
PAGE_SNAPSHOT_AGE = 2.0  # a page may start from a snapshot this old; its stream brings it up to date


class DashboardApp(Starlette):
    """Starlette with ``security.Guard`` outermost, so even a 500 page carries the headers."""

    def build_middleware_stack(self) -> ASGIApp:
        return security.Guard(super().build_middleware_stack(), self.state.keys)


def create_dashboard_app(
    town_root: Path | str,
    *,
    token: str | None = None,
    host: str = "127.0.0.1",
    triggers: TriggerSource | None = None,
    poll_interval: float = 0.25,
    refresh_interval: float = 2.0,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The dashboard of the town at ``town_root``.

    ``token``: the value every request must carry (``[server] token_env``'s variable);
    without one the app serves loopback only, and building it for a non-loopback
    ``host`` raises ``ConfigError``. ``triggers``: ``gt serve``'s trigger functions, if
    any (the triggers page says they are not available otherwise). Raises
    ``ConfigError`` when the town's config does not validate.
    """
    if token is not None and not token.strip():
        raise ConfigError("the dashboard's token is empty", hint="set the variable [server] token_env names")
    if token is None and not security.is_loopback(host):
        raise ConfigError(
            f"the dashboard would listen on {host} without a token",
            hint="set [server] token_env to the name of a variable holding a long random token, "
                 "or listen on 127.0.0.1",
        )
    handle = TownHandle(Path(town_root), clock=clock)
    site = Site(handle, triggers)
    hub = Hub(handle, lambda view, snapshot: render_fragments(site, view, snapshot),
              poll_interval=poll_interval, refresh_interval=refresh_interval)
    app = DashboardApp(
        routes=_routes(),
        exception_handlers={GastownError: on_gastown_error, Exception: on_unexpected},
    )
    app.state.keys = security.Keys(token=token)
    app.state.site = site
    app.state.hub = hub
    return app


async def close_streams(app: Starlette) -> None:
    """End every open event stream (call before the server waits on its connections)."""
    await app.state.hub.close()


def _routes() -> list[BaseRoute]:
    post = ["POST"]
    return [
        Route("/", town_page),
        Route("/agents/{rig}/{polecat}", agent_page),
        Route("/mq", mq_page),
        Route("/mq/{mr}", mr_page),
        Route("/convoys", convoys_page),
        Route("/events", events_page),
        Route("/triggers", triggers_page),
        Route("/stream", event_stream),
        Route("/login", login_form),
        Route("/login", login, methods=post),
        Route("/logout", logout, methods=post),
        Route("/sling", actions.sling, methods=post),
        Route("/agents/{rig}/{polecat}/nudge", actions.nudge, methods=post),
        Route("/escalations/{esc}/ack", actions.ack, methods=post),
        Route("/mq/{mr}/retry", actions.retry, methods=post),
        Route("/mq/{mr}/reject", actions.reject, methods=post),
        Route("/triggers/{name}/{verb}", actions.trigger, methods=post),
        *api_routes(),
        Mount("/static", StaticFiles(packages=[("gastown.server.dashboard", "static")]), name="static"),
    ]


# -- pages --------------------------------------------------------------------------------


async def _show(request: Request, view: str, *, stream_query: str = "", **extra: Any) -> Response:
    """Render ``view`` from a fresh-enough snapshot, with its stream's URL."""
    hub: Hub = request.app.state.hub
    site: Site = request.app.state.site
    await asyncio.to_thread(check_exists, site, view)
    snapshot = await hub.snapshot(max_age=PAGE_SNAPSHOT_AGE)
    top = await asyncio.to_thread(lambda: last_event_id(site.handle.ctx.ledger.connection()))
    notice = flash(request)
    # Notices after this number reach the page: those of the POST that led here included.
    seen = notice.notices_seen if notice is not None else hub.notice_seq
    stream_url = f"/stream?view={view}&after={top}&notices={seen}{stream_query}"
    html = await asyncio.to_thread(
        render_page, site, view, snapshot, notice=notice and (notice.level, notice.text), stream_url=stream_url,
        auth=request.app.state.keys.token is not None, **extra,
    )
    return page(request, html)


async def town_page(request: Request) -> Response:
    return await _show(request, "town")


async def agent_page(request: Request) -> Response:
    view = f"agent:{request.path_params['rig']}/{request.path_params['polecat']}"
    site: Site = request.app.state.site
    spawn_id, lines, offset = await asyncio.to_thread(agent_log, site, view.partition(":")[2])
    return await _show(request, view, stream_query=f"&offset={offset}&spawn={spawn_id}", log_lines=lines)


async def mq_page(request: Request) -> Response:
    return await _show(request, "mq")


async def mr_page(request: Request) -> Response:
    return await _show(request, f"mr:{request.path_params['mr']}")


async def convoys_page(request: Request) -> Response:
    return await _show(request, "convoys")


async def events_page(request: Request) -> Response:
    problems = request.query_params.get("problems") == "1"
    site: Site = request.app.state.site
    events = await asyncio.to_thread(recent_events, site, PAGE_EVENTS, problems=problems)
    return await _show(request, "events", events=events, problems=problems)


async def triggers_page(request: Request) -> Response:
    return await _show(request, "triggers")


# -- logging in ---------------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    if request.app.state.keys.token is None:
        return RedirectResponse("/", status_code=303)
    nxt = security.safe_next(request.query_params.get("next"))
    return page(request, render("login.html", next=nxt, failed=False))


async def login(request: Request) -> Response:
    keys: security.Keys = request.app.state.keys
    form = await read_form(request)
    refusal = csrf_refusal(request, form)
    if refusal is not None:
        return refusal
    nxt = security.safe_next(form.get("next"))
    if keys.token is None:
        return RedirectResponse(nxt, status_code=303)
    if not keys.token_ok(form.get("token", "")):
        await asyncio.sleep(0.2 + secrets.randbelow(100) / 1000)  # no fast guessing, no timing hints
        return page(request, render("login.html", next=nxt, failed=True), status=401)
    response = RedirectResponse(nxt, status_code=303)
    response.set_cookie(security.SESSION_COOKIE, keys.session_cookie(), max_age=SESSION_DAYS * 86400,
                        secure=request.url.scheme == "https", **COOKIE_FLAGS)
    return response


async def logout(request: Request) -> Response:
    form = await read_form(request)
    refusal = csrf_refusal(request, form)
    if refusal is not None:
        return refusal
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(security.SESSION_COOKIE, path="/")
    return response
