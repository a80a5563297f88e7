"""The request/response plumbing every dashboard endpoint shares: the viewer's CSRF token,
one-shot notices after a redirect, reading a form, and errors as pages or JSON.

Errors are part of the product here too: a ``GastownError`` becomes its sentence and
hint with the matching HTTP status; anything unexpected becomes one line saying it is
a bug (the traceback goes to the server's log only).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from gastown._internal.log import logger
from gastown.errors import (
    Conflict,
    GastownError,
    InvalidInput,
    LedgerBusy,
    NotFound,
    NotRunning,
    ToolMissing,
)
from gastown.server.dashboard import security
from gastown.server.dashboard.rendering import personalize, render

log = logger("gastown.dashboard")

MAX_FORM_BYTES = 64 * 1024
COOKIE_FLAGS: dict[str, Any] = {"httponly": True, "samesite": "strict", "path": "/"}


def http_status(exc: GastownError) -> int:
    """The HTTP status that says what kind of failure ``exc`` is.

    >>> http_status(NotFound("x")), http_status(Conflict("x")), http_status(GastownError("x"))
    (404, 409, 500)
    """
    for kind, status in ((InvalidInput, 400), (NotFound, 404), (Conflict, 409), (NotRunning, 409),
                         (LedgerBusy, 503), (ToolMissing, 503)):
        if isinstance(exc, kind):
            return status
    return 500


def keys(request: Request) -> security.Keys:
    found: security.Keys = request.app.state.keys
    return found


def viewer_csrf(request: Request) -> tuple[str, str | None]:
    """(this viewer's form token, a new cookie nonce to set or None)."""
    nonce = request.cookies.get(security.CSRF_COOKIE)
    fresh = None
    if not nonce or len(nonce) > 64:
        nonce = fresh = security.new_nonce()
    return keys(request).csrf_token(nonce), fresh


def page(request: Request, html: str, *, status: int = 200) -> HTMLResponse:
    """An HTML answer personalized for this viewer: CSRF token filled in, cookie set if new,
    a pending notice shown once (and its cookie cleared)."""
    token, fresh = viewer_csrf(request)
    response = HTMLResponse(personalize(html, token), status_code=status)
    if fresh is not None:
        response.set_cookie(security.CSRF_COOKIE, fresh, **COOKIE_FLAGS)
    if security.FLASH_COOKIE in request.cookies:
        response.delete_cookie(security.FLASH_COOKIE, path="/")
    return response


def flash(request: Request) -> security.Flash | None:
    """The notice a POST left for this page view, if any."""
    return keys(request).read_flash(request.cookies.get(security.FLASH_COOKIE))


def redirect_with_notice(request: Request, target: str, level: str, text: str) -> RedirectResponse:
    response = RedirectResponse(security.safe_next(target), status_code=303)
    seen = request.app.state.hub.notice_seq
    response.set_cookie(security.FLASH_COOKIE, keys(request).flash_cookie(level, text, seen), max_age=60, **COOKIE_FLAGS)
    return response


async def read_form(request: Request) -> dict[str, str]:
    """A POSTed ``application/x-www-form-urlencoded`` body (first value of each field).

    Raises ``InvalidInput`` for another content type, a body over 64 KiB, or bad UTF-8."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise InvalidInput("the dashboard takes form posts (application/x-www-form-urlencoded) only")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidInput(f"the form is larger than {MAX_FORM_BYTES // 1024} KiB", hint="shorten the message")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the form could not be read (it is not UTF-8 form data)") from None
    return {name: values[0] for name, values in fields.items()}


def csrf_refusal(request: Request, form: dict[str, str]) -> Response | None:
    """A 403 page when the POST lacks this viewer's CSRF token or comes from another site."""
    submitted = form.get(security.CSRF_FIELD) or request.headers.get(security.CSRF_HEADER)
    ok = keys(request).csrf_ok(request.cookies.get(security.CSRF_COOKIE), submitted)
    if ok and security.same_origin(request.headers.get("origin"), request.headers.get("host")):
        return None
    return error_page(request, 403, "this form did not come from this dashboard, or it has expired",
                      "reload the page and try again")


def error_page(request: Request, status: int, message: str, hint: str | None) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message, "hint": hint}, status_code=status)
    html = render("error.html", code=status, message=message, hint=hint, back=_back(request))
    return page(request, html, status=status)


def _back(request: Request) -> str:
    return security.safe_next(request.query_params.get("next"), "/")


async def on_gastown_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GastownError)
    return error_page(request, http_status(exc), exc.message, exc.hint)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("dashboard: internal error on %s %s", request.method, request.url.path)
    return error_page(request, 500, f"internal error: {type(exc).__name__}",
                      "this is a bug in gastown; the server's log has the details")
