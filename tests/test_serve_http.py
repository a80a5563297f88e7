"""`POST /hooks/<trigger>/<token>` over real HTTP: a `gt serve` on 127.0.0.1 (port 0), every answer.

No Mayor and no tmux run here: a 202 is the ledger's work alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import gt_json, ledger_rows, run_gt, set_config
from tests.serve_support import SECRETS, Served, add_triggers, github_headers, github_issue_payload, serving

DEPS = {"x-webhook-secret": SECRETS["DEPS_SECRET"], "content-type": "application/json"}


@pytest.fixture
def town(rig_town: Path) -> Path:
    add_triggers(rig_town)
    return rig_town


@pytest.fixture
def served(town: Path) -> Iterator[Served]:
    with serving(town) as server:
        yield server


def post(url: str, body: bytes | str = b"{}", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, content=body, headers=headers or {}, timeout=30)


def requests_of(town: Path, trigger: str) -> list[dict[str, object]]:
    return ledger_rows(town, "SELECT * FROM trigger_requests WHERE trigger = ? ORDER BY received_at", trigger)


def test_a_request_is_recorded_with_its_issue_and_answered_202(served: Served) -> None:
    body = json.dumps({"package": "requests", "from": "2.31.0", "to": "2.32.3"})
    answer = post(served.hook("deps") + "?source=dependabot",
                  body, {**DEPS, "Authorization": "Bearer leak-me-not", "Cookie": "sid=leak-me-not", "X-Kind": "alert"})
    assert answer.status_code == 202, answer.text
    doc = answer.json()
    assert set(doc) == {"request", "issue"} and doc["request"].startswith("rq-") and doc["issue"].startswith("app-")
    issue = gt_json("issue", "show", doc["issue"], cwd=served.town)
    assert issue["title"] == "Dependency update: requests" and issue["status"] == "open"
    assert issue["body"].startswith("Update the dependency") and '"package": "requests"' in issue["body"]
    [row] = requests_of(served.town, "deps")
    assert row["id"] == doc["request"] and row["state"] == "captured" and row["issue"] == doc["issue"]
    assert row["body"] == body and row["query"] == "source=dependabot" and row["source_ip"] == "127.0.0.1"
    headers = json.loads(str(row["headers"]))
    assert headers["x-kind"] == "alert"
    assert not {"authorization", "cookie", "x-webhook-secret"} & set(headers)
    # Secrets reach neither the ledger nor the log; the log names the request without its token.
    token = served.hook("deps").rsplit("/", 1)[1]
    dump = json.dumps(ledger_rows(served.town, "SELECT * FROM trigger_requests")) + json.dumps(
        ledger_rows(served.town, "SELECT * FROM issues")) + json.dumps(ledger_rows(served.town, "SELECT * FROM events"))
    for secret in ("leak-me-not", SECRETS["DEPS_SECRET"], token):
        assert secret not in dump
    log = (served.town / ".gastown" / "logs" / "server.log").read_text() + served.log.read_text()
    assert doc["request"] in log and token not in log and SECRETS["DEPS_SECRET"] not in log


def test_unknown_trigger_wrong_token_and_schedules_get_the_same_404(served: Served) -> None:
    url = served.hook("deps")
    token = url.rsplit("/", 1)[1]
    nightly_token = ledger_rows(served.town, "SELECT token FROM triggers WHERE name = 'nightly'")[0]["token"]
    answers = [
        post(url[:-1] + ("A" if token[-1] != "A" else "B"), "{}", DEPS),
        post(f"{served.url}/hooks/nope/{token}", "{}", DEPS),
        post(f"{served.url}/hooks/nightly/{nightly_token}", "{}", DEPS),
        post(f"{served.url}/hooks/deps/", "{}", DEPS),
    ]
    assert {a.status_code for a in answers} == {404}
    assert {a.content for a in answers[:3]} == {answers[0].content}
    assert requests_of(served.town, "deps") == []


def test_missing_or_wrong_secret_gets_401(served: Served) -> None:
    url = served.hook("deps")
    missing = post(url, "{}", {"content-type": "application/json"})
    wrong = post(url, "{}", {**DEPS, "x-webhook-secret": "deps-s3cret-valuE"})
    assert missing.status_code == wrong.status_code == 401
    assert "x-webhook-secret" in wrong.json()["error"]
    assert requests_of(served.town, "deps") == []


def test_github_signature_is_checked_over_the_raw_bytes(served: Served) -> None:
    url = served.hook("gh")
    payload = github_issue_payload("Spelling error in the README", "It says 'committ'.")
    raw = json.dumps(payload, indent=2).encode()
    headers = github_headers(raw, SECRETS["GH_SECRET"])
    # The same JSON re-serialised with other whitespace no longer matches its signature.
    compact = json.dumps(payload, separators=(",", ":")).encode()
    assert json.loads(compact) == json.loads(raw)
    assert post(url, compact, headers).status_code == 401
    assert post(url, raw, {**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64}).status_code == 401
    assert post(url, raw, {k: v for k, v in headers.items() if k != "X-Hub-Signature-256"}).status_code == 401
    assert requests_of(served.town, "gh") == []
    good = post(url, raw, headers)
    assert good.status_code == 202, good.text
    assert gt_json("issue", "show", good.json()["issue"], cwd=served.town)["title"] == "Spelling error in the README"


def test_github_ping_and_filtered_events_are_answered_and_ignored(served: Served) -> None:
    url = served.hook("gh")
    ping = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 292430182}).encode()
    assert post(url, ping, github_headers(ping, SECRETS["GH_SECRET"], event="ping")).json()["ignored"].startswith("GitHub's ping")
    other_label = json.dumps(github_issue_payload("t", "b", label="wontfix")).encode()
    answer = post(url, other_label, github_headers(other_label, SECRETS["GH_SECRET"]))
    assert answer.status_code == 200 and "label 'ai-implement' is not on it" in answer.json()["ignored"]
    opened = json.dumps(github_issue_payload("t", "b", action="opened")).encode()
    assert "action is 'opened'" in post(url, opened, github_headers(opened, SECRETS["GH_SECRET"])).json()["ignored"]
    assert requests_of(served.town, "gh") == []


def test_body_of_the_limit_passes_and_one_byte_more_gets_413(served: Served) -> None:
    url = served.hook("deps")
    limit = 256 * 1024
    over = post(url, b"x" * (limit + 1), {**DEPS, "content-type": "text/plain"})
    assert over.status_code == 413 and str(limit) in over.json()["error"]
    much_over = post(url, b"x" * (limit * 8), {**DEPS, "content-type": "text/plain"})
    assert much_over.status_code == 413
    assert requests_of(served.town, "deps") == []
    exact = post(url, b"x" * limit, {**DEPS, "content-type": "text/plain"})
    assert exact.status_code == 202, exact.text
    [row] = requests_of(served.town, "deps")
    assert len(str(row["body"])) == limit


@pytest.mark.parametrize("content_type,body,encoding", [
    ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--xyz--\r\n", None),
    ("application/octet-stream", b"\x00\x01\x02", None),
    ("image/png", b"\x89PNG\r\n\x1a\n", None),
    ("text/plain", b"caf\xe9 is not utf-8", None),
    ("application/json", b'{"a": 1}', "gzip"),
], ids=["multipart", "octet-stream", "image", "not-utf8", "gzip"])
def test_multipart_and_binary_bodies_get_415(served: Served, content_type: str, body: bytes, encoding: str | None) -> None:
    headers = {**DEPS, "content-type": content_type, **({"content-encoding": encoding} if encoding else {})}
    answer = post(served.hook("deps"), body, headers)
    assert answer.status_code == 415, answer.text
    assert requests_of(served.town, "deps") == []


def test_25_concurrent_requests_give_20_accepted_and_5_too_many(served: Served) -> None:
    url = served.hook("deps")

    async def flood() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=25, max_keepalive_connections=25)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            calls = [client.post(url, content=json.dumps({"package": f"p{n}"}), headers=DEPS) for n in range(25)]
            return list(await asyncio.gather(*calls))

    answers = asyncio.run(flood())
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] * 20 + [429] * 5
    for refused in (a for a in answers if a.status_code == 429):
        assert refused.headers["retry-after"].isdigit() and "in flight" in refused.json()["error"]
    assert len(requests_of(served.town, "deps")) == 20
    assert len({a.json()["issue"] for a in answers if a.status_code == 202}) == 20


def test_a_repeated_delivery_id_creates_one_issue(served: Served) -> None:
    url = served.hook("gh")
    raw = json.dumps(github_issue_payload("Once only", "b")).encode()
    headers = github_headers(raw, SECRETS["GH_SECRET"], delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    first, second = post(url, raw, headers), post(url, raw, headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json() and second.headers["idempotent-replayed"] == "true"
    keyed = {**DEPS, "Idempotency-Key": "alert-1234"}
    a, b = post(served.hook("deps"), '{"package": "x"}', keyed), post(served.hook("deps"), '{"package": "x"}', keyed)
    assert a.json() == b.json()
    assert len(requests_of(served.town, "gh")) == 1 and len(requests_of(served.town, "deps")) == 1
    titles = [r["title"] for r in ledger_rows(served.town, "SELECT title FROM issues")]
    assert titles.count("Once only") == 1 and len(titles) == 2


def test_a_paused_trigger_answers_409_until_resumed(served: Served) -> None:
    url = served.hook("deps")
    run_gt("trigger", "pause", "deps", cwd=served.town, check=True)
    paused = post(url, '{"package": "x"}', DEPS)
    assert paused.status_code == 409 and "paused" in paused.json()["error"]
    run_gt("trigger", "resume", "deps", cwd=served.town, check=True)
    assert post(url, '{"package": "x"}', DEPS).status_code == 202


def test_auth_none_takes_calls_from_this_machine(served: Served) -> None:
    answer = post(served.hook("local"), "plain text {{body}}", {"content-type": "text/plain", "X-Kind": "probe"})
    assert answer.status_code == 202
    issue = gt_json("issue", "show", answer.json()["issue"], cwd=served.town)
    assert issue["title"] == "Local: probe" and issue["body"] == "plain text {{body}}"


def test_a_secret_missing_from_the_servers_environment_is_503_not_open(town: Path) -> None:
    with serving(town, env={"DEPS_SECRET": ""}) as server:
        answer = post(server.hook("deps"), "{}", DEPS)
        assert answer.status_code == 503 and "DEPS_SECRET" in answer.json()["error"]
        assert requests_of(town, "deps") == []


def test_a_rotated_token_retires_the_old_url(served: Served) -> None:
    old = served.hook("deps")
    new = gt_json("trigger", "rotate", "deps", cwd=served.town)["url"]
    assert new != old
    assert post(old, '{"package": "x"}', DEPS).status_code == 404
    assert post(new, '{"package": "x"}', DEPS).status_code == 202


def test_with_a_server_token_every_non_hook_endpoint_needs_it(town: Path) -> None:
    set_config(town, "server", {"token_env": "GT_SERVER_TOKEN"})
    with serving(town, env={"GT_SERVER_TOKEN": "tok-123"}) as server:
        assert httpx.get(server.url + "/healthz").status_code == 401
        assert httpx.get(server.url + "/healthz", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = httpx.get(server.url + "/healthz", headers={"Authorization": "Bearer tok-123"})
        assert ok.status_code == 200 and ok.json()["ok"] is True
        assert httpx.get(server.url + "/api/status").status_code == 401  # the dashboard's API, same token
        assert httpx.get(server.url + "/api/status", headers={"Authorization": "Bearer tok-123"}).status_code == 200
        assert httpx.get(server.url + "/", follow_redirects=False).headers["location"].startswith("/login")
        # Hooks authenticate by their own token and secret.
        assert post(server.hook("deps"), '{"package": "x"}', DEPS).status_code == 202


def test_serving_a_non_loopback_address_without_a_token_is_refused(town: Path) -> None:
    result = run_gt("serve", "--host", "0.0.0.0", "--port", "0", cwd=town, timeout=60)
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 without a token" in result.stderr and "token_env" in result.stderr
    assert "Traceback" not in result.stderr
    set_config(town, "server", {"token_env": "GT_SERVER_TOKEN"})
    unset = run_gt("serve", "--port", "0", cwd=town, env={"GT_SERVER_TOKEN": ""}, timeout=60)
    assert unset.returncode == 2 and "GT_SERVER_TOKEN" in unset.stderr


def test_a_second_server_for_the_same_town_is_refused(served: Served) -> None:
    result = run_gt("serve", "--port", "0", cwd=served.town, timeout=60)
    assert result.returncode == 6 and "already runs for this town" in result.stderr
    assert httpx.get(served.url + "/healthz").json()["ok"] is True
