"""The Deacon: town-wide housekeeping that no single rig owns.

- loops whose heartbeat went stale are restarted (through the Mayor);
- orphans are reaped: gastown-tagged windows with no active spawn, stale launch files,
  worktrees of polecats the ledger no longer knows (archiving unmerged work first);
- escalations nobody acknowledged are aged (their severity goes up once);
- convoys whose issues are all closed are closed (they "land").

Never touches a window gastown did not tag, a process it did not start, or a commit
that is neither on the target nor archived.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gastown.context import Context
from gastown.errors import GastownError
from gastown.ledger import work
from gastown.ledger.escalations import SEVERITIES
from gastown.ledger.events import record_event
from gastown.roles import launch

log = logging.getLogger(__name__)

ESCALATION_AGE = 4 * 3600.0
LAUNCH_FILE_AGE = 600.0


@dataclass
class Deacon:
    ctx: Context
    stale_loops: Callable[[float], list[str]] = lambda now: []
    restart_loop: Callable[[str], None] = lambda name: None
    escalation_age: float = ESCALATION_AGE
    reaped: list[str] = field(default_factory=list)

    def patrol(self) -> None:
        now = self.ctx.now()
        for name in self.stale_loops(now):
            log.warning("deacon: loop %s has a stale heartbeat; restarting it", name)
            self._event("mayor", f"restarted loop {name}: its heartbeat went stale")
            self.restart_loop(name)
        self.reap_windows()
        self.reap_finished(now)
        self.reap_launch_files()
        self.reap_homes()
        self.reap_lost_worktrees()
        self.age_escalations(now)
        self.land_convoys()

    def _event(
        self, kind: str, message: str, *, rig: str | None = None, polecat: str | None = None, spawn: str | None = None
    ) -> None:
        with self.ctx.ledger.write() as conn:
            record_event(conn, kind, message, now=self.ctx.now(), rig=rig, polecat=polecat, spawn=spawn)

    def reap_windows(self) -> None:
        """Close gastown-tagged windows whose spawn is over (or unknown)."""
        panes = [p for p in self.ctx.tmux.list_panes() if p.spawn]
        if not panes:
            return
        conn = self.ctx.ledger.connection()
        for pane in panes:
            spawn = work.get_spawn(conn, pane.spawn or "")
            if spawn is not None and spawn.status in work.ACTIVE_STATUSES:
                continue
            if self.ctx.tmux.display(pane.pane_id, "#{@gt_spawn}") != pane.spawn:
                continue  # re-check: the pane was reused meanwhile
            launch.stop_pane(self.ctx.tmux, pane.pane_id, grace=2.0)
            self.reaped.append(pane.pane_id)
            self._event("reap", f"closed window {pane.session}:{pane.window} of finished run {pane.spawn}", spawn=pane.spawn)

    def reap_finished(self, now: float) -> None:
        """End agents that finished (`gt done`) but still sit in their pane past
        ``idle_reap_after`` (the Witness normally ends them within seconds)."""
        from gastown.roles.polecat import end_spawn

        cutoff = now - self.ctx.config.witness.idle_reap_after
        for spawn in work.spawns_with_status(self.ctx.ledger.connection(), ("done",)):
            if spawn.done_at is not None and spawn.done_at < cutoff:
                end_spawn(self.ctx, spawn.id, reason="finished and idle too long", grace=2.0)
                self._event("reap", f"ended {spawn.rig}/{spawn.polecat}: finished and idle", spawn=spawn.id)

    def reap_homes(self) -> None:
        """Private homes of finished runs hold copied credentials: removed once their usage is read."""
        from gastown.costs import reap_homes

        reap_homes(self.ctx)

    def reap_launch_files(self) -> None:
        launch_dir = self.ctx.town.run_dir / "launch"
        if not launch_dir.is_dir():
            return
        cutoff = time.time() - LAUNCH_FILE_AGE
        for path in launch_dir.glob("*.json*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass

    def reap_lost_worktrees(self) -> None:
        """Worktree directories whose polecat the ledger does not know: archive, then remove."""
        from gastown.git import worktrees as wt

        conn = self.ctx.ledger.connection()
        for rig, cfg in self.ctx.config.rigs.items():
            base = self.ctx.town.polecats_dir(rig)
            if not base.is_dir():
                continue
            known = set(work.polecat_names(conn, rig))
            for path in base.iterdir():
                if path.name in known or not wt.is_worktree(path):
                    continue
                try:
                    archived = wt.remove_worktree(self.ctx.town.hub_path(rig), path, target=cfg.branch, force=True)
                except GastownError as exc:
                    log.warning("deacon: cannot reap %s: %s", path, exc)
                    continue
                note = f"; its work is archived at {archived}" if archived else ""
                self._event("reap", f"removed the worktree of unknown polecat {path.name}{note}", rig=rig, polecat=path.name)

    def land_convoys(self) -> None:
        """Close convoys whose issues are all closed (cheap: one query when none is due)."""
        from gastown.convoys import close_finished

        close_finished(self.ctx)

    def age_escalations(self, now: float) -> None:
        conn = self.ctx.ledger.connection()
        rows = conn.execute(
            "SELECT id, severity, message, rig, issue FROM escalations"
            " WHERE acked_at IS NULL AND aged_at IS NULL AND created_at < ?",
            (now - self.escalation_age,),
        ).fetchall()
        for row in rows:
            level = SEVERITIES.index(row["severity"]) if row["severity"] in SEVERITIES else 1
            higher = SEVERITIES[min(level + 1, len(SEVERITIES) - 1)]
            with self.ctx.ledger.write() as conn:
                conn.execute("UPDATE escalations SET severity = ?, aged_at = ? WHERE id = ?", (higher, now, row["id"]))
                record_event(
                    conn, "escalation", f"{row['id']} unacknowledged for hours: now {higher}: {row['message']}",
                    now=now, rig=row["rig"], issue=row["issue"],
                )
