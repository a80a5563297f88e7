"""Mail: addresses, durable messages through the real `gt`, escalations mailed to the human,
and the notice typed into a live agent only while it is idle (real tmux, real demo agent)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from gastown.errors import InvalidInput
from gastown.ledger.escalations import raise_escalation
from gastown.ledger.mail import Mail
from gastown.ledger.mail import announcement, own_address, parse_address
from gastown.roles.announcer import announce_pending
from tests.helpers import gt_json, ledger_rows, retry_until, run_gt, set_config
from tests.refinery_support import open_ctx

SUBJECT = "re: \"quotes\" 'single' $(touch pwned) `id` ${HOME} [bold]x[/bold] 漢字 🚀\ttab\nsecond line"
BODY = "".join(f"line {n}: $(rm -rf ~) `id` 'q' \"dq\" ünïcödé 🚀 \\n {{{{x}}}}\r\n" for n in range(2000)) + "no newline at end"
BUSY_TASK = "~~~demo\nthink 4\n~~~\n~~~demo\nnodone\n~~~\n"


# -- pure -------------------------------------------------------------------------------

ADDRESSES = [
    ("mayor", "mayor", "mayor"),
    ("mayor with slash", "mayor/", "mayor"),
    ("human", "human", "human"),
    ("agent", "app/rivet", "app/rivet"),
    ("agent, spaces around", "  app/rivet ", "app/rivet"),
]


@pytest.mark.parametrize(("text", "expected"), [r[1:] for r in ADDRESSES], ids=[r[0] for r in ADDRESSES])
def test_parse_address(text: str, expected: str) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "foo", "Mayor", "app/", "a/b/c", "app/Rivet", "app rivet", "/rivet", "app/$(x)"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(InvalidInput, match="is not a mail address"):
        parse_address(text)


SENDERS = [
    ("a person", {}, "human"),
    ("an agent", {"GT_ROLE": "polecat", "GT_RIG": "app", "GT_POLECAT": "rivet"}, "app/rivet"),
    ("agent env without a role", {"GT_RIG": "app", "GT_POLECAT": "rivet"}, "human"),
    ("role without a polecat", {"GT_ROLE": "polecat", "GT_RIG": "app"}, "human"),
]


@pytest.mark.parametrize(("environ", "expected"), [r[1:] for r in SENDERS], ids=[r[0] for r in SENDERS])
def test_own_address(environ: dict[str, str], expected: str) -> None:
    assert own_address(environ) == expected


def test_announcement_is_one_short_line() -> None:
    mail = Mail("mail-abc123", "app/rivet", "app/nut", SUBJECT + "x" * 500, BODY, 0.0, None, None)
    line = announcement(mail)
    assert "\n" not in line and "\r" not in line and len(line) < 200
    assert line.startswith('gastown mail from app/rivet: "re: "quotes" \'single\' $(touch pwned)')
    assert line.endswith("…\" — read it with: gt mail read mail-abc123")


# -- through the real gt ------------------------------------------------------------------


def test_hostile_subject_and_body_round_trip_byte_for_byte(rig_town: Path) -> None:
    sent = run_gt("mail", "send", "mayor", "-s", SUBJECT, "-m", "-", "--json", cwd=rig_town, input=BODY, check=True)
    mail = json.loads(sent.stdout)
    assert mail["id"].startswith("mail-") and mail["from"] == "human" and mail["to"] == "mayor"
    assert mail["subject"] == SUBJECT and mail["body"] == BODY and mail["read"] is False
    assert not (rig_town / "pwned").exists()

    [listed] = gt_json("mail", "inbox", "--to", "mayor", cwd=rig_town)
    assert listed["subject"] == SUBJECT and listed["body"] == BODY
    assert gt_json("mail", "inbox", cwd=rig_town) == []  # a person's own inbox is human's
    read = gt_json("mail", "read", mail["id"], cwd=rig_town)
    assert read["subject"] == SUBJECT and read["body"] == BODY and read["read"] is True
    assert gt_json("mail", "inbox", "--to", "mayor", cwd=rig_town) == []  # read mail leaves the default view
    [kept] = gt_json("mail", "inbox", "--to", "mayor", "--all", cwd=rig_town)
    assert kept["read_at"] == read["read_at"] and kept["body"] == BODY
    plain = run_gt("mail", "read", mail["id"], cwd=rig_town, check=True).stdout
    assert plain.endswith(BODY.replace("\r\n", "\n") + "\n") and f"subject: {SUBJECT}\n" in plain  # CRLF shows as LF


def test_agents_send_as_themselves_and_read_their_own_inbox(rig_town: Path) -> None:
    ctx = open_ctx(rig_town)
    with ctx.ledger.write() as conn:
        conn.execute("INSERT INTO polecats (rig, name, created_at) VALUES ('app', 'rivet', 0), ('app', 'nut', 0)")
    rivet = {"GT_ROLE": "polecat", "GT_RIG": "app", "GT_POLECAT": "rivet"}
    nut = {"GT_ROLE": "polecat", "GT_RIG": "app", "GT_POLECAT": "nut"}
    run_gt("mail", "send", "app/nut", "-s", "take the parser", "-m", "I have the lexer", cwd=rig_town, env=rivet, check=True)
    run_gt("mail", "send", "human", "-s", "for you", cwd=rig_town, env=rivet, check=True)
    [to_nut] = json.loads(run_gt("mail", "inbox", "--json", cwd=rig_town, env=nut, check=True).stdout)
    assert (to_nut["from"], to_nut["to"], to_nut["body"]) == ("app/rivet", "app/nut", "I have the lexer")
    assert json.loads(run_gt("mail", "inbox", "--json", cwd=rig_town, env=rivet, check=True).stdout) == []
    [to_human] = gt_json("mail", "inbox", cwd=rig_town)
    assert to_human["subject"] == "for you" and to_human["body"] == ""
    assert "no unread mail for app/rivet" in run_gt("mail", "inbox", cwd=rig_town, env=rivet, check=True).stdout


@pytest.mark.parametrize(
    ("to", "code", "sentence"),
    [
        ("foo bar", 2, "'foo bar' is not a mail address"),
        ("zed/rivet", 4, "cannot mail zed/rivet: no rig named 'zed'"),
        ("app/nobody", 4, "cannot mail app/nobody: rig app has no polecat 'nobody'"),
        ("a/b/c", 2, "'a/b/c' is not a mail address"),
    ],
)
def test_bad_addresses_get_one_clear_error(rig_town: Path, to: str, code: int, sentence: str) -> None:
    result = run_gt("mail", "send", to, "-s", "hello", cwd=rig_town)
    assert result.returncode == code and result.stderr.startswith(f"gt: {sentence}")
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 2
    assert ledger_rows(rig_town, "SELECT * FROM mail") == []


def test_empty_subject_and_unknown_mail_are_refused(rig_town: Path) -> None:
    empty = run_gt("mail", "send", "human", "-s", " \n ", cwd=rig_town)
    assert empty.returncode == 2 and "the mail subject is empty" in empty.stderr
    unknown = run_gt("mail", "read", "mail-zzzzzz", cwd=rig_town)
    assert unknown.returncode == 4 and "no mail mail-zzzzzz" in unknown.stderr


def test_escalations_mail_the_human(rig_town: Path) -> None:
    hostile = "can't reach \"db\" $(whoami) 🚀\nsee logs"
    esc = gt_json("escalate", hostile, "--severity", "critical", cwd=rig_town)
    issue = gt_json("issue", "create", "flaky deploy", cwd=rig_town)["id"]
    blocked = raise_escalation(open_ctx(rig_town).ledger, "gave up after 3 restarts", severity="high", source="witness",
                               issue=issue, block_issue=True)
    inbox = gt_json("mail", "inbox", cwd=rig_town)
    by_subject = {m["subject"]: m for m in inbox}
    person = by_subject[f"[critical] escalation {esc['id']}"]
    assert person["to"] == "human" and f"\n\n{hostile}\n\n" in person["body"]
    assert f"gt escalate ack {esc['id']}" in person["body"]
    witness = by_subject[f"[high] escalation {blocked.id}"]
    assert witness["from"] == "witness" and f"Issue: {issue}\n" in witness["body"]
    assert "gave up after 3 restarts" in witness["body"]


# -- announcing to live agents -----------------------------------------------------------


def record_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.tmux
def test_mail_to_a_busy_agent_is_announced_once_after_it_goes_idle(
    rig_town: Path, tmux_socket: str, tmp_path: Path
) -> None:
    record = tmp_path / "received.jsonl"
    env = {"GT_DEMO_RECORD": str(record), "GT_DEMO_THINK": "0.2", "GT_DEMO_NUDGE_THINK": "0.2"}
    issue = gt_json("issue", "create", "stay busy", "--body", BUSY_TASK, cwd=rig_town)["id"]
    slung = json.loads(run_gt("sling", issue, "--agent", "demo", "--json", cwd=rig_town, env=env, check=True).stdout)
    [task] = retry_until(lambda: record_of(record), timeout=20, what="the task to reach the agent")
    assert task["kind"] == "task"
    ctx = open_ctx(rig_town)
    retry_until(lambda: "demo: thinking" in ctx.tmux.capture(slung["pane"]), timeout=5, what="the busy line")

    mail = gt_json("mail", "send", f"app/{slung['polecat']}", "-s", "rebase on main", "-m", "main moved", cwd=rig_town)
    calls: list[tuple[float, bool, int]] = []

    def announce() -> int:
        before = time.time()
        busy = "demo: thinking" in ctx.tmux.capture(slung["pane"])
        announced = announce_pending(ctx, "app")
        # Busy for the whole call: the agent may go idle between our look and the Witness's.
        # A call that announced is not counted: the agent then thinks about the notice itself
        # (busy again), and whether it was idle when typed into is read from its own record below.
        busy = busy and not announced and "demo: thinking" in ctx.tmux.capture(slung["pane"])
        calls.append((before, busy, announced))
        return announced

    retry_until(announce, timeout=30, interval=0.1, what="the announcement")
    busy_calls = [c for c in calls if c[1]]
    assert busy_calls, "the agent was seen busy, and skipped, at least once"
    assert all(time.time() - before < 30 for before, _, _ in calls)
    last_busy_seen = max(before for before, _, _ in busy_calls)

    expected = announcement(Mail(mail["id"], "human", mail["to"], "rebase on main", "", 0, None, None))
    got = retry_until(lambda: [r for r in record_of(record) if r["kind"] == "message"], timeout=10, what="the notice")
    assert [r["text"] for r in got] == [expected]
    assert got[0]["at"] > last_busy_seen and got[0]["at"] >= task["at"] + 4.0, "announced while the agent was busy"

    assert [announce_pending(ctx, "app") for _ in range(3)] == [0, 0, 0]  # once only
    retry_until(lambda: "demo: got message" in ctx.tmux.capture(slung["pane"]), timeout=10, what="the agent to take it")
    assert [r["text"] for r in record_of(record) if r["kind"] == "message"] == [expected]
    [row] = ledger_rows(rig_town, "SELECT announced_at, read_at FROM mail WHERE id = ?", mail["id"])
    assert row["announced_at"] is not None and row["read_at"] is None
    notices = ledger_rows(rig_town, "SELECT spawn FROM events WHERE kind = 'mail' AND message LIKE 'announced %'")
    assert notices == [{"spawn": slung["spawn"]}]


@pytest.mark.tmux
def test_mail_already_read_is_not_announced(rig_town: Path, tmux_socket: str, tmp_path: Path) -> None:
    record = tmp_path / "received.jsonl"
    env = {"GT_DEMO_RECORD": str(record), "GT_DEMO_THINK": "0.2"}
    issue = gt_json("issue", "create", "idle", "--body", "~~~demo\nnodone\n~~~\n", cwd=rig_town)["id"]
    slung = json.loads(run_gt("sling", issue, "--agent", "demo", "--json", cwd=rig_town, env=env, check=True).stdout)
    ctx = open_ctx(rig_town)
    retry_until(lambda: ctx.tmux.capture(slung["pane"]).rstrip().endswith("demo>"), timeout=20, what="an idle agent")
    mail = gt_json("mail", "send", f"app/{slung['polecat']}", "-s", "old news", cwd=rig_town)
    run_gt("mail", "read", mail["id"], cwd=rig_town, check=True)
    assert announce_pending(ctx, "app") == 0
    second = gt_json("mail", "send", f"app/{slung['polecat']}", "-s", "fresh news", cwd=rig_town)
    assert retry_until(lambda: announce_pending(ctx, "app"), timeout=10) == 1
    got = retry_until(lambda: [r["text"] for r in record_of(record) if r["kind"] == "message"], timeout=10)
    assert got == [f'gastown mail from human: "fresh news" — read it with: gt mail read {second["id"]}']


@pytest.mark.tmux
@pytest.mark.slow
def test_mail_survives_the_agents_death_and_the_witness_announces_it_to_the_next_one(
    rig_town: Path, tmux_socket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "received.jsonl"
    monkeypatch.setenv("GT_DEMO_RECORD", str(record))
    monkeypatch.setenv("GT_DEMO_THINK", "0.2")
    set_config(rig_town, "witness", {"patrol_interval": "0.3s", "idle_after": "60s", "stall_after": "60s"})
    set_config(rig_town, "rigs.app", {"agent": "demo"})
    issue = gt_json("issue", "create", "long job", "--body", "~~~demo\nnodone\n~~~\n", cwd=rig_town)["id"]
    slung = gt_json("sling", issue, cwd=rig_town)
    retry_until(lambda: record_of(record), timeout=20, what="the first task")
    pid = subprocess.run(
        ["tmux", "-L", tmux_socket, "display", "-p", "-t", slung["pane"], "#{pane_pid}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    subprocess.run(["kill", "-9", pid], check=True)
    mail = gt_json("mail", "send", f"app/{slung['polecat']}", "-s", "after the crash", "-m", "still here?", cwd=rig_town)
    try:
        run_gt("up", cwd=rig_town, check=True)
        retry_until(
            lambda: [r for r in record_of(record) if r["kind"] == "message"], timeout=60, what="the notice after restart"
        )
    finally:
        run_gt("down", "--timeout", "1", cwd=rig_town)
    [notice] = [r["text"] for r in record_of(record) if r["kind"] == "message"]
    assert notice.endswith(f"gt mail read {mail['id']}")
    spawns = ledger_rows(rig_town, "SELECT id FROM spawns WHERE issue = ? ORDER BY started_at", issue)
    assert len(spawns) == 2 and spawns[0]["id"] == slung["spawn"]
    events = ledger_rows(rig_town, "SELECT spawn FROM events WHERE kind = 'mail' AND message LIKE 'announced %'")
    assert events == [{"spawn": spawns[1]["id"]}]
    [kept] = gt_json("mail", "inbox", "--to", f"app/{slung['polecat']}", cwd=rig_town)
    assert kept["body"] == "still here?"
