"""The review stage of one rig: start reviews of queued MRs, record them, move their MRs.

``dispatch`` claims the next MRs that need a review (``policy.plan_reviews``: queue
order, at most ``max_reviews`` running in the rig across every process; none while the
town's or the rig's daily budget is spent) in one ledger transaction: each becomes ``reviewing`` and gets a ``running`` review row owned by this
process. Each review then runs on its own thread (``runner.execute``), so reviews of
different MRs overlap and a round gating MRs already approved never waits for them.
When a review ends, one transaction records it with its findings and moves its MR
(``policy.mr_after_review``): approved → ``queued`` (ready for a round),
``do_not_merge`` → ``changes_requested`` and sent back as a fix cycle listing every
blocking finding, ``error``/``too_large`` → ``queued`` waiting, with one escalation.
The refinery is woken.

Crash safety: a review row names its owner (pid and start time). ``recover`` ends every
running review whose owner is gone (a killed Mayor) or whose thread here died: the
processes it left (found by ``GT_REVIEW=<id>`` in their environment, or by its private
home) are stopped, its checkout removed, the review marked ``interrupted`` and its MR
put back in the queue, to be reviewed again. No review is left running, no MR stuck in
``reviewing``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gastown._internal.log import logger
from gastown.context import Context
from gastown.errors import GastownError, NotFound
from gastown.ledger import reviews as review_rows
from gastown.ledger.escalations import record_escalation
from gastown.ledger.events import record_event
from gastown.ledger.holds import HoldScope, is_held
from gastown.ledger.issues import find_issue
from gastown.ledger.mrs import MR, get_mr, list_mrs, queue_order, set_mr_state
from gastown.ledger.reviews import FindingRow, Review
from gastown.refinery import fixes
from gastown.refinery.review import policy
from gastown.refinery.review.runner import (
    ReviewResult,
    ReviewSubject,
    checkout_path,
    remove_checkout,
    safe_execute,
)
from gastown.refinery.review.settings import ReviewSettings, gate_settings
from gastown.states import MRState, ReviewState

log = logger(__name__)

Executor = Callable[[Context, Review, ReviewSubject, ReviewSettings], ReviewResult]

_LOCK = threading.Lock()
_ACTIVE: set[str] = set()  # review ids whose thread runs in this process


def owner_token(pid: int | None = None) -> str:
    """``<pid>:<start time>`` of a process (this one by default): who owns a review."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_time(pid)}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process named by ``owner`` still runs (the same process, not a reused pid)."""
    if not owner or ":" not in owner:
        return False
    pid_text, _, started = owner.partition(":")
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    return _start_time(pid) == started and started != ""


def _start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else ""


@dataclass
class StageReport:
    """What one ``dispatch``/``recover`` did: reviews started, and reviews interrupted."""

    rig: str
    started: list[str] = field(default_factory=list)  # review ids
    interrupted: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"rig": self.rig, "started": self.started, "interrupted": self.interrupted}


