"""Looking at and talking to agents from outside: `gt agents`, `gt peek`, `gt nudge`,
`gt attach`, `gt polecat list/remove`."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gastown.context import Context
from gastown.errors import Conflict, InvalidInput, NotFound, NotRunning
from gastown.git import worktrees as wt
from gastown.ledger import work
from gastown.ledger.events import record_event
from gastown.ledger.issues import find_issue
from gastown.ledger.timefmt import iso
from gastown.logtail import last_lines
from gastown.states import IssueStatus
from gastown.tmux.names import PaneInfo

if TYPE_CHECKING:  # the spawn path and typing are for acting; `gt agents` only reads
    from gastown.tmux.delivery import Delivery


@dataclass(frozen=True)
class AgentView:
    rig: str
    polecat: str
    issue: str
    spawn: str
    agent: str
    state: str
    pane: str | None
    started_at: float
    last_activity: float | None
    last_line: str | None
    restarts: int
    nudges: int
    exit_status: int | None
    host: str = "local"

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "rig": self.rig,
            "polecat": self.polecat,
            "issue": self.issue,
            "spawn": self.spawn,
            "agent": self.agent,
            "state": self.state,
            "pane": self.pane,
            "started_at": iso(self.started_at),
            "last_activity": iso(self.last_activity),
            "last_line": self.last_line,
            "restarts": self.restarts,
            "nudges": self.nudges,
            "exit_status": self.exit_status,
        }


def derive_state(spawn: work.Spawn, pane: PaneInfo | None) -> str:
    """The agent state shown to people, from the ledger plus one tmux snapshot."""
    if spawn.status == "done":
        return "done"
    if spawn.host != "local" and spawn.observed == "unreachable":
        return "unreachable"  # its host does not answer: unknown, never "dead"
    if pane is None or pane.spawn != spawn.id or pane.dead:
        return "dead"
    if spawn.status == "starting":
        return "spawning"
    return spawn.observed if spawn.observed in ("working", "idle", "stalled") else "working"


def list_agents(ctx: Context, rig: str | None = None) -> list[AgentView]:
    """Every hooked or finishing agent, with its state read from ONE tmux query."""
    conn = ctx.ledger.connection()
    spawns = work.spawns_with_status(conn, work.ACTIVE_STATUSES, rig)
    hooks = {h.issue: h for h in work.list_hooks(conn, rig)}
    panes = {("local", p.pane_id): p for p in ctx.tmux.list_panes()} if any(s.host == "local" for s in spawns) else {}
    away = _look_at_hosts(ctx, spawns, panes)
    views = []
    for spawn in spawns:
        if spawn.host in away:
            spawn = replace(spawn, observed="unreachable")
        pane = panes.get((spawn.host, spawn.pane_id or ""))
        log = Path(spawn.log_path)
        try:
            activity: float | None = log.stat().st_mtime if spawn.host == "local" else spawn.last_output_at
        except OSError:
            activity = None
        tail = last_lines(log, 1) if spawn.host == "local" else []
        hook = hooks.get(spawn.issue)
        views.append(
            AgentView(
                rig=spawn.rig,
                polecat=spawn.polecat,
                issue=spawn.issue,
                spawn=spawn.id,
                agent=spawn.agent,
                state=derive_state(spawn, pane),
                pane=spawn.pane_id,
                started_at=spawn.started_at,
                last_activity=activity,
                last_line=tail[-1] if tail else spawn.last_line,
                restarts=hook.restarts if hook else 0,
                nudges=spawn.nudges,
                exit_status=pane.dead_status if pane is not None and pane.dead else None,
                host=spawn.host,
            )
        )
    return views


def _look_at_hosts(ctx: Context, spawns: list[work.Spawn], panes: dict[tuple[str, str], PaneInfo]) -> set[str]:
    """One look at each remote host with agents, all at once (their panes join ``panes``);
    returns the hosts that did not answer."""
    remote: dict[str, list[work.Spawn]] = {h: [] for h in sorted({s.host for s in spawns if s.host != "local"})}
    if not remote:
        return set()  # a town on one machine imports nothing of hosts
    from gastown.roles.host_watch import snapshot_hosts

    away = set()
    for host, snap in snapshot_hosts(ctx, remote).items():
        if isinstance(snap, Exception):
            away.add(host)
        else:
            panes.update({(host, p.pane_id): p for p in snap.panes})
    return away


def polecat_target(ctx: Context, target: str) -> tuple[str, str]:
    """``RIG/POLECAT`` as ``(rig, polecat)``, the rig known to the config; ``InvalidInput``
    for another shape, ``NotFound`` for an unknown rig."""
    from gastown.roles.polecat import parse_target

    rig, polecat = parse_target(target)
    if rig is None or polecat is None:
        raise InvalidInput(f"{target!r} is not RIG/POLECAT", hint="see `gt agents` or `gt polecat list` for names")
    if rig not in ctx.config.rigs:
        raise NotFound(f"no rig named {rig!r} in this town", hint="see `gt rig list`")
    return rig, polecat


def find_spawn(ctx: Context, target: str) -> work.Spawn:
    """The current (or latest) spawn of ``RIG/POLECAT``."""
    rig, polecat = polecat_target(ctx, target)
    conn = ctx.ledger.connection()
    hook = work.hook_of_polecat(conn, rig, polecat)
    spawn = work.get_spawn(conn, hook.spawn) if hook and hook.spawn else work.latest_spawn(conn, rig, polecat)
    if spawn is None:
        raise NotFound(f"no agent has run as {rig}/{polecat}", hint="see `gt agents` and `gt polecat list`")
    return spawn


def peek(ctx: Context, target: str, lines: int = 40) -> tuple[work.Spawn, list[str], bool]:
    """The pane's last lines if it is on screen, else the end of its log. Returns (spawn, lines, live)."""
    spawn = find_spawn(ctx, target)
    tmux = ctx.tmux_on(spawn.host)
    if spawn.pane_id and tmux.display(spawn.pane_id, "#{@gt_spawn}") == spawn.id:
        text = tmux.capture(spawn.pane_id, max(lines, 1) + 60)
        rows = text.rstrip("\n").split("\n")
        while rows and not rows[-1].strip():
            rows.pop()
        return spawn, rows[-lines:], True
    kept = last_lines(spawn.log_path, lines) if spawn.host == "local" else []
    if not kept and spawn.last_lines:
        kept = spawn.last_lines.splitlines()[-lines:]
    return spawn, kept, False


