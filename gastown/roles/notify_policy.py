"""Notifications, decided purely: which events a ``[[notify]]`` entry hears, what it is
sent, and how it is named where people (and logs) can see it.

One event source for every notification: the event log. An event notifies as

==============  =====================================================================
``escalation``  an escalation was raised (kind ``escalation`` with a ``source``)
``blocked``     an issue became blocked (kind ``blocked``)
``hold``        a hold was placed: a rate-limited runtime, a held merge queue (kind ``hold``)
``budget``      a daily budget is spent (kind ``hold`` whose data names the budget)
``merged``      a merge request merged (kind ``merged``)
==============  =====================================================================

A webhook URL may carry a token (in its path for Slack and Discord, or its query), so a
URL is only ever shown as its scheme and host.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

from gastown.config.schema import NotifyConfig
from gastown.ledger.events import Event
from gastown.ledger.timefmt import iso

# The event kinds that can notify: the loop reads only these from the log.
EVENT_KINDS: tuple[str, ...] = ("escalation", "blocked", "hold", "merged")


def notify_kind(event: Event) -> str | None:
    """What ``event`` notifies as (see the table above), or None.

    >>> notify_kind(Event(1, 0.0, "hold", None, None, None, None, "budget spent", {"budget": 5.0, "spent": 5.1}))
    'budget'
    >>> notify_kind(Event(2, 0.0, "escalation", None, None, None, None, "esc-1 acknowledged", None)) is None
    True
    """
    data = event.data or {}
    if event.kind == "escalation":
        return "escalation" if "source" in data else None  # raised; not acked, aged or resolved
    if event.kind == "hold":
        return "budget" if "budget" in data else "hold"
    if event.kind in ("blocked", "merged"):
        return event.kind
    return None


def safe_url(url: str) -> str:
    """A webhook URL as it may be shown: scheme and host only.

    >>> safe_url("https://hooks.slack.com/services/T0/B0/secret?token=x")
    'https://hooks.slack.com/…'
    """
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + ("/…" if parts.path.strip("/") or parts.query else "")


def notifier_label(config: NotifyConfig) -> str:
    """How a notifier is named in events, logs and escalations (never a URL's path or query).

    >>> notifier_label(NotifyConfig(command=["/usr/local/bin/page-me", "--loud"]))
    'command page-me'
    """
    if config.name:
        return config.name
    if config.command is not None:
        return f"command {config.command[0].rsplit('/', 1)[-1]}"
    return f"url {safe_url(config.url or '')}"


def notifier_key(config: NotifyConfig) -> str:
    """A stable identity for the notifier's cursor: its name, else a digest of where it
    sends (reordering entries keeps cursors; changing the target starts afresh)."""
    if config.name:
        return f"name:{config.name}"
    target = json.dumps(config.command) if config.command is not None else config.url or ""
    return "digest:" + hashlib.sha256(target.encode("utf-8")).hexdigest()[:16]


def payload(event: Event, kind: str, town: str) -> dict[str, Any]:
    """The JSON document a notifier gets. ``text`` (Slack) and ``content`` (Discord) hold
    one readable line, so an incoming webhook shows it as it is."""
    where = " ".join(part for part in (event.issue, f"{event.rig}/{event.polecat}" if event.polecat else None) if part)
    line = f"[gastown {town}] {kind}" + (f" {where}" if where else "") + f": {event.message}"
    if len(line) > 1900:  # Discord refuses content over 2000 characters
        line = line[:1899] + "…"
    return {
        "gastown": 1,
        "town": town,
        "event": kind,
        "id": event.id,
        "at": iso(event.at),
        "kind": event.kind,
        "rig": event.rig,
        "polecat": event.polecat,
        "spawn": event.spawn,
        "issue": event.issue,
        "message": event.message,
        "data": event.data,
        "text": line,
        "content": line,
    }


def should_retry(status: int | None) -> bool:
    """Whether a failed POST is worth another try: no answer, 429, or a server error.

    >>> [should_retry(s) for s in (None, 429, 500, 404)]
    [True, True, True, False]
    """
    return status is None or status == 429 or status >= 500
