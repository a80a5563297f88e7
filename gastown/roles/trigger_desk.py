"""The Mayor's trigger desk: fire due schedules, sling captured requests, settle finished ones.

One loop of the Mayor (``triggers``, woken by the server after each request), each step:

1. every configured trigger has its ledger row (its URL token is made the first time);
2. each schedule whose latest slot is after the last one fired fires ONCE, however many
   slots passed while the town was down (a paused schedule skips its slots);
3. each captured request's issue is put in the sling queue (so the scheduler's caps,
   holds, budgets and its retry-and-park rule apply) and the request is ``in_progress``;
4. each request in progress whose issue merged, was closed or was parked is settled
   (``triggers.policy.settle``), and old history is pruned (100 requests per trigger).

The decisions are pure (``cron.due_slot``, ``policy.settle``); this module gathers and acts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gastown._internal.log import logger
from gastown.context import Context
from gastown.errors import GastownError
from gastown.ledger import mrs, queue
from gastown.ledger import triggers as trigger_rows
from gastown.ledger.events import record_event
from gastown.ledger.issues import find_issue
from gastown.roles.intake import Captured, capture
from gastown.states import IssueStatus, MRState, RequestState
from gastown.triggers.cron import Schedule, due_slot
from gastown.triggers.policy import IssueFate, Refuse, settle
from gastown.triggers.template import RequestFacts, iso_utc

log = logger(__name__)


@dataclass
class DeskReport:
    """What one step did (for tests and the log)."""

    fired: list[str] = field(default_factory=list)  # requests made by schedules
    skipped: list[str] = field(default_factory=list)  # schedule slots not fired, with why
    queued: list[str] = field(default_factory=list)  # requests whose issue was queued
    settled: list[str] = field(default_factory=list)  # requests that finished


@dataclass
class TriggerDesk:
    ctx: Context

    def step(self) -> DeskReport:
        report = DeskReport()
        self.ensure_rows()
        for name, cfg in sorted(self.ctx.config.triggers.items()):
            if cfg.kind == "schedule":
                try:
                    self.fire_if_due(name, report)
                except GastownError as exc:  # one trigger's trouble never stops the others
                    log.warning("triggers: schedule %s failed: %s", name, exc)
        self.dispatch(report)
        self.settle(report)
        return report

    def ensure_rows(self) -> None:
        names = set(self.ctx.config.triggers)
        if not names:
            return
        have = set(trigger_rows.trigger_states(self.ctx.ledger.connection()))
        if names - have:
            with self.ctx.ledger.write() as conn:
                for name in sorted(names - have):
                    trigger_rows.ensure_trigger(conn, name, now=self.ctx.now())

    # -- schedules ----------------------------------------------------------------------

    def fire_if_due(self, name: str, report: DeskReport) -> None:
        """Fire the schedule's latest slot if it has not fired yet (once, however many passed)."""
        cfg = self.ctx.config.triggers[name]
        assert cfg.schedule is not None
        now = self.ctx.now()
        state = trigger_rows.get_trigger(self.ctx.ledger.connection(), name)
        if state is None:
            return
        slot = due_slot(Schedule.parse(cfg.schedule, cfg.timezone), state.last_slot, now)
        if slot is None:
            return
        if state.paused:
            with self.ctx.ledger.write() as conn:
                trigger_rows.set_last_slot(conn, name, slot)
            report.skipped.append(f"{name}@{iso_utc(slot)}: paused")
            return
        facts = RequestFacts(received_at=now, method="SCHEDULE", scheduled_at=slot)
        result = capture(
            self.ctx, name, facts, source="schedule", delivery=f"schedule:{iso_utc(slot)}",
            after=lambda conn: trigger_rows.set_last_slot(conn, name, slot),
        )
        if isinstance(result, Refuse):
            with self.ctx.ledger.write() as conn:
                trigger_rows.set_last_slot(conn, name, slot)  # a refused slot is skipped, not retried forever
                record_event(conn, "trigger", f"{name}: skipped the {iso_utc(slot)} run: {result.message}",
                             now=self.ctx.now(), rig=cfg.rig, data={"trigger": name})
            report.skipped.append(f"{name}@{iso_utc(slot)}: {result.message}")
        elif isinstance(result, Captured) and not result.replayed:
            report.fired.append(result.request)

    # -- captured -> in progress --------------------------------------------------------

    def dispatch(self, report: DeskReport) -> None:
        captured = trigger_rows.requests_in_state(self.ctx.ledger.connection(), RequestState.CAPTURED)
        if not captured:
            return
        for request in captured:
            try:
                self._queue(request, report)
            except GastownError as exc:
                log.warning("triggers: request %s could not be queued: %s", request.id, exc)
        from gastown.wake import wake

        wake(self.ctx.town, "scheduler")

    def _queue(self, request: trigger_rows.Request, report: DeskReport) -> None:
        cfg = self.ctx.config.triggers.get(request.trigger)
        with self.ctx.ledger.write() as conn:
            now = self.ctx.now()
            issue = find_issue(conn, request.issue) if request.issue else None
            problem = None
            if issue is None:
                problem = "its issue no longer exists"
            elif issue.status == IssueStatus.CLOSED:
                problem = "its issue was closed before it started"
            elif issue.rig not in self.ctx.config.rigs:
                problem = f"rig {issue.rig} is no longer in gastown.toml"
            if problem is not None:
                trigger_rows.move_request(conn, request.id, RequestState.FAILED, now=now, outcome=problem)
                record_event(conn, "trigger", f"{request.trigger}: request {request.id} failed: {problem}", now=now,
                             issue=request.issue, data={"trigger": request.trigger, "request": request.id})
                report.settled.append(request.id)
                return
            assert issue is not None
            if issue.status == IssueStatus.OPEN:
                queue.enqueue(
                    conn, issue=issue.id, rig=issue.rig, polecat=None, agent=cfg.agent if cfg else None,
                    priority=issue.priority, kind="fresh", start_point=None, note=None, now=now,
                )
            trigger_rows.move_request(conn, request.id, RequestState.IN_PROGRESS, now=now)
            record_event(conn, "trigger", f"{request.trigger}: request {request.id} queued {issue.id} for rig {issue.rig}",
                         now=now, rig=issue.rig, issue=issue.id, data={"trigger": request.trigger, "request": request.id})
        report.queued.append(request.id)

    # -- in progress -> success | failed ------------------------------------------------

    def settle(self, report: DeskReport) -> None:
        conn = self.ctx.ledger.connection()
        running = trigger_rows.requests_in_state(conn, RequestState.IN_PROGRESS)
        finished: set[str] = set()
        for request in running:
            fate, latest_mr = self._fate(request)
            verdict = settle(fate)
            if verdict is None:
                if latest_mr is not None and latest_mr != request.mr:
                    with self.ctx.ledger.write() as conn:
                        trigger_rows.set_request_mr(conn, request.id, latest_mr)
                continue
            with self.ctx.ledger.write() as conn:
                now = self.ctx.now()
                trigger_rows.move_request(conn, request.id, RequestState(verdict.state), now=now,
                                          outcome=verdict.outcome, mr=verdict.mr or latest_mr)
                record_event(conn, "trigger", f"{request.trigger}: request {request.id} {verdict.state}: {verdict.outcome}",
                             now=now, issue=request.issue,
                             data={"trigger": request.trigger, "request": request.id, "state": verdict.state})
            report.settled.append(request.id)
            finished.add(request.trigger)
        if finished:
            with self.ctx.ledger.write() as conn:
                for name in finished:
                    trigger_rows.prune_requests(conn, name)
                trigger_rows.prune_deliveries(conn, now=self.ctx.now())

    def _fate(self, request: trigger_rows.Request) -> tuple[IssueFate, str | None]:
        conn = self.ctx.ledger.connection()
        issue = find_issue(conn, request.issue) if request.issue else None
        if issue is None:
            return IssueFate(False), None
        latest = mrs.latest_for_issue(conn, issue.id)
        merged = (latest.id, latest.merged_sha or latest.commit_sha) if latest and latest.state == MRState.MERGED else None
        return IssueFate(True, str(issue.status), issue.close_reason, merged), latest.id if latest else None
