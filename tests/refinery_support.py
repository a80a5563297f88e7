"""Helpers for the refinery tests: rig settings, MRs made with git plumbing in the hub,
gates that count their runs, and a slinger stand-in that records what it was asked."""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from gastown.context import Context
from gastown.ledger.issues import create_issue, get_issue, set_issue_status
from gastown.ledger.mrs import MR, record_mr
from gastown.states import IssueStatus
from gastown.town import Town


def configure_rig(town: Path, rig: str = "app", **keys: Any) -> None:
    """Set keys of ``[rigs.<rig>]`` in the town's gastown.toml."""
    path = town / "gastown.toml"
    doc = tomlkit.parse(path.read_text())
    table = doc["rigs"][rig]
    for key, value in keys.items():
        table[key] = value
    path.write_text(tomlkit.dumps(doc))


def open_ctx(town: Path) -> Context:
    return Context(Town(town))


def check_gate(counter: Path) -> str:
    """A gate that counts its runs in ``counter`` and fails when any file says BROKEN."""
    return (f"echo run >> '{counter}'; "
            "if grep -rl --exclude=.git BROKEN .; then echo 'check failed: a BROKEN marker is in the tree'; exit 1; fi; "
            "echo 'check passed'")


def gate_runs(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def plumb(repo: Path, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=repo, input=input, capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, check=True)
    return result.stdout.strip()


def commit_on(repo: Path, parent: str, files: dict[str, str | None], message: str) -> str:
    """A commit on top of ``parent`` changing ``files`` (None deletes), made without a worktree."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        plumb(repo, "read-tree", parent, env=env)
        for path, content in files.items():
            if content is None:
                plumb(repo, "update-index", "--force-remove", path, env=env)
            else:
                blob = plumb(repo, "hash-object", "-w", "--stdin", input=content)
                plumb(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = plumb(repo, "write-tree", env=env)
        return plumb(repo, "commit-tree", tree, "-p", parent, "-m", message)


def new_issue(ctx: Context, rig: str = "app", title: str = "work", priority: int = 2) -> str:
    """An issue as `gt done` leaves it: in review."""
    with ctx.ledger.write() as conn:
        issue = create_issue(conn, rig=rig, prefix=ctx.config.rig_prefix(rig), title=title, body="", priority=priority,
                             now=ctx.now())
        set_issue_status(conn, issue.id, IssueStatus.HOOKED, now=ctx.now())
        set_issue_status(conn, issue.id, IssueStatus.IN_REVIEW, now=ctx.now())
    return issue.id


def submit(
    ctx: Context,
    files: dict[str, str | None],
    *,
    rig: str = "app",
    issue: str | None = None,
    polecat: str = "p1",
    priority: int = 2,
    message: str | None = None,
    parent: str | None = None,
) -> MR:
    """What `gt done` does, minus the agent: a commit on the polecat's branch in the hub, pinned, queued."""
    from gastown.git.merge import pin_mr_commit

    hub = ctx.town.hub_path(rig)
    issue_id = issue or new_issue(ctx, rig, priority=priority)
    with ctx.ledger.write() as conn:
        if get_issue(conn, issue_id).status != IssueStatus.IN_REVIEW:
            set_issue_status(conn, issue_id, IssueStatus.IN_REVIEW, now=ctx.now())
    branch = f"polecat/{polecat}/{issue_id}"
    base = parent or plumb(hub, "rev-parse", "refs/remotes/origin/main")
    sha = commit_on(hub, base, files, message or f"{issue_id}: change {', '.join(files)}")
    plumb(hub, "update-ref", f"refs/heads/{branch}", sha)
    with ctx.ledger.write() as conn:
        mr, _ = record_mr(conn, rig=rig, issue=issue_id, polecat=polecat, spawn=None, branch=branch, commit_sha=sha,
                          target="main", priority=priority, fix_cycle=0, now=ctx.now())
    pin_mr_commit(hub, mr.id, sha)
    return mr


@dataclass
class RecordingSlinger:
    """Stands in for ``gastown.roles.polecat.sling``: records each call and hooks the issue."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_with: Exception | None = None

    def __call__(self, ctx: Context, issue_id: str, target: str | None = None, *, kind: str = "fresh",
                 start_point: str | None = None, note: str | None = None, agent: str | None = None) -> None:
        self.calls.append({"issue": issue_id, "target": target, "kind": kind, "start_point": start_point, "note": note})
        if self.fail_with is not None:
            raise self.fail_with
        with ctx.ledger.write() as conn:
            set_issue_status(conn, issue_id, IssueStatus.HOOKED, now=ctx.now())


def upstream_subjects(upstream: Path, branch: str = "main") -> list[str]:
    return plumb(upstream, "log", "--format=%s", branch).splitlines()


def upstream_file(upstream: Path, path: str, branch: str = "main") -> str | None:
    result = subprocess.run(["git", "show", f"{branch}:{path}"], cwd=upstream, capture_output=True, text=True)
    return result.stdout if result.returncode == 0 else None
