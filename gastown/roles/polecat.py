"""Polecats: sling an issue onto one, start (and restart) its agent, and take back its work.

Lifecycle steps 1, 2 and 4 of DESIGN.md. The hook is written before the agent starts;
any failure on the way rolls everything back (hook, spawn, window, a new worktree), so
a failed sling leaves the issue exactly as it was.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gastown._internal.locks import file_lock
from gastown.context import Context
from gastown.errors import Conflict, GastownError, InvalidInput, NotFound
from gastown.git import hub as hubs
from gastown.git import worktrees as wt
from gastown.hosts import LOCAL
from gastown.ledger import queue, work
from gastown.ledger.events import record_event
from gastown.ledger.ids import new_id
from gastown.ledger.issues import Issue, get_issue, set_issue_status
from gastown.prompts import PromptFacts, render
from gastown.roles import launch
from gastown.roles.pool import choose_name, theme_for
from gastown.runtimes.registry import Runtime, runtime_for
from gastown.states import IssueStatus, SpawnStatus
from gastown.tmux.driver import Tmux
from gastown.tmux.names import session_name


# What a pane shows tmux about its agent (`-e`); everything else only the agent's process gets.
IDENTITY_VARS = ("GT_TOWN", "GT_RIG", "GT_POLECAT", "GT_ISSUE", "GT_SPAWN", "GT_ROLE", "GT_AGENT")

# A fetch this recent counts as fresh: a batch of slings shares one.
FETCH_FRESH = 10.0
# Where a remote start commit (a fix cycle's, a resumed checkpoint's) lands in a host's
# mirror: one ref per polecat (its hook reserves it), so two slings never race on one.
START_REFS = "refs/gastown/start"


@dataclass(frozen=True)
class SlingResult:
    status: str  # started | queued | already | resumed
    issue: str
    rig: str
    polecat: str | None = None
    spawn: str | None = None
    pane: str | None = None
    branch: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_target(target: str | None) -> tuple[str | None, str | None]:
    """``None`` | ``"rig"`` | ``"rig/polecat"`` → (rig, polecat).

    >>> parse_target("app/rivet"), parse_target("app"), parse_target(None)
    (('app', 'rivet'), ('app', None), (None, None))
    """
    if not target:
        return None, None
    rig, _, polecat = target.strip("/").partition("/")
    if not rig or "/" in polecat:
        raise InvalidInput(f"{target!r} is not RIG or RIG/POLECAT")
    return rig, polecat or None


# -- sling ------------------------------------------------------------------------------


def sling(
    ctx: Context,
    issue_id: str,
    target: str | None = None,
    *,
    agent: str | None = None,
    kind: str = "fresh",
    start_point: str | None = None,
    note: str | None = None,
    from_queue: bool = False,
) -> SlingResult:
    """Hook ``issue_id`` onto a polecat and start its agent (or queue it when at capacity).

    Idempotent: an issue hooked to a live agent is left alone; one whose agent is gone is
    resumed in its worktree. ``kind="fix"`` starts from ``start_point`` (the commits the
    merge queue sent back) with ``note`` in the prompt.
    """
    with file_lock(ctx.town.locks_dir / f"issue-{issue_id}.lock", timeout=120, what=f"issue {issue_id}"):
        conn = ctx.ledger.connection()
        issue = get_issue(conn, issue_id)
        want_rig, want_polecat = parse_target(target)
        rig = _check_rig(ctx, issue, want_rig)
        if issue.status == IssueStatus.CLOSED:
            raise Conflict(f"issue {issue_id} is closed", hint=f"reopen it first: gt issue reopen {issue_id}")
        hook = work.get_hook(conn, issue_id)
        if hook is not None:
            waiting = issue.status == IssueStatus.BLOCKED or hook.stopped
            if waiting and not from_queue and not _admitted(ctx, rig, runtime_for(ctx.config, rig, hook.agent).name):
                return _enqueue_waiting(ctx, issue, hook)
            if issue.status == IssueStatus.BLOCKED:
                _unblock(ctx, issue, "slung again")
            if hook.stopped:
                with ctx.ledger.write() as conn:
                    work.clear_hook_stopped(conn, issue_id)
                hook = work.get_hook(ctx.ledger.connection(), issue_id) or hook
            return _already_hooked(ctx, hook, want_polecat)
        if issue.status == IssueStatus.IN_REVIEW and kind == "fresh":
            raise Conflict(
                f"issue {issue_id} is in review: its work waits in the merge queue",
                hint="see `gt mq list`; reject the merge request first to redo the work",
            )
        runtime = runtime_for(ctx.config, rig, agent)
        launch.resolve_binary(
            runtime.command[0], _agent_path(ctx), runtime.name
        )  # fail fast, before anything is made
        if not from_queue and not _admitted(ctx, rig, runtime.name):
            return _enqueue(ctx, issue, rig, want_polecat, agent, kind, start_point, note)
        return _sling_new(ctx, issue, rig, want_polecat, runtime, kind, start_point, note)


def _check_rig(ctx: Context, issue: Issue, want_rig: str | None) -> str:
    if want_rig is not None and want_rig != issue.rig:
        raise Conflict(
            f"issue {issue.id} belongs to rig {issue.rig!r}, not {want_rig!r}",
            hint=f"sling it to {issue.rig}, or create the issue in {want_rig}",
        )
    if issue.rig not in ctx.config.rigs:
        raise NotFound(f"issue {issue.id} belongs to rig {issue.rig!r}, which is no longer in gastown.toml")
    return issue.rig


def _already_hooked(ctx: Context, hook: work.Hook, want_polecat: str | None) -> SlingResult:
    conn = ctx.ledger.connection()
    spawn = work.get_spawn(conn, hook.spawn) if hook.spawn else None
    if spawn is not None and spawn.live and spawn.pane_id and _pane_is_spawns(ctx, spawn):
        return SlingResult("already", hook.issue, hook.rig, hook.polecat, spawn.id, spawn.pane_id, hook.branch)
    if want_polecat and want_polecat != hook.polecat:
        raise Conflict(
            f"issue {hook.issue} is already hooked to {hook.rig}/{hook.polecat}",
            hint="its agent is resumed there; it cannot move to another polecat while hooked",
        )
    resumed = start_spawn(ctx, hook, kind="resume", reason="its agent was not running when it was slung again")
    return SlingResult("resumed", hook.issue, hook.rig, hook.polecat, resumed.id, resumed.pane_id, hook.branch)


def _pane_is_spawns(ctx: Context, spawn: work.Spawn) -> bool:
    if not spawn.pane_id:
        return False
    tag = ctx.tmux_on(spawn.host).display(spawn.pane_id, "#{pane_dead}\t#{@gt_spawn}")
    return tag is not None and tag == f"0\t{spawn.id}"


def _admitted(ctx: Context, rig: str, runtime: str) -> bool:
    """Whether this sling may start an agent now (``admission.admit``), or must queue."""
    from gastown.roles.admission import admit
    from gastown.roles.scheduler import gather_capacity

    return admit(rig, runtime, gather_capacity(ctx), ctx.now()).start


def _unblock(ctx: Context, issue: Issue, why: str) -> None:
    from gastown.ledger.escalations import resolve_for_issue

    with ctx.ledger.write() as conn:
        set_issue_status(conn, issue.id, IssueStatus.HOOKED, now=ctx.now())
        record_event(conn, "issue", f"unblocked: {why}", now=ctx.now(), rig=issue.rig, issue=issue.id)
        resolve_for_issue(conn, issue.id, resolution=f"unblocked: {why}", now=ctx.now())


def _enqueue_waiting(ctx: Context, issue: Issue, hook: work.Hook) -> SlingResult:
    """A blocked or stopped hook slung again while there is no room: it is queued to resume
    in its worktree, and stays stopped (holding no slot) until the scheduler starts it."""
    with ctx.ledger.write() as conn:
        now = ctx.now()
        if not hook.stopped:
            work.mark_hook_stopped(conn, issue.id, reason="slung again: waiting for a slot", now=now)
        queue.enqueue(conn, issue=issue.id, rig=hook.rig, polecat=hook.polecat, agent=hook.agent,
                      priority=issue.priority, kind="resume", start_point=None, note=None, now=now)
        record_event(conn, "queued", "at capacity: queued to resume in its worktree", now=now, rig=hook.rig,
                     polecat=hook.polecat, issue=issue.id)
    return SlingResult("queued", issue.id, hook.rig, hook.polecat, branch=hook.branch)


def _enqueue(
    ctx: Context, issue: Issue, rig: str, polecat: str | None, agent: str | None,
    kind: str, start_point: str | None, note: str | None,
) -> SlingResult:
    with ctx.ledger.write() as conn:
        now = ctx.now()
        queue.enqueue(
            conn, issue=issue.id, rig=rig, polecat=polecat, agent=agent, priority=issue.priority, kind=kind,
            start_point=start_point, note=note, now=now,
        )
        record_event(conn, "queued", "at capacity: queued until a polecat frees up", now=now, rig=rig, issue=issue.id)
    return SlingResult("queued", issue.id, rig, polecat)


def _sling_new(
    ctx: Context, issue: Issue, rig: str, want_polecat: str | None, runtime: Runtime,
    kind: str, start_point: str | None, note: str | None,
) -> SlingResult:
    rig_cfg = ctx.config.rigs[rig]
    hub = ctx.town.hub_path(rig)
    hubs.fetch(hub, max_age=FETCH_FRESH)
    start = start_point or wt.target_ref(rig_cfg.branch)
    host = _place(ctx, rig, runtime)
    polecat, is_new, hook = _claim_polecat(ctx, issue, rig, want_polecat, runtime.name, kind, note, host)
    if host != LOCAL:
        return _sling_on_host(ctx, issue, hook, is_new, start, kind)
    path = ctx.town.polecat_path(rig, polecat)
    spawn_id = new_id("sp")
    # The agent's window (and its interpreter) starts now, waiting for its launch file,
    # while the worktree is being made: the two overlap instead of adding up.
    pane = launch.prestart_window(
        ctx.tmux, session=session_name(rig), window=polecat, cwd=ctx.town.root,
        launch_file=launch.launch_file_path(ctx.town.run_dir, spawn_id),
        ids={"GT_TOWN": str(ctx.town.root), "GT_RIG": rig, "GT_POLECAT": polecat, "GT_ISSUE": issue.id,
             "GT_SPAWN": spawn_id, "GT_ROLE": "polecat", "GT_AGENT": runtime.name},
    )
    try:
        if is_new or not wt.is_worktree(path):
            wt.create_worktree(hub, path, hook.branch, start)
        else:
            wt.reset_worktree(hub, path, hook.branch, start, target=rig_cfg.branch)
        spawn = start_spawn(ctx, hook, kind=kind, reason="slung", spawn_id=spawn_id, prestarted=pane)
    except BaseException as exc:
        ctx.tmux.kill_window(pane)
        _roll_back_claim(ctx, issue, hook, is_new, path, hub, rig_cfg.branch, exc)
        raise
    with ctx.ledger.write() as conn:
        queue.dequeue(conn, issue.id)
    return SlingResult("started", issue.id, rig, polecat, spawn.id, spawn.pane_id, hook.branch)


def _place(ctx: Context, rig: str, runtime: Runtime) -> str:
    """The host the new agent runs on (``admission.place``); raises when every host of
    the rig is full or unreachable (the slot went elsewhere since admission said yes).

    A runtime whose work gastown submits for it (``submit = "gastown"``) runs here: the
    Witness submits from a worktree it can read, and a remote one it cannot (yet)."""
    from dataclasses import replace

    from gastown.roles.admission import place
    from gastown.roles.scheduler import gather_capacity

    hosts = tuple(ctx.config.rigs[rig].hosts)
    if hosts == (LOCAL,):
        return LOCAL  # no placement to make: no capacity to read
    capacity = gather_capacity(ctx)
    if runtime.submit == "gastown":
        if LOCAL not in hosts:
            from gastown.errors import ConfigError

            raise ConfigError(f"runtime {runtime.name!r} has gastown submit its work, which works on this machine only, "
                              f"and rigs.{rig}.hosts does not list 'local'",
                              hint=f"add 'local' to rigs.{rig}.hosts, or use a runtime that runs gt done itself")
        capacity = replace(capacity, rig_hosts={**capacity.rig_hosts, rig: (LOCAL,)})
    host = place(rig, capacity)
    if host is None:
        raise Conflict(f"every host rig {rig} may use is full or unreachable",
                       hint="see `gt host list`; the sling waits in the queue")
    return host


def _sling_on_host(ctx: Context, issue: Issue, hook: work.Hook, is_new: bool, start: str, kind: str) -> SlingResult:
    """The remote half of a sling: the rig's target (and the start commit) pushed to the
    host's mirror, the worktree made there, the agent started there. A failure rolls the
    claim back exactly as a local one does."""
    rig_cfg = ctx.config.rigs[hook.rig]
    hub = ctx.town.hub_path(hook.rig)
    try:
        make_worktree(ctx, hook, start, is_new=is_new)
        spawn = start_spawn(ctx, hook, kind=kind, reason="slung")
    except BaseException as exc:
        _roll_back_claim(ctx, issue, hook, is_new, ctx.town.polecat_path(hook.rig, hook.polecat), hub, rig_cfg.branch, exc)
        raise
    with ctx.ledger.write() as conn:
        queue.dequeue(conn, issue.id)
    return SlingResult("started", issue.id, hook.rig, hook.polecat, spawn.id, spawn.pane_id, hook.branch)


def make_worktree(ctx: Context, hook: work.Hook, start: str, *, is_new: bool) -> None:
    """The polecat's worktree on the hook's host, on ``hook.branch`` from ``start`` (a hub
    ref or commit): made, or an idle one reset (leftovers archived, never lost). On an SSH
    host the rig's target and the start commit are pushed to its mirror first."""
    rig_cfg = ctx.config.rigs[hook.rig]
    hub = ctx.town.hub_path(hook.rig)
    if hook.host == LOCAL:
        path = ctx.town.polecat_path(hook.rig, hook.polecat)
        if is_new or not wt.is_worktree(path):
            wt.create_worktree(hub, path, hook.branch, start)
        else:
            wt.reset_worktree(hub, path, hook.branch, start, target=rig_cfg.branch)
        return
    driver = ctx.host(hook.host)
    target = wt.target_ref(rig_cfg.branch)
    refs = [target]
    if start != target:
        start_ref = f"{START_REFS}/{hook.polecat}"
        refs.append(f"{start}:{start_ref}")  # a fix's or a resume's start commit: by a ref the mirror can take
        start = start_ref
    driver.sync_rig(hook.rig, hub, refs)
    if is_new or not driver.is_worktree(hook.rig, hook.polecat):
        driver.create_worktree(hook.rig, hook.polecat, hook.branch, start)
    else:
        driver.reset_worktree(hook.rig, hook.polecat, hook.branch, start, target=rig_cfg.branch)


