"""`gt done` and `gt prime`: run by an agent inside its worktree (lifecycle step 4).

`gt done` saves leftovers (never deletions), refuses a branch with nothing on it,
pins the commit in the hub before recording the merge request (idempotent per
branch + commit), moves the issue to ``in_review``, frees the polecat and wakes the
refinery. Running it twice is harmless and says so. An agent on another host runs the
worktree part there (``hosts/hub_client.py``) and the rest here through the hub's
server (``done_remote``): one shared tail, ``_submit``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gastown.context import Context
from gastown.errors import Conflict, GastownError, GitError, InvalidInput, NotFound
from gastown.git import worktrees as wt
from gastown.git.submit import TOOL_DROPPINGS, autosave, nothing_to_submit, prepare, wrong_branch
from gastown.git.cmd import Git
from gastown.git.merge import pin_mr_commit
from gastown.ledger import work
from gastown.ledger.events import record_event
from gastown.ledger.issues import get_issue, set_issue_status
from gastown.ledger.mrs import latest_of_spawn
from gastown.states import IssueStatus, SpawnStatus
from gastown.town import Town, find_town
from gastown.wake import wake

if TYPE_CHECKING:
    from gastown.ledger.work import Spawn

__all__ = ["TOOL_DROPPINGS", "AgentSelf", "DoneResult", "autosave", "done", "done_remote", "identify", "prime_text"]


@dataclass(frozen=True)
class AgentSelf:
    """Who is asking: from the agent's env (GT_*), else from the worktree it stands in."""

    town: Town
    rig: str
    polecat: str
    issue: str | None
    spawn: str | None


def identify(environ: Mapping[str, str], cwd: Path, explicit_town: Path | None = None) -> AgentSelf:
    """Raise ``InvalidInput`` with a clear sentence when not run by an agent in a polecat."""
    not_agent = InvalidInput(
        "this command is for agents: run it inside a polecat's worktree "
        f"(GT_SPAWN is not set and {cwd} is not a polecat worktree)",
        hint="people look at agents with `gt agents`, `gt peek` and `gt attach`",
    )
    if environ.get("GT_RIG") and environ.get("GT_POLECAT") and environ.get("GT_TOWN"):
        town = find_town(explicit_town, environ, cwd)
        return AgentSelf(town, environ["GT_RIG"], environ["GT_POLECAT"], environ.get("GT_ISSUE"), environ.get("GT_SPAWN"))
    try:
        town = find_town(explicit_town, environ, cwd)
    except Exception:
        raise not_agent from None
    try:
        rel = cwd.resolve().relative_to(town.root)
    except ValueError:
        raise not_agent from None
    parts = rel.parts
    if len(parts) >= 3 and parts[1] == "polecats":
        return AgentSelf(town, parts[0], parts[2], None, None)
    raise not_agent


@dataclass(frozen=True)
class DoneResult:
    status: str  # submitted | already | blocked
    issue: str
    mr: str | None
    commit: str | None
    commits: int
    message: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def done(ctx: Context, me: AgentSelf, *, blocked: str | None = None) -> DoneResult:
    conn = ctx.ledger.connection()
    hook = work.hook_of_polecat(conn, me.rig, me.polecat)
    worktree = ctx.town.polecat_path(me.rig, me.polecat)
    if hook is None or (me.issue and hook.issue != me.issue):
        return _already(ctx, me, worktree)
    if me.spawn and hook.spawn and me.spawn != hook.spawn:
        raise _replaced(me.spawn, hook.spawn)
    offer = prepare(worktree, issue=hook.issue, branch=hook.branch, target=ctx.settings.rigs[me.rig].branch,
                    blocked=blocked is not None)
    if blocked is not None:
        return _blocked(ctx, hook, blocked)
    hub = ctx.town.hub_path(me.rig)
    if wt.ref_sha(hub, f"refs/heads/{hook.branch}") != offer.head:
        raise Conflict(f"the hub does not hold {hook.branch} at {offer.head[:12]}", hint="run gt done again")
    # The commit is in the hub already (the worktree shares its refs).
    return _submit(ctx, hook, offer.head, offer.ahead, offer.saved)


