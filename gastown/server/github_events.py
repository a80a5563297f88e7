"""``POST /github/<rig>``: GitHub's webhook deliveries for a rig with ``[rigs.X.github]``.

The server records and wakes; the Mayor decides and acts. A delivery that checks out
wakes the rig's GitHub loop (``github.desk``), which reads the current state from the API
with conditional requests and acts on it exactly as a poll would: so a delivery never
carries a decision on its own, a replayed or forged-but-signed delivery can only cause a
look, and a missed one is caught by the next poll. Answers, in order:

- 404 no such rig, no ``[rigs.X.github]``, or no ``webhook_secret_env`` (one answer);
- 415 binary bodies, 413 bodies over GitHub's 25 MB;
- 503 the secret's variable is not set where the server runs;
- 401 a missing or wrong ``X-Hub-Signature-256`` (HMAC-SHA256 over the raw bytes);
- 200 ``{"ignored": why}``: GitHub's ping, an event gastown does not follow, another
  repository's payload;
- 202 ``{"rig", "event", "action"}``: the rig's GitHub loop is woken (and an event
  naming the delivery's event, action and number, never its text, is recorded).

Events followed: ``issues`` (opened, labeled, edited, closed, reopened, unlabeled),
``pull_request`` (closed, synchronize, reopened, ready_for_review),
``pull_request_review`` (submitted, dismissed), ``check_run`` / ``check_suite``
(completed), ``status``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gastown._internal.log import logger
from gastown.config.schema import MAX_BODY_LIMIT
from gastown.server.app import town_server
from gastown.server.hooks import (
    HookRefused,
    _as_text,
    _check_content_type,
    _json,
    _read_body,
)
from gastown.triggers import signatures as sig

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

log = logger("gastown.server")

FOLLOWED: dict[str, frozenset[str] | None] = {
    "issues": frozenset({"opened", "labeled", "unlabeled", "edited", "closed", "reopened"}),
    "pull_request": frozenset({"closed", "synchronize", "reopened", "ready_for_review"}),
    "pull_request_review": frozenset({"submitted", "dismissed"}),
    "check_run": frozenset({"completed"}),
    "check_suite": frozenset({"completed"}),
    "status": None,  # any
}
NOT_FOUND = {"error": "no such GitHub hook"}


def followed(event: str | None, action: str | None) -> str | None:
    """Why a delivery is ignored, or None when the rig's loop should look. Pure.

    >>> followed("issues", "opened"), followed("status", None)
    (None, None)
    >>> followed("issues", "assigned"), followed("star", "created")
    ('issues/assigned is not followed', 'event "star" is not followed')
    """
    if event not in FOLLOWED:
        return f'event "{event}" is not followed'
    actions = FOLLOWED[event]
    if actions is not None and action not in actions:
        return f"{event}/{action} is not followed"
    return None


async def receive(request: Request) -> Response:
    from anyio import to_thread

    server = town_server(request)
    rig = request.path_params["rig"]
    try:
        cfg = server.config().rigs.get(rig)
        github = cfg.github if cfg is not None else None
        if github is None or github.webhook_secret_env is None:
            return _json(404, NOT_FOUND)
        _check_content_type(request)
        raw = await _read_body(request, MAX_BODY_LIMIT)
        text = _as_text(raw)
        secret = server.ctx.environ.get(github.webhook_secret_env, "")
        if not secret:
            raise HookRefused(503, f"the webhook secret is missing: {github.webhook_secret_env} is not set where the server runs")
        if not sig.github_signature_ok(request.headers.get(sig.GITHUB_SIGNATURE_HEADER), raw, secret):
            raise HookRefused(401, "missing or wrong X-Hub-Signature-256 (HMAC-SHA256 of the raw body)")
        event = request.headers.get(sig.GITHUB_EVENT_HEADER)
        if event == "ping":
            return _json(200, {"ignored": "GitHub's ping: the hook is reachable and the signature checks out"})
        try:
            payload = json.loads(text)
        except ValueError:
            raise HookRefused(400, "the body is not JSON (set the webhook's content type to application/json)") from None
        if not isinstance(payload, dict):
            raise HookRefused(400, "the body is not a JSON object")
        action = payload.get("action") if isinstance(payload.get("action"), str) else None
        why = followed(event, action)
        repo = (payload.get("repository") or {}).get("full_name") if isinstance(payload.get("repository"), dict) else None
        if why is None and repo is not None and str(repo).lower() != github.repo.lower():
            why = f"the payload is for another repository than {github.repo}"
        if why is not None:
            return _json(200, {"ignored": why})
        number = _number(payload)
        await to_thread.run_sync(lambda: _wake(server, rig, str(event), action, number))
        log.info("github %s %s/%s #%s: woke the rig's GitHub loop", rig, event, action, number)
        return _json(202, {"rig": rig, "event": event, "action": action})
    except HookRefused as refused:
        log.info("github %s %d %s", rig, refused.status, refused.message)
        return _json(refused.status, {"error": refused.message}, refused.headers)


def _number(payload: dict[str, Any]) -> int | None:
    for key in ("issue", "pull_request"):
        item = payload.get(key)
        if isinstance(item, dict) and isinstance(item.get("number"), int):
            return int(item["number"])
    return None


def _wake(server: Any, rig: str, event: str, action: str | None, number: int | None) -> None:
    from gastown.github.desk import wake_topic
    from gastown.ledger.events import record_event
    from gastown.wake import wake

    with server.ctx.ledger.write() as conn:
        record_event(conn, "github", f"GitHub {event}" + (f"/{action}" if action else "") + (f" #{number}" if number else ""),
                     now=server.ctx.now(), rig=rig, data={"event": event, "action": action, "number": number})
    wake(server.ctx.town, wake_topic(rig))


def routes() -> list[Any]:
    from starlette.routing import Route

    return [Route("/github/{rig}", receive, methods=["POST"])]
