"""``GET /stream?view=KEY``: a page's live updates as Server-Sent Events.

Messages (each ``data`` is one JSON document):

- ``events``: new ledger events, oldest first (``id`` is the newest, so a reconnecting
  browser's ``Last-Event-ID`` resumes without a gap or a repeat);
- ``fragment``: ``{"id", "html"}``, a live part of the page, re-rendered from a new
  snapshot (only parts whose HTML changed are sent);
- ``log``: new lines of the agent's log (agent pages, with ``offset``);
- ``notice``: ``{"level", "text", "n"}``, e.g. the outcome of a nudge; ``notices=N`` in the
  query first replays the kept notices after number N (the page's own number: a notice
  sent while the browser moved between pages is not lost);
- ``reload``: the page is out of date (its agent restarted, or it fell behind);
- ``bye``: the server is stopping; the stream ends.

Everything comes from the hub; the only reads a stream makes on its own are its
catch-ups when it connects.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gastown.errors import GastownError
from gastown.server.dashboard.hub import Hub
from gastown.server.dashboard.pages import (
    Site,
    agent_run,
    check_exists,
    event_row,
    find_agent,
    parse_view,
)
from gastown.server.dashboard.rendering import personalize
from gastown.server.dashboard.web import error_page, viewer_csrf

KEEPALIVE_S = 15.0
RETRY_MS = 2000


def sse(event: str, data: Any, *, event_id: int | None = None) -> str:
    """One SSE message; JSON keeps the data on one line.

    >>> sse("notice", {"text": "a\\nb"}, event_id=7)
    'event: notice\\nid: 7\\ndata: {"text": "a\\\\nb"}\\n\\n'
    """
    head = f"event: {event}\n" + (f"id: {event_id}\n" if event_id is not None else "")
    return head + f"data: {json.dumps(data)}\n\n"


def _int(text: str | None) -> int:
    try:
        return max(0, int(text or 0))
    except ValueError:
        return 0


async def event_stream(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    site: Site = request.app.state.site
    view = request.query_params.get("view", "town")
    try:
        name, arg = parse_view(view)
        await asyncio.to_thread(check_exists, site, view)
    except GastownError as exc:
        return error_page(request, 404 if name_is_known(view) else 400, exc.message, exc.hint)
    after = _int(request.headers.get("last-event-id") or request.query_params.get("after"))
    followed_spawn = None
    log_path = None
    offset = _int(request.query_params.get("offset"))
    notices_seen = _int(request.query_params.get("notices")) if "notices" in request.query_params else hub.notice_seq
    if name == "agent":
        log_path, followed_spawn = await asyncio.to_thread(agent_run, site, arg)
        if request.query_params.get("spawn") not in (None, followed_spawn):
            offset = 0  # the page shows an older run: it reloads at the first status
    token, _ = viewer_csrf(request)

    async def messages() -> AsyncIterator[str]:
        # Subscribed here, not before: a client gone before the body starts leaves nothing behind.
        sub, backlog = hub.subscribe(log_path=log_path, log_offset=offset)
        missed_notices = hub.notices_after(notices_seen)  # taken with the subscription: no gap, no repeat
        with sub:
            yield f"retry: {RETRY_MS}\n\n"
            sent_id = after
            if after:
                caught_up = await hub.events_after(after)
                if caught_up:
                    sent_id = caught_up[-1].id
                    yield sse("events", [event_row(e) for e in caught_up], event_id=sent_id)
            if backlog:
                yield sse("log", backlog)
            for number, level, text in missed_notices:
                yield sse("notice", {"level": level, "text": text, "n": number})
            shown: dict[str, str] = {}
            while True:
                message = await sub.get(KEEPALIVE_S)
                if message is None:
                    yield ": keep-alive\n\n"
                    continue
                if message.kind == "bye":
                    yield sse("bye", {})
                    return
                if message.kind == "reload":
                    yield sse("reload", {})
                    return
                if message.kind == "events":
                    fresh = [e for e in message.payload if e.id > sent_id]
                    if fresh:
                        sent_id = fresh[-1].id
                        yield sse("events", [event_row(e) for e in fresh], event_id=sent_id)
                elif message.kind == "log":
                    yield sse("log", message.payload)
                elif message.kind == "notice":
                    number, level, text = message.payload
                    yield sse("notice", {"level": level, "text": text, "n": number})
                elif message.kind == "status":
                    if name == "agent" and _restarted(hub, arg, followed_spawn):
                        yield sse("reload", {})
                        return
                    for chunk in await _changed_fragments(hub, view, shown, token):
                        yield chunk

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(messages(), media_type="text/event-stream", headers=headers)


def name_is_known(view: str) -> bool:
    try:
        parse_view(view)
    except GastownError:
        return False
    return True


def _restarted(hub: Hub, target: str, followed_spawn: str | None) -> bool:
    """Whether the agent now runs a spawn other than the one the page follows."""
    if hub.latest is None:
        return False
    rig, _, polecat = target.partition("/")
    agent = find_agent(hub.latest, rig, polecat)
    return agent is not None and agent.agent.spawn != followed_spawn


async def _changed_fragments(hub: Hub, view: str, shown: dict[str, str], token: str) -> list[str]:
    try:
        fragments = await hub.fragments(view)
    except GastownError as exc:
        return [sse("notice", {"level": "error", "text": f"the page could not be refreshed: {exc.message}"})]
    out = []
    for element, html in fragments.items():
        if shown.get(element) != html:
            shown[element] = html
            out.append(sse("fragment", {"id": element, "html": personalize(html, token)}))
    return out

