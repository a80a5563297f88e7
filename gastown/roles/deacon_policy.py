"""The Deacon's policy: a pure ``assess(snapshot, now, policy) -> actions``.

No I/O here. The Deacon (``deacon.py``) gathers the snapshot (the Mayor's loop
heartbeats, one tmux query for gastown-tagged panes, ledger rows, a directory listing
or two), calls ``assess``, and applies the actions, re-checking each destructive one
right before it acts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gastown.ledger.escalations import parse_cause
from gastown.states import ACTIVE_SPAWN_STATUSES, IssueStatus, SpawnStatus


@dataclass(frozen=True)
class DeaconPolicy:
    idle_reap_after: float = 600.0  # a finished agent still in its pane this long is ended
    launch_file_age: float = 600.0  # a launch file nobody read in this long is stale
    home_age: float = 600.0  # a finished run's private home is kept this long after its last usage read
    escalation_age: float = 4 * 3600.0  # an unacknowledged escalation this old goes up one severity
    backup_every: float = 6 * 3600.0  # how often the ledger is copied to .gastown/backups
    server_start_every: float = 30.0  # a server that will not stay up is started at most this often
    server_hung_after: float = 60.0  # a server that has not answered /healthz this long is restarted
    stranded_after: float = 60.0  # an issue in review with nothing on its way this long is sent back again


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
class ServerObs:
    """The town's HTTP server as the patrol found it."""

    wanted: bool  # [server] enabled
    running: bool  # its process is alive (read from its record and /proc)
    answering: bool | None = None  # /healthz got any HTTP answer (None: not asked)
    silent_since: float | None = None  # first patrol it did not answer, continuously since
    moved: str | None = None  # where gastown.toml now wants it, if not where it runs
    last_start_at: float | None = None  # when the Deacon last started it


@dataclass(frozen=True)
class Caused:
    """An open escalation with a recorded cause (see ``ledger.escalations``)."""

    id: str
    cause: str


@dataclass(frozen=True)
class Stranded:
    """An issue in review whose newest MR came back (conflict, failed) with nothing on its
    way: no hook, no queued sling, no MR queued or testing (a send-back that was lost)."""

    issue: str
    mr: str
    since: float  # when that MR came back


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
    server: ServerObs | None = None
    caused: tuple[Caused, ...] = ()  # open escalations whose cause may be gone
    issue_status: Mapping[str, str] = field(default_factory=dict)  # of the issues those causes name
    held: frozenset[str] = frozenset()  # every hold scope held now (stored form)
    stranded: tuple[Stranded, ...] = ()


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


@dataclass(frozen=True)
class StartServer:
    reason: str
    restart: bool = False  # stop the running one first


@dataclass(frozen=True)
class StopServer:
    reason: str


@dataclass(frozen=True)
class ResolveEscalation:
    id: str
    why: str


@dataclass(frozen=True)
class SendBackAgain:
    issue: str
    mr: str


Action = (
    RestartLoop | CloseWindow | EndFinished | RemoveLaunchFile | RemoveHome | ReapWorktree | AgeEscalation
    | LandConvoys | BackupLedger | StartServer | StopServer | ResolveEscalation | SendBackAgain
)


def cause_gone(cause: str, issue_status: Mapping[str, str], held: frozenset[str]) -> str | None:
    """Why an escalation's cause is gone, or None while it holds (or cannot be judged here:
    a notifier's failure is resolved by the notifier itself). Pure.

    >>> cause_gone("blocked:app-1", {"app-1": "hooked"}, frozenset())
    'app-1 is hooked now'
    >>> cause_gone("hold:refinery:app", {}, frozenset({"refinery:app"})) is None
    True
    """
    parsed = parse_cause(cause)
    if parsed is None:
        return None
    kind, subject = parsed
    if kind in ("blocked", "issue"):
        status = issue_status.get(subject)
        if status is None:
            return f"{subject} no longer exists"
        if kind == "blocked" and status != IssueStatus.BLOCKED:
            return f"{subject} is {status} now"
        if kind == "issue" and status == IssueStatus.CLOSED:
            return f"{subject} is closed"
        return None
    if kind == "hold" and subject not in held:
        return f"the hold on {subject} was lifted"
    return None


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
    for esc in snap.caused:
        why = cause_gone(esc.cause, snap.issue_status, snap.held)
        if why is not None:
            actions.append(ResolveEscalation(esc.id, why))
    actions += [SendBackAgain(s.issue, s.mr) for s in snap.stranded if now - s.since > policy.stranded_after]
    if snap.convoys_due:
        actions.append(LandConvoys())
    if snap.last_backup_at is None or now - snap.last_backup_at >= policy.backup_every:
        actions.append(BackupLedger())
    if snap.server is not None:
        actions += assess_server(snap.server, now, policy)
    return actions


def assess_server(server: ServerObs, now: float, policy: DeaconPolicy) -> list[Action]:
    """Keep the HTTP server running while ``[server] enabled``: start it when it is gone
    (at most every ``server_start_every``), restart it when it stops answering or
    gastown.toml moved it, stop it when disabled."""
    if not server.wanted:
        return [StopServer("[server] enabled is false")] if server.running else []
    if not server.running:
        if server.last_start_at is None or now - server.last_start_at >= policy.server_start_every:
            return [StartServer("it was not running")]
        return []
    if server.moved:
        return [StartServer(f"gastown.toml moved it to {server.moved}", restart=True)]
    if server.silent_since is not None and now - server.silent_since >= policy.server_hung_after:
        return [StartServer(f"/healthz unanswered for {int(now - server.silent_since)}s", restart=True)]
    return []
