"""The ways out a person takes by hand: `gt stop`, `gt restart`, `gt unsling`, and closing
or reopening an issue whatever state its work is in.

Every operation holds the issue's lock (``issue-<id>.lock``, shared with `gt sling`,
the Witness's restarts and blocks, and the scheduler), so a patrol never acts on a
hook half-way through being changed. Agents are stopped before their hook changes, and
a hook that is about to go is first marked stopped, so no patrol resumes it meanwhile.

Never loses work: before a hook is released, uncommitted changes in its worktree are
committed on its branch and every commit that is neither on the target nor already kept
is archived under ``refs/gastown/archive/`` (the event and the result name the ref).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gastown._internal.locks import file_lock
from gastown.context import Context
from gastown.errors import Conflict, NotFound
from gastown.ledger import issues, queue, work
from gastown.ledger.escalations import resolve_for_issue
from gastown.ledger.events import record_event
from gastown.ledger.issues import Issue, get_issue, set_issue_status
from gastown.ledger.mrs import SENT_BACK_STATES, list_mrs, retire_for_issue
from gastown.roles.polecat import end_spawn, start_spawn
from gastown.states import IssueStatus, MRState


@dataclass(frozen=True)
class HandResult:
    """What one by-hand operation did. ``action``: ``stopped``, ``restarted``, ``queued``
    (no capacity yet: it starts when a slot frees), ``unslung``, ``closed``, ``reopened``
    or ``already`` (nothing to do)."""

    action: str
    issue: str
    status: str  # the issue's status afterwards
    rig: str | None = None
    polecat: str | None = None
    spawn: str | None = None  # the run stopped (stop, unsling, close) or started (restart)
    archived: list[str] = field(default_factory=list)  # refs/gastown/archive/... made
    rejected: list[str] = field(default_factory=list)  # merge requests rejected (close)
    testing: str | None = None  # close: an MR being tested right now, which may still merge
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@contextlib.contextmanager
def _issue_lock(ctx: Context, issue_id: str) -> Iterator[None]:
    with file_lock(ctx.town.locks_dir / f"issue-{issue_id}.lock", timeout=120, what=f"issue {issue_id}"):
        yield


def _hook_of(ctx: Context, target: str) -> work.Hook:
    from gastown.roles.fleet import polecat_target

    rig, polecat = polecat_target(ctx, target)
    conn = ctx.ledger.connection()
    if polecat not in work.polecat_names(conn, rig):
        raise NotFound(f"no polecat {rig}/{polecat}", hint="see `gt polecat list`")
    hook = work.hook_of_polecat(conn, rig, polecat)
    if hook is None:
        raise Conflict(f"polecat {rig}/{polecat} has no issue on its hook", hint="give it work with `gt sling ISSUE`")
    return hook


def _recheck(ctx: Context, hook: work.Hook) -> work.Hook:
    """The hook again, under the issue's lock: it may have been released or moved meanwhile."""
    fresh = work.get_hook(ctx.ledger.connection(), hook.issue)
    if fresh is None or (fresh.rig, fresh.polecat) != (hook.rig, hook.polecat):
        raise Conflict(f"{hook.rig}/{hook.polecat} no longer holds {hook.issue}", hint="see `gt agents`; then try again")
    return fresh


def _end_current(ctx: Context, hook: work.Hook, reason: str) -> str | None:
    """End the hook's current run if it still holds a slot; returns its id if it did."""
    spawn = work.get_spawn(ctx.ledger.connection(), hook.spawn) if hook.spawn else None
    if spawn is None or not spawn.active:
        return None
    end_spawn(ctx, spawn.id, reason=reason, grace=ctx.config.witness.stop_timeout)
    return spawn.id


# -- one agent at a time ----------------------------------------------------------------


def stop(ctx: Context, target: str) -> HandResult:
    """`gt stop RIG/POLECAT`: stop the agent and keep its hook; the issue waits (no patrol
    resumes it and it holds no capacity slot) until `gt restart` or `gt sling`.
    Idempotent."""
    hook = _hook_of(ctx, target)
    with _issue_lock(ctx, hook.issue):
        hook = _recheck(ctx, hook)
        with ctx.ledger.write() as conn:
            now = ctx.now()
            if not hook.stopped:
                work.mark_hook_stopped(conn, hook.issue, reason="stopped by hand (gt stop)", now=now)
            queue.dequeue(conn, hook.issue)  # a queued resume waits for `gt restart` too
        ended = _end_current(ctx, hook, "stopped by hand (gt stop)")
        with ctx.ledger.write() as conn:
            record_event(conn, "stop", f"{hook.rig}/{hook.polecat} stopped by hand; its work waits on its hook",
                         now=ctx.now(), rig=hook.rig, polecat=hook.polecat, spawn=ended, issue=hook.issue)
        status = str(get_issue(ctx.ledger.connection(), hook.issue).status)
    return HandResult(
        "stopped" if ended or not hook.stopped else "already", hook.issue, status, hook.rig, hook.polecat, ended,
        message=f"stopped {hook.rig}/{hook.polecat}; {hook.issue} waits on its hook: "
                f"`gt restart {hook.rig}/{hook.polecat}` resumes it, `gt unsling {hook.issue}` releases it",
    )


