"""Git for the merge queue: the refinery worktree, stacking MRs, pushing and archiving.

Everything runs through ``gastown.git.cmd.Git``. The refinery's worktree hangs off the
rig's hub (``git worktree add --detach``), so MR commits, stacks and the hub's refs
share one object store; stacks are built on a detached HEAD and never on a branch.

Failure modes: a conflict while stacking is an answer (``Conflicted``), not an error;
anything else git refuses raises ``GitError`` naming the command. Every operation
here is idempotent or leaves the worktree in a state ``RefineryWorktree.reset`` cleans.
Repository hooks never run in the refinery (``core.hooksPath=/dev/null``), and
``rebase.updateRefs`` is forced off so stacking can never move a polecat's branch.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gastown.errors import GitError
from gastown.git.cmd import Git, GitResult, git_error
from gastown.git.worktrees import ref_sha

PUSH_TIMEOUT = 300.0
STRATEGIES = ("rebase", "squash", "merge")
_SAFE = ("-c", "core.hooksPath=/dev/null", "-c", "rebase.updateRefs=false", "-c", "rebase.autoStash=false",
         "-c", "merge.autoStash=false")
_FALLBACK_IDENTITY = {
    "GIT_COMMITTER_NAME": "Gastown Refinery",
    "GIT_COMMITTER_EMAIL": "refinery@gastown.invalid",
    "GIT_AUTHOR_NAME": "Gastown Refinery",
    "GIT_AUTHOR_EMAIL": "refinery@gastown.invalid",
}


@dataclass(frozen=True)
class Applied:
    """The MR is on the stack; ``head`` is the new tip. ``empty``: it added nothing
    (its changes were already there), so ``head`` is the previous tip."""

    head: str
    empty: bool


@dataclass(frozen=True)
class Conflicted:
    """The MR does not apply on the stack; ``files`` are the conflicting paths."""

    files: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class MergeItem:
    """What stacking needs to know about one MR."""

    mr_id: str
    commit: str
    branch: str
    issue: str


class RefineryWorktree:
    """The rig's refinery worktree at ``path``, hanging off the bare ``hub``.

    Single-user: the caller holds the rig's refinery lock around every use.
    """

    def __init__(self, hub: Path, path: Path) -> None:
        self.hub = hub
        self.path = path
        self._git: Git | None = None
        self._gitdir: Path | None = None

    @property
    def git(self) -> Git:
        if self._git is None:
            self._git = Git(self.path, env=self._identity_env())
        return self._git

    def exists(self) -> bool:
        return (self.path / ".git").is_file()

    def ensure(self, start: str) -> None:
        """Create the worktree detached at ``start`` unless a usable one is there.

        A directory that is not a working worktree (a half-made one, or one whose hub
        metadata was pruned) is removed and made again: it only ever holds stacks that
        can be rebuilt from the ledger and the hub.
        """
        if self.exists() and Git(self.path).run("rev-parse", "--git-dir", check=False).ok:
            return
        if self.path.exists():
            shutil.rmtree(self.path)
        hub = Git(self.hub)
        hub.run("worktree", "prune")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        hub.run("worktree", "add", "--detach", "--quiet", str(self.path), start)
        self._git = self._gitdir = None

    @property
    def gitdir(self) -> Path:
        if self._gitdir is None:
            self._gitdir = Path(self.git.out("rev-parse", "--absolute-git-dir"))
        return self._gitdir

    def scrub(self) -> None:
        """After a crash: abandon anything in progress and clean up; a worktree too broken
        to reset is removed (``ensure`` makes it again). Nothing to do if there is none."""
        if not self.path.exists():
            return
        try:
            self.reset("HEAD")
        except GitError:
            shutil.rmtree(self.path, ignore_errors=True)
            Git(self.hub).run("worktree", "prune", check=False)
            self._git = self._gitdir = None

    def reset(self, sha: str) -> None:
        """Abandon whatever is in progress and check out ``sha``, clean (``clean -ffdx``)."""
        git = self.git
        if (self.gitdir / "rebase-merge").exists() or (self.gitdir / "rebase-apply").exists():
            git.run("rebase", "--quit", check=False)
        git.run(*_SAFE, "reset", "--hard", "--quiet", sha)  # also clears merge/cherry-pick state
        git.run("clean", "-ffdxq")

    def head(self) -> str:
        return self.git.out("rev-parse", "HEAD")

    def apply(self, item: MergeItem, *, base: str, onto: str, strategy: str) -> Applied | Conflicted:
        """Put ``item`` on top of ``onto`` (which must be HEAD) with ``strategy``; on a
        conflict, HEAD is back at ``onto``.

        ``base`` is the round's base: the MR's commits are those in ``base..commit``.
        Every MR becomes exactly one commit on the stack's first-parent line, so only
        commits that were gated (as part of a stack) ever land there: ``rebase`` replays
        a one-commit MR as it is and squashes an MR of several commits (its steps were
        never gated one by one, and a fix cycle's branch holds the commit that failed);
        ``squash`` makes one commit (the MR head's author and message, plus
        ``Gastown-MR``/``Gastown-Issue`` trailers); ``merge`` a merge commit whose
        second parent is the MR.
        """
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown merge strategy {strategy!r}")
        if strategy == "rebase" and self.commits_between(base, item.commit) > 1:
            strategy = "squash"
        if strategy == "rebase":
            result = self.git.run(*_SAFE, "rebase", "--quiet", "--no-autosquash", "--onto", onto, base, item.commit, check=False)
        elif strategy == "merge":
            message = f"Merge {item.branch} ({item.mr_id}, {item.issue})\n\nGastown-MR: {item.mr_id}\nGastown-Issue: {item.issue}\n"
            result = self.git.run(*_SAFE, "merge", "--no-ff", "--quiet", "-m", message, item.commit, check=False)
        else:
            result = self.git.run(*_SAFE, "merge", "--squash", "--quiet", item.commit, check=False)
        if not result.ok:
            return self._conflicted(result, onto)
        if strategy == "squash":
            self._commit_squash(item, base)
        head = self.head()
        return Applied(head=head, empty=head == onto)

    def commits_between(self, base: str, commit: str) -> int:
        """How many commits ``base..commit`` holds (merge commits included)."""
        return int(self.git.out("rev-list", "--count", f"{base}..{commit}") or "0")

    def _commit_squash(self, item: MergeItem, base: str) -> None:
        if self.git.run("diff", "--cached", "--quiet", check=False).ok:
            return  # nothing staged: the MR's changes are already on the stack
        author = self.git.out("log", "-1", "--format=%an <%ae>%x00%ad", "--date=raw", item.commit).split("\x00")
        subjects = self.git.out("log", "--reverse", "--format=%s", f"{base}..{item.commit}").splitlines()
        head_message = self.git.out("log", "-1", "--format=%B", item.commit)
        message = squash_message(head_message, subjects, item)
        self.git.run(*_SAFE, "commit", "--quiet", "--no-verify", "-F", "-", f"--author={author[0]}", f"--date={author[1]}", input=message)

    def _conflicted(self, result: GitResult, before: str) -> Conflicted:
        files = tuple(self.git.out("diff", "--name-only", "--diff-filter=U").splitlines())
        stopped = any((self.gitdir / name).exists() for name in ("rebase-merge", "rebase-apply", "MERGE_HEAD", "MERGE_MSG"))
        text = (result.stderr + result.stdout).strip()
        self.reset(before)
        if not files and not stopped and "CONFLICT" not in text:
            raise git_error(result)
        return Conflicted(files=files, message=text.splitlines()[-1] if text else "conflict")

    def _identity_env(self) -> dict[str, str]:
        # Stacking rewrites commits, so git needs a committer; fall back to ours if unset.
        git = Git(self.path if self.path.exists() else self.hub)
        has_name = git.run("config", "user.name", check=False).stdout.strip()
        has_email = git.run("config", "user.email", check=False).stdout.strip()
        return {} if has_name and has_email else dict(_FALLBACK_IDENTITY)


def squash_message(head_message: str, subjects: list[str], item: MergeItem) -> str:
    """The message of a squash commit: the MR head's message, the squashed subjects, trailers.

    >>> print(squash_message("Fix it\\n\\nbody", ["Start", "Fix it"], MergeItem("mr-1", "c", "b", "app-1")), end="")
    Fix it
    <BLANKLINE>
    body
    <BLANKLINE>
    Squashed commits:
    * Start
    * Fix it
    <BLANKLINE>
    Gastown-MR: mr-1
    Gastown-Issue: app-1
    """
    parts = [head_message.strip() or f"Merge {item.branch}"]
    if len(subjects) > 1:
        parts.append("Squashed commits:\n" + "\n".join(f"* {s}" for s in subjects))
    parts.append(f"Gastown-MR: {item.mr_id}\nGastown-Issue: {item.issue}")
    return "\n\n".join(parts) + "\n"


# -- the hub -----------------------------------------------------------------------------


def missing_commits(repo: Path, shas: list[str]) -> set[str]:
    """Which of ``shas`` are not commits in ``repo`` (one git call)."""
    if not shas:
        return set()
    out = Git(repo).run("cat-file", "--batch-check", input="".join(f"{s}^{{commit}}\n" for s in shas)).stdout
    missing = set()
    for sha, line in zip(shas, out.splitlines(), strict=False):
        if line.endswith(" missing") or line.endswith(" ambiguous"):
            missing.add(sha)
    return missing


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    """Whether ``ancestor`` is ``descendant`` or one of its ancestors."""
    result = Git(repo).run("merge-base", "--is-ancestor", ancestor, descendant, check=False)
    if result.returncode in (0, 1):
        return result.returncode == 0
    raise git_error(result)


def fast_forward_ref(repo: Path, ref: str, sha: str) -> bool:
    """Move ``ref`` to ``sha`` if that is a fast-forward (or ``ref`` is missing); else leave it."""
    current = ref_sha(repo, ref)
    if current == sha:
        return False
    if current is not None and not is_ancestor(repo, current, sha):
        return False
    Git(repo).run("update-ref", ref, sha, *([current] if current else []))
    return True


def pin_mr_commit(hub: Path, mr_id: str, sha: str) -> None:
    """Keep ``sha`` reachable as ``refs/gastown/mr/<mr_id>`` even if its branch is reset. Idempotent."""
    Git(hub).run("update-ref", f"refs/gastown/mr/{mr_id}", sha)


def unpin_mr_commit(hub: Path, mr_id: str) -> None:
    """Drop the pin of a merged MR (its changes are on the target). Idempotent."""
    Git(hub).run("update-ref", "-d", f"refs/gastown/mr/{mr_id}", check=False)


def checked_out_branches(hub: Path) -> set[str]:
    """Branch names checked out in any worktree of ``hub``."""
    out = Git(hub).out("worktree", "list", "--porcelain")
    return {line.split(" ", 1)[1].removeprefix("refs/heads/") for line in out.splitlines() if line.startswith("branch ")}


@dataclass(frozen=True)
class Archived:
    branch: str
    sha: str | None
    deleted: bool


def archive_branch(hub: Path, branch: str) -> Archived:
    """Save ``branch`` as ``refs/gastown/archive/<branch>``, then delete it unless a
    worktree has it checked out. Idempotent; a missing branch archives nothing.

    The delete names the archived sha, so a commit added meanwhile keeps the branch.
    """
    sha = ref_sha(hub, f"refs/heads/{branch}")
    if sha is None:
        return Archived(branch, None, False)
    git = Git(hub)
    git.run("update-ref", f"refs/gastown/archive/{branch}", sha)
    if branch in checked_out_branches(hub):
        return Archived(branch, sha, False)
    deleted = git.run("update-ref", "-d", f"refs/heads/{branch}", sha, check=False).ok
    return Archived(branch, sha, deleted)


def archive_branches(hub: Path, branches: list[str]) -> list[Archived]:
    """``archive_branch`` for many branches in three git calls (one ref transaction);
    falls back to one branch at a time if a branch moved meanwhile."""
    wanted = list(dict.fromkeys(branches))
    if not wanted:
        return []
    git = Git(hub)
    listing = git.out("for-each-ref", "--format=%(refname) %(objectname)", *(f"refs/heads/{b}" for b in wanted))
    shas = {ref.removeprefix("refs/heads/"): sha for ref, _, sha in (line.partition(" ") for line in listing.splitlines())}
    busy = checked_out_branches(hub)
    commands = []
    for branch in wanted:
        if branch in shas:
            commands.append(f"update refs/gastown/archive/{branch} {shas[branch]}")
            if branch not in busy:
                commands.append(f"delete refs/heads/{branch} {shas[branch]}")
    if commands and not git.run("update-ref", "--stdin", input="\n".join(commands) + "\n", check=False).ok:
        return [archive_branch(hub, branch) for branch in wanted]
    return [Archived(b, shas.get(b), b in shas and b not in busy) for b in wanted]


def unpin_mr_commits(hub: Path, mr_ids: list[str]) -> None:
    """``unpin_mr_commit`` for many MRs in one git call. Idempotent."""
    if mr_ids:
        Git(hub).run("update-ref", "--stdin", input="".join(f"delete refs/gastown/mr/{m}\n" for m in mr_ids), check=False)


@dataclass(frozen=True)
class PushOutcome:
    ok: bool
    message: str


def push_tip(hub: Path, sha: str, target: str) -> PushOutcome:
    """``git push origin <sha>:refs/heads/<target>``, never forced. A refusal is returned,
    not raised: the caller tells a moved upstream from a real failure by fetching."""
    result = Git(hub).run("push", "--quiet", "origin", f"{sha}:refs/heads/{target}", check=False, timeout=PUSH_TIMEOUT)
    return PushOutcome(result.ok, push_complaint(result.stderr + result.stdout))


def push_branch(hub: Path, sha: str, branch: str, *, env: dict[str, str] | None = None) -> PushOutcome:
    """``git push --force origin <sha>:refs/heads/<branch>``: gastown's own branch (say the
    ``gastown/<issue>`` branch of a pull request), which only gastown moves. ``env`` reaches
    this git process only (credentials as ``GIT_CONFIG_*``, never on the command line)."""
    result = Git(hub, env=env).run("push", "--quiet", "--force", "origin", f"{sha}:refs/heads/{branch}", check=False,
                                   timeout=PUSH_TIMEOUT)
    return PushOutcome(result.ok, push_complaint(result.stderr + result.stdout))


def push_complaint(text: str) -> str:
    """What the remote said about a refused push, in one line.

    >>> push_complaint("remote: main is protected\\nTo /up\\n ! [remote rejected] x -> main (pre-receive hook declined)\\n"
    ...                "error: failed to push some refs to '/up'")
    'main is protected; [remote rejected] x -> main (pre-receive hook declined)'
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    said = [line.removeprefix("remote:").strip() for line in lines if line.startswith("remote:")]
    said += [line.lstrip("! ").strip() for line in lines if "rejected]" in line]
    said = [line for line in said if line]
    return "; ".join(said) if said else (lines[-1] if lines else "")


def remote_sha(hub: Path, target: str, *, timeout: float = 60.0) -> str:
    """The upstream's ``refs/heads/<target>`` as ``git ls-remote`` reports it."""
    ref = f"refs/heads/{target}"
    result = Git(hub).run("ls-remote", "origin", ref, timeout=timeout)
    for line in result.stdout.splitlines():
        sha, _, name = line.partition("\t")
        if name.strip() == ref:
            return sha.strip()
    raise GitError(f"the upstream has no branch {target!r}", argv=["git", "ls-remote", "origin", ref],
                   hint="check the rig's branch in gastown.toml")