class ReviewStage:
    """One rig's review gate. ``executor`` runs a review (default ``runner.safe_execute``);
    ``slinger`` sends blocked work back (default ``roles.polecat.sling``)."""

    def __init__(self, ctx: Context, rig: str, *, executor: Executor = safe_execute,
                 slinger: fixes.Slinger | None = None) -> None:
        self.ctx = ctx
        self.rig = rig
        self.executor = executor
        self.slinger = slinger
        self._threads: dict[str, threading.Thread] = {}

    @property
    def settings(self) -> ReviewSettings | None:
        return gate_settings(self.ctx.config, self.rig) if self.rig in self.ctx.config.rigs else None

    # -- the Mayor's step and the CLI's run ---------------------------------------------

    def step(self) -> StageReport:
        """Recover orphaned reviews, then start what may start. Returns at once (the
        reviews run on their own threads)."""
        report = self.recover()
        report.started = self.dispatch()
        return report

    def run_all(self) -> list[Review]:
        """Review every queued MR that needs it, ``max_reviews`` at a time, and wait for all
        of them (what `gt refinery run` does before its rounds). Returns the reviews run."""
        done: list[str] = []
        self.recover()
        while True:
            started = self.dispatch()
            done += started
            if not started and not self.busy():
                break
            self.wait(any_=True)
        conn = self.ctx.ledger.connection()
        return [review_rows.get_review(conn, r) for r in done]

    def busy(self) -> bool:
        return any(t.is_alive() for t in self._threads.values())

    def wait(self, *, any_: bool = False, timeout: float | None = None) -> None:
        """Wait for this stage's review threads: all of them, or (``any_``) the first to end."""
        threads = [t for t in self._threads.values() if t.is_alive()]
        if not threads:
            return
        if any_:
            finished = threading.Event()
            watchers = []
            def watch(thread: threading.Thread) -> None:
                thread.join()
                finished.set()

            for thread in threads:
                watcher = threading.Thread(target=watch, args=(thread,), daemon=True)
                watcher.start()
                watchers.append(watcher)
            finished.wait(timeout)
            return
        for thread in threads:
            thread.join(timeout)

    # -- claiming ------------------------------------------------------------------------

    def dispatch(self) -> list[str]:
        """Claim the MRs that need a review and start one thread each; returns the review ids."""
        settings = self.settings
        if settings is None:
            return []
        claimed = self._claim(settings)
        for review, subject in claimed:
            thread = threading.Thread(target=self._run, args=(review, subject, settings),
                                      name=f"review:{self.rig}:{review.id}", daemon=True)
            self._threads[review.id] = thread
            thread.start()
        return [review.id for review, _ in claimed]

    def _claim(self, settings: ReviewSettings) -> list[tuple[Review, ReviewSubject]]:
        claimed: list[tuple[Review, ReviewSubject]] = []
        try:
            with self.ctx.ledger.write() as conn:
                self._claim_in(conn, settings, claimed)
        except BaseException:
            with _LOCK:
                _ACTIVE.difference_update(review.id for review, _ in claimed)
            raise
        return claimed

    def _claim_in(self, conn: Any, settings: ReviewSettings, claimed: list[tuple[Review, ReviewSubject]]) -> None:
        """Inside the claim's transaction. Each review is marked active here *before* the
        transaction commits, so a concurrent ``recover`` never takes it for an orphan."""
        now = self.ctx.now()
        queued = queue_order(list_mrs(conn, self.rig, [MRState.QUEUED]), now)
        if not queued:
            return
        if any(is_held(conn, scope, now) for scope in (HoldScope.town_budget(), HoldScope.rig_budget(self.rig))):
            return  # a spent budget stops new reviews as it stops new agents; running ones finish
        latest = review_rows.latest_for_mrs(conn, [m.id for m in queued])
        running = len(review_rows.running_reviews(conn, self.rig))
        chosen = policy.plan_reviews([m.id for m in queued], latest, running=running,
                                     max_reviews=settings.max_reviews)
        by_id = {m.id: m for m in queued}
        for mr_id in chosen:
            mr = by_id[mr_id]
            subject = self._subject(conn, mr)
            review = review_rows.start_review(
                conn, rig=self.rig, mr=mr.id, issue=mr.issue, branch=mr.branch, commit_sha=mr.commit_sha,
                target=subject.target, agent=settings.agent, style=settings.style, block_on=settings.block_on,
                trigger="queue", owner=owner_token(), now=now, log_dir=str(self.log_dir),
            )
            with _LOCK:
                _ACTIVE.add(review.id)
            set_mr_state(conn, mr.id, MRState.REVIEWING, now=now, detail=f"in review ({review.id})")
            record_event(conn, "review", f"{mr.id}: review {review.id} started ({settings.agent}, "
                         f"{settings.style})", now=now, rig=self.rig, polecat=mr.polecat, issue=mr.issue,
                         data={"mr": mr.id, "review": review.id})
            claimed.append((review, subject))

    @property
    def log_dir(self) -> Path:
        return self.ctx.town.logs_dir / self.rig / "reviews"

    def _subject(self, conn: Any, mr: MR) -> ReviewSubject:
        issue = find_issue(conn, mr.issue)
        return ReviewSubject(
            rig=self.rig, branch=mr.branch, commit=mr.commit_sha, target=self.ctx.config.rigs[self.rig].branch,
            mr=mr.id, issue=mr.issue, issue_title=issue.title if issue else None,
            issue_body=issue.body if issue else None,
        )

    # -- running and recording -------------------------------------------------------------

    def _run(self, review: Review, subject: ReviewSubject, settings: ReviewSettings) -> None:
        try:
            result = self.executor(self.ctx, review, subject, settings)
            finish(self.ctx, review, result, settings, slinger=self.slinger)
        except Exception as exc:  # noqa: BLE001 - recover() settles a review whose thread died
            log.exception("review %s of %s: could not be recorded: %s", review.id, subject.label, exc)
        finally:
            with _LOCK:
                _ACTIVE.discard(review.id)

    # -- recovery ------------------------------------------------------------------------

    def recover(self) -> StageReport:
        """End every running review of this rig that nothing runs any more (see the module
        docstring); their MRs go back to the queue. Idempotent and cheap when all is well."""
        report = StageReport(self.rig)
        conn = self.ctx.ledger.connection()
        for review in review_rows.running_reviews(conn, self.rig):
            with _LOCK:
                here = review.id in _ACTIVE
            if here or not policy.orphaned(review, owner_alive=_owner_alive_elsewhere(review.owner)):
                continue
            stop_review_processes(self.ctx, review.id)
            remove_checkout(self.ctx.town.hub_path(self.rig), checkout_path(self.ctx, self.rig, review.id))
            if interrupt(self.ctx, review):
                report.interrupted.append(review.id)
        return report


