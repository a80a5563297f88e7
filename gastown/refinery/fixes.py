"""Send-backs: a conflicted, failed or blocked MR goes back to a polecat as a fix cycle.

For each MR in ``conflict``, ``failed`` or ``changes_requested`` (its review found
blocking problems) whose issue is still ``in_review``:

- if a newer MR of the issue exists, nothing is sent (the newer one speaks for it);
- the issue's fix cycles so far are its conflicted/failed MRs minus this one; when they
  have reached ``max_fix_cycles`` the issue is ``blocked`` and escalated;
- otherwise the slinger is called with ``kind="fix"``, ``start_point`` = the MR's commit
  and a note holding the conflicting files, the gate log's last lines, or the review's
  blocking findings; the target
  is the MR's own polecat when its worktree is free (no hook), else the rig.

Each decision is recorded as a ``sendback`` event keyed by (MR, attempt), written
after the sling, so a crash in between re-sends at worst (the real sling is a no-op
on an issue already hooked to a live spawn) and never loses a send-back. A slinger
that raises never breaks the round: the issue is blocked and escalated for a human.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gastown._internal.log import logger
from gastown.context import Context
from gastown.ledger.escalations import raise_escalation
from gastown.ledger.events import has_event_with, record_event
from gastown.ledger.issues import find_issue
from gastown.ledger.mrs import MR, SENT_BACK_STATES, list_mrs, sent_back_awaiting_fix
from gastown.ledger.work import hook_of_polecat
from gastown.states import MRState

log = logger(__name__)

Slinger = Callable[..., Any]
"""``slinger(ctx, issue_id, target, *, kind="fix", start_point=sha, note=text)``."""


@dataclass(frozen=True)
class SendBack:
    mr: str
    issue: str
    action: str  # slung | blocked | superseded | error
    target: str | None
    cycle: int
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"mr": self.mr, "issue": self.issue, "action": self.action, "target": self.target,
                "cycle": self.cycle, "message": self.message}


def decide(*, newest_for_issue: bool, cycles_spent: int, max_fix_cycles: int) -> str:
    """``sling``, ``block`` or ``superseded`` for one conflicted/failed MR. Pure.

    >>> decide(newest_for_issue=True, cycles_spent=0, max_fix_cycles=3)
    'sling'
    >>> decide(newest_for_issue=True, cycles_spent=3, max_fix_cycles=3)
    'block'
    >>> decide(newest_for_issue=False, cycles_spent=0, max_fix_cycles=3)
    'superseded'
    """
    if not newest_for_issue:
        return "superseded"
    if cycles_spent >= max_fix_cycles:
        return "block"
    return "sling"


def fix_note(mr: MR, *, target: str, cycle: int, max_fix_cycles: int) -> str:
    """What the polecat is told: what went wrong, the evidence, and what to do."""
    head = f"The merge queue could not merge {mr.id} (your commit {mr.commit_sha[:12]} on {mr.branch}) into {target}."
    cycle_line = f"This is fix cycle {cycle} of {max_fix_cycles}."
    if (mr.detail or "").startswith("GitHub "):  # a red check or a review on the issue's pull request
        head = (f"GitHub stopped {mr.id} (your commit {mr.commit_sha[:12]} on {mr.branch}) from merging into "
                f"{target} through its pull request.")
        body = (f"{mr.detail}\n"
                "Fix it, commit, then run `gt done`: your new commits update the same pull request.")
    elif mr.state == MRState.CHANGES_REQUESTED:
        head = (f"The code review stopped {mr.id} (your commit {mr.commit_sha[:12]} on {mr.branch}) from merging "
                f"into {target}.")
        body = ("The reviewer's blocking findings (file:line, severity, explanation, fix):\n"
                f"{mr.detail or '(no details)'}\n"
                "Fix every blocking finding, commit, then run `gt done`.")
    elif mr.state == MRState.CONFLICT:
        body = (f"It {mr.detail or 'conflicts with the target'}.\n"
                f"Rebase your work onto the latest {target}, resolve the conflicts, commit, then run `gt done`.")
    else:
        body = (f"The gates failed on it. Gate log: {mr.gate_log or 'n/a'}. Its last lines:\n"
                f"{mr.detail or '(no output)'}\n"
                "Fix the failure, commit, then run `gt done`.")
    return f"{head}\n{cycle_line}\n{body}\n"


def default_slinger() -> Slinger:
    """The real slinger, resolved at call time so this module imports without it."""
    from gastown.roles.polecat import sling

    return sling


def pending(ctx: Context, rig: str) -> list[MR]:
    """Conflicted/failed MRs of ``rig`` whose issue is in review and not yet sent back."""
    return [mr for mr in sent_back_awaiting_fix(ctx.ledger.connection(), rig) if not _already_sent(ctx, mr)]


def send_back_pending(
    ctx: Context, rig: str, *, target: str, max_fix_cycles: int, slinger: Slinger | None = None
) -> list[SendBack]:
    """Send back every pending MR of ``rig``; returns what was done. Never raises for a
    slinger failure (that becomes an escalation); ledger errors do propagate.

    Serialized per rig (a file lock): the refinery and a review that just ended may both
    find the same MR pending, and it must be sent back once."""
    from gastown._internal.locks import file_lock

    done = []
    with file_lock(ctx.town.locks_dir / f"sendback-{rig}.lock", timeout=120, what=f"the send-backs of rig {rig!r}"):
        for mr in pending(ctx, rig):
            done.append(_send_back(ctx, mr, target=target, max_fix_cycles=max_fix_cycles, slinger=slinger))
    return done


def send_back_again(ctx: Context, mr: MR) -> SendBack:
    """Send ``mr`` back once more although a send-back was recorded for it: its fix cycle
    was lost on the way (the Deacon finds such issues in review with nothing on their way)."""
    from gastown.refinery.settings import resolve_settings

    settings = resolve_settings(ctx.config, mr.rig)
    return _send_back(ctx, mr, target=settings.target, max_fix_cycles=settings.max_fix_cycles, slinger=None)


def _send_back(ctx: Context, mr: MR, *, target: str, max_fix_cycles: int, slinger: Slinger | None) -> SendBack:
    conn = ctx.ledger.connection()
    mine = list_mrs(conn, issue=mr.issue)
    newest = max(mine, key=lambda m: (m.created_at, m.id)).id == mr.id
    issue = find_issue(conn, mr.issue)
    since = issue.counters_reset_at if issue is not None and issue.counters_reset_at is not None else float("-inf")
    spent = sum(1 for m in mine if m.state in SENT_BACK_STATES and m.id != mr.id and m.created_at > since)
    action = decide(newest_for_issue=newest, cycles_spent=spent, max_fix_cycles=max_fix_cycles)
    cycle = spent + 1
    if action == "superseded":
        return _mark(ctx, mr, SendBack(mr.id, mr.issue, action, None, cycle, "a newer merge request exists"))
    if action == "block":
        message = (f"issue {mr.issue} still fails to merge after {spent} fix cycle(s) "
                   f"(latest: {mr.id} {mr.state}); it needs a human")
        return _mark(ctx, mr, SendBack(mr.id, mr.issue, "blocked", None, spent, message), escalate=message)
    sling_target = _sling_target(ctx, mr)
    note = fix_note(mr, target=target, cycle=cycle, max_fix_cycles=max_fix_cycles)
    try:
        sling = slinger if slinger is not None else default_slinger()
        sling(ctx, mr.issue, sling_target, kind="fix", start_point=mr.commit_sha, note=note)
    except Exception as exc:  # noqa: BLE001 - any slinger failure is left to a human, never a crash
        log.warning("send-back of %s failed: %s", mr.id, exc)
        message = f"could not send {mr.issue} back to a polecat after {mr.id} {mr.state}: {exc}"
        return _mark(ctx, mr, SendBack(mr.id, mr.issue, "error", sling_target, cycle, message), escalate=message)
    return _mark(ctx, mr, SendBack(mr.id, mr.issue, "slung", sling_target, cycle, f"fix cycle {cycle} sent to {sling_target}"))


def _sling_target(ctx: Context, mr: MR) -> str:
    if mr.polecat and hook_of_polecat(ctx.ledger.connection(), mr.rig, mr.polecat) is None:
        return f"{mr.rig}/{mr.polecat}"
    return mr.rig


def _already_sent(ctx: Context, mr: MR) -> bool:
    return has_event_with(ctx.ledger.connection(), issue=mr.issue, kind="sendback",
                          data={"mr": mr.id, "attempt": mr.attempts})


def _mark(ctx: Context, mr: MR, outcome: SendBack, *, escalate: str | None = None) -> SendBack:
    with ctx.ledger.write() as conn:
        if escalate is not None:
            raise_escalation(ctx.ledger, escalate, severity="medium", source="refinery", issue=mr.issue, rig=mr.rig,
                             polecat=mr.polecat, block_issue=True)
        record_event(
            conn, "sendback", f"{mr.id}: {outcome.message}", now=ctx.now(), rig=mr.rig, polecat=mr.polecat,
            issue=mr.issue, data={"mr": mr.id, "attempt": mr.attempts, "action": outcome.action,
                                  "target": outcome.target, "cycle": outcome.cycle},
        )
    return outcome