def done_remote(
    ctx: Context, spawn: Spawn, *, head: str, branch: str, blocked: str | None = None, saved: int = 0
) -> DoneResult:
    """`gt done` of an agent on another host, as the hub's server runs it: the host's gt
    did the worktree part (auto-save, branch and commits-ahead checks) and says which
    commit it submits. The branch is fetched from the host into the hub, the fetched
    commit must be ``head`` and ahead of the target, then the same record, pin, refinery
    wake-up and pane end as a local `gt done`. ``spawn`` is authenticated by the caller.

    Raises ``Conflict`` (replaced run, wrong branch, a commit the host does not hold,
    nothing to submit), ``NotFound``, ``HostUnreachable``/``GitError`` from the fetch.
    Idempotent: a second call for the same commit answers "already".
    """
    conn = ctx.ledger.connection()
    hook = work.get_hook(conn, spawn.issue)
    if spawn.status in (SpawnStatus.DONE, SpawnStatus.ENDED) or hook is None:
        return _already_submitted(conn, spawn, head)
    if hook.spawn != spawn.id:
        raise _replaced(spawn.id, hook.spawn)
    if branch != hook.branch:
        raise wrong_branch(branch, hook.branch)
    hub = ctx.town.hub_path(hook.rig)
    if blocked is not None:
        _check_reason(blocked)
        try:  # a checkpoint of the work for whoever looks at it; it stays on the host anyway
            _fetch_from_host(ctx, hook, hub)
        except GastownError:
            pass
        return _blocked(ctx, hook, blocked)
    fetched = _fetch_from_host(ctx, hook, hub)
    if fetched is None:
        raise Conflict(f"host {hook.host} has no branch {branch} in its mirror", hint="commit your work, then run gt done again")
    if fetched != head:
        raise Conflict(
            f"the hub fetched {branch} from host {hook.host} at {fetched[:12]}, not at {head[:12]}",
            hint="the branch moved while it was submitted; run gt done again",
        )
    target = ctx.settings.rigs[hook.rig].branch
    ahead = wt.commits_ahead(hub, head, wt.target_ref(target))
    if ahead == 0:
        raise nothing_to_submit(branch, target)
    return _submit(ctx, hook, head, ahead, saved)


def _fetch_from_host(ctx: Context, hook: work.Hook, hub: Path) -> str | None:
    """The host's branch into the hub's ``refs/heads/<branch>``. A branch the agent rewrote
    (a rebase in a fix cycle) replaces the hub's older copy, whose tip is archived first
    unless it is safe already (on the target, pinned by a merge request, archived)."""
    driver = ctx.host(hook.host)
    try:
        return driver.fetch_branch(hook.rig, hook.branch, hub)
    except GitError:
        ref = f"refs/heads/{hook.branch}"
        old = wt.ref_sha(hub, ref)
        if old is None:
            raise
    # git refuses the fetch (it says nothing more under --quiet): most likely the branch no
    # longer descends from the hub's copy. Set that copy aside and fetch again; if that
    # fails too, put everything back as it was.
    git = Git(hub)
    archived = None if wt.is_safe(hub, old, ctx.settings.rigs[hook.rig].branch) else wt.archive(hub, old, hook.branch)
    git.run("update-ref", "-d", ref, old)
    try:
        return driver.fetch_branch(hook.rig, hook.branch, hub)
    except GastownError:
        git.run("update-ref", ref, old, check=False)
        if archived:
            git.run("update-ref", "-d", archived, check=False)
        raise


