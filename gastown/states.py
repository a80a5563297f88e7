"""Issue, agent and merge-request states, and the moves allowed between them.

Standard library only. ``check_transition`` raises on an illegal move so a bug shows up
as a clear error instead of a silently corrupted ledger.
"""

from __future__ import annotations

import enum

from gastown.errors import Conflict


class IssueStatus(enum.StrEnum):
    OPEN = "open"
    HOOKED = "hooked"
    IN_REVIEW = "in_review"
    CLOSED = "closed"
    BLOCKED = "blocked"


class AgentState(enum.StrEnum):
    SPAWNING = "spawning"
    WORKING = "working"
    IDLE = "idle"
    STALLED = "stalled"
    DEAD = "dead"
    DONE = "done"
    UNREACHABLE = "unreachable"  # its host does not answer: unknown, never "dead" (docs/scale-out.md)


class SpawnStatus(enum.StrEnum):
    """A spawn's stored lifecycle (what gastown did), not what its pane shows (``AgentState``)."""

    STARTING = "starting"  # window made, prompt not yet delivered
    RUNNING = "running"
    DONE = "done"  # `gt done` recorded; the pane is to be ended
    ENDED = "ended"  # finished, replaced or stopped
    FAILED = "failed"  # the launch was rolled back


class MRState(enum.StrEnum):
    QUEUED = "queued"
    REVIEWING = "reviewing"  # an AI reviewer reads its diff (rigs with a [rigs.X.review] table)
    CHANGES_REQUESTED = "changes_requested"  # the review found blocking problems: sent back as a fix cycle
    TESTING = "testing"
    PR_OPEN = "pr_open"  # gated green and handed to a GitHub pull request (merge = "pr"); GitHub decides
    MERGED = "merged"
    CONFLICT = "conflict"
    FAILED = "failed"
    REJECTED = "rejected"


class RequestState(enum.StrEnum):
    """A trigger request's life: recorded, handed to the Mayor's queue, finished."""

    CAPTURED = "captured"  # recorded with its issue; the Mayor has not queued it yet
    IN_PROGRESS = "in_progress"  # its issue is queued, being worked on, or in review
    SUCCESS = "success"  # its issue's work merged
    FAILED = "failed"  # its issue was blocked (parked), closed unmerged, or could not be queued


_I = IssueStatus
ISSUE_TRANSITIONS: dict[IssueStatus, frozenset[IssueStatus]] = {
    # open -> hooked: slung; open -> closed/blocked: by a person or an escalation
    _I.OPEN: frozenset({_I.HOOKED, _I.CLOSED, _I.BLOCKED}),
    # hooked -> open: sling rolled back or unslung; -> in_review: `gt done`
    _I.HOOKED: frozenset({_I.OPEN, _I.IN_REVIEW, _I.BLOCKED, _I.CLOSED}),
    # in_review -> hooked: a fix cycle; -> closed: merged
    _I.IN_REVIEW: frozenset({_I.CLOSED, _I.HOOKED, _I.BLOCKED, _I.OPEN}),
    _I.BLOCKED: frozenset({_I.OPEN, _I.HOOKED, _I.CLOSED}),
    _I.CLOSED: frozenset({_I.OPEN}),
}

_S = SpawnStatus
SPAWN_TRANSITIONS: dict[SpawnStatus, frozenset[SpawnStatus]] = {
    # starting -> done: a quick agent ran `gt done` before its prompt was confirmed
    _S.STARTING: frozenset({_S.RUNNING, _S.DONE, _S.ENDED, _S.FAILED}),
    _S.RUNNING: frozenset({_S.DONE, _S.ENDED}),
    _S.DONE: frozenset({_S.ENDED}),
    _S.ENDED: frozenset(),
    _S.FAILED: frozenset(),
}
# Spawns that hold an agent (live) and that still hold a capacity slot (active).
LIVE_SPAWN_STATUSES = (_S.STARTING, _S.RUNNING)
ACTIVE_SPAWN_STATUSES = (_S.STARTING, _S.RUNNING, _S.DONE)