def _owner_alive_elsewhere(owner: str | None) -> bool:
    """Alive and not this process (this process's reviews are known by ``_ACTIVE``)."""
    return owner_alive(owner) and not (owner or "").startswith(f"{os.getpid()}:")


def stop_review_processes(ctx: Context, review_id: str) -> int:
    """Stop what a review left running: its reviewer and analyzers (``GT_REVIEW=<id>`` in
    their environment) and anything using its private home."""
    from gastown._internal.processes import sweep
    from gastown.roles.launch import home_path

    stopped = sweep(f"GT_REVIEW={review_id}\0", grace=1.0)
    home = home_path(ctx.town, review_id)
    if home.exists():
        stopped += sweep(str(home), grace=1.0)
        import shutil

        shutil.rmtree(home, ignore_errors=True)
    return stopped


def interrupt(ctx: Context, review: Review) -> bool:
    """Mark a running review ``interrupted`` and put its MR back in the queue (if it is
    still ``reviewing``); False if it had ended meanwhile."""
    with ctx.ledger.write() as conn:
        current = review_rows.get_review(conn, review.id)
        if current.state != ReviewState.RUNNING:
            return False
        now = ctx.now()
        review_rows.finish_review(conn, review.id, ReviewState.INTERRUPTED, now=now,
                                  error="its process ended before the review did")
        if review.mr:
            mr = get_mr(conn, review.mr)
            if mr.state == MRState.REVIEWING:
                set_mr_state(conn, mr.id, MRState.QUEUED, now=now,
                             detail=f"requeued: review {review.id} was interrupted")
        record_event(conn, "review", f"review {review.id} interrupted (its process ended); "
                     + (f"{review.mr} queued again" if review.mr else "nothing to requeue"), now=now, rig=review.rig,
                     issue=review.issue, data={"review": review.id, "mr": review.mr, "state": "interrupted"})
    return True


