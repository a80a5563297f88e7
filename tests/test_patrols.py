"""The Mayor, Witness, Deacon and scheduler against misbehaving demo agents (real tmux, git)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import (
    create_issue,
    git,
    gt_json,
    ledger_rows,
    no_overlapping_spawns,
    record_tmux_calls,
    retry_until,
    run_gt,
    set_config,
)

pytestmark = [pytest.mark.tmux, pytest.mark.slow]

FAST_WITNESS = {
    "patrol_interval": "0.3s", "spawn_grace": "30s", "stall_after": "2s", "idle_after": "3s",
    "max_nudges": 1, "max_restarts": 2, "rate_limit_backoff": "5s", "stop_timeout": "2s",
}


@pytest.fixture
def town(rig_town: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    set_config(rig_town, "witness", FAST_WITNESS)
    set_config(rig_town, "rigs.app", {"agent": "demo"})
    monkeypatch.setenv("GT_DEMO_THINK", "0.2")
    yield rig_town
    run_gt("down", "--timeout", "1", cwd=rig_town)


def issue(town: Path, title: str, body: str) -> str:
    return create_issue(town, title, body)


def status(town: Path, issue_id: str) -> str:
    return gt_json("issue", "show", issue_id, cwd=town)["status"]


def events(town: Path, issue_id: str | None = None, kind: str | None = None) -> list[dict[str, str]]:
    sql, args = "SELECT * FROM events WHERE 1=1", []
    if issue_id:
        sql, args = sql + " AND issue = ?", [*args, issue_id]
    if kind:
        sql, args = sql + " AND kind = ?", [*args, kind]
    return ledger_rows(town, sql + " ORDER BY id", *args)


def spawn_of(town: Path, issue_id: str) -> dict[str, str]:
    rows = ledger_rows(town, "SELECT * FROM spawns WHERE issue = ? ORDER BY started_at DESC", issue_id)
    return rows[0]


def finished(town: Path, issue_id: str) -> bool:
    return status(town, issue_id) in ("in_review", "closed")


def test_killed_agent_is_restarted_in_place_and_keeps_its_commits(town: Path, tmux_socket: str) -> None:
    run_gt("up", cwd=town, check=True)
    i = issue(town, "survive a kill", "~~~demo\nthink 60 @first\n~~~\n~~~demo\nwrite b.txt @retry\nafter restart\n~~~")
    slung = gt_json("sling", i, cwd=town)
    worktree = town / "app" / "polecats" / slung["polecat"]
    retry_until(lambda: spawn_of(town, i)["status"] == "running", timeout=20, what="the agent to get its task")
    (worktree / "a.txt").write_text("before the crash\n")
    git(worktree, "add", "a.txt")
    git(worktree, "commit", "-q", "-m", "earlier work")
    earlier = git(worktree, "rev-parse", "HEAD")
    pid = int(subprocess.run(["tmux", "-L", tmux_socket, "display", "-p", "-t", slung["pane"], "#{pane_pid}"],
                             capture_output=True, text=True).stdout)
    os.kill(pid, signal.SIGKILL)

    # Generous: a loaded 2-core machine (the parallel suite) once took over 60 s here.
    retry_until(lambda: finished(town, i), timeout=150, what="the restarted agent to finish")
    assert any("its agent exited" in e["message"] for e in events(town, i, "restart"))
    [mr] = ledger_rows(town, "SELECT * FROM mrs WHERE issue = ?", i)
    assert mr["branch"] == slung["branch"]
    hub = town / "app" / "hub.git"
    assert git(hub, "merge-base", "--is-ancestor", earlier, mr["commit_sha"]) == ""
    assert git(hub, "show", f"{mr['commit_sha']}:b.txt") == "after restart"
    runs = ledger_rows(town, "SELECT * FROM spawns WHERE issue = ? ORDER BY started_at", i)
    assert [r["attempt"] for r in runs] == [1, 2] and runs[1]["kind"] == "resume"
    no_overlapping_spawns(town)


def test_hanging_agent_is_nudged_restarted_then_blocked(town: Path) -> None:
    run_gt("up", cwd=town, check=True)
    i = issue(town, "hang forever", "~~~demo\nhang\n~~~")
    gt_json("sling", i, cwd=town)
    retry_until(lambda: status(town, i) == "blocked", timeout=90, what="the issue to be blocked")
    kinds = [e["kind"] for e in events(town, i)]
    assert "nudge" in kinds
    assert kinds.count("restart") == 2
    assert kinds.index("nudge") < kinds.index("restart")
    escalations = gt_json("escalate", "list", cwd=town)
    assert [e["issue"] for e in escalations] == [i] and escalations[0]["severity"] == "high"
    retry_until(lambda: not [a for a in gt_json("agents", cwd=town) if a["issue"] == i and a["state"] != "done"],
                timeout=10, what="the blocked agent to be stopped")


def test_rate_limit_holds_the_runtime_and_work_resumes_by_itself(town: Path) -> None:
    run_gt("up", cwd=town, check=True)
    # The hold must outlast seeing it plus one `gt sling`, however loaded the machine.
    limited = issue(town, "hit the limit", "~~~demo\nratelimit 12\n~~~\n~~~demo\nwrite r.txt\nr\n~~~")
    later = issue(town, "wait for it", "~~~demo\nwrite w.txt\nw\n~~~")
    gt_json("sling", limited, cwd=town)
    retry_until(lambda: events(town, limited, "hold"), timeout=30, what="the hold")
    [hold] = ledger_rows(town, "SELECT * FROM holds WHERE scope = 'runtime:demo'")
    assert gt_json("sling", later, cwd=town)["status"] == "queued"
    retry_until(lambda: finished(town, limited), timeout=40, what="the limited agent to resume and finish")
    retry_until(lambda: finished(town, later), timeout=40, what="the queued issue to start after the hold")
    first_later_spawn = ledger_rows(town, "SELECT MIN(started_at) AS t FROM spawns WHERE issue = ?", later)[0]["t"]
    assert first_later_spawn >= hold["until"] - 0.5, "nothing may start on a held runtime"
    assert events(town, None, "resume")


def test_mayor_killed_or_tmux_killed_then_gt_up_loses_and_doubles_nothing(town: Path, tmux_socket: str) -> None:
    run_gt("up", cwd=town, check=True)
    ids = [issue(town, f"long {n}", f"~~~demo\nthink 4 @first\n~~~\n~~~demo\nwrite f{n}.txt\n{n}\n~~~") for n in range(3)]
    gt_json("sling", *ids, cwd=town)
    retry_until(lambda: all(spawn_of(town, i)["status"] == "running" for i in ids), timeout=30, what="agents at work")
    mayor = int((town / ".gastown" / "run" / "mayor.pid").read_text())
    os.kill(mayor, signal.SIGKILL)
    run_gt("up", cwd=town, check=True)
    retry_until(lambda: all(finished(town, i) for i in ids), timeout=60, what="all work to finish after a Mayor kill")

    more = [issue(town, f"again {n}", f"~~~demo\nthink 4 @first\n~~~\n~~~demo\nwrite g{n}.txt\n{n}\n~~~") for n in range(2)]
    gt_json("sling", *more, cwd=town)
    retry_until(lambda: all(spawn_of(town, i)["status"] == "running" for i in more), timeout=30, what="agents at work")
    subprocess.run(["tmux", "-L", tmux_socket, "kill-server"], check=True)
    up = gt_json("up", cwd=town)
    assert up["already"] is False
    retry_until(lambda: all(finished(town, i) for i in more), timeout=60, what="all work to finish after kill-server")

    for i in ids + more:
        assert len(ledger_rows(town, "SELECT id FROM mrs WHERE issue = ?", i)) == 1, f"duplicate MR for {i}"
    no_overlapping_spawns(town)


def test_twelve_issues_never_more_than_three_agents(town: Path, tmux_socket: str) -> None:
    set_config(town, "town", {"max_polecats": 3})
    ids = [issue(town, f"batch {n}", f"~~~demo\nthink 1\n~~~\n~~~demo\nwrite b{n}.txt\n{n}\n~~~") for n in range(12)]
    results = gt_json("sling", *ids, cwd=town)
    assert [r["status"] for r in results].count("started") == 3
    assert [r["status"] for r in results].count("queued") == 9
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            out = subprocess.run(
                ["tmux", "-L", tmux_socket, "list-panes", "-a", "-F", "#{session_name} #{pane_dead}"],
                capture_output=True, text=True,
            ).stdout
            peak[0] = max(peak[0], sum(1 for line in out.splitlines() if line == "app 0"))
            hooks = ledger_rows(town, "SELECT COUNT(*) AS n FROM hooks")[0]["n"]
            peak[0] = max(peak[0], hooks)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run_gt("up", cwd=town, check=True)
        retry_until(lambda: all(finished(town, i) for i in ids), timeout=150, interval=0.5, what="all 12 to finish")
    finally:
        stop.set()
        sampler.join()
    assert peak[0] <= 3, f"{peak[0]} agents ran at once"
    assert ledger_rows(town, "SELECT COUNT(*) AS n FROM sling_queue")[0]["n"] == 0


def test_gt_down_keeps_hooks_and_gt_up_resumes(town: Path, tmux_socket: str) -> None:
    run_gt("up", cwd=town, check=True)
    i = issue(town, "paused work", "~~~demo\nthink 30 @first\n~~~\n~~~demo\nwrite p.txt\np\n~~~")
    gt_json("sling", i, cwd=town)
    retry_until(lambda: spawn_of(town, i)["status"] == "running", timeout=20, what="work to start")
    down = gt_json("down", cwd=town)
    assert down["mayor_stopped"] and down["agents_stopped"] == 1
    assert status(town, i) == "hooked"
    assert gt_json("agents", cwd=town) == []
    sessions = subprocess.run(["tmux", "-L", tmux_socket, "ls"], capture_output=True, text=True).stdout
    assert "mayor" not in sessions
    socket_file = Path(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}", tmux_socket)
    assert sessions == "" and not socket_file.exists(), "the emptied server exits and leaves no socket file"
    up = gt_json("up", cwd=town)
    assert up["resumed"] == 1
    retry_until(lambda: finished(town, i), timeout=40, what="the resumed agent to finish")


def test_mayor_reloads_config_and_survives_a_bad_edit(town: Path, upstream: Path) -> None:
    run_gt("up", cwd=town, check=True)
    config = town / "gastown.toml"
    good = config.read_text()
    config.write_text(good + "\n[rigs.app]\nbatch = 0\n")  # invalid: a duplicate table
    retry_until(lambda: any("rejected" in e["message"] for e in events(town, None, "mayor")), timeout=15,
                what="the Mayor to reject the bad edit")
    pid = int((town / ".gastown" / "run" / "mayor.pid").read_text())
    os.kill(pid, 0)  # still alive
    config.write_text(good)
    run_gt("rig", "add", "web", str(upstream), cwd=town, check=True)
    retry_until(lambda: ledger_rows(town, "SELECT loop FROM heartbeats WHERE loop = 'witness:web'"), timeout=15,
                what="a witness for the new rig")
    assert int((town / ".gastown" / "run" / "mayor.pid").read_text()) == pid


def test_second_gt_up_reports_the_running_mayor(town: Path) -> None:
    first = gt_json("up", cwd=town)
    second = gt_json("up", cwd=town)
    assert first["already"] is False and second["already"] is True
    assert second["mayor_pid"] == first["mayor_pid"]
    foreground = run_gt("up", "--foreground", cwd=town, timeout=20)
    assert foreground.returncode == 6 and "already running" in foreground.stderr


def test_a_patrol_refuses_an_action_it_does_not_know(town: Path) -> None:
    """A new action type the policy learned but the patrol did not is a bug, said loudly."""
    from dataclasses import dataclass

    from gastown.roles.deacon import Deacon
    from gastown.roles.witness import Witness
    from tests.refinery_support import open_ctx

    @dataclass(frozen=True)
    class Teleport:
        spawn: str

    ctx = open_ctx(town)
    with pytest.raises(TypeError, match="cannot apply Teleport"):
        Witness(ctx, "app").apply(Teleport("sp-1"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="cannot apply Teleport"):
        Deacon(ctx).apply(Teleport("sp-1"))  # type: ignore[arg-type]


def test_a_patrol_of_a_rig_without_agents_runs_no_tmux_command(town: Path) -> None:
    """An idle town's Mayor patrols several times a second: with no agent, it costs no process."""
    from gastown.roles.witness import Witness
    from tests.refinery_support import open_ctx

    ctx = open_ctx(town)
    calls = record_tmux_calls(ctx)
    assert Witness(ctx, "app").patrol() == []
    assert calls == []
