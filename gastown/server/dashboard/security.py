"""Who may use the dashboard, and how a form proves it came from the dashboard.

- **Headers** on every answer: a strict Content-Security-Policy (scripts, styles and
  connections from this origin only; no inline script or style; no framing),
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` (no-referrer
  would make browsers send ``Origin: null`` with every form), and
  ``Cache-Control: no-store`` (except static files).
- **Without a token** the dashboard answers only on loopback: a non-loopback server
  address is refused (403), and so is a ``Host`` header that is not a loopback name,
  which stops DNS rebinding (a web page that points its own name at 127.0.0.1).
- **With a token** (``[server] token_env``) every request but the login form and the
  static files needs it: the session cookie the login form sets (HttpOnly,
  SameSite=Strict, a nonce signed with the token, so changing the token ends every
  session) or ``Authorization: Bearer <token>`` (scripts, the JSON API).
- **CSRF**: every POST carries the token of the page's ``gt_csrf`` cookie (a random
  nonce), signed with a key of this server process, in its ``csrf`` field or an
  ``X-CSRF-Token`` header; checked in constant time. A POST whose ``Origin`` names
  another site is refused as well.

Everything here is pure (``hmac``/``secrets`` aside) and unit-tested; ``Guard`` is the
ASGI middleware that applies the first three rules.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

CSRF_COOKIE = "gt_csrf"
SESSION_COOKIE = "gt_session"
FLASH_COOKIE = "gt_flash"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class Flash(NamedTuple):
    """A notice a POST leaves for the page it redirects to."""

    level: str
    text: str
    notices_seen: int  # the hub's last notice when the POST was answered


CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
# Paths anyone may fetch, token or not: the login form and what it needs to look right.
OPEN_PATHS = ("/login", "/static/")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, with or without brackets) is this machine only.

    >>> [is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost")]
    [True, True, True, True, True]
    >>> [is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "example.com", "localhost.example.com")]
    [False, False, False, False]
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name part of a ``Host`` header (port and IPv6 brackets removed).

    >>> host_name("127.0.0.1:8470"), host_name("[::1]:80"), host_name("localhost")
    ('127.0.0.1', '::1', 'localhost')
    """
    text = header.strip()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


