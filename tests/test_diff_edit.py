"""`gt diff RIG/POLECAT|MR|ISSUE` and `gt issue edit`, on real git repositories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gastown.git import worktrees as wt
from gastown.ledger import work
from tests.helpers import git, gt_json, ledger_rows, run_gt
from tests.refinery_support import commit_on, new_issue, open_ctx, plumb, submit


@pytest.fixture
def polecat(rig_town: Path, upstream: Path) -> tuple[Path, str]:
    """Polecat app/ace hooked to an issue: one commit, one uncommitted change, one new file;
    and a commit on the target made after its branch started (not part of its change)."""
    ctx = open_ctx(rig_town)
    issue = new_issue(ctx)
    path = ctx.town.polecat_path("app", "ace")
    wt.create_worktree(ctx.town.hub_path("app"), path, f"polecat/ace/{issue}", "refs/remotes/origin/main")
    with ctx.ledger.write() as conn:
        work.add_polecat(conn, "app", "ace", now=ctx.now())
        work.insert_hook(conn, issue=issue, rig="app", polecat="ace", branch=f"polecat/ace/{issue}", agent="demo",
                         kind="fresh", note=None, now=ctx.now())
    (path / "committed.txt").write_text("committed line\n")
    git(path, "add", "committed.txt")
    git(path, "commit", "-q", "-m", "committed work")
    (path / "README.md").write_text("# sample project\nan uncommitted line \x1b[31mred\x1b[0m\n")
    (path / "scratch.txt").write_text("untracked\n")
    later = commit_on(upstream, plumb(upstream, "rev-parse", "main"), {"upstream-only.txt": "x\n"}, "later on main")
    plumb(upstream, "update-ref", "refs/heads/main", later)
    git(rig_town / "app" / "hub.git", "fetch", "-q", "origin")
    return rig_town, issue


def test_diff_of_a_polecat_shows_its_work_only(polecat: tuple[Path, str]) -> None:
    town, issue = polecat
    doc = gt_json("diff", "app/ace", cwd=town)
    assert doc["source"] == "worktree" and sorted(doc["files"]) == ["README.md", "committed.txt"]
    assert doc["untracked"] == ["scratch.txt"] and "upstream-only.txt" not in doc["text"]
    assert "+committed line" in doc["text"] and "+an uncommitted line \x1b[31mred" in doc["text"]  # JSON: verbatim
    plain = run_gt("diff", "app/ace", cwd=town, check=True).stdout
    assert "\x1b" not in plain and "\\x1b[31mred" in plain, "terminal escapes are shown, never obeyed"
    assert "# untracked, not shown: scratch.txt" in plain
    assert gt_json("diff", issue, cwd=town)["subject"] == "app/ace", "a hooked issue shows its polecat's worktree"
    stat = run_gt("diff", "app/ace", "--stat", cwd=town, check=True).stdout
    assert "committed.txt" in stat and "+committed line" not in stat


def test_diff_of_a_merge_request_and_of_an_issue_in_review(rig_town: Path) -> None:
    ctx = open_ctx(rig_town)
    mr = submit(ctx, {"feature.txt": "the feature\n"})
    by_mr = gt_json("diff", mr.id, cwd=rig_town)
    assert by_mr["source"] == "mr" and by_mr["files"] == ["feature.txt"] and by_mr["head"] == mr.commit_sha
    assert gt_json("diff", mr.issue, cwd=rig_town)["subject"] == mr.id
    for ref, code in (("mr-zzzzzz", 4), ("app-zzzzz", 4), ("nonsense", 4), ("app/ghost", 4), ("web/ace", 4)):
        result = run_gt("diff", ref, cwd=rig_town)
        assert result.returncode == code and "Traceback" not in result.stderr, ref


def test_diff_goes_through_the_pager_on_a_terminal(polecat: tuple[Path, str], tmp_path: Path) -> None:
    town, _ = polecat
    paged = tmp_path / "paged.txt"
    pager = tmp_path / "pager.py"
    pager.write_text(f"import sys\nopen({str(paged)!r}, 'w').write(sys.stdin.read())\n")
    primary, secondary = os.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "gastown", "diff", "app/ace"], cwd=town, stdout=secondary,
                              stderr=subprocess.PIPE, env={**os.environ, "GT_PAGER": f"{sys.executable} {pager}"},
                              timeout=60)
    finally:
        os.close(secondary)
        os.close(primary)
    assert proc.returncode == 0, proc.stderr
    text = paged.read_text()
    assert text.startswith("# app/ace (worktree) against main") and "+committed line" in text and "\x1b" not in text


def test_issue_edit_changes_what_it_is_told(rig_town: Path) -> None:
    issue = gt_json("issue", "create", "old title", "--body", "old body", cwd=rig_town)["id"]
    hostile = "new body: $(rm -rf ~) `id` 'q' \"dq\" 漢字\n\x1b[2J second line"
    edited = gt_json("issue", "edit", issue, "--title", "new title", "--body", "-", "--priority", "0",
                     cwd=rig_town, input=hostile)
    assert edited["changed"] == ["title", "body", "priority"]
    shown = gt_json("issue", "show", issue, cwd=rig_town)
    assert (shown["title"], shown["body"], shown["priority"]) == ("new title", hostile, 0)
    assert gt_json("issue", "edit", issue, "--title", "new title", cwd=rig_town)["changed"] == []
    [event] = [e for e in ledger_rows(rig_town, "SELECT * FROM events WHERE issue = ?", issue) if "edited" in e["message"]]
    assert event["message"] == "edited: title, body, priority"
    for args, code in ((("issue", "edit", issue), 2), (("issue", "edit", issue, "--priority", "7"), 2),
                       (("issue", "edit", "app-zzzzz", "--title", "x"), 4), (("issue", "edit", issue, "--title", " "), 2)):
        result = run_gt(*args, cwd=rig_town)
        assert result.returncode == code and "Traceback" not in result.stderr, args


def test_issue_edit_of_a_queued_issue_moves_it_in_the_queue(rig_town: Path) -> None:
    ctx = open_ctx(rig_town)
    issue = gt_json("issue", "create", "waiting", cwd=rig_town)["id"]
    from gastown.ledger import queue

    with ctx.ledger.write() as conn:
        queue.enqueue(conn, issue=issue, rig="app", polecat=None, agent=None, priority=2, kind="fresh",
                      start_point=None, note=None, now=ctx.now())
    gt_json("issue", "edit", issue, "--priority", "0", cwd=rig_town)
    assert ledger_rows(rig_town, "SELECT priority FROM sling_queue WHERE issue = ?", issue) == [{"priority": 0}]
