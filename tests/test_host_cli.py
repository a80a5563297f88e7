"""`gt host add/list/remove/check` and `gt doctor` against real sshds: the happy path,
and each failure (unreachable, changed key, no tmux, no git, no gt) in one sentence."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gastown.errors import HostKeyRejected
from gastown.hosts.ssh import SshHost
from gastown.town import Town
from tests.helpers import run_gt, set_config
from tests.sshd import SshServer, sshd_available

pytestmark = [pytest.mark.tmux, pytest.mark.slow]


def add(town: Path, host: SshServer, name: str = "b1", *extra: str) -> subprocess.CompletedProcess[str]:
    return run_gt("host", "add", name, host.destination, "--port", str(host.port), "--identity-file",
                  str(host.client_key), "--root", str(host.root), *extra, cwd=town)


def test_add_pins_the_key_then_list_check_doctor_and_remove(rig_town: Path, ssh_host: SshServer) -> None:
    added = add(rig_town, ssh_host)
    assert added.returncode == 0, added.stderr
    assert "added host b1" in added.stdout and "key pinned" in added.stdout
    known = (rig_town / ".gastown" / "ssh" / "known_hosts").read_text()
    assert f"[127.0.0.1]:{ssh_host.port}" in known
    listed = json.loads(run_gt("host", "list", "--json", cwd=rig_town, check=True).stdout)
    assert [h["name"] for h in listed] == ["local", "b1"] and listed[1]["port"] == ssh_host.port

    set_config(rig_town, "server", {"enabled": True})  # agents on other hosts report back through it
    set_config(rig_town, "rigs.app", {"hosts": ["local", "b1"], "agent": "demo"})
    checked = run_gt("host", "check", "b1", "--json", cwd=rig_town)
    assert checked.returncode == 0, checked.stdout
    names = {c["name"]: c["ok"] for c in json.loads(checked.stdout)["checks"]}
    assert names == {"b1: ssh": True, "b1: tmux": True, "b1: git": True, "b1: git identity": True, "b1: gt": True,
                     "b1: python": True, "b1: root": True, "b1: agent demo": True}
    doctor = json.loads(run_gt("doctor", "--json", cwd=rig_town).stdout)
    assert any(c["name"] == "b1: gt" and c["ok"] for c in doctor["checks"])

    refused = run_gt("host", "remove", "b1", cwd=rig_town)
    assert refused.returncode == 6 and "host 'b1' is still used by rigs.app.hosts" in refused.stderr
    set_config(rig_town, "rigs.app", {"hosts": ["local"]})
    run_gt("host", "remove", "b1", cwd=rig_town, check=True)
    assert "b1" not in (rig_town / "gastown.toml").read_text().split("[rigs")[0]
    assert f"[127.0.0.1]:{ssh_host.port}" not in (rig_town / ".gastown" / "ssh" / "known_hosts").read_text()


def test_an_unreachable_host_is_not_added(town: Path, ssh_host: SshServer) -> None:
    before = (town / "gastown.toml").read_text()
    ssh_host.stop()
    result = add(town, ssh_host)
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith("gt: cannot reach host b1: ") and "Connection refused" in first and "was not added" in first
    assert "Traceback" not in result.stderr
    assert (town / "gastown.toml").read_text() == before


def test_a_changed_host_key_is_refused_everywhere(town: Path, ssh_host: SshServer) -> None:
    assert add(town, ssh_host).returncode == 0
    for key in (ssh_host.host_key, Path(f"{ssh_host.host_key}.pub")):
        key.unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_host.host_key)], check=True)
    ssh_host.stop()  # the hub's master connection dies with the host
    ssh_host.start()
    result = run_gt("host", "check", "b1", cwd=town)
    assert result.returncode == 1
    assert "[FAIL] b1: ssh: host b1 presented a different key than the one pinned for it: refused" in result.stdout
    driver = SshHost.from_config("b1", Town(town))
    with pytest.raises(HostKeyRejected, match="different key"):
        driver.snapshot([])


@pytest.mark.parametrize(
    "missing, gt, line",
    [
        pytest.param(("tmux",), True, "[FAIL] b1: tmux: tmux is not installed on b1", id="no tmux"),
        pytest.param(("git",), True, "[FAIL] b1: git: git is not installed on b1", id="no git"),
        pytest.param((), False, "[FAIL] b1: gt: gt is not installed on b1 (agents there run `gt done`)", id="no gt"),
    ],
)
def test_check_names_what_the_host_lacks_and_the_fix(
    town: Path, tmp_path: Path, missing: tuple[str, ...], gt: bool, line: str
) -> None:
    if not sshd_available():
        pytest.skip("openssh-server is not installed")
    with SshServer(tmp_path / "sshd", missing=missing, gt=gt) as host:
        added = add(town, host)
        assert added.returncode == 0 and "but b1:" in added.stdout  # added, its problem said
        result = run_gt("host", "check", cwd=town)
        assert result.returncode == 1
        lines = result.stdout.splitlines()
        assert line in lines
        assert lines[lines.index(line) + 1].startswith("       fix: install ")
        assert sum(1 for item in lines if item.startswith("[FAIL]")) == 1