def _claim_polecat(
    ctx: Context, issue: Issue, rig: str, want: str | None, agent: str, kind: str, note: str | None,
    host: str = LOCAL,
) -> tuple[str, bool, work.Hook]:
    """Pick (or name) a polecat and write the hook, atomically; the hook reserves the polecat."""
    with file_lock(ctx.town.locks_dir / f"pool-{rig}.lock", timeout=60, what=f"the {rig} name pool"):
        with ctx.ledger.write() as conn:
            now = ctx.now()
            known = work.polecat_names(conn, rig)
            busy = {h.polecat for h in work.list_hooks(conn, rig)}
            if want is not None and want in busy and kind == "fix":
                # The merge queue asked for the polecat that did the work, but it took other
                # work while the fix waited for a slot: any polecat does (the fix starts from
                # the MR's commit, not from the worktree).
                want = None
            if want is not None:
                if want in busy:
                    raise Conflict(f"polecat {rig}/{want} is busy", hint="sling to the rig and let gastown pick one")
                name, is_new = want, want not in known
                if is_new:
                    _check_polecat_name(want)
            else:
                idle = [n for n in known if n not in busy]
                if idle:
                    name, is_new = idle[0], False
                else:
                    on_disk = {p.name for p in ctx.town.polecats_dir(rig).glob("*")} if ctx.town.polecats_dir(rig).is_dir() else set()
                    pool = ctx.config.rigs[rig].names or theme_for(rig)
                    name, is_new = choose_name(tuple(pool), set(known) | on_disk), True
            if is_new:
                work.add_polecat(conn, rig, name, now)
            hook = work.insert_hook(
                conn, issue=issue.id, rig=rig, polecat=name, branch=wt.branch_name(name, issue.id),
                agent=agent, kind=kind, note=note, now=now, host=host,
            )
            set_issue_status(conn, issue.id, IssueStatus.HOOKED, now=now)
            queue.dequeue(conn, issue.id)
            on_host = f" on host {host}" if host != LOCAL else ""
            record_event(conn, "sling", f"hooked to {rig}/{name} ({kind}){on_host}", now=now, rig=rig, polecat=name,
                         issue=issue.id)
    return name, is_new, hook


