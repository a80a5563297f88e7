"""The local host driver does what gastown always did, through the interface; and the
pure parts of the host package (probe verdicts, ssh's failures, socket paths) by table."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path, PurePosixPath

import pytest

from gastown._internal.proc import Result
from gastown.errors import HostError, HostKeyRejected, HostUnreachable
from gastown.hosts import open_host
from gastown.hosts.base import LaunchSpec
from gastown.hosts.probe import Probe, assess_probe
from gastown.hosts.sshcmd import MAX_CONTROL_PATH, SshFiles, SshTarget, control_path, ssh_failure
from gastown.town import Town
from tests.helpers import retry_until


@pytest.mark.tmux
def test_the_local_driver_runs_an_agent_through_the_interface(rig_town: Path, tmux_socket: str) -> None:
    town = Town(rig_town)
    host = open_host(town, "local")
    host.prepare()
    path = host.create_worktree("app", "ace", "polecat/ace/app-1", "refs/remotes/origin/main")
    assert Path(path) == town.polecat_path("app", "ace") and host.is_worktree("app", "ace")
    spec = LaunchSpec("sp-l1", [sys.executable, "-m", "gastown.demo_agent", "--think", "0.1"],
                      {"PATH": "/usr/bin:/bin", "HOME": str(rig_town)}, path,
                      files={host.layout.prompt_path("sp-l1"): b"hello"})
    launch = host.stage_launch(spec)
    assert (Path(f"{launch}.pending").stat().st_mode & 0o777) == 0o600
    log = host.layout.log_path("app", "ace", "sp-l1")
    assert Path(log) == town.spawn_log_path("app", "ace", "sp-l1")
    window = host.start_agent(launch, session="app", window="ace", cwd=path, ids={"GT_SPAWN": "sp-l1"},
                              log_path=log, spawn="sp-l1")
    host.check_started(window.pane)
    retry_until(lambda: "demo> " in host.capture(window.pane), timeout=30, what="the demo prompt")
    calls = {"n": 0}
    original = host.tmux.cmd

    def counted(*args: str, **kwargs: object) -> Result:
        calls["n"] += 1
        return original(*args, **kwargs)  # type: ignore[arg-type]

    host.tmux.cmd = counted  # type: ignore[method-assign]
    snap = host.snapshot([log])
    host.tmux.cmd = original  # type: ignore[method-assign]
    assert calls["n"] == 1
    assert [p.spawn for p in snap.panes] == ["sp-l1"] and snap.log_sizes[str(log)] > 0
    assert host.read_log(log, 0, 5) == Path(log).read_bytes()[:5]
    assert host.stop_agent(window.pane, grace=1.0) is not None
    assert host.pane_tag(window.pane) is None
    assert host.fetch_branch("app", "polecat/ace/app-1", town.hub_path("app")) is not None


GOOD = Probe(tmux="tmux 3.3a", git="git version 2.39.5", gt="gt 0.1.0", python="3.11", git_identity=True,
             root="/srv/gt", agents={"claude": "/usr/bin/claude"})


@pytest.mark.parametrize(
    "probe, failed",
    [
        pytest.param(GOOD, [], id="all there"),
        pytest.param(Probe(**{**GOOD.__dict__, "tmux": None}), ["b1: tmux"], id="no tmux"),
        pytest.param(Probe(**{**GOOD.__dict__, "tmux": "tmux 3.1c"}), ["b1: tmux"], id="tmux too old for new-session -e"),
        pytest.param(Probe(**{**GOOD.__dict__, "git": None}), ["b1: git"], id="no git, so no identity check"),
        pytest.param(Probe(**{**GOOD.__dict__, "git_identity": False}), ["b1: git identity"], id="no git identity"),
        pytest.param(Probe(**{**GOOD.__dict__, "gt": None}), ["b1: gt"], id="no gt"),
        pytest.param(Probe(**{**GOOD.__dict__, "gt": "gt 7.2.0"}), ["b1: gt"], id="another gt"),
        pytest.param(Probe(**{**GOOD.__dict__, "python": None}), ["b1: python"], id="no python"),
        pytest.param(Probe(**{**GOOD.__dict__, "root": None}), ["b1: root"], id="root not writable"),
        pytest.param(Probe(**{**GOOD.__dict__, "agents": {}}), ["b1: agent claude"], id="agent CLI missing"),
    ],
)
def test_probe_verdicts(probe: Probe, failed: list[str]) -> None:
    checks = assess_probe("b1", probe, {"claude": "claude"})
    assert [c.name for c in checks if not c.ok] == failed
    assert all(c.fix for c in checks if not c.ok)


def _r(stderr: str) -> Result:
    return Result(["ssh"], 255, "", stderr, 0.0)


@pytest.mark.parametrize(
    "stderr, kind, says",
    [
        pytest.param("ssh: connect to host 10.9.9.9 port 22: Connection timed out", HostUnreachable, "cannot reach host b1", id="timeout"),
        pytest.param("ssh: Could not resolve hostname nowhere: Name or service not known", HostUnreachable, "cannot reach", id="dns"),
        pytest.param("@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.", HostKeyRejected, "different key", id="changed key"),
        pytest.param("No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed.", HostKeyRejected, "not pinned yet", id="unpinned"),
        pytest.param("dev@b1: Permission denied (publickey).", HostError, "refused the login", id="auth"),
    ],
)
def test_ssh_failures_are_one_sentence_each(stderr: str, kind: type, says: str) -> None:
    error = ssh_failure(SshTarget("b1", "dev@b1"), _r(stderr))
    assert type(error) is kind and says in error.message and error.hint
    assert "ssh -F" not in error.message  # never the command line


def test_control_sockets_stay_short_even_for_a_deep_town(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / "town" / ".gastown"
    files = SshFiles(deep / "ssh" / "known_hosts", deep / "run" / "ssh")
    path = control_path(files, SshTarget("b1", "dev@b1", 2222))
    assert len(str(path)) <= MAX_CONTROL_PATH
    assert path.parent.resolve() == files.control_dir.resolve()
    near = Path(tempfile.mkdtemp(prefix="gtc-", dir="/tmp"))
    try:
        short = SshFiles(Path("/tmp/k"), near / "c")
        assert control_path(short, SshTarget("b1", "dev@b1")).parent == near / "c"  # no link needed
    finally:
        shutil.rmtree(near)


def test_hosts_layout_keeps_each_town_apart() -> None:
    from gastown.hosts.base import HostLayout

    a = HostLayout.remote(PurePosixPath("/srv/gt"), "gt-a-111111")
    b = HostLayout.remote(PurePosixPath("/srv/gt"), "gt-b-222222")
    assert a.mirror_path("app") != b.mirror_path("app") and a.tmux_socket != b.tmux_socket
