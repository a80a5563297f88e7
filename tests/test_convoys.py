"""Convoys: grouping issues, landing when all are closed, progress and blockers, and the
convoy `gt sling` makes. Real `gt`, real git; tmux on the isolated socket where agents run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from gastown.ledger import convoys
from gastown.ledger.convoys import IssueProgress, auto_name, close_finished, waiting_on
from gastown.errors import InvalidInput
from gastown.ledger.escalations import raise_escalation
from gastown.ledger.issues import set_issue_status
from gastown.roles.deacon import Deacon
from gastown.states import IssueStatus
from tests.helpers import create_issue, gt_json, ledger_rows, retry_until, run_gt, set_config
from tests.refinery_support import open_ctx, submit

ARGBOT = Path(__file__).parent / "agents" / "argbot.py"
HOSTILE = "conv'oy \"[bold]red[/bold]\" $(touch pwned) `id` 漢字 🚀\nsecond line\ttab"


def issues(town: Path, *titles: str) -> list[str]:
    return [create_issue(town, title) for title in titles]


def convoy_events(town: Path, convoy_id: str) -> list[str]:
    rows = ledger_rows(town, "SELECT message, data FROM events WHERE kind = 'convoy' ORDER BY id")
    return [r["message"] for r in rows if json.loads(r["data"] or "{}").get("convoy") == convoy_id]


def add_argbot(town: Path) -> None:
    with (town / "gastown.toml").open("a") as handle:
        handle.write(
            f"""