def finish(ctx: Context, review: Review, result: ReviewResult, settings: ReviewSettings,
           *, slinger: fixes.Slinger | None = None, move_mr: bool = True) -> Review:
    """Record ``result`` for ``review`` (findings, verdict, usage), move its MR if it is
    ``reviewing`` (and ``move_mr``), raise an escalation when it failed, send blocked
    work back, wake the refinery. Returns the recorded review; a review already ended (a
    recovery won the race) is returned as it is."""
    from gastown.costs import record_review_usage
    from gastown.wake import wake

    if result.usage is not None:
        record_review_usage(ctx, review_id=review.id, rig=review.rig, issue=review.issue, agent=review.agent,
                            started_at=review.started_at, usage=result.usage)
    rows = [
        FindingRow(i, f.source, f.file, f.start_line, f.end_line, f.severity, f.category, f.title, f.explanation,
                   f.fix, f.blocking(settings.block_on))
        for i, f in enumerate(result.findings, start=1)
    ]
    sent_back = False
    with ctx.ledger.write() as conn:
        current = review_rows.get_review(conn, review.id)
        if current.state != ReviewState.RUNNING:
            log.warning("review %s ended as %s before its result came in; the result is dropped", review.id,
                        current.state)
            return current
        now = ctx.now()
        recorded = review_rows.finish_review(
            conn, review.id, result.state, now=now, verdict=result.verdict, model_verdict=result.model_verdict,
            summary=result.summary, praise=result.praise, dropped=result.dropped, diff_lines=result.diff_lines,
            base_sha=result.base, runs=result.runs, error=result.error, findings=rows,
        )
        mr = get_mr(conn, review.mr) if review.mr else None
        record_event(conn, "review", review_message(recorded, rows), now=now, rig=review.rig,
                     polecat=mr.polecat if mr else None, issue=review.issue,
                     data={"review": review.id, "mr": review.mr, "state": str(recorded.state),
                           "verdict": recorded.verdict, "findings": len(rows),
                           "blocking": sum(r.blocking for r in rows), "dropped": recorded.dropped})
        if mr is not None and move_mr and mr.state == MRState.REVIEWING:
            moved = policy.mr_after_review(recorded.state, recorded.verdict)
            set_mr_state(conn, mr.id, moved, now=now, detail=mr_detail(recorded, rows))
            sent_back = moved == MRState.CHANGES_REQUESTED
        if recorded.state in (ReviewState.ERROR, ReviewState.TOO_LARGE):
            what = review.mr or f"branch {review.branch}"
            waits = f"; {review.mr} waits (gt review run {review.mr}, or gt mq retry {review.mr})" if review.mr else ""
            record_escalation(conn, f"the review of {what} failed: {recorded.error}{waits}", now=now,
                              severity="medium", source="review", issue=review.issue, rig=review.rig)
    if sent_back:
        from gastown.refinery.settings import resolve_settings

        refinery = resolve_settings(ctx.config, review.rig)
        try:
            fixes.send_back_pending(ctx, review.rig, target=refinery.target,
                                    max_fix_cycles=refinery.max_fix_cycles, slinger=slinger)
        except GastownError as exc:
            log.warning("review %s: sending %s back failed: %s", review.id, review.mr, exc)
    wake(ctx.town, f"refinery-{review.rig}")
    return recorded


def review_message(review: Review, findings: list[FindingRow]) -> str:
    """The event line of an ended review."""
    what = review.mr or f"branch {review.branch}"
    if review.state != ReviewState.DONE:
        return f"{what}: review {review.id} {review.state}: {review.error}"
    blocking = sum(f.blocking for f in findings)
    return (f"{what}: review {review.id} says {review.verdict} ({len(findings)} finding(s), {blocking} blocking, "
            f"{review.dropped} dropped; the model said {review.model_verdict})")


def mr_detail(review: Review, findings: list[FindingRow]) -> str:
    """The MR's ``detail`` after its review: the verdict, and each blocking finding with
    its place, explanation and fix (the fix cycle's prompt quotes it)."""
    if review.state != ReviewState.DONE:
        return f"review {review.id} {review.state}: {review.error}"
    blocking = [f for f in findings if f.blocking]
    head = (f"review {review.id} ({review.style}): {review.verdict}, {len(blocking)} blocking finding(s) "
            f"of {len(findings)}")
    lines = [head]
    for f in blocking:
        where = f"{f.file}:{f.start_line}" + (f"-{f.end_line}" if f.end_line != f.start_line else "")
        lines.append(f"- {where} [{f.severity}] {f.title}")
        if f.explanation:
            lines.append(f"  {f.explanation}")
        if f.fix:
            lines.append(f"  Fix: {f.fix}")
    return "\n".join(lines)