def restart(ctx: Context, target: str) -> HandResult:
    """`gt restart RIG/POLECAT`: a fresh run of the agent in the same worktree and branch,
    with a resume prompt. A running agent is replaced; a stopped or blocked one is started
    again (queued if the rig or town is at capacity). Not counted as a Witness restart."""
    hook = _hook_of(ctx, target)
    with _issue_lock(ctx, hook.issue):
        hook = _recheck(ctx, hook)
        issue = get_issue(ctx.ledger.connection(), hook.issue)
        spawn = work.get_spawn(ctx.ledger.connection(), hook.spawn) if hook.spawn else None
        running = spawn is not None and spawn.active
        if not running and not _room_for(ctx, hook):
            return _queue_resume(ctx, hook, issue, "restarted by hand")
        _wake_hook(ctx, hook, issue, "restarted by hand (gt restart)")
        ended = _end_current(ctx, hook, "restarted by hand (gt restart)")
        started = start_spawn(ctx, _recheck(ctx, hook), kind="resume", reason="restarted by hand (gt restart)")
    return HandResult(
        "restarted", hook.issue, str(IssueStatus.HOOKED), hook.rig, hook.polecat, started.id,
        message=f"restarted {hook.rig}/{hook.polecat} on {hook.issue} (spawn {started.id}"
                + (f", replacing {ended})" if ended else ")") + f"; watch with gt attach {hook.rig}/{hook.polecat}",
    )


def _room_for(ctx: Context, hook: work.Hook) -> bool:
    from gastown.roles.admission import admit
    from gastown.roles.scheduler import gather_capacity
    from gastown.runtimes.registry import rig_runtime_name

    return admit(hook.rig, rig_runtime_name(ctx.config, hook.rig, hook.agent), gather_capacity(ctx), ctx.now()).start


def _wake_hook(ctx: Context, hook: work.Hook, issue: Issue, why: str) -> None:
    """Make a waiting hook (stopped, blocked) runnable again; the caller starts its agent."""
    with ctx.ledger.write() as conn:
        now = ctx.now()
        work.clear_hook_stopped(conn, hook.issue)
        if issue.status == IssueStatus.BLOCKED:
            set_issue_status(conn, issue.id, IssueStatus.HOOKED, now=now)
            record_event(conn, "issue", f"unblocked: {why}", now=now, rig=hook.rig, issue=issue.id)
            resolve_for_issue(conn, issue.id, resolution=why, now=now)
        queue.dequeue(conn, hook.issue)


def _queue_resume(ctx: Context, hook: work.Hook, issue: Issue, why: str) -> HandResult:
    """No room now: the waiting hook is queued (it stays stopped until the scheduler starts it)."""
    with ctx.ledger.write() as conn:
        now = ctx.now()
        if issue.status == IssueStatus.BLOCKED:
            set_issue_status(conn, issue.id, IssueStatus.HOOKED, now=now)
            resolve_for_issue(conn, issue.id, resolution=why, now=now)
        if not hook.stopped:
            work.mark_hook_stopped(conn, hook.issue, reason=f"{why}: waiting for a slot", now=now)
        queue.enqueue(conn, issue=hook.issue, rig=hook.rig, polecat=hook.polecat, agent=hook.agent,
                      priority=issue.priority, kind="resume", start_point=None, note=None, now=now)
        record_event(conn, "queued", f"{why}: queued until a slot frees", now=now, rig=hook.rig,
                     polecat=hook.polecat, issue=hook.issue)
    return HandResult("queued", hook.issue, str(IssueStatus.HOOKED), hook.rig, hook.polecat,
                      message=f"{hook.issue}: the town or rig is at capacity; {hook.rig}/{hook.polecat} "
                              "resumes it when a slot frees" + _unless_no_mayor(ctx))


def _unless_no_mayor(ctx: Context) -> str:
    from gastown.roles.mayor import running_pid

    return "" if running_pid(ctx.town) is not None else " (once the Mayor runs: `gt up`)"


# -- releasing a hook --------------------------------------------------------------------


