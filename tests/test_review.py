"""The review gate on real git, with the demo reviewer as the model: `gt review run`
over a ladder of five MRs, a reviewer that edits or says nothing, REVIEW.md from the
target, invented references dropped, and the gate in the merge queue (blocked work goes
back as a fix cycle; approved MRs never wait for MRs still in review)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gastown.ledger.escalations import list_escalations
from gastown.ledger.issues import set_issue_status
from gastown.ledger.mrs import get_mr
from gastown.ledger.reviews import findings_of, get_review, list_reviews
from gastown.refinery.engine import Refinery
from gastown.refinery.review.stage import ReviewStage, review_now
from gastown.states import IssueStatus, MRState, ReviewState
from tests.helpers import gt_json, make_upstream, run_gt, set_config
from tests.refinery_support import RecordingSlinger, configure_rig, open_ctx, submit, upstream_file
from tests.test_review_policy import LADDER


def reviewed_town(tmp_path: Path, files: dict[str, str] | None = None, **review: object) -> tuple[Path, Path]:
    upstream = make_upstream(tmp_path / "up", files=files or {"README.md": "# sample project\n"})
    town = tmp_path / "town"
    run_gt("init", str(town), check=True)
    run_gt("rig", "add", "app", str(upstream), cwd=town, check=True)
    set_config(town, "rigs.app.review", {"agent": "demo", **review})
    return town, upstream


def demo_reviewer(town: Path, name: str, **env: str) -> None:
    """A reviewer runtime: the demo agent with ``GT_DEMO_*`` settings."""
    set_config(town, f"agents.{name}", {"preset": "demo", "env": env})


def source(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_a_ladder_of_five_mrs_escalates_and_roast_only_changes_the_tone(tmp_path: Path) -> None:
    town, _ = reviewed_town(tmp_path)
    ctx = open_ctx(town)
    mrs = [submit(ctx, {"module.py": source(lines)}, polecat=f"p{i}") for i, lines in enumerate(LADDER.values())]
    model, effective = [], []
    for mr in mrs:
        balanced = gt_json("review", "run", mr.id, cwd=town)
        roast = gt_json("review", "run", mr.id, "--style", "roast", cwd=town)
        assert balanced["state"] == roast["state"] == "done" and balanced["style"] == "balanced"
        assert roast["style"] == "roast" and roast["dropped"] == balanced["dropped"] == 0
        model.append(balanced["model_verdict"])
        effective.append(balanced["verdict"])
        same = [(f["file"], f["start_line"], f["end_line"], f["severity"], f["title"]) for f in balanced["findings"]]
        assert same == [(f["file"], f["start_line"], f["end_line"], f["severity"], f["title"])
                        for f in roast["findings"]]
        assert balanced["findings"] and roast["summary"] != balanced["summary"]
        # Every finding points at a line the MR changed.
        changed = len(source(LADDER[list(LADDER)[mrs.index(mr)]]).splitlines())
        assert all(1 <= f["start_line"] <= f["end_line"] <= changed for f in balanced["findings"])
        assert balanced["tokens"]["input"] > 0
    assert model == ["approve", "address_before_merge", "address_before_merge", "do_not_merge", "do_not_merge"]
    assert effective == ["approve", "approve", "approve", "do_not_merge", "do_not_merge"]
    # The first MR was queued in a rig with a gate: its review was the gate's, and it is ready to merge.
    assert get_mr(ctx.ledger.connection(), mrs[0].id).state == MRState.QUEUED
    assert get_mr(ctx.ledger.connection(), mrs[3].id).state == MRState.CHANGES_REQUESTED

    shown = run_gt("review", "show", mrs[4].id, cwd=town, check=True).stdout
    assert "do_not_merge" in shown and "module.py:3" in shown and "command injection" in shown
    listed = gt_json("review", "list", cwd=town)
    assert len(listed) == 10 and {r["style"] for r in listed} == {"balanced", "roast"}
    costs = gt_json("costs", "--by", "role", cwd=town)
    [row] = [r for r in costs["rows"] if r["key"] == "review"]
    assert row["spawns"] == 10 and row["input"] > 0
    queue = gt_json("mq", "list", "--all", cwd=town)
    assert {m["id"]: m["review"]["verdict"] for m in queue}[mrs[4].id] == "do_not_merge"


def test_a_reviewer_that_edits_its_checkout_is_an_error_and_nothing_merges(tmp_path: Path) -> None:
    town, upstream = reviewed_town(tmp_path, agent="editor")
    demo_reviewer(town, "editor", GT_DEMO_REVIEW="edit")
    ctx = open_ctx(town)
    mr = submit(ctx, {"ok.py": "print('fine')\n"})

    result = run_gt("refinery", "run", "app", "--json", cwd=town)

    assert result.returncode == 0, result.stderr
    conn = open_ctx(town).ledger.connection()
    [review] = list_reviews(conn, mr=mr.id)
    assert review.state == ReviewState.ERROR and "changed its checkout" in (review.error or "")
    assert "demo-reviewer-was-here.txt" in (review.error or "") and review.runs == 1
    assert get_mr(conn, mr.id).state == MRState.QUEUED, "the MR waits"
    assert upstream_file(upstream, "ok.py") is None, "nothing merged"
    [esc] = list_escalations(conn)
    assert esc.source == "review" and mr.id in esc.message
    assert not (town / "app" / "reviews" / review.id).exists(), "the checkout (and the change) is gone"
    # Retrying by hand dismisses the failed review: the MR is reviewed afresh (and fails again here).
    run_gt("mq", "retry", mr.id, cwd=town, check=True)
    run_gt("refinery", "run", "app", cwd=town, check=True)
    assert len(list_reviews(open_ctx(town).ledger.connection(), mr=mr.id)) == 2


def test_a_reviewer_that_prints_no_json_is_run_once_more_then_the_review_fails(tmp_path: Path) -> None:
    town, _ = reviewed_town(tmp_path, agent="mute")
    demo_reviewer(town, "mute", GT_DEMO_REVIEW="nojson")
    ctx = open_ctx(town)
    mr = submit(ctx, {"ok.py": "print('fine')\n"})

    result = run_gt("review", "run", mr.id, "--json", cwd=town)

    assert result.returncode == 1
    review = get_review(open_ctx(town).ledger.connection(), list_reviews(ctx.ledger.connection(), mr=mr.id)[0].id)
    assert review.state == ReviewState.ERROR and review.runs == 2
    assert "no usable findings document after 2 runs" in (review.error or "")
    assert Path(review.log_path or "").read_text().count("=== run ") == 2
    assert get_mr(ctx.ledger.connection(), mr.id).state == MRState.QUEUED
    assert len(list_escalations(ctx.ledger.connection())) == 1


def test_an_mr_that_rewrites_review_md_is_reviewed_under_the_targets(tmp_path: Path) -> None:
    town, _ = reviewed_town(tmp_path, files={"README.md": "# p\n", "REVIEW.md": "# Rules\nforbid: TODO\n"})
    ctx = open_ctx(town)
    mr = submit(ctx, {"REVIEW.md": "# Rules\nanything goes\n", "work.py": "x = compute()  # TODO: check\n"})

    review = review_now(ctx, mr.id)

    assert review.verdict == "do_not_merge"
    [finding] = findings_of(ctx.ledger.connection(), review.id)
    assert finding.title == "forbidden by REVIEW.md" and (finding.file, finding.start_line) == ("work.py", 1)
    prompt = Path(review.prompt_path or "").read_text()
    guidelines = prompt.split("```review.md\n", 1)[1].split("\n```", 1)[0]
    assert guidelines == "# Rules\nforbid: TODO\n" and "anything goes" not in guidelines


def test_findings_outside_the_diff_are_dropped_and_counted(tmp_path: Path) -> None:
    town, _ = reviewed_town(tmp_path, agent="liar")
    demo_reviewer(town, "liar", GT_DEMO_REVIEW="stray")
    ctx = open_ctx(town)
    mr = submit(ctx, {"ok.py": "print('fine')\n"})

    review = review_now(ctx, mr.id)

    assert review.state == ReviewState.DONE and review.dropped == 2 and review.verdict == "approve"
    assert findings_of(ctx.ledger.connection(), review.id) == []
    shown = gt_json("review", "show", review.id, cwd=town)
    assert shown["dropped"] == 2 and shown["findings"] == [] and shown["model_verdict"] == "approve"


def test_blocked_work_goes_back_with_every_blocking_finding_and_counts_as_a_fix_cycle(tmp_path: Path) -> None:
    town, upstream = reviewed_town(tmp_path)
    configure_rig(town, max_fix_cycles=1)
    ctx = open_ctx(town)
    good = submit(ctx, {"good.py": "def add(a, b):\n    return a + b\n"}, polecat="ace")
    bad = submit(ctx, {"calc.py": "def calc(expr):\n    return eval(expr)\n"}, polecat="bo")
    slinger = RecordingSlinger()

    Refinery(ctx, "app", slinger=slinger).run_until_empty(review=True)

    conn = ctx.ledger.connection()
    assert get_mr(conn, good.id).state == MRState.MERGED and upstream_file(upstream, "good.py") is not None
    assert get_mr(conn, bad.id).state == MRState.CHANGES_REQUESTED and upstream_file(upstream, "calc.py") is None
    [call] = slinger.calls
    assert call["issue"] == bad.issue and call["kind"] == "fix" and call["start_point"] == bad.commit_sha
    assert "calc.py:2 [critical] eval/exec on input" in call["note"] and "Fix: Parse the input" in call["note"]
    assert "fix cycle 1 of 1" in call["note"]

    # The polecat's second try is still blocked: with max_fix_cycles = 1 the issue is blocked.
    again = submit(ctx, {"calc.py": "def calc(expr):\n    return eval(expr.strip())\n"}, issue=bad.issue, polecat="bo")
    Refinery(ctx, "app", slinger=slinger).run_until_empty(review=True)
    assert get_mr(conn, again.id).state == MRState.CHANGES_REQUESTED and len(slinger.calls) == 1
    assert any("needs a human" in e.message for e in list_escalations(conn))

    # Reopened by a person, fixed, and the fix passes review: it merges.
    with ctx.ledger.write() as wconn:
        set_issue_status(wconn, bad.issue, IssueStatus.HOOKED, now=ctx.now())
    fixed = submit(ctx, {"calc.py": "def calc(a, b):\n    return a + b\n"}, issue=bad.issue, polecat="bo")
    Refinery(ctx, "app", slinger=slinger).run_until_empty(review=True)
    assert get_mr(conn, fixed.id).state == MRState.MERGED


def test_mrs_in_review_never_hold_up_approved_ones(tmp_path: Path) -> None:
    """A round merges what is approved while other MRs are still being reviewed (the
    reviewer here is an in-process stand-in held until the test lets it answer)."""
    import threading

    from gastown.refinery.review.runner import ReviewResult

    town, upstream = reviewed_town(tmp_path, max_reviews=4)
    ctx = open_ctx(town)
    first = submit(ctx, {"first.py": "ONE = 1\n"}, polecat="p0")
    assert review_now(ctx, first.id).verdict == "approve"  # the real demo reviewer
    rest = [submit(ctx, {f"f{i}.py": f"N = {i}\n"}, polecat=f"p{i + 1}") for i in range(3)]
    answer = threading.Event()

    def held_reviewer(*args: object) -> ReviewResult:
        answer.wait(60)
        return ReviewResult(ReviewState.DONE, verdict="approve", model_verdict="approve", summary="ok", runs=1)

    stage = ReviewStage(ctx, "app", executor=held_reviewer)
    assert len(stage.dispatch()) == 3
    report = Refinery(ctx, "app", slinger=RecordingSlinger()).run_once()
    conn = ctx.ledger.connection()
    assert report.merged == [first.id] and upstream_file(upstream, "first.py") == "ONE = 1\n"
    assert [get_mr(conn, m.id).state for m in rest] == [MRState.REVIEWING] * 3
    answer.set()
    stage.wait()
    assert [get_mr(conn, m.id).state for m in rest] == [MRState.QUEUED] * 3
    assert Refinery(ctx, "app", slinger=RecordingSlinger()).run_once().merged == [m.id for m in rest]


@pytest.mark.slow
def test_reviews_run_in_parallel_up_to_max_reviews(tmp_path: Path) -> None:
    town, _ = reviewed_town(tmp_path, agent="slow", max_reviews=2)
    demo_reviewer(town, "slow", GT_DEMO_THINK="2")
    ctx = open_ctx(town)
    mrs = [submit(ctx, {f"f{i}.py": f"N = {i}\n"}, polecat=f"p{i}") for i in range(4)]

    stage = ReviewStage(ctx, "app")
    assert len(stage.dispatch()) == 2, "max_reviews = 2"
    assert stage.dispatch() == [], "no third review while two run"
    stage.run_all()

    conn = ctx.ledger.connection()
    reviews = [list_reviews(conn, mr=m.id)[0] for m in mrs]
    assert all(r.verdict == "approve" for r in reviews)
    spans = [(r.started_at, r.ended_at or 0.0) for r in reviews]
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap == 2, f"two at a time, never more: {spans}"


@pytest.mark.tmux
@pytest.mark.slow
def test_a_mayor_killed_mid_review_leaves_no_review_running_and_no_mr_stuck(tmp_path: Path, tmux_socket: str) -> None:
    import os
    import signal

    from gastown._internal.processes import alive, processes_referencing
    from gastown.roles.mayor import running_pid
    from gastown.town import Town
    from tests.helpers import retry_until

    town, upstream = reviewed_town(tmp_path, agent="slow")
    demo_reviewer(town, "slow", GT_DEMO_THINK="300")
    ctx = open_ctx(town)
    conn = ctx.ledger.connection()
    mr = submit(ctx, {"ok.py": "x = 1\n"})
    run_gt("up", cwd=town, check=True)
    try:
        first = retry_until(lambda: list_reviews(conn, mr=mr.id), timeout=60, what="the Mayor to start a review")[0]
        reviewer = retry_until(lambda: processes_referencing(f"GT_REVIEW={first.id}\0"), timeout=60,
                               what="the reviewer process")
        mayor = running_pid(Town(town))
        assert mayor is not None and get_mr(conn, mr.id).state == MRState.REVIEWING
        os.kill(mayor, signal.SIGKILL)

        # The keeper restarts the Mayor, whose review loop settles the orphan and starts afresh.
        retry_until(lambda: get_review(conn, first.id).state == ReviewState.INTERRUPTED, timeout=120,
                    what="the orphaned review to be interrupted")
        retry_until(lambda: not any(alive(p) for p in reviewer), timeout=30, what="the old reviewer to be stopped")
        assert not (town / "app" / "reviews" / first.id).exists()
        second = retry_until(lambda: [r for r in list_reviews(conn, mr=mr.id) if r.id != first.id], timeout=60,
                             what="a new review of the MR")[0]
        assert get_mr(conn, mr.id).state == MRState.REVIEWING and second.state == ReviewState.RUNNING
    finally:
        run_gt("down", "--timeout", "2", cwd=town)
    # `gt down` leaves no review running either, and the MR back in the queue.
    assert [r.state for r in list_reviews(conn, mr=mr.id)] == [ReviewState.INTERRUPTED] * 2
    assert get_mr(conn, mr.id).state == MRState.QUEUED
    assert not any(processes_referencing(f"GT_REVIEW={r.id}\0") for r in list_reviews(conn, mr=mr.id))
    assert upstream_file(upstream, "ok.py") is None


def test_a_spent_budget_stops_new_reviews(tmp_path: Path) -> None:
    from gastown.ledger.holds import HoldScope, place_hold

    town, _ = reviewed_town(tmp_path)
    ctx = open_ctx(town)
    mr = submit(ctx, {"ok.py": "x = 1\n"})
    with ctx.ledger.write() as conn:
        place_hold(conn, HoldScope.rig_budget("app"), reason="rig app reached its daily budget", now=ctx.now())
    stage = ReviewStage(ctx, "app")
    assert stage.dispatch() == [] and get_mr(ctx.ledger.connection(), mr.id).state == MRState.QUEUED
    with ctx.ledger.write() as conn:
        from gastown.ledger.holds import release_hold

        release_hold(conn, HoldScope.rig_budget("app"))
    assert len(stage.dispatch()) == 1
    stage.wait()
    assert list_reviews(ctx.ledger.connection(), mr=mr.id)[0].verdict == "approve"

