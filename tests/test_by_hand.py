"""The ways out a person takes by hand, against a running town of demo agents (real tmux,
git and processes): close, reopen, stop, restart and unsling one agent or issue."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.helpers import create_issue, git, gt_json, ledger_rows, retry_until, run_gt, set_config

pytestmark = [pytest.mark.tmux, pytest.mark.slow]

FAST_WITNESS = {
    "patrol_interval": "0.3s", "spawn_grace": "30s", "stall_after": "6s", "idle_after": "5s",
    "max_nudges": 0, "max_restarts": 1, "rate_limit_backoff": "5s", "stop_timeout": "2s",
}
HANG = "~~~demo\nhang\n~~~"
HANG_FIRST = "~~~demo\nhang @first\n~~~\n~~~demo\nwrite resumed.txt @retry\nresumed\n~~~"  # a resumed run finishes


def _town(rig_town: Path, monkeypatch: pytest.MonkeyPatch, witness: dict[str, object]) -> Path:
    set_config(rig_town, "witness", witness)
    set_config(rig_town, "rigs.app", {"agent": "demo"})
    set_config(rig_town, "town", {"max_polecats": 1})
    monkeypatch.setenv("GT_DEMO_THINK", "0.1")
    return rig_town


@pytest.fixture
def fast_town(rig_town: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A town whose Witness gives up on a silent agent within seconds."""
    yield _town(rig_town, monkeypatch, FAST_WITNESS)
    run_gt("down", "--timeout", "1", cwd=rig_town)


