"""Agents on other hosts, as the Witness sees them: one look per host per patrol, and
what a host that stops answering means.

- **One look.** Every remote host with agents of the rig is looked at once per patrol
  (``HostDriver.snapshot``: its panes and its agents' log sizes in one round trip).
- **Unreachable, never dead.** A host that does not answer is marked unreachable
  (``ledger/hosts.py``) and its agents ``unreachable``: nothing is restarted into the void.
- **Checkpoints.** While a host answers, the hub fetches its agents' branches now and then
  into ``refs/gastown/checkpoints/<branch>``: the work a move starts from.
- **Past its grace** (``[hosts.X] grace``), a host's hooked issues move: their spawn is
  ended (its token with it: its `gt done` is refused), and the issue resumes on another
  permitted host from its last checkpoint.
- **When it comes back**, the agents it still runs for moved issues are stopped first,
  and any commit of theirs the town never saw is archived under ``refs/gastown/archive/``,
  never lost and never merged.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gastown._internal.locks import file_lock
from gastown._internal.log import logger
from gastown.context import Context
from gastown.errors import GastownError, HostError
from gastown.git import worktrees as wt
from gastown.hosts import LOCAL
from gastown.hosts.base import HostSnapshot
from gastown.ledger import hosts as host_rows
from gastown.ledger import work
from gastown.ledger.events import record_event
from gastown.states import SpawnStatus
from gastown.tmux.names import PaneInfo

log = logger(__name__)

CHECKPOINT_EVERY = 60.0  # seconds between two fetches of a host's agents' branches
# A master that was replaced (the host came back, the old one was killed) lacks the agents'
# tunnel; it is asked for again on a return and at least this often (a local call).
TUNNEL_REFRESH = 30.0
OK_REFRESH = 30.0  # how stale a reachable host's "last answered" may get before it is written again
CHECKPOINTS = "refs/gastown/checkpoints/"
UNREACHABLE = "unreachable"  # a spawn's ``observed`` while its host does not answer
LEFT_BEHIND = "left-behind"  # a moved spawn's ``observed`` once its host came back and it was stopped
# Where a returning host's branch is fetched to be judged: outside refs/gastown/, whose refs
# all count as "work kept" (``worktrees.is_safe``).
RETURNED = "refs/gastown-returned/"
MOVED_REASON = "its host stayed unreachable past its grace: the work moved"


@dataclass
class HostLooks:
    """What one patrol saw of the rig's remote hosts."""

    panes: dict[tuple[str, str], PaneInfo] = field(default_factory=dict)  # (host, pane id) -> pane
    log_sizes: dict[str, int] = field(default_factory=dict)  # a remote log's path -> its size
    unreachable: set[str] = field(default_factory=set)
    statuses: dict[str, host_rows.HostStatus] = field(default_factory=dict)  # as read before this look

    @property
    def away(self) -> set[str]:
        """Hosts that did not answer now, or are still marked unreachable."""
        return self.unreachable | {host for host, status in self.statuses.items() if not status.reachable}


@dataclass
class HostMemory:
    """What a Witness remembers between patrols, per host: when it last fetched the agents'
    branches, and when it last made sure of their tunnel."""

    checkpoints: dict[str, float] = field(default_factory=dict)
    tunnels: dict[str, float] = field(default_factory=dict)


def look(ctx: Context, rig: str, spawns: list[work.Spawn], seen: HostMemory) -> HostLooks:
    """One snapshot per remote host that runs (or ran, before it vanished) agents of ``rig``."""
    looks = HostLooks()
    conn = ctx.ledger.connection()
    left = work.spawns_left_on_hosts(conn, rig)
    hosts = {s.host for s in spawns if s.host != LOCAL} | {s.host for s in left}
    hosts |= {h.host for h in work.list_hooks(conn, rig) if h.host != LOCAL}
    if not hosts:
        return looks
    looks.statuses = statuses = host_rows.host_statuses(conn)
    by_host = {host: [s for s in spawns if s.host == host] for host in sorted(hosts)}
    snapshots = snapshot_hosts(ctx, by_host, again=True)
    now = ctx.now()
    for host, snap in snapshots.items():
        mine = by_host[host]
        if isinstance(snap, HostError):
            looks.unreachable.add(host)
            _unreachable(ctx, rig, host, mine, snap)
            seen.tunnels.pop(host, None)  # a master that comes back is a new one
            continue
        before = statuses.get(host)
        back = before is not None and not before.reachable
        if before is None or back or before.last_ok_at is None or now - before.last_ok_at >= OK_REFRESH:
            with ctx.ledger.write() as conn:  # not every patrol: a write per look would cost more than the look
                host_rows.mark_reachable(conn, host, now=now)
                if back:
                    record_event(conn, "host", f"host {host} answers again", now=now, rig=rig)
        looks.panes.update({(host, pane.pane_id): pane for pane in snap.panes})
        looks.log_sizes.update(snap.log_sizes)
        _stop_left_behind(ctx, rig, host, [s for s in left if s.host == host], snap.panes)
        if mine and (back or now - seen.tunnels.get(host, 0.0) >= TUNNEL_REFRESH):
            seen.tunnels[host] = now
            _keep_tunnel(ctx, rig, host)
        if mine and now - seen.checkpoints.get(host, 0.0) >= CHECKPOINT_EVERY:
            seen.checkpoints[host] = now
            fetch_checkpoints(ctx, rig, host, mine)
    return looks


