"""Trigger rows in the ledger and the desk's bookkeeping: history pruning, delivery ids,
request states, requests whose issue went away, and how gt status renders them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gastown.context import Context
from gastown.errors import Conflict
from gastown.ledger import triggers as rows
from gastown.ledger.db import create_ledger
from gastown.ledger.issues import close
from gastown.roles.intake import Captured, capture
from gastown.roles.trigger_desk import TriggerDesk
from gastown.states import RequestState
from gastown.town import Town
from gastown.triggers.template import RequestFacts
from tests.helpers import ledger_rows
from tests.serve_support import add_triggers


def test_history_keeps_the_newest_100_requests_and_every_one_in_flight(tmp_path: Path) -> None:
    ledger = create_ledger(tmp_path / "ledger.db")
    with ledger.write() as conn:
        for n in range(130):
            request = rows.insert_request(conn, trigger="deps", source="webhook", now=1000.0 + n, issue=f"app-{n:05d}")
            rows.move_request(conn, request.id, RequestState.IN_PROGRESS, now=2000.0)
            rows.move_request(conn, request.id, RequestState.SUCCESS, now=2000.0, outcome="merged")
        waiting = [rows.insert_request(conn, trigger="deps", source="webhook", now=10.0 + n, issue=None).id
                   for n in range(5)]  # older than all of them, but still in flight
        rows.insert_request(conn, trigger="other", source="webhook", now=1.0, issue=None)
        assert rows.prune_requests(conn, "deps") == 30
        kept = rows.list_requests(conn, "deps", limit=1000)
        assert len(kept) == 105 and {r.id for r in kept if r.in_flight} == set(waiting)
        assert min(r.received_at for r in kept if not r.in_flight) == 1000.0 + 30
        assert rows.prune_requests(conn, "deps") == 0
        assert rows.count_in_flight(conn, "deps") == 5 and rows.in_flight_counts(conn) == {"deps": 5, "other": 1}
        assert len(rows.list_requests(conn, "other")) == 1


def test_delivery_ids_are_per_trigger_and_kept_thirty_days(tmp_path: Path) -> None:
    ledger = create_ledger(tmp_path / "ledger.db")
    with ledger.write() as conn:
        rows.record_delivery(conn, "gh", "abc", request="rq-1", issue="app-1", now=0.0)
        rows.record_delivery(conn, "gh", "abc", request="rq-2", issue="app-2", now=5.0)  # the first answer stays
        assert rows.find_delivery(conn, "gh", "abc") == ("rq-1", "app-1")
        assert rows.find_delivery(conn, "deps", "abc") is None
        assert rows.prune_deliveries(conn, now=29 * 86400.0) == 0
        assert rows.prune_deliveries(conn, now=31 * 86400.0) == 1
        assert rows.find_delivery(conn, "gh", "abc") is None


def test_request_states_move_only_forward(tmp_path: Path) -> None:
    ledger = create_ledger(tmp_path / "ledger.db")
    with ledger.write() as conn:
        request = rows.insert_request(conn, trigger="deps", source="fire", now=1.0, issue=None)
        with pytest.raises(Conflict, match="captured; it cannot become success"):
            rows.move_request(conn, request.id, RequestState.SUCCESS, now=2.0)
        started = rows.move_request(conn, request.id, RequestState.IN_PROGRESS, now=2.0)
        assert started.started_at == 2.0
        done = rows.move_request(conn, request.id, RequestState.FAILED, now=3.0, outcome="blocked: x")
        assert (done.finished_at, done.outcome) == (3.0, "blocked: x")
        with pytest.raises(Conflict):
            rows.move_request(conn, request.id, RequestState.IN_PROGRESS, now=4.0)


def test_a_request_whose_issue_was_closed_before_it_started_fails(rig_town: Path) -> None:
    add_triggers(rig_town)
    ctx = Context(Town(rig_town))
    first = capture(ctx, "local", RequestFacts(ctx.now(), body="one"), source="webhook")
    second = capture(ctx, "local", RequestFacts(ctx.now(), body="two"), source="webhook")
    assert isinstance(first, Captured) and isinstance(second, Captured) and first.issue is not None
    close(ctx.ledger, first.issue, reason="not wanted")
    report = TriggerDesk(ctx).step()
    assert report.settled == [first.request] and report.queued == [second.request]
    states = {r["id"]: (r["state"], r["outcome"]) for r in ledger_rows(rig_town, "SELECT * FROM trigger_requests")}
    assert states[first.request] == ("failed", "its issue was closed before it started")
    assert states[second.request] == ("in_progress", None)


def test_status_renders_the_server_triggers_and_requests_escaped() -> None:
    from rich.console import Console

    from gastown.ledger.triggers import Request
    from gastown.roles.serving import Health
    from gastown.roles.trigger_ops import TriggerView
    from gastown.views import render
    from gastown.views import text as page
    from gastown.views.status import MayorStatus, ServerStatus, TownStatus

    at = 1_800_000_000.0
    request = Request(
        id="rq-abcdefgh", trigger="gh", state=RequestState.FAILED, source="webhook", issue="app-k3x9q", mr=None,
        outcome="blocked: \x1b[2J[bold]evil[/]\u202e", method="POST", path="/hooks/gh/…", query="", headers={},
        body="{}", source_ip="127.0.0.1", delivery=None, scheduled_for=None, received_at=at - 90, started_at=None,
        finished_at=at - 10,
    )
    view = TriggerView(
        name="gh", kind="webhook", rig="app", agent=None, url="http://127.0.0.1:8470/hooks/gh/tok", paused=True,
        in_flight=3, max_in_flight=20, auth="github", secret_env="GH_SECRET", max_body=262144, priority=2,
        filter=None, schedule=None, timezone=None, next_run=None, last_slot=None, last_request=request,
    )
    status = TownStatus(
        root="/town", name=None, max_polecats=4, at=at, mayor=MayorStatus(42, []), rigs=[], agents=[], queued=[],
        merge_queues=[], holds=[], escalations=[], issues={}, blocked=[],
        server=ServerStatus(True, "http://127.0.0.1:8470", 4242, Health(True, 200, "healthy")),
        triggers=[view], requests=[request],
    )
    out = io.StringIO()
    console = Console(file=out, width=160, color_system=None)
    console.print(render.feed_header(status))
    text = "\n".join(page.render_status(status, width=160)) + "\n" + out.getvalue()
    assert "Server: http://127.0.0.1:8470 healthy (pid 4242)" in text
    assert "gh" in text and "paused" in text and "3/20" in text and "rq-abcdefgh failed 1m ago" in text
    assert "\\x1b[2J[bold]evil[/]\\u202e" in text and "\x1b[2J" not in text
    assert "server up" in text and "3 requests in flight" in text
    down = status._replace(server=ServerStatus(True, "http://127.0.0.1:8470", None, None))
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(render.feed_header(down))
    assert "Server: not running" in "\n".join(page.render_status(down)) and "server DOWN" in out.getvalue()
