"""``/agent/...``: how an agent on another host reports back to the town.

An agent on an SSH host has no town around it: its `gt done`, `gt escalate`, `gt mail`
and `gt prime` reach this server through the unix socket the hub forwards to it over the
host's SSH master (``SshHost.ensure_hub_tunnel``), see ``hosts/hub_client.py``.

Every request names its run and proves it: ``X-GT-Spawn: <spawn id>`` and
``Authorization: Bearer <token>``, the token made for that spawn at its start (the ledger
holds only its hash, ``hosts/tokens.py``). It is accepted only while the spawn is live
(``starting``/``running``); ``POST /agent/done`` also accepts a spawn that is already
``done``, to answer "already submitted". Anything else is 401 with one sentence, the
same for an unknown spawn and a wrong token. The agent's identity (rig, polecat, issue)
comes from its spawn row, never from the request.

Routes (answers are JSON; errors ``{"error", "hint", "kind"}`` where ``kind`` names the
gastown error, so the host's gt exits as the local command would):

- ``POST /agent/done``      ``{"head", "branch", "blocked", "saved"}`` → `gt done --json`'s document
- ``POST /agent/escalate``  ``{"message", "severity", "issue"}`` → 201, the escalation
- ``POST /agent/mail``      ``{"to", "subject", "body"}`` → 201, the message
- ``GET  /agent/mail``      ``?all=1`` → ``{"address", "messages"}`` (its own inbox only)
- ``GET  /agent/mail/<id>`` → the message, marked read (its own mail only)
- ``GET  /agent/prime``     → ``{"text"}``

400 a body that is not a JSON object, 413 one over ``MAX_BODY``, 422 a field of the wrong
kind, 404/409 as the local command refuses, 502 the host or git failed. Blocking work
(the ledger, git fetch over SSH) runs in worker threads, never on the event loop.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gastown._internal.log import logger
from gastown.errors import (
    CommandFailed,
    Conflict,
    GastownError,
    InvalidInput,
    NotFound,
    NotRunning,
)
from gastown.server.app import TownServer, town_server

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from gastown.ledger.work import Spawn

log = logger("gastown.server")

MAX_BODY = 1 << 20
SPAWN_HEADER = "x-gt-spawn"
SHA_RE = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
STATUS_OF: tuple[tuple[type[GastownError], int], ...] = (
    (InvalidInput, 422), (NotFound, 404), (Conflict, 409), (NotRunning, 503), (CommandFailed, 502),
)
UNKNOWN = "the token and X-GT-Spawn do not name a run of this town"


class AgentRefused(Exception):
    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.document = {"error": message, "hint": hint, "kind": "Refused"}


Work = Callable[[TownServer, "Spawn", "Request", Any], tuple[int, Any]]


def endpoint(work: Work, *, body: bool, finished_ok: bool = False) -> Callable[[Request], Any]:
    """A route: authenticate the spawn, read and check the JSON body (``body``), run ``work``
    in a worker thread, map gastown's errors to statuses. ``finished_ok``: a spawn that
    already ran `gt done` is let in (to hear "already")."""

    async def handle(request: Request) -> Response:
        from anyio import to_thread

        server = town_server(request)
        spawn_id = "?"
        try:
            spawn_id, token = _credentials(request)
            spawn = await to_thread.run_sync(lambda: _authenticate(server, spawn_id, token, finished_ok))
            payload = await _read_json(request) if body else None
            status, document = await to_thread.run_sync(lambda: work(server, spawn, request, payload))
        except AgentRefused as refused:
            status, document = refused.status, refused.document
        except GastownError as exc:
            status = next((code for kind, code in STATUS_OF if isinstance(exc, kind)), 500)
            document = {"error": exc.message, "hint": exc.hint, "kind": type(exc).__name__}
        log.info("agent %s %s %s %d", request.method, request.url.path, spawn_id[:40], status)
        return _json(status, document)

    return handle


def _json(status: int, document: Any) -> Response:
    from starlette.responses import JSONResponse

    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(document, status_code=status, headers=headers)


def _credentials(request: Request) -> tuple[str, str]:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    spawn = request.headers.get(SPAWN_HEADER, "").strip()
    if scheme.lower() != "bearer" or not token.strip() or not spawn:
        raise AgentRefused(401, "this endpoint needs the run's token: Authorization: Bearer <token> and X-GT-Spawn: <spawn>")
    return spawn, token.strip()


def _authenticate(server: TownServer, spawn_id: str, token: str, finished_ok: bool) -> Spawn:
    from gastown.hosts.tokens import token_matches
    from gastown.ledger.work import get_spawn
    from gastown.states import SpawnStatus

    spawn = get_spawn(server.ctx.ledger.connection(), spawn_id) if len(spawn_id) <= 64 else None
    if spawn is None or not token_matches(token, spawn.token_hash):
        raise AgentRefused(401, UNKNOWN)
    if not (spawn.live or (finished_ok and spawn.status == SpawnStatus.DONE)):
        raise AgentRefused(401, f"run {spawn.id} has ended ({spawn.status}); its token is no longer accepted",
                           "stop now: this run's work is over")
    return spawn


async def _read_json(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length", "")
    too_big = AgentRefused(413, f"the body is over {MAX_BODY} bytes")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise too_big
        chunks.append(chunk)
    try:
        payload = json.loads(b"".join(chunks).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise AgentRefused(400, "the body is not JSON (UTF-8)") from None
    if not isinstance(payload, dict):
        raise AgentRefused(400, "the body must be a JSON object")
    return payload


def _field(payload: dict[str, Any], key: str, kind: type, *, required: bool = False) -> Any:
    value = payload.get(key)
    if value is None:
        if required:
            raise AgentRefused(422, f"{key!r} is missing")
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise AgentRefused(422, f"{key!r} must be a {kind.__name__}")
    return value


def _address(spawn: Spawn) -> str:
    return f"{spawn.rig}/{spawn.polecat}"


# -- the routes' work (worker threads) -------------------------------------------------------


def _done_work(locks: dict[str, threading.Lock], guard: threading.Lock) -> Work:
    def work(server: TownServer, spawn: Spawn, request: Request, payload: Any) -> tuple[int, Any]:
        from gastown.roles.done import done_remote

        head = _field(payload, "head", str, required=True)
        if not SHA_RE.fullmatch(head):
            raise AgentRefused(422, "'head' must be a full commit id (40 or 64 lowercase hex digits)")
        branch = _field(payload, "branch", str, required=True)
        blocked = _field(payload, "blocked", str)
        saved = _field(payload, "saved", int) or 0
        with guard:
            lock = locks.setdefault(spawn.id, threading.Lock())
        with lock:  # one `gt done` of a run at a time: the second hears "already"
            from gastown.ledger.work import get_spawn

            fresh = get_spawn(server.ctx.ledger.connection(), spawn.id) or spawn
            result = done_remote(server.ctx, fresh, head=head, branch=branch, blocked=blocked, saved=max(0, saved))
        return 200, result.to_json()

    return work


def _escalate(server: TownServer, spawn: Spawn, request: Request, payload: Any) -> tuple[int, Any]:
    from gastown.ledger.escalations import escalate_from

    message = _field(payload, "message", str, required=True)
    severity = _field(payload, "severity", str) or "medium"
    issue = _field(payload, "issue", str)
    who = {"GT_ROLE": "polecat", "GT_ISSUE": spawn.issue, "GT_RIG": spawn.rig, "GT_POLECAT": spawn.polecat,
           "GT_SPAWN": spawn.id}
    esc = escalate_from(server.ctx.ledger, who, message, severity=severity, issue=issue)
    return 201, esc.to_json()


def _mail_send(server: TownServer, spawn: Spawn, request: Request, payload: Any) -> tuple[int, Any]:
    from gastown.ledger import mail

    to = _field(payload, "to", str, required=True)
    subject = _field(payload, "subject", str, required=True)
    body = _field(payload, "body", str) or ""
    sent = mail.send(server.ctx.ledger, to, subject, body, sender=_address(spawn), rigs=server.config().rigs)
    return 201, sent.to_json()


def _mail_inbox(server: TownServer, spawn: Spawn, request: Request, payload: Any) -> tuple[int, Any]:
    from gastown.ledger import mail

    include_read = request.query_params.get("all", "").lower() in ("1", "true", "yes")
    address, messages = mail.inbox(server.ctx.ledger, to=None, caller=_address(spawn), rigs=server.config().rigs,
                                   include_read=include_read)
    return 200, {"address": address, "messages": [m.to_json() for m in messages]}


def _mail_read(server: TownServer, spawn: Spawn, request: Request, payload: Any) -> tuple[int, Any]:
    from gastown.ledger import mail

    mail_id = request.path_params["mail"]
    found = mail.find_mail(server.ctx.ledger.connection(), mail_id)
    if found is None or found.recipient != _address(spawn):
        raise NotFound(f"{_address(spawn)} has no message {mail_id}", hint="see gt mail inbox")
    return 200, mail.read(server.ctx.ledger, mail_id).to_json()


def _prime(server: TownServer, spawn: Spawn, request: Request, payload: Any) -> tuple[int, Any]:
    from gastown.roles.done import AgentSelf, prime_text

    me = AgentSelf(server.ctx.town, spawn.rig, spawn.polecat, spawn.issue, spawn.id)
    return 200, {"text": prime_text(server.ctx, me)}


def routes() -> list[Any]:
    from starlette.routing import Route

    locks: dict[str, threading.Lock] = {}
    done = endpoint(_done_work(locks, threading.Lock()), body=True, finished_ok=True)
    return [
        Route("/agent/done", done, methods=["POST"]),
        Route("/agent/escalate", endpoint(_escalate, body=True), methods=["POST"]),
        Route("/agent/mail", endpoint(_mail_send, body=True), methods=["POST"]),
        Route("/agent/mail", endpoint(_mail_inbox, body=False), methods=["GET"]),
        Route("/agent/mail/{mail}", endpoint(_mail_read, body=False), methods=["GET"]),
        Route("/agent/prime", endpoint(_prime, body=False), methods=["GET"]),
    ]
