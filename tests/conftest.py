"""Fixtures: an isolated environment for every test, temp towns and upstreams, and an
isolated tmux server on a unique socket that is always killed afterwards."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import kill_tmux_server, make_upstream, run_gt, set_config

# Helper programs the tests run as agents; not test modules (importing them would run them).
collect_ignore = ["agents"]

AGENT_VARS = ("GT_TOWN", "GT_RIG", "GT_POLECAT", "GT_ISSUE", "GT_SPAWN", "GT_ROLE", "TMUX", "TMUX_PANE", "GT_DEBUG")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every test gets its own HOME, git identity and tmux socket; nothing touches the user's.

    Yields the tmux socket name; whatever server a test started on it is killed afterwards.
    """
    home = tmp_path_factory.mktemp("home")
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Gastown Test\n\temail = test@gastown.invalid\n"
        "[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n"
        "[advice]\n\tdetachedHead = false\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in AGENT_VARS:
        monkeypatch.delenv(var, raising=False)
    socket = f"gt-test-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("GT_TMUX_SOCKET", socket)
    try:
        yield socket
    finally:
        kill_tmux_server(socket)


@pytest.fixture
def tmux_socket(isolated_env: str) -> str:
    """The test's own tmux socket name (a server on it is killed after the test)."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    return isolated_env


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    """A bare upstream repository with one commit on main."""
    return make_upstream(tmp_path / "up")


@pytest.fixture
def town(tmp_path: Path) -> Path:
    """A fresh town with no rigs."""
    root = tmp_path / "town"
    run_gt("init", str(root), check=True)
    # Parallel towns would all bind port 8470; the server's own tests turn it on.
    set_config(root, "server", {"enabled": False})
    return root


@pytest.fixture
def rig_town(town: Path, upstream: Path) -> Path:
    """A town with one rig, ``app``, cloned from ``upstream``."""
    run_gt("rig", "add", "app", str(upstream), cwd=town, check=True)
    return town