def _check_polecat_name(name: str) -> None:
    from gastown.names import NAME_RE

    if not NAME_RE.match(name):
        raise InvalidInput(f"{name!r} is not a valid polecat name", hint="use lowercase letters, digits, '-' or '_'")


def _roll_back_claim(
    ctx: Context, issue: Issue, hook: work.Hook, is_new: bool, path: Path, hub: Path, target: str, cause: BaseException
) -> None:
    """Undo a claim after a failed start: hook gone, issue back as it was, a new worktree removed."""
    with ctx.ledger.write() as conn:
        now = ctx.now()
        work.delete_hook(conn, issue.id)
        if get_issue(conn, issue.id).status != issue.status:
            set_issue_status(conn, issue.id, issue.status, now=now)
        if is_new:
            work.remove_polecat(conn, hook.rig, hook.polecat)
        record_event(
            conn, "sling", f"failed and rolled back: {cause}", now=now, rig=hook.rig, polecat=hook.polecat, issue=issue.id
        )
    if is_new:
        try:
            if hook.host == LOCAL:
                wt.remove_worktree(hub, path, target=target, force=True)
            else:
                ctx.host(hook.host).remove_worktree(hook.rig, hook.polecat, target=target, force=True)
        except GastownError:
            pass


# -- spawns -----------------------------------------------------------------------------