def _submit(ctx: Context, hook: work.Hook, head: str, ahead: int, saved: int) -> DoneResult:
    """The end every `gt done` shares once ``head`` is in the hub: the merge request is
    recorded and pins the commit (so a later reset of the branch can never make it
    unreachable), the refinery is woken and the agent's pane is ended after its turn."""
    mr, created = _record(ctx, hook, head)
    pin_mr_commit(ctx.town.hub_path(hook.rig), mr, head)
    wake(ctx.town, f"refinery-{hook.rig}")
    _schedule_pane_end(ctx, hook.spawn)
    note = f" (and saved {saved} uncommitted file(s) first)" if saved else ""
    return DoneResult(
        "submitted" if created else "already", hook.issue, mr, head, ahead,
        f"submitted {hook.issue} as merge request {mr}: {ahead} commit(s) on {hook.branch}{note}. "
        "The merge queue tests it now. Your work here is finished: stop.",
    )


def _replaced(spawn: str, newer: str | None) -> Conflict:
    return Conflict(
        f"this agent's run ({spawn}) was replaced by {newer or 'no run (the issue waits)'}; its work continues there",
        hint="stop now; the newer run submits the work",
    )


def _record(ctx: Context, hook: work.Hook, head: str) -> tuple[str, bool]:
    from gastown.ledger.mrs import count_sent_back, record_mr

    rig_cfg = ctx.settings.rigs[hook.rig]
    with ctx.ledger.write() as conn:
        now = ctx.now()
        issue = get_issue(conn, hook.issue)
        mr, created = record_mr(
            conn, rig=hook.rig, issue=hook.issue, polecat=hook.polecat, spawn=hook.spawn, branch=hook.branch,
            commit_sha=head, target=rig_cfg.branch, priority=issue.priority,
            fix_cycle=count_sent_back(conn, hook.issue, since=issue.counters_reset_at), now=now,
        )
        if issue.status != IssueStatus.IN_REVIEW:
            set_issue_status(conn, hook.issue, IssueStatus.IN_REVIEW, now=now)
        if hook.spawn:
            work.update_spawn(conn, hook.spawn, status=SpawnStatus.DONE, done_at=now)
        work.delete_hook(conn, hook.issue)
        record_event(
            conn, "done", f"submitted {head[:12]} on {hook.branch} as {mr.id}", now=now, rig=hook.rig,
            polecat=hook.polecat, spawn=hook.spawn, issue=hook.issue, data={"mr": mr.id, "commit": head},
        )
    return mr.id, created


def _blocked(ctx: Context, hook: work.Hook, reason: str) -> DoneResult:
    from gastown.ledger.escalations import raise_escalation

    _check_reason(reason)
    esc = raise_escalation(
        ctx.ledger, f"{hook.rig}/{hook.polecat} gave up on {hook.issue}: {reason}", severity="medium",
        source=f"{hook.rig}/{hook.polecat}", issue=hook.issue, polecat=hook.polecat, spawn=hook.spawn, block_issue=True,
    )
    with ctx.ledger.write() as conn:
        if hook.spawn:
            work.update_spawn(conn, hook.spawn, status=SpawnStatus.DONE, done_at=ctx.now(), end_reason="blocked")
    _schedule_pane_end(ctx, hook.spawn)
    return DoneResult(
        "blocked", hook.issue, None, None, 0,
        f"{hook.issue} is blocked ({esc.id}); your work stays on {hook.branch} and a person will look at it. Stop now.",
    )


def _check_reason(reason: str) -> None:
    if not reason.strip():
        raise InvalidInput("--blocked needs a reason", hint='gt done --blocked "what stops the work"')


def _already(ctx: Context, me: AgentSelf, worktree: Path) -> DoneResult:
    """No hook: either this work was already submitted (say so), or there never was any."""
    conn = ctx.ledger.connection()
    spawn = work.get_spawn(conn, me.spawn) if me.spawn else work.latest_spawn(conn, me.rig, me.polecat)
    return _already_submitted(conn, spawn, wt.head_sha(worktree) if wt.is_worktree(worktree) else None,
                              polecat=f"{me.rig}/{me.polecat}")


