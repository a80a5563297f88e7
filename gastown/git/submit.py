"""The worktree half of `gt done`, the same on the hub and on another host: the branch
check, the auto-save (an agent's uncommitted additions and changes become one commit,
never its deletions, never the files agent CLIs leave behind) and the commits-ahead
check against the target as this repository knows it. Needs git only (no ledger): the
host's gt runs it before asking the hub to record the work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gastown.errors import Conflict
from gastown.git import worktrees as wt
from gastown.git.cmd import Git

# Files agent CLIs leave in a worktree that must never be submitted.
TOOL_DROPPINGS = (".aider*", ".claude", ".gemini", ".codex", ".opencode", ".gastown-*")


@dataclass(frozen=True)
class Submission:
    """What a worktree offers: its head, how many commits it is ahead of the target (0 when
    only blocking), and how many uncommitted files were saved first."""

    head: str
    ahead: int
    saved: int


def prepare(worktree: Path, *, issue: str, branch: str, target: str, blocked: bool) -> Submission:
    """Check the branch, auto-save, and (unless ``blocked``) refuse a branch with nothing
    ahead of ``target`` (a branch name: its ``refs/remotes/origin/`` ref is compared).
    Raises ``Conflict`` with the sentence `gt done` prints."""
    current = wt.current_branch(worktree)
    if current != branch:
        raise wrong_branch(current, branch)
    saved = autosave(worktree, issue)
    ahead = 0
    if not blocked:
        ahead = wt.commits_ahead(worktree, "HEAD", wt.target_ref(target))
        if ahead == 0:
            raise nothing_to_submit(branch, target)
    return Submission(wt.head_sha(worktree), ahead, saved)


def autosave(worktree: Path, issue: str) -> int:
    """Commit uncommitted additions and changes, never deletions; returns the number of files."""
    git = Git(worktree)
    excludes = [f":(exclude){pattern}" for pattern in TOOL_DROPPINGS]
    git.run("add", "--ignore-removal", "--", ".", *excludes)
    deleted = git.out("diff", "--cached", "--name-only", "--diff-filter=D", "-z").split("\0")
    deleted = [d for d in deleted if d]
    if deleted:
        git.run("reset", "-q", "--", *deleted)
    staged = [p for p in git.out("diff", "--cached", "--name-only", "-z").split("\0") if p]
    if not staged:
        return 0
    git.run("commit", "-q", "--no-verify", "-m", f"{issue}: save uncommitted work (gastown auto-save)")
    return len(staged)


def wrong_branch(branch: str | None, wanted: str) -> Conflict:
    return Conflict(
        f"the worktree is on {branch or 'a detached HEAD'}, but this issue's work belongs on {wanted}",
        hint=f"git checkout {wanted} and bring your commits onto it, then run gt done again",
    )


def nothing_to_submit(branch: str, target: str) -> Conflict:
    return Conflict(
        f"branch {branch} has no commits ahead of {target}: there is nothing to submit",
        hint="commit your work (git add, git commit), then run gt done",
    )
