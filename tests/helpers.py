"""Helpers shared by the tests: waiting on state, running `gt`, making repositories."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

# The directory all processes of one test run share (xdist workers and the controller);
# set up by tests/conftest.py, removed when the run ends.
RUN_DIR = pytest.StashKey[Path]()

# A poll may keep the CPU busy at most this share of its wait (see retry_until).
POLL_DUTY = 1 / 3


def run_dir(config: pytest.Config) -> Path:
    """The run directory shared by every worker of this test run (exists for the whole run)."""
    return config.stash[RUN_DIR]


def retry_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``.

    Between two calls it waits ``interval``, or longer when the predicate itself is
    costly: one that runs `gt` spends ~0.4 s of CPU per call, and calling it back to back
    would take a whole core from the system under test (the suite runs in parallel, so
    every machine is loaded). The wait keeps the CPU the polling uses (its own thread and
    the processes it ran) to ``POLL_DUTY`` of the time. After the deadline the predicate
    is called once more before the test fails.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        spent = _poll_cpu_seconds()
        last = predicate()
        if last:
            return last
        spent = _poll_cpu_seconds() - spent
        now = time.monotonic()
        if now > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")
        pause = max(interval, spent * (1 / POLL_DUTY - 1))
        time.sleep(min(pause, deadline - now + 0.01))


def _poll_cpu_seconds() -> float:
    """CPU used so far by this thread and by the child processes it has waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.thread_time() + children.ru_utime + children.ru_stime


def run_gt(
    *args: str,
    cwd: Path | None = None,
    input: str | bytes | None = None,
    env: dict[str, str] | None = None,
    check: bool = False,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Run the real `gt` (this checkout, this interpreter) as a separate process."""
    full_env = {**os.environ, **(env or {})}
    data = input.encode("utf-8") if isinstance(input, str) else input
    proc = subprocess.run(
        [sys.executable, "-m", "gastown", *args],
        cwd=cwd,
        input=data,
        capture_output=True,
        env=full_env,
        timeout=timeout,
    )
    result = subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
    )
    if check and result.returncode != 0:
        raise AssertionError(f"gt {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def kill_tmux_server(socket: str) -> None:
    """Kill the tmux server on ``socket`` (if any) and remove its socket file."""
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=10)
    Path(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}", socket).unlink(missing_ok=True)


def gt_json(*args: str, cwd: Path | None = None, input: str | None = None, env: dict[str, str] | None = None) -> Any:
    result = run_gt(*args, "--json", cwd=cwd, input=input, env=env, check=True)
    return json.loads(result.stdout)


def create_issue(town: Path, title: str, body: str = "", *, rig: str | None = None, priority: int = 2) -> str:
    """A new issue, made in this process as `gt issue create` makes it; its id. For tests
    whose subject is not the CLI: each `gt` start costs about 0.3 s of CPU, and the suite
    runs on two cores (`tests/test_issues_cli.py` covers the command itself)."""
    from gastown.context import Context
    from gastown.ledger import issues
    from gastown.town import Town

    ctx = Context(Town(town))
    return issues.create(ctx.ledger, title=title, body=body, rig=rig, priority=priority,
                         prefixes=ctx.settings.rig_prefixes()).id


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def make_upstream(root: Path, files: dict[str, str] | None = None, branch: str = "main") -> Path:
    """A bare repository with one commit holding ``files``; returns its path."""
    bare = root / "upstream.git"
    work = root / "upstream-work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", branch, str(bare)], check=True)
    subprocess.run(["git", "init", "-q", "-b", branch, str(work)], check=True)
    for name, content in (files or {"README.md": "# sample project\n"}).items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "initial commit")
    git(work, "push", "-q", str(bare), f"HEAD:{branch}")
    return bare


def set_config(town: Path, section: str, values: dict[str, Any]) -> None:
    """Set keys in gastown.toml (``section`` like "witness" or "rigs.app"), keeping the rest."""
    import tomlkit

    path = town / "gastown.toml"
    doc = tomlkit.parse(path.read_text())
    table: Any = doc
    for part in section.split("."):
        if part not in table:
            table[part] = tomlkit.table()
        table = table[part]
    for key, value in values.items():
        table[key] = value
    path.write_text(tomlkit.dumps(doc))


def ledger_rows(town: Path, sql: str, *args: Any) -> list[dict[str, Any]]:
    import sqlite3

    with sqlite3.connect(town / ".gastown" / "ledger.db", timeout=30) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql, args)]


def no_overlapping_spawns(town: Path) -> None:
    """No issue ever had two runs working at once: each run stopped working (`gt done`, or
    it ended) before the next one of its issue started."""
    for row in ledger_rows(town, "SELECT DISTINCT issue FROM spawns"):
        runs = ledger_rows(
            town, "SELECT id, started_at, COALESCE(done_at, ended_at) AS stopped FROM spawns"
                  " WHERE issue = ? AND status != 'failed' ORDER BY started_at", row["issue"],
        )
        for earlier, later in zip(runs, runs[1:], strict=False):
            assert earlier["stopped"] is not None and earlier["stopped"] <= later["started_at"] + 0.001, (row, earlier, later)


def record_tmux_calls(ctx: Any) -> list[tuple[str, ...]]:
    """The arguments of every tmux command ``ctx`` runs from now on (it still runs them)."""
    calls: list[tuple[str, ...]] = []
    real_cmd = ctx.tmux.cmd

    def recording_cmd(*args: str, **kwargs: Any) -> Any:
        calls.append(args)
        return real_cmd(*args, **kwargs)

    ctx.tmux.cmd = recording_cmd
    return calls
