"""`gt done`'s auto-save: an agent's uncommitted additions and changes become one commit
before its work is submitted (locally, and in a worktree on another host), never its
deletions, never the files agent CLIs leave behind."""

from __future__ import annotations

from pathlib import Path

from gastown.git.cmd import Git

# Files agent CLIs leave in a worktree that must never be submitted.
TOOL_DROPPINGS = (".aider*", ".claude", ".gemini", ".codex", ".opencode", ".gastown-*")


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
