"""The Deacon's policy: a pure ``assess(snapshot, now, policy) -> actions``.

No I/O here. The Deacon (``deacon.py``) gathers the snapshot (the Mayor's loop
heartbeats, one tmux query for gastown-tagged panes, ledger rows, a directory listing
or two), calls ``assess``, and applies the actions, re-checking each destructive one
right before it acts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gastown.states import ACTIVE_SPAWN_STATUSES, SpawnStatus


@dataclass(frozen=True)
class DeaconPolicy:
    idle_reap_after: float = 600.0  # a finished agent still in its pane this long is ended
    launch_file_age: float = 600.0  # a launch file nobody read in this long is stale
    home_age: float = 600.0  # a finished run's private home is kept this long after its last usage read
    escalation_age: float = 4 * 3600.0  # an unacknowledged escalation this old goes up one severity
    backup_every: float = 6 * 3600.0  # how often the ledger is copied to .gastown/backups


@dataclass(frozen=True)
class TaggedPane:
    pane_id: str
    where: str  # session:window, for the event
    spawn: str


@dataclass(frozen=True)
class Finished:
    spawn: str
    rig: str
    polecat: str
    done_at: float | None


@dataclass(frozen=True)
class EndedRun:
    """A run whose usage was read a last time; its private home may go once it is old."""

    spawn: str
    ended_at: float


@dataclass(frozen=True)
class LostWorktree:
    rig: str
    path: str
    target: str


@dataclass(frozen=True)
class OpenEscalation:
    id: str
    created_at: float


@dataclass(frozen=True)
class DeaconSnapshot:
    stale_loops: tuple[str, ...] = ()
    tagged_panes: tuple[TaggedPane, ...] = ()
    spawn_status: Mapping[str, SpawnStatus] = field(default_factory=dict)  # of the tagged panes' spawns
    finished: tuple[Finished, ...] = ()  # spawns in status done
    launch_files: Mapping[str, float] = field(default_factory=dict)  # path -> mtime
    ended_runs: tuple[EndedRun, ...] = ()  # with a private home still on disk
    lost_worktrees: tuple[LostWorktree, ...] = ()
    open_escalations: tuple[OpenEscalation, ...] = ()  # never aged
    convoys_due: bool = False  # a convoy is due to land or to reopen
    last_backup_at: float | None = None


# -- actions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RestartLoop:
    name: str


@dataclass(frozen=True)
class CloseWindow:
    pane_id: str
    where: str
    spawn: str


@dataclass(frozen=True)
class EndFinished:
    spawn: str
    rig: str
    polecat: str


@dataclass(frozen=True)
class RemoveLaunchFile:
    path: str


@dataclass(frozen=True)
class RemoveHome:
    spawn: str


@dataclass(frozen=True)
class ReapWorktree:
    rig: str
    path: str
    target: str


@dataclass(frozen=True)
class AgeEscalation:
    id: str


@dataclass(frozen=True)
class LandConvoys:
    pass


@dataclass(frozen=True)
class BackupLedger:
    pass


Action = (
    RestartLoop | CloseWindow | EndFinished | RemoveLaunchFile | RemoveHome | ReapWorktree | AgeEscalation
    | LandConvoys | BackupLedger
)


def assess(snap: DeaconSnapshot, now: float, policy: DeaconPolicy) -> list[Action]:
    """Everything the Deacon should do this patrol, in the order it does it. Pure."""
    actions: list[Action] = [RestartLoop(name) for name in snap.stale_loops]
    for pane in snap.tagged_panes:
        status = snap.spawn_status.get(pane.spawn)
        if status is None or status not in ACTIVE_SPAWN_STATUSES:
            actions.append(CloseWindow(pane.pane_id, pane.where, pane.spawn))
    for run in snap.finished:
        if run.done_at is not None and now - run.done_at > policy.idle_reap_after:
            actions.append(EndFinished(run.spawn, run.rig, run.polecat))
    for path, mtime in sorted(snap.launch_files.items()):
        if now - mtime > policy.launch_file_age:
            actions.append(RemoveLaunchFile(path))
    for ended in snap.ended_runs:
        if now - ended.ended_at > policy.home_age:
            actions.append(RemoveHome(ended.spawn))
    actions += [ReapWorktree(w.rig, w.path, w.target) for w in snap.lost_worktrees]
    actions += [AgeEscalation(e.id) for e in snap.open_escalations if now - e.created_at > policy.escalation_age]
    if snap.convoys_due:
        actions.append(LandConvoys())
    if snap.last_backup_at is None or now - snap.last_backup_at >= policy.backup_every:
        actions.append(BackupLedger())
    return actions