def _agent_path(ctx: Context) -> str:
    return ctx.environ.get("PATH", os.defpath)


def start_spawn(
    ctx: Context,
    hook: work.Hook,
    *,
    kind: str,
    reason: str,
    restarted: bool = False,
    spawn_id: str | None = None,
    prestarted: str | None = None,
) -> work.Spawn:
    """Start a new spawn for ``hook`` in its polecat's worktree (a fresh window, or the old
    pane respawned), on the hook's host. The spawn row is written before the agent starts;
    if the start fails the row is marked ``failed`` and ``LaunchFailed`` (or the cause) is raised."""
    if hook.host != LOCAL:
        return _start_remote_spawn(ctx, hook, kind=kind, reason=reason, restarted=restarted)
    cfg = ctx.config
    runtime = runtime_for(cfg, hook.rig, hook.agent)
    conn = ctx.ledger.connection()
    previous = work.get_spawn(conn, hook.spawn) if hook.spawn else None
    spawn_id = spawn_id or new_id("sp")
    attempt = work.attempts_for(conn, hook.issue) + 1
    worktree = ctx.town.polecat_path(hook.rig, hook.polecat)
    prompt_path = ctx.town.prompt_path(spawn_id)
    log_path = ctx.town.spawn_log_path(hook.rig, hook.polecat, spawn_id)
    prompt = _prompt(ctx, hook, attempt=attempt, kind=kind, reason=reason, worktree=str(worktree))
    prompt_path.parent.mkdir(parents=True, exist_ok=True)
    prompt_path.write_text(prompt, encoding="utf-8")
    launch.ensure_gt_shim(ctx.town)
    who = _identity(ctx, hook, spawn_id, attempt, kind)
    env = launch.agent_env(ctx.town, who, runtime, socket=ctx.tmux.socket, prompt_path=prompt_path,
                           base_env=ctx.config.without_secrets(ctx.environ))  # no secret reaches an agent
    argv = launch.agent_argv(runtime, prompt=prompt, prompt_file=prompt_path, path=env["PATH"])
    if previous is not None:
        _sweep(ctx, previous.id)  # whatever the last run left behind (daemons, stragglers)
    plan = launch.prepare_home(ctx.town, cfg, runtime, spawn_id, worktree, env)
    if plan is not None:
        from gastown.runtimes.homes import spawn_env

        env = spawn_env(plan, env)
        argv += list(plan.args)
    launch_file = launch.write_launch_file(ctx.town.run_dir, spawn_id, argv, env, worktree)
    ids = {k: env[k] for k in IDENTITY_VARS if k in env}
    _record_spawn(ctx, hook, spawn_id, runtime, attempt, kind, reason, previous, restarted,
                  log_path=str(log_path), prompt_path=str(prompt_path))
    reuse = previous.pane_id if previous is not None and previous.host == LOCAL else None
    try:
        pane = launch.open_pane(
            ctx.tmux, session=session_name(hook.rig), window=hook.polecat, cwd=worktree, launch_file=launch_file,
            ids=ids, log_path=log_path, spawn_id=spawn_id, prestarted=prestarted,
            reuse_pane=reuse if reuse and _pane_belongs(ctx.tmux, reuse, hook) else None,
        )
        with ctx.ledger.write() as conn:
            work.update_spawn(conn, spawn_id, pane_id=pane, pid=launch.pane_pid(ctx.tmux, pane))
        launch.check_started(ctx.tmux, pane)
    except BaseException as exc:
        launch.discard_launch_file(launch_file)
        _fail_spawn(ctx, spawn_id, exc)
        raise
    return _started(ctx, spawn_id)


