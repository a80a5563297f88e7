"""The GitHub client on httpx.MockTransport: retries, rate limits, ETags, pagination, errors.

No test sleeps for real: the client gets a fake clock and a sleep that records.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from gastown.errors import GitHubAuthError, GitHubError, GitHubRateLimited, GitHubTimeout
from gastown.github.client import GitHubClient

TOKEN = "ghp_test_token_1234567890"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def client_for(handler: Callable[[httpx.Request], httpx.Response], clock: Clock, **kw: object) -> GitHubClient:
    return GitHubClient(token=TOKEN, api_url="https://api.example", transport=httpx.MockTransport(handler),
                        clock=clock.time, sleep=clock.sleep, **kw)  # type: ignore[arg-type]


def test_sends_the_token_and_parses_json() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"ok": True}, headers={"ETag": '"a"'})

    clock = Clock()
    answer = client_for(handler, clock).get("/repos/o/r")
    assert answer.data == {"ok": True} and answer.etag == '"a"'
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert seen[0].extensions["timeout"]["read"] == 20.0  # a timeout on every call


def test_retries_5xx_with_backoff_then_succeeds() -> None:
    answers = iter([httpx.Response(502), httpx.Response(503), httpx.Response(200, json=[1])])
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return next(answers)

    clock = Clock()
    assert client_for(handler, clock).get("/x").data == [1]
    assert len(calls) == 3 and clock.slept == [1.0, 2.0]


def test_5xx_forever_becomes_a_github_error_after_the_retries() -> None:
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return httpx.Response(500, json={"message": "boom"})

    clock = Clock()
    with pytest.raises(GitHubError) as info:
        client_for(handler, clock, max_retries=2).get("/repos/o/r/issues")
    assert len(calls) == 3 and info.value.status == 500
    assert "GET /repos/o/r/issues" in info.value.message and TOKEN not in info.value.message


def test_connection_errors_and_timeouts_map_to_github_timeout() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=req)

    clock = Clock()
    with pytest.raises(GitHubTimeout):
        client_for(handler, clock, max_retries=1).get("/x")
    assert clock.slept == [1.0]

    def refused(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)

    with pytest.raises(GitHubTimeout) as info:
        client_for(refused, Clock(), max_retries=0).get("/x")
    assert isinstance(info.value, GitHubError)


def test_secondary_rate_limit_waits_retry_after_then_succeeds() -> None:
    answers = iter([httpx.Response(403, json={"message": "secondary rate limit"}, headers={"Retry-After": "7"}),
                    httpx.Response(200, json={"ok": 1})])
    calls = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return next(answers)

    clock = Clock()
    assert client_for(handler, clock).get("/x").data == {"ok": 1}
    assert clock.slept == [7.0] and len(calls) == 2  # waited as told, one retry: no hammering


def test_primary_limit_exhausted_waits_for_the_reset_before_the_next_call() -> None:
    clock = Clock()
    reset = clock.now + 30

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={}, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(reset))})

    client = client_for(handler, clock)
    client.get("/a")
    assert clock.slept == []
    client.get("/b")  # the previous answer left no requests: wait for the reset first
    assert clock.slept == [30.0]


def test_a_wait_longer_than_max_wait_raises_rate_limited_with_the_reset() -> None:
    clock = Clock()

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(429, json={"message": "slow down"}, headers={"Retry-After": "3600"})

    with pytest.raises(GitHubRateLimited) as info:
        client_for(handler, clock, max_wait=60).get("/x")
    assert info.value.reset_at == pytest.approx(clock.now + 3600) and clock.slept == []


def test_401_and_403_are_auth_errors_with_githubs_reason() -> None:
    def unauthorized(req: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"message": "Bad credentials"})

    with pytest.raises(GitHubAuthError, match="Bad credentials"):
        client_for(unauthorized, Clock()).get("/x")

    def forbidden(req: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"message": "Resource not accessible by integration"})

    with pytest.raises(GitHubAuthError, match="not accessible"):
        client_for(forbidden, Clock()).request("POST", "/x", json={})


def test_422_names_the_first_validation_error() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"message": "Validation Failed", "errors": [{"message": "A pull request already exists"}]})

    with pytest.raises(GitHubError, match="already exists") as info:
        client_for(handler, Clock()).request("POST", "/repos/o/r/pulls", json={})
    assert info.value.status == 422


def test_ok_statuses_are_answers_not_errors() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(405, json={"message": "not mergeable"})

    assert client_for(handler, Clock()).request("PUT", "/m", ok=(405,)).status == 405


def test_conditional_get_sends_the_etag_and_a_304_returns_the_remembered_data() -> None:
    seen: list[str | None] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers.get("if-none-match"))
        if req.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304)
        return httpx.Response(200, json={"n": 1}, headers={"ETag": '"v1"'})

    client = client_for(handler, Clock())
    first = client.get_fresh("/repos/o/r/pulls/1")
    second = client.get_fresh("/repos/o/r/pulls/1")
    assert seen == [None, '"v1"']
    assert not first.not_modified and second.not_modified and second.data == {"n": 1}
    assert client.get("/y", etag='"v1"').not_modified


def test_paginate_follows_link_next_on_the_api_host_only() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        page = int(req.url.params.get("page", "1"))
        link = f'<https://api.example/items?page={page + 1}>; rel="next"' if page < 3 else ""
        return httpx.Response(200, json=[page * 10, page * 10 + 1], headers={"Link": link} if link else {})

    assert list(client_for(handler, Clock()).paginate("/items")) == [10, 11, 20, 21, 30, 31]

    def elsewhere(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[1], headers={"Link": '<https://evil.example/steal?page=2>; rel="next"'})

    with pytest.raises(GitHubError, match="off the API host"):
        list(client_for(elsewhere, Clock()).paginate("/items"))


def test_git_auth_env_carries_the_token_as_a_header_config_never_as_argv() -> None:
    client = client_for(lambda req: httpx.Response(200), Clock())
    env = client.git_auth_env("https://github.com/acme/app.git")
    assert env["GIT_CONFIG_KEY_0"] == "http.https://github.com/.extraHeader"
    assert env["GIT_CONFIG_VALUE_0"].startswith("Authorization: Basic ") and TOKEN not in env["GIT_CONFIG_VALUE_0"]
    assert client.git_auth_env("/srv/git/app.git") == {} and client.git_auth_env("git@github.com:a/b.git") == {}
