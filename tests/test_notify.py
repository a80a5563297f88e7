"""Notifications: `[[notify]]` commands and webhook URLs hear escalations, blocks, holds,
merges and budgets from the event log, once each; a failing notifier is reported once
and never holds anything up. Webhooks are a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gastown.ledger.escalations import list_escalations, raise_escalation
from gastown.ledger.events import list_events, record_event
from gastown.roles.notifier import Notifier
from tests.helpers import gt_json, ledger_rows, retry_until, run_gt, set_config
from tests.refinery_support import open_ctx


class Hook:
    """A webhook receiver on 127.0.0.1 (port 0): records each POST, answers ``status``."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                hook.paths.append(self.path)
                if hook.status == 200:
                    hook.received.append(json.loads(body))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    yield receiver
    receiver.close()


def recorder(tmp_path: Path, name: str) -> list[str]:
    """A notifier command appending each event it gets (stdin) to ``<name>.jsonl``."""
    script = tmp_path / f"{name}.py"
    script.write_text("import sys\nopen(sys.argv[1], 'a').write(sys.stdin.read().replace('\\n', ' ') + '\\n')\n")
    return [sys.executable, str(script), str(tmp_path / f"{name}.jsonl")]


def recorded(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    path = tmp_path / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def notify(town: Path, *entries: dict[str, Any]) -> None:
    import tomlkit

    path = town / "gastown.toml"
    doc = tomlkit.parse(path.read_text())
    tables = tomlkit.aot()
    for entry in entries:
        table = tomlkit.table()
        for key, value in entry.items():
            table[key] = value
        tables.append(table)
    doc["notify"] = tables
    path.write_text(tomlkit.dumps(doc))


def test_command_and_url_each_get_an_escalation_once(rig_town: Path, tmp_path: Path, hook: Hook) -> None:
    notify(rig_town, {"on": ["escalation"], "command": recorder(tmp_path, "cmd")},
           {"name": "team chat", "url": hook.url(), "on": ["escalation", "merged"]})
    ctx = open_ctx(rig_town)
    Notifier(ctx).run_once()  # cursors start here: history is not replayed
    issue = gt_json("issue", "create", "needs a person", cwd=rig_town)["id"]
    esc = raise_escalation(ctx.ledger, "the API key expired", severity="high", source="app/ace", issue=issue)
    with ctx.ledger.write() as conn:
        record_event(conn, "merged", "mr-abcdef merged into main", now=ctx.now(), rig="app", issue=issue,
                     data={"mr": "mr-abcdef"})

    assert Notifier(ctx).run_once() == 3
    [by_command] = recorded(tmp_path, "cmd")
    assert by_command["event"] == "escalation" and by_command["issue"] == issue
    assert by_command["data"]["escalation"] == esc.id and "the API key expired" in by_command["text"]
    assert [m["event"] for m in hook.received] == ["escalation", "merged"]
    assert hook.received[0]["content"] == hook.received[0]["text"]
    # Once: a second cycle, and a new Notifier (a restarted Mayor), send nothing again.
    assert Notifier(ctx).run_once() == 0 and Notifier(ctx).run_once() == 0
    assert len(recorded(tmp_path, "cmd")) == 1 and len(hook.received) == 2


def test_a_hanging_notifier_is_timed_out_reported_once_and_delays_no_other(rig_town: Path, tmp_path: Path,
                                                                          hook: Hook) -> None:
    notify(rig_town, {"name": "sleepy", "command": ["sleep", "600"], "timeout": "1s"},
           {"command": recorder(tmp_path, "fast"), "on": ["escalation", "blocked"]})
    ctx = open_ctx(rig_town)
    notifier = Notifier(ctx)
    notifier.run_once()
    issue = gt_json("issue", "create", "blocked twice", cwd=rig_town)["id"]
    raise_escalation(ctx.ledger, "first", source="app/ace", issue=issue, block_issue=True)

    started = time.monotonic()
    notifier.run_once()
    assert time.monotonic() - started < 30, "a hanging notifier held the cycle up"
    assert [e["event"] for e in recorded(tmp_path, "fast")] == ["blocked", "escalation"]
    reports = [e for e in list_events(ctx.ledger.connection(), kinds=("notify",))]
    assert len(reports) == 1 and "timed out after 1s" in reports[0].message
    [about] = [e for e in list_escalations(ctx.ledger.connection(), open_only=True) if e.source == "notifier"]
    assert "sleepy" in about.message

    raise_escalation(ctx.ledger, "second", source="human", issue=issue)
    notifier.run_once()
    assert len(list_events(ctx.ledger.connection(), kinds=("notify",))) == 1, "reported once, not per event"
    assert [e["data"].get("escalation") is not None for e in recorded(tmp_path, "fast")][-1]


def test_a_failing_webhook_is_retried_reported_without_its_token_and_recovers(rig_town: Path, hook: Hook) -> None:
    secret_url = hook.url("/services/T0/B0/SECRET-TOKEN?key=SECRET-KEY")
    notify(rig_town, {"url": secret_url, "on": ["hold"]})
    ctx = open_ctx(rig_town)
    notifier = Notifier(ctx, sleep=lambda _: None)
    notifier.run_once()
    hook.status = 500
    with ctx.ledger.write() as conn:
        record_event(conn, "hold", "claude is rate limited until 12:00", now=ctx.now(), data={"runtime": "claude"})
    notifier.run_once()
    assert len(hook.paths) == 3, "a 5xx is tried three times"
    [failing] = [e for e in list_escalations(ctx.ledger.connection(), open_only=True) if e.source == "notifier"]
    said = " ".join([failing.message, *(e.message for e in list_events(ctx.ledger.connection()))])
    assert "HTTP 500" in said and "127.0.0.1" in said
    assert "SECRET" not in said and "SECRET" not in json.dumps([e.data for e in list_events(ctx.ledger.connection())])

    hook.status = 200
    with ctx.ledger.write() as conn:
        record_event(conn, "hold", "refinery of rig app on hold", now=ctx.now(), rig="app")
    notifier.run_once()
    assert [m["message"] for m in hook.received] == ["refinery of rig app on hold"]
    assert [e for e in list_escalations(ctx.ledger.connection(), open_only=True) if e.source == "notifier"] == []
    assert "delivers again" in list_events(ctx.ledger.connection(), kinds=("notify",))[-1].message


def test_a_404_is_not_retried(rig_town: Path, hook: Hook) -> None:
    notify(rig_town, {"url": hook.url(), "on": ["merged"]})
    ctx = open_ctx(rig_town)
    notifier = Notifier(ctx, sleep=lambda _: None)
    notifier.run_once()
    hook.status = 404
    with ctx.ledger.write() as conn:
        record_event(conn, "merged", "mr-1 merged", now=ctx.now())
    notifier.run_once()
    assert len(hook.paths) == 1


@pytest.mark.tmux
@pytest.mark.slow
def test_the_mayor_notifies_an_agents_escalation_while_a_hanging_notifier_waits(
    rig_town: Path, tmp_path: Path, hook: Hook, tmux_socket: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_config(rig_town, "rigs.app", {"agent": "demo"})
    set_config(rig_town, "witness", {"patrol_interval": "0.3s"})
    notify(rig_town, {"name": "stuck pager", "command": ["sleep", "600"], "timeout": "2s"},
           {"command": recorder(tmp_path, "pager"), "on": ["escalation"]},
           {"url": hook.url(), "on": ["escalation", "blocked"]})
    monkeypatch.setenv("GT_DEMO_THINK", "0.1")
    try:
        run_gt("up", cwd=rig_town, check=True)
        issue = gt_json("issue", "create", "cannot go on", "--body", '~~~demo\nblocked "the spec is missing"\n~~~',
                        cwd=rig_town)["id"]
        gt_json("sling", issue, cwd=rig_town)
        retry_until(lambda: recorded(tmp_path, "pager"), timeout=90, what="the command notifier")
        retry_until(lambda: {"escalation", "blocked"} <= {m["event"] for m in hook.received}, timeout=30,
                    what="the webhook")
        [sent] = recorded(tmp_path, "pager")
        assert sent["issue"] == issue and "the spec is missing" in sent["message"]
        retry_until(lambda: ledger_rows(rig_town, "SELECT * FROM events WHERE kind = 'notify'"), timeout=30,
                    what="the hanging notifier to be reported")
        # The patrols went on meanwhile.
        beat = ledger_rows(rig_town, "SELECT at FROM heartbeats WHERE loop = 'witness:app'")[0]["at"]
        retry_until(lambda: ledger_rows(rig_town, "SELECT at FROM heartbeats WHERE loop = 'witness:app'")[0]["at"] > beat,
                    timeout=10, what="the Witness to keep patrolling")
    finally:
        run_gt("down", "--timeout", "1", cwd=rig_town)