def _start_remote_spawn(ctx: Context, hook: work.Hook, *, kind: str, reason: str, restarted: bool) -> work.Spawn:
    """``start_spawn`` on an SSH host: the prompt, the report-back token (0600) and the
    launch file travel in one round trip, the window, tag, log pipe and release in one
    more. The agent reports back through the town's server over the host's tunnel
    (``GT_HUB_SOCKET``), with a token that dies with the spawn; it gets no private home
    here (it runs with the host user's own CLI login) and no secret of the hub's."""
    from gastown.hosts.base import LaunchSpec
    from gastown.hosts.tokens import new_token

    runtime = runtime_for(ctx.config, hook.rig, hook.agent)
    driver = ctx.host(hook.host)
    layout = driver.layout
    conn = ctx.ledger.connection()
    previous = work.get_spawn(conn, hook.spawn) if hook.spawn else None
    spawn_id = new_id("sp")
    attempt = work.attempts_for(conn, hook.issue) + 1
    worktree = layout.polecat_path(hook.rig, hook.polecat)
    prompt_path = layout.prompt_path(spawn_id)
    log_path = layout.log_path(hook.rig, hook.polecat, spawn_id)
    token_file = layout.secrets_dir(spawn_id) / "token"
    prompt = _prompt(ctx, hook, attempt=attempt, kind=kind, reason=reason, worktree=str(worktree))
    hub_copy = ctx.town.prompt_path(spawn_id)  # what the starter pastes and `gt prime` answers with
    hub_copy.parent.mkdir(parents=True, exist_ok=True)
    hub_copy.write_text(prompt, encoding="utf-8")
    hub_socket = driver.ensure_hub_tunnel(_server_port(ctx))
    who = _identity(ctx, hook, spawn_id, attempt, kind)
    env = launch.remote_agent_env(who, runtime, prompt_path=str(prompt_path), hub_socket=str(hub_socket),
                                  token_file=str(token_file))
    argv = launch.agent_argv(runtime, prompt=prompt, prompt_file=prompt_path, path=None)  # found on the host's PATH
    token, digest = new_token()
    spec = LaunchSpec(spawn_id, argv, env, worktree, files={prompt_path: prompt.encode(), token_file: token.encode()},
                      inherit_env=True, unset=launch.UNSET_FOR_AGENTS)
    launch_file = driver.stage_launch(spec)
    ids = {k: env[k] for k in IDENTITY_VARS if k in env}
    _record_spawn(ctx, hook, spawn_id, runtime, attempt, kind, reason, previous, restarted,
                  log_path=str(log_path), prompt_path=str(prompt_path), token_hash=digest)
    reuse = previous.pane_id if previous is not None and previous.host == hook.host else None
    try:
        window = driver.start_agent(
            launch_file, session=session_name(hook.rig), window=hook.polecat, cwd=worktree, ids=ids,
            log_path=log_path, spawn=spawn_id,
            reuse_pane=reuse if reuse and _pane_belongs(driver.tmux, reuse, hook) else None,
        )
        with ctx.ledger.write() as conn:
            work.update_spawn(conn, spawn_id, pane_id=window.pane, pid=window.pid)
        driver.check_started(window.pane)
    except BaseException as exc:
        try:
            driver.discard_launch(launch_file)
        except GastownError:
            pass
        _fail_spawn(ctx, spawn_id, exc)
        raise
    return _started(ctx, spawn_id)


