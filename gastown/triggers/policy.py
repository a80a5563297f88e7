"""The decisions about one trigger request, pure: accept or refuse it, does a filter let it
through, and how does it end (``captured → in_progress → success | failed``).

The server and `gt trigger fire` gather an ``Intake`` inside one write transaction and act
on ``admit``'s answer; the Mayor's trigger desk settles requests with ``settle``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RETRY_AFTER_S = 30  # what a 429 tells the sender to wait


@dataclass(frozen=True)
class Intake:
    """What the ledger says about a trigger at the moment a request arrives."""

    paused: bool
    in_flight: int  # its requests captured or in progress
    max_in_flight: int
    replay: tuple[str, str | None] | None = None  # (request, issue) first recorded for this delivery id


@dataclass(frozen=True)
class Accept:
    pass


@dataclass(frozen=True)
class Replay:
    """A delivery seen before: its first answer, and nothing new recorded."""

    request: str
    issue: str | None


@dataclass(frozen=True)
class Refuse:
    status: int  # the HTTP status
    message: str
    retry_after: int | None = None


Decision = Accept | Replay | Refuse


def admit(intake: Intake, trigger: str) -> Decision:
    """Accept a new request, replay the first answer to a repeated delivery, or refuse.

    A repeat is answered as it was the first time, even while paused or at the limit.

    >>> admit(Intake(False, 20, 20), "deps")
    Refuse(status=429, message='trigger deps has 20 requests in flight (its limit is 20); retry later', retry_after=30)
    >>> admit(Intake(True, 0, 20, ("rq-1", "app-x")), "deps")
    Replay(request='rq-1', issue='app-x')
    """
    if intake.replay is not None:
        return Replay(*intake.replay)
    if intake.paused:
        return Refuse(409, f"trigger {trigger} is paused; resume it with `gt trigger resume {trigger}`")
    if intake.in_flight >= intake.max_in_flight:
        return Refuse(
            429, f"trigger {trigger} has {intake.in_flight} requests in flight (its limit is {intake.max_in_flight}); "
            "retry later", RETRY_AFTER_S,
        )
    return Accept()


def filter_mismatch(wanted: Mapping[str, str | None], event: str | None, body: Any) -> str | None:
    """Why a request does not pass the trigger's ``filter`` (None: it passes). ``wanted`` has
    ``event`` (the ``X-GitHub-Event`` header), ``action`` (the body's ``action``) and
    ``label`` (the label just added, ``label.name``; else one of the issue's or pull
    request's labels); a key that is None is not checked.

    >>> body = {"action": "labeled", "label": {"name": "ai-implement"}}
    >>> filter_mismatch({"event": "issues", "action": "labeled", "label": "ai-implement"}, "issues", body) is None
    True
    >>> filter_mismatch({"event": "issues", "action": "opened", "label": None}, "issues", body)
    "action is 'labeled', the filter wants 'opened'"
    """
    if wanted.get("event") is not None and event != wanted["event"]:
        return f"event is {event!r}, the filter wants {wanted['event']!r}"
    payload = body if isinstance(body, dict) else {}
    if wanted.get("action") is not None and payload.get("action") != wanted["action"]:
        return f"action is {payload.get('action')!r}, the filter wants {wanted['action']!r}"
    label = wanted.get("label")
    if label is not None and label not in _labels(payload):
        return f"label {label!r} is not on it"
    return None


def _labels(payload: dict[str, Any]) -> list[str]:
    added = payload.get("label")
    if isinstance(added, dict) and isinstance(added.get("name"), str):
        return [added["name"]]
    names = []
    for key in ("issue", "pull_request"):
        item = payload.get(key)
        if isinstance(item, dict) and isinstance(item.get("labels"), list):
            names += [lab["name"] for lab in item["labels"] if isinstance(lab, dict) and isinstance(lab.get("name"), str)]
    return names


# -- settling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Settled:
    state: str  # success | failed
    outcome: str
    mr: str | None = None


@dataclass(frozen=True)
class IssueFate:
    """Where a request's issue stands now."""

    exists: bool
    status: str | None = None  # open | hooked | in_review | closed | blocked
    reason: str | None = None  # why it was closed or blocked
    merged_mr: tuple[str, str] | None = None  # (MR id, merged commit) if its work merged


def settle(fate: IssueFate) -> Settled | None:
    """How an in-progress request ends, or None while its issue is still being worked on.

    >>> settle(IssueFate(True, "closed", "merged", ("mr-1", "abc1234def5678")))
    Settled(state='success', outcome='merged abc1234def', mr='mr-1')
    >>> settle(IssueFate(True, "blocked", "could not start app-x after 3 tries"))
    Settled(state='failed', outcome='blocked: could not start app-x after 3 tries', mr=None)
    >>> settle(IssueFate(True, "in_review")) is None
    True
    """
    if not fate.exists:
        return Settled("failed", "its issue no longer exists")
    if fate.status == "closed":
        if fate.merged_mr is not None:
            mr, sha = fate.merged_mr
            return Settled("success", f"merged {sha[:10]}", mr)
        return Settled("failed", f"closed without a merge: {fate.reason or 'by hand'}")
    if fate.status == "blocked":
        return Settled("failed", f"blocked: {fate.reason or 'needs a person'}")
    return None
