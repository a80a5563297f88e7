"""The refinery engine on real git repositories with real gate commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gastown._internal.processes import alive
from gastown.git.merge import is_ancestor
from gastown.ledger.escalations import list_escalations
from gastown.ledger.events import list_events
from gastown.ledger.issues import get_issue
from gastown.ledger.mrs import get_mr, list_mrs
from gastown.ledger import rounds
from gastown.refinery.engine import Refinery
from gastown.states import IssueStatus, MRState
from tests.helpers import git, retry_until, run_gt
from tests.refinery_support import (
    RecordingSlinger, check_gate, commit_on, configure_rig, gate_runs, open_ctx, plumb, submit, upstream_file,
    upstream_subjects,
)


def refinery(town: Path, slinger: RecordingSlinger | None = None) -> Refinery:
    return Refinery(open_ctx(town), "app", slinger=slinger or RecordingSlinger(), hold_probe_interval=0)


def states(town: Path) -> dict[str, str]:
    return {m.id: str(m.state) for m in list_mrs(open_ctx(town).ledger.connection(), "app")}


def all_rounds(town: Path) -> list[rounds.Round]:
    return list(reversed(rounds.list_rounds(open_ctx(town).ledger.connection(), "app", limit=1000)))


@pytest.fixture
def counter(tmp_path: Path) -> Path:
    return tmp_path / "gate-runs.txt"


def test_two_mrs_on_the_same_lines_one_merges_the_other_conflicts_and_is_sent_back(rig_town: Path, upstream: Path,
                                                                                     counter: Path) -> None:
    configure_rig(rig_town, gates=[check_gate(counter)], batch=4)
    ctx = open_ctx(rig_town)
    first = submit(ctx, {"README.md": "# sample project, first edition\n"}, polecat="ace")
    second = submit(ctx, {"README.md": "# sample project, second edition\n"}, polecat="bo")
    slinger = RecordingSlinger()

    report = refinery(rig_town, slinger).run_once()

    assert report.outcome == "merged" and report.merged == [first.id] and report.conflicts == [second.id]
    assert upstream_file(upstream, "README.md") == "# sample project, first edition\n"
    conn = ctx.ledger.connection()
    lost = get_mr(conn, second.id)
    assert lost.state == MRState.CONFLICT and "README.md" in (lost.detail or "")
    assert get_issue(conn, first.issue).status == IssueStatus.CLOSED
    assert get_issue(conn, first.issue).close_reason == f"merged in {first.id}"
    [call] = slinger.calls
    assert call["issue"] == second.issue and call["kind"] == "fix" and call["target"] == "app/bo"
    assert call["start_point"] == second.commit_sha and "README.md" in call["note"]
    # The winner's branch is archived and gone; the loser's branch is left alone.
    hub = ctx.town.hub_path("app")
    assert plumb(hub, "rev-parse", f"refs/gastown/archive/{first.branch}") == first.commit_sha
    assert subprocess.run(["git", "rev-parse", "--verify", "-q", f"refs/heads/{first.branch}"], cwd=hub).returncode != 0
    assert plumb(hub, "rev-parse", f"refs/heads/{second.branch}") == second.commit_sha
    # A second round does not send it back again.
    assert refinery(rig_town, slinger).run_once().outcome == "idle"
    refinery(rig_town, slinger).recover()
    assert len(slinger.calls) == 1


def test_a_batch_of_eight_with_one_culprit_merges_seven_in_at_most_seven_gate_runs(rig_town: Path, upstream: Path,
                                                                                    counter: Path) -> None:
    configure_rig(rig_town, gates=[check_gate(counter)], batch=8)
    ctx = open_ctx(rig_town)
    mrs = [submit(ctx, {f"src/f{i}.txt": "BROKEN\n" if i == 2 else f"fine {i}\n"}) for i in range(8)]
    bad = mrs[2]

    report = refinery(rig_town).run_once()

    assert gate_runs(counter) <= 7 and report.gate_runs == gate_runs(counter)
    assert all_rounds(rig_town)[-1].gate_runs == gate_runs(counter)
    assert sorted(report.merged) == sorted(m.id for m in mrs if m is not bad) and report.failed == [bad.id]
    failed = get_mr(ctx.ledger.connection(), bad.id)
    assert failed.state == MRState.FAILED
    assert "src/f2.txt" in (failed.detail or "") and "check failed" in (failed.detail or "")
    assert failed.gate_log and "check failed" in Path(failed.gate_log).read_text()
    for i in range(8):
        assert upstream_file(upstream, f"src/f{i}.txt") == (None if i == 2 else f"fine {i}\n")
    merged = [get_mr(ctx.ledger.connection(), m.id) for m in mrs if m is not bad]
    assert all(m.merged_sha and is_ancestor(upstream, m.merged_sha, "main") for m in merged)


def test_a_broken_target_holds_the_queue_and_blames_no_merge_request(tmp_path: Path, counter: Path) -> None:
    from tests.helpers import make_upstream

    upstream = make_upstream(tmp_path / "broken", files={"README.md": "hi\n", "bad.txt": "BROKEN\n"})
    town = tmp_path / "town"
    run_gt("init", str(town), check=True)
    run_gt("rig", "add", "app", str(upstream), cwd=town, check=True)
    configure_rig(town, gates=[check_gate(counter)], batch=4)
    ctx = open_ctx(town)
    mrs = [submit(ctx, {f"f{i}.txt": f"fine {i}\n"}) for i in range(3)]

    report = refinery(town).run_once()

    assert report.outcome == "held" and sorted(report.requeued) == sorted(m.id for m in mrs)
    assert set(states(town).values()) == {"queued"}, "no MR may be blamed for a red target"
    conn = ctx.ledger.connection()
    assert rounds.get_hold(conn, "app") is not None
    [esc] = list_escalations(conn)
    assert esc.source == "refinery" and esc.severity == "high" and esc.rig == "app"
    runs = gate_runs(counter)
    # While held nothing is gated...
    assert refinery(town).run_once().outcome == "held" and gate_runs(counter) == runs
    # ...until the target moves: then the hold lifts by itself and the queue merges.
    scratch = tmp_path / "fix"
    git(tmp_path, "clone", "-q", str(upstream), str(scratch))
    git(scratch, "rm", "-q", "bad.txt")
    git(scratch, "commit", "-q", "-m", "fix the target")
    git(scratch, "push", "-q", "origin", "HEAD:main")
    report = refinery(town).run_once()
    assert report.outcome == "merged" and len(report.merged) == 3
    assert rounds.get_hold(ctx.ledger.connection(), "app") is None


def test_the_upstream_target_is_green_at_every_commit_it_ever_pointed_to(rig_town: Path, upstream: Path, tmp_path: Path,
                                                                         counter: Path) -> None:
    git(upstream, "config", "core.logAllRefUpdates", "always")  # the reflog lists every value main had
    configure_rig(rig_town, gates=[check_gate(counter)], batch=3)
    ctx = open_ctx(rig_town)
    for i in range(10):
        files: dict[str, str | None] = {f"m{i}.txt": "BROKEN\n" if i in (1, 6, 7) else f"ok {i}\n"}
        if i in (3, 8):
            files["README.md"] = f"# edited by {i}\n"  # 8 conflicts with 3
        submit(ctx, files)

    reports = refinery(rig_town).run_until_empty()

    assert len(reports) >= 4
    final = states(rig_town)
    assert sorted(final.values()).count("merged") == 6 and sorted(final.values()).count("failed") == 3
    assert sorted(final.values()).count("conflict") == 1
    pointed = plumb(upstream, "reflog", "--format=%H", "refs/heads/main").splitlines()
    history = plumb(upstream, "rev-list", "--first-parent", "main").splitlines()
    assert len(set(pointed)) == sum(1 for r in reports if r.outcome == "merged") >= 3
    clone = tmp_path / "scratch"
    git(tmp_path, "clone", "-q", str(upstream), str(clone))
    for sha in set(history) | set(pointed):
        git(clone, "checkout", "-q", "--detach", sha)
        gate = subprocess.run(["sh", "-c", check_gate(tmp_path / "scratch-runs.txt")], cwd=clone, capture_output=True)
        assert gate.returncode == 0, f"main pointed at or contains {sha}, which fails the gate"


def test_killing_the_refinery_mid_round_leaves_nothing_half_merged(rig_town: Path, upstream: Path, tmp_path: Path,
                                                                   counter: Path) -> None:
    started, go, gate_pid = tmp_path / "gate-started", tmp_path / "gate-go", tmp_path / "gate.pid"
    # Only the first gate run blocks (until `go`, which never comes): it is orphaned by the kill.
    blocking = (f"if [ ! -f '{started}' ]; then echo $$ > '{gate_pid}'; touch '{started}'; "
                f"while [ ! -f '{go}' ]; do sleep 0.05; done; fi; {check_gate(counter)}")
    configure_rig(rig_town, gates=[blocking], batch=4)
    ctx = open_ctx(rig_town)
    mrs = [submit(ctx, {f"k{i}.txt": f"ok {i}\n"}, message=f"kill-test change {i}") for i in range(3)]
    before = plumb(upstream, "rev-parse", "main")

    proc = subprocess.Popen([sys.executable, "-m", "gastown", "refinery", "run", "app"], cwd=rig_town,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        retry_until(started.exists, timeout=30, what="the gate to start")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        orphan = int(retry_until(lambda: gate_pid.exists() and gate_pid.read_text().strip(), what="the gate's pid"))
        assert alive(orphan), "the killed refinery's gate outlives it (it runs in its own session)"
        assert plumb(upstream, "rev-parse", "main") == before
        assert set(states(rig_town).values()) == {"testing"}
        assert all_rounds(rig_town)[-1].ended_at is None

        again = run_gt("refinery", "run", "app", cwd=rig_town)
        assert not alive(orphan), "the next round stops the orphaned gate before it tests in the same worktree"
    finally:
        go.touch()  # whatever happened, no gate is left waiting
        if proc.poll() is None:
            proc.kill()

    assert again.returncode == 0, again.stderr
    assert "interrupted" in again.stdout and "3/3 merged" in again.stdout
    assert set(states(rig_town).values()) == {"merged"}
    subjects = upstream_subjects(upstream)
    for i in range(3):
        assert subjects.count(f"kill-test change {i}") == 1
    assert [r.outcome for r in all_rounds(rig_town)] == ["interrupted", "merged"]
    assert all(get_mr(ctx.ledger.connection(), m.id).attempts == 2 for m in mrs)
    assert git(ctx.town.refinery_path("app"), "status", "--porcelain") == ""


def test_gt_down_during_a_long_gate_leaves_no_gate_running(rig_town: Path, tmp_path: Path, counter: Path,
                                                          tmux_socket: str) -> None:
    gate_pid = tmp_path / "gate.pid"
    configure_rig(rig_town, gates=[f"echo $$ > '{gate_pid}'; sleep 300"])
    submit(open_ctx(rig_town), {"long.txt": "slow\n"}, message="a change with a slow gate")
    run_gt("up", cwd=rig_town, check=True)
    try:
        gate = int(retry_until(lambda: gate_pid.exists() and gate_pid.read_text().strip(), timeout=30,
                               what="the Mayor's refinery to start the gate"))
        down = run_gt("down", "--timeout", "1", cwd=rig_town)
        assert down.returncode == 0, down.stderr
        assert not alive(gate), "gt down stops the gate a stopping Mayor was stuck in"
        assert set(states(rig_town).values()) == {"testing"}  # the round is redone by the next gt up
    finally:
        run_gt("down", "--timeout", "1", cwd=rig_town)


class _CrashAfterPush(BaseException):
    """Stands for kill -9 right after the push went through."""


class _CrashingRefinery(Refinery):
    def _settle_merged(self, row, merging, tip):  # type: ignore[no-untyped-def]
        raise _CrashAfterPush


def test_a_crash_after_the_push_is_recovered_as_merged_not_merged_twice(rig_town: Path, upstream: Path,
                                                                         counter: Path) -> None:
    configure_rig(rig_town, gates=[check_gate(counter)], batch=4)
    ctx = open_ctx(rig_town)
    mrs = [submit(ctx, {f"c{i}.txt": f"ok {i}\n"}, message=f"crash-test change {i}") for i in range(2)]
    crashing = _CrashingRefinery(ctx, "app", slinger=RecordingSlinger())
    with pytest.raises(_CrashAfterPush):
        crashing.run_once()
    assert upstream_subjects(upstream).count("crash-test change 0") == 1  # pushed...
    assert set(states(rig_town).values()) == {"testing"}  # ...but not recorded

    recovered = refinery(rig_town).recover()

    assert sorted(recovered.merged) == sorted(m.id for m in mrs) and recovered.requeued == []
    assert set(states(rig_town).values()) == {"merged"}
    assert all_rounds(rig_town)[-1].outcome == "merged"
    assert refinery(rig_town).run_once().outcome == "idle"
    assert upstream_subjects(upstream).count("crash-test change 1") == 1


def test_after_max_fix_cycles_the_issue_is_blocked_and_escalated(rig_town: Path, counter: Path) -> None:
    configure_rig(rig_town, gates=[check_gate(counter)], batch=1, max_fix_cycles=2)
    ctx = open_ctx(rig_town)
    slinger = RecordingSlinger()
    first = submit(ctx, {"x.txt": "BROKEN 0\n"})
    issue = first.issue
    for attempt in range(3):
        if attempt:
            submit(ctx, {"x.txt": f"BROKEN {attempt}\n"}, issue=issue)  # the polecat's "fix" is broken again
        refinery(rig_town, slinger).run_once()

    conn = ctx.ledger.connection()
    assert [c["kind"] for c in slinger.calls] == ["fix", "fix"], "two fix cycles, then no more"
    assert "fix cycle 2 of 2" in slinger.calls[1]["note"]
    assert get_issue(conn, issue).status == IssueStatus.BLOCKED
    [esc] = [e for e in list_escalations(conn) if e.issue == issue]
    assert esc.source == "refinery" and "2 fix cycle" in esc.message


def test_a_slinger_that_fails_escalates_instead_of_crashing_the_round(rig_town: Path, counter: Path) -> None:
    configure_rig(rig_town, gates=[check_gate(counter)])
    ctx = open_ctx(rig_town)
    bad = submit(ctx, {"x.txt": "BROKEN\n"})
    good = submit(ctx, {"y.txt": "fine\n"})
    slinger = RecordingSlinger(fail_with=RuntimeError("tmux exploded"))

    report = refinery(rig_town, slinger).run_once()

    assert report.merged == [good.id] and report.failed == [bad.id]
    assert [s.action for s in report.sent_back] == ["error"]
    conn = ctx.ledger.connection()
    assert get_issue(conn, bad.issue).status == IssueStatus.BLOCKED
    assert any("tmux exploded" in e.message for e in list_escalations(conn))


def test_an_upstream_that_moves_during_the_round_gets_the_round_redone_on_its_new_tip(rig_town: Path, upstream: Path,
                                                                                      tmp_path: Path, counter: Path) -> None:
    scratch, marker = tmp_path / "other-dev", tmp_path / "pushed-once"
    git(tmp_path, "clone", "-q", str(upstream), str(scratch))
    sneak = (f"if [ ! -f '{marker}' ]; then touch '{marker}'; git -C '{scratch}' commit -q --allow-empty -m 'a human pushed';"
             f" git -C '{scratch}' push -q origin HEAD:main; fi")
    configure_rig(rig_town, gates=[sneak, check_gate(counter)])
    ctx = open_ctx(rig_town)
    mr = submit(ctx, {"z.txt": "ok\n"}, message="queued change")

    report = refinery(rig_town).run_once()

    assert report.outcome == "merged" and report.merged == [mr.id]
    assert upstream_subjects(upstream)[:2] == ["queued change", "a human pushed"]
    assert [r.outcome for r in all_rounds(rig_town)] == ["raced", "merged"]
    assert gate_runs(counter) == 2, "the stack on the new tip was gated again"


@pytest.mark.parametrize("strategy", ["squash", "merge"])
def test_squash_and_merge_strategies(rig_town: Path, upstream: Path, counter: Path, strategy: str) -> None:
    configure_rig(rig_town, gates=[check_gate(counter)], merge=strategy)
    ctx = open_ctx(rig_town)
    hub = ctx.town.hub_path("app")
    base = plumb(hub, "rev-parse", "refs/remotes/origin/main")
    one = commit_on(hub, base, {"s.txt": "one\n"}, "first step")
    two = commit_on(hub, one, {"s.txt": "two\n"}, "second step")
    mr = submit(ctx, {"t.txt": "three\n"}, parent=two, message="third step")
    clash = submit(ctx, {"s.txt": "clash\n"})

    report = refinery(rig_town).run_once()

    assert report.merged == [mr.id] and report.conflicts == [clash.id]
    assert "s.txt" in (get_mr(ctx.ledger.connection(), clash.id).detail or "")
    assert upstream_file(upstream, "s.txt") == "two\n" and upstream_file(upstream, "t.txt") == "three\n"
    parents = plumb(upstream, "log", "-1", "--format=%P", "main").split()
    message = plumb(upstream, "log", "-1", "--format=%B", "main")
    assert f"Gastown-MR: {mr.id}" in message
    if strategy == "squash":
        assert parents == [base] and "* first step" in message
    else:
        assert parents == [base, mr.commit_sha]


def test_an_mr_whose_commit_vanished_fails_without_stopping_the_others(rig_town: Path, counter: Path) -> None:
    configure_rig(rig_town, gates=[check_gate(counter)])
    ctx = open_ctx(rig_town)
    good = submit(ctx, {"a.txt": "ok\n"})
    with ctx.ledger.write() as conn:
        from gastown.ledger.mrs import record_mr

        ghost, _ = record_mr(conn, rig="app", issue=good.issue, polecat=None, spawn=None, branch="polecat/x/y",
                             commit_sha="0" * 39 + "1", target="main", priority=0, fix_cycle=0, now=ctx.now())
    report = refinery(rig_town).run_once()
    assert ghost.id in report.failed
    # the ghost superseded `good` (same issue), so nothing else was queued
    assert get_mr(ctx.ledger.connection(), good.id).state == MRState.REJECTED
    events = list_events(ctx.ledger.connection(), kinds=("failed",))
    assert any("not in the rig's hub" in e.message for e in events)


def test_a_refused_push_pauses_the_queue_escalates_once_and_loses_nothing(rig_town: Path, upstream: Path,
                                                                          counter: Path) -> None:
    import time

    from gastown.context import Context
    from gastown.errors import GitError
    from gastown.town import Town

    hook = upstream / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    configure_rig(rig_town, gates=[check_gate(counter)])
    ctx = open_ctx(rig_town)
    mr = submit(ctx, {"p.txt": "ok\n"})
    before = plumb(upstream, "rev-parse", "main")

    with pytest.raises(GitError, match="main is protected"):
        refinery(rig_town).run_once()

    conn = ctx.ledger.connection()
    assert plumb(upstream, "rev-parse", "main") == before
    assert get_mr(conn, mr.id).state == MRState.QUEUED
    assert all_rounds(rig_town)[-1].outcome == "error"
    hold = rounds.get_hold(conn, "app")
    assert hold is not None and hold.until is not None and "main is protected" in hold.reason
    assert len(list_escalations(conn)) == 1
    assert refinery(rig_town).run_once().outcome == "held"

    hook.unlink()
    later = Context(Town(rig_town), clock=lambda: time.time() + 3600)  # the pause has expired
    report = Refinery(later, "app", slinger=RecordingSlinger()).run_once()
    assert report.outcome == "merged" and report.merged == [mr.id]
    assert len(list_escalations(conn)) == 1