def nudge(ctx: Context, target: str, message: str, *, now: bool, source: str = "human") -> Delivery:
    """Type ``message`` into the agent, waiting until it is idle unless ``now``."""
    from gastown.runtimes.registry import spawn_runtime
    from gastown.tmux.delivery import deliver

    spawn = find_spawn(ctx, target)
    if not spawn.live or not spawn.pane_id:
        raise NotRunning(f"the agent {target} is not running ({spawn.status})", hint="see `gt agents`")
    runtime = spawn_runtime(ctx.settings, spawn.rig, spawn.agent)  # screen markers only: no pydantic
    tmux = ctx.tmux_on(spawn.host)
    result = deliver(
        tmux, spawn.pane_id, message, runtime=runtime, locks_dir=ctx.town.locks_dir, wait_idle=not now,
        still_wanted=lambda: tmux.display(spawn.pane_id or "", "#{@gt_spawn}") == spawn.id,
    )
    with ctx.ledger.write() as conn:
        record_event(
            conn, "nudge", f"{source} → {target}: {' '.join(message.split())[:120]}", now=ctx.now(),
            rig=spawn.rig, polecat=spawn.polecat, spawn=spawn.id, issue=spawn.issue,
        )
    return result


def attach_argv(ctx: Context, target: str | None) -> list[str]:
    """The tmux command that puts this terminal on ``target`` (or the mayor session)."""
    tmux = ctx.tmux
    if target:
        spawn = find_spawn(ctx, target)
        tmux = ctx.tmux_on(spawn.host)
        if not spawn.pane_id or tmux.display(spawn.pane_id, "#{@gt_spawn}") != spawn.id:
            raise NotRunning(f"{target} has no pane on screen", hint=f"read its log with `gt peek {target}`")
        tmux.cmd("select-window", "-t", spawn.pane_id)
        tmux.cmd("select-pane", "-t", spawn.pane_id, check=False)
        session = tmux.display(spawn.pane_id, "#{session_name}") or spawn.rig
        if spawn.host != "local":
            return ctx.host(spawn.host).attach_argv(session, inside_tmux=os.environ.get("TMUX", ""))
    else:
        sessions = tmux.sessions()
        if not sessions:
            raise NotRunning("the town's tmux server is not running", hint="start it with `gt up` or sling an issue")
        session = "mayor" if "mayor" in sessions else sessions[0]
    inside = os.environ.get("TMUX", "")
    if inside and Path(inside.split(",")[0]).name == tmux.socket:
        return tmux.argv("switch-client", "-t", f"={session}")
    return tmux.argv("attach-session", "-t", f"={session}")