def unsling(ctx: Context, issue_id: str) -> HandResult:
    """`gt unsling ISSUE`: stop its agent, archive its unmerged work, release its hook (or
    its place in the sling queue) and put the issue back to ``open``.

    Refused while one of its merge requests is queued or being tested (its work is in the
    merge queue: `gt mq reject` it first). Idempotent for an open issue with nothing on a
    hook."""
    with _issue_lock(ctx, issue_id):
        conn = ctx.ledger.connection()
        issue = get_issue(conn, issue_id)
        hook = work.get_hook(conn, issue_id)
        queued = queue.get_queued(conn, issue_id)
        if hook is None and queued is None and issue.status in (IssueStatus.OPEN, IssueStatus.CLOSED):
            return HandResult("already", issue_id, str(issue.status),
                              message=f"{issue_id} is {issue.status} and on no hook: nothing to unsling")
        in_queue = [m.id for m in list_mrs(conn, states=(MRState.QUEUED, MRState.REVIEWING, MRState.TESTING),
                                           issue=issue_id)]
        if in_queue:
            raise Conflict(
                f"issue {issue_id} has work in the merge queue ({', '.join(in_queue)})",
                hint=f"reject it first: gt mq reject {in_queue[0]}",
            )
        return _release(ctx, issue, hook, close_reason=None)


def close_issue(ctx: Context, issue_id: str, *, reason: str | None) -> HandResult:
    """`gt issue close`: whatever the issue's state, release it (as `gt unsling` does, work
    archived), reject its merge requests that are waiting or sent back, and close it.
    Idempotent. An MR being tested right now cannot be taken back and may still merge;
    the result names it."""
    with _issue_lock(ctx, issue_id):
        conn = ctx.ledger.connection()
        issue = get_issue(conn, issue_id)
        hook = work.get_hook(conn, issue_id)
        if issue.status == IssueStatus.CLOSED and hook is None and queue.get_queued(conn, issue_id) is None:
            return HandResult("already", issue_id, str(issue.status), message=f"{issue_id} is already closed")
        return _release(ctx, issue, hook, close_reason=reason or "closed by hand")


def release_closed_hook(ctx: Context, issue_id: str) -> HandResult | None:
    """A closed issue still on a hook (closed by an older gastown): release it as closing
    does now. For the Witness; None if there is nothing (left) to release."""
    with _issue_lock(ctx, issue_id):
        conn = ctx.ledger.connection()
        issue = issues.find_issue(conn, issue_id)
        hook = work.get_hook(conn, issue_id)
        if issue is None or hook is None or issue.status != IssueStatus.CLOSED:
            return None
        return _release(ctx, issue, hook, close_reason=issue.close_reason or "closed")


def _release(ctx: Context, issue: Issue, hook: work.Hook | None, *, close_reason: str | None) -> HandResult:
    """Stop, archive, release; then the issue is ``open`` (unsling) or ``closed``. Holds the lock."""
    verb = "closed" if close_reason is not None else "unslung"
    why = f"{verb} by hand" if close_reason is None or close_reason == "closed by hand" else f"closed: {close_reason}"
    ended, archived = None, []
    if hook is not None:
        if not hook.stopped:
            with ctx.ledger.write() as conn:
                work.mark_hook_stopped(conn, hook.issue, reason=why, now=ctx.now())  # no patrol resumes it now
        ended = _end_current(ctx, hook, why)
        archived = archive_hook_work(ctx, hook)
    rejected: list[str] = []
    with ctx.ledger.write() as conn:
        now = ctx.now()
        if hook is not None:
            work.delete_hook(conn, issue.id)
        queue.dequeue(conn, issue.id)
        current = get_issue(conn, issue.id)
        if close_reason is not None:
            rejected = retire_for_issue(conn, issue.id, (MRState.QUEUED, MRState.REVIEWING, MRState.PR_OPEN,
                                                         *SENT_BACK_STATES),
                                        detail="rejected: its issue was closed", now=now)
            if current.status != IssueStatus.CLOSED:
                set_issue_status(conn, issue.id, IssueStatus.CLOSED, now=now, reason=close_reason)
        elif current.status != IssueStatus.OPEN:
            set_issue_status(conn, issue.id, IssueStatus.OPEN, now=now)
        resolve_for_issue(conn, issue.id, resolution=why, now=now)
        kept = f"; unmerged work archived at {', '.join(archived)}" if archived else ""
        where = f" from {hook.rig}/{hook.polecat}" if hook else ""
        said = f": {close_reason}" if close_reason else ""
        record_event(conn, "issue" if close_reason else "unsling", f"{verb}{where}{said}{kept}", now=now, rig=issue.rig,
                     polecat=hook.polecat if hook else None, spawn=ended, issue=issue.id,
                     data={"archived": archived, "rejected": rejected, "reason": close_reason})
        testing = next((m.id for m in list_mrs(conn, states=(MRState.TESTING,), issue=issue.id)), None)
        status = str(get_issue(conn, issue.id).status)
    from gastown.wake import wake

    wake(ctx.town, "scheduler")  # its slot is free
    message = f"{verb} {issue.id}" + (f" (stopped {hook.rig}/{hook.polecat})" if hook and ended else "")
    message += f"; its unmerged work is kept at {', '.join(archived)}" if archived else ""
    message += f"; rejected {', '.join(rejected)}" if rejected else ""
    message += f"; {testing} is being tested right now and may still merge" if testing else ""
    message += "" if close_reason is not None else f"; it is open again: `gt sling {issue.id}` starts it afresh"
    return HandResult(verb, issue.id, status, hook.rig if hook else None, hook.polecat if hook else None, ended,
                      archived, rejected, testing, message)