@pytest.fixture
def calm_town(rig_town: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A town whose Witness leaves a silent agent alone: the test acts on it by hand first."""
    yield _town(rig_town, monkeypatch, {**FAST_WITNESS, "stall_after": "10m"})
    run_gt("down", "--timeout", "1", cwd=rig_town)


def issue(town: Path, title: str, body: str = "") -> str:
    return create_issue(town, title, body)


def status(town: Path, issue_id: str) -> str:
    return gt_json("issue", "show", issue_id, cwd=town)["status"]


def live_spawns(town: Path, issue_id: str) -> list[dict[str, object]]:
    return ledger_rows(town, "SELECT * FROM spawns WHERE issue = ? AND status IN ('starting', 'running')", issue_id)


def running(town: Path, issue_id: str) -> bool:
    return any(s["status"] == "running" for s in live_spawns(town, issue_id))


def archive_refs(town: Path) -> list[str]:
    out = git(town / "app" / "hub.git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/gastown/archive/")
    return out.splitlines()


def working_on(town: Path, title: str, body: str) -> tuple[str, dict[str, str]]:
    """With the Mayor up, a new issue slung and its agent running: ``(issue, sling result)``."""
    run_gt("up", cwd=town, check=True)
    issue_id = issue(town, title, body)
    slung = gt_json("sling", issue_id, cwd=town)
    retry_until(lambda: running(town, issue_id), timeout=30, what="the agent to run")
    return issue_id, slung


def commit_in_worktree(town: Path, polecat: str, name: str) -> str:
    worktree = town / "app" / "polecats" / polecat
    (worktree / name).write_text("work in progress\n")
    git(worktree, "add", name)
    git(worktree, "commit", "-q", "-m", f"wip {name}")
    return git(worktree, "rev-parse", "HEAD")


def patrols_pass(town: Path, count: int = 3) -> None:
    """Wait until the rig's Witness has finished ``count`` more patrols (a state the
    Witness would act on has been seen by it)."""
    def beats() -> float:
        rows = ledger_rows(town, "SELECT at FROM heartbeats WHERE loop = 'witness:app' AND detail = 'waiting'")
        return rows[0]["at"] if rows else 0.0

    for _ in range(count):
        seen = beats()
        retry_until(lambda: beats() > seen, timeout=30, what="a witness patrol")  # noqa: B023


def test_closing_a_hooked_issue_releases_it_and_frees_the_slot(calm_town: Path) -> None:
    town = calm_town
    stuck, slung = working_on(town, "hangs for ever", HANG)
    kept = commit_in_worktree(town, slung["polecat"], "wip.txt")

    closed = gt_json("issue", "close", stuck, "--reason", "not needed", cwd=town)
    assert live_spawns(town, stuck) == [] and ledger_rows(town, "SELECT * FROM hooks") == []
    assert closed["status"] == "closed" and closed["released"]["archived"]
    assert [a for a in gt_json("agents", cwd=town) if a["issue"] == stuck] == []
    assert any(line.endswith(kept) for line in archive_refs(town)), "the unmerged commit must be archived"
    [polecat] = gt_json("polecat", "list", cwd=town)
    assert polecat["state"] == "idle"

    # The slot is free (max_polecats = 1): the next issue starts and merges.
    after = issue(town, "the next one")
    assert gt_json("sling", after, cwd=town)["status"] == "started"
    retry_until(lambda: status(town, after) == "closed", timeout=90, what="the next issue to merge")
    patrols_pass(town)
    log = (town / ".gastown" / "logs" / "mayor.log").read_text()
    assert "is closed" not in log, "the Witness kept acting on the closed issue"
    # And the closed issue has ways out: reopen, sling again.
    assert gt_json("issue", "reopen", stuck, cwd=town)["status"] == "open"
    assert gt_json("sling", stuck, cwd=town)["status"] in ("started", "queued")


def test_closing_a_blocked_issue_releases_its_hook(fast_town: Path) -> None:
    town = fast_town
    stuck, slung = working_on(town, "hangs, then is blocked", HANG)
    kept = commit_in_worktree(town, slung["polecat"], "partial.txt")
    retry_until(lambda: status(town, stuck) == "blocked", timeout=90, what="the Witness to give up")
    assert gt_json("escalate", "list", cwd=town)
    closed = gt_json("issue", "close", stuck, cwd=town)
    assert closed["status"] == "closed"
    assert ledger_rows(town, "SELECT * FROM hooks WHERE issue = ?", stuck) == []
    assert any(line.endswith(kept) for line in archive_refs(town))
    assert gt_json("escalate", "list", cwd=town) == [], "the escalation's cause is gone with the close"
    after = issue(town, "next")
    assert gt_json("sling", after, cwd=town)["status"] == "started"


def test_reopening_a_blocked_issue_gives_it_a_fresh_allowance(fast_town: Path) -> None:
    town = fast_town
    run_gt("up", cwd=town, check=True)
    stuck = issue(town, "hangs until its text is fixed", HANG)
    gt_json("sling", stuck, cwd=town)
    retry_until(lambda: status(town, stuck) == "blocked", timeout=90, what="the Witness to give up")
    runs_before = len(ledger_rows(town, "SELECT id FROM spawns WHERE issue = ?", stuck))
    [esc] = gt_json("escalate", "list", cwd=town)
    # A person fixes what blocked it (here: the issue's text; written straight to the
    # ledger so this test also runs against a gastown without `gt issue edit`).
    with sqlite3.connect(town / ".gastown" / "ledger.db") as conn:
        conn.execute("UPDATE issues SET body = ? WHERE id = ?", ("~~~demo\nwrite fixed.txt\nfixed\n~~~", stuck))

    reopened = gt_json("issue", "reopen", stuck, cwd=town)
    assert reopened["status"] == "hooked"
    assert ledger_rows(town, "SELECT restarts FROM hooks WHERE issue = ?", stuck) == [{"restarts": 0}]
    assert gt_json("escalate", "list", cwd=town) == []
    [resolved] = [e for e in gt_json("escalate", "list", "--all", cwd=town) if e["id"] == esc["id"]]
    assert resolved["resolution"] == "the issue was reopened" and resolved["open"] is False
    # Resumed, not blocked again at once; the resume does not hang and the work merges.
    retry_until(lambda: len(ledger_rows(town, "SELECT id FROM spawns WHERE issue = ?", stuck)) > runs_before,
                timeout=30, what="its agent to resume")
    retry_until(lambda: status(town, stuck) == "closed", timeout=90, what="the resumed work to merge")
    assert not [e for e in ledger_rows(town, "SELECT * FROM events WHERE issue = ? AND kind = 'blocked'", stuck)
                if e["at"] > resolved_at(town, esc["id"])]


def resolved_at(town: Path, esc_id: str) -> float:
    return float(ledger_rows(town, "SELECT resolved_at FROM escalations WHERE id = ?", esc_id)[0]["resolved_at"])


def test_stop_keeps_the_hook_and_restart_resumes_in_the_same_worktree(calm_town: Path) -> None:
    town = calm_town
    work_issue, slung = working_on(town, "stopped half-way", HANG_FIRST)
    target = f"app/{slung['polecat']}"
    kept = commit_in_worktree(town, slung["polecat"], "half.txt")

    stopped = gt_json("stop", target, cwd=town)
    assert stopped["action"] == "stopped" and stopped["status"] == "hooked"
    assert live_spawns(town, work_issue) == []
    patrols_pass(town)
    assert live_spawns(town, work_issue) == [], "a patrol resumed a stopped agent"
    assert gt_json("polecat", "list", cwd=town)[0]["state"] == "stopped"
    assert gt_json("stop", target, cwd=town)["action"] == "already"

    restarted = gt_json("restart", target, cwd=town)
    assert restarted["action"] == "restarted"
    [run] = ledger_rows(town, "SELECT * FROM spawns WHERE id = ?", restarted["spawn"])
    assert run["kind"] == "resume" and run["polecat"] == slung["polecat"]
    retry_until(lambda: status(town, work_issue) == "closed", timeout=90, what="the resumed work to merge")
    [mr] = ledger_rows(town, "SELECT * FROM mrs WHERE issue = ? AND state = 'merged'", work_issue)
    hub = town / "app" / "hub.git"
    assert mr["branch"] == slung["branch"]
    subprocess.run(["git", "-C", str(hub), "merge-base", "--is-ancestor", kept, mr["commit_sha"]], check=True)


def test_restart_replaces_a_running_agent(calm_town: Path) -> None:
    town = calm_town
    work_issue, slung = working_on(town, "restart me", HANG_FIRST)
    first = slung["spawn"]
    restarted = gt_json("restart", f"app/{slung['polecat']}", cwd=town)
    assert restarted["spawn"] != first
    [old] = ledger_rows(town, "SELECT status, end_reason FROM spawns WHERE id = ?", first)
    assert old["status"] == "ended" and "restarted by hand" in old["end_reason"]
    retry_until(lambda: status(town, work_issue) == "closed", timeout=90, what="the restarted work to merge")


def test_unsling_archives_the_work_and_reopens_the_issue(calm_town: Path) -> None:
    town = calm_town
    work_issue, slung = working_on(town, "take it back", HANG)
    kept = commit_in_worktree(town, slung["polecat"], "mine.txt")
    worktree = town / "app" / "polecats" / slung["polecat"]
    (worktree / "dirty.txt").write_text("not committed yet\n")
    before = len(archive_refs(town))

    result = gt_json("unsling", work_issue, cwd=town)
    assert result["action"] == "unslung" and result["status"] == "open"
    assert len(archive_refs(town)) == before + 1
    [archived] = result["archived"]
    hub = town / "app" / "hub.git"
    assert git(hub, "show", f"{archived}:dirty.txt") == "not committed yet"
    subprocess.run(["git", "-C", str(hub), "merge-base", "--is-ancestor", kept, archived], check=True)
    assert live_spawns(town, work_issue) == [] and ledger_rows(town, "SELECT * FROM hooks") == []
    assert gt_json("unsling", work_issue, cwd=town)["action"] == "already"
    assert run_gt("unsling", "app-zzzzz", cwd=town).returncode == 4


def test_by_hand_commands_say_what_is_wrong(calm_town: Path) -> None:
    town = calm_town
    idle = issue(town, "never slung")
    for args, code, words in [
        (("stop", "app"), 2, "is not RIG/POLECAT"),
        (("stop", "web/rivet"), 4, "no rig named 'web'"),
        (("restart", "app/nobody"), 4, "no polecat app/nobody"),
        (("unsling", "nonsense"), 4, "is not an issue id"),
    ]:
        result = run_gt(*args, cwd=town)
        assert result.returncode == code and words in result.stderr and "Traceback" not in result.stderr, args
    assert gt_json("unsling", idle, cwd=town)["action"] == "already"
