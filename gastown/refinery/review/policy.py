"""The review gate's decisions. Pure: the stage and the engine gather, these decide.

Where a queued MR stands is read off its latest review that was not dismissed
(``gate_status``): never reviewed, or its review was interrupted → ``review`` it; a
review is ``running``; approved → ``ready`` to join a batch; blocked, failed, or too
large → ``wait`` (for a fix cycle, or a person: `gt mq retry` dismisses the review and
the MR is reviewed afresh). Reviews start in queue order, up to ``max_reviews`` running
at once in the rig (``plan_reviews``); a round takes only ``ready`` MRs, so MRs still
in review never hold up MRs already approved (``batchable``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import TypeVar

from gastown.ledger.mrs import MR
from gastown.ledger.reviews import Review
from gastown.states import MRState, ReviewState

M = TypeVar("M", bound=MR)


class GateStatus(enum.StrEnum):
    REVIEW = "review"
    RUNNING = "running"
    READY = "ready"
    WAIT = "wait"


def gate_status(review: Review | None) -> GateStatus:
    """Where an MR whose latest (undismissed) review is ``review`` stands at the gate."""
    if review is None or review.state == ReviewState.INTERRUPTED:
        return GateStatus.REVIEW
    if review.state == ReviewState.RUNNING:
        return GateStatus.RUNNING
    if review.state == ReviewState.DONE and review.verdict == "approve":
        return GateStatus.READY
    return GateStatus.WAIT


def plan_reviews(queued: Sequence[str], latest: Mapping[str, Review], *, running: int, max_reviews: int) -> list[str]:
    """The queued MRs (ids, in queue order) whose review starts now: those that need one,
    as many as ``max_reviews`` leaves room for beside the ``running`` ones."""
    room = max(0, max_reviews - running)
    return [mr for mr in queued if gate_status(latest.get(mr)) == GateStatus.REVIEW][:room]


def batchable(queued: Sequence[M], latest: Mapping[str, Review], *, gated: bool) -> list[M]:
    """The queued MRs (in queue order) a round may take: all of them without a review
    gate, else only the approved ones."""
    if not gated:
        return list(queued)
    return [mr for mr in queued if gate_status(latest.get(mr.id)) == GateStatus.READY]


def mr_after_review(state: ReviewState, verdict: str | None) -> MRState:
    """Where an MR that was ``reviewing`` goes when its review ends: blocking findings send
    it back (``changes_requested``); anything else returns it to ``queued``, where an
    approved one is ready for a round and a failed one waits (``gate_status``)."""
    if state == ReviewState.DONE and verdict == "do_not_merge":
        return MRState.CHANGES_REQUESTED
    return MRState.QUEUED


def orphaned(review: Review, *, owner_alive: bool) -> bool:
    """A running review whose owning process is gone: it will never finish by itself."""
    return review.state == ReviewState.RUNNING and not owner_alive
