"""`gt diff RIG/POLECAT|MR|ISSUE`: the change a piece of work makes against its target.

- ``RIG/POLECAT``: the polecat's worktree as it is now (committed and uncommitted changes
  to tracked files) against where its branch left the target; new untracked files are
  listed, not shown (their content is not the agent's until it adds them).
- ``MR``: the submitted commit against where it left the target.
- ``ISSUE``: its polecat's worktree while it is hooked; else its newest MR; else its
  newest archived work (`gt unsling`, a close).

"Where it left the target" is the merge base with the upstream target as the hub last
fetched it, so the diff shows this work only, not what landed on the target since.
Read-only: nothing here changes a worktree, its index or a ref.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gastown.context import Context
from gastown.errors import NotFound
from gastown.git import worktrees as wt
from gastown.git.cmd import Git
from gastown.ledger import work
from gastown.ledger.ids import ISSUE_ID_RE
from gastown.ledger.issues import get_issue
from gastown.ledger.mrs import MR, find_mr, latest_for_issue

MR_ID_LENGTH = len("mr-") + 6


@dataclass(frozen=True)
class Diff:
    subject: str  # what was asked for, resolved: "app/rivet", "mr-k3x9q2", ...
    source: str  # worktree | mr | archive
    rig: str
    target: str
    base: str  # the merge base the change is measured from
    head: str  # the commit (for a worktree: HEAD; uncommitted changes come on top)
    files: list[str]
    untracked: list[str]
    text: str  # the unified diff, as git prints it (no colour)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def diff(ctx: Context, ref: str, *, stat: bool = False) -> Diff:
    """The change ``ref`` makes against its target (``stat``: a diffstat instead of the diff)."""
    if "/" in ref:
        return _worktree_diff(ctx, ref, stat=stat)
    conn = ctx.ledger.connection()
    if ref.startswith("mr-") and len(ref) == MR_ID_LENGTH:
        asked = find_mr(conn, ref)
        if asked is None:
            raise NotFound(f"no merge request {ref} in this town", hint="list them with `gt mq list --all`")
        return _commit_diff(ctx, ref, "mr", asked.rig, asked.commit_sha, stat=stat)
    if not ISSUE_ID_RE.match(ref):
        raise NotFound(f"{ref!r} is not RIG/POLECAT, a merge request id or an issue id",
                       hint="e.g. gt diff app/rivet, gt diff mr-k3x9q2, gt diff app-k3x9q")
    issue = get_issue(conn, ref)
    hook = work.get_hook(conn, issue.id)
    if hook is not None and wt.is_worktree(ctx.town.polecat_path(hook.rig, hook.polecat)):
        return _worktree_diff(ctx, f"{hook.rig}/{hook.polecat}", stat=stat)
    mr: MR | None = latest_for_issue(conn, issue.id)
    if mr is not None:
        return _commit_diff(ctx, mr.id, "mr", mr.rig, mr.commit_sha, stat=stat)
    archived = _newest_archive(ctx, issue.rig, issue.id)
    if archived is not None:
        ref_name, sha = archived
        return _commit_diff(ctx, ref_name, "archive", issue.rig, sha, stat=stat)
    raise NotFound(f"issue {issue.id} has no work to show yet", hint=f"sling it: gt sling {issue.id}")


def _target(ctx: Context, rig: str) -> str:
    if rig not in ctx.config.rigs:
        raise NotFound(f"no rig named {rig!r} in this town", hint="see `gt rig list`")
    return ctx.config.rigs[rig].branch


def _worktree_diff(ctx: Context, ref: str, *, stat: bool) -> Diff:
    from gastown.roles.fleet import polecat_target

    rig, polecat = polecat_target(ctx, ref)
    target = _target(ctx, rig)
    path = ctx.town.polecat_path(rig, polecat)
    if not wt.is_worktree(path):
        raise NotFound(f"polecat {rig}/{polecat} has no worktree", hint="see `gt polecat list`")
    git = Git(path)
    head = wt.head_sha(path)
    base = _merge_base(git, wt.target_ref(target), head)
    text = git.run("diff", "--no-color", "--no-ext-diff", *(["--stat"] if stat else []), base, "--").stdout
    files = [f for f in git.run("diff", "--name-only", "-z", base, "--").stdout.split("\0") if f]
    untracked = [f for f in git.run("ls-files", "--others", "--exclude-standard", "-z").stdout.split("\0") if f]
    return Diff(f"{rig}/{polecat}", "worktree", rig, target, base, head, files, untracked, text)


def _commit_diff(ctx: Context, subject: str, source: str, rig: str, commit: str, *, stat: bool) -> Diff:
    target = _target(ctx, rig)
    git = Git(ctx.town.hub_path(rig))
    base = _merge_base(git, wt.target_ref(target), commit)
    text = git.run("diff", "--no-color", "--no-ext-diff", *(["--stat"] if stat else []), base, commit, "--").stdout
    files = [f for f in git.run("diff", "--name-only", "-z", base, commit, "--").stdout.split("\0") if f]
    return Diff(subject, source, rig, target, base, commit, files, [], text)


def _merge_base(git: Git, target_ref: str, head: str) -> str:
    found = git.run("merge-base", target_ref, head, check=False).stdout.strip()
    return found or head  # unrelated histories: show nothing rather than everything


def _newest_archive(ctx: Context, rig: str, issue: str) -> tuple[str, str] | None:
    """``(ref, sha)`` of the newest archive of the issue's branches, if any."""
    hub = ctx.town.hub_path(rig)
    if not Path(hub).is_dir():
        return None
    out = Git(hub).run("for-each-ref", "--sort=-creatordate", "--format=%(objectname) %(refname)",
                       wt.ARCHIVE_PREFIX, check=False).stdout
    for line in out.splitlines():
        sha, _, name = line.partition(" ")
        if f"/{issue}" in name:
            return name, sha
    return None