@dataclass(frozen=True)
class Keys:
    """The secrets of one dashboard: the login token (if any) and this process's CSRF key."""

    token: str | None = None
    csrf_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def csrf_token(self, nonce: str) -> str:
        """The form token for the ``gt_csrf`` cookie's ``nonce``."""
        return _sign(self.csrf_key, "csrf:" + nonce)

    def csrf_ok(self, nonce: str | None, submitted: str | None) -> bool:
        """Whether a POST's token matches its cookie (constant time; False when either is missing)."""
        if not nonce or not submitted:
            return False
        return hmac.compare_digest(self.csrf_token(nonce), submitted)

    def session_cookie(self) -> str:
        """A fresh session cookie value (only with a token): ``nonce.signature``."""
        assert self.token is not None
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{_sign(self.token.encode(), 'session:' + nonce)}"

    def session_ok(self, value: str | None) -> bool:
        if self.token is None or not value or "." not in value:
            return False
        nonce, _, signature = value.partition(".")
        return hmac.compare_digest(_sign(self.token.encode(), "session:" + nonce), signature)

    def token_ok(self, given: str | None) -> bool:
        """Whether ``given`` is the token (constant time)."""
        if self.token is None or given is None:
            return False
        return hmac.compare_digest(self.token.encode(), given.encode())

    def bearer_ok(self, authorization: str | None) -> bool:
        scheme, _, value = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(value.strip())

    def flash_cookie(self, level: str, text: str, notices_seen: int = 0) -> str:
        """A signed one-shot message for the next page (after a POST's redirect).

        ``notices_seen`` is the hub's last notice when the POST was answered: the next
        page's stream replays the notices after it (an action's outcome may arrive while
        the browser is between the two pages)."""
        doc = {"level": level, "text": text, "seen": notices_seen}
        body = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()
        return f"{body}.{_sign(self.csrf_key, 'flash:' + body)}"

    def read_flash(self, value: str | None) -> Flash | None:
        """The notice of a flash cookie this process signed, else None."""
        if not value or "." not in value:
            return None
        body, _, signature = value.rpartition(".")
        if not hmac.compare_digest(_sign(self.csrf_key, "flash:" + body), signature):
            return None
        try:
            doc = json.loads(base64.urlsafe_b64decode(body.encode()))
            return Flash(str(doc["level"]), str(doc["text"]), max(0, int(doc.get("seen", 0))))
        except (ValueError, KeyError, TypeError):
            return None


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def _sign(key: bytes, text: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode().rstrip("=")


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether a request's ``Origin`` header (when a browser sent one) names this server.

    No header, or ``null`` (an opaque origin), tells nothing: the CSRF token decides.

    >>> same_origin(None, "127.0.0.1:8470"), same_origin("http://127.0.0.1:8470", "127.0.0.1:8470")
    (True, True)
    >>> same_origin("https://evil.example", "127.0.0.1:8470"), same_origin("null", "127.0.0.1:8470")
    (False, True)
    """
    if origin is None or origin == "null":
        return True
    return bool(host) and urlsplit(origin).netloc.lower() == (host or "").lower()


def safe_next(target: str | None, default: str = "/") -> str:
    """A redirect target that stays on this site: a path, never ``//host`` or a URL.

    >>> safe_next("/agents/app/ace"), safe_next("//evil.example/x"), safe_next("https://evil.example"), safe_next(None)
    ('/agents/app/ace', '/', '/', '/')
    >>> safe_next("/\\\\evil.example")
    '/'
    """
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(c) < 0x20 for c in target):
        return default
    return target


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(header: str) -> dict[str, str]:
    jar: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name:
            jar.setdefault(name, value)
    return jar


class Guard:
    """ASGI middleware: security headers on every answer, the loopback rule, the token."""

    def __init__(self, app: ASGIApp, keys: Keys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "/")
        is_static = path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                if not is_static and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        refusal = self.refusal(scope)
        if refusal is not None:
            status, text, location = refusal
            await _refuse(send_with_headers, status, text, location, as_json=path.startswith("/api/"))
            return
        await self.app(scope, receive, send_with_headers)

    def refusal(self, scope: Scope) -> tuple[int, str, str | None] | None:
        """(status, one sentence, redirect) when the request may not go on; None when it may."""
        headers = _headers(scope)
        path: str = scope.get("path", "/")
        if self.keys.token is None:
            server = scope.get("server") or ("127.0.0.1", 0)
            if not is_loopback(str(server[0])):
                return 403, ("gastown's dashboard has no token, so it serves only on a loopback address; "
                             "set [server] token_env to serve other machines."), None
            if not is_loopback(host_name(headers.get("host", "localhost"))):
                return 403, ("the Host header names another machine; without a token the dashboard "
                             "answers only to localhost or 127.0.0.1 (this stops DNS rebinding)."), None
            return None
        if path.startswith(OPEN_PATHS):
            return None
        cookies = _cookies(headers.get("cookie", ""))
        if self.keys.session_ok(cookies.get(SESSION_COOKIE)) or self.keys.bearer_ok(headers.get("authorization")):
            return None
        wants_page = scope.get("method") == "GET" and not path.startswith(("/api/", "/stream"))
        if wants_page:
            query = scope.get("query_string", b"").decode("latin-1")
            back = path + ("?" + query if query else "")
            return 303, "log in first", "/login?next=" + quote(back, safe="")
        return 401, "this dashboard needs its token: log in at /login, or send Authorization: Bearer <token>.", None


async def _refuse(send: Send, status: int, text: str, location: str | None, *, as_json: bool) -> None:
    if as_json:
        body, kind = json.dumps({"error": text, "hint": None}).encode(), b"application/json"
    else:
        body, kind = (text + "\n").encode(), b"text/plain; charset=utf-8"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    if location is not None:
        headers.append((b"location", location.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
