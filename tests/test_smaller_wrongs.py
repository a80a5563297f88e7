"""The smaller wrongs of issue 11, each as it was seen: costs by convoy, `gt mq list`,
`gt polecat list`, `gt sling` without a Mayor, git's complaints, `gt doctor`, a fix
cycle queued at capacity, escalations that outlive their cause."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gastown.git import worktrees as wt
from gastown.git.merge import pin_mr_commit
from gastown.ledger import usage as usage_rows
from gastown.ledger import work
from gastown.ledger.convoys import add_issues, insert_convoy
from gastown.ledger.escalations import list_escalations, raise_escalation
from gastown.ledger.holds import HoldScope, place_hold, release_hold
from gastown.ledger.mrs import record_mr
from gastown.refinery.engine import Refinery
from gastown.roles.deacon import Deacon
from gastown.roles.fleet import list_polecats
from tests.helpers import git, gt_json, ledger_rows, retry_until, run_gt, set_config
from tests.refinery_support import RecordingSlinger, commit_on, configure_rig, new_issue, open_ctx, plumb


def test_costs_by_convoy_add_up_to_the_same_total(rig_town: Path) -> None:
    ctx = open_ctx(rig_town)
    ids = [new_issue(ctx, title=f"i{n}") for n in range(3)]
    with ctx.ledger.write() as conn:
        first, second = insert_convoy(conn, name="first", now=1.0), insert_convoy(conn, name="second", now=2.0)
        add_issues(conn, first.id, ids[:2], now=1.0)
        add_issues(conn, second.id, ids[1:], now=2.0)  # ids[1] is in both convoys
        for n, issue in enumerate(ids):
            usage_rows.record_tally(conn, spawn=f"sp-{n}", issue=issue, rig="app", polecat="ace", agent="demo",
                                    day="2026-01-01", now=1.0, tally=usage_rows.Tally(100, 10, 0, 0, 1.5, True, "demo", True))
    by_convoy = gt_json("costs", "--by", "convoy", cwd=rig_town)
    by_rig = gt_json("costs", cwd=rig_town)
    assert by_convoy["total"]["cost"] == by_rig["total"]["cost"] == pytest.approx(4.5)
    assert sum(r["cost"] for r in by_convoy["rows"]) == pytest.approx(4.5)
    assert {r["key"]: r["spawns"] for r in by_convoy["rows"]} == {first.id: 2, second.id: 1}


def test_polecat_list_counts_work_merged_by_rebase_as_merged(rig_town: Path, upstream: Path) -> None:
    ctx = open_ctx(rig_town)
    hub = ctx.town.hub_path("app")
    issue = new_issue(ctx)
    path = ctx.town.polecat_path("app", "ace")
    wt.create_worktree(hub, path, f"polecat/ace/{issue}", "refs/remotes/origin/main")
    with ctx.ledger.write() as conn:
        work.add_polecat(conn, "app", "ace", now=ctx.now())
    (path / "feature.txt").write_text("feature\n")
    git(path, "add", "feature.txt")
    git(path, "commit", "-q", "-m", "a feature")
    head = git(path, "rev-parse", "HEAD")
    with ctx.ledger.write() as conn:
        mr, _ = record_mr(conn, rig="app", issue=issue, polecat="ace", spawn=None, branch=f"polecat/ace/{issue}",
                          commit_sha=head, target="main", priority=2, fix_cycle=0, now=ctx.now())
    pin_mr_commit(hub, mr.id, head)
    # The target moves first, so the rebase gives the landed commit another id.
    moved = commit_on(upstream, plumb(upstream, "rev-parse", "main"), {"other.txt": "other\n"}, "someone else")
    plumb(upstream, "update-ref", "refs/heads/main", moved)
    configure_rig(rig_town, merge="rebase")
    assert Refinery(ctx, "app", slinger=RecordingSlinger(), hold_probe_interval=0).run_once().merged == [mr.id]
    assert plumb(upstream, "rev-parse", "main") != head
    [view] = list_polecats(ctx, "app")
    assert view.ahead == 0, "the polecat's work merged (rebased), nothing is ahead"


@pytest.mark.tmux
def test_sling_without_a_mayor_says_nothing_starts_it(rig_town: Path, tmux_socket: str) -> None:
    set_config(rig_town, "town", {"max_polecats": 1, "default_agent": "demo"})
    first = gt_json("issue", "create", "first", "--body", "~~~demo\nthink 30\n~~~", cwd=rig_town)["id"]
    second = gt_json("issue", "create", "second", cwd=rig_town)["id"]
    try:
        run_gt("sling", first, cwd=rig_town, check=True)
        said = run_gt("sling", second, cwd=rig_town, check=True).stdout
        assert "queued" in said and "no Mayor is running" in said and "gt up" in said
        assert "frees up" not in said
        run_gt("down", "--timeout", "1", cwd=rig_town, check=True)
        [slot] = gt_json("polecat", "list", cwd=rig_town)
        assert slot["issue"] == first and slot["state"] == "waiting", "after gt down no agent works in the slot"
    finally:
        run_gt("down", "--timeout", "1", cwd=rig_town)


@pytest.mark.parametrize("source,words", [
    ("file:///nonexistent/gastown-test/x.git", "does not exist, or this account cannot see it"),
    ("https://127.0.0.1:1/x.git", "the network did not get to https://127.0.0.1:1/x.git"),
])
def test_git_failures_say_what_failed_and_what_to_do(town: Path, source: str, words: str) -> None:
    result = run_gt("rig", "add", "app", source, cwd=town)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"gt: cloning {source} failed: ") and words in first
    assert len(result.stderr.splitlines()) == 2 and result.stderr.splitlines()[1].strip().startswith("check ")


def doctor(town: Path, *args: str) -> tuple[int, dict[str, dict[str, object]]]:
    result = run_gt("doctor", "--json", *args, cwd=town)
    return result.returncode, {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_doctor_tries_the_gates_on_the_target(rig_town: Path, upstream: Path, tmp_path: Path) -> None:
    set_config(rig_town, "town", {"default_agent": "demo"})
    set_config(rig_town, "rigs.app", {"gates": ["test -f README.md", "! grep -rq BROKEN --exclude-dir=.git ."]})
    code, checks = doctor(rig_town)
    assert code == 0 and checks["gates app"]["level"] == "ok" and "2 gate(s) pass on main" in str(checks["gates app"]["detail"])
    broken = commit_on(upstream, plumb(upstream, "rev-parse", "main"), {"x.txt": "BROKEN\n"}, "break main")
    plumb(upstream, "update-ref", "refs/heads/main", broken)
    code, checks = doctor(rig_town)
    assert code == 1 and checks["gates app"]["level"] == "fail"
    assert "grep -rq BROKEN" in str(checks["gates app"]["detail"]) and "fix it upstream" in str(checks["gates app"]["fix"])
    assert not list((rig_town / ".gastown" / "doctor").glob("*")), "the throwaway worktree is removed"
    assert "prunable" not in git(rig_town / "app" / "hub.git", "worktree", "list", "--porcelain")
    code, checks = doctor(rig_town, "--no-gates")
    assert code == 0 and "gates app" not in checks


def test_doctor_warns_about_no_gates_and_running_as_root(rig_town: Path) -> None:
    set_config(rig_town, "town", {"default_agent": "demo"})
    code, checks = doctor(rig_town)
    assert code == 0 and checks["gates app"]["level"] == "warn"
    plain = run_gt("doctor", cwd=rig_town).stdout
    assert "[warn] gates app" in plain
    if os.geteuid() == 0:
        assert checks["user"]["level"] == "warn" and "[warn] user: running as root" in plain
    else:
        assert "user" not in checks


def test_escalations_resolve_themselves_when_their_cause_is_gone(rig_town: Path) -> None:
    ctx = open_ctx(rig_town)
    issue = new_issue(ctx)
    blocked = raise_escalation(ctx.ledger, "stuck", source="witness", issue=issue, block_issue=True)
    again = raise_escalation(ctx.ledger, "stuck", source="witness", issue=issue, block_issue=True)
    assert again.id == blocked.id, "the same cause and message is one escalation, not a pile"
    scope = HoldScope.refinery("app")
    with ctx.ledger.write() as conn:
        place_hold(conn, scope, reason="red target", now=ctx.now())
    held = raise_escalation(ctx.ledger, "queue held", source="refinery", rig="app", cause=f"hold:{scope}")
    person = raise_escalation(ctx.ledger, "lunch?", source="human")
    deacon = Deacon(ctx)
    deacon.patrol()
    assert {e.id for e in list_escalations(ctx.ledger.connection(), open_only=True)} == {blocked.id, held.id, person.id}

    run_gt("issue", "reopen", issue, cwd=rig_town, check=True)
    with ctx.ledger.write() as conn:
        release_hold(conn, scope)
    deacon.patrol()
    [still] = list_escalations(ctx.ledger.connection(), open_only=True)
    assert still.id == person.id, "a person's own escalation waits for a person"
    resolutions = {e.id: e.resolution for e in list_escalations(ctx.ledger.connection())}
    assert resolutions[blocked.id] == "the issue was reopened"
    assert resolutions[held.id] == "the hold on refinery:app was lifted"

    raise_escalation(ctx.ledger, "another one", source="human")
    acked = gt_json("escalate", "ack", "--all", cwd=rig_town)
    assert len(acked) == 2 and gt_json("escalate", "list", cwd=rig_town) == []
    assert run_gt("escalate", "ack", cwd=rig_town).returncode == 2


@pytest.mark.tmux
@pytest.mark.slow
def test_a_fix_cycle_queued_at_capacity_starts_even_if_its_polecat_was_taken(
    rig_town: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two slots; the fix for A waits for its own polecat, which a fresher sling takes first."""
    from gastown.roles.polecat import sling
    from gastown.roles.scheduler import dispatch

    monkeypatch.setenv("GT_DEMO_THINK", "0.1")
    set_config(rig_town, "town", {"max_polecats": 2, "default_agent": "demo"})
    ctx = open_ctx(rig_town)
    # Both think long enough to still hold their slots while the fix and a fresh sling queue.
    quick = gt_json("issue", "create", "quick", "--body", "~~~demo\nthink 15\n~~~\n~~~demo\nwrite q.txt\nq\n~~~",
                    cwd=rig_town)["id"]
    slow = gt_json("issue", "create", "slow", "--body", "~~~demo\nthink 16\n~~~\n~~~demo\nwrite s.txt\ns\n~~~",
                   cwd=rig_town)["id"]
    try:
        first = gt_json("sling", quick, cwd=rig_town)
        gt_json("sling", slow, cwd=rig_town)
        # A's merge request failed and its fix cycle asks for the first polecat, at capacity.
        fix_for = new_issue(ctx, title="A", priority=3)
        queued = sling(ctx, fix_for, f"app/{first['polecat']}", kind="fix",
                       start_point=plumb(ctx.town.hub_path("app"), "rev-parse", "refs/remotes/origin/main"),
                       note="The gates failed; fix it.")
        assert queued.status == "queued"
        fresh = gt_json("issue", "create", "fresh", "--priority", "0", "--body", "~~~demo\nthink 30\n~~~",
                        cwd=rig_town)["id"]
        assert gt_json("sling", fresh, cwd=rig_town)["status"] == "queued"
        retry_until(lambda: ledger_rows(rig_town, "SELECT COUNT(*) AS n FROM spawns WHERE status = 'done'"
                                        " OR status = 'ended'")[0]["n"] >= 2 and not ledger_rows(
                        rig_town, "SELECT id FROM spawns WHERE status IN ('starting', 'running', 'done')"),
                    timeout=120, what="both agents to finish and close their panes")
        for _ in range(4):  # what the scheduler loop would do over a few cycles
            dispatch(ctx)
        assert ledger_rows(rig_town, "SELECT issue FROM hooks WHERE issue = ?", fresh), "the fresh sling took a slot"
        [hook] = ledger_rows(rig_town, "SELECT * FROM hooks WHERE issue = ?", fix_for)
        assert hook["kind"] == "fix" and hook["polecat"] != first["polecat"]
        assert ledger_rows(rig_town, "SELECT * FROM sling_queue") == []
    finally:
        run_gt("down", "--timeout", "1", cwd=rig_town)


