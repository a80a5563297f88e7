"""The refinery engine: rounds of one rig's merge queue.

One round, under the rig's refinery lock (so `gt refinery run` and the Mayor never
overlap): fetch the upstream; take up to ``batch`` queued MRs in queue order and mark
them ``testing``; write the round row; stack them on the upstream target's tip in the
refinery worktree (conflicting MRs are taken out and marked ``conflict``); gate the
stack once; green pushes it, red is bisected (``plan.BisectPlan``) and the green
subset pushed. Every push is exactly a stack that was gated green, never forced, and
verified with ``ls-remote``; a push refused because the upstream moved redoes the
round on the new tip.

Crash safety: the round row is written before git is touched, and the stack to push
(``tip``, each MR's commit on it) is recorded before the push. ``recover`` (run at
start-up, at the start of `gt refinery run`, and by any round that finds an
unfinished row) marks a round's MRs merged if its tip reached the upstream, and
otherwise puts them back in the queue: an MR never merges twice and the upstream never
points at an untested commit. ``kill -9`` at any point leaves nothing half-merged.

Timing: a round blocks for its gate runs (each gate at most ``gate_timeout``); ledger
transactions stay short and never span git or gate calls. An idle ``run_once`` costs
one query, no git.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gastown._internal.locks import file_lock
from gastown._internal.log import logger
from gastown.context import Context
from gastown.errors import Conflict, GastownError, GitError, NotFound
from gastown.git.hub import fetch
from gastown.git.merge import (
    Conflicted,
    MergeItem,
    RefineryWorktree,
    archive_branches,
    fast_forward_ref,
    is_ancestor,
    missing_commits,
    push_tip,
    remote_sha,
    unpin_mr_commits,
)
from gastown.git.worktrees import ref_sha, target_ref
from gastown.ledger import rounds
from gastown.ledger.escalations import cause_hold, raise_escalation
from gastown.ledger.events import record_event
from gastown.ledger.holds import HoldScope
from gastown.ledger.issues import find_issue, set_issue_status
from gastown.ledger.mrs import (
    MR,
    SENT_BACK_STATES,
    get_mr,
    list_mrs,
    next_batch,
    queue_order,
    retire_for_issue,
    set_mr_state,
)
from gastown.refinery import fixes
from gastown.refinery.gates import (
    GateRun,
    GateRunner,
    gate_env,
    gate_marker,
    run_gates,
    stop_orphaned_gates,
)
from gastown.refinery.plan import BisectPlan, Finish, GateBase
from gastown.refinery.review.settings import gate_settings
from gastown.refinery.settings import RefinerySettings, resolve_settings
from gastown.states import IssueStatus, MRState

log = logger(__name__)

MAX_RACE_REDOS = 3  # rounds redone in one run_once when the upstream keeps moving
ERROR_BACKOFF_S = 300.0  # an unexpected failure holds the queue this long
HOLD_PROBE_INTERVAL_S = 30.0  # how often a held rig asks the upstream whether its target moved
_last_probe: dict[tuple[str, str], float] = {}


@dataclass
class RoundReport:
    """What one ``run_once`` did. ``outcome``: ``idle`` (nothing queued), ``busy`` (another
    round holds the lock), ``held`` (the queue is on hold), or a round's outcome:
    ``merged``, ``pr`` (its MR handed to a GitHub pull request), ``nothing`` (no MR merged),
    ``raced`` (the upstream kept moving)."""

    rig: str
    outcome: str
    round_id: int | None = None
    base: str | None = None
    tip: str | None = None
    mrs: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    gate_runs: int = 0
    duration: float = 0.0
    log_path: str | None = None
    message: str = ""
    sent_back: list[fixes.SendBack] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "rig": self.rig, "outcome": self.outcome, "round": self.round_id, "base": self.base, "tip": self.tip,
            "mrs": self.mrs, "merged": self.merged, "conflicts": self.conflicts, "failed": self.failed,
            "requeued": self.requeued, "gate_runs": self.gate_runs, "duration": round(self.duration, 3),
            "log": self.log_path, "message": self.message, "sent_back": [s.to_json() for s in self.sent_back],
        }


@dataclass
class RecoveryReport:
    rig: str
    interrupted: list[int] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    sent_back: list[fixes.SendBack] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"rig": self.rig, "interrupted_rounds": self.interrupted, "merged": self.merged,
                "requeued": self.requeued, "sent_back": [s.to_json() for s in self.sent_back]}


class Refinery:
    """The merge queue of one rig. Cheap to make; make one per call or keep one.

    ``slinger`` sends failed work back (default: ``gastown.roles.polecat.sling``, resolved
    lazily); ``gate_runner`` runs the gates (default ``gates.run_gates``).
    """

    def __init__(
        self,
        ctx: Context,
        rig: str,
        *,
        slinger: fixes.Slinger | None = None,
        gate_runner: GateRunner = run_gates,
        hold_probe_interval: float = HOLD_PROBE_INTERVAL_S,
    ) -> None:
        self.ctx = ctx
        self.rig = rig
        self.settings: RefinerySettings = resolve_settings(ctx.config, rig)
        self.hub = ctx.town.hub_path(rig)
        self.worktree = RefineryWorktree(self.hub, ctx.town.refinery_path(rig))
        self.slinger = slinger
        self.gate_runner = gate_runner
        self.hold_probe_interval = hold_probe_interval
        self.log_dir = ctx.town.logs_dir / rig / "refinery"
        self.reviewed = gate_settings(ctx.config, rig) is not None  # only reviewed MRs join a batch
        github = ctx.config.rigs[rig].github if rig in ctx.config.rigs else None
        self.github = github if github is not None and github.merge == "pr" else None
        if self.github is not None:  # one MR per pull request: each is gated alone on the target
            self.settings = replace(self.settings, batch=1)

    @property
    def target(self) -> str:
        return self.settings.target

    @property
    def upstream_ref(self) -> str:
        """The hub's copy of the upstream target (``refs/remotes/origin/<target>``)."""
        return target_ref(self.target)

    @property
    def gate_marker(self) -> str:
        return gate_marker(self.ctx.town.root, self.rig)

    def stop_orphaned_gates(self) -> int:
        """Stop gates a dead refinery of this rig left running, if no live one holds the
        lock (then its gates are not orphans), and settle reviews whose process died
        (their reviewers stopped, their MRs queued again); returns how many gate
        processes were stopped."""
        from gastown.refinery.review.stage import recover_rig

        recover_rig(self.ctx, self.rig)
        try:
            with self.lock(0):
                return stop_orphaned_gates(self.gate_marker)
        except Conflict:
            return 0

    def lock(self, wait: float) -> AbstractContextManager[None]:
        return file_lock(self.ctx.town.locks_dir / f"refinery-{self.rig}.lock", timeout=wait,
                         what=f"the refinery lock of rig {self.rig!r}")

    # -- entry points --------------------------------------------------------------------

    def run_once(self, *, wait: float = 0.0) -> RoundReport:
        """Run one round, or report why not (``idle``, ``busy``, ``held``).

        Waits up to ``wait`` seconds for the lock. Raises ``GastownError`` when git or
        the ledger fails; the round's MRs are back in the queue (or, if its stack may
        have been pushed, left for ``recover``), and the queue is held for
        ``ERROR_BACKOFF_S`` with an escalation.
        """
        with ExitStack() as stack:
            try:
                stack.enter_context(self.lock(wait))
            except Conflict as exc:
                return RoundReport(self.rig, "busy", message=exc.message)
            self._require_hub()
            self._recover_locked(only_if_needed=True)
            report = self._round()
            for _ in range(MAX_RACE_REDOS):
                if report.outcome != "raced":
                    break
                report = self._round()
            if report.conflicts or report.failed:
                report.sent_back = self._send_back()
            return report
        raise AssertionError("unreachable")  # pragma: no cover

    def run_until_empty(
        self, *, wait: float = 0.0, on_round: Callable[[RoundReport], None] | None = None, review: bool = False,
    ) -> list[RoundReport]:
        """Run rounds until the queue is empty, held, busy or makes no progress.

        With ``review`` (`gt refinery run`), a rig with a review gate first reviews every
        queued MR that needs it (``max_reviews`` at a time, waiting for them), and again
        before each round; the Mayor leaves that to its review loop. Returns the rounds
        run, plus the final ``held``/``busy`` report if that is what stopped it.
        """
        reports: list[RoundReport] = []
        while True:
            if review and self.reviewed:
                from gastown.refinery.review.stage import ReviewStage

                ReviewStage(self.ctx, self.rig, slinger=self.slinger).run_all()
            report = self.run_once(wait=wait)
            if report.outcome == "idle":
                return reports
            reports.append(report)
            if on_round is not None:
                on_round(report)
            progress = report.merged or report.conflicts or report.failed or report.outcome == "pr"
            if report.outcome in ("busy", "held") or not progress:
                return reports

    def recover(self, *, wait: float = 30.0) -> RecoveryReport:
        """Clean up after a crash: reset the worktree, settle unfinished rounds, requeue
        MRs left ``testing``, send back what was never sent. Idempotent."""
        from gastown.refinery.review.stage import recover_rig

        recover_rig(self.ctx, self.rig)
        with self.lock(wait):
            self._require_hub()
            return self._recover_locked(only_if_needed=False)

    # -- one round -----------------------------------------------------------------------

    def _round(self) -> RoundReport:
        started = time.monotonic()
        conn = self.ctx.ledger.connection()
        if not self._next_batch(conn, limit=1):
            return RoundReport(self.rig, "idle")
        held = self._held()
        if held is not None:
            return RoundReport(self.rig, "held", message=held)
        fetch(self.hub)
        base = ref_sha(self.hub, self.upstream_ref)
        if base is None:
            raise GitError(f"the upstream of rig {self.rig!r} has no branch {self.target!r}",
                           hint="check the rig's branch in gastown.toml")
        fast_forward_ref(self.hub, f"refs/heads/{self.target}", base)
        self.worktree.ensure(base)
        report = RoundReport(self.rig, "nothing", base=base)
        taken, row = self._take(base, report)
        if row is None:
            report.duration = time.monotonic() - started
            return report
        report.round_id, report.mrs, report.log_path = row.id, [m.id for m in taken], row.log_path
        try:
            self._stack_and_gate(row, taken, base, report)
        except Exception as exc:
            self._abandon(row, exc)
            raise
        report.duration = time.monotonic() - started
        return report

    def _take(self, base: str, report: RoundReport) -> tuple[list[MR], rounds.Round | None]:
        """Mark the next batch ``testing`` and write the round row (before any git)."""
        conn = self.ctx.ledger.connection()
        candidates = self._next_batch(conn, limit=self.settings.batch)
        missing = missing_commits(self.hub, [m.commit_sha for m in candidates])
        taken: list[MR] = []
        with self.ctx.ledger.write() as conn:
            now = self.ctx.now()
            for mr in candidates:
                if get_mr(conn, mr.id).state != MRState.QUEUED:
                    continue  # rejected meanwhile
                fresh = set_mr_state(conn, mr.id, MRState.TESTING, now=now, count_attempt=True)
                if mr.commit_sha in missing:
                    detail = f"commit {mr.commit_sha[:12]} is not in the rig's hub (its branch was reset before it was pinned)"
                    set_mr_state(conn, mr.id, MRState.FAILED, now=now, detail=detail)
                    self._event(conn, "failed", f"{mr.id} failed: {detail}", mr)
                    report.failed.append(mr.id)
                    continue
                taken.append(fresh)
            if not taken:
                return taken, None
            row = rounds.insert_round(conn, rig=self.rig, base_sha=base, batch=[m.id for m in taken], now=now,
                                      log_dir=str(self.log_dir))
        return taken, row

    def _next_batch(self, conn: Any, *, limit: int) -> list[MR]:
        """The next ``limit`` queued MRs a round may take, in queue order: with a review gate,
        only approved ones (``review.policy.batchable``), so MRs still in review never hold
        up the rest."""
        if not self.reviewed:
            return next_batch(conn, self.rig, limit=limit, now=self.ctx.now())
        from gastown.ledger.reviews import latest_for_mrs
        from gastown.refinery.review.policy import batchable

        queued = queue_order(list_mrs(conn, self.rig, [MRState.QUEUED]), self.ctx.now())
        return batchable(queued, latest_for_mrs(conn, [m.id for m in queued]), gated=True)[:limit]

    def _stack_and_gate(self, row: rounds.Round, taken: list[MR], base: str, report: RoundReport) -> None:
        stacker = _Stacker(self, row, base, {m.id: m for m in taken}, report)
        plan = BisectPlan(stacker.initial_stack())
        failed_marked = 0
        while not isinstance(plan.step, Finish):
            step = plan.step
            if isinstance(step, GateBase):
                stacker.checkout_base()
                run = self._gate(row, (), f"round {row.id}: the bare target {base[:12]} (check {step.attempt})")
            else:
                dropped = stacker.build(step.mrs)
                if dropped is not None:
                    plan.drop(dropped)
                    continue
                run = self._gate(row, step.mrs, f"round {row.id}: {step.why}: {len(step.mrs)} MR(s): {' '.join(step.mrs)}")
                stacker.runs[step.mrs] = run
            plan.record(run.ok)
            for blame in plan.culprits[failed_marked:]:
                self._mark_failed(row, stacker.items[blame.mr], stacker.runs[blame.evidence], report)
            failed_marked = len(plan.culprits)
        finish = plan.step
        report.gate_runs = plan.runs
        if finish.hold is not None:
            self._hold_broken_base(row, base, finish, report)
            stacker.checkout_base()
        elif finish.merge:
            self._land(row, base, finish.merge, stacker.shas, report)
        else:
            with self.ctx.ledger.write() as conn:
                rounds.finish_round(conn, row.id, "nothing", now=self.ctx.now())
            stacker.checkout_base()

    def _gate(self, row: rounds.Round, stack: tuple[str, ...], header: str) -> GateRun:
        run = self.gate_runner(
            self.settings.gates, cwd=self.worktree.path, timeout=self.settings.gate_timeout,
            env=gate_env(self.ctx.config.without_secrets(self.ctx.environ), rig=self.rig, round_id=row.id,
                         marker=self.gate_marker),
            log_path=Path(row.log_path or ""),
            header=header,
        )
        with self.ctx.ledger.write() as conn:
            rounds.count_gate_run(conn, row.id)
            verdict = "green" if run.ok else f"red ({run.failed_gate})"
            what = f"{len(stack)} MR(s)" if stack else "the bare target"
            record_event(conn, "gate", f"round {row.id}: {verdict} on {what} in {run.duration:.1f}s", now=self.ctx.now(),
                         rig=self.rig, data={"round": row.id, "mrs": list(stack), "ok": run.ok, "gate": run.failed_gate})
        return run

    # -- verdicts ------------------------------------------------------------------------

    def _land(self, row: rounds.Round, base: str, merge: tuple[str, ...], shas: dict[tuple[str, ...], str],
              report: RoundReport) -> None:
        """Push the gated stack ``merge``, verify it, and record the MRs merged (or, with
        ``merge = "pr"``, hand it to its pull request)."""
        if self.github is not None:
            self._hand_to_pull_request(row, base, merge, shas, report)
            return
        tip = shas[merge]
        merging = [(mr_id, shas[merge[: i + 1]]) for i, mr_id in enumerate(merge)]
        with self.ctx.ledger.write() as conn:
            rounds.set_round_plan(conn, row.id, tip=tip, merging=merging)
        report.tip = tip
        pushed = push_tip(self.hub, tip, self.target)
        if not pushed.ok:
            fetch(self.hub)
            if ref_sha(self.hub, self.upstream_ref) != base:
                self._requeue_raced(row, merge, report)
                return
            raise GitError(f"pushing to the upstream's {self.target} failed: {pushed.message}",
                           hint="check your push access to the upstream, then `gt refinery release " + self.rig + "`")
        upstream = remote_sha(self.hub, self.target)
        if upstream != tip:
            fetch(self.hub)
            if not is_ancestor(self.hub, tip, self.upstream_ref):
                raise GitError(f"the push of {tip[:12]} to the upstream's {self.target} could not be verified "
                               f"(the upstream has {upstream[:12]})", hint="look at the upstream's history")
        self._settle_merged(row, merging, tip)
        report.outcome = "merged"
        report.merged = list(merge)

    def _hand_to_pull_request(self, row: rounds.Round, base: str, merge: tuple[str, ...],
                              shas: dict[tuple[str, ...], str], report: RoundReport) -> None:
        """``merge = "pr"``: push the gated MR to ``gastown/<issue>`` and open or update its
        pull request; GitHub merges it (followed by ``github.pulls.follow_rig``). The round
        plan is recorded first, as for a push: a crash before the PR is recorded requeues
        the MR, and doing it again updates the same PR."""
        from gastown.github import connect
        from gastown.github.pulls import open_or_update

        assert self.github is not None and len(merge) == 1, "a pull request carries one MR"
        mr_id, tip = merge[0], shas[merge]
        with self.ctx.ledger.write() as conn:
            rounds.set_round_plan(conn, row.id, tip=tip, merging=[(mr_id, tip)])
        report.tip = tip
        repo = connect(self.ctx, self.rig)
        try:
            pr = open_or_update(self.ctx, self.rig, repo, self.github, get_mr(self.ctx.ledger.connection(), mr_id), tip,
                                base=base, target=self.target, gates=self.settings.gates, round_id=row.id)
        finally:
            repo.client.close()
        with self.ctx.ledger.write() as conn:
            rounds.finish_round(conn, row.id, "pr", now=self.ctx.now())
        report.outcome, report.message = "pr", f"{mr_id} is in pull request #{pr.number}"
        self.worktree.reset(base)
        from gastown.github.desk import wake_topic
        from gastown.wake import wake

        wake(self.ctx.town, wake_topic(self.rig))  # the rig's GitHub loop follows the new PR at once

    def _settle_merged(self, row: rounds.Round, merging: list[tuple[str, str]] | tuple[tuple[str, str], ...],
                       tip: str) -> list[str]:
        """The stack ``tip`` is on the upstream: MRs merged, issues closed, branches archived."""
        merged: list[str] = []
        with self.ctx.ledger.write() as conn:
            now = self.ctx.now()
            for mr_id, sha in merging:
                mr = get_mr(conn, mr_id)
                if mr.state != MRState.TESTING:
                    continue  # already settled (recovery ran twice)
                set_mr_state(conn, mr_id, MRState.MERGED, now=now, merged_sha=sha,
                             detail=f"merged into {self.target} in round {row.id}")
                issue = find_issue(conn, mr.issue)
                if issue is not None and issue.status != IssueStatus.CLOSED:
                    set_issue_status(conn, mr.issue, IssueStatus.CLOSED, now=now, reason=f"merged in {mr_id}")
                retire_for_issue(conn, mr.issue, SENT_BACK_STATES, detail=f"retired: {mr_id} of the same issue merged",
                                 now=now)
                self._event(conn, "merged", f"{mr_id} merged into {self.target} as {sha[:12]}", mr,
                            round_id=row.id, sha=sha)
                merged.append(mr_id)
            rounds.finish_round(conn, row.id, "merged", now=now)
        self._after_merge(merging, tip)
        return merged

    def _after_merge(self, merging: list[tuple[str, str]] | tuple[tuple[str, str], ...], tip: str) -> None:
        """Git housekeeping after a merge; failures are logged, never raised (the merge stands)."""
        try:
            fast_forward_ref(self.hub, self.upstream_ref, tip)
            fast_forward_ref(self.hub, f"refs/heads/{self.target}", tip)
            conn = self.ctx.ledger.connection()
            archive_branches(self.hub, [get_mr(conn, mr_id).branch for mr_id, _ in merging])
            unpin_mr_commits(self.hub, [mr_id for mr_id, _ in merging])
            self.worktree.reset(tip)
        except GastownError as exc:
            log.warning("refinery %s: housekeeping after a merge failed: %s", self.rig, exc)

    def _requeue_raced(self, row: rounds.Round, merge: tuple[str, ...], report: RoundReport) -> None:
        with self.ctx.ledger.write() as conn:
            rounds.set_round_plan(conn, row.id, tip=None, merging=[])
            self._requeue(conn, merge, f"requeued: the upstream's {self.target} moved during round {row.id}")
            rounds.finish_round(conn, row.id, "raced", now=self.ctx.now())
        report.outcome, report.tip = "raced", None
        report.requeued = list(merge)

    def _hold_broken_base(self, row: rounds.Round, base: str, finish: Finish, report: RoundReport) -> None:
        reason = (f"the target {self.target} at {base[:12]} fails its gates with no merge request on it "
                  f"(round {row.id}, log {row.log_path})")
        with self.ctx.ledger.write() as conn:
            now = self.ctx.now()
            rounds.set_hold(conn, self.rig, reason=reason, now=now)
            self._requeue(conn, finish.requeue, f"requeued: the target is red (round {row.id})")
            rounds.finish_round(conn, row.id, "held", now=now)
            record_event(conn, "hold", f"refinery of rig {self.rig} on hold: {reason}", now=now, rig=self.rig,
                         data={"round": row.id, "base": base})
            raise_escalation(self.ctx.ledger, f"the merge queue of rig {self.rig} is on hold: {reason}", severity="high",
                             source="refinery", rig=self.rig, cause=cause_hold(HoldScope.refinery(self.rig)))
        report.outcome, report.message = "held", reason
        report.requeued = list(finish.requeue)

    def _mark_conflict(self, row: rounds.Round, mr: MR, conflict: Conflicted, stacked: int, report: RoundReport) -> None:
        where = f"{self.target} and the {stacked} MR(s) stacked before it" if stacked else self.target
        files = ", ".join(conflict.files)
        detail = f"conflicts with {where} in: {files}" if files else f"does not apply on {where}: {conflict.message}"
        with self.ctx.ledger.write() as conn:
            set_mr_state(conn, mr.id, MRState.CONFLICT, now=self.ctx.now(), detail=detail)
            self._event(conn, "conflict", f"{mr.id} {detail}", mr, round_id=row.id, files=list(conflict.files))
        report.conflicts.append(mr.id)

    def _mark_failed(self, row: rounds.Round, mr: MR, evidence: GateRun, report: RoundReport) -> None:
        detail = evidence.excerpt()
        with self.ctx.ledger.write() as conn:
            set_mr_state(conn, mr.id, MRState.FAILED, now=self.ctx.now(), detail=detail, gate_log=row.log_path)
            self._event(conn, "failed", f"{mr.id} failed the gates ({evidence.failed_gate})", mr, round_id=row.id,
                        gate=evidence.failed_gate, log=row.log_path)
        report.failed.append(mr.id)

    def _requeue(self, conn: Any, mr_ids: tuple[str, ...] | list[str], detail: str) -> list[str]:
        done = []
        for mr_id in mr_ids:
            if get_mr(conn, mr_id).state == MRState.TESTING:
                set_mr_state(conn, mr_id, MRState.QUEUED, now=self.ctx.now(), detail=detail)
                done.append(mr_id)
        return done

    # -- holds, errors, recovery ---------------------------------------------------------

    def _held(self) -> str | None:
        """The hold's reason if the queue is held; clears a hold that expired or whose
        target moved (probing the upstream at most every ``hold_probe_interval``)."""
        conn = self.ctx.ledger.connection()
        hold = rounds.get_hold(conn, self.rig)
        if hold is None:
            return None
        now = self.ctx.now()
        if hold.until is not None and hold.until <= now:
            self._release(f"the hold expired ({hold.reason})")
            return None
        held_round = rounds.last_round(conn, self.rig, outcome="held")
        if held_round is None or held_round.base_sha is None or (held_round.ended_at or 0) < hold.created_at:
            return hold.reason
        key = (str(self.ctx.town.root), self.rig)
        if now - _last_probe.get(key, float("-inf")) < self.hold_probe_interval:
            return hold.reason
        _last_probe[key] = now
        current = remote_sha(self.hub, self.target)
        if current != held_round.base_sha:
            self._release(f"the target moved to {current[:12]} since the hold")
            return None
        return hold.reason

    def _release(self, why: str) -> None:
        with self.ctx.ledger.write() as conn:
            if rounds.clear_hold(conn, self.rig):
                record_event(conn, "resume", f"refinery of rig {self.rig} resumed: {why}", now=self.ctx.now(), rig=self.rig)

    def _abandon(self, row: rounds.Round, exc: Exception) -> None:
        """A round failed unexpectedly: settle it as far as is safe, hold the queue a while."""
        try:
            fresh = rounds.get_round(self.ctx.ledger.connection(), row.id)
            if fresh.tip is not None:  # the stack may have been pushed: ask the upstream
                landed, _ = self._settle_round(fresh, outcome="error")
                if landed:
                    return
            else:
                with self.ctx.ledger.write() as conn:
                    self._requeue(conn, fresh.batch, f"requeued: round {row.id} failed: {exc}")
                    rounds.finish_round(conn, row.id, "error", now=self.ctx.now())
            previous = rounds.list_rounds(self.ctx.ledger.connection(), self.rig, limit=2)
            first_error = not (len(previous) > 1 and previous[1].outcome == "error")
            with self.ctx.ledger.write() as conn:
                now = self.ctx.now()
                reason = f"round {row.id} failed: {exc}"
                rounds.set_hold(conn, self.rig, reason=reason, now=now, until=now + ERROR_BACKOFF_S)
                record_event(conn, "hold", f"refinery of rig {self.rig} paused: {reason}", now=now, rig=self.rig)
                if first_error:
                    raise_escalation(self.ctx.ledger, f"the merge queue of rig {self.rig} failed: {reason}",
                                     severity="high", source="refinery", rig=self.rig,
                                     cause=cause_hold(HoldScope.refinery(self.rig)))
            self.worktree.reset(row.base_sha or "HEAD")
        except Exception as cleanup_exc:  # noqa: BLE001 - recovery will finish the job
            log.warning("refinery %s: cleanup after a failed round did not finish: %s", self.rig, cleanup_exc)

    def _recover_locked(self, *, only_if_needed: bool) -> RecoveryReport:
        conn = self.ctx.ledger.connection()
        report = RecoveryReport(self.rig)
        unfinished = rounds.unfinished_rounds(conn, self.rig)
        testing = list_mrs(conn, self.rig, [MRState.TESTING])
        if only_if_needed and not unfinished and not testing:
            return report
        stopped = stop_orphaned_gates(self.gate_marker)
        if stopped:
            log.warning("refinery %s: stopped %d gate process(es) an interrupted round left running", self.rig, stopped)
        self.worktree.scrub()
        for row in unfinished:
            landed, mr_ids = self._settle_round(row)
            if landed:
                report.merged.extend(mr_ids)
            else:
                report.interrupted.append(row.id)
                report.requeued.extend(mr_ids)
        with self.ctx.ledger.write() as conn:
            leftovers = [m.id for m in list_mrs(conn, self.rig, [MRState.TESTING])]
            report.requeued += self._requeue(conn, leftovers, "requeued: its round was interrupted")
        if not only_if_needed:
            report.sent_back = self._send_back()
        return report

    def _settle_round(self, row: rounds.Round, *, outcome: str = "interrupted") -> tuple[bool, list[str]]:
        """Finish an unfinished round: ``(True, merged MRs)`` if its tip reached the
        upstream, else ``(False, requeued MRs)`` with the round closed as ``outcome``."""
        if row.tip is not None:
            fetch(self.hub)
            upstream = ref_sha(self.hub, self.upstream_ref)
            if upstream and ref_sha(self.hub, row.tip) and is_ancestor(self.hub, row.tip, upstream):
                return True, self._settle_merged(row, row.merging, row.tip)
        with self.ctx.ledger.write() as conn:
            requeued = self._requeue(conn, row.batch, f"requeued: round {row.id} was {outcome}")
            rounds.finish_round(conn, row.id, outcome, now=self.ctx.now())
            record_event(conn, "refinery", f"round {row.id} ended ({outcome}); {len(requeued)} MR(s) queued again",
                         now=self.ctx.now(), rig=self.rig, data={"round": row.id, "requeued": requeued})
        return False, requeued

    def _send_back(self) -> list[fixes.SendBack]:
        return fixes.send_back_pending(self.ctx, self.rig, target=self.target,
                                       max_fix_cycles=self.settings.max_fix_cycles, slinger=self.slinger)

    def _require_hub(self) -> None:
        if not self.hub.is_dir():
            raise NotFound(f"rig {self.rig!r} has no hub at {self.hub}",
                           hint=f"remove and re-add the rig: `gt rig remove {self.rig}`, `gt rig add {self.rig} REPO`")

    def _event(self, conn: Any, kind: str, message: str, mr: MR, **data: Any) -> None:
        record_event(conn, kind, message, now=self.ctx.now(), rig=self.rig, polecat=mr.polecat, spawn=mr.spawn,
                     issue=mr.issue, data={"mr": mr.id, **data})