def _started(ctx: Context, spawn_id: str) -> work.Spawn:
    """Hand the started spawn to its starter; its row as it is now."""
    _start_starter(ctx, spawn_id)
    with ctx.ledger.read() as conn:
        fresh = work.get_spawn(conn, spawn_id)
    assert fresh is not None
    return fresh


def _server_port(ctx: Context) -> int:
    """The port of the town's running server, which remote agents report back through."""
    from gastown.errors import NotRunning
    from gastown.roles.serving import running_server

    record = running_server(ctx.town)
    if record is None:
        raise NotRunning("agents on other hosts report back through the town's server, and it is not running",
                          hint="gt up starts it; see `gt status`")
    return record.port


def _identity(ctx: Context, hook: work.Hook, spawn_id: str, attempt: int, kind: str) -> launch.AgentIdentity:
    target = ctx.config.rigs[hook.rig].branch
    return launch.AgentIdentity(hook.rig, hook.polecat, hook.issue, spawn_id, attempt, kind, hook.branch, target)


def _prompt(ctx: Context, hook: work.Hook, *, attempt: int, kind: str, reason: str, worktree: str) -> str:
    issue = get_issue(ctx.ledger.connection(), hook.issue)
    facts = PromptFacts(
        issue_id=issue.id, title=issue.title, body=issue.body, priority=issue.priority, rig=hook.rig,
        polecat=hook.polecat, branch=hook.branch, target=ctx.config.rigs[hook.rig].branch, worktree=worktree,
        kind=kind, attempt=attempt, reason=reason,
        note=hook.note or "",
    )
    return render(facts, _template(ctx, hook.rig))


