"""Triggers' pure parts: templates and placeholders, signatures, the request policy, config."""

from __future__ import annotations

import json

import pytest

from gastown.config.load import parse_config
from gastown.errors import ConfigError
from gastown.triggers import policy
from gastown.triggers.signatures import github_signature, github_signature_ok, shared_secret_ok
from gastown.triggers.template import RequestFacts, check_template, public_headers, render, render_title

PAYLOAD = json.dumps({"action": "labeled", "issue": {"title": "Crash on start", "number": 7,
                                                     "labels": [{"name": "bug"}, {"name": "ai"}]}})
FACTS = RequestFacts(
    received_at=1_764_489_600.0, method="POST", path="/hooks/gh/…", query="a=1&b=2",
    headers={"x-github-event": "issues", "content-type": "application/json"}, body=PAYLOAD, source_ip="127.0.0.1",
)


@pytest.mark.parametrize(
    "template,expected",
    [
        pytest.param("{{bodyJson.issue.title}}", "Crash on start", id="dotted path"),
        pytest.param("#{{bodyJson.issue.number}}", "#7", id="a number"),
        pytest.param("{{bodyJson.issue.labels.1.name}}", "ai", id="a list item by index"),
        pytest.param("[{{bodyJson.issue.nope}}]", "[]", id="a missing path renders nothing"),
        pytest.param("{{bodyJson.issue.labels.9.name}}", "", id="an index past the end"),
        pytest.param("{{method}} {{path}}?{{query}} from {{sourceIp}}", "POST /hooks/gh/…?a=1&b=2 from 127.0.0.1",
                     id="request facts"),
        pytest.param("{{headers.X-GitHub-Event}}", "issues", id="one header, any case"),
        pytest.param("{{timestamp}}", "2025-11-30T08:00:00Z", id="timestamp"),
        pytest.param("{{ body }} {{unknown}}", "{{ body }} {{unknown}}", id="not placeholders stay as written"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render(template, FACTS) == expected


def test_body_json_is_pretty_json_or_the_raw_body() -> None:
    assert render("{{bodyJson}}", FACTS) == json.dumps(json.loads(PAYLOAD), indent=2)
    raw = RequestFacts(0.0, body="not json {{bodyJson}}")
    assert render("{{bodyJson}}|{{body}}", raw) == "not json {{bodyJson}}|not json {{bodyJson}}"
    assert render("{{bodyJson.a}}", raw) == ""


def test_payload_text_that_looks_like_a_placeholder_is_never_expanded() -> None:
    hostile = RequestFacts(0.0, body=json.dumps({"t": "{{body}} {{headers}} $(rm -rf ~)"}))
    assert render("{{bodyJson.t}}", hostile) == "{{body}} {{headers}} $(rm -rf ~)"


def test_headers_placeholder_is_json_without_credentials() -> None:
    headers = public_headers([
        ("Content-Type", "application/json"), ("Authorization", "Bearer a"), ("Cookie", "c"),
        ("X-Webhook-Secret", "s"), ("X-Hub-Signature", "sha1=x"), ("X-Hub-Signature-256", "sha256=y"),
        ("X-Gitlab-Token", "t"), ("X-Api-Key", "k"), ("X-My-Session-Token", "z"), ("X-GitHub-Delivery", "d"),
    ])
    assert headers == {"content-type": "application/json", "x-github-delivery": "d"}
    assert json.loads(render("{{headers}}", RequestFacts(0.0, headers=headers))) == headers


def test_scheduled_time() -> None:
    facts = RequestFacts(received_at=1_764_489_605.0, scheduled_at=1_764_489_600.0)
    assert render("{{scheduledTime}} / {{timestamp}}", facts) == "2025-11-30T08:00:00Z / 2025-11-30T08:00:05Z"


def test_title_is_one_line_and_cut() -> None:
    facts = RequestFacts(0.0, body=json.dumps({"t": "line one\nline\ttwo  " + "x" * 300}))
    title = render_title("Fix: {{bodyJson.t}}", facts, "fallback")
    assert "\n" not in title and title.startswith("Fix: line one line two x") and len(title) == 256
    assert title.endswith("…")
    assert render_title("{{bodyJson.missing}}", facts, "deps: webhook request") == "deps: webhook request"


@pytest.mark.parametrize(
    "template,kind,problem",
    [
        pytest.param("{{bodyJSON}}", "webhook", "unknown placeholder {{bodyJSON}}", id="wrong case"),
        pytest.param("{{scheduledTime}}", "webhook", "unknown placeholder {{scheduledTime}}", id="schedule-only"),
        pytest.param("{{body}}", "schedule", "unknown placeholder {{body}}", id="a schedule has no body"),
        pytest.param("{{query.a}}", "webhook", "only bodyJson and headers take a dotted path", id="dotted query"),
    ],
)
def test_check_template_finds_unknown_placeholders(template: str, kind: str, problem: str) -> None:
    assert any(problem in p for p in check_template(template, kind))


def test_check_template_accepts_every_documented_placeholder() -> None:
    webhook = "{{body}}{{bodyJson}}{{bodyJson.a.0.b}}{{method}}{{path}}{{headers}}{{headers.x-a}}{{query}}{{sourceIp}}{{timestamp}}"
    assert check_template(webhook, "webhook") == []
    assert check_template("{{scheduledTime}} {{timestamp}}", "schedule") == []


TRIGGER = '[rigs.app]\nrepo = "x"\n[triggers.deps]\nrig = "app"\nkind = "{kind}"\nsecret_env = "S"\n'


@pytest.mark.parametrize(
    "extra,kind,expected",
    [
        pytest.param('title = "{{bodyJSON.x}}"\nprompt = "p"', "webhook",
                     "triggers.deps.title: unknown placeholder {{bodyJSON.x}}", id="unknown placeholder names its key"),
        pytest.param('title = "t"\nprompt = "{{body}}"\nschedule = "0 3 * * *"', "schedule",
                     "triggers.deps.prompt: unknown placeholder {{body}}", id="webhook placeholder in a schedule"),
        pytest.param('title = "t"\nprompt = "p"', "schedule", 'triggers.deps: kind = "schedule" needs schedule',
                     id="schedule without cron"),
        pytest.param('title = "t"\nprompt = "p"\nschedule = "0 3 * *"', "schedule",
                     "triggers.deps.schedule: '0 3 * *' has 4 fields", id="bad cron"),
        pytest.param('title = "t"\nprompt = "p"\nschedule = "0 3 * * *"\ntimezone = "Berlin"', "schedule",
                     "triggers.deps.timezone: unknown time zone 'Berlin'", id="bad zone"),
        pytest.param('title = "t"\nprompt = "p"\nmax_body = "1GB"', "webhook", "triggers.deps.max_body: must be a size",
                     id="bad size"),
        pytest.param('title = "t"\nprompt = "p"\nmax_in_flight = 0', "webhook", "triggers.deps.max_in_flight: must be ≥ 1",
                     id="no room in flight"),
        pytest.param('title = "t"\nprompt = "p"\nauth = "hmac"', "webhook", "triggers.deps.auth: must be one of",
                     id="unknown auth"),
        pytest.param('title = "t"\nprompt = "p"\nsecret_env = "my secret value"', "webhook",
                     "is not an environment variable name", id="a secret where its variable's name belongs"),
        pytest.param('title = "t"\nprompt = "p"\nfilter = { event = "issues", labels = "x" }', "webhook",
                     "triggers.deps.filter.labels: unknown key", id="filter typo"),
    ],
)
def test_trigger_config_errors_name_the_key(extra: str, kind: str, expected: str) -> None:
    text = TRIGGER.format(kind=kind).replace('secret_env = "S"\n', "" if "secret_env" in extra else 'secret_env = "S"\n')
    with pytest.raises(ConfigError) as caught:
        parse_config(text + extra)
    assert any(expected in problem for problem in caught.value.problems), caught.value.problems


def test_webhook_with_a_secret_needs_its_variable_name() -> None:
    with pytest.raises(ConfigError, match='auth = "secret" needs secret_env'):
        parse_config('[triggers.deps]\nrig = "app"\nkind = "webhook"\ntitle = "t"\nprompt = "p"\n')
    config = parse_config('[triggers.deps]\nrig = "app"\nkind = "webhook"\ntitle = "t"\nprompt = "p"\nauth = "none"\n'
                          'max_body = "1MB"\n[server]\nport = 0\n')
    assert config.triggers["deps"].max_body == 1024 * 1024 and config.server.port == 0


# -- signatures ---------------------------------------------------------------------------


def test_github_signature_matches_githubs_documented_example() -> None:
    # docs.github.com "Validating webhook deliveries": this secret and payload give this signature.
    body, secret = b"Hello, World!", "It's a Secret to Everybody"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature(body, secret) == expected
    assert github_signature_ok(expected, body, secret)
    assert github_signature_ok(expected.upper().replace("SHA256=", "sha256="), body, secret)
    for bad in (None, "", "sha1=" + expected[7:], expected[:-1] + "0", "sha256="):
        assert not github_signature_ok(bad, body, secret)
    assert not github_signature_ok(expected, body + b" ", secret)
    assert not github_signature_ok(expected, body, "")


def test_shared_secret() -> None:
    assert shared_secret_ok("k", "k") and not shared_secret_ok("k ", "k") and not shared_secret_ok("k", "")


# -- the request policy ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "intake,expected",
    [
        pytest.param(policy.Intake(False, 0, 20), policy.Accept(), id="room"),
        pytest.param(policy.Intake(False, 19, 20), policy.Accept(), id="the 20th"),
        pytest.param(policy.Intake(False, 20, 20), 429, id="the 21st"),
        pytest.param(policy.Intake(True, 0, 20), 409, id="paused"),
        pytest.param(policy.Intake(True, 20, 20, ("rq-1", "app-1")), policy.Replay("rq-1", "app-1"),
                     id="a repeated delivery is answered as the first time, paused or full"),
    ],
)
def test_admit(intake: policy.Intake, expected: object) -> None:
    decision = policy.admit(intake, "deps")
    if isinstance(expected, int):
        assert isinstance(decision, policy.Refuse) and decision.status == expected
        assert (decision.retry_after is not None) == (expected == 429)
    else:
        assert decision == expected


LABELED = {"action": "labeled", "label": {"name": "ai-implement"}, "issue": {"labels": [{"name": "bug"}]}}


@pytest.mark.parametrize(
    "wanted,event,body,passes",
    [
        pytest.param({"event": "issues", "action": "labeled", "label": "ai-implement"}, "issues", LABELED, True, id="match"),
        pytest.param({"event": "issues"}, "pull_request", LABELED, False, id="other event"),
        pytest.param({"event": "issues"}, None, LABELED, False, id="no event header"),
        pytest.param({"action": "opened"}, "issues", LABELED, False, id="other action"),
        pytest.param({"label": "bug"}, "issues", LABELED, False, id="the label added is another one"),
        pytest.param({"label": "bug"}, "issues", {"action": "opened", "issue": {"labels": [{"name": "bug"}]}}, True,
                     id="no label added: the issue's labels count"),
        pytest.param({"label": "x"}, "issues", "not json", False, id="a body that is not an object"),
        pytest.param({}, None, None, True, id="an empty filter passes everything"),
    ],
)
def test_filter(wanted: dict[str, str], event: str | None, body: object, passes: bool) -> None:
    assert (policy.filter_mismatch(wanted, event, body) is None) == passes


@pytest.mark.parametrize(
    "fate,expected",
    [
        pytest.param(policy.IssueFate(True, "open"), None, id="queued"),
        pytest.param(policy.IssueFate(True, "hooked"), None, id="working"),
        pytest.param(policy.IssueFate(True, "in_review"), None, id="in the merge queue"),
        pytest.param(policy.IssueFate(True, "closed", "merged", ("mr-1", "0123456789abcdef")),
                     policy.Settled("success", "merged 0123456789", "mr-1"), id="merged"),
        pytest.param(policy.IssueFate(True, "closed", "duplicate"),
                     policy.Settled("failed", "closed without a merge: duplicate"), id="closed by hand"),
        pytest.param(policy.IssueFate(True, "blocked", "could not start app-1 after 3 tries"),
                     policy.Settled("failed", "blocked: could not start app-1 after 3 tries"), id="parked"),
        pytest.param(policy.IssueFate(False), policy.Settled("failed", "its issue no longer exists"), id="gone"),
    ],
)
def test_settle(fate: policy.IssueFate, expected: policy.Settled | None) -> None:
    assert policy.settle(fate) == expected
