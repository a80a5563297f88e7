"""The shared fixtures do what later tests rely on: isolation and cleanup."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import git, gt_json, kill_tmux_server, retry_until


def test_tmux_socket_is_unique_and_not_the_default(tmux_socket: str) -> None:
    assert tmux_socket.startswith("gt-test-")
    assert os.environ["GT_TMUX_SOCKET"] == tmux_socket
    subprocess.run(["tmux", "-L", tmux_socket, "new-session", "-d", "-s", "probe", "sleep 30"], check=True)
    listed = subprocess.run(["tmux", "-L", tmux_socket, "list-sessions", "-F", "#{session_name}"], capture_output=True, text=True)
    assert listed.stdout.split() == ["probe"]
    kill_tmux_server(tmux_socket)
    gone = subprocess.run(["tmux", "-L", tmux_socket, "list-sessions"], capture_output=True, text=True)
    assert gone.returncode != 0


def test_home_and_git_identity_are_private(tmp_path: Path) -> None:
    home = Path(os.environ["HOME"])
    assert home != Path("/root") and "pytest" in str(home)
    name = subprocess.run(["git", "config", "user.name"], capture_output=True, text=True).stdout.strip()
    assert name == "Gastown Test"


def test_upstream_fixture_has_a_commit(upstream: Path) -> None:
    log = subprocess.run(["git", "log", "--oneline", "main"], cwd=upstream, capture_output=True, text=True).stdout
    assert "initial commit" in log


def test_the_invoking_terminal_does_not_reach_the_tests() -> None:
    """xdist exports COLUMNS=80 to its workers: rich would cut every `gt` table there."""
    for var in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        assert var not in os.environ, var


def test_retry_until_leaves_the_cpu_to_the_system_under_test() -> None:
    """A predicate that burns CPU (as one running `gt` does) is called at most a third of
    the time: after each call, a pause of at least twice the CPU it spent."""
    burn = "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.15: pass\n"
    calls: list[tuple[float, float, float]] = []  # (started, finished, cpu spent)

    def costly() -> bool:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", burn], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        calls.append((started, time.monotonic(), cpu))
        return len(calls) == 4

    assert retry_until(costly, timeout=60, interval=0.01, what="the fourth call")
    for (_, finished, cpu), (next_started, _, _) in zip(calls, calls[1:], strict=False):
        assert cpu >= 0.1
        assert next_started - finished >= 2 * cpu * 0.95, calls


def test_retry_until_polls_a_cheap_predicate_at_its_interval() -> None:
    seen: list[float] = []
    retry_until(lambda: seen.append(time.monotonic()) or len(seen) == 5, timeout=30, interval=0.02)
    assert seen[-1] - seen[0] < 2.0  # four pauses of 0.02 s, even on a loaded machine


def test_retry_until_fails_after_the_deadline_naming_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0.2s waiting for the moon \(last value: 0\)"):
        retry_until(lambda: 0, timeout=0.2, what="the moon")


def test_rig_town_is_a_town_of_its_own(rig_town: Path, upstream: Path, tmp_path: Path) -> None:
    """Towns are copied from a per-worker template: the copy must point at this test's
    upstream and nothing of the template's, and work like a town made here."""
    [rig] = gt_json("rig", "list", cwd=rig_town)
    assert (rig["name"], Path(rig["repo"])) == ("app", upstream)
    hub = rig_town / "app" / "hub.git"
    assert Path(git(hub, "remote", "get-url", "origin")) == upstream
    work = tmp_path / "up" / "upstream-work"
    (work / "NEW.md").write_text("new\n")
    git(work, "add", "NEW.md")
    git(work, "commit", "-q", "-m", "a commit made in this test")
    git(work, "push", "-q", str(upstream), "HEAD:main")
    git(hub, "fetch", "-q", "origin")
    assert git(hub, "log", "-1", "--format=%s", "origin/main") == "a commit made in this test"
    assert gt_json("issue", "create", "works here", cwd=rig_town)["id"].startswith("app-")
