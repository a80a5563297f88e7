"""The JSON API under ``/api/``: the documents `gt status --json`, `gt agents --json`,
`gt mq list --json`, `gt feed --plain --json`, `gt convoy list --json` and
`gt escalate list --json` print, built by the same ``to_json()`` methods, so a script
can read a town over HTTP exactly as it reads the CLI. Fields: ``docs/cli.md``,
``docs/status-and-feed.md``; the endpoints: ``docs/dashboard.md``.

Read-only: the dashboard's actions are form posts with a CSRF token. Errors are JSON
too, ``{"error": sentence, "hint": what to do}`` with the matching status.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gastown.config.durations import parse_duration
from gastown.errors import InvalidInput
from gastown.states import MRState

FEED_MAX = 1000  # events one /api/feed answer holds at most


def _site(request: Request) -> Any:
    return request.app.state.site


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes", "on")


def _json(document: Any) -> JSONResponse:
    return JSONResponse(document)


async def status(request: Request) -> JSONResponse:
    """`gt status --json` (from a snapshot at most a second old)."""
    snapshot = await request.app.state.hub.snapshot(max_age=1.0)
    return _json(snapshot.to_json())


async def agents(request: Request) -> JSONResponse:
    """`gt agents [--rig R] --json`."""
    rig = request.query_params.get("rig")
    snapshot = await request.app.state.hub.snapshot(max_age=1.0)
    return _json([a.agent.to_json() for a in snapshot.agents if rig is None or a.agent.rig == rig])


async def merge_queue(request: Request) -> JSONResponse:
    """`gt mq list [--rig R] [--state S]... [--all] --json`."""
    from gastown.refinery import queue

    try:
        states = [MRState(s) for s in request.query_params.getlist("state")] or None
    except ValueError:
        names = ", ".join(s.value for s in MRState)
        raise InvalidInput("unknown merge request state", hint=f"use one of {names}") from None
    ctx = _site(request).handle.ctx
    def read() -> list[Any]:
        mrs = queue.listing(ctx, rig=request.query_params.get("rig"), states=states, include_done=_flag(request, "all"))
        return queue.documents(ctx, mrs)

    return _json(await asyncio.to_thread(read))


async def feed(request: Request) -> JSONResponse:
    """`gt feed --plain --json --once` as one array: events oldest first.

    ``after=ID`` (only newer events: poll with the last id you saw), else ``since=15m``,
    else the last ``lines`` (default 20); ``problems=1`` keeps only problem kinds."""
    from gastown.views.feed import EventCursor

    ctx = _site(request).handle.ctx
    query = request.query_params
    since = None
    if "since" in query:
        try:
            since = ctx.now() - parse_duration(query["since"])
        except ValueError as exc:
            raise InvalidInput(f"since: {exc}", hint='give a duration such as "90s", "15m" or "2h"') from None
    try:
        lines = int(query.get("lines", "20"))
        after = int(query["after"]) if "after" in query else None
    except ValueError:
        raise InvalidInput("lines and after take whole numbers") from None
    cursor = EventCursor(ctx.ledger.connection, since=since, backlog=min(max(lines, 0), FEED_MAX),
                         problems=_flag(request, "problems"))

    def read() -> list[Any]:
        if after is None:
            return cursor.start()
        cursor.last_id = after
        return cursor.more()[:FEED_MAX]

    events = await asyncio.to_thread(read)
    return _json([e.to_json() for e in events])


async def convoy_list(request: Request) -> JSONResponse:
    """`gt convoy list --json`."""
    from gastown.ledger.convoys import listing

    views = await asyncio.to_thread(listing, _site(request).handle.ctx.ledger)
    return _json([v.to_json(with_issues=False) for v in views])


async def escalation_list(request: Request) -> JSONResponse:
    """`gt escalate list [--all] --json`."""
    from gastown.ledger.escalations import list_escalations

    ctx = _site(request).handle.ctx

    def read() -> list[Any]:
        return list_escalations(ctx.ledger.connection(), open_only=not _flag(request, "all"))

    return _json([e.to_json() for e in await asyncio.to_thread(read)])


def api_routes() -> list[Route]:
    return [
        Route("/api/status", status),
        Route("/api/agents", agents),
        Route("/api/mq", merge_queue),
        Route("/api/feed", feed),
        Route("/api/convoys", convoy_list),
        Route("/api/escalations", escalation_list),
    ]
