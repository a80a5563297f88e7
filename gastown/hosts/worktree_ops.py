"""Worktree operations by name, run by the local driver in-process and by the SSH driver
on the host (``gt _host-op`` reads one JSON request on stdin, prints one JSON answer).

So a polecat's worktree on any host follows exactly ``git.worktrees``' rules: leftovers
are archived under ``refs/gastown/archive/`` before anything is reset or removed, and
unmerged work is refused. Requests carry paths and names, never shell text.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gastown.errors import GastownError
from gastown.git import worktrees as wt
from gastown.git.cmd import Git


def _create(mirror: str, path: str, branch: str, start: str) -> None:
    wt.create_worktree(Path(mirror), Path(path), branch, start)


def _reset(mirror: str, path: str, branch: str, start: str, target: str) -> None:
    wt.reset_worktree(Path(mirror), Path(path), branch, start, target=target)


def _remove(mirror: str, path: str, target: str, force: bool) -> str | None:
    return wt.remove_worktree(Path(mirror), Path(path), target=target, force=force)


def _is_worktree(path: str) -> bool:
    return wt.is_worktree(Path(path))


def _new_work_since(path: str, since: float, ignore: list[str]) -> bool:
    """A commit at or after ``since``, or changes outside the ``ignore`` patterns."""
    git = Git(Path(path))
    stamp = git.run("log", "-1", "--format=%ct", "HEAD", check=False).stdout.strip()
    if stamp.isdigit() and int(stamp) >= int(since):
        return True
    excludes = [f":(exclude){pattern}" for pattern in ignore]
    return bool(git.run("status", "--porcelain", "--", ".", *excludes, check=False).stdout.strip())


OPS: Mapping[str, Callable[..., Any]] = {
    "create_worktree": _create,
    "reset_worktree": _reset,
    "remove_worktree": _remove,
    "is_worktree": _is_worktree,
    "new_work_since": _new_work_since,
}


def apply(op: str, args: Mapping[str, Any]) -> Any:
    """Run one named operation (raises ``KeyError`` for an unknown one)."""
    return OPS[op](**args)


def main(argv: list[str]) -> int:
    """``gt _host-op``: one request ``{"op": ..., "args": {...}}`` on stdin; prints
    ``{"ok": true, "result": ...}`` or ``{"ok": false, "kind", "message", "hint"}``."""
    try:
        request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
        result = apply(request["op"], request.get("args", {}))
        answer: dict[str, Any] = {"ok": True, "result": result}
    except GastownError as exc:
        answer = {"ok": False, "kind": type(exc).__name__, "message": exc.message, "hint": exc.hint}
    except (KeyError, TypeError, ValueError) as exc:
        answer = {"ok": False, "kind": "InvalidInput", "message": f"bad host request: {exc}", "hint": None}
    sys.stdout.write(json.dumps(answer) + "\n")
    return 0 if answer["ok"] else 1