class _Stacker:
    """Builds stacks in the worktree, reusing every prefix built before in the round.

    ``shas[stack]`` is the commit of base + stack; a prefix is built once per round, so
    each MR has exactly one commit on any stack that is pushed.
    """

    def __init__(self, refinery: Refinery, row: rounds.Round, base: str, items: dict[str, MR], report: RoundReport) -> None:
        self.refinery = refinery
        self.row = row
        self.base = base
        self.items = items
        self.report = report
        self.shas: dict[tuple[str, ...], str] = {(): base}
        self.runs: dict[tuple[str, ...], GateRun] = {}
        self._clean: tuple[str, ...] | None = None  # the stack checked out and untouched by gates

    def initial_stack(self) -> tuple[str, ...]:
        """Stack every MR of the round on the base; conflicting ones are marked and left out."""
        wt = self.refinery.worktree
        wt.reset(self.base)
        stack: tuple[str, ...] = ()
        for mr_id in self.items:
            if self._apply(stack, mr_id):
                stack = stack + (mr_id,)
        self._clean = stack
        return stack

    def build(self, stack: tuple[str, ...]) -> str | None:
        """Check out base + ``stack``, clean; returns an MR that conflicted (left out) or None."""
        if self._clean == stack:
            self._clean = None  # the gates are about to run in it
            return None
        self._clean = None
        known = max((k for k in range(len(stack) + 1) if stack[:k] in self.shas), default=0)
        self.refinery.worktree.reset(self.shas[stack[:known]])
        for i in range(known, len(stack)):
            if not self._apply(stack[:i], stack[i]):
                return stack[i]
        return None

    def checkout_base(self) -> None:
        self.refinery.worktree.reset(self.base)
        self._clean = None

    def _apply(self, prefix: tuple[str, ...], mr_id: str) -> bool:
        mr = self.items[mr_id]
        result = self.refinery.worktree.apply(
            MergeItem(mr.id, mr.commit_sha, mr.branch, mr.issue), base=self.base, onto=self.shas[prefix],
            strategy=self.refinery.settings.merge,
        )
        if isinstance(result, Conflicted):
            self.refinery._mark_conflict(self.row, mr, result, len(prefix), self.report)
            return False
        self.shas[prefix + (mr_id,)] = result.head
        return True


def run_once(ctx: Context, rig: str, *, slinger: fixes.Slinger | None = None, wait: float = 0.0) -> RoundReport:
    """One round of ``rig``'s merge queue (see ``Refinery.run_once``)."""
    return Refinery(ctx, rig, slinger=slinger).run_once(wait=wait)


def run_until_empty(
    ctx: Context, rig: str, *, slinger: fixes.Slinger | None = None, wait: float = 0.0,
    on_round: Callable[[RoundReport], None] | None = None, review: bool = False,
) -> list[RoundReport]:
    """Rounds until ``rig``'s queue is empty or held (see ``Refinery.run_until_empty``)."""
    return Refinery(ctx, rig, slinger=slinger).run_until_empty(wait=wait, on_round=on_round, review=review)


def recover(ctx: Context, rig: str, *, slinger: fixes.Slinger | None = None, wait: float = 30.0) -> RecoveryReport:
    """Crash recovery for ``rig``'s refinery (see ``Refinery.recover``)."""
    return Refinery(ctx, rig, slinger=slinger).recover(wait=wait)
