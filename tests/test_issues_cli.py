"""The foundation end to end through the real `gt`: init, rig add, issues, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import gt_json, run_gt


def test_init_rig_add_issue_create_show_keeps_user_comment(tmp_path: Path, upstream: Path) -> None:
    town = tmp_path / "town"
    run_gt("init", str(town), check=True)
    config = town / "gastown.toml"
    config.write_text("# keep me: my own note about this town\n" + config.read_text())

    added = gt_json("rig", "add", "app", str(upstream), cwd=town)
    assert added["branch"] == "main" and added["prefix"] == "app"
    created = gt_json("issue", "create", "x", "--rig", "app", cwd=town)
    shown = gt_json("issue", "show", created["id"], cwd=town)

    assert shown["id"] == created["id"] and shown["title"] == "x" and shown["status"] == "open"
    assert shown["id"].startswith("app-") and len(shown["id"]) == len("app-") + 5
    text = config.read_text()
    assert "# keep me: my own note about this town" in text
    assert "\n[rigs.app]\n" in text
    assert (town / "app" / "hub.git" / "HEAD").is_file()


def test_rig_add_detects_a_non_main_default_branch(tmp_path: Path) -> None:
    from tests.helpers import make_upstream

    up = make_upstream(tmp_path / "up", branch="trunk")
    town = tmp_path / "town"
    run_gt("init", str(town), check=True)
    assert gt_json("rig", "add", "svc", str(up), cwd=town)["branch"] == "trunk"


def test_init_twice_leaves_the_config_alone(town: Path) -> None:
    (town / "gastown.toml").write_text("[town]\nname = 'mine'\n")
    result = gt_json("init", str(town))
    assert result["created"] is False
    assert (town / "gastown.toml").read_text() == "[town]\nname = 'mine'\n"


HOSTILE = [
    "'; rm -rf ~ #",
    '$(rm -rf /) `touch /tmp/pwned` "double" \\backslash',
    "line one\nline two\r\nline three\ttabbed",
    "emoji 🚀🔥 and CJK 漢字 and RTL שלום and combining é",
    "[bold red]not markup[/] %s {0} ${HOME}",
]


@pytest.mark.parametrize("text", HOSTILE, ids=["quotes", "subshell", "newlines", "unicode", "markup"])
def test_hostile_titles_and_bodies_round_trip_byte_for_byte(rig_town: Path, text: str) -> None:
    created = gt_json("issue", "create", text, "--body", text, cwd=rig_town)
    shown = gt_json("issue", "show", created["id"], cwd=rig_town)
    assert shown["title"] == text
    assert shown["body"] == text
    human = run_gt("issue", "show", created["id"], cwd=rig_town, check=True).stdout
    assert text.replace("\r\n", "\n") in human, "shown as stored; a body's CRLF shows as a newline"
    assert not Path("/tmp/pwned").exists()


def test_one_megabyte_body_from_stdin_round_trips(rig_town: Path) -> None:
    body = ("0123456789abcdef" * 65536)[:1_048_000] + "\n🚀 end $(x)\n"
    created = gt_json("issue", "create", "big", "--body", "-", cwd=rig_town, input=body)
    shown = gt_json("issue", "show", created["id"], cwd=rig_town)
    assert shown["body"] == body


def test_body_that_is_not_utf8_is_refused_clearly(rig_town: Path) -> None:
    result = run_gt("issue", "create", "bad", "--body", "-", cwd=rig_town, input=b"\xff\xfe bad")
    assert result.returncode == 2
    assert "not valid UTF-8" in result.stderr and "Traceback" not in result.stderr


def test_unknown_issue_is_a_clear_error(rig_town: Path) -> None:
    for args in (["issue", "show", "app-zzzzz"], ["issue", "close", "app-zzzzz"], ["issue", "reopen", "nonsense"]):
        result = run_gt(*args, cwd=rig_town)
        assert result.returncode == 4, result
        assert result.stderr.startswith("gt: ")
        assert "Traceback" not in result.stderr
    assert "no issue app-zzzzz" in run_gt("issue", "show", "app-zzzzz", cwd=rig_town).stderr


def test_unknown_rig_is_a_clear_error(rig_town: Path) -> None:
    for args in (["issue", "create", "t", "--rig", "nope"], ["issue", "list", "--rig", "nope"], ["rig", "remove", "nope"]):
        result = run_gt(*args, cwd=rig_town)
        assert result.returncode == 4, result
        assert "no rig named 'nope'" in result.stderr
        assert "Traceback" not in result.stderr


def test_no_town_is_a_clear_error(tmp_path: Path) -> None:
    result = run_gt("issue", "list", cwd=tmp_path)
    assert result.returncode == 3
    assert "no town found" in result.stderr and "gt init" in result.stderr
    result = run_gt("issue", "list", env={"GT_TOWN": str(tmp_path / "nowhere")}, cwd=tmp_path)
    assert "GT_TOWN points at" in result.stderr


def test_town_found_by_flag_env_and_walking_up(rig_town: Path, tmp_path: Path) -> None:
    sub = rig_town / "app"
    assert run_gt("issue", "list", cwd=sub).returncode == 0
    assert run_gt("issue", "list", "--town", str(rig_town), cwd=tmp_path).returncode == 0
    assert run_gt("--town", str(rig_town), "issue", "list", cwd=tmp_path).returncode == 0
    assert run_gt("issue", "list", env={"GT_TOWN": str(rig_town)}, cwd=tmp_path).returncode == 0


def test_close_reopen_and_list_filters(rig_town: Path) -> None:
    a = gt_json("issue", "create", "a", "--priority", "0", cwd=rig_town)["id"]
    b = gt_json("issue", "create", "b", "--priority", "3", cwd=rig_town)["id"]
    closed = gt_json("issue", "close", a, "--reason", "dup", cwd=rig_town)
    assert closed["status"] == "closed" and closed["close_reason"] == "dup"
    assert [i["id"] for i in gt_json("issue", "list", "--status", "open", cwd=rig_town)] == [b]
    assert gt_json("issue", "reopen", a, cwd=rig_town)["status"] == "open"
    assert [i["id"] for i in gt_json("issue", "list", cwd=rig_town)] == [a, b]
    bad = run_gt("issue", "create", "p", "--priority", "9", cwd=rig_town)
    assert bad.returncode == 2


def test_rig_remove_drops_config_and_moves_files_aside(rig_town: Path) -> None:
    out = run_gt("rig", "remove", "app", cwd=rig_town, check=True).stdout
    assert "\n[rigs.app]" not in (rig_town / "gastown.toml").read_text()
    assert not (rig_town / "app").exists()
    [moved] = (rig_town / ".gastown" / "removed").iterdir()
    assert (moved / "hub.git" / "HEAD").is_file() and str(moved) in out
    assert gt_json("rig", "list", cwd=rig_town) == []


def test_concurrent_writers_lose_and_duplicate_nothing(rig_town: Path, tmp_path: Path) -> None:
    """8 processes each create 50 issues at the same moment: 400 distinct ids, all stored."""
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from pathlib import Path
        from gastown.context import Context
        from gastown.town import Town
        from gastown.ledger import issues
        ctx = Context(Town(Path({str(rig_town)!r})))
        ctx.config
        while not Path({str(go)!r}).exists():
            time.sleep(0.005)
        ids = [issues.create(ctx.ledger, title=f"w{{sys.argv[1]}}-{{n}}", body="", rig="app", priority=2, prefixes=ctx.config.rig_prefixes()).id for n in range(50)]
        print(json.dumps(ids))
        """
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script, str(n)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in range(8)
    ]
    go.touch()
    ids: list[str] = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        ids += json.loads(out)
    assert len(ids) == 400 and len(set(ids)) == 400
    stored = gt_json("issue", "list", cwd=rig_town)
    assert sorted(i["id"] for i in stored) == sorted(ids)
    assert len({i["title"] for i in stored}) == 400