def snapshot_hosts(
    ctx: Context, spawns_by_host: dict[str, list[work.Spawn]], *, again: bool = False
) -> dict[str, HostSnapshot | HostError]:
    """Each host's snapshot (with its spawns' log sizes), all hosts at once: a look at two
    hosts costs the slower round trip, not the sum; a host that does not answer gives its
    error instead. ``again``: a patrol, which looks again in seconds (``HostDriver.snapshot``)."""
    def one(host: str) -> HostSnapshot | HostError:
        try:
            return ctx.host(host).snapshot([PurePosixPath(s.log_path) for s in spawns_by_host[host]], again=again)
        except HostError as exc:
            return exc

    if len(spawns_by_host) <= 1:
        return {host: one(host) for host in spawns_by_host}
    for host in spawns_by_host:
        ctx.host(host)  # made here, in one thread: Context's cache is not shared-write safe
    with ThreadPoolExecutor(max_workers=min(8, len(spawns_by_host))) as pool:
        return dict(zip(spawns_by_host, pool.map(one, spawns_by_host), strict=True))


def _keep_tunnel(ctx: Context, rig: str, host: str) -> None:
    """The agents' way back to the town lives as long as the host's SSH master: a master
    started anew (the host restarted its sshd, the old one timed out) gets it again."""
    from gastown.roles.serving import running_server

    record = running_server(ctx.town)
    if record is None:
        return  # the Deacon restarts the server; the next patrol forwards to it
    try:
        ctx.host(host).ensure_hub_tunnel(record.port)
    except GastownError as exc:
        log.warning("witness %s: the tunnel to host %s: %s", rig, host, exc)


def _unreachable(ctx: Context, rig: str, host: str, spawns: list[work.Spawn], exc: HostError) -> None:
    with ctx.ledger.write() as conn:
        now = ctx.now()
        before = host_rows.get_host_status(conn, host)
        host_rows.mark_unreachable(conn, host, detail=exc.message, now=now)
        if before is None or before.reachable:
            record_event(conn, "host", f"{exc.message}; its agents are unreachable (not dead) until it answers", now=now, rig=rig)
        for spawn in spawns:
            if spawn.observed != UNREACHABLE:
                work.update_spawn(conn, spawn.id, observed=UNREACHABLE)


def fetch_checkpoints(ctx: Context, rig: str, host: str, spawns: list[work.Spawn]) -> None:
    """The host's agents' branches, fetched into ``refs/gastown/checkpoints/`` (one fetch)."""
    conn = ctx.ledger.connection()
    branches = sorted({h.branch for h in work.list_hooks(conn, rig) if h.host == host and h.spawn in {s.id for s in spawns}})
    if not branches:
        return
    try:
        ctx.host(host).fetch_refs(rig, ctx.town.hub_path(rig), [f"+refs/heads/{b}:{CHECKPOINTS}{b}" for b in branches])
    except GastownError as exc:
        log.warning("witness %s: checkpoint of host %s failed: %s", rig, host, exc)


def checkpoint_start(ctx: Context, rig: str, branch: str) -> str:
    """Where moved work resumes: its last checkpoint, else its branch in the hub, else the target."""
    hub = ctx.town.hub_path(rig)
    for ref in (f"{CHECKPOINTS}{branch}", f"refs/heads/{branch}"):
        if wt.ref_sha(hub, ref):
            return ref
    return wt.target_ref(ctx.config.rigs[rig].branch)


def _stop_left_behind(ctx: Context, rig: str, host: str, left: list[work.Spawn], panes: tuple[PaneInfo, ...]) -> None:
    """A host that came back still runs agents whose work moved: stop them first, then keep
    any commit of theirs the town never saw under ``refs/gastown/archive/``."""
    if not left:
        return
    driver = ctx.host(host)
    by_spawn = {p.spawn: p for p in panes if p.spawn}
    for spawn in left:
        pane = by_spawn.get(spawn.id)
        if pane is not None:
            driver.stop_agent(pane.pane_id, grace=2.0)
        try:
            archived = keep_remote_work(ctx, rig, host, wt.branch_name(spawn.polecat, spawn.issue))
        except GastownError as exc:
            log.warning("witness %s: fetching work back from host %s failed: %s", rig, host, exc)
            continue
        with ctx.ledger.write() as conn:
            work.update_spawn(conn, spawn.id, observed=LEFT_BEHIND)
            said = f"; its unseen commits are kept at {archived}" if archived else "; it had no commit the town lacks"
            record_event(conn, "host", f"host {host} is back: stopped the agent left behind for {spawn.issue}{said}",
                         now=ctx.now(), rig=rig, polecat=spawn.polecat, spawn=spawn.id, issue=spawn.issue)