@pytest.mark.slow
def test_a_running_town_keeps_its_tmux_socket_whatever_the_shell_exports(rig_town: Path, tmux_socket: str) -> None:
    """`gt up` records the socket its server runs on; a shell exporting another one still
    reaches that server (and is told so), `gt down` stops it, and the next `gt up` may move."""
    from tests.helpers import kill_tmux_server

    elsewhere = f"{tmux_socket}-other"
    other = {"GT_TMUX_SOCKET": elsewhere}

    def server_on(socket: str) -> bool:
        import subprocess

        return subprocess.run(["tmux", "-L", socket, "has-session", "-t", "mayor"], capture_output=True).returncode == 0

    try:
        run_gt("up", cwd=rig_town, check=True)
        assert (rig_town / ".gastown" / "tmux-socket").read_text().strip() == tmux_socket
        seen = run_gt("status", "--json", cwd=rig_town, env=other)
        assert seen.returncode == 0 and json.loads(seen.stdout)["mayor"]["running"]
        assert f"GT_TMUX_SOCKET is {elsewhere!r}, but this town runs on tmux socket {tmux_socket!r}" in seen.stderr
        assert not server_on(elsewhere)

        down = run_gt("down", "--json", cwd=rig_town, env=other)
        assert down.returncode == 0 and json.loads(down.stdout)["mayor_stopped"], down.stderr
        retry_until(lambda: not server_on(tmux_socket), timeout=10, what="the town's tmux server to stop")
        assert not (rig_town / ".gastown" / "tmux-socket").exists()

        run_gt("up", cwd=rig_town, env=other, check=True)  # stopped, the town may move
        assert server_on(elsewhere)
        assert (rig_town / ".gastown" / "tmux-socket").read_text().strip() == elsewhere
        quiet = run_gt("status", cwd=rig_town, env=other)
        assert quiet.returncode == 0 and "warning" not in quiet.stderr
    finally:
        run_gt("down", "--timeout", "1", cwd=rig_town, env=other)
        kill_tmux_server(elsewhere)
