"""A trigger's title and prompt templates: placeholders, checking and rendering. Pure.

Placeholders are ``{{name}}``, substituted in ONE pass (text that came in with a request
and looks like a placeholder is never expanded), plain substitution, no expressions:

- webhook triggers: ``{{body}}`` (the raw body), ``{{bodyJson}}`` (pretty JSON if the body
  parses, else the raw body), dotted paths into it (``{{bodyJson.issue.title}}``, list
  items by index: ``{{bodyJson.issue.labels.0.name}}``), ``{{method}}``, ``{{path}}`` (the
  URL token shown as ``…``), ``{{headers}}`` (JSON, secrets removed), one header
  (``{{headers.x-github-event}}``), ``{{query}}`` (without the ``?``), ``{{sourceIp}}``
  (``unknown`` when not known), ``{{timestamp}}`` (when the request came, ISO 8601 UTC);
- schedule triggers: ``{{scheduledTime}}`` (the slot that fired) and ``{{timestamp}}``.

``check_template`` finds unknown placeholders (a config error naming the key);
``render`` fills them in from a ``RequestFacts``. A path that the body does not have
renders as nothing. Everything rendered from a request is untrusted data: the issue
body it becomes is fenced as data in the agent's prompt (``gastown.prompts``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

WEBHOOK_PLACEHOLDERS = ("body", "bodyJson", "method", "path", "headers", "query", "sourceIp", "timestamp")
SCHEDULE_PLACEHOLDERS = ("scheduledTime", "timestamp")
DOTTED = ("bodyJson", "headers")  # placeholders that take a dotted path
_KNOWN = frozenset(WEBHOOK_PLACEHOLDERS + SCHEDULE_PLACEHOLDERS)
TITLE_LIMIT = 256  # GitHub's own limit: its titles come through whole

_PLACEHOLDER = re.compile(r"\{\{([A-Za-z][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_-]+)*)\}\}")
# Request headers that carry credentials: never stored, logged or rendered.
SECRET_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-webhook-secret", "x-hub-signature",
    "x-hub-signature-256", "x-gitlab-token", "x-api-key",
})
_SECRET_WORDS = ("secret", "token", "signature", "password", "passwd", "api-key", "apikey", "auth", "cookie",
                 "credential", "session")


def known_placeholders(kind: str) -> tuple[str, ...]:
    return SCHEDULE_PLACEHOLDERS if kind == "schedule" else WEBHOOK_PLACEHOLDERS


def check_template(text: str, kind: str) -> list[str]:
    """Problems with the placeholders of one template (empty: fine).

    >>> check_template("{{bodyJson.issue.title}} {{bodyJSON}} {{scheduledTime}}", "webhook")
    ['unknown placeholder {{bodyJSON}} (known: body, bodyJson, method, path, headers, query, sourceIp, timestamp)', 'unknown placeholder {{scheduledTime}} (known: body, bodyJson, method, path, headers, query, sourceIp, timestamp)']
    >>> check_template("{{method.x}}", "webhook")
    ['{{method.x}}: only bodyJson and headers take a dotted path']
    """
    known = known_placeholders(kind)
    problems = []
    for match in _PLACEHOLDER.finditer(text):
        name, path = match.group(1), match.group(2)
        if name not in known:
            problems.append(f"unknown placeholder {match.group(0)} (known: {', '.join(known)})")
        elif path and name not in DOTTED:
            problems.append(f"{match.group(0)}: only {' and '.join(DOTTED)} take a dotted path")
    return list(dict.fromkeys(problems))


def is_secret_header(name: str) -> bool:
    """Whether a header (by name) may carry a credential.

    >>> is_secret_header("X-Hub-Signature-256"), is_secret_header("X-GitHub-Delivery")
    (True, False)
    """
    lower = name.lower()
    return lower in SECRET_HEADERS or any(word in lower for word in _SECRET_WORDS)


def public_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers fit to store and render: names lower-cased, repeated ones joined with
    ``, ``, every header that may carry a credential left out.

    >>> public_headers([("X-GitHub-Event", "issues"), ("Authorization", "Bearer x"), ("Accept", "a"), ("accept", "b")])
    {'x-github-event': 'issues', 'accept': 'a, b'}
    """
    out: dict[str, str] = {}
    for name, value in pairs:
        lower = name.lower()
        if is_secret_header(lower):
            continue
        out[lower] = f"{out[lower]}, {value}" if lower in out else value
    return out


def iso_utc(ts: float) -> str:
    """``2026-11-30T03:00:00Z``.

    >>> iso_utc(0)
    '1970-01-01T00:00:00Z'
    """
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class RequestFacts:
    """What a template may use: one webhook request, a schedule's slot, or `gt trigger fire`."""

    received_at: float
    method: str = "POST"
    path: str = ""
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)  # public_headers() only
    body: str = ""
    source_ip: str | None = None
    scheduled_at: float | None = None

    @cached_property
    def body_json(self) -> Any:
        """The body parsed as JSON, or ``_NOT_JSON``."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return _NOT_JSON

    def value(self, name: str, path: tuple[str, ...] = ()) -> str:
        """The text one placeholder renders to."""
        if name == "body":
            return self.body
        if name == "bodyJson":
            parsed = self.body_json
            if parsed is _NOT_JSON:
                return "" if path else self.body
            return _as_text(_walk(parsed, path)) if path else _pretty(parsed)
        if name == "headers":
            if path:
                return self.headers.get(".".join(path).lower(), "")
            return _pretty(dict(self.headers))
        if name == "method":
            return self.method
        if name == "path":
            return self.path
        if name == "query":
            return self.query
        if name == "sourceIp":
            return self.source_ip or "unknown"
        if name == "timestamp":
            return iso_utc(self.received_at)
        assert name == "scheduledTime", name
        return iso_utc(self.scheduled_at if self.scheduled_at is not None else self.received_at)


class _NotJson:
    def __repr__(self) -> str:
        return "<not JSON>"


_NOT_JSON: Any = _NotJson()


def _walk(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return _pretty(value)
    return json.dumps(value)


def render(template: str, facts: RequestFacts) -> str:
    """``template`` with every placeholder filled in, in one pass.

    >>> f = RequestFacts(0.0, body='{"issue": {"title": "{{body}} x", "n": 7}}')
    >>> render("#{{bodyJson.issue.n}}: {{bodyJson.issue.title}} {{bodyJson.nope}}|", f)
    '#7: {{body}} x |'
    """
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in _KNOWN:
            return match.group(0)  # config validation refuses these; never guess
        return facts.value(name, tuple(p for p in match.group(2).split(".") if p))

    return _PLACEHOLDER.sub(fill, template)


def render_title(template: str, facts: RequestFacts, fallback: str) -> str:
    """The rendered title as one line of at most ``TITLE_LIMIT`` characters (``fallback``
    when it renders empty).

    >>> render_title("Fix: {{body}}", RequestFacts(0.0, body="a\\n b"), "x"), render_title("{{body}}", RequestFacts(0.0), "x")
    ('Fix: a b', 'x')
    """
    line = " ".join(render(template, facts).split())
    if not line:
        return fallback
    return line if len(line) <= TITLE_LIMIT else line[: TITLE_LIMIT - 1] + "…"
