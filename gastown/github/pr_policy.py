"""What a pull request's state means for its merge request and issue. Pure.

``assess_pr(snapshot, policy)`` reads one PR as GitHub shows it (state, head, check runs
and commit statuses on the head, reviews) against what gastown pushed and has already
acted on, and returns the actions to take, in order:

- merged (by anyone, by auto-merge or by a person) → ``Merged``;
- closed unmerged → ``Closed`` (the MR is rejected);
- the head is not the commit gastown pushed → nothing (a push in flight, or someone
  else's commits: gastown acts only on what it gated);
- a check that finished red on the head, not handled yet → ``CheckFailed`` (a fix cycle
  carrying its name, summary and log);
- a review requesting changes, not handled yet → ``ChangesRequested`` (a fix cycle
  carrying its comments);
- every check green (or none reported ``no_checks_grace`` seconds after the push), no
  reviewer's latest review asking for changes on this head, not a draft, and
  ``auto_merge`` on → ``MergeNow`` (GitHub still enforces its own protection rules: a
  405 is an answer, not an error).

One fix cycle at a time: a red check wins over a review in the same look.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RED_CONCLUSIONS = frozenset({"failure", "timed_out", "cancelled", "action_required", "startup_failure", "stale"})
GREEN_CONCLUSIONS = frozenset({"success", "neutral", "skipped"})
NO_CHECKS_GRACE_S = 120.0


@dataclass(frozen=True)
class Check:
    """A check run (``key`` ``check:<id>``) or a commit status (``status:<context>:<id>``)."""

    key: str
    name: str
    done: bool
    conclusion: str | None
    summary: str = ""
    text: str = ""
    url: str | None = None

    @property
    def red(self) -> bool:
        return self.done and (self.conclusion or "") in RED_CONCLUSIONS

    @property
    def green(self) -> bool:
        return self.done and (self.conclusion or "") in GREEN_CONCLUSIONS


@dataclass(frozen=True)
class Review:
    id: int
    user: str
    state: str  # APPROVED | CHANGES_REQUESTED | COMMENTED | DISMISSED | PENDING
    commit: str
    body: str = ""

    @property
    def key(self) -> str:
        return f"review:{self.id}"


@dataclass(frozen=True)
class PRSnapshot:
    number: int
    state: str  # open | closed
    merged: bool
    merge_sha: str | None
    head_sha: str
    pushed_sha: str
    draft: bool
    checks: tuple[Check, ...]
    reviews: tuple[Review, ...]
    handled: frozenset[str]
    age: float  # seconds since gastown pushed pushed_sha


@dataclass(frozen=True)
class Policy:
    auto_merge: bool = True
    no_checks_grace: float = NO_CHECKS_GRACE_S


@dataclass(frozen=True)
class Merged:
    sha: str | None


@dataclass(frozen=True)
class Closed:
    pass


@dataclass(frozen=True)
class CheckFailed:
    check: Check


@dataclass(frozen=True)
class ChangesRequested:
    review: Review


@dataclass(frozen=True)
class MergeNow:
    pass


Action = Merged | Closed | CheckFailed | ChangesRequested | MergeNow


def assess_pr(snap: PRSnapshot, policy: Policy) -> list[Action]:
    """The actions one look at a PR calls for (see the module's docstring)."""
    if snap.merged:
        return [Merged(snap.merge_sha)]
    if snap.state != "open":
        return [Closed()]
    if snap.head_sha != snap.pushed_sha:
        return []
    red = next((c for c in snap.checks if c.red and c.key not in snap.handled), None)
    if red is not None:
        return [CheckFailed(red)]
    asked = next((r for r in snap.reviews if r.state == "CHANGES_REQUESTED" and r.key not in snap.handled), None)
    if asked is not None:
        return [ChangesRequested(asked)]
    if not policy.auto_merge or snap.draft or any(c.red for c in snap.checks):
        return []
    if _holds_merge(snap.reviews, snap.head_sha):
        return []
    if not snap.checks:
        return [MergeNow()] if snap.age >= policy.no_checks_grace else []
    return [MergeNow()] if all(c.green for c in snap.checks) else []


def _holds_merge(reviews: tuple[Review, ...], head: str) -> bool:
    """A reviewer whose latest review asks for changes on this very head holds the merge."""
    latest: dict[str, Review] = {}
    for review in reviews:
        if review.state in ("APPROVED", "CHANGES_REQUESTED", "DISMISSED"):
            latest[review.user] = review
    return any(r.state == "CHANGES_REQUESTED" and r.commit == head for r in latest.values())


def checks_summary(checks: tuple[Check, ...]) -> str:
    """One short line for `gt mq list`: ``2 green``, ``1 red (ci), 1 running``, ``no checks``.

    >>> checks_summary(())
    'no checks'
    >>> checks_summary((Check("check:1", "ci", True, "success"), Check("check:2", "lint", True, "failure"),
    ...                 Check("check:3", "e2e", False, None)))
    '1 green, 1 red (lint), 1 running'
    """
    if not checks:
        return "no checks"
    green = sum(1 for c in checks if c.green)
    red = [c.name for c in checks if c.red]
    running = sum(1 for c in checks if not c.done)
    parts = [f"{green} green"] if green else []
    if red:
        parts.append(f"{len(red)} red ({', '.join(red[:3])})")
    if running:
        parts.append(f"{running} running")
    return ", ".join(parts) or f"{len(checks)} other"


def checks_from_api(check_runs: dict[str, Any] | None, status: dict[str, Any] | None) -> tuple[Check, ...]:
    """Check runs (``GET .../check-runs``) and commit statuses (``GET .../status``) as ``Check``s.

    >>> checks_from_api({"check_runs": [{"id": 5, "name": "ci", "status": "completed", "conclusion": "failure",
    ...                                  "output": {"summary": "1 failed"}}]},
    ...                 {"statuses": [{"id": 9, "context": "lint", "state": "pending"}]})[1].done
    False
    """
    found: list[Check] = []
    for run in (check_runs or {}).get("check_runs") or []:
        output = run.get("output") or {}
        found.append(Check(f"check:{run.get('id')}", str(run.get("name") or "check"), run.get("status") == "completed",
                           run.get("conclusion"), str(output.get("summary") or output.get("title") or ""),
                           str(output.get("text") or ""), run.get("html_url") or run.get("details_url")))
    latest: dict[str, dict[str, Any]] = {}
    for status_row in (status or {}).get("statuses") or []:
        latest.setdefault(str(status_row.get("context") or "status"), status_row)  # newest first, as GitHub lists
    for context, row in latest.items():
        state = row.get("state")
        conclusion = {"success": "success", "failure": "failure", "error": "failure"}.get(str(state))
        found.append(Check(f"status:{context}:{row.get('id')}", context, state != "pending", conclusion,
                           str(row.get("description") or ""), "", row.get("target_url")))
    return tuple(found)


def reviews_from_api(reviews: list[dict[str, Any]] | None) -> tuple[Review, ...]:
    return tuple(Review(int(r["id"]), str((r.get("user") or {}).get("login") or "someone"), str(r.get("state") or ""),
                        str(r.get("commit_id") or ""), str(r.get("body") or ""))
                 for r in reviews or [] if "id" in r)
