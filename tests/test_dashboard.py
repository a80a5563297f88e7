"""The dashboard over real HTTP on 127.0.0.1: headers, the loopback and token rules, CSRF,
hostile text, the JSON API against the CLI, the live stream and its one reader, and
its end when the server stops. The browser tests are in test_dashboard_browser.py."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gastown.config.schema import ServerConfig
from gastown.context import Context
from gastown.errors import ConfigError
from gastown.ledger import issues
from gastown.ledger.escalations import list_escalations, raise_escalation
from gastown.ledger.events import record_event
from gastown.ledger.mrs import record_mr
from gastown.server.dashboard import security
from gastown.server.dashboard.app import create_dashboard_app
from gastown.server.dashboard.settings import dashboard_url, server_token
from gastown.server.dashboard.text import LogReader, tail, visible
from gastown.town import Town
from tests.dashboard_support import EventStream, csrf_of, served
from tests.helpers import gt_json, retry_until, run_gt, set_config

HOSTILE_TITLE = "<img src=x onerror=alert(1)>"
SCRIPT = "</script><script>alert('x')</script>"
BIDI = "invoice\u202egnp.exe"


def ctx_of(town: Path) -> Context:
    return Context(Town(town))


def new_issue(town: Path, title: str, body: str = "") -> str:
    ctx = ctx_of(town)
    return issues.create(ctx.ledger, title=title, body=body, rig="app", priority=2,
                         prefixes=ctx.config.rig_prefixes()).id


def add_event(town: Path, message: str, **where: Any) -> int:
    ctx = ctx_of(town)
    with ctx.ledger.write() as conn:
        return record_event(conn, "mayor", message, now=ctx.now(), **where)


@pytest.fixture
def client() -> Any:
    with httpx.Client(timeout=30, follow_redirects=False) as c:
        yield c


# -- the rules every answer keeps -------------------------------------------------------------


def test_every_answer_carries_a_strict_csp_and_the_other_security_headers(rig_town: Path, client: httpx.Client) -> None:
    with served(rig_town) as (url, _):
        answers = [client.get(url + path) for path in
                   ("/", "/mq", "/convoys", "/events", "/triggers", "/api/status", "/static/dashboard.css",
                    "/agents/app/nobody", "/no/such/page")]
        answers.append(client.post(url + "/sling", data={"issue": "app-00000"}))
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 200, 200, 200, 404, 404, 403]
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"
    page = answers[0].text
    assert "<script>" not in page and " style=" not in page and " on" + "click=" not in page
    assert '<script src="/static/dashboard.js" defer></script>' in page


def test_without_a_token_only_loopback_is_served(rig_town: Path, client: httpx.Client) -> None:
    with pytest.raises(ConfigError, match="without a token"):
        create_dashboard_app(rig_town, host="0.0.0.0")
    create_dashboard_app(rig_town, host="0.0.0.0", token="s3cret-token")  # a token makes it fine
    with served(rig_town) as (url, _):
        assert client.get(url + "/", headers={"Host": "localhost"}).status_code == 200
        rebinding = client.get(url + "/", headers={"Host": "attacker.example:8470"})
        assert rebinding.status_code == 403 and "DNS rebinding" in rebinding.text
    guard = security.Guard(lambda *a: None, security.Keys())  # type: ignore[arg-type]
    outside = {"type": "http", "path": "/", "server": ("192.168.1.20", 8470), "headers": [(b"host", b"192.168.1.20")]}
    refused = guard.refusal(outside)
    assert refused is not None and refused[0] == 403 and "loopback" in refused[1]
    assert guard.refusal({**outside, "server": ("127.0.0.1", 8470), "headers": [(b"host", b"127.0.0.1:8470")]}) is None


def test_with_a_token_every_request_needs_it_and_the_login_sets_a_strict_cookie(rig_town: Path) -> None:
    token = "t0ken-" + "x" * 40
    with served(rig_town, token=token) as (url, _), httpx.Client(base_url=url, timeout=30) as c:
        assert c.get("/").status_code == 303 and c.get("/").headers["location"] == "/login?next=%2F"
        assert c.get("/api/status").status_code == 401 and c.get("/api/status").json()["error"]
        assert c.get("/stream").status_code == 401
        assert c.get("/static/dashboard.css").status_code == 200  # the login page needs it
        assert c.get("/api/status", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert c.get("/api/status", headers={"Authorization": "Bearer wrong"}).status_code == 401

        form = c.get("/login?next=/mq")
        assert form.status_code == 200
        wrong = c.post("/login", data={"csrf": csrf_of(form.text), "token": "guess", "next": "/mq"})
        assert wrong.status_code == 401 and "not right" in wrong.text
        assert c.post("/login", data={"token": token, "next": "/mq"}).status_code == 403, "login needs the CSRF token too"
        good = c.post("/login", data={"csrf": csrf_of(form.text), "token": token, "next": "/mq"})
        assert good.status_code == 303 and good.headers["location"] == "/mq"
        cookie = next(h for h in good.headers.get_list("set-cookie") if h.startswith(security.SESSION_COOKIE))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and token not in cookie
        assert c.get("/mq").status_code == 200 and c.get("/api/status").status_code == 200

        forged = c.cookies.get(security.SESSION_COOKIE).split(".")[0] + ".AAAA"  # type: ignore[union-attr]
        with httpx.Client(base_url=url, timeout=30, cookies={security.SESSION_COOKIE: forged}) as other:
            assert other.get("/").status_code == 303
        c.post("/logout", data={"csrf": csrf_of(c.get("/mq").text)})
        assert c.get("/").status_code == 303


def test_the_token_comes_from_the_variable_token_env_names() -> None:
    assert server_token(ServerConfig(), {}) is None
    assert server_token(ServerConfig(token_env="GT_TOK"), {"GT_TOK": "abc"}) == "abc"
    with pytest.raises(ConfigError, match="GT_TOK"):
        server_token(ServerConfig(token_env="GT_TOK"), {"GT_TOK": " "})
    assert dashboard_url(ServerConfig(host="0.0.0.0", port=9999)) == "http://127.0.0.1:9999/"


# -- CSRF and actions ----------------------------------------------------------------------------


def test_a_post_without_the_viewers_csrf_token_is_refused_and_changes_nothing(rig_town: Path, client: httpx.Client) -> None:
    esc = raise_escalation(ctx_of(rig_town).ledger, "disk full on build box", source="test")
    with served(rig_town) as (url, _):
        page = client.get(url + "/")
        token = csrf_of(page.text)
        ack = f"{url}/escalations/{esc.id}/ack"
        with httpx.Client(timeout=30) as stranger:  # no cookie of this dashboard
            refused = [stranger.post(ack, data={}), stranger.post(ack, data={"csrf": token})]
        refused += [
            client.post(ack, data={}),  # the cookie, no token
            client.post(ack, data={"csrf": token + "x"}),  # a wrong token
            client.post(ack, data={"csrf": token}, headers={"Origin": "https://evil.example"}),
            client.post(ack, json={"csrf": token}),  # not a form
        ]
        assert [r.status_code for r in refused] == [403] * 6
        assert "did not come from this dashboard" in refused[0].text
        assert list_escalations(ctx_of(rig_town).ledger.connection(), open_only=True)[0].id == esc.id

        done = client.post(ack, data={"csrf": token, "next": "/"})
        assert done.status_code == 303 and done.headers["location"] == "/"
        assert list_escalations(ctx_of(rig_town).ledger.connection(), open_only=True) == []
        notice = client.get(url + "/")
        assert f"acknowledged {esc.id}" in notice.text, "the redirect's page says what happened"


def test_reject_asks_first_and_retry_requeues(rig_town: Path, client: httpx.Client) -> None:
    issue = new_issue(rig_town, "make it faster")
    ctx = ctx_of(rig_town)
    with ctx.ledger.write() as conn:
        mr, _ = record_mr(conn, rig="app", issue=issue, polecat="ace", spawn=None, branch="polecat/ace/x",
                          commit_sha="a" * 40, target="main", priority=2, fix_cycle=0, now=ctx.now())
    with served(rig_town) as (url, _):
        page = client.get(url + "/mq")
        assert mr.id in page.text and "Reject…" in page.text
        form = {"csrf": csrf_of(page.text), "next": "/mq"}
        asked = client.post(f"{url}/mq/{mr.id}/reject", data=form)
        assert asked.status_code == 200 and f"Reject {mr.id}?" in asked.text
        assert gt_json("mq", "list", cwd=rig_town)[0]["state"] == "queued", "nothing happens before the confirmation"
        rejected = client.post(f"{url}/mq/{mr.id}/reject", data={**form, "confirm": "yes", "reason": "wrong approach"})
        assert rejected.status_code == 303
        assert gt_json("mq", "list", "--all", cwd=rig_town)[0]["state"] == "rejected"
        again = client.post(f"{url}/mq/{mr.id}/retry", data=form)
        assert again.status_code == 303 and gt_json("mq", "list", cwd=rig_town)[0]["state"] == "queued"
        missing = client.post(f"{url}/mq/mr-zzzzzz/retry", data=form)
        assert missing.status_code == 404 and "gt mq list --all" in missing.text
        nudge_dead = client.post(f"{url}/agents/app/ghost/nudge", data={**form, "message": "hi"})
        assert nudge_dead.status_code == 404 and "no agent has run as app/ghost" in nudge_dead.text


def test_triggers_are_stubbed_as_not_available_until_gt_serve_provides_them(rig_town: Path, client: httpx.Client) -> None:
    class Triggers:
        def __init__(self) -> None:
            self.paused: set[str] = set()

        def triggers(self) -> list[dict[str, Any]]:
            return [{"name": "deps", "kind": "webhook", "rig": "app", "paused": "deps" in self.paused, "in_flight": 2,
                     "requests": [{"id": "r1", "at": time.time(), "status": "success", "issue": "app-00001"}]}]

        def pause(self, name: str) -> None:
            self.paused.add(name)

        def resume(self, name: str) -> None:
            self.paused.discard(name)

    with served(rig_town) as (url, _):
        page = client.get(url + "/triggers")
        assert "not available" in page.text
        refused = client.post(url + "/triggers/deps/pause", data={"csrf": csrf_of(client.get(url + "/").text)})
        assert refused.status_code == 409 and "not available" in refused.text
    source = Triggers()
    with served(rig_town, triggers=source) as (url, _):
        page = client.get(url + "/triggers")
        assert "deps" in page.text and "Pause" in page.text
        assert client.post(url + "/triggers/deps/pause", data={"csrf": csrf_of(page.text)}).status_code == 303
        assert source.paused == {"deps"} and "Resume" in client.get(url + "/triggers").text


# -- hostile text stays text ---------------------------------------------------------------------


def test_hostile_text_is_escaped_on_every_page_and_disguises_are_shown(rig_town: Path, client: httpx.Client) -> None:
    issue = new_issue(rig_town, HOSTILE_TITLE, body=SCRIPT + "\n" + BIDI)
    raise_escalation(ctx_of(rig_town).ledger, SCRIPT + " " + BIDI, source="test", issue=issue)
    add_event(rig_town, HOSTILE_TITLE + " \x1b[31mred\x1b[0m", rig="app", issue=issue)
    with served(rig_town) as (url, _):
        pages = {path: client.get(url + path).text for path in ("/", "/events")}
    for path, html in pages.items():
        assert "<img" not in html and "<script>alert" not in html, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, path
    assert "&lt;/script&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in pages["/"]
    assert "invoice\\u202egnp.exe" in pages["/"] and "\u202e" not in pages["/"]
    assert "\\x1b[31mred" in pages["/events"] and "\x1b" not in pages["/events"]


def test_log_text_is_made_visible_line_by_line_and_followed_without_gaps(tmp_path: Path) -> None:
    assert visible("\tok\u202eevil  x") == "        ok\\u202eevil  x"
    log = tmp_path / "a.log"
    log.write_bytes(b"\x1b[32mgreen\x1b[0m\r\nspin 1\rspin 2\nhalf")
    lines, offset = tail(log)
    assert lines == ["green", "spin 2"] and offset == len(b"\x1b[32mgreen\x1b[0m\r\nspin 1\rspin 2\n")
    reader = LogReader(log, offset)
    assert reader.read_new() == [], "a line in the making waits for its newline"
    with log.open("ab") as handle:
        handle.write(" done\nnext \u202e\n".encode())
    assert reader.read_new() == ["half done", "next \\u202e"]
    assert reader.read_new() == []
    log.write_bytes(b"new file\n")  # replaced by a shorter one: read from the start
    assert reader.read_new() == ["new file"]


# -- the JSON API mirrors the CLI -----------------------------------------------------------------


def test_the_api_answers_what_the_cli_prints(rig_town: Path, client: httpx.Client) -> None:
    first = new_issue(rig_town, "first [bold]thing[/]")
    second = new_issue(rig_town, "second")
    ctx = ctx_of(rig_town)
    with ctx.ledger.write() as conn:
        for n, issue in enumerate((first, second)):
            record_mr(conn, rig="app", issue=issue, polecat=f"p{n}", spawn=None, branch=f"polecat/p{n}/{issue}",
                      commit_sha=str(n) * 40, target="main", priority=n, fix_cycle=0, now=ctx.now() + n)
    raise_escalation(ctx.ledger, "help", source="test", severity="high")
    with served(rig_town) as (url, _):
        api = {path: client.get(url + path).json() for path in
               ("/api/mq", "/api/mq?all=1&state=queued", "/api/feed?lines=100", "/api/status", "/api/agents",
                "/api/escalations", "/api/convoys")}
        top = api["/api/feed?lines=100"][-1]["id"]
        assert client.get(f"{url}/api/feed?after={top - 2}").json() == api["/api/feed?lines=100"][-2:]
        assert client.get(url + "/api/feed?since=1h&problems=1").json() == [
            e for e in api["/api/feed?lines=100"] if e["kind"] == "escalation"]
        bad = client.get(url + "/api/mq?state=lost")
        assert bad.status_code == 400 and "unknown merge request state" in bad.json()["error"]
        assert client.get(url + "/api/feed?since=soon").status_code == 400
    assert api["/api/mq"] == gt_json("mq", "list", cwd=rig_town)
    assert api["/api/mq?all=1&state=queued"] == gt_json("mq", "list", "--all", "--state", "queued", cwd=rig_town)
    feed = run_gt("feed", "--plain", "--json", "--once", "-n", "100", cwd=rig_town, check=True).stdout
    assert api["/api/feed?lines=100"] == [json.loads(line) for line in feed.splitlines()]
    assert api["/api/escalations"] == gt_json("escalate", "list", cwd=rig_town)
    assert api["/api/convoys"] == gt_json("convoy", "list", cwd=rig_town)
    assert api["/api/agents"] == gt_json("agents", cwd=rig_town) == []
    cli_status = gt_json("status", cwd=rig_town)
    assert set(api["/api/status"]) == set(cli_status)
    for section in ("town", "rigs", "agents", "queued", "holds", "issues", "blocked"):
        assert api["/api/status"][section] == cli_status[section], section
    assert [e["id"] for e in api["/api/status"]["escalations"]] == [e["id"] for e in cli_status["escalations"]]
    assert [m["in_flight"][0]["id"] for m in api["/api/status"]["merge_queue"]] == [
        m["in_flight"][0]["id"] for m in cli_status["merge_queue"]]


# -- live: one reader for every page, and streams that end with the server --------------------------


def test_an_event_reaches_every_open_stream_and_ten_pages_cost_what_one_costs(rig_town: Path) -> None:
    with served(rig_town) as (url, app), httpx.Client(base_url=url, timeout=30) as c:
        hub = app.state.hub
        streams = [EventStream(c, "/stream?view=town")]
        retry_until(lambda: hub.subscribers == 1, 10, what="the first stream to subscribe")
        time.sleep(1.0)  # a period to count the hub's reads with one page open
        one = (hub.stats.event_polls, hub.stats.snapshots, hub.stats.renders)
        time.sleep(1.0)
        one = tuple(b - a for a, b in zip(one, (hub.stats.event_polls, hub.stats.snapshots, hub.stats.renders), strict=True))
        streams += [EventStream(c, "/stream?view=town") for _ in range(9)]
        retry_until(lambda: hub.subscribers == 10, 10, what="ten streams to subscribe")
        before = (hub.stats.event_polls, hub.stats.snapshots, hub.stats.renders)
        time.sleep(1.0)
        ten = tuple(b - a for a, b in zip(before, (hub.stats.event_polls, hub.stats.snapshots, hub.stats.renders), strict=True))

        started = time.monotonic()
        event_id = add_event(rig_town, "hello from the ledger")
        for stream in streams:
            got = stream.next("events", 5, where=lambda d: any(e["id"] == event_id for e in d))
            assert got.id == str(event_id)
        elapsed = time.monotonic() - started
        summaries = [m.data["html"] for m in streams[0].seen if m.event == "fragment" and m.data["id"] == "summary"]
        assert summaries and "Mayor" in summaries[0], "each page got its live parts too"
    assert elapsed < 2.0, f"the event took {elapsed:.2f}s to reach ten pages"
    polls_one, snapshots_one, renders_one = one
    polls_ten, snapshots_ten, renders_ten = ten
    assert polls_ten <= polls_one * 1.5 + 3, (one, ten)
    assert snapshots_ten <= snapshots_one * 1.5 + 2, (one, ten)
    assert renders_ten <= renders_one * 1.5 + 2, (one, ten)
    assert all(s.ended.is_set() for s in streams), "every stream ended with the server"


def test_stopping_the_server_ends_every_stream_at_once(rig_town: Path) -> None:
    with httpx.Client(timeout=30) as c:
        with served(rig_town) as (url, app):
            streams = [EventStream(c, url + "/stream?view=" + view) for view in ("town", "mq", "events")]
            retry_until(lambda: app.state.hub.subscribers == 3, 10, what="three subscribers")
            stopping = time.monotonic()
        stopped = time.monotonic() - stopping
        for stream in streams:
            assert stream.next("bye", 5).data == {}
            assert stream.ended.wait(5)
    assert stopped < 5.0, f"the server took {stopped:.1f}s to stop with open streams"


def test_a_reconnecting_page_gets_what_it_missed_once(rig_town: Path) -> None:
    missed = [add_event(rig_town, f"while away {n}") for n in range(3)]
    with served(rig_town) as (url, _), httpx.Client(base_url=url, timeout=30) as c:
        stream = EventStream(c, "/stream?view=events", headers={"Last-Event-ID": str(missed[0])})
        caught = stream.next("events", 5)
        assert [e["id"] for e in caught.data] == missed[1:] and caught.id == str(missed[2])
        bad = c.get("/stream?view=agent:app/nobody")
        assert bad.status_code == 404 and "no agent has run" in bad.text
        assert c.get("/stream?view=nonsense").status_code == 400


def test_a_notice_sent_while_the_browser_moves_between_pages_reaches_the_next_page(
    rig_town: Path, client: httpx.Client
) -> None:
    import html as html_lib
    import re

    esc = raise_escalation(ctx_of(rig_town).ledger, "ack me", source="test")
    with served(rig_town) as (url, app):
        hub = app.state.hub
        token = csrf_of(client.get(url + "/").text)
        done = client.post(f"{url}/escalations/{esc.id}/ack", data={"csrf": token, "next": "/"})
        assert done.status_code == 303
        # The action's outcome arrives after its answer and before the next page subscribes.
        hub.notify("ok", "finished while the browser was between pages")
        page = client.get(url + "/").text
        stream_url = html_lib.unescape(re.search(r'data-stream="([^"]+)"', page).group(1))
        first = EventStream(client, url + stream_url).next("notice", 10)
        again = EventStream(client, url + stream_url).next("notice", 10)  # a reconnect: same number, shown once
        later = html_lib.unescape(re.search(r'data-stream="([^"]+)"', client.get(url + "/").text).group(1))
    assert first.data == {"level": "ok", "text": "finished while the browser was between pages", "n": 1}
    assert again.data["n"] == 1
    assert "notices=1" in later, "a page opened afterwards does not replay what was already sent"


def test_fragments_are_shared_but_each_viewer_gets_its_own_csrf_token(rig_town: Path) -> None:
    raise_escalation(ctx_of(rig_town).ledger, "ack me", source="test")
    with served(rig_town) as (url, _), httpx.Client(base_url=url, timeout=30) as a, \
            httpx.Client(base_url=url, timeout=30) as b:
        tokens = [csrf_of(client.get("/").text) for client in (a, b)]
        assert tokens[0] != tokens[1]
        sides = [EventStream(client, "/stream?view=town").next("fragment", 5, where=lambda d: d["id"] == "side")
                 for client in (a, b)]
    for token, side in zip(tokens, sides, strict=True):
        assert f'value="{token}"' in side.data["html"] and "gt-csrf" not in side.data["html"]


def test_the_hub_stops_reading_when_the_last_page_closes(rig_town: Path) -> None:
    async def scenario() -> tuple[int, int]:
        app = create_dashboard_app(rig_town, poll_interval=0.02, refresh_interval=0.2)
        hub = app.state.hub
        with hub.subscribe()[0]:
            await asyncio.sleep(0.3)
        await asyncio.sleep(0.1)
        polls = hub.stats.event_polls
        await asyncio.sleep(0.3)
        return polls, hub.stats.event_polls

    after_close, later = asyncio.run(scenario())
    assert after_close >= 1 and later == after_close, "no page open, no reading"


# -- gt dashboard -------------------------------------------------------------------------------------


def test_gt_dashboard_prints_the_url_and_opens_it(rig_town: Path, tmp_path: Path) -> None:
    from gastown.server.dashboard.serving import bind

    listener = bind("127.0.0.1", 0)  # something answering at the configured port
    port = listener.getsockname()[1]
    set_config(rig_town, "server", {"port": port, "host": "127.0.0.1", "enabled": True})
    try:
        answered = run_gt("dashboard", cwd=rig_town, check=True)
        assert answered.stdout == f"http://127.0.0.1:{port}/\n" and answered.stderr == ""
        assert gt_json("dashboard", cwd=rig_town)["listening"] is True
    finally:
        listener.close()
    plain = run_gt("dashboard", cwd=rig_town, check=True)
    assert plain.stdout == f"http://127.0.0.1:{port}/\n" and "gt serve" in plain.stderr
    doc = gt_json("dashboard", cwd=rig_town)
    assert doc == {"url": f"http://127.0.0.1:{port}/", "listening": False, "enabled": True, "token": False}
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    run_gt("dashboard", "--open", cwd=rig_town, env={"BROWSER": str(browser)}, check=True)
    assert retry_until(lambda: opened.exists() and opened.read_text().strip(), 10) == f"http://127.0.0.1:{port}/"
    set_config(rig_town, "server", {"host": "0.0.0.0"})
    warned = run_gt("dashboard", cwd=rig_town, check=True)
    assert warned.stdout == f"http://127.0.0.1:{port}/\n" and "token_env" in warned.stderr


# -- fifty agents, offline, keyboard --------------------------------------------------------------


def test_fifty_agents_render_as_fifty_rows_with_every_hostile_string_escaped(rig_town: Path) -> None:
    from gastown.server.dashboard.handle import TownHandle
    from gastown.server.dashboard.pages import Site, render_fragments, render_page
    from tests.test_status import synthetic_status

    site = Site(TownHandle(rig_town))
    snapshot = synthetic_status(50)
    fragments = render_fragments(site, "town", snapshot)
    agents = fragments["agents"]
    assert agents.count("<tr class=\"state-") == 50
    for state in ("working", "idle", "spawning", "stalled", "dead", "done"):
        assert f"state-{state}" in agents
    started = time.perf_counter()
    page = render_page(site, "town", snapshot, notice=None, stream_url="/stream?view=town", auth=False)
    assert time.perf_counter() - started < 2.0
    assert "[bold]x[/] $(rm -rf ~)" in page and "\\x1b[2J" in page and "\\u202e" in page
    assert "\x1b" not in page and "\u202e" not in page and "<b>" not in page
    assert len(page) < 200_000, "fifty agents stay a page, not a novel"


def test_the_dashboard_works_offline_no_cdn_no_inline_code() -> None:
    import re

    root = Path(__file__).resolve().parents[1] / "gastown" / "server" / "dashboard"
    for path in [*root.glob("templates/**/*.html"), *root.glob("static/*")]:
        text = path.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), f"{path.name} loads something from elsewhere"
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), f"{path.name} has an inline script"
        assert " style=" not in text and "<style" not in text, f"{path.name} has inline style"
        assert not re.search(r"\son[a-z]+=", text), f"{path.name} has an inline event handler"


def test_a_broken_config_keeps_the_last_good_one_and_says_so(rig_town: Path, client: httpx.Client) -> None:
    from gastown.server.dashboard import handle

    config = rig_town / "gastown.toml"
    good = config.read_text()
    with served(rig_town) as (url, _):
        assert "has an error" not in client.get(url + "/").text
        config.write_text(good + "\n[[[\n")
        os.utime(config, (time.time() + 5, time.time() + 5))
        def banner() -> str | None:
            text = client.get(url + "/").text
            return text if "has an error" in text else None

        broken = retry_until(banner, handle.RECHECK_S * 20, what="the page to report the broken config")
        assert broken is not None and "line" in broken
        assert client.get(url + "/api/status").status_code == 200
        config.write_text(good)
        os.utime(config, (time.time() + 10, time.time() + 10))
        retry_until(lambda: "has an error" not in client.get(url + "/").text, handle.RECHECK_S * 20,
                    what="the banner to go once the file is fixed")


@pytest.mark.tmux
@pytest.mark.slow
def test_an_agent_page_follows_its_log_and_reloads_when_the_agent_restarts(rig_town: Path, tmux_socket: str) -> None:
    set_config(rig_town, "witness", {"patrol_interval": "1s", "idle_after": "10m"})
    body = "~~~demo\nthink 1.5\n~~~\n\n~~~demo\ncrash @first\n~~~\n\n~~~demo\nnodone\n~~~\n"
    issue = gt_json("issue", "create", "crash once, then wait", "--body", body, cwd=rig_town)["id"]
    run_gt("up", cwd=rig_town, check=True)
    try:
        slung = gt_json("sling", issue, "--agent", "demo", cwd=rig_town)
        view = f"agent:app/{slung['polecat']}"
        with served(rig_town) as (url, _), httpx.Client(base_url=url, timeout=30) as c:
            page = c.get(f"/agents/app/{slung['polecat']}")
            assert page.status_code == 200 and slung["spawn"] in page.text
            stream = EventStream(c, f"/stream?view={view}&spawn={slung['spawn']}&offset=0")
            stream.next("log", 60, where=lambda lines: any("demo: task" in line for line in lines))
            stream.next("reload", 120)
            assert stream.ended.wait(10)
            restarted = c.get(f"/agents/app/{slung['polecat']}").text
        runs = [s for s in gt_json("agents", cwd=rig_town) if s["issue"] == issue]
        assert runs and runs[0]["spawn"] != slung["spawn"] and runs[0]["spawn"] in restarted
    finally:
        run_gt("down", "--timeout", "5", cwd=rig_town)


def test_the_listening_socket_says_tcp_so_answers_are_not_held_for_delayed_acks() -> None:
    import socket

    from gastown.server.dashboard.serving import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP, "asyncio sets TCP_NODELAY only on sockets whose proto is TCP"
    finally:
        sock.close()


def test_ctrl_c_stops_a_standalone_dashboard_with_a_stream_open(rig_town: Path) -> None:
    import signal
    import subprocess
    import sys

    from gastown.server.dashboard.serving import bind

    probe = bind("127.0.0.1", 0)
    port = probe.getsockname()[1]
    probe.close()
    set_config(rig_town, "server", {"port": port})
    server = subprocess.Popen([sys.executable, "-m", "gastown.server.dashboard", str(rig_town)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return httpx.get(url + "/api/status", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        retry_until(answers, 60, what="the standalone dashboard to answer")
        with httpx.Client(base_url=url, timeout=30) as c:
            stream = EventStream(c, "/stream?view=town")
            stream.next("fragment", 15)
            stopping = time.monotonic()
            server.send_signal(signal.SIGINT)
            assert stream.next("bye", 15).data == {}
            assert server.wait(30) == 0
        assert time.monotonic() - stopping < 10
        assert "Traceback" not in (server.stderr.read() if server.stderr else "")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)


def test_a_page_that_falls_far_behind_is_told_to_reload(rig_town: Path) -> None:
    from gastown.server.dashboard.hub import QUEUE_SIZE, Message

    async def scenario() -> list[str]:
        hub = create_dashboard_app(rig_town).state.hub
        sub, _ = hub.subscribe()
        with sub:
            for n in range(QUEUE_SIZE + 5):
                sub.put(Message("notice", (n, "ok", str(n))))
            got = [await sub.get(1) for _ in range(2)]
        await hub.close()
        return [m.kind if m else "nothing" for m in got]

    assert asyncio.run(scenario()) == ["reload", "nothing"]


def test_the_agents_table_names_a_remote_agents_host() -> None:
    from types import SimpleNamespace

    from gastown.roles.fleet import AgentView
    from gastown.server.dashboard.rendering import render
    from gastown.views.status import AgentStatus

    def row(host: str, polecat: str) -> AgentStatus:
        view = AgentView(rig="app", polecat=polecat, issue="app-a1b2c", spawn="sp-1", agent="demo", state="unreachable",
                         pane="%1", started_at=0.0, last_activity=None, last_line=None, restarts=0, nudges=0,
                         exit_status=None, host=host)
        return AgentStatus(view, "t", 1.0, None)

    html = render("town/_agents.html", status=SimpleNamespace(agents=[row("b1", "ace"), row("local", "dew")]))
    assert '>app/ace</a><span class="host" title="runs on host b1">@b1</span>' in html
    assert ">app/dew</a></td>" in html and "@local" not in html
    assert "? unreachable" in html.replace('<span class="mark" aria-hidden="true">?</span>', "?")