def _record_spawn(
    ctx: Context, hook: work.Hook, spawn_id: str, runtime: Runtime, attempt: int, kind: str, reason: str,
    previous: work.Spawn | None, restarted: bool, *, log_path: str, prompt_path: str, token_hash: str | None = None,
) -> None:
    """The spawn's row, written before its agent starts; the run it replaces is ended."""
    with ctx.ledger.write() as conn:
        now = ctx.now()
        work.insert_spawn(
            conn, spawn_id=spawn_id, issue=hook.issue, rig=hook.rig, polecat=hook.polecat, agent=runtime.name,
            attempt=attempt, kind=kind, log_path=log_path, prompt_path=prompt_path, now=now, host=hook.host,
            token_hash=token_hash,
        )
        if previous is not None and previous.active:
            work.update_spawn(conn, previous.id, status=SpawnStatus.ENDED, ended_at=now, end_reason=f"replaced: {reason}")
        work.set_hook_spawn(conn, hook.issue, spawn_id, restarted=restarted)
        on_host = f" on {hook.host}" if hook.host != LOCAL else ""
        record_event(
            conn, "spawn", f"{runtime.name} started{on_host} ({kind}, attempt {attempt}): {reason}", now=now,
            rig=hook.rig, polecat=hook.polecat, spawn=spawn_id, issue=hook.issue,
        )


def _final_usage(ctx: Context, spawn_id: str) -> None:
    """Read the run's token usage a last time, now that it has ended."""
    from gastown.costs import collect

    spawn = work.get_spawn(ctx.ledger.connection(), spawn_id)
    if spawn is not None:
        try:
            collect(ctx, spawns=[spawn])
        except GastownError:
            pass


def _sweep(ctx: Context, spawn_id: str) -> None:
    """Stop every process of a finished run that is still around (found by its private home)."""
    from gastown._internal.processes import sweep

    spawn = work.get_spawn(ctx.ledger.connection(), spawn_id)
    if spawn is not None and spawn.host != LOCAL:
        return  # remote runs get no private home to find their processes by
    home = launch.home_path(ctx.town, spawn_id)
    if home.exists():
        server = ctx.tmux.cmd("display-message", "-p", "#{pid}", check=False).stdout.strip()
        sweep(str(home), spare={int(server)} if server.isdigit() else set())