@dataclass(frozen=True)
class PolecatView:
    rig: str
    name: str
    state: str  # idle | working | waiting | stopped | blocked (see polecat_state)
    issue: str | None
    branch: str | None
    worktree: str
    dirty: int
    ahead: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def polecat_state(hook: work.Hook | None, issue_status: IssueStatus | None, spawn: work.Spawn | None) -> str:
    """What a polecat is doing, in one word. Pure.

    ``idle``: no issue on its hook; ``working``: an agent runs (or is finishing);
    ``blocked``: its issue is escalated, the work waits for a person; ``stopped``: its
    agent was stopped by hand (`gt restart` resumes it); ``waiting``: work on the hook and
    no agent, which the Mayor resumes (after `gt down`, or while queued for a slot).

    >>> polecat_state(None, None, None)
    'idle'
    """
    if hook is None:
        return "idle"
    if issue_status == IssueStatus.BLOCKED:
        return "blocked"
    if hook.stopped:
        return "stopped"
    if spawn is not None and spawn.active:
        return "working"
    return "waiting"


def list_polecats(ctx: Context, rig: str | None = None) -> list[PolecatView]:
    conn = ctx.ledger.connection()
    views = []
    for rig_name in sorted(ctx.settings.rigs) if rig is None else [rig]:
        target = wt.target_ref(ctx.settings.rigs[rig_name].branch)
        for name in work.polecat_names(conn, rig_name):
            hook = work.hook_of_polecat(conn, rig_name, name)
            path = ctx.town.polecat_path(rig_name, name)
            branch = wt.current_branch(path) if wt.is_worktree(path) else None
            dirty = len(wt.dirty_paths(path)) if wt.is_worktree(path) else 0
            ahead = unmerged_ahead(ctx, path, target) if wt.is_worktree(path) else 0
            issue = find_issue(conn, hook.issue) if hook is not None else None
            spawn = work.get_spawn(conn, hook.spawn) if hook is not None and hook.spawn else None
            state = polecat_state(hook, issue.status if issue is not None else None, spawn)
            views.append(PolecatView(rig_name, name, state, hook.issue if hook else None, branch, str(path), dirty, ahead))
    return views


def unmerged_ahead(ctx: Context, path: Path, target: str) -> int:
    """Commits of the worktree's HEAD not on the target: 0 once its work merged, even if the
    refinery rebased or squashed it (the commits on the target then have other ids)."""
    from gastown.git.cmd import Git
    from gastown.ledger.mrs import merged_commit_shas

    git = Git(path)
    head = git.run("rev-parse", "HEAD", check=False).stdout.strip()
    if not head:
        return 0
    if head in merged_commit_shas(ctx.ledger.connection(), [head]):
        return 0
    # --cherry-pick leaves out commits whose change the target already has (a rebase merge).
    out = git.run("rev-list", "--count", "--right-only", "--cherry-pick", f"{target}...HEAD", check=False).stdout
    return int(out.strip() or "0")


def remove_polecat(ctx: Context, rig: str, name: str, *, force: bool) -> str | None:
    """Remove an idle polecat's worktree, branch and name; returns the archive ref if any.

    Refuses while it holds an issue, or (unless ``force``) unmerged or uncommitted work.
    """
    from gastown._internal.locks import file_lock
    from gastown.roles.polecat import end_spawn

    if rig not in ctx.config.rigs:
        raise NotFound(f"no rig named {rig!r} in this town", hint="see `gt rig list`")
    with file_lock(ctx.town.locks_dir / f"pool-{rig}.lock", timeout=60, what=f"the {rig} name pool"):
        conn = ctx.ledger.connection()
        if name not in work.polecat_names(conn, rig):
            raise NotFound(f"no polecat {rig}/{name}", hint="see `gt polecat list`")
        hook = work.hook_of_polecat(conn, rig, name)
        if hook is not None:
            raise Conflict(f"polecat {rig}/{name} is working on {hook.issue}", hint="let it finish first")
        latest = work.latest_spawn(conn, rig, name)
        if latest is not None and latest.status in work.ACTIVE_STATUSES:
            end_spawn(ctx, latest.id, reason="polecat removed")
        target = ctx.config.rigs[rig].branch
        # Its worktrees on other hosts first (each refuses unmerged work unless forced, and
        # archives what it removes on that host's mirror); a host that does not answer
        # stops the removal, so no worktree is forgotten.
        for host in [h for h in ctx.config.rigs[rig].hosts if h != "local"]:
            driver = ctx.host(host)
            if driver.is_worktree(rig, name):
                driver.remove_worktree(rig, name, target=target, force=force)
        archived = wt.remove_worktree(ctx.town.hub_path(rig), ctx.town.polecat_path(rig, name), target=target, force=force)
        with ctx.ledger.write() as conn:
            work.remove_polecat(conn, rig, name)
            record_event(
                conn, "reap", f"polecat removed{'; work archived at ' + archived if archived else ''}",
                now=ctx.now(), rig=rig, polecat=name,
            )
    return archived