def archive_hook_work(ctx: Context, hook: work.Hook) -> list[str]:
    """Keep every commit of the hook's work that is not on the target: uncommitted changes
    are committed on the branch first, then the worktree's HEAD and the hub's branch are
    archived under ``refs/gastown/archive/`` unless already safe. Returns the refs made."""
    from gastown.git import worktrees as wt
    from gastown.git.cmd import Git

    hub = ctx.town.hub_path(hook.rig)
    target = ctx.config.rigs[hook.rig].branch if hook.rig in ctx.config.rigs else "main"
    path = ctx.town.polecat_path(hook.rig, hook.polecat)
    heads = []
    if wt.is_worktree(path):
        if wt.dirty_paths(path):
            git = Git(path)
            git.run("add", "-A")
            git.run("commit", "-q", "--no-verify", "-m", f"{hook.issue}: uncommitted work saved by gastown before release")
        heads.append(wt.head_sha(path))
    branch_tip = wt.ref_sha(hub, f"refs/heads/{hook.branch}")
    if branch_tip is not None:
        heads.append(branch_tip)
    refs = []
    for sha in dict.fromkeys(heads):
        if not wt.is_safe(hub, sha, target):
            refs.append(wt.archive(hub, sha, hook.branch))
    if hook.host != "local":  # the worktree is on its host: its commits come back first
        from gastown.errors import GastownError
        from gastown.roles.host_watch import keep_remote_work

        try:
            kept = keep_remote_work(ctx, hook.rig, hook.host, hook.branch)
        except GastownError as exc:
            from gastown.errors import Conflict

            raise Conflict(f"the work of {hook.issue} could not be brought back from host {hook.host} ({exc.message}); "
                           "its hook stays, stopped, so nothing is lost",
                           hint="run this again once the host answers (`gt host check`)") from None
        refs += [kept] if kept else []
    return refs


# -- reopening -----------------------------------------------------------------------------


def reopen_issue(ctx: Context, issue_id: str) -> HandResult:
    """`gt issue reopen`: a closed issue becomes ``open``; a blocked one on a hook becomes
    ``hooked`` and its agent resumes in its worktree (queued when there is no room). Either
    way its counters start afresh (Witness restarts, fix cycles) and its escalations are
    resolved, so the patrols give it the full allowance again."""
    with _issue_lock(ctx, issue_id):
        conn = ctx.ledger.connection()
        before = get_issue(conn, issue_id)
        if before.status == IssueStatus.OPEN:
            return HandResult("already", issue_id, str(before.status), message=f"{issue_id} is already open")
        hook = work.get_hook(conn, issue_id)
        room = hook is None or _room_for(ctx, hook)
        with ctx.ledger.write() as conn:
            now = ctx.now()
            issue = issues.reopen(ctx.ledger, issue_id)
            issues.reset_counters(conn, issue_id, now=now)
            work.reset_restarts(conn, issue_id)
            if room:
                work.clear_hook_stopped(conn, issue_id)
            resolve_for_issue(conn, issue_id, resolution="the issue was reopened", now=now)
        if hook is not None and not room:
            fresh = work.get_hook(ctx.ledger.connection(), issue_id)
            assert fresh is not None
            return _queue_resume(ctx, fresh, issue, "reopened")
    if hook is None:
        message = f"reopened {issue_id}: it is open; `gt sling {issue_id}` works on it"
    else:
        message = (f"reopened {issue_id}: {hook.rig}/{hook.polecat} resumes it in its worktree"
                   + _unless_no_mayor(ctx))
    from gastown.wake import wake

    wake(ctx.town, "scheduler")
    return HandResult("reopened", issue_id, str(issue.status), hook.rig if hook else None,
                      hook.polecat if hook else None, message=message)