def _pane_belongs(tmux: Tmux, pane: str, hook: work.Hook) -> bool:
    """A pane may be reused only if it is still one of this polecat's (tags survive respawns)."""
    tag = tmux.display(pane, "#{session_name}\t#{window_name}")
    return tag == f"{session_name(hook.rig)}\t{hook.polecat}"


def stop_spawn_pane(ctx: Context, spawn: work.Spawn, *, grace: float) -> str | None:
    """Stop a spawn's agent (its whole process tree) on its host and close its window;
    its last lines, or None if the pane was gone. The caller re-checked the pane's tag."""
    assert spawn.pane_id
    if spawn.host == LOCAL:
        return launch.stop_pane(ctx.tmux, spawn.pane_id, grace=grace)
    return ctx.host(spawn.host).stop_agent(spawn.pane_id, grace=grace)


def _fail_spawn(ctx: Context, spawn_id: str, exc: BaseException) -> None:
    conn = ctx.ledger.connection()
    spawn = work.get_spawn(conn, spawn_id)
    last = None
    if spawn is not None and spawn.pane_id:
        try:
            last = stop_spawn_pane(ctx, spawn, grace=1.0)
        except GastownError:
            pass  # a host that stopped answering: the Witness stops the pane when it is back
    with ctx.ledger.write() as conn:
        work.update_spawn(
            conn, spawn_id, status=SpawnStatus.FAILED, ended_at=ctx.now(), end_reason=f"start failed: {exc}", last_lines=last,
        )


def _template(ctx: Context, rig: str) -> str | None:
    path = ctx.config.rigs[rig].prompt_template
    if not path:
        return None
    full = (ctx.town.root / path).expanduser()
    try:
        return full.read_text(encoding="utf-8")
    except OSError as exc:
        from gastown.errors import ConfigError

        raise ConfigError(f"rigs.{rig}.prompt_template: cannot read {full} ({exc.strerror})") from None


def _start_starter(ctx: Context, spawn_id: str) -> None:
    """Hand the slow part of a start (waiting for ready, dialogs, the prompt paste) to a
    detached helper, so `gt sling` returns as soon as the agent runs."""
    from gastown._internal.proc import spawn_detached

    env = {**ctx.environ, "GT_TMUX_SOCKET": ctx.tmux.socket}
    for var in ("GT_SPAWN", "GT_ISSUE", "GT_POLECAT", "GT_RIG", "GT_ROLE"):
        env.pop(var, None)
    spawn_detached(
        [sys.executable, "-m", "gastown", "_start", spawn_id, "--town", str(ctx.town.root)],
        log_path=ctx.town.logs_dir / "starter.log",
        env=env,
    )


def end_spawn(ctx: Context, spawn_id: str, *, reason: str, grace: float = 5.0) -> None:
    """Stop a spawn's agent (whole process tree) and close its window, keeping its last lines.

    Re-checks that the pane still belongs to this spawn before touching it.
    """
    conn = ctx.ledger.connection()
    spawn = work.get_spawn(conn, spawn_id)
    if spawn is None:
        return
    last = None
    if spawn.pane_id and ctx.tmux_on(spawn.host).display(spawn.pane_id, "#{@gt_spawn}") == spawn_id:
        last = stop_spawn_pane(ctx, spawn, grace=grace)
    _sweep(ctx, spawn_id)
    with ctx.ledger.write() as conn:
        now = ctx.now()
        current = work.get_spawn(conn, spawn_id)
        if current is None:
            return
        values: dict[str, Any] = {"ended_at": current.ended_at or now}
        if current.status not in (SpawnStatus.ENDED, SpawnStatus.FAILED):
            values.update(status=SpawnStatus.ENDED, end_reason=reason)
        if last and not current.last_lines:
            values["last_lines"] = last
        work.update_spawn(conn, spawn_id, **values)
    _final_usage(ctx, spawn_id)
    from gastown.wake import wake

    wake(ctx.town, "scheduler")  # a slot may have freed up
