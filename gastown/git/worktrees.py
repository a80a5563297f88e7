"""Polecat worktrees hanging off a rig's hub, and the rules that keep work from being lost.

No function here deletes a commit that is neither on the target nor archived under
``refs/gastown/archive/``: resetting or removing a worktree archives first.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from gastown.errors import Conflict, GitError
from gastown.git.cmd import Git

ARCHIVE_PREFIX = "refs/gastown/archive/"


def branch_name(polecat: str, issue: str) -> str:
    """``polecat/<name>/<issue>``.

    >>> branch_name("rivet", "app-k3x9q")
    'polecat/rivet/app-k3x9q'
    """
    return f"polecat/{polecat}/{issue}"


def target_ref(target: str) -> str:
    """The freshly fetched upstream target as the hub sees it."""
    return f"refs/remotes/origin/{target}"


def is_worktree(path: Path) -> bool:
    return (path / ".git").is_file()


def head_sha(path: Path) -> str:
    return Git(path).out("rev-parse", "HEAD")


def current_branch(path: Path) -> str | None:
    result = Git(path).run("symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return result.stdout.strip() or None


def ref_sha(repo: Path, ref: str) -> str | None:
    result = Git(repo).run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return result.stdout.strip() or None


def commits_ahead(repo: Path, rev: str, base: str) -> int:
    return int(Git(repo).out("rev-list", "--count", f"{base}..{rev}") or "0")


def dirty_paths(path: Path) -> list[str]:
    """Paths with uncommitted changes (staged, unstaged or untracked, ignoring .gitignore'd)."""
    out = Git(path).run("status", "--porcelain=v1", "-z", "--untracked-files=all").stdout
    return [entry[3:] for entry in out.split("\0") if len(entry) > 3]


def is_safe(hub: Path, sha: str, target: str) -> bool:
    """True if ``sha`` is on the target or reachable from an archive or MR ref (no work lost)."""
    git = Git(hub)
    if git.run("merge-base", "--is-ancestor", sha, target_ref(target), check=False).ok:
        return True
    refs = git.out("for-each-ref", "--format=%(refname)", "--contains", sha, "refs/gastown/")
    return bool(refs.strip())


def archive(hub: Path, sha: str, label: str) -> str:
    """Keep ``sha`` reachable forever under ``refs/gastown/archive/<label>-<time>``; returns the ref."""
    safe = re.sub(r"[^A-Za-z0-9._/-]", "_", label).strip("/") or "work"
    ref = f"{ARCHIVE_PREFIX}{safe}-{int(time.time() * 1000)}"
    Git(hub).run("update-ref", ref, sha)
    return ref


def create_worktree(hub: Path, path: Path, branch: str, start: str) -> None:
    """A new worktree at ``path`` on a new ``branch`` from ``start`` (one git call when the
    way is clear). A leftover branch of that name is archived (if it holds unsafe work)
    and replaced; leftover worktree records are pruned."""
    path.parent.mkdir(parents=True, exist_ok=True)
    git = Git(hub)
    first = git.run("worktree", "add", "-q", "-b", branch, str(path), start, check=False)
    if first.ok:
        return
    old = ref_sha(hub, f"refs/heads/{branch}")
    if old is None and ref_sha(hub, start) is None:
        raise GitError(f"cannot start {branch}: {start} does not exist in the hub", hint="run `gt rig list` and `gt doctor`")
    if old and old != ref_sha(hub, start):
        archive(hub, old, branch)
    git.run("worktree", "prune")
    git.run("worktree", "add", "-q", "--force", "-B", branch, str(path), start)


def reset_worktree(hub: Path, path: Path, branch: str, start: str, *, target: str) -> None:
    """Reuse an idle polecat's worktree for ``branch`` from ``start``.

    Uncommitted changes are committed onto the old branch and archived, and unsafe
    commits of the old branch are archived, before anything is reset.
    """
    git = Git(path)
    old_branch = current_branch(path) or "detached"
    if dirty_paths(path):
        git.run("add", "-A")
        git.run("commit", "-q", "--no-verify", "-m", "gastown: saved uncommitted work before reuse")
    old = head_sha(path)
    if not is_safe(hub, old, target):
        archive(hub, old, old_branch)
    leftover = ref_sha(hub, f"refs/heads/{branch}")
    if leftover and leftover != ref_sha(hub, start) and not is_safe(hub, leftover, target):
        archive(hub, leftover, branch)
    git.run("checkout", "-q", "-f", "-B", branch, start)
    git.run("reset", "-q", "--hard", start)
    git.run("clean", "-q", "-fd")


def remove_worktree(hub: Path, path: Path, *, target: str, force: bool) -> str | None:
    """Remove a polecat's worktree and its branch; returns the archive ref made, if any.

    Refuses (``Conflict``) if it holds uncommitted changes or commits that are neither
    merged nor archived, unless ``force`` — which archives them first.
    """
    archived = None
    if is_worktree(path):
        git = Git(path)
        branch = current_branch(path)
        dirty = dirty_paths(path)
        sha = head_sha(path)
        unsafe = not is_safe(hub, sha, target)
        if (dirty or unsafe) and not force:
            what = f"{len(dirty)} uncommitted change(s)" if dirty else "commits that are not merged"
            raise Conflict(
                f"{path} holds {what}",
                hint="merge or submit the work first, or pass --force to archive it under refs/gastown/archive/",
            )
        if dirty:
            git.run("add", "-A")
            git.run("commit", "-q", "--no-verify", "-m", "gastown: saved uncommitted work before removal")
            sha = head_sha(path)
            unsafe = not is_safe(hub, sha, target)
        if unsafe:
            archived = archive(hub, sha, branch or "detached")
        Git(hub).run("worktree", "remove", "--force", str(path))
        if branch:
            Git(hub).run("branch", "-D", branch, check=False)
    elif path.exists():
        raise GitError(f"{path} exists but is not a git worktree", hint="move it away by hand")
    Git(hub).run("worktree", "prune")
    return archived
