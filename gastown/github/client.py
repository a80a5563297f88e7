"""The one GitHub client: every call gastown makes to GitHub's REST API goes through here.

What it guarantees, whoever calls it:

- **a timeout on every call** (``timeout`` seconds, connect and read);
- **retries with back-off** on 5xx answers and on connection errors or timeouts
  (``max_retries`` more tries, waiting 1 s, 2 s, 4 s, ... capped at 30 s);
- **rate limits honoured**: a 403/429 with ``Retry-After`` (GitHub's secondary limits)
  waits that long and tries again; a 403/429 with ``X-RateLimit-Remaining: 0`` waits
  until ``X-RateLimit-Reset``; and after any answer that left no requests, the next call
  waits for the reset first instead of being refused. A wait longer than ``max_wait``
  is not made: ``GitHubRateLimited`` says when to come back;
- **conditional requests**: ``etag=`` sends ``If-None-Match``; GitHub answers 304 (which
  costs no rate limit) and the response says ``not_modified``;
- **pagination** by the ``Link`` header (``paginate``), only ever to the API's own host;
- **errors mapped at the boundary**: every httpx error and every refusal becomes a
  ``GitHubError`` (``GitHubTimeout``, ``GitHubAuthError``, ``GitHubRateLimited``) whose
  message names the call and GitHub's reason and never holds the token.

Time and HTTP are injected (``clock``, ``sleep``, ``transport``) so the unit tests run on
``httpx.MockTransport`` and never sleep for real. The token is held by this object only:
it is sent in the ``Authorization`` header and never logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from gastown._internal.log import logger
from gastown.errors import (
    GitHubAuthError,
    GitHubError,
    GitHubRateLimited,
    GitHubTimeout,
)

log = logger(__name__)

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_RETRIES = 4
DEFAULT_MAX_WAIT_S = 120.0
BACKOFF_CAP_S = 30.0
MAX_PAGES = 100  # 10,000 items at 100 per page: far beyond any labelled backlog


@dataclass(frozen=True)
class Response:
    """One answer: ``status``, parsed JSON ``data`` (None for 204/304), ``etag``, and the
    headers (names in lower case, as httpx gives them)."""

    status: int
    data: Any
    etag: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        """A conditional request found nothing new (304; it cost no rate limit)."""
        return self.status == 304


class GitHubClient:
    """Calls to one GitHub API (github.com or an Enterprise server's ``/api/v3``).

    Thread-safe as httpx's client is; make one per loop or command and ``close()`` it
    (or use it as a context manager).
    """

    def __init__(
        self,
        *,
        token: str,
        api_url: str = DEFAULT_API_URL,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = DEFAULT_RETRIES,
        max_wait: float = DEFAULT_MAX_WAIT_S,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._host = urlsplit(self.api_url).netloc
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.clock = clock
        self.sleep = sleep
        self._limit_reset: float | None = None  # set when the last answer left no requests
        self._token = token
        self._seen: dict[str, tuple[str, Any]] = {}  # URL -> (ETag, data) of its last 200, for get_fresh
        self._http = httpx.Client(
            base_url=self.api_url,
            transport=transport,
            timeout=httpx.Timeout(timeout),
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "gastown",
            },
            follow_redirects=False,
        )

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- calls ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        etag: str | None = None,
        ok: tuple[int, ...] = (),
    ) -> Response:
        """One call, with the retries and waits above. ``path`` is relative to the API
        (``/repos/o/r/issues``) or an absolute URL on the API's host (a ``Link``).

        Statuses in ``ok`` (say 404 for "is there one?") are returned, not raised. Raises
        ``GitHubTimeout`` (no answer after every retry), ``GitHubAuthError`` (401, or 403
        that is no rate limit), ``GitHubRateLimited`` (the wait would exceed ``max_wait``)
        or ``GitHubError`` (any other refusal, with GitHub's message).
        """
        what = f"{method} {self._display(path)}"
        headers = {"If-None-Match": etag} if etag else {}
        attempt = 0
        while True:
            self._wait_for_reset(what)
            try:
                answer = self._http.request(method, path, json=json, params=params, headers=headers)
            except httpx.TimeoutException as exc:
                attempt = self._retry_or_raise(attempt, what, GitHubTimeout(
                    f"GitHub did not answer {what} in time ({type(exc).__name__})",
                    hint="check the network and api_url; gastown retried with back-off"))
                continue
            except httpx.HTTPError as exc:
                attempt = self._retry_or_raise(attempt, what, GitHubTimeout(
                    f"could not reach GitHub for {what}: {exc.__class__.__name__}",
                    hint=f"check that {self.api_url} is reachable (api_url in [rigs.X.github])"))
                continue
            log.debug("github %s -> %s", what, answer.status_code)
            self._note_limit(answer)
            status = answer.status_code
            if status in (403, 429) and (pause := self._limit_pause(answer)) is not None:
                if pause > self.max_wait:
                    raise GitHubRateLimited(
                        f"GitHub's rate limit stops {what} for {pause:.0f}s more", status=status,
                        reset_at=self.clock() + pause, hint="gastown tries again later; nothing is lost")
                attempt += 1
                if attempt > self.max_retries:
                    raise GitHubRateLimited(f"GitHub kept rate-limiting {what}", status=status,
                                            reset_at=self.clock() + pause, hint="gastown tries again later")
                log.info("github %s: rate limited, waiting %.1fs", what, pause)
                self.sleep(pause)
                continue
            if status >= 500:
                attempt = self._retry_or_raise(attempt, what, GitHubError(
                    f"GitHub failed {what} ({status})", status=status, hint="GitHub had trouble; gastown retried"))
                continue
            return self._answer(answer, what, ok)

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def get_fresh(self, path: str, *, params: Mapping[str, Any] | None = None) -> Response:
        """GET with the ETag of this client's last answer for the same URL: GitHub answers
        304 when nothing changed (no rate limit spent) and the response carries the data
        remembered from that answer, with ``not_modified`` set. For polling loops that keep
        one client."""
        key = path + "?" + "&".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
        seen = self._seen.get(key)
        answer = self.request("GET", path, params=params, etag=seen[0] if seen else None)
        if answer.not_modified and seen is not None:
            return Response(304, seen[1], seen[0], answer.headers)
        if answer.etag and answer.status == 200:
            self._seen[key] = (answer.etag, answer.data)
        return answer

    def git_auth_env(self, remote_url: str) -> dict[str, str]:
        """Environment for one git process pushing to ``remote_url`` with this token: an
        ``http.<url>.extraHeader`` passed as ``GIT_CONFIG_*`` variables (never argv, never
        a remote URL). Empty for a remote that is not http(s) (a path, ssh)."""
        import base64

        parts = urlsplit(remote_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return {}
        basic = base64.b64encode(f"x-access-token:{self._token}".encode()).decode()
        return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"http.{parts.scheme}://{parts.netloc}/.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}"}

    def paginate(self, path: str, *, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a listing, page by page (``per_page=100``), following ``Link: next``."""
        query = {"per_page": 100, **(params or {})}
        url: str | None = path
        for _ in range(MAX_PAGES):
            if url is None:
                return
            answer = self._raw_page(url, query)
            yield from answer.data or []
            url, query = _next_link(answer.headers.get("link", "")), {}
        log.warning("github: stopped paginating %s after %d pages", path, MAX_PAGES)

    # -- internals -----------------------------------------------------------------------

    def _raw_page(self, url: str, params: Mapping[str, Any]) -> Response:
        if url.startswith("http") and urlsplit(url).netloc != self._host:
            raise GitHubError(f"GitHub's next page points off the API host ({urlsplit(url).netloc})")
        return self.request("GET", url, params=params or None)

    def _display(self, path: str) -> str:
        return path[len(self.api_url):] if path.startswith(self.api_url) else path

    def _retry_or_raise(self, attempt: int, what: str, error: GitHubError) -> int:
        if attempt >= self.max_retries:
            raise error
        pause = min(BACKOFF_CAP_S, 2.0 ** attempt)
        log.info("github %s: %s; retrying in %.0fs", what, error.message, pause)
        self.sleep(pause)
        return attempt + 1

    def _note_limit(self, answer: httpx.Response) -> None:
        remaining, reset = answer.headers.get("x-ratelimit-remaining"), answer.headers.get("x-ratelimit-reset")
        if remaining is None:
            return
        try:
            self._limit_reset = float(reset) if int(remaining) <= 0 and reset is not None else None
        except ValueError:
            self._limit_reset = None

    def _wait_for_reset(self, what: str) -> None:
        if self._limit_reset is None:
            return
        pause = self._limit_reset - self.clock()
        if pause <= 0:
            self._limit_reset = None
            return
        if pause > self.max_wait:
            raise GitHubRateLimited(f"GitHub's rate limit is used up until it resets in {pause:.0f}s ({what})",
                                    reset_at=self._limit_reset, hint="gastown tries again after the reset")
        self.sleep(pause)
        self._limit_reset = None

    def _limit_pause(self, answer: httpx.Response) -> float | None:
        """Seconds to wait before retrying a rate-limited answer; None if it is no rate limit."""
        retry_after = answer.headers.get("retry-after")
        if retry_after is not None:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                return 60.0
        if answer.headers.get("x-ratelimit-remaining") == "0":
            try:
                return max(0.0, float(answer.headers.get("x-ratelimit-reset", "")) - self.clock()) + 1.0
            except ValueError:
                return 60.0
        if answer.status_code == 429:
            return 60.0  # GitHub's advice when it names no time: wait at least a minute
        return None

    def _answer(self, answer: httpx.Response, what: str, ok: tuple[int, ...]) -> Response:
        status = answer.status_code
        data = _json_or_none(answer)
        result = Response(status, data, answer.headers.get("etag"), dict(answer.headers))
        if status < 400 or status in ok:
            return result
        reason = _reason(data) or answer.reason_phrase
        if status == 401:
            raise GitHubAuthError(f"GitHub refused the token for {what}: {reason}", status=status,
                                  hint="check the variable named by token_env in [rigs.X.github]")
        if status == 403:
            raise GitHubAuthError(f"GitHub forbids {what}: {reason}", status=status,
                                  hint="give the token the permissions listed in docs/github.md")
        raise GitHubError(f"GitHub refused {what} ({status}): {reason}", status=status)


def _json_or_none(answer: httpx.Response) -> Any:
    if answer.status_code in (204, 304) or not answer.content:
        return None
    try:
        return answer.json()
    except ValueError:
        return None


def _reason(data: Any) -> str:
    """GitHub's own words for a refusal: ``message`` plus the first validation error."""
    if not isinstance(data, dict):
        return ""
    reason = str(data.get("message") or "")
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        first = errors[0]
        detail = first.get("message") or first.get("code") if isinstance(first, dict) else first
        if detail:
            reason += f" ({detail})"
    return reason[:300]


def _next_link(header: str) -> str | None:
    """The ``rel="next"`` URL of a ``Link`` header, if any.

    >>> _next_link('<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; rel="last"')
    'https://api.github.com/x?page=2'
    >>> _next_link('<https://api.github.com/x?page=1>; rel="prev"') is None
    True
    """
    for part in header.split(","):
        pieces = part.strip().split(";")
        if len(pieces) < 2:
            continue
        url = pieces[0].strip()
        if any(p.strip() in ('rel="next"', "rel=next") for p in pieces[1:]) and url.startswith("<") and url.endswith(">"):
            return url[1:-1]
    return None