[agents.argbot]
command = [{json.dumps(sys.executable)}, {json.dumps(str(ARGBOT))}, "{{prompt}}"]
prompt = "arg"
ready_delay = "0.2s"
"""
        )


# -- pure -------------------------------------------------------------------------------

P = IssueProgress
WAITING = [
    ("merged", P("app-1", "t", "app", "closed", reason="merged in mr-1", mr="mr-1", mr_state="merged"), "merged (mr-1)"),
    ("closed by hand", P("app-1", "t", "app", "closed", reason="won't fix"), "closed: won't fix"),
    ("blocked with escalation",
     P("app-1", "t", "app", "blocked", reason="no API key", escalation="esc-1", escalation_severity="high"),
     "blocked: no API key; escalation esc-1 [high]"),
    ("blocked, escalation acked",
     P("app-1", "t", "app", "blocked", reason="r", escalation="esc-1", escalation_severity="low", escalation_acked=True),
     "blocked: r; escalation esc-1 [low, acknowledged]"),
    ("in the merge queue", P("app-1", "t", "app", "in_review", mr="mr-2", mr_state="queued"), "in the merge queue (mr-2)"),
    ("being tested", P("app-1", "t", "app", "in_review", mr="mr-2", mr_state="testing"), "being tested by the refinery (mr-2)"),
    ("conflict", P("app-1", "t", "app", "in_review", mr="mr-2", mr_state="conflict", mr_detail="README.md"),
     "merge request mr-2 conflict: README.md"),
    ("agent working", P("app-1", "t", "app", "hooked", polecat="app/rivet", agent_state="working"), "app/rivet: agent working"),
    ("fix cycle", P("app-1", "t", "app", "hooked", polecat="app/rivet", agent_state="idle", mr="mr-3", mr_state="failed"),
     "app/rivet is fixing merge request mr-3 (failed); agent idle"),
    ("queued for a polecat", P("app-1", "t", "web", "open", queue_position=3), "waiting for a free polecat (#3 in web's queue)"),
    ("never slung", P("app-1", "t", "app", "open"), "not slung yet (gt sling app-1)"),
]


@pytest.mark.parametrize(("progress", "expected"), [row[1:] for row in WAITING], ids=[row[0] for row in WAITING])
def test_waiting_on_says_what_each_issue_waits_for(progress: IssueProgress, expected: str) -> None:
    assert waiting_on(progress) == expected


NAMES = [
    ("one issue, no name: no convoy", ["a"], None, False, None),
    ("several issues: first title", ["Fix  the\nlogin", "b"], None, False, "Fix the login"),
    ("explicit name, one issue", ["a"], "release 1.2", False, "release 1.2"),
    ("explicit name wins", ["a", "b"], "release", False, "release"),
    ("opted out", ["a", "b"], None, True, None),
    ("long title is shortened", ["x" * 200, "b"], None, False, "x" * 79 + "…"),
]


@pytest.mark.parametrize(("titles", "name", "no_convoy", "expected"), [r[1:] for r in NAMES], ids=[r[0] for r in NAMES])
def test_auto_name(titles: list[str], name: str | None, no_convoy: bool, expected: str | None) -> None:
    assert auto_name(titles, name, no_convoy) == expected


def test_convoy_and_no_convoy_together_are_refused() -> None:
    with pytest.raises(InvalidInput):
        auto_name(["a", "b"], "name", True)


# -- lifecycle --------------------------------------------------------------------------


@pytest.mark.tmux
def test_a_convoy_of_four_lands_by_itself_when_the_last_issue_closes(rig_town: Path, tmux_socket: str) -> None:
    ids = issues(rig_town, "one", "two", "three", "four")
    made = gt_json("convoy", "create", "four of them", *ids, cwd=rig_town)
    convoy_id = made["id"]
    assert convoy_id.startswith("cv-") and made["status"] == "open" and (made["closed"], made["total"]) == (0, 4)
    ctx = open_ctx(rig_town)
    deacon = Deacon(ctx)
    for n, issue in enumerate(ids[:3], start=1):
        run_gt("issue", "close", issue, cwd=rig_town, check=True)
        deacon.patrol()
        shown = gt_json("convoy", "show", convoy_id, cwd=rig_town)
        assert shown["status"] == "open" and shown["closed"] == n and shown["closed_at"] is None
    assert convoy_events(rig_town, convoy_id) == [f"convoy {convoy_id} created with 4 issue(s): four of them"]

    run_gt("issue", "close", ids[3], "--reason", "done by hand", cwd=rig_town, check=True)
    deacon.patrol()  # the Deacon lands it, nobody had to look at it
    row = ledger_rows(rig_town, "SELECT status, closed_at FROM convoys WHERE id = ?", convoy_id)[0]
    assert row["status"] == "closed" and row["closed_at"] is not None
    assert close_finished(ctx.ledger) == [] and close_finished(ctx.ledger) == []  # idempotent
    deacon.patrol()
    landed = [m for m in convoy_events(rig_town, convoy_id) if "landed" in m]
    assert landed == [f"convoy {convoy_id} landed: all 4 issue(s) closed: four of them"]
    listed = gt_json("convoy", "list", cwd=rig_town)
    assert [(c["id"], c["status"], c["closed"], c["total"]) for c in listed] == [(convoy_id, "closed", 4, 4)]
    assert "4/4 closed" in run_gt("convoy", "list", cwd=rig_town, check=True).stdout

    # adding an open issue reopens it; closing that lands it again
    [fifth] = issues(rig_town, "five")
    added = gt_json("convoy", "add", convoy_id, fifth, ids[0], cwd=rig_town)
    assert added["added"] == [fifth] and added["status"] == "open" and added["closed_at"] is None
    run_gt("issue", "close", fifth, cwd=rig_town, check=True)
    assert close_finished(ctx.ledger) == [convoy_id]
    # reopening one of its issues opens it too
    run_gt("issue", "reopen", ids[1], cwd=rig_town, check=True)
    close_finished(ctx.ledger)
    assert gt_json("convoy", "show", convoy_id, cwd=rig_town)["status"] == "open"


def test_a_convoy_lands_when_the_refinery_merges_its_work(rig_town: Path) -> None:
    ctx = open_ctx(rig_town)
    first = submit(ctx, {"a.txt": "a\n"}, polecat="p1")
    second = submit(ctx, {"b.txt": "b\n"}, polecat="p2")
    convoy_id = gt_json("convoy", "create", "ship it", first.issue, second.issue, cwd=rig_town)["id"]
    before = gt_json("convoy", "show", convoy_id, cwd=rig_town)
    assert [i["waiting_on"] for i in before["issues"]] == [f"in the merge queue ({m.id})" for m in (first, second)]
    run_gt("refinery", "run", "app", cwd=rig_town, check=True)
    assert close_finished(ctx.ledger) == [convoy_id]
    after = gt_json("convoy", "show", convoy_id, cwd=rig_town)
    assert after["status"] == "closed" and after["merged"] == 2
    assert [i["mr"]["state"] for i in after["issues"]] == ["merged", "merged"]
    assert "2 of 2 closed (2 merged)" in run_gt("convoy", "show", convoy_id, cwd=rig_town, check=True).stdout


def test_issues_may_be_in_several_convoys_and_names_are_kept_literally(rig_town: Path) -> None:
    a, b = issues(rig_town, "a", "b")
    first = gt_json("convoy", "create", HOSTILE, a, b, cwd=rig_town)
    second = gt_json("convoy", "create", "only a", a, cwd=rig_town)
    assert first["name"] == HOSTILE and first["id"] != second["id"]
    plain = run_gt("convoy", "show", first["id"], cwd=rig_town, check=True).stdout
    assert "name: " + HOSTILE in plain  # rich markup is not interpreted
    by_name = gt_json("convoy", "show", "only a", cwd=rig_town)
    assert by_name["id"] == second["id"]
    run_gt("issue", "close", a, cwd=rig_town, check=True)
    assert close_finished(open_ctx(rig_town).ledger) == [second["id"]]
    assert gt_json("convoy", "show", first["id"], cwd=rig_town)["status"] == "open"


@pytest.mark.parametrize(
    ("args", "code", "sentence"),
    [
        (["convoy", "show", "cv-zzzzzz"], 4, "no convoy cv-zzzzzz in this town"),
        (["convoy", "show", "no such name"], 4, "no convoy has the id or name 'no such name'"),
        (["convoy", "add", "cv-zzzzzz", "app-zzzzz"], 4, "no convoy cv-zzzzzz"),
        (["convoy", "create", "x", "app-zzzzz"], 4, "no issue app-zzzzz in this town"),
        (["convoy", "create", "x", "nonsense"], 4, "'nonsense' is not an issue id"),
        (["convoy", "create", "  "], 2, "the convoy name is empty"),
    ],
)
def test_unknown_convoys_and_issues_get_one_clear_sentence(rig_town: Path, args: list[str], code: int, sentence: str) -> None:
    result = run_gt(*args, cwd=rig_town)
    assert result.returncode == code and sentence in result.stderr
    assert "Traceback" not in result.stderr
    assert ledger_rows(rig_town, "SELECT * FROM convoys") == []


def test_an_ambiguous_name_asks_for_the_id(rig_town: Path) -> None:
    [a] = issues(rig_town, "a")
    run_gt("convoy", "create", "twin", a, cwd=rig_town, check=True)
    run_gt("convoy", "create", "twin", cwd=rig_town, check=True)
    result = run_gt("convoy", "add", "twin", a, cwd=rig_town)
    assert result.returncode == 2 and "2 convoys are named 'twin'" in result.stderr


# -- progress and blockers --------------------------------------------------------------


@pytest.mark.tmux
def test_show_says_what_blocks_each_issue(rig_town: Path, tmux_socket: str) -> None:
    add_argbot(rig_town)
    set_config(rig_town, "rigs.app", {"max_polecats": 1})
    working, queued, blocked, review, done = issues(rig_town, "working", "queued", "blocked", "review", "done")
    convoy_id = gt_json("convoy", "create", "release", working, queued, blocked, review, done, cwd=rig_town)["id"]

    slung = gt_json("sling", working, queued, "--agent", "argbot", "--no-convoy", cwd=rig_town)
    assert [s["status"] for s in slung] == ["started", "queued"] and slung[0]["convoy"] is None
    ctx = open_ctx(rig_town)
    esc = raise_escalation(ctx.ledger, "needs the staging password", severity="high", source="witness", issue=blocked,
                           block_issue=True)
    with ctx.ledger.write() as conn:
        set_issue_status(conn, review, IssueStatus.HOOKED, now=ctx.now())
    mr = submit(ctx, {"r.txt": "r\n"}, issue=review, polecat="p9")
    run_gt("issue", "close", done, cwd=rig_town, check=True)
    retry_until(lambda: ledger_rows(rig_town, "SELECT status FROM spawns WHERE issue = ?", working)[0]["status"] == "running",
                timeout=20, what="the agent to be running")

    shown = gt_json("convoy", "show", convoy_id, cwd=rig_town)
    assert (shown["status"], shown["closed"], shown["total"], shown["merged"]) == ("open", 1, 5, 0)
    by_id = {i["id"]: i for i in shown["issues"]}
    assert [i["id"] for i in shown["issues"]] == [working, queued, blocked, review, done]
    assert by_id[working]["status"] == "hooked" and by_id[working]["polecat"] == f"app/{slung[0]['polecat']}"
    assert by_id[working]["spawn"] == slung[0]["spawn"] and by_id[working]["agent_state"] in ("spawning", "working", "idle")
    assert by_id[queued]["status"] == "open" and by_id[queued]["queue_position"] == 1
    assert by_id[queued]["waiting_on"] == "waiting for a free polecat (#1 in app's queue)"
    assert by_id[blocked]["escalation"] == {"id": esc.id, "severity": "high", "message": "needs the staging password",
                                           "acked": False}
    assert by_id[blocked]["waiting_on"] == f"blocked: needs the staging password; escalation {esc.id} [high]"
    assert by_id[review]["mr"] == {"id": mr.id, "state": "queued", "detail": None}
    assert by_id[done]["waiting_on"] == "closed: closed by hand"

    plain = run_gt("convoy", "show", convoy_id, cwd=rig_town, check=True).stdout
    assert "1 of 5 closed (0 merged)" in plain
    for expected in (f"app/{slung[0]['polecat']}: agent", "#1 in app's queue", esc.id, f"in the merge queue ({mr.id})"):
        assert expected in plain


# -- gt sling makes convoys ---------------------------------------------------------------


@pytest.mark.tmux
def test_sling_of_several_issues_makes_one_convoy(rig_town: Path, tmux_socket: str) -> None:
    add_argbot(rig_town)
    ids = issues(rig_town, "Refactor the parser", "b", "c")
    slung = gt_json("sling", *ids, "--agent", "argbot", cwd=rig_town)
    convoy_ids = {s["convoy"] for s in slung}
    assert len(convoy_ids) == 1 and None not in convoy_ids
    [convoy_id] = convoy_ids
    shown = gt_json("convoy", "show", convoy_id, cwd=rig_town)
    assert shown["name"] == "Refactor the parser" and [i["id"] for i in shown["issues"]] == ids
    assert all(i["status"] == "hooked" for i in shown["issues"])
    again = gt_json("sling", *ids, cwd=rig_town)  # slinging again reuses it, no twin convoy
    assert {s["convoy"] for s in again} == {convoy_id} and len(gt_json("convoy", "list", cwd=rig_town)) == 1

    d, e = issues(rig_town, "d", "e")
    alone = gt_json("sling", d, e, "--agent", "argbot", "--no-convoy", cwd=rig_town)
    assert [s["convoy"] for s in alone] == [None, None]
    [f] = issues(rig_town, "f")
    named = gt_json("sling", f, "--agent", "argbot", "--convoy", "hotfix", cwd=rig_town)
    assert gt_json("convoy", "show", named["convoy"], cwd=rig_town)["name"] == "hotfix"
    assert len(gt_json("convoy", "list", cwd=rig_town)) == 2
    text = run_gt("sling", *ids, cwd=rig_town, check=True).stdout
    assert f"convoy {convoy_id} (3 issues)" in text


def test_sling_with_an_unknown_issue_makes_no_convoy_and_slings_nothing(rig_town: Path) -> None:
    [a] = issues(rig_town, "a")
    result = run_gt("sling", a, "app-zzzzz", "app", cwd=rig_town)
    assert result.returncode == 4 and "no issue app-zzzzz" in result.stderr
    assert ledger_rows(rig_town, "SELECT * FROM convoys") == []
    assert gt_json("issue", "show", a, cwd=rig_town)["status"] == "open"


def test_domain_create_refuses_unknown_issue_before_writing(rig_town: Path) -> None:
    ctx = open_ctx(rig_town)
    with pytest.raises(Exception, match="no issue app-zzzzz"):
        convoys.create(ctx.ledger, "x", ["app-zzzzz"])
    assert ledger_rows(rig_town, "SELECT * FROM convoys") == []
