"""The Deacon: town-wide housekeeping that no single rig owns — gather, ``assess``, act.

- loops whose heartbeat went stale are restarted (through the Mayor);
- orphans are reaped: gastown-tagged windows with no active spawn, finished agents left
  in their pane, stale launch files, private homes of old runs, worktrees of polecats
  the ledger no longer knows (archiving unmerged work first);
- escalations nobody acknowledged are aged (their severity goes up once);
- convoys whose issues are all closed are closed (they "land");
- the ledger is backed up every few hours;
- the town's HTTP server is kept running while ``[server] enabled`` (started when it is
  gone, restarted when it stops answering, stopped when disabled).

The decisions are ``deacon_policy.assess``; this module gathers the snapshot and acts,
re-checking each destructive step right before it. Never touches a window gastown did
not tag, a process it did not start, or a commit that is neither on the target nor
archived.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gastown._internal.log import logger
from gastown.context import Context
from gastown.errors import GastownError
from gastown.ledger import convoys, escalations, work
from gastown.ledger import usage as usage_rows
from gastown.ledger.backups import last_backup_time, take_backup
from gastown.ledger.events import record_event
from gastown.ledger.holds import list_holds
from gastown.ledger.issues import find_issue
from gastown.ledger.mrs import stranded_in_review
from gastown.roles import deacon_policy as dp
from gastown.roles import launch
from gastown.states import SpawnStatus

log = logger(__name__)


@dataclass
class Deacon:
    ctx: Context
    stale_loops: Callable[[float], list[str]] = lambda now: []
    restart_loop: Callable[[str], None] = lambda name: None
    escalation_age: float = dp.DeaconPolicy.escalation_age
    reaped: list[str] = field(default_factory=list)
    server_started_at: float | None = None
    server_silent_since: float | None = None

    def policy(self) -> dp.DeaconPolicy:
        return dp.DeaconPolicy(idle_reap_after=self.ctx.config.witness.idle_reap_after,
                               escalation_age=self.escalation_age)

    def patrol(self) -> list[dp.Action]:
        """One patrol: returns the actions it took (for tests and the log)."""
        now = self.ctx.now()
        actions = dp.assess(self.gather(now), now, self.policy())
        for action in actions:
            try:
                self.apply(action)
            except GastownError as exc:  # one failed action never skips the rest
                log.warning("deacon: %s failed: %s", type(action).__name__, exc)
        return actions

    # -- gathering ----------------------------------------------------------------------

    def gather(self, now: float) -> dp.DeaconSnapshot:
        panes = [p for p in self.ctx.tmux.list_panes() if p.spawn]
        with self.ctx.ledger.read() as conn:
            statuses = {}
            for pane in panes:
                spawn = work.get_spawn(conn, pane.spawn or "")
                if spawn is not None:
                    statuses[spawn.id] = spawn.status
            finished = tuple(
                dp.Finished(s.id, s.rig, s.polecat, s.done_at)
                for s in work.spawns_with_status(conn, (SpawnStatus.DONE,))
            )
            ended = {s.id: s.ended_at or 0.0 for s in work.ended_spawns(conn)}
            final = usage_rows.finally_read_spawns(conn, ended_before=now)
            known = {rig: set(work.polecat_names(conn, rig)) for rig in self.ctx.config.rigs}
            aging = tuple(dp.OpenEscalation(e.id, e.created_at)
                          for e in escalations.due_for_ageing(conn, raised_before=now))
            convoys_due = bool(convoys.finished_open(conn) or convoys.unfinished_closed(conn))
            caused = tuple(dp.Caused(e.id, e.cause) for e in escalations.open_escalations(conn) if e.cause)
            named = {parsed[1] for c in caused if (parsed := escalations.parse_cause(c.cause))
                     and parsed[0] in ("blocked", "issue")}
            issue_status = {i: str(found.status) for i in named if (found := find_issue(conn, i)) is not None}
            held = frozenset(str(h.scope) for h in list_holds(conn) if h.active(now))
            stranded = tuple(dp.Stranded(m.issue, m.id, m.updated_at) for m in stranded_in_review(conn))
        homes = tuple(
            dp.EndedRun(spawn_id, ended[spawn_id]) for spawn_id in final
            if spawn_id in ended and launch.home_path(self.ctx.town, spawn_id).is_dir()
        )
        return dp.DeaconSnapshot(
            stale_loops=tuple(self.stale_loops(now)),
            tagged_panes=tuple(dp.TaggedPane(p.pane_id, f"{p.session}:{p.window}", p.spawn or "") for p in panes),
            spawn_status=statuses,
            finished=finished,
            launch_files=self._launch_files(),
            ended_runs=homes,
            lost_worktrees=self._lost_worktrees(known),
            open_escalations=aging,
            convoys_due=convoys_due,
            last_backup_at=last_backup_time(self.ctx.ledger),
            caused=caused,
            issue_status=issue_status,
            held=held,
            stranded=stranded,
            server=self._observe_server(now),
        )

    def _observe_server(self, now: float) -> dp.ServerObs:
        """Its process from its record and /proc; a /healthz probe only while it runs."""
        from gastown.roles import serving

        cfg = self.ctx.config.server
        record = serving.running_server(self.ctx.town)
        answering, moved = None, None
        if record is not None:
            health = serving.probe(record, serving.server_token(cfg, self.ctx.environ))
            answering = health.status is not None
            managed = any(pane.pid == record.pid for pane in serving.server_panes(self.ctx))
            if managed and (cfg.host != record.host or (cfg.port and cfg.port != record.port)):
                moved = f"{cfg.host}:{cfg.port}"  # one started by hand (`gt serve --port`) is left be
        if answering is False:
            self.server_silent_since = self.server_silent_since or now
        else:
            self.server_silent_since = None
        return dp.ServerObs(
            wanted=cfg.enabled, running=record is not None, answering=answering,
            silent_since=self.server_silent_since, moved=moved, last_start_at=self.server_started_at,
        )

    def _launch_files(self) -> dict[str, float]:
        launch_dir = self.ctx.town.run_dir / "launch"
        found = {}
        for path in launch_dir.glob("*.json*") if launch_dir.is_dir() else ():
            try:
                found[str(path)] = path.stat().st_mtime
            except OSError:
                continue
        return found

    def _lost_worktrees(self, known: dict[str, set[str]]) -> tuple[dp.LostWorktree, ...]:
        """Worktree directories whose polecat the ledger does not know."""
        from gastown.git import worktrees as wt

        lost = []
        for rig, cfg in self.ctx.config.rigs.items():
            base = self.ctx.town.polecats_dir(rig)
            if not base.is_dir():
                continue
            for path in sorted(base.iterdir()):
                if path.name not in known.get(rig, set()) and wt.is_worktree(path):
                    lost.append(dp.LostWorktree(rig, str(path), cfg.branch))
        return tuple(lost)

    # -- acting -------------------------------------------------------------------------

    def apply(self, action: dp.Action) -> None:
        if isinstance(action, dp.RestartLoop):
            log.warning("deacon: loop %s has a stale heartbeat; restarting it", action.name)
            self._event("mayor", f"restarted loop {action.name}: its heartbeat went stale")
            self.restart_loop(action.name)
        elif isinstance(action, dp.CloseWindow):
            self._close_window(action)
        elif isinstance(action, dp.EndFinished):
            self._end_finished(action)
        elif isinstance(action, dp.RemoveLaunchFile):
            Path(action.path).unlink(missing_ok=True)
        elif isinstance(action, dp.RemoveHome):
            self._remove_home(action.spawn)
        elif isinstance(action, dp.ReapWorktree):
            self._reap_worktree(action)
        elif isinstance(action, dp.AgeEscalation):
            with self.ctx.ledger.write() as conn:
                escalations.age_escalation(conn, action.id, now=self.ctx.now())
        elif isinstance(action, dp.LandConvoys):
            convoys.close_finished(self.ctx.ledger)
        elif isinstance(action, dp.BackupLedger):
            take_backup(self.ctx.ledger, now=self.ctx.now())
        elif isinstance(action, dp.StartServer):
            self._start_server(action)
        elif isinstance(action, dp.StopServer):
            from gastown.roles.serving import stop_server

            if stop_server(self.ctx, grace=5.0):
                self._event("mayor", f"server stopped: {action.reason}")
        elif isinstance(action, dp.ResolveEscalation):
            with self.ctx.ledger.write() as conn:
                escalations.resolve_escalation(conn, action.id, resolution=action.why, now=self.ctx.now())
        elif isinstance(action, dp.SendBackAgain):
            self._send_back_again(action)
        else:  # a new action the policy learned but the patrol did not: a bug, said loudly
            raise TypeError(f"the deacon cannot apply {type(action).__name__}")

    def _event(
        self, kind: str, message: str, *, rig: str | None = None, polecat: str | None = None, spawn: str | None = None
    ) -> None:
        with self.ctx.ledger.write() as conn:
            record_event(conn, kind, message, now=self.ctx.now(), rig=rig, polecat=polecat, spawn=spawn)

    def _start_server(self, action: dp.StartServer) -> None:
        from gastown.roles.serving import start_server, stop_server

        self.server_started_at = self.ctx.now()
        self.server_silent_since = None
        if action.restart:
            stop_server(self.ctx, grace=5.0)
        if start_server(self.ctx):
            log.warning("deacon: starting the server: %s", action.reason)
            self._event("mayor", f"server {'restarted' if action.restart else 'started'}: {action.reason}")

    def _close_window(self, action: dp.CloseWindow) -> None:
        """Close a gastown-tagged window whose spawn is over (or unknown), if it still is."""
        spawn = work.get_spawn(self.ctx.ledger.connection(), action.spawn)
        if spawn is not None and spawn.active:
            return  # it came back to life (a restart reused the pane)
        if self.ctx.tmux.display(action.pane_id, "#{@gt_spawn}") != action.spawn:
            return  # the pane was reused meanwhile
        launch.stop_pane(self.ctx.tmux, action.pane_id, grace=2.0)
        self.reaped.append(action.pane_id)
        self._event("reap", f"closed window {action.where} of finished run {action.spawn}", spawn=action.spawn)

    def _end_finished(self, action: dp.EndFinished) -> None:
        """End an agent that finished (`gt done`) but still sits in its pane (the Witness
        normally ends it within seconds)."""
        from gastown.roles.polecat import end_spawn

        spawn = work.get_spawn(self.ctx.ledger.connection(), action.spawn)
        if spawn is None or spawn.status != SpawnStatus.DONE:
            return
        end_spawn(self.ctx, action.spawn, reason="finished and idle too long", grace=2.0)
        self._event("reap", f"ended {action.rig}/{action.polecat}: finished and idle", spawn=action.spawn)

    def _send_back_again(self, action: dp.SendBackAgain) -> None:
        """An issue in review whose fix cycle was lost: send its newest MR back again, if it
        is still stranded (the refinery may have sent it meanwhile)."""
        from gastown.refinery.fixes import send_back_again

        with self.ctx.ledger.read() as conn:
            still = [m for m in stranded_in_review(conn) if m.id == action.mr]
        if still:
            outcome = send_back_again(self.ctx, still[0])
            log.warning("deacon: %s was in review with nothing on its way; %s", action.issue, outcome.message)

    def _remove_home(self, spawn_id: str) -> None:
        """A finished run's private home holds copied credentials: removed once its usage is read."""
        import shutil

        shutil.rmtree(launch.home_path(self.ctx.town, spawn_id), ignore_errors=True)

    def _reap_worktree(self, action: dp.ReapWorktree) -> None:
        """Archive a lost worktree's unmerged work, then remove it, if the polecat is still unknown."""
        from gastown.git import worktrees as wt

        path = Path(action.path)
        if os.path.basename(action.path) in work.polecat_names(self.ctx.ledger.connection(), action.rig):
            return  # the polecat was (re)made meanwhile
        if not wt.is_worktree(path):
            return
        archived = wt.remove_worktree(self.ctx.town.hub_path(action.rig), path, target=action.target, force=True)
        note = f"; its work is archived at {archived}" if archived else ""
        self._event("reap", f"removed the worktree of unknown polecat {path.name}{note}", rig=action.rig,
                    polecat=path.name)
