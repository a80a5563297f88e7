"""What `gt mq` and `gt refinery` show and change: listings, retry, reject, status, release.

Each change is one ledger transaction with its event, so it is safe to run while the
refinery works: an MR being tested cannot be rejected (the round owns it until it ends).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gastown.context import Context
from gastown.errors import Conflict
from gastown.ledger.events import record_event
from gastown.ledger.mrs import ACTIVE_STATES, MR, count_by_state, get_mr, list_mrs, queue_order, set_mr_state
from gastown.ledger.reviews import dismiss_for_mr
from gastown.ledger import rounds
from gastown.refinery.settings import RefinerySettings, resolve_settings
from gastown.states import MRState

STATE_ORDER = {s: i for i, s in enumerate((MRState.TESTING, MRState.PR_OPEN, MRState.REVIEWING, MRState.QUEUED,
                                           MRState.CHANGES_REQUESTED, MRState.CONFLICT, MRState.FAILED,
                                           MRState.REJECTED, MRState.MERGED))}


def listing(
    ctx: Context, *, rig: str | None = None, states: Sequence[MRState] | None = None, include_done: bool = False
) -> list[MR]:
    """MRs to show: testing, then queued in the order they will be taken, then the rest
    newest first. By default only live ones (queued, testing, conflict, failed)."""
    if rig is not None:
        resolve_settings(ctx.settings, rig)  # NotFound for an unknown rig
    wanted = list(states) if states else (list(MRState) if include_done else list(ACTIVE_STATES))
    mrs = list_mrs(ctx.ledger.connection(), rig, wanted)
    queued = queue_order([m for m in mrs if m.state == MRState.QUEUED], ctx.now())
    position = {m.id: i for i, m in enumerate(queued)}
    others = sorted((m for m in mrs if m.state != MRState.QUEUED), key=lambda m: -m.updated_at)
    return sorted(queued + others, key=lambda m: (STATE_ORDER[m.state], position.get(m.id, 0)))


def documents(ctx: Context, mrs: Sequence[MR]) -> list[dict[str, Any]]:
    """What `gt mq list --json` (and the dashboard's API) says of each MR: its fields and
    its latest review (``null`` when it had none)."""
    from gastown.ledger.github import pulls_by_mr
    from gastown.refinery.review.records import latest_briefs

    reviews = latest_briefs(ctx, [m.id for m in mrs])
    pulls = pulls_by_mr(ctx.ledger.connection(), [m.id for m in mrs])
    return [{**m.to_json(), "review": reviews[m.id].to_json() if m.id in reviews else None,
             "pull_request": pulls[m.id].to_json() if m.id in pulls else None} for m in mrs]


def show(ctx: Context, mr_id: str) -> MR:
    return get_mr(ctx.ledger.connection(), mr_id)


def retry(ctx: Context, mr_id: str) -> MR:
    """Put a conflicted, failed, blocked (``changes_requested``) or rejected MR back in the
    queue (its original age kept). Its finished reviews are dismissed, so a rig with a
    review gate reviews it afresh: that is also how a queued MR whose review failed
    (error, too large) is tried again."""
    with ctx.ledger.write() as conn:
        mr = get_mr(conn, mr_id)
        if mr.state in (MRState.REVIEWING, MRState.TESTING):
            return mr
        if mr.state == MRState.MERGED:
            raise Conflict(f"merge request {mr_id} is already merged", hint="nothing to retry")
        dismissed = dismiss_for_mr(conn, mr_id, now=ctx.now())
        if mr.state == MRState.QUEUED:
            if not dismissed:
                return mr
            record_event(conn, "mr", f"{mr_id}: its review was dismissed by hand; it is reviewed again",
                         now=ctx.now(), rig=mr.rig, issue=mr.issue, polecat=mr.polecat, data={"mr": mr_id})
        else:
            mr = set_mr_state(conn, mr_id, MRState.QUEUED, now=ctx.now(), detail=f"retried by hand after {mr.state}")
            record_event(conn, "mr", f"{mr_id} queued again by hand", now=ctx.now(), rig=mr.rig, issue=mr.issue,
                         polecat=mr.polecat, data={"mr": mr_id})
    _wake(ctx, mr.rig)
    return mr


def reject(ctx: Context, mr_id: str, *, reason: str | None) -> MR:
    """Take an MR out of the queue for good (until retried). Idempotent."""
    with ctx.ledger.write() as conn:
        mr = get_mr(conn, mr_id)
        if mr.state == MRState.REJECTED:
            return mr
        if mr.state == MRState.MERGED:
            raise Conflict(f"merge request {mr_id} is already merged", hint="revert its commit on the target instead")
        if mr.state == MRState.TESTING:
            raise Conflict(f"merge request {mr_id} is being tested in a refinery round right now",
                           hint="reject it when the round is over (`gt refinery status` shows it)")
        why = reason or "rejected by hand"
        mr = set_mr_state(conn, mr_id, MRState.REJECTED, now=ctx.now(), detail=why)
        record_event(conn, "rejected", f"{mr_id} rejected: {why}", now=ctx.now(), rig=mr.rig, issue=mr.issue,
                     polecat=mr.polecat, data={"mr": mr_id})
    return mr


@dataclass(frozen=True)
class RigStatus:
    rig: str
    settings: RefinerySettings
    counts: dict[str, int]
    hold: rounds.Hold | None
    running: int | None
    last_round: rounds.Round | None
    recent_rounds: int
    recent_gate_runs: int

    def to_json(self) -> dict[str, Any]:
        return {
            "rig": self.rig,
            **self.settings.to_json(),
            "depth": self.counts.get("queued", 0),
            "states": self.counts,
            "hold": self.hold.to_json() if self.hold else None,
            "running_round": self.running,
            "last_round": self.last_round.to_json() if self.last_round else None,
            "recent_rounds": self.recent_rounds,
            "recent_gate_runs": self.recent_gate_runs,
        }


RECENT_ROUNDS = 20


def status(ctx: Context, rig: str | None = None) -> list[RigStatus]:
    """The queue of ``rig`` (or of every rig) at a glance."""
    names = [rig] if rig is not None else sorted(ctx.settings.rigs)
    conn = ctx.ledger.connection()
    result = []
    for name in names:
        settings = resolve_settings(ctx.settings, name)
        recent = rounds.list_rounds(conn, name, limit=RECENT_ROUNDS)
        finished = [r for r in recent if r.ended_at is not None]
        unfinished = rounds.unfinished_rounds(conn, name)
        result.append(RigStatus(
            rig=name,
            settings=settings,
            counts=count_by_state(conn, name),
            hold=rounds.get_hold(conn, name),
            running=unfinished[-1].id if unfinished else None,
            last_round=finished[0] if finished else None,
            recent_rounds=len(recent),
            recent_gate_runs=sum(r.gate_runs for r in recent),
        ))
    return result


def release(ctx: Context, rig: str) -> rounds.Hold | None:
    """Clear the hold on ``rig``'s queue; returns the hold that was lifted (None if there was none)."""
    resolve_settings(ctx.settings, rig)
    with ctx.ledger.write() as conn:
        hold = rounds.get_hold(conn, rig)
        if hold is not None:
            rounds.clear_hold(conn, rig)
            record_event(conn, "resume", f"refinery of rig {rig} released by hand (was: {hold.reason})",
                         now=ctx.now(), rig=rig)
    if hold is not None:
        _wake(ctx, rig)
    return hold


def _wake(ctx: Context, rig: str) -> None:
    from gastown.wake import wake

    wake(ctx.town, f"refinery-{rig}")