def keep_remote_work(ctx: Context, rig: str, host: str, branch: str) -> str | None:
    """Fetch ``branch`` from ``host`` and keep its tip under ``refs/gastown/archive/<host>/``
    unless the town already holds it (target, checkpoint, archive, MR pin); the ref made,
    or None. Raises when the host cannot be reached or has no such branch."""
    from gastown.git.cmd import Git

    hub = ctx.town.hub_path(rig)
    returned = f"{RETURNED}{branch}"
    ctx.host(host).fetch_refs(rig, hub, [f"+refs/heads/{branch}:{returned}"])
    try:
        sha = wt.ref_sha(hub, returned)
        if sha and not _kept(hub, sha, ctx.config.rigs[rig].branch):
            return wt.archive(hub, sha, f"{host}/{branch}")
        return None
    finally:
        Git(hub).run("update-ref", "-d", returned, check=False)


def _kept(hub: Path, sha: str, target: str) -> bool:
    """Whether the town keeps ``sha`` for good: on the target, or held by a ref under
    ``refs/gastown/`` that is not a checkpoint (a checkpoint is overwritten by the next)."""
    from gastown.git.cmd import Git

    git = Git(hub)
    if git.run("merge-base", "--is-ancestor", sha, wt.target_ref(target), check=False).ok:
        return True
    refs = git.out("for-each-ref", "--format=%(refname)", "--contains", sha, "refs/gastown/").split()
    return any(not ref.startswith(CHECKPOINTS) for ref in refs)


def overdue_hosts(ctx: Context, unreachable: set[str]) -> set[str]:
    """The unreachable hosts whose grace is over."""
    conn = ctx.ledger.connection()
    overdue = set()
    for host in unreachable:
        status = host_rows.get_host_status(conn, host)
        grace = ctx.config.hosts[host].grace if host in ctx.config.hosts else 0.0
        if status is not None and status.unreachable_since is not None and ctx.now() - status.unreachable_since >= grace:
            overdue.add(host)
    return overdue


def move_hooks(ctx: Context, rig: str, overdue: set[str]) -> list[str]:
    """Move the rig's hooks off hosts past their grace; returns the issues moved."""
    from gastown.roles.admission import place
    from gastown.roles.scheduler import gather_capacity

    moved = []
    for hook in [h for h in work.list_hooks(ctx.ledger.connection(), rig) if h.host in overdue and not h.stopped]:
        with file_lock(ctx.town.locks_dir / f"issue-{hook.issue}.lock", timeout=30, what=f"issue {hook.issue}"):
            current = work.get_hook(ctx.ledger.connection(), hook.issue)
            if current is None or current.host != hook.host or current.stopped:
                continue
            new_host = place(rig, gather_capacity(ctx))
            if new_host is None:
                continue  # every other host is full or away too: the next patrol tries again
            try:
                _move(ctx, current, new_host)
                moved.append(hook.issue)
            except GastownError as exc:
                with ctx.ledger.write() as conn:
                    record_event(conn, "host", f"moving {hook.issue} off host {hook.host} failed: {exc}", now=ctx.now(),
                                 rig=rig, polecat=hook.polecat, issue=hook.issue)
    return moved


def _move(ctx: Context, hook: work.Hook, new_host: str) -> None:
    from gastown.roles.polecat import make_worktree, start_spawn

    old = hook.host
    with ctx.ledger.write() as conn:
        now = ctx.now()
        spawn = work.get_spawn(conn, hook.spawn) if hook.spawn else None
        if spawn is not None and spawn.active:
            work.update_spawn(conn, spawn.id, status=SpawnStatus.ENDED, ended_at=now, end_reason=MOVED_REASON,
                              observed=UNREACHABLE)
        work.set_hook_host(conn, hook.issue, new_host)
        record_event(conn, "host", f"host {old} stayed unreachable past its grace: moving {hook.issue} to {new_host}",
                     now=now, rig=hook.rig, polecat=hook.polecat, issue=hook.issue)
    moved = work.get_hook(ctx.ledger.connection(), hook.issue)
    assert moved is not None
    start = checkpoint_start(ctx, hook.rig, hook.branch)
    make_worktree(ctx, moved, start, is_new=False)
    start_spawn(ctx, moved, kind="resume", reason=f"host {old} stopped answering; resumed here from its last checkpoint")
