"""A rig's hub: a bare clone of its upstream that every worktree hangs off.

Upstream branches are fetched into ``refs/remotes/origin/*`` so a fetch never touches
the hub's own heads (the polecat branches and the refinery's target).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from gastown.errors import GitError, InvalidInput
from gastown.git.cmd import Git
from gastown.git.complaints import explain, remote_error

CLONE_TIMEOUT = 900.0
FETCH_TIMEOUT = 300.0


def normalize_source(source: str, cwd: Path) -> str:
    """A local path becomes absolute (the hub must find it from anywhere); URLs stay as they are."""
    if "://" in source or (":" in source and not source.startswith("/") and "@" in source.split(":")[0]):
        return source
    path = (cwd / source).expanduser().resolve()
    if not path.exists():
        raise InvalidInput(f"{source} is neither a URL nor an existing path", hint="pass a git URL or a repository path")
    return str(path)


def clone_hub(source: str, hub: Path, *, branch: str | None) -> str:
    """Clone ``source`` bare into ``hub`` and return the target branch (detected if not given).

    On any failure the half-made hub is removed.
    """
    hub.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            Git(hub.parent).run("clone", "--bare", "--quiet", source, str(hub), timeout=CLONE_TIMEOUT)
        except GitError as exc:
            raise remote_error(exc, f"cloning {source}", source) from None
        git = Git(hub)
        git.run("config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
        git.run("fetch", "--quiet", "origin", timeout=FETCH_TIMEOUT)
        target = branch or default_branch(hub)
        if not has_ref(hub, f"refs/remotes/origin/{target}"):
            raise GitError(
                f"{source} has no branch {target!r}",
                hint="pass an existing branch with --branch" if branch else "push a first commit to it",
            )
        # The hub's own head for the target starts where the upstream is.
        git.run("update-ref", f"refs/heads/{target}", f"refs/remotes/origin/{target}")
        git.run("symbolic-ref", "HEAD", f"refs/heads/{target}")
        return target
    except BaseException:
        shutil.rmtree(hub, ignore_errors=True)
        raise


def default_branch(hub: Path) -> str:
    """The upstream's default branch: what its HEAD names if that branch exists, else its
    only branch, else ``main`` or ``master``."""
    git = Git(hub)
    head = git.run("symbolic-ref", "--short", "HEAD", check=False).stdout.strip()
    branches = [
        line.strip().removeprefix("origin/")
        for line in git.out("for-each-ref", "--format=%(refname:short)", "refs/remotes/origin/").splitlines()
        if line.strip() and line.strip() != "origin/HEAD"
    ]
    if head and head in branches:
        return head
    if len(branches) == 1:
        return branches[0]
    for usual in ("main", "master"):
        if usual in branches:
            return usual
    if not branches:
        raise GitError(f"{upstream_url(hub)} has no branches yet", hint="push a first commit to it")
    raise GitError(
        f"cannot tell the default branch of {upstream_url(hub)} (it has {len(branches)} branches)",
        hint="pass --branch",
    )


def has_ref(repo: Path, ref: str) -> bool:
    return Git(repo).run("rev-parse", "--verify", "--quiet", ref, check=False).ok


def fetch(hub: Path, *, max_age: float = 0.0) -> None:
    """Bring ``refs/remotes/origin/*`` up to date with the upstream.

    With ``max_age``, skip the fetch if one finished less than that many seconds ago
    (a batch of slings shares one fetch).
    """
    stamp = hub / "gastown-fetched"
    if max_age > 0:
        try:
            if time.time() - stamp.stat().st_mtime < max_age:
                return
        except OSError:
            pass
    try:
        Git(hub).run("fetch", "--quiet", "--prune", "origin", timeout=FETCH_TIMEOUT)
    except GitError as exc:
        url = Git(hub).run("config", "--get", "remote.origin.url", check=False).stdout.strip() or "the upstream"
        raise remote_error(exc, f"fetching {url}", url) from None
    try:
        stamp.touch()
    except OSError:
        pass


def upstream_url(hub: Path) -> str:
    return Git(hub).out("config", "--get", "remote.origin.url")


def probe_upstream(hub: Path, *, timeout: float = 20.0) -> str | None:
    """None if the upstream answers ``git ls-remote``, else git's complaint."""
    result = Git(hub).run("ls-remote", "--heads", "origin", check=False, timeout=timeout)
    if result.ok:
        return None
    return explain(result.stderr + result.stdout, "it").what
