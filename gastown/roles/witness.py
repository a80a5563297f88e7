"""The Witness: one patrol of one rig — gather, ``assess``, act.

Gathering costs one ``tmux list-panes -a`` plus a ``stat`` of each agent's log; a pane's
text is read only when its log grew since it was last read (a screen only changes
with output), so fifty quiet agents cost no captures at all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from gastown._internal.locks import file_lock
from gastown._internal.log import logger
from gastown.context import Context
from gastown.errors import GastownError
from gastown.hosts import LOCAL
from gastown.ledger import work
from gastown.ledger.events import record_event
from gastown.ledger.holds import (
    HoldKind,
    HoldScope,
    get_hold,
    list_holds,
    place_hold,
    release_hold,
)
from gastown.roles import host_watch
from gastown.roles import witness_policy as wp
from gastown.roles.polecat import end_spawn, start_spawn
from gastown.runtimes.registry import Runtime, spawn_runtime
from gastown.screen import Screen, read_screen
from gastown.tmux.delivery import deliver
from gastown.tmux.names import PaneInfo

log = logger(__name__)


@dataclass
class _Seen:
    log_size: int
    screen: Screen | None
    idle_since: float | None


@dataclass
class Witness:
    """Patrols one rig. Keeps only a cache of what it last saw on each screen; the
    truth stays in the ledger, tmux and the logs."""

    ctx: Context
    rig: str
    seen: dict[str, _Seen] = field(default_factory=dict)
    limited: dict[str, str] = field(default_factory=dict)  # spawn -> runtime it waits on
    captures: int = 0
    hosts: host_watch.HostMemory = field(default_factory=host_watch.HostMemory)  # checkpoints and tunnels, per host
    looks: host_watch.HostLooks = field(default_factory=host_watch.HostLooks)  # the last patrol's look at remote hosts

    def policy(self) -> wp.Policy:
        w = self.ctx.config.witness
        return wp.Policy(
            spawn_grace=w.spawn_grace, stall_after=w.stall_after, idle_after=w.idle_after,
            max_nudges=w.max_nudges, max_restarts=w.max_restarts, rate_limit_backoff=w.rate_limit_backoff,
        )

    def patrol(self) -> list[wp.Action]:
        """One cycle: returns the actions it took (for tests and the log)."""
        now = self.ctx.now()
        snap = self.gather(now)
        actions = wp.assess(snap, now, self.policy())
        _log_restarts(self.rig, snap, actions)
        for action in actions:
            try:
                self.apply(action)
            except GastownError as exc:  # one failed action (a ledger error included) never skips the rest
                log.warning("witness %s: %s failed: %s", self.rig, type(action).__name__, exc)
            except Exception:  # noqa: BLE001 - a bug: logged with its traceback, the patrol goes on
                log.exception("witness %s: %s failed unexpectedly", self.rig, type(action).__name__)
        self.move_off_vanished_hosts()
        self.announce_mail()
        return actions

    def move_off_vanished_hosts(self) -> None:
        """Hooks on a host unreachable past its grace resume elsewhere (``host_watch``)."""
        if not self.looks.unreachable:
            return
        try:
            overdue = host_watch.overdue_hosts(self.ctx, self.looks.unreachable)
            if overdue:
                host_watch.move_hooks(self.ctx, self.rig, overdue)
        except GastownError as exc:
            log.warning("witness %s: moving work off unreachable hosts failed: %s", self.rig, exc)

    def announce_mail(self) -> None:
        """Tell idle agents about new mail; a failure here never breaks the patrol."""
        from gastown.roles.announcer import announce_pending

        try:
            announce_pending(self.ctx, self.rig)
        except Exception as exc:  # noqa: BLE001 - mail notices are best effort; the mail itself is safe
            log.warning("witness %s: announcing mail failed: %s", self.rig, exc)

    # -- gathering ----------------------------------------------------------------------

    def gather(self, now: float, panes: list[PaneInfo] | None = None) -> wp.Snapshot:
        with self.ctx.ledger.read() as conn:
            spawns = work.spawns_with_status(conn, work.ACTIVE_STATUSES, self.rig)
            waiting = work.waiting_hooked_issues(conn, self.rig)  # blocked, stopped by hand, or closed
            all_hooks = work.list_hooks(conn, self.rig)
            hooks = [h for h in all_hooks if h.issue not in waiting]
            waiting_spawns = {h.spawn: waiting[h.issue] for h in all_hooks if h.issue in waiting and h.spawn}
            closed_hooks = tuple(sorted(issue for issue, why in waiting.items() if why == "closed"))
            holds = {h.scope.subject or "": h.until for h in list_holds(conn, HoldKind.RUNTIME)}
            paused = get_hold(conn, HoldScope.pause()) is not None
        if panes is None:  # no agent here: no tmux call at all
            panes = self.ctx.tmux.list_panes() if any(s.host == LOCAL for s in spawns) else []
        self.looks = looks = host_watch.look(self.ctx, self.rig, spawns, self.hosts)
        by_pane = {(LOCAL, p.pane_id): p for p in panes} | looks.panes
        current = {h.spawn for h in hooks if h.spawn}
        active_issues = {s.issue for s in spawns if s.status in work.LIVE_STATUSES and s.id in current}
        agents = []
        updates: dict[str, dict[str, object]] = {}
        runtimes: dict[str, Runtime | None] = {}
        for spawn in spawns:
            if spawn.host in looks.unreachable:
                continue  # unknown, not dead: nothing is decided about an agent nobody can see
            pane = by_pane.get((spawn.host, spawn.pane_id or ""))
            alive = pane is not None and pane.spawn == spawn.id and not pane.dead
            size = _size(spawn.log_path) if spawn.host == LOCAL else looks.log_sizes.get(spawn.log_path, 0)
            last_output = spawn.last_output_at or spawn.started_at
            limited = None
            if size != spawn.log_size:
                last_output = now
                updates[spawn.id] = {"log_size": size, "last_output_at": now}
                runtime = runtimes.get(spawn.agent) or runtimes.setdefault(spawn.agent, self._runtime(spawn.agent))
                if runtime is not None and size > spawn.log_size:
                    limited = rate_limit_notice(spawn.log_path, spawn.log_size, size, runtime, read=self._reader(spawn))
            screen, idle_since = self._screen(spawn, alive, size, now)
            exit_status = pane.dead_status if pane is not None and pane.dead else None
            runtime = runtimes.get(spawn.agent) or runtimes.setdefault(spawn.agent, self._runtime(spawn.agent))
            submits = runtime is not None and runtime.submit == "gastown"
            # Reading git costs a process: only when a submit could follow.
            maybe_done = (not alive and exit_status == 0) or (submits and screen is not None and screen.idle)
            agents.append(
                wp.AgentObs(
                    spawn=spawn, current=spawn.id in current, pane_alive=alive, exit_status=exit_status,
                    last_output_at=last_output, screen=screen, idle_since=idle_since, limited=limited,
                    new_work=maybe_done and spawn.status in ("starting", "running") and self._new_work(spawn),
                    gastown_submits=submits,
                )
            )
        if updates:
            with self.ctx.ledger.write() as conn:
                for spawn_id, values in updates.items():
                    work.update_spawn(conn, spawn_id, **values)
        away = looks.away
        orphans = tuple(h for h in hooks if h.issue not in active_issues and not _finishing(h, spawns) and h.host not in away)
        live_holds = {rt for rt, until in holds.items() if until is None or until > now}
        for spawn_id in [s for s in self.limited if s not in {a.spawn.id for a in agents}]:
            del self.limited[spawn_id]
        wake = frozenset(s for s, rt in self.limited.items() if rt not in live_holds)
        return wp.Snapshot(
            rig=self.rig, agents=tuple(agents), orphan_hooks=orphans,
            restarts={h.issue: h.restarts for h in hooks}, holds=holds, paused=paused, wake_after_hold=wake,
            waiting=waiting_spawns, closed_hooks=closed_hooks,
        )

    def _new_work(self, spawn: work.Spawn) -> bool:
        """Work not yet submitted: commits made (or files changed) in the worktree since this
        run started, or commits on the branch ahead of the target that no merge request of
        the issue holds yet (an earlier run's work: a headless CLI restarted after it
        committed finds nothing left to do and exits, and that work is still to submit).

        Files the agent CLIs leave for themselves (aider's tag cache, ...) are not work.
        """
        from gastown.git import worktrees as wt
        from gastown.git.cmd import Git
        from gastown.ledger.mrs import list_mrs
        from gastown.roles.done import TOOL_DROPPINGS

        if spawn.host != LOCAL:
            return self.ctx.host(spawn.host).new_work_since(spawn.rig, spawn.polecat, spawn.started_at, TOOL_DROPPINGS)
        path = self.ctx.town.polecat_path(spawn.rig, spawn.polecat)
        git = Git(path)
        head = git.run("log", "-1", "--format=%H %ct", "HEAD", check=False).stdout.split()
        if len(head) == 2 and head[1].isdigit() and int(head[1]) >= int(spawn.started_at):
            return True
        excludes = [f":(exclude){pattern}" for pattern in TOOL_DROPPINGS]
        if git.run("status", "--porcelain", "--", ".", *excludes, check=False).stdout.strip():
            return True
        if len(head) != 2 or spawn.rig not in self.ctx.settings.rigs:
            return False
        target = wt.target_ref(self.ctx.settings.rigs[spawn.rig].branch)
        ahead = git.run("rev-list", "--count", f"{target}..HEAD", check=False).stdout.strip()
        if not ahead.isdigit() or int(ahead) == 0:
            return False
        submitted = {mr.commit_sha for mr in list_mrs(self.ctx.ledger.connection(), issue=spawn.issue)}
        return head[0] not in submitted

    def _log_size(self, spawn: work.Spawn) -> int:
        if spawn.host == LOCAL:
            return _size(spawn.log_path)
        path = PurePosixPath(spawn.log_path)
        return self.ctx.host(spawn.host).snapshot([path]).log_sizes.get(spawn.log_path, 0)

    def _reader(self, spawn: work.Spawn) -> Callable[[int, int], bytes] | None:
        """How to read a remote agent's log (None: it is a file here)."""
        if spawn.host == LOCAL:
            return None
        driver, path = self.ctx.host(spawn.host), PurePosixPath(spawn.log_path)
        return lambda start, end: driver.read_log(path, start, end)

    def _runtime(self, name: str) -> Runtime | None:
        try:
            return spawn_runtime(self.ctx.config, self.rig, name)
        except GastownError:
            return None

    def _screen(self, spawn: work.Spawn, alive: bool, size: int, now: float) -> tuple[Screen | None, float | None]:
        if not alive or spawn.status == "done":
            self.seen.pop(spawn.id, None)
            return None, None
        cached = self.seen.get(spawn.id)
        if cached is not None and cached.log_size == size:
            return cached.screen, cached.idle_since
        try:
            runtime = spawn_runtime(self.ctx.config, spawn.rig, spawn.agent)
            text = self.ctx.tmux_on(spawn.host).capture(spawn.pane_id or "")
        except GastownError:
            return None, None
        self.captures += 1
        screen = read_screen(text, runtime)
        idle_since = (cached.idle_since if cached and cached.idle_since else now) if screen.idle else None
        self.seen[spawn.id] = _Seen(size, screen, idle_since)
        return screen, idle_since

    # -- acting -------------------------------------------------------------------------

    def apply(self, action: wp.Action) -> None:
        if isinstance(action, wp.Observe):
            self._observe(action)
        elif isinstance(action, wp.Restart):
            self._restart(action)
        elif isinstance(action, wp.Block):
            self._block(action)
        elif isinstance(action, wp.Nudge):
            self._nudge(action)
        elif isinstance(action, wp.AnswerDialog):
            self._answer(action)
        elif isinstance(action, wp.Hold):
            self._hold(action)
        elif isinstance(action, wp.Release):
            self._release(action)
        elif isinstance(action, wp.EndPane):
            end_spawn(self.ctx, action.spawn, reason=action.reason, grace=2.0)
        elif isinstance(action, wp.Submit):
            self._submit(action)
        elif isinstance(action, wp.ReleaseHook):
            from gastown.roles.by_hand import release_closed_hook

            release_closed_hook(self.ctx, action.issue)
        else:  # a new action type the policy learned but the patrol did not: a bug, said loudly
            raise TypeError(f"the witness cannot apply {type(action).__name__}")

    def _event(self, kind: str, message: str, spawn: work.Spawn | None = None, issue: str | None = None) -> None:
        with self.ctx.ledger.write() as conn:
            record_event(
                conn, kind, message, now=self.ctx.now(), rig=self.rig,
                polecat=spawn.polecat if spawn else None, spawn=spawn.id if spawn else None,
                issue=issue or (spawn.issue if spawn else None),
            )

    def _observe(self, action: wp.Observe) -> None:
        conn = self.ctx.ledger.connection()
        spawn = work.get_spawn(conn, action.spawn)
        if spawn is not None and spawn.observed != action.state:
            with self.ctx.ledger.write() as conn:
                work.update_spawn(conn, action.spawn, observed=action.state)
                if action.state in ("dead", "stalled"):
                    record_event(
                        conn, action.state, f"agent is {action.state}", now=self.ctx.now(), rig=self.rig,
                        polecat=spawn.polecat, spawn=spawn.id, issue=spawn.issue,
                    )

    def _recheck(self, issue: str, spawn_id: str | None, why: str) -> work.Hook | None:
        """The hook, if the situation that called for a restart still holds right now."""
        conn = self.ctx.ledger.connection()
        hook = work.get_hook(conn, issue)
        if hook is None or (hook.spawn != spawn_id and why != "orphan"):
            return None
        if hook.stopped or issue in work.waiting_hooked_issues(conn, hook.rig):
            return None  # stopped, blocked or closed since the snapshot: a person has it
        spawn = work.get_spawn(conn, hook.spawn) if hook.spawn else None
        if why == "orphan":
            if spawn is not None and spawn.status in work.ACTIVE_STATUSES:
                return None
            return hook
        assert spawn is not None
        if spawn.status not in work.LIVE_STATUSES:
            return None
        pane = self.ctx.tmux_on(spawn.host).display(spawn.pane_id or "", "#{pane_dead}\t#{@gt_spawn}")
        alive = pane == f"0\t{spawn.id}"
        if why == "dead":
            return hook if not alive else None
        if why == "stalled":
            return hook if self._log_size(spawn) == spawn.log_size else None
        return hook  # slow start: still not running

    def _restart(self, action: wp.Restart) -> None:
        with file_lock(self.ctx.town.locks_dir / f"issue-{action.issue}.lock", timeout=30, what=f"issue {action.issue}"):
            hook = self._recheck(action.issue, action.spawn, action.why)
            if hook is None:
                return
            conn = self.ctx.ledger.connection()
            previous = work.get_spawn(conn, hook.spawn) if hook.spawn else None
            counted = action.why != "orphan" or (previous is not None and previous.status == "failed")
            if previous is not None and previous.status in work.LIVE_STATUSES and action.why != "dead":
                end_spawn(self.ctx, previous.id, reason=f"restarted: {action.reason}", grace=2.0)
            self._event(
                "restart" if counted else "resume",
                f"{'restarting' if counted else 'resuming'} {hook.rig}/{hook.polecat}: {action.reason}",
                previous, hook.issue,
            )
            try:
                start_spawn(self.ctx, hook, kind="resume", reason=action.reason, restarted=counted)
            except GastownError as exc:
                self._event("restart", f"restart of {hook.rig}/{hook.polecat} failed: {exc}", previous, hook.issue)
                if not counted:
                    with self.ctx.ledger.write() as conn:
                        work.set_hook_spawn(conn, hook.issue, hook.spawn, restarted=True)

    def _block(self, action: wp.Block) -> None:
        from gastown.ledger.escalations import raise_escalation

        with file_lock(self.ctx.town.locks_dir / f"issue-{action.issue}.lock", timeout=30, what=f"issue {action.issue}"):
            conn = self.ctx.ledger.connection()
            hook = work.get_hook(conn, action.issue)
            if hook is None or action.issue in work.waiting_hooked_issues(conn, hook.rig):
                return  # released, stopped, blocked or closed since the snapshot
            current = work.get_spawn(conn, hook.spawn) if hook.spawn else None
            if action.spawn is None and current is not None and current.active:
                return  # an orphan that got an agent since the snapshot (`gt restart`, `gt sling`)
            if action.spawn is not None and hook.spawn != action.spawn:
                return  # the run it gave up on was replaced since the snapshot
            if hook.spawn:
                end_spawn(self.ctx, hook.spawn, reason=f"given up: {action.reason}", grace=2.0)
            # The hook stays: the worktree and branch keep the work; reopening resumes it.
            raise_escalation(
                self.ctx.ledger, f"{hook.rig}/{hook.polecat} on {action.issue}: {action.reason}", severity="high",
                source="witness", issue=action.issue, polecat=hook.polecat, spawn=hook.spawn, block_issue=True,
            )

    def _nudge(self, action: wp.Nudge) -> None:
        self.limited.pop(action.spawn, None)
        conn = self.ctx.ledger.connection()
        spawn = work.get_spawn(conn, action.spawn)
        if spawn is None or not spawn.pane_id or not spawn.live:
            return
        runtime = spawn_runtime(self.ctx.config, spawn.rig, spawn.agent)
        with self.ctx.ledger.write() as conn:
            work.update_spawn(conn, spawn.id, nudges=spawn.nudges + 1, last_nudge_at=self.ctx.now())
            record_event(
                conn, "nudge", f"witness nudged {spawn.rig}/{spawn.polecat}: {action.reason}", now=self.ctx.now(),
                rig=self.rig, polecat=spawn.polecat, spawn=spawn.id, issue=spawn.issue,
            )
        tmux = self.ctx.tmux_on(spawn.host)
        deliver(
            tmux, spawn.pane_id, action.text, runtime=runtime, locks_dir=self.ctx.town.locks_dir,
            wait_idle=not action.force, idle_timeout=10.0, lock_timeout=15.0, enter_tries=2,
            still_wanted=lambda: tmux.display(spawn.pane_id or "", "#{@gt_spawn}") == spawn.id,
        )

    def _submit(self, action: wp.Submit) -> None:
        """`gt done` on the agent's behalf: its leftovers saved, its commits queued."""
        from gastown.roles.done import AgentSelf

        conn = self.ctx.ledger.connection()
        spawn = work.get_spawn(conn, action.spawn)
        if spawn is None or spawn.status not in ("starting", "running"):
            return
        with file_lock(self.ctx.town.locks_dir / f"issue-{spawn.issue}.lock", timeout=30, what=f"issue {spawn.issue}"):
            hook = work.get_hook(self.ctx.ledger.connection(), spawn.issue)
            if hook is None or hook.spawn != spawn.id:
                return
            if self._git_busy(spawn):
                return  # the agent is still committing (aider does after its answer): next patrol
            self._event("done", f"submitting for {spawn.rig}/{spawn.polecat}: {action.reason}", spawn)
            try:
                self._done_when_git_is_free(spawn, AgentSelf(self.ctx.town, spawn.rig, spawn.polecat, spawn.issue, spawn.id))
            except GastownError as exc:
                # Counted as a nudge: after max_nudges the agent is restarted, not retried forever.
                with self.ctx.ledger.write() as conn:
                    work.update_spawn(conn, spawn.id, nudges=spawn.nudges + 1, last_nudge_at=self.ctx.now())
                    record_event(
                        conn, "done", f"could not submit for {spawn.rig}/{spawn.polecat}: {exc}", now=self.ctx.now(),
                        rig=self.rig, polecat=spawn.polecat, spawn=spawn.id, issue=spawn.issue,
                    )

    def _done_when_git_is_free(self, spawn: work.Spawn, me: Any, *, tries: int = 10, pause: float = 0.5) -> None:
        """`gt done` for the agent; an agent whose own git command takes the index lock
        meanwhile (aider commits after its answer) is waited for, a few seconds at most."""
        from gastown.errors import GitError
        from gastown.roles.done import done

        for attempt in range(tries):
            try:
                done(self.ctx, me)
                return
            except GitError as exc:
                if attempt == tries - 1 or not ("index.lock" in str(exc) or "remove the file manually" in str(exc)):
                    raise
                time.sleep(pause)

    def _git_busy(self, spawn: work.Spawn) -> bool:
        """Whether a git command holds the worktree's index lock right now."""
        from gastown.git.cmd import Git

        worktree = self.ctx.town.polecat_path(spawn.rig, spawn.polecat)
        lock = Git(worktree).run("rev-parse", "--git-path", "index.lock", check=False).stdout.strip()
        return bool(lock) and (worktree / lock).exists()

    def _answer(self, action: wp.AnswerDialog) -> None:
        from gastown.roles.starter import answer_dialog

        spawn = work.get_spawn(self.ctx.ledger.connection(), action.spawn)
        if spawn is not None and spawn.pane_id:
            self.seen.pop(spawn.id, None)
            answer_dialog(self.ctx, spawn, action.keys, action.dialog)

    def _hold(self, action: wp.Hold) -> None:
        from gastown.ledger.timefmt import iso

        self.limited[action.spawn] = action.runtime
        with self.ctx.ledger.write() as conn:
            now = self.ctx.now()
            place_hold(conn, HoldScope.runtime(action.runtime), reason=action.line[:300], now=now, until=action.until,
                       replace=False)
            spawn = work.get_spawn(conn, action.spawn)
            record_event(
                conn, "hold", f"{action.runtime} is rate limited until {iso(action.until)}: {action.line[:160]}",
                now=now, rig=self.rig, polecat=spawn.polecat if spawn else None, spawn=action.spawn,
                issue=spawn.issue if spawn else None, data={"runtime": action.runtime, "until": action.until},
            )

    def _release(self, action: wp.Release) -> None:
        with self.ctx.ledger.write() as conn:
            if release_hold(conn, HoldScope.runtime(action.runtime), expired_by=self.ctx.now()):
                record_event(conn, "resume", f"{action.runtime}: rate limit over, dispatch resumes", now=self.ctx.now(), rig=self.rig)
        from gastown.wake import wake

        wake(self.ctx.town, "scheduler")


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _finishing(hook: work.Hook, spawns: list[work.Spawn]) -> bool:
    """A hook whose current spawn is starting, running or finishing has an agent."""
    return any(s.id == hook.spawn and s.status in work.ACTIVE_STATUSES for s in spawns)


def rate_limit_notice(
    log_path: str, old_size: int, new_size: int, runtime: Runtime, *, read: Callable[[int, int], bytes] | None = None
) -> str | None:
    """The first rate-limit line in what the agent printed since ``old_size`` (read from its
    log: a file here, or through ``read`` on another host)."""
    from gastown.logtail import plain_lines

    if not runtime.rate_limit_res:
        return None
    start = max(old_size, new_size - 65536)
    try:
        if read is not None:
            chunk = read(start, new_size)
        else:
            with open(log_path, "rb") as handle:
                handle.seek(start)
                chunk = handle.read(new_size - start)
    except (OSError, GastownError):
        return None
    for line in plain_lines(chunk.decode("utf-8", "replace")):
        if any(pattern.search(line) for pattern in runtime.rate_limit_res):
            return line.strip()
    return None


def _log_restarts(rig: str, snap: wp.Snapshot, actions: list[wp.Action]) -> None:
    """What the Witness saw of each agent it restarts (for post-mortems: mayor.log)."""
    seen = {a.spawn.id: a for a in snap.agents}
    for action in actions:
        if isinstance(action, wp.Restart) and action.spawn in seen:
            obs = seen[action.spawn]
            log.info("witness %s: restarting %s (%s): status %s, pane %s alive=%s exit=%s, new_work=%s", rig,
                     action.spawn, action.reason, obs.spawn.status, obs.spawn.pane_id, obs.pane_alive,
                     obs.exit_status, obs.new_work)
