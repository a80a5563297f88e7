"""GitHub against the fake server (tests/fakes/github.py) and a bare repo standing in for
the GitHub remote: issues in, pull requests out and followed, fix cycles, comments back."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from gastown.context import Context
from gastown.github.desk import GitHubDesk, sync_now
from gastown.ledger import github as gh
from gastown.ledger.issues import get_issue, set_issue_status
from gastown.ledger.mrs import get_mr
from gastown.refinery.engine import Refinery
from gastown.states import IssueStatus, MRState
from gastown.town import Town
from tests.fakes.github import FakeGitHub
from tests.helpers import run_gt
from tests.refinery_support import RecordingSlinger, submit, upstream_file

TOKEN = "ghp_fakeTOKEN_e2e_0123456789abcdef"
REPO = "acme/app"


def set_github(town: Path, **keys: Any) -> None:
    path = town / "gastown.toml"
    doc = tomlkit.parse(path.read_text())
    table = tomlkit.table()
    for key, value in keys.items():
        table[key] = value
    doc["rigs"]["app"]["github"] = table  # type: ignore[index]
    path.write_text(tomlkit.dumps(doc))


@pytest.fixture
def fake(rig_town: Path, upstream: Path) -> Iterator[FakeGitHub]:
    with FakeGitHub(REPO, upstream, token=TOKEN) as server:
        yield server


def context(town: Path) -> Context:
    return Context(Town(town), environ={"GITHUB_TOKEN": TOKEN})


def gt_env() -> dict[str, str]:
    return {"GITHUB_TOKEN": TOKEN}


# -- issues in ---------------------------------------------------------------------------


def test_sync_imports_labelled_issues_once_and_follows_edits_and_closes(rig_town: Path, fake: FakeGitHub) -> None:
    set_github(rig_town, repo=REPO, api_url=fake.api_url, sling=False)
    one = fake.add_issue("Fix the login", "Steps: `$(rm -rf /)`\nquote \" and ünïcode")
    two = fake.add_issue("Second")
    fake.add_issue("Not ours", labels=("bug",))

    first = run_gt("github", "sync", "app", "--json", cwd=rig_town, env=gt_env())
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)[0]
    assert [i["number"] for i in report["imported"]] == [one["number"], two["number"]]
    town_id = report["imported"][0]["id"]
    shown = json.loads(run_gt("issue", "show", town_id, "--json", cwd=rig_town, check=True).stdout)
    assert shown["body"] == one["body"] and shown["title"] == "Fix the login"  # verbatim
    assert shown["github"] == {"repo": REPO, "number": one["number"], "url": one["html_url"], "state": "open"}
    assert f"{REPO}#{one['number']}" in run_gt("issue", "show", town_id, cwd=rig_town, check=True).stdout

    again = json.loads(run_gt("github", "sync", "app", "--json", cwd=rig_town, env=gt_env(), check=True).stdout)[0]
    assert again["unchanged"] and again["imported"] == []
    assert fake.calls[-1].status == 304 and fake.calls[-1].etag_sent  # a conditional request: no rate limit spent
    listed = json.loads(run_gt("issue", "list", "--json", cwd=rig_town, check=True).stdout)
    assert len(listed) == 2  # idempotent: no duplicate

    fake.edit_issue(one["number"], title="Fix the login page", body="new body")
    fake.edit_issue(two["number"], state="closed")
    third = json.loads(run_gt("github", "sync", "--json", cwd=rig_town, env=gt_env(), check=True).stdout)[0]
    second_id = report["imported"][1]["id"]
    assert third["updated"] == [town_id] and third["closed"] == [second_id]
    ctx = context(rig_town)
    assert get_issue(ctx.ledger.connection(), town_id).title == "Fix the login page"
    assert get_issue(ctx.ledger.connection(), second_id).status == IssueStatus.CLOSED

    fake.edit_issue(two["number"], state="open")  # reopened on GitHub
    fourth = json.loads(run_gt("github", "sync", "--json", cwd=rig_town, env=gt_env(), check=True).stdout)[0]
    assert fourth["updated"] == [second_id]
    assert get_issue(ctx.ledger.connection(), second_id).status == IssueStatus.OPEN


def test_sync_refuses_clearly_without_a_table_or_a_token(rig_town: Path, fake: FakeGitHub) -> None:
    no_table = run_gt("github", "sync", "app", cwd=rig_town, env=gt_env())
    assert no_table.returncode == 4 and "has no [rigs.app.github] table" in no_table.stderr
    assert "Traceback" not in no_table.stderr
    set_github(rig_town, repo=REPO, api_url=fake.api_url, token_env="GT_TEST_NO_SUCH_TOKEN")
    no_token = run_gt("github", "sync", cwd=rig_town, env=gt_env())
    assert no_token.returncode == 1 and "GT_TEST_NO_SUCH_TOKEN is not set" in no_token.stderr
    set_github(rig_town, repo=REPO, api_url=fake.api_url, token_env="WRONG_TOKEN")
    wrong = run_gt("github", "sync", cwd=rig_town, env={"WRONG_TOKEN": "nope"})
    assert wrong.returncode == 1 and "Bad credentials" in wrong.stderr and "Traceback" not in wrong.stderr
    assert fake.calls == [] or all(c.status == 401 for c in fake.calls)


def test_a_secondary_rate_limit_is_waited_out_without_hammering(rig_town: Path, fake: FakeGitHub) -> None:
    set_github(rig_town, repo=REPO, api_url=fake.api_url, sling=False)
    fake.add_issue("One")
    fake.rate_limit_next(1, retry_after=1)
    result = run_gt("github", "sync", "app", "--json", cwd=rig_town, env=gt_env())
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)[0]["imported"]) == 1
    listing = [c for c in fake.calls if c.path.endswith("/issues")]
    assert [c.status for c in listing] == [403, 200]  # one refusal, one retry after Retry-After


def test_a_rig_without_a_github_table_builds_no_client(rig_town: Path, upstream: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import gastown.github as github_pkg

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a GitHub client was built for a rig without [rigs.app.github]")

    monkeypatch.setattr(github_pkg, "connect", refuse)
    monkeypatch.setattr("gastown.github.desk.connect", refuse)
    ctx = context(rig_town)
    GitHubDesk(ctx, "app").step()  # the Mayor's loop: nothing to do, no client
    mr = submit(ctx, {"direct.txt": "straight to main\n"})
    report = Refinery(ctx, "app", slinger=RecordingSlinger()).run_once()
    assert report.outcome == "merged" and report.merged == [mr.id]  # direct mode: today's behaviour
    assert upstream_file(upstream, "direct.txt") == "straight to main\n"


# -- pull requests out and back ----------------------------------------------------------


def imported(ctx: Context, fake: FakeGitHub, title: str = "Add greeting") -> tuple[str, int]:
    number = fake.add_issue(title, "Please add hello.txt")["number"]
    report = sync_now(ctx, "app")[0]
    issue = report.imported[0]["id"]
    with ctx.ledger.write() as conn:  # as if slung: the agent's `gt done` finds it hooked
        set_issue_status(conn, issue, IssueStatus.HOOKED, now=ctx.now())
    return issue, number


def pr_town(rig_town: Path, fake: FakeGitHub, **extra: Any) -> Context:
    set_github(rig_town, repo=REPO, api_url=fake.api_url, sling=False, merge="pr", **extra)
    return context(rig_town)


def test_a_gated_mr_becomes_one_pull_request_and_merges_when_checks_pass(rig_town: Path, fake: FakeGitHub,
                                                                        upstream: Path) -> None:
    ctx = pr_town(rig_town, fake)
    issue, number = imported(ctx, fake)
    fake.ci = lambda pull: [("ci", "success", "all 12 tests passed", "ok")]
    mr = submit(ctx, {"hello.txt": "hello\n"}, issue=issue)

    report = Refinery(ctx, "app", slinger=RecordingSlinger()).run_once()
    assert report.outcome == "pr", report.message
    assert upstream_file(upstream, "hello.txt") is None  # nothing pushed to main by gastown
    pulls = fake.pulls()
    assert len(pulls) == 1 and pulls[0]["head"]["ref"] == f"gastown/{issue}" and pulls[0]["base"]["ref"] == "main"
    assert pulls[0]["title"] == "Add greeting" and f"Closes #{number}" in pulls[0]["body"]
    assert mr.id in pulls[0]["body"] and "Gates" in pulls[0]["body"]
    assert get_mr(ctx.ledger.connection(), mr.id).state == MRState.PR_OPEN
    listing = json.loads(run_gt("mq", "list", "--json", cwd=rig_town, check=True).stdout)
    assert listing[0]["pull_request"]["number"] == pulls[0]["number"]

    table = run_gt("mq", "list", cwd=rig_town, check=True).stdout
    assert f"#{pulls[0]['number']} open" in table  # the PR column: its number, then its checks once followed

    sync_now(ctx, "app")  # follows the PR: checks green, auto-merge
    conn = ctx.ledger.connection()
    assert get_mr(conn, mr.id).state == MRState.MERGED
    assert get_issue(conn, issue).status == IssueStatus.CLOSED
    assert upstream_file(upstream, "hello.txt") == "hello\n"  # merged by "GitHub", in real git
    assert fake.issue(number)["state"] == "closed"
    comments = fake.comments_on(number)
    assert any("opened pull request" in c for c in comments) and any("merged in pull request" in c for c in comments)
    before = len(fake.calls)
    sync_now(ctx, "app")  # nothing left to follow, nothing posted twice
    assert len(fake.comments_on(number)) == len(comments) and len(fake.calls) - before <= 2


def test_a_red_check_sends_the_log_back_and_the_fix_updates_the_same_pr(rig_town: Path, fake: FakeGitHub,
                                                                       upstream: Path) -> None:
    ctx = pr_town(rig_town, fake)
    issue, _ = imported(ctx, fake)
    fake.ci = lambda pull: ([("ci", "failure", "1 test failed", "collected 3 items\nFAILED test_hello - assert 'x'")]
                            if "BROKEN" in (upstream_file(upstream, "hello.txt", pull["head"]["ref"]) or "")
                            else [("ci", "success", "ok", "")])
    slinger = RecordingSlinger()
    first = submit(ctx, {"hello.txt": "BROKEN\n"}, issue=issue)
    assert Refinery(ctx, "app", slinger=slinger).run_once().outcome == "pr"
    sync_now(ctx, "app", slinger=slinger)

    assert get_mr(ctx.ledger.connection(), first.id).state == MRState.FAILED
    assert len(slinger.calls) == 1 and slinger.calls[0]["kind"] == "fix"
    note = slinger.calls[0]["note"]
    assert "GitHub check `ci` failed" in note and "FAILED test_hello - assert 'x'" in note and "1 test failed" in note
    sync_now(ctx, "app", slinger=slinger)
    assert len(slinger.calls) == 1  # handled once, not once per poll

    fix = submit(ctx, {"hello.txt": "hello\n"}, issue=issue, parent=first.commit_sha)
    assert Refinery(ctx, "app", slinger=slinger).run_once().outcome == "pr"
    assert len(fake.pulls()) == 1  # the same PR, updated
    sync_now(ctx, "app", slinger=slinger)
    conn = ctx.ledger.connection()
    assert get_mr(conn, fix.id).state == MRState.MERGED and get_issue(conn, issue).status == IssueStatus.CLOSED
    assert upstream_file(upstream, "hello.txt") == "hello\n"


def test_changes_requested_sends_the_review_comments_back(rig_town: Path, fake: FakeGitHub) -> None:
    ctx = pr_town(rig_town, fake)
    issue, _ = imported(ctx, fake)
    fake.ci = lambda pull: [("ci", "success", "ok", "")]
    slinger = RecordingSlinger()
    mr = submit(ctx, {"hello.txt": "hello\n"}, issue=issue)
    set_github(rig_town, repo=REPO, api_url=fake.api_url, sling=False, merge="pr", auto_merge=False)
    ctx = context(rig_town)
    assert Refinery(ctx, "app", slinger=slinger).run_once().outcome == "pr"
    number = fake.pulls()[0]["number"]
    fake.add_review(number, "CHANGES_REQUESTED", "Please say hello politely.",
                    comments=(("hello.txt", 1, "Use `Hello, world` here"),))
    sync_now(ctx, "app", slinger=slinger)
    assert get_mr(ctx.ledger.connection(), mr.id).state == MRState.CHANGES_REQUESTED
    note = slinger.calls[0]["note"]
    assert "review by @reviewer requests changes" in note and "Please say hello politely." in note
    assert "hello.txt:1: Use `Hello, world` here" in note


def test_a_pr_closed_unmerged_rejects_the_mr_and_blocks_the_issue(rig_town: Path, fake: FakeGitHub) -> None:
    ctx = pr_town(rig_town, fake, auto_merge=False)
    issue, number = imported(ctx, fake)
    mr = submit(ctx, {"hello.txt": "hello\n"}, issue=issue)
    assert Refinery(ctx, "app", slinger=RecordingSlinger()).run_once().outcome == "pr"
    fake.repo.pulls[fake.pulls()[0]["number"]]["state"] = "closed"
    sync_now(ctx, "app")
    conn = ctx.ledger.connection()
    assert get_mr(conn, mr.id).state == MRState.REJECTED
    assert get_issue(conn, issue).status == IssueStatus.BLOCKED
    assert any(c.startswith("gastown: blocked: pull request #") for c in fake.comments_on(number))
    assert gh.pull_of_issue(conn, issue).state == "closed"  # type: ignore[union-attr]


# -- events at gt serve ------------------------------------------------------------------


def test_github_deliveries_at_gt_serve_are_checked_then_wake_the_rigs_github_loop(rig_town: Path) -> None:
    from gastown.triggers.signatures import github_signature
    from gastown.wake import last_wake
    from tests.serve_support import github_headers, serving

    secret = "whsec-for-the-test"
    payload = {"action": "labeled", "issue": {"number": 3}, "repository": {"full_name": REPO}}
    raw = json.dumps(payload).encode()

    def post(url: str, body: bytes, headers: dict[str, str]) -> Any:
        import httpx

        return httpx.post(url, content=body, headers=headers, timeout=10)

    set_github(rig_town, repo=REPO, api_url="http://127.0.0.1:9", webhook_secret_env="GH_WEBHOOK_SECRET")
    town = Town(rig_town)
    with serving(rig_town, env={"GH_WEBHOOK_SECRET": secret}) as served:
        url = f"{served.url}/github/app"
        assert post(f"{served.url}/github/nope", raw, github_headers(raw, secret)).status_code == 404
        assert post(url, raw, github_headers(raw, "wrong")).status_code == 401
        unsigned = {k: v for k, v in github_headers(raw, secret).items() if k != "X-Hub-Signature-256"}
        assert post(url, raw, unsigned).status_code == 401
        ping = post(url, raw, github_headers(raw, secret, event="ping"))
        assert ping.status_code == 200 and "ping" in ping.json()["ignored"]
        starred = post(url, raw, github_headers(raw, secret, event="star"))
        assert starred.status_code == 200 and "not followed" in starred.json()["ignored"]
        other = json.dumps({**payload, "repository": {"full_name": "evil/fork"}}).encode()
        assert "another repository" in post(url, other, github_headers(other, secret)).json()["ignored"]
        assert last_wake(town, "github-app") == 0.0  # nothing so far woke the loop
        answer = post(url, raw, {**github_headers(raw, secret), "X-Hub-Signature-256": github_signature(raw, secret)})
        assert answer.status_code == 202 and answer.json() == {"rig": "app", "event": "issues", "action": "labeled"}
        assert last_wake(town, "github-app") > 0.0
        log = served.log.read_bytes()
    assert secret.encode() not in log
    ctx = context(rig_town)
    rows = ctx.ledger.connection().execute("SELECT message FROM events WHERE kind = 'github'").fetchall()
    assert [r[0] for r in rows] == ["GitHub issues/labeled #3"]


def test_without_a_webhook_secret_the_github_endpoint_does_not_exist(rig_town: Path) -> None:
    from tests.serve_support import github_headers, serving

    set_github(rig_town, repo=REPO, api_url="http://127.0.0.1:9")
    raw = b"{}"
    with serving(rig_town) as served:
        import httpx

        answer = httpx.post(f"{served.url}/github/app", content=raw, headers=github_headers(raw, "x"), timeout=10)
    assert answer.status_code == 404


def test_the_mayors_loop_polls_with_conditional_requests(rig_town: Path, fake: FakeGitHub) -> None:
    ctx = pr_town(rig_town, fake, auto_merge=False)
    issue, _ = imported(ctx, fake)
    fake.ci = lambda pull: [("ci", None, "", "")]  # type: ignore[list-item]  # a check still running
    submit(ctx, {"hello.txt": "hello\n"}, issue=issue)
    assert Refinery(ctx, "app", slinger=RecordingSlinger()).run_once().outcome == "pr"
    desk = GitHubDesk(ctx, "app")
    desk.step()
    assert "1 running" in run_gt("mq", "list", cwd=rig_town, check=True).stdout
    first = len(fake.calls)
    desk.step()  # nothing changed on GitHub: every look is a conditional request answered 304
    again = fake.calls[first:]
    assert again and all(c.method == "GET" and c.etag_sent and c.status == 304 for c in again), again
    fake.add_review(fake.pulls()[0]["number"], "COMMENTED", "looks fine")
    desk.step()
    changed = fake.calls[first + len(again):]
    assert any(c.path.endswith("/reviews") and c.status == 200 for c in changed)
    desk.close()


def test_a_pr_merged_by_a_person_during_a_fix_cycle_closes_the_issue_and_releases_its_hook(
        rig_town: Path, fake: FakeGitHub, upstream: Path) -> None:
    ctx = pr_town(rig_town, fake)
    issue, number = imported(ctx, fake)
    fake.ci = lambda pull: [("ci", "failure", "flaky", "timeout")]
    slinger = RecordingSlinger()
    submit(ctx, {"hello.txt": "hello\n"}, issue=issue)
    assert Refinery(ctx, "app", slinger=slinger).run_once().outcome == "pr"
    sync_now(ctx, "app", slinger=slinger)
    assert slinger.calls and get_issue(ctx.ledger.connection(), issue).status == IssueStatus.HOOKED  # a fix cycle runs
    pull = fake.pulls()[0]
    assert fake.merge_in_git(pull, "merge")  # a person merges it anyway
    fake.repo.pulls[pull["number"]].update(state="closed", merged=True, merge_commit_sha="f" * 40)
    sync_now(ctx, "app", slinger=slinger)
    assert get_issue(ctx.ledger.connection(), issue).status == IssueStatus.CLOSED
    assert fake.issue(number)["state"] == "closed"


def test_doctor_checks_the_token_and_the_repository(rig_town: Path, fake: FakeGitHub) -> None:
    def github_check(env: dict[str, str]) -> dict[str, Any]:
        report = json.loads(run_gt("doctor", "--no-gates", "--json", cwd=rig_town, env=env).stdout)
        [check] = [c for c in report["checks"] if c["name"] == "github app"]
        return check

    set_github(rig_town, repo=REPO, api_url=fake.api_url)
    good = github_check(gt_env())
    assert good["ok"] and "acme/app reachable" in good["detail"]
    bad = github_check({"GITHUB_TOKEN": "nope"})
    assert not bad["ok"] and "Bad credentials" in bad["detail"]


def test_closing_the_town_issue_closes_its_pr_instead_of_merging_it(rig_town: Path, fake: FakeGitHub) -> None:
    ctx = pr_town(rig_town, fake)
    issue, _ = imported(ctx, fake)
    fake.ci = lambda pull: [("ci", "success", "ok", "")]
    mr = submit(ctx, {"hello.txt": "hello\n"}, issue=issue)
    assert Refinery(ctx, "app", slinger=RecordingSlinger()).run_once().outcome == "pr"
    run_gt("issue", "close", issue, "--reason", "not wanted", cwd=rig_town, check=True)
    sync_now(ctx, "app")
    [pull] = fake.pulls()
    assert pull["state"] == "closed" and not pull["merged"]
    assert fake.count("PUT", r".*/merge") == 0
    assert get_mr(ctx.ledger.connection(), mr.id).state == MRState.REJECTED


def test_a_long_labelled_listing_is_read_page_by_page(rig_town: Path, fake: FakeGitHub) -> None:
    set_github(rig_town, repo=REPO, api_url=fake.api_url, sling=False)
    for n in range(105):
        fake.add_issue(f"issue {n}")
    report = sync_now(context(rig_town), "app")[0]
    assert len(report.imported) == 105 and report.imported[-1]["number"] == 105
    pages = [c.query.get("page", "1") for c in fake.calls if c.path.endswith("/issues")]
    assert pages == ["1", "1", "2"]  # the conditional first page, then the listing page by page


def test_the_token_reaches_git_only_as_an_environment_header_never_argv(rig_town: Path, fake: FakeGitHub,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import gastown.git.merge as merge
    from gastown.git.cmd import Git
    from gastown.github.client import GitHubClient

    ctx = pr_town(rig_town, fake, auto_merge=False)
    issue, _ = imported(ctx, fake)
    submit(ctx, {"hello.txt": "hello\n"}, issue=issue)
    seen: list[tuple[tuple[str, ...], dict[str, str]]] = []

    class RecordingGit(Git):
        def run(self, *args: str, **kwargs: Any) -> Any:
            seen.append((args, dict(self._env)))
            return super().run(*args, **kwargs)

    monkeypatch.setattr(merge, "Git", RecordingGit)
    original = GitHubClient.git_auth_env  # the fake's bare repo stands in for an https remote, which gets the header
    monkeypatch.setattr(GitHubClient, "git_auth_env",
                        lambda self, url: original(self, "https://github.com/acme/app.git"))
    assert Refinery(ctx, "app", slinger=RecordingSlinger()).run_once().outcome == "pr"
    [(argv, env)] = [(a, e) for a, e in seen if a and a[0] == "push"]
    assert TOKEN not in " ".join(argv) and not any(TOKEN in v for v in env.values())
    assert env["GIT_CONFIG_KEY_0"] == "http.https://github.com/.extraHeader"
    header = env["GIT_CONFIG_VALUE_0"].removeprefix("Authorization: Basic ")
    assert base64.b64decode(header).decode() == f"x-access-token:{TOKEN}"



def test_the_mayors_loop_reports_a_missing_token_once_and_keeps_going(rig_town: Path, fake: FakeGitHub) -> None:
    set_github(rig_town, repo=REPO, api_url=fake.api_url, token_env="GT_TEST_UNSET_TOKEN")
    ctx = context(rig_town)
    desk = GitHubDesk(ctx, "app")
    desk.step()
    desk.step()
    rows = ctx.ledger.connection().execute("SELECT message FROM events WHERE kind = 'github'").fetchall()
    assert [r[0] for r in rows] == ["GitHub pass failed: the GitHub token variable GT_TEST_UNSET_TOKEN is not set "
                                    "(export GT_TEST_UNSET_TOKEN (a token with the permissions in docs/github.md) "
                                    "in the environment of `gt up` and `gt github sync`)"]
