"""The SSH host driver against a real sshd whose root only SSH can reach (tests/sshd.py).

One agent's whole life on a remote host: a worktree from the host's mirror, the demo
agent started in the host's own tmux server, one-round-trip snapshots, typing into it
with the delivery protocol, capture, stop, and its branch fetched back to the hub.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
from pathlib import Path, PurePosixPath

import pytest

from gastown._internal.processes import alive
from gastown.errors import HostUnreachable, LaunchFailed
from gastown.git import worktrees as wt
from gastown.hosts.base import LaunchSpec
from gastown.hosts.ssh import SshHost
from gastown.runtimes.registry import resolve_runtime
from gastown.tmux.delivery import deliver
from gastown.town import Town
from tests.helpers import retry_until, set_config
from tests.sshd import SshServer as Server

pytestmark = [pytest.mark.tmux, pytest.mark.slow]

TARGET = "refs/remotes/origin/main"


def remote_town(rig_town: Path, host: Server) -> Town:
    set_config(rig_town, "hosts.b1", host.host_table())
    set_config(rig_town, "rigs.app", {"hosts": ["local", "b1"]})
    set_config(rig_town, "server", {"enabled": True})  # agents on other hosts report back through it
    return Town(rig_town)


@pytest.fixture
def driver(rig_town: Path, ssh_host: Server) -> SshHost:
    town = remote_town(rig_town, ssh_host)
    host = SshHost.from_config("b1", town)
    assert all(c.ok for c in host.check(pin=True)), host.check()
    yield host
    host.close()


def demo_spec(host: SshHost, ssh_host: Server, spawn: str, cwd: PurePosixPath, extra_env: dict[str, str] | None = None) -> LaunchSpec:
    env = {"PATH": str(ssh_host.path_dir), "HOME": str(ssh_host.root), "GT_ISSUE": "app-r1x2y", "LANG": "C.UTF-8",
           "GIT_CONFIG_GLOBAL": str(ssh_host.dir / "gitconfig"), **(extra_env or {})}
    prompt = host.layout.prompt_path(spawn)
    return LaunchSpec(spawn, [sys.executable, "-m", "gastown.demo_agent", "--think", "0.2"], env, cwd,
                      files={prompt: b"[gastown] task\nIssue: app-r1x2y\nTitle: remote hello\n"})


def test_a_remote_agent_lives_its_whole_life_over_one_connection(driver: SshHost, ssh_host: Server, rig_town: Path) -> None:
    hub = Town(rig_town).hub_path("app")
    driver.sync_rig("app", hub, [TARGET])
    path = driver.create_worktree("app", "ace", "polecat/ace/app-r1x2y", TARGET)
    assert driver.is_worktree("app", "ace")
    # The worktree exists on the host only: the hub's view of the host root is empty.
    assert ssh_host.inside("test", "-f", str(path / "README.md")).returncode == 0
    assert os.listdir(ssh_host.root) == []

    spawn = "sp-remote1"
    launch = driver.stage_launch(demo_spec(driver, ssh_host, spawn, path))
    mode = ssh_host.inside("stat", "-c", "%a", f"{launch}.pending").stdout.strip()
    assert mode == "600"
    log = driver.layout.log_path("app", "ace", spawn)
    window = driver.start_agent(launch, session="app", window="ace", cwd=path, ids={"GT_SPAWN": spawn},
                                log_path=log, spawn=spawn)
    driver.check_started(window.pane)
    assert window.pane.startswith("%") and window.pid

    retry_until(lambda: "demo> " in driver.capture(window.pane), timeout=30, what="the demo prompt on the host")
    before = driver.ssh.round_trips
    snap = driver.snapshot([log, driver.layout.log_path("app", "ace", "sp-none")])
    assert driver.ssh.round_trips - before == 1
    (pane,) = [p for p in snap.panes if p.pane_id == window.pane]
    assert pane.spawn == spawn and not pane.dead and pane.session == "app" and pane.window == "ace"
    assert snap.log_sizes[str(log)] > 0 and len(snap.log_sizes) == 1

    runtime = resolve_runtime(Town(rig_town).config(), "demo")
    locks = Town(rig_town).locks_dir
    hostile = "hi $(touch /tmp/pwned) `id` 'q' \"d\" ; rm -rf ~"
    deliver(driver.tmux, window.pane, hostile, runtime=runtime, locks_dir=locks)
    retry_until(lambda: "demo: got message: hi $(touch" in driver.capture(window.pane), timeout=30, what="the message typed")
    assert ssh_host.inside("test", "-e", "/tmp/pwned").returncode != 0
    deliver(driver.tmux, window.pane, "[gastown] task\nIssue: app-r1x2y\nTitle: remote hello", runtime=runtime, locks_dir=locks)
    retry_until(lambda: "demo: committed" in driver.capture(window.pane, 200), timeout=60, what="the agent's commit")
    assert driver.new_work_since("app", "ace", 0)

    last = driver.stop_agent(window.pane, grace=2.0)
    assert last is not None and "demo" in last
    assert driver.snapshot([]).panes == () or all(p.pane_id != window.pane for p in driver.snapshot([]).panes)
    assert not alive(window.pid)  # the agent's process is gone, not just its window

    sha = driver.fetch_branch("app", "polecat/ace/app-r1x2y", hub)
    assert sha and wt.ref_sha(hub, "refs/heads/polecat/ace/app-r1x2y") == sha
    assert "remote hello" in wt.Git(hub).out("log", "-1", "--format=%s", sha)
    assert driver.fetch_branch("app", "polecat/nobody/app-zzzzz", hub) is None


def cmdlines() -> dict[int, bytes]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue
    return found


def test_no_secret_ever_reaches_a_command_line(driver: SshHost, ssh_host: Server) -> None:
    """A secret sent to the host (a 0600 file, an agent's environment) is never in any
    process's argv, on the hub or on the host, while it travels or while the agent runs."""
    secret = "gt-secret-" + os.urandom(12).hex()
    seen: list[bytes] = []
    ssh_seen = threading.Event()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for cmdline in cmdlines().values():
                if secret.encode() in cmdline:
                    seen.append(cmdline)
                if cmdline.startswith(b"ssh\0") and b"ControlPath=" in cmdline:
                    ssh_seen.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        path = driver.layout.secrets_dir("sp-s1") / "token"
        # Big enough that the transfer takes a while: the watcher sees the ssh at work.
        driver.ssh.put_files({path: (secret + "\n").encode() + b"x" * 8_000_000})
        spec = demo_spec(driver, ssh_host, "sp-s1", driver.layout.base, {"API_TOKEN": secret})
        launch = driver.stage_launch(spec)
        window = driver.start_agent(launch, session="sec", window="s1", cwd=driver.layout.base,
                                    ids={"GT_SPAWN": "sp-s1"}, log_path=driver.layout.log_path("x", "s1", "sp-s1"), spawn="sp-s1")
        retry_until(lambda: "demo> " in driver.capture(window.pane), timeout=30, what="the agent up")
    finally:
        done.set()
        watcher.join()
    assert ssh_seen.is_set(), "the watcher never saw the ssh client at work"
    assert seen == []
    assert ssh_host.inside("stat", "-c", "%a %s", str(path)).stdout.split() == ["600", str(len(secret) + 1 + 8_000_000)]
    agent_env = ssh_host.inside("sh", "-c", f"cat /proc/{window.pid}/environ").stdout
    assert f"API_TOKEN={secret}" in agent_env.split("\0")  # it reached the agent, by its environment only
    driver.stop_agent(window.pane, grace=1.0)


def test_a_host_that_vanishes_is_unreachable_not_empty(driver: SshHost, ssh_host: Server) -> None:
    driver.prepare()
    assert driver.snapshot([]).panes == ()  # reachable, no tmux server yet: no panes
    ssh_host.stop()
    with pytest.raises(HostUnreachable, match="cannot reach host b1"):
        driver.snapshot([])
    ssh_host.start()
    assert driver.snapshot([]).panes == ()  # back: a new master, the same pinned key


def test_an_agent_that_exits_at_once_is_a_failed_launch(driver: SshHost, ssh_host: Server) -> None:
    spec = LaunchSpec("sp-bad", [sys.executable, "-c", "print('no model configured'); raise SystemExit(3)"],
                      {"PATH": str(ssh_host.path_dir)}, driver.layout.base)
    launch = driver.stage_launch(spec)
    window = driver.start_agent(launch, session="bad", window="b", cwd=driver.layout.base, ids={},
                                log_path=driver.layout.log_path("x", "b", "sp-bad"), spawn="sp-bad")
    # check_started looks for 0.3 s; on a loaded machine Python may take longer to die.
    retry_until(lambda: driver.pane_tag(window.pane) == "1\tsp-bad", timeout=30, what="the agent to exit")
    with pytest.raises(LaunchFailed, match=r"exited at once \(status 3\): no model configured"):
        driver.check_started(window.pane)


def test_attach_is_ssh_t_into_the_hosts_tmux(driver: SshHost) -> None:
    argv = driver.attach_argv("app")
    assert argv[0] == "ssh" and "-t" in argv and "BatchMode=yes" in argv
    remote = shlex.split(argv[-1])
    assert remote[:3] == ["tmux", "-u", "-S"] and remote[-3:] == ["attach-session", "-t", "=app"]


def test_a_patrols_looks_go_through_one_long_lived_shell(driver: SshHost, ssh_host: Server) -> None:
    """Looks taken `again` reuse one shell on the host (no new ssh per look); hostile-looking
    arguments stay data; a host that goes away is unreachable, and the next look after it
    returns starts a new shell."""
    status, out = driver.ssh.look('printf "%s|" "$@"; exit 3', "a b", "$(id)", "'q'")
    assert (status, out) == (3, "a b|$(id)|'q'|")
    first = driver.ssh._shell._proc.pid  # type: ignore[union-attr]
    for _ in range(3):
        assert driver.snapshot([], again=True).panes == ()
    assert driver.ssh._shell._proc.pid == first  # type: ignore[union-attr]
    with pytest.raises(HostUnreachable):
        driver.ssh.look("sleep 5", timeout=0.5)
    assert driver.ssh.look("echo back")[1] == "back\n"  # a new shell after the timeout

    ssh_host.stop()
    with pytest.raises(HostUnreachable):
        driver.snapshot([], again=True)
    ssh_host.start()

    def looks_up() -> bool:
        try:
            return driver.ssh.look("echo up", timeout=10)[1] == "up\n"
        except HostUnreachable:
            return False

    retry_until(looks_up, timeout=30, what="a look after the return")
