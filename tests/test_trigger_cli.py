"""`gt trigger list/show/requests/pause/resume/fire/rotate`: output, JSON fields, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import gt_json, ledger_rows, run_gt, set_config
from tests.serve_support import add_triggers


@pytest.fixture
def town(rig_town: Path) -> Path:
    add_triggers(rig_town)
    return rig_town


def test_show_and_list_give_the_url_state_and_fields(town: Path) -> None:
    shown = gt_json("trigger", "show", "deps", cwd=town)
    [row] = ledger_rows(town, "SELECT token FROM triggers WHERE name = 'deps'")
    assert len(row["token"]) >= 22  # 128 random bits, URL-safe
    assert shown["url"] == f"http://127.0.0.1:8470/hooks/deps/{row['token']}"  # not running: the configured address
    assert {"name", "kind", "rig", "url", "paused", "in_flight"} <= shown.keys()
    assert (shown["name"], shown["kind"], shown["rig"], shown["paused"], shown["in_flight"]) == ("deps", "webhook", "app", False, 0)
    assert shown["max_in_flight"] == 20 and shown["max_body"] == 256 * 1024 and shown["auth"] == "secret"
    assert gt_json("trigger", "show", "deps", cwd=town)["url"] == shown["url"]  # made once, kept
    nightly = gt_json("trigger", "show", "nightly", cwd=town)
    assert nightly["url"] is None and nightly["schedule"] == "0 3 * * *" and nightly["timezone"] == "Europe/Berlin"
    assert nightly["next_run"].endswith("Z")
    listed = gt_json("trigger", "list", cwd=town)
    assert [t["name"] for t in listed] == ["deps", "gh", "local", "nightly"]
    table = run_gt("trigger", "list", cwd=town, check=True).stdout
    assert "deps" in table and "webhook" in table and "0/20" in table and "next " in table
    set_config(town, "server", {"public_url": "https://hooks.example.com/"})
    assert gt_json("trigger", "show", "deps", cwd=town)["url"] == f"https://hooks.example.com/hooks/deps/{row['token']}"


def test_fire_pause_resume_rotate_and_requests(town: Path, tmp_path: Path) -> None:
    body = tmp_path / "alert.json"
    body.write_text(json.dumps({"package": "urllib3"}))
    fired = gt_json("trigger", "fire", "deps", "--body", str(body), cwd=town)
    assert gt_json("issue", "show", fired["issue"], cwd=town)["title"] == "Dependency update: urllib3"
    [req] = gt_json("trigger", "requests", "deps", cwd=town)
    assert req["id"] == fired["request"] and req["source"] == "fire" and req["state"] == "captured"
    assert req["body"] == body.read_text() and req["issue"] == fired["issue"]
    assert "urllib3" not in run_gt("trigger", "requests", "deps", cwd=town, check=True).stdout  # the table has no payload

    paused = gt_json("trigger", "pause", "deps", cwd=town)
    assert paused["paused"] is True
    refused = run_gt("trigger", "fire", "deps", cwd=town)
    assert refused.returncode == 6 and "paused" in refused.stderr and "Traceback" not in refused.stderr
    assert gt_json("trigger", "resume", "deps", cwd=town)["paused"] is False

    old = gt_json("trigger", "show", "deps", cwd=town)["url"]
    rotated = gt_json("trigger", "rotate", "deps", cwd=town)["url"]
    assert rotated != old and rotated.rsplit("/", 1)[0] == old.rsplit("/", 1)[0]
    schedule = run_gt("trigger", "rotate", "nightly", cwd=town)
    assert schedule.returncode == 2 and "has no URL" in schedule.stderr


def test_fire_keeps_to_the_limits(town: Path, tmp_path: Path) -> None:
    set_config(town, "triggers.local", {"max_in_flight": 1, "max_body": "10B"})
    big = tmp_path / "big.txt"
    big.write_text("x" * 11)
    too_big = run_gt("trigger", "fire", "local", "--body", str(big), cwd=town)
    assert too_big.returncode == 2 and "at most 10" in too_big.stderr
    assert run_gt("trigger", "fire", "local", cwd=town).returncode == 0
    full = run_gt("trigger", "fire", "local", cwd=town)
    assert full.returncode == 6 and "1 requests in flight (its limit is 1)" in full.stderr
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe")
    assert run_gt("trigger", "fire", "deps", "--body", str(binary), cwd=town).returncode == 2


def test_unknown_triggers_are_clear_errors(town: Path) -> None:
    for args in (["show", "nope"], ["fire", "nope"], ["pause", "nope"], ["requests", "nope"]):
        result = run_gt("trigger", *args, cwd=town)
        assert result.returncode == 4, args
        assert "no trigger 'nope' in gastown.toml (triggers: deps, gh, local, nightly)" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_trigger_whose_rig_is_gone_is_reported(town: Path) -> None:
    set_config(town, "triggers.deps", {"rig": "gone"})
    shown = gt_json("trigger", "show", "deps", cwd=town)
    assert "rig 'gone' is not in gastown.toml" in shown["problems"]
    result = run_gt("trigger", "fire", "deps", cwd=town)
    assert result.returncode == 6 and "rig 'gone'" in result.stderr
    doctor = run_gt("doctor", "--json", cwd=town)
    assert doctor.returncode == 1
    [check] = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "trigger deps"]
    assert not check["ok"] and "gone" in check["detail"]
