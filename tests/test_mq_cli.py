"""`gt mq` and `gt refinery` through the real `gt`, plus the MR rows behind them."""

from __future__ import annotations

import json
from pathlib import Path

from gastown.ledger.mrs import get_mr, list_mrs, queue_order, record_mr
from gastown.ledger import rounds
from gastown.states import MRState
from tests.helpers import gt_json, run_gt
from tests.refinery_support import check_gate, configure_rig, new_issue, open_ctx, submit

MR_FIELDS = {"id", "rig", "issue", "polecat", "spawn", "branch", "commit", "target", "priority", "state", "fix_cycle",
             "attempts", "created_at", "updated_at", "detail", "gate_log", "merged_sha", "review",
             "pull_request"}


def test_record_mr_is_idempotent_per_branch_and_commit_and_supersedes_older_queued_ones(rig_town: Path) -> None:
    ctx = open_ctx(rig_town)
    issue = new_issue(ctx)
    with ctx.ledger.write() as conn:
        args = dict(rig="app", issue=issue, polecat="p1", spawn="sp-1", branch="polecat/p1/x", target="main",
                    priority=2, fix_cycle=0, now=ctx.now())
        first, created = record_mr(conn, commit_sha="a" * 40, **args)  # type: ignore[arg-type]
        again, created_again = record_mr(conn, commit_sha="a" * 40, **args)  # type: ignore[arg-type]
        newer, _ = record_mr(conn, commit_sha="b" * 40, **args)  # type: ignore[arg-type]
        assert created and not created_again and again.id == first.id
        assert get_mr(conn, first.id).state == MRState.REJECTED
        assert get_mr(conn, first.id).detail == f"superseded by {newer.id}"
        assert [m.id for m in list_mrs(conn, "app", [MRState.QUEUED])] == [newer.id]


def test_queue_order_is_priority_then_age_and_old_work_is_not_starved(rig_town: Path) -> None:
    ctx = open_ctx(rig_town)
    old_low = submit(ctx, {"a.txt": "a\n"}, priority=4)
    new_high = submit(ctx, {"b.txt": "b\n"}, priority=0)
    mid = submit(ctx, {"c.txt": "c\n"}, priority=2)
    mrs = list_mrs(ctx.ledger.connection(), "app", [MRState.QUEUED])
    now = max(m.created_at for m in mrs)
    assert [m.id for m in queue_order(mrs, now)] == [new_high.id, mid.id, old_low.id]
    five_hours_later = now + 5 * 3600
    assert [m.id for m in queue_order(mrs, five_hours_later)] == [old_low.id, new_high.id, mid.id]


def test_mq_list_show_retry_reject(rig_town: Path, tmp_path: Path) -> None:
    configure_rig(rig_town, gates=[check_gate(tmp_path / "runs")])
    ctx = open_ctx(rig_town)
    a = submit(ctx, {"a.txt": "BROKEN\n"}, priority=1)
    b = submit(ctx, {"b.txt": "fine\n"}, priority=3)

    listed = gt_json("mq", "list", cwd=rig_town)
    assert [m["id"] for m in listed] == [a.id, b.id]
    assert set(listed[0]) == MR_FIELDS and listed[0]["state"] == "queued" and listed[0]["commit"] == a.commit_sha
    plain = run_gt("mq", "list", cwd=rig_town, check=True).stdout
    assert a.id in plain and "queued" in plain

    rejected = gt_json("mq", "reject", b.id, "--reason", "not wanted", cwd=rig_town)
    assert rejected["state"] == "rejected" and rejected["detail"] == "not wanted"
    assert [m["id"] for m in gt_json("mq", "list", cwd=rig_town)] == [a.id]
    assert {m["id"] for m in gt_json("mq", "list", "--all", cwd=rig_town)} == {a.id, b.id}
    assert gt_json("mq", "retry", b.id, cwd=rig_town)["state"] == "queued"

    run = run_gt("refinery", "run", "app", cwd=rig_town)
    assert run.returncode == 0, run.stderr
    assert "1/2 merged" in run.stdout and f"failed: {a.id}" in run.stdout
    shown = gt_json("mq", "show", a.id, cwd=rig_town)
    assert shown["state"] == "failed" and "check failed" in shown["detail"] and Path(shown["gate_log"]).is_file()
    assert gt_json("mq", "show", b.id, cwd=rig_town)["merged_sha"]
    text = run_gt("mq", "show", a.id, cwd=rig_town, check=True).stdout
    assert "check failed" in text and "gate log:" in text
    row = next(line for line in run_gt("mq", "list", "--all", cwd=rig_town, check=True).stdout.splitlines()
               if line.startswith(a.id))
    assert "red, exit 1: check failed" in row, row  # why it was red, not the log's header

    assert gt_json("mq", "list", "--state", "merged", cwd=rig_town)[0]["id"] == b.id
    assert gt_json("mq", "retry", a.id, cwd=rig_town)["state"] == "queued"


def test_mq_errors_are_one_sentence_with_a_hint(rig_town: Path) -> None:
    missing = run_gt("mq", "show", "mr-nope00", cwd=rig_town)
    assert missing.returncode == 4 and missing.stderr.startswith("gt: no merge request mr-nope00")
    assert "Traceback" not in missing.stderr and "gt mq list" in missing.stderr

    ctx = open_ctx(rig_town)
    mr = submit(ctx, {"a.txt": "a\n"})
    run_gt("refinery", "run", "app", cwd=rig_town, check=True)
    for verb in ("retry", "reject"):
        refused = run_gt("mq", verb, mr.id, cwd=rig_town)
        assert refused.returncode == 6 and "already merged" in refused.stderr

    unknown_rig = run_gt("refinery", "run", "nosuch", cwd=rig_town)
    assert unknown_rig.returncode == 4 and "no rig named 'nosuch'" in unknown_rig.stderr


def test_refinery_status_and_release(rig_town: Path, tmp_path: Path) -> None:
    configure_rig(rig_town, gates=["exit 1"], batch=2)
    ctx = open_ctx(rig_town)
    submit(ctx, {"a.txt": "a\n"})

    held = run_gt("refinery", "run", "app", cwd=rig_town)
    assert held.returncode == 6 and "on hold" in held.stderr and "gt refinery release app" in held.stderr

    [status] = gt_json("refinery", "status", "app", cwd=rig_town)
    assert status["rig"] == "app" and status["depth"] == 1 and status["states"]["queued"] == 1
    assert status["hold"]["reason"].startswith("the target main") and status["hold"]["until"] is None
    assert status["last_round"]["outcome"] == "held" and status["last_round"]["gate_runs"] == 3
    assert status["batch"] == 2 and status["gates"] == ["exit 1"] and status["merge"] == "rebase"
    assert status["running_round"] is None and status["recent_gate_runs"] == 3
    assert "HELD" in run_gt("refinery", "status", cwd=rig_town, check=True).stdout

    released = gt_json("refinery", "release", "app", cwd=rig_town)
    assert released["released"] is True and released["hold"]["reason"]
    assert rounds.get_hold(ctx.ledger.connection(), "app") is None
    again = run_gt("refinery", "release", "app", cwd=rig_town, check=True)
    assert "was not on hold" in again.stdout

    configure_rig(rig_town, gates=["true"])
    done = run_gt("refinery", "run", "app", "--json", cwd=rig_town, check=True)
    document = json.loads(done.stdout)
    assert [r["outcome"] for r in document["rounds"]] == ["merged"]
    assert document["recovered"]["interrupted_rounds"] == []