def review_now(ctx: Context, what: str, *, rig: str | None = None, style: str | None = None,
               executor: Executor = safe_execute, slinger: fixes.Slinger | None = None) -> Review:
    """`gt review run`: review an MR (``mr-…``) or a branch (or commit) of ``rig`` now, in
    this process, and return the recorded review.

    An MR that is ``queued`` in a rig with a review gate is claimed (``reviewing``) and
    this review is its gate's review: its verdict moves the MR as the queue's own would.
    Any other review is advisory: recorded and shown, the MR left as it is. ``style``
    overrides the rig's. Raises ``NotFound`` for an unknown MR, rig or branch and
    ``InvalidInput`` for a bad style or an ambiguous rig.
    """
    from gastown.refinery.review.settings import on_demand_settings

    conn = ctx.ledger.connection()
    mr = get_mr(conn, what) if what.startswith("mr-") else None
    if mr is not None:
        rig = mr.rig
    rig = _pick_rig(ctx, rig)
    settings = on_demand_settings(ctx.config, rig).with_style(style)
    gated = gate_settings(ctx.config, rig) is not None
    stage = ReviewStage(ctx, rig, executor=executor, slinger=slinger)
    branch_subject = _branch_subject(ctx, rig, what) if mr is None else None  # git: before the transaction
    with ctx.ledger.write() as conn:
        now = ctx.now()
        if mr is not None:
            mr = get_mr(conn, mr.id)
            subject = stage._subject(conn, mr)
        else:
            assert branch_subject is not None
            subject = branch_subject
        claim = mr is not None and gated and mr.state == MRState.QUEUED
        review = review_rows.start_review(
            conn, rig=rig, mr=subject.mr, issue=subject.issue, branch=subject.branch, commit_sha=subject.commit,
            target=subject.target, agent=settings.agent, style=settings.style, block_on=settings.block_on,
            trigger="manual", owner=owner_token(), now=now, log_dir=str(stage.log_dir),
        )
        with _LOCK:
            _ACTIVE.add(review.id)
        if claim and mr is not None:
            set_mr_state(conn, mr.id, MRState.REVIEWING, now=now, detail=f"in review ({review.id}, by hand)")
        record_event(conn, "review", f"{subject.label}: review {review.id} started by hand ({settings.agent}, "
                     f"{settings.style})", now=now, rig=rig, issue=subject.issue,
                     data={"mr": subject.mr, "review": review.id})
    try:
        result = executor(ctx, review, subject, settings)
        return finish(ctx, review, result, settings, slinger=slinger, move_mr=claim)
    finally:
        with _LOCK:
            _ACTIVE.discard(review.id)


def _pick_rig(ctx: Context, rig: str | None) -> str:
    from gastown.errors import InvalidInput

    if rig is not None:
        if rig not in ctx.config.rigs:
            known = ", ".join(sorted(ctx.config.rigs)) or "none yet"
            raise NotFound(f"no rig named {rig!r} in this town (rigs: {known})", hint="see `gt rig list`")
        return rig
    if len(ctx.config.rigs) == 1:
        return next(iter(ctx.config.rigs))
    raise InvalidInput("which rig's branch is this? the town has " + (f"{len(ctx.config.rigs)} rigs" if ctx.config.rigs
                       else "no rigs"), hint="pass --rig RIG")


def _branch_subject(ctx: Context, rig: str, name: str) -> ReviewSubject:
    """A branch (or commit) of the rig's hub, after a fetch: its own ``refs/heads``, the
    upstream's branches, or any commit-ish."""
    from gastown.git.hub import fetch
    from gastown.git.worktrees import ref_sha

    hub = ctx.town.hub_path(rig)
    fetch(hub, max_age=10.0)
    for ref in (f"refs/heads/{name}", f"refs/remotes/origin/{name}", name):
        sha = ref_sha(hub, ref)
        if sha:
            return ReviewSubject(rig=rig, branch=name, commit=sha, target=ctx.config.rigs[rig].branch)
    raise NotFound(f"no branch or commit {name!r} in rig {rig}'s repository",
                   hint=f"push it to the rig's upstream first (the hub fetches it), or name an MR (gt mq list --rig {rig})")


def recover_rig(ctx: Context, rig: str) -> StageReport:
    """``ReviewStage.recover`` for ``rig`` (``gt down``, the Mayor's start, `gt refinery run`)."""
    try:
        return ReviewStage(ctx, rig).recover()
    except NotFound:
        return StageReport(rig)
