"""One town, two machines: issues slung to local and remote polecats land through the
same refinery; `gt peek`, `gt nudge`, `gt attach` and `gt done` work on the remote ones;
a host that vanishes mid-run is `unreachable`, its work finishes elsewhere after its
grace, and when it comes back nothing runs twice and nothing is lost.

The remote host is a real sshd on 127.0.0.1 whose root only SSH can reach (tests/sshd.py).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gastown.context import Context
from gastown.hosts.ssh import SshHost
from gastown.ledger import issues
from gastown.town import Town
from tests.helpers import (
    git,
    gt_json,
    kill_tmux_server,
    ledger_rows,
    no_overlapping_spawns,
    retry_until,
    run_gt,
    set_config,
)
from tests.sshd import SshServer

pytestmark = [pytest.mark.tmux, pytest.mark.slow]

WITNESS = {"patrol_interval": "0.5s", "spawn_grace": "60s", "stall_after": "120s", "idle_after": "120s",
           "max_nudges": 1, "max_restarts": 3, "stop_timeout": "2s"}


def two_host_town(rig_town: Path, host: SshServer, order: list[str], **host_extra: object) -> Context:
    set_config(rig_town, "hosts.b1", host.host_table(**host_extra))
    set_config(rig_town, "rigs.app", {"agent": "demo", "hosts": order})
    set_config(rig_town, "witness", WITNESS)
    set_config(rig_town, "server", {"enabled": True, "port": 0})  # tests run side by side: any free port
    run_gt("host", "check", "b1", cwd=rig_town, check=True)  # pins the host's key, as a user would first
    return Context(Town(rig_town))


def new_issue(ctx: Context, title: str, body: str) -> str:
    return issues.create(ctx.ledger, title=title, body=body, rig="app", priority=2,
                         prefixes=ctx.config.rig_prefixes()).id


def spawn_rows(town: Path, issue: str) -> list[dict[str, object]]:
    return ledger_rows(town, "SELECT * FROM spawns WHERE issue = ? ORDER BY started_at", issue)


def status_of(town: Path, issue: str) -> str:
    return str(ledger_rows(town, "SELECT status FROM issues WHERE id = ?", issue)[0]["status"])


def merged_per_issue(town: Path) -> Counter[str]:
    return Counter(str(r["issue"]) for r in ledger_rows(town, "SELECT issue FROM mrs WHERE state = 'merged'"))


def upstream_files(upstream: Path) -> set[str]:
    return set(git(upstream, "ls-tree", "--name-only", "main").split())


def test_local_and_remote_polecats_land_through_one_refinery(
    rig_town: Path, upstream: Path, ssh_host: SshServer, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GT_DEMO_THINK", "0.2")
    ctx = two_host_town(rig_town, ssh_host, ["local", "b1"])
    # Busy for good on its first run, so it is surely there to be looked at; `gt restart` lets it finish.
    waiting = "~~~demo\nthink 900 @first\n~~~\n~~~demo\nwrite slow.txt\nslow\n~~~"
    ids = [new_issue(ctx, f"two hosts {n}", f"~~~demo\nwrite file-{n}.txt\nhello {n}\n~~~") for n in range(3)]
    slow = new_issue(ctx, "the one we look at", waiting)
    try:
        run_gt("up", cwd=rig_town, check=True)
        # Least loaded first, the rig's order breaking ties: local, b1, local, b1.
        slung = gt_json("sling", ids[0], slow, ids[1], ids[2], "--no-convoy", cwd=rig_town)
        assert [r["status"] for r in slung] == ["started"] * 4, slung
        hosts = {r["issue"]: spawn_rows(rig_town, r["issue"])[0]["host"] for r in slung}
        assert hosts == {ids[0]: "local", slow: "b1", ids[1]: "local", ids[2]: "b1"}

        # The remote agent, as a person sees it from the hub.
        agents = {a["issue"]: a for a in gt_json("agents", cwd=rig_town)}
        assert agents[slow]["host"] == "b1"
        polecat = f"app/{agents[slow]['polecat']}"
        assert f"{polecat}@b1" in run_gt("status", cwd=rig_town).stdout
        assert {a["issue"]: a["host"] for a in gt_json("status", cwd=rig_town)["agents"]}[slow] == "b1"
        retry_until(lambda: "demo: thinking" in run_gt("peek", polecat, cwd=rig_town).stdout, timeout=60,
                    what="the remote agent's screen through gt peek")
        # Typed into the host's pane with the delivery protocol, which checks the text landed there.
        nudged = run_gt("nudge", polecat, "hello from the hub; it's $(id) time", "--now", cwd=rig_town, check=True)
        assert nudged.stdout.startswith(f"delivered to {polecat}"), nudged.stdout
        # `gt attach` in a terminal (a pane of a separate tmux server): an ssh -t client of the host's tmux.
        outer = f"{tmux_socket}-outer"
        subprocess.run(
            ["tmux", "-L", outer, "-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40", "--",
             "env", "-u", "TMUX", "-u", "TMUX_PANE", sys.executable, "-m", "gastown", "attach", polecat,
             "--town", str(rig_town)],
            check=True, env={**os.environ, "GT_TMUX_SOCKET": tmux_socket},
        )
        subprocess.run(["tmux", "-L", outer, "set-option", "-g", "remain-on-exit", "on"], capture_output=True)
        try:
            host_tmux = SshHost.from_config("b1", Town(rig_town)).tmux

            def host_clients() -> list[str]:
                return host_tmux.cmd("list-clients", "-F", "#{client_session}", check=False).stdout.split()

            try:
                assert retry_until(host_clients, timeout=60, what="a client on the host's tmux") == ["app"]
            except AssertionError:
                terminal = subprocess.run(["tmux", "-L", outer, "capture-pane", "-p"], capture_output=True, text=True)
                raise AssertionError(f"gt attach's terminal shows: {terminal.stdout.strip()!r}") from None
        finally:
            kill_tmux_server(outer)
        run_gt("restart", polecat, cwd=rig_town, check=True)  # its next run skips the long think

        everyone = [*ids, slow]
        retry_until(lambda: all(status_of(rig_town, i) == "closed" for i in everyone), timeout=300, interval=1,
                    what="every issue, local and remote, to merge")
    finally:
        run_gt("down", "--timeout", "2", cwd=rig_town)

    assert merged_per_issue(rig_town) == Counter({i: 1 for i in everyone})
    assert {f"file-{n}.txt" for n in range(3)} | {"slow.txt"} <= upstream_files(upstream)
    remote_done = ledger_rows(rig_town, "SELECT * FROM events WHERE kind = 'done' AND issue = ?", slow)
    assert remote_done, "the remote agent's own gt done reached the town"
    assert not ledger_rows(rig_town, "SELECT id FROM spawns WHERE status IN ('starting', 'running', 'done')")
    no_overlapping_spawns(rig_town)


def test_a_host_that_vanishes_mid_run_loses_nothing_and_runs_nothing_twice(
    rig_town: Path, upstream: Path, ssh_host: SshServer, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GT_DEMO_THINK", "0.2")
    # The host first, so the work starts there; 3 s of grace once it stops answering.
    ctx = two_host_town(rig_town, ssh_host, ["b1", "local"], grace="3s")
    issue = new_issue(ctx, "survives its host", "~~~demo\nthink 600 @first\n~~~\n~~~demo\nwrite moved.txt\nfinished\n~~~")
    try:
        run_gt("up", cwd=rig_town, check=True)
        (slung,) = [gt_json("sling", issue, "--no-convoy", cwd=rig_town)]
        slung = slung[0] if isinstance(slung, list) else slung
        assert slung["status"] == "started" and spawn_rows(rig_town, issue)[0]["host"] == "b1"
        branch = slung["branch"]
        driver = SshHost.from_config("b1", Town(rig_town))
        worktree = str(driver.layout.polecat_path("app", slung["polecat"]))

        def remote_commit(name: str) -> str:
            script = f"cd {shlex.quote(worktree)} && echo work > {name} && git add {name} && git commit -qm {name} && git rev-parse HEAD"
            return driver.ssh.run(["sh", "-c", script]).stdout.strip()

        # The agent's work so far: one commit the hub fetches as a checkpoint, then one it never sees.
        seen = remote_commit("seen.txt")
        hub = rig_town / "app" / "hub.git"
        retry_until(lambda: git(hub, "for-each-ref", "--format=%(objectname)", f"refs/gastown/checkpoints/{branch}") == seen,
                    timeout=90, what="the hub's checkpoint of the remote agent's commit")
        unseen = remote_commit("unseen.txt")

        ssh_host.stop()  # sshd, its sessions, the host's tmux server and the agent: gone mid-run
        retry_until(lambda: any(a["state"] == "unreachable" for a in gt_json("agents", cwd=rig_town)), timeout=60,
                    what="the agent shown unreachable")
        retry_until(lambda: status_of(rig_town, issue) == "closed", timeout=240, interval=1,
                    what="the issue to finish on the hub after the host's grace")
        runs = spawn_rows(rig_town, issue)
        assert [r["host"] for r in runs] == ["b1", "local"], runs
        assert "unreachable past its grace" in str(runs[0]["end_reason"])

        ssh_host.start()  # the host comes back: its stale agent is gone, its unseen commit kept
        def archived() -> list[str]:
            refs = git(hub, "for-each-ref", "--format=%(objectname) %(refname)", "refs/gastown/archive/b1/").splitlines()
            return [ref for ref in refs if ref.startswith(unseen)]

        assert len(retry_until(archived, timeout=90, what="the unseen commit archived")) == 1
    finally:
        run_gt("down", "--timeout", "2", cwd=rig_town)

    assert merged_per_issue(rig_town) == Counter({issue: 1})
    files = upstream_files(upstream)
    assert {"seen.txt", "moved.txt"} <= files and "unseen.txt" not in files  # resumed from the checkpoint
    no_overlapping_spawns(rig_town)


def test_unslinging_a_remote_polecat_brings_its_work_back_and_removing_it_clears_the_host(
    rig_town: Path, ssh_host: SshServer, tmux_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GT_DEMO_THINK", "0.2")
    ctx = two_host_town(rig_town, ssh_host, ["b1"])
    issue = new_issue(ctx, "let go of", "~~~demo\nthink 900\n~~~")
    try:
        run_gt("up", cwd=rig_town, check=True)
        slung = gt_json("sling", issue, "--no-convoy", cwd=rig_town)
        slung = slung[0] if isinstance(slung, list) else slung
        driver = SshHost.from_config("b1", Town(rig_town))
        worktree = str(driver.layout.polecat_path("app", slung["polecat"]))
        script = f"cd {shlex.quote(worktree)} && echo wip > wip.txt && git add wip.txt && git commit -qm wip && git rev-parse HEAD"
        wip = driver.ssh.run(["sh", "-c", script]).stdout.strip()

        unslung = gt_json("unsling", issue, cwd=rig_town)
        hub = rig_town / "app" / "hub.git"
        archived = git(hub, "for-each-ref", "--format=%(objectname)", "refs/gastown/archive/b1/").split()
        assert archived == [wip], (archived, unslung)
        assert not [p for p in driver.snapshot([]).panes if p.spawn], "the remote agent was stopped"

        run_gt("polecat", "remove", f"app/{slung['polecat']}", "--force", cwd=rig_town, check=True)
        assert not driver.is_worktree("app", slung["polecat"])
    finally:
        run_gt("down", "--timeout", "2", cwd=rig_town)