class ReviewState(enum.StrEnum):
    """One review's run: ``running`` until it ends ``done`` (a verdict), ``error`` (no usable
    answer, or the reviewer changed the checkout), ``too_large`` (the diff is over
    ``max_diff_lines``; never retried) or ``interrupted`` (its process died)."""

    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    TOO_LARGE = "too_large"
    INTERRUPTED = "interrupted"


_M = MRState
MR_TRANSITIONS: dict[MRState, frozenset[MRState]] = {
    # queued -> reviewing: its review starts; -> testing: taken into a round (reviewed or no review)
    _M.QUEUED: frozenset({_M.REVIEWING, _M.TESTING, _M.REJECTED}),
    # reviewing -> queued: approved (it waits for a round), or the review failed or was
    # interrupted (it waits); -> changes_requested: blocking findings
    _M.REVIEWING: frozenset({_M.QUEUED, _M.CHANGES_REQUESTED, _M.REJECTED}),
    _M.CHANGES_REQUESTED: frozenset({_M.QUEUED, _M.REJECTED}),
    # testing -> queued: a round was interrupted and is redone
    # testing -> pr_open: green, pushed and in a pull request (merge = "pr")
    _M.TESTING: frozenset({_M.QUEUED, _M.MERGED, _M.CONFLICT, _M.FAILED, _M.REJECTED, _M.PR_OPEN}),
    # pr_open -> merged/rejected: the PR merged or was closed; -> failed/changes_requested: a red
    # check or a review asking for changes (a fix cycle)
    _M.PR_OPEN: frozenset({_M.MERGED, _M.REJECTED, _M.FAILED, _M.CHANGES_REQUESTED}),
    _M.CONFLICT: frozenset({_M.QUEUED, _M.REJECTED}),
    _M.FAILED: frozenset({_M.QUEUED, _M.REJECTED}),
    _M.MERGED: frozenset(),
    _M.REJECTED: frozenset({_M.QUEUED}),
}

_R = ReviewState
REVIEW_TRANSITIONS: dict[ReviewState, frozenset[ReviewState]] = {
    _R.RUNNING: frozenset({_R.DONE, _R.ERROR, _R.TOO_LARGE, _R.INTERRUPTED}),
    _R.DONE: frozenset(),
    _R.ERROR: frozenset(),
    _R.TOO_LARGE: frozenset(),
    _R.INTERRUPTED: frozenset(),
}

_Q = RequestState
REQUEST_TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    _Q.CAPTURED: frozenset({_Q.IN_PROGRESS, _Q.FAILED}),
    _Q.IN_PROGRESS: frozenset({_Q.SUCCESS, _Q.FAILED}),
    _Q.SUCCESS: frozenset(),
    _Q.FAILED: frozenset(),
}
# Requests that count against a trigger's max_in_flight.
IN_FLIGHT_REQUEST_STATES = (_Q.CAPTURED, _Q.IN_PROGRESS)


def check_issue_transition(issue_id: str, old: IssueStatus, new: IssueStatus) -> None:
    if new != old and new not in ISSUE_TRANSITIONS[old]:
        raise Conflict(f"issue {issue_id} is {old}; it cannot become {new}")


def check_spawn_transition(spawn_id: str, old: SpawnStatus, new: SpawnStatus) -> None:
    if new != old and new not in SPAWN_TRANSITIONS[old]:
        raise Conflict(f"spawn {spawn_id} is {old}; it cannot become {new}")


def check_mr_transition(mr_id: str, old: MRState, new: MRState) -> None:
    if new != old and new not in MR_TRANSITIONS[old]:
        raise Conflict(f"merge request {mr_id} is {old}; it cannot become {new}")


def check_review_transition(review_id: str, old: ReviewState, new: ReviewState) -> None:
    if new != old and new not in REVIEW_TRANSITIONS[old]:
        raise Conflict(f"review {review_id} is {old}; it cannot become {new}")


def check_request_transition(request_id: str, old: RequestState, new: RequestState) -> None:
    if new != old and new not in REQUEST_TRANSITIONS[old]:
        raise Conflict(f"trigger request {request_id} is {old}; it cannot become {new}")