def _already_submitted(conn: Any, spawn: Spawn | None, head: str | None, *, polecat: str | None = None) -> DoneResult:
    """The answer to a `gt done` whose run already finished: its merge request, if ``head``
    (None: whatever was submitted) is the commit it submitted."""
    if spawn is None or spawn.status not in (SpawnStatus.DONE, SpawnStatus.ENDED):
        who = polecat or (f"{spawn.rig}/{spawn.polecat}" if spawn else "this polecat")
        raise NotFound(f"polecat {who} has no issue on its hook", hint="there is nothing to submit; wait for work to be slung")
    mr = latest_of_spawn(conn, spawn.id)
    if mr is None:
        raise NotFound(f"this run ({spawn.id}) already finished without a merge request", hint="stop now")
    head = head or mr.commit_sha
    if head != mr.commit_sha:
        raise Conflict(
            f"this work was already submitted as {mr.id} at {mr.commit_sha[:12]}; "
            f"the newer commit {head[:12]} is not submitted",
            hint="the merge queue tests what was submitted; stop now",
        )
    return DoneResult(
        "already", spawn.issue, mr.id, head, 0,
        f"already submitted as merge request {mr.id} ({head[:12]}); nothing more to do. Stop now.",
    )


def _schedule_pane_end(ctx: Context, spawn_id: str | None) -> None:
    """End the agent's pane once it has finished its turn after `gt done` (it is the caller)."""
    if not spawn_id:
        return
    from gastown._internal.proc import spawn_detached

    spawn_detached(
        [sys.executable, "-m", "gastown", "_end", spawn_id, "--after", "1", "--town", str(ctx.town.root)],
        log_path=ctx.town.logs_dir / "ender.log",
    )


# After `gt done` returns, the agent still finishes its turn: it sends the result to its
# model and records the answer (and its usage). Its pane is closed then, or after this long.
TURN_END_TIMEOUT = 45.0


def wait_for_turn_end(ctx: Context, spawn_id: str, *, timeout: float = TURN_END_TIMEOUT, poll: float = 0.5) -> bool:
    """Wait until the agent of a spawn that ran `gt done` has ended its turn: its pane is
    gone or dead (a headless CLI exits once it has answered) or its screen reads idle twice
    in a row (a TUI back at its prompt). Returns True then, False after ``timeout`` with
    the agent still going (the caller closes the pane anyway). Only reads tmux and the ledger.
    """
    import time

    from gastown.errors import GastownError
    from gastown.runtimes.registry import spawn_runtime
    from gastown.screen import read_screen

    deadline = time.monotonic() + timeout
    idle_reads = 0
    while True:
        spawn = work.get_spawn(ctx.ledger.connection(), spawn_id)
        if spawn is None or spawn.status != "done" or not spawn.pane_id:
            return True
        pane = spawn.pane_id
        tmux = ctx.tmux_on(spawn.host)
        if tmux.display(pane, "#{@gt_spawn}") != spawn_id or tmux.display(pane, "#{pane_dead}") == "1":
            return True
        try:
            idle = read_screen(tmux.capture(pane), spawn_runtime(ctx.settings, spawn.rig, spawn.agent)).idle
        except GastownError:
            idle = False
        idle_reads = idle_reads + 1 if idle else 0
        if idle_reads >= 2:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def prime_text(ctx: Context, me: AgentSelf) -> str:
    """The agent's current instructions again (the prompt of its current spawn)."""
    conn = ctx.ledger.connection()
    hook = work.hook_of_polecat(conn, me.rig, me.polecat)
    if hook is None or not hook.spawn:
        return (
            f"You are polecat {me.polecat} of rig {me.rig}. There is no issue on your hook: "
            "nothing to do. Stop and wait."
        )
    spawn = work.get_spawn(conn, hook.spawn)
    assert spawn is not None
    # A remote spawn's prompt_path is on its host; the hub keeps a copy under the spawn's id.
    paths = [Path(spawn.prompt_path)] if spawn.host == "local" else [ctx.town.prompt_path(spawn.id), Path(spawn.prompt_path)]
    for path in paths:
        try:
            return path.read_text(encoding="utf-8")
        except OSError:
            continue
    else:
        issue = get_issue(conn, hook.issue)
        return f"You are polecat {me.polecat} of rig {me.rig}, working on {issue.id}: {issue.title}. Commit, then run gt done."
