"""``POST /hooks/<trigger>/<token>``: a webhook trigger's endpoint.

Answers, in the order they are checked:

- 404 unknown trigger, a schedule, or a wrong token (one answer for all three);
- 415 multipart or binary bodies (by Content-Type, Content-Encoding, or bytes that are
  not UTF-8 text); 413 a body over ``max_body``;
- 401 a missing or wrong secret (``x-webhook-secret``) or GitHub signature (HMAC-SHA256
  over the raw bytes, constant time), or ``auth = "none"`` from another machine;
  503 the secret's variable is not set in the server's environment;
- 200 ``{"ignored": why}`` for GitHub's ping and requests the ``filter`` passes over;
- 202 ``{"request", "issue"}`` once recorded (``roles.intake.capture``: ledger only,
  never git or tmux); a repeated ``X-GitHub-Delivery`` / ``Idempotency-Key`` gets the
  first answer again and records nothing; 409 paused; 429 (``Retry-After``) at
  ``max_in_flight``; 503 the trigger's rig is gone.

Secrets (the token in the path, ``Authorization``, ``Cookie``, ``X-Webhook-Secret``,
``X-Hub-Signature*``) are never stored, logged or rendered.
"""

from __future__ import annotations

import ipaddress
import time
from typing import TYPE_CHECKING, Any

from gastown._internal.log import logger
from gastown.server.app import TownServer, town_server
from gastown.triggers import signatures as sig
from gastown.triggers.policy import Refuse, filter_mismatch
from gastown.triggers.template import RequestFacts, public_headers

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from gastown.config.schema import TriggerConfig

log = logger("gastown.server")

MAX_DELIVERY_ID = 256
DRAIN_LIMIT = 1024 * 1024  # an oversized body this much over the limit is read (and dropped) before the 413
BINARY_TYPES = (
    "multipart/", "application/octet-stream", "image/", "audio/", "video/", "font/", "application/pdf",
    "application/zip", "application/gzip", "application/x-gzip", "application/x-tar", "application/x-7z-compressed",
    "application/x-rar-compressed", "application/x-bzip2", "application/x-xz", "application/vnd.",
)
NOT_FOUND = {"error": "no such hook"}


class HookRefused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _json(status: int, document: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse(document, status_code=status, headers=headers)


async def receive(request: Request) -> Response:
    started = time.perf_counter()
    server = town_server(request)
    name = request.path_params["trigger"]
    try:
        status, document, headers = await _handle(request, server, name)
    except HookRefused as refused:
        status, document, headers = refused.status, {"error": refused.message}, refused.headers
    if status == 404:
        document = dict(NOT_FOUND)
    peer = request.client.host if request.client else "unknown"
    log.info("hook %s %d %s %.1fms from %s", name if status != 404 else "?", status,
             " ".join(str(v) for v in document.values())[:120], (time.perf_counter() - started) * 1000, peer)
    return _json(status, document, headers)


async def _handle(request: Request, server: TownServer, name: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    from anyio import to_thread

    cfg = server.config().triggers.get(name)
    # A primary-key read of a WAL database never waits on writers: cheaper here than a thread hop.
    state = server.trigger_state(name) if cfg is not None and cfg.kind == "webhook" else None
    if cfg is None or state is None or not state.token_matches(request.path_params["token"]):
        return 404, NOT_FOUND, {}
    _check_content_type(request)
    raw = await _read_body(request, cfg.max_body)
    text = _as_text(raw)
    _check_sender(request, server, cfg, raw)
    headers = public_headers((k, v) for k, v in request.headers.items())
    event = headers.get(sig.GITHUB_EVENT_HEADER)
    if event == "ping":
        return 200, {"ignored": "GitHub's ping: the hook is reachable and the signature checks out"}, {}
    facts = RequestFacts(
        received_at=server.ctx.now(), method=request.method, path=f"/hooks/{name}/…", query=request.url.query,
        headers=headers, body=text, source_ip=request.client.host if request.client else None,
    )
    if cfg.filter is not None:
        why = filter_mismatch(cfg.filter.model_dump(), event, facts.body_json if isinstance(facts.body_json, dict) else None)
        if why is not None:
            return 200, {"ignored": f"the trigger's filter passes over it: {why}"}, {}
    delivery = request.headers.get(sig.GITHUB_DELIVERY_HEADER) or request.headers.get(sig.IDEMPOTENCY_HEADER)
    if delivery is not None and (not delivery.strip() or len(delivery) > MAX_DELIVERY_ID):
        raise HookRefused(400, f"the delivery id must be 1-{MAX_DELIVERY_ID} characters")
    result = await to_thread.run_sync(lambda: _capture(server, name, facts, delivery))
    if isinstance(result, Refuse):
        extra = {"Retry-After": str(result.retry_after)} if result.retry_after else {}
        return result.status, {"error": result.message}, extra
    if result.replayed:
        return 202, result.to_json(), {"Idempotent-Replayed": "true"}
    server.wake_mayor()
    return 202, result.to_json(), {}


def _capture(server: TownServer, name: str, facts: RequestFacts, delivery: str | None) -> Any:
    from gastown.roles.intake import capture

    return capture(server.ctx, name, facts, source="webhook", delivery=delivery)


def _check_content_type(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if any(kind.startswith(prefix) for prefix in BINARY_TYPES):
        raise HookRefused(415, f"{kind!r} bodies are not accepted; send text (JSON, form or plain text)")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise HookRefused(415, f"Content-Encoding {encoding!r} is not accepted; send the body uncompressed")


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    too_big = HookRefused(413, f"the body is over this trigger's limit of {limit} bytes")
    if declared.isdigit() and int(declared) > limit + DRAIN_LIMIT:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit + DRAIN_LIMIT:
            raise too_big
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise too_big
    return b"".join(chunks)


def _as_text(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HookRefused(415, "the body is not UTF-8 text; binary bodies are not accepted") from None
    if "\x00" in text:
        raise HookRefused(415, "the body holds NUL bytes; binary bodies are not accepted")
    return text


def _check_sender(request: Request, server: TownServer, cfg: TriggerConfig, raw: bytes) -> None:
    """The trigger's ``auth``: a shared secret, GitHub's signature, or this machine only."""
    if cfg.auth == "none":
        if not _loopback(request.client.host if request.client else ""):
            raise HookRefused(401, 'this trigger has auth = "none": it accepts calls from this machine only')
        return
    secret = server.ctx.environ.get(cfg.secret_env or "", "")
    if not secret:
        raise HookRefused(503, f"the trigger's secret is missing: {cfg.secret_env} is not set where the server runs")
    if cfg.auth == "secret":
        if not sig.shared_secret_ok(request.headers.get(sig.SECRET_HEADER), secret):
            raise HookRefused(401, "missing or wrong x-webhook-secret header")
    elif not sig.github_signature_ok(request.headers.get(sig.GITHUB_SIGNATURE_HEADER), raw, secret):
        raise HookRefused(401, "missing or wrong X-Hub-Signature-256 (HMAC-SHA256 of the raw body)")


def _loopback(host: str) -> bool:
    """Whether a peer address is this machine.

    >>> _loopback("127.0.0.1"), _loopback("::1"), _loopback("10.0.0.2"), _loopback("testclient")
    (True, True, False, False)
    """
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def routes() -> list[Any]:
    from starlette.routing import Route

    return [Route("/hooks/{trigger}/{token}", receive, methods=["POST"])]
