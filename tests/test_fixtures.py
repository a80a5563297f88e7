"""The shared fixtures do what later tests rely on: isolation and cleanup."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers import kill_tmux_server


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
