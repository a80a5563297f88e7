"""GitHub end to end: `gt up` (Mayor and `gt serve`), the fake GitHub, a demo agent, the
review gate and a bare repo standing in for the GitHub remote (every push is real git).

A labelled issue's webhook delivery wakes the Mayor (its poll is an hour away, so only the
delivery can) → imported → slung to a demo agent → reviewed (a non-blocking finding) and
gated → PR opened with the finding as a line comment → checks reported green by the fake
→ merged → the town's issue and the GitHub issue closed, with comments. Then the token is
looked for everywhere the run wrote and in the agents' environments: it is nowhere.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomlkit

from tests.fakes.github import FakeGitHub
from tests.helpers import git, gt_json, ledger_rows, retry_until, run_gt, set_config

pytestmark = [pytest.mark.tmux, pytest.mark.slow]

TOKEN = "ghp_E2Etoken_must_never_leak_4242"
HOOK_SECRET = "hook-s3cret-for-the-e2e"
REPO = "acme/app"
BODY = ("The greeting is unfriendly.\n\n~~~demo\nwrite greet.py\ntmp = \"Hello, friend!\"\nprint(tmp)\n~~~\n")


@pytest.fixture
def town(rig_town: Path, upstream: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    set_config(rig_town, "server", {"enabled": True, "port": 0})
    set_config(rig_town, "witness", {"patrol_interval": "0.5s", "spawn_grace": "60s", "stop_timeout": "2s"})
    set_config(rig_town, "rigs.app", {"agent": "demo", "gates": ["test -f greet.py"]})
    set_config(rig_town, "rigs.app.review", {"agent": "demo"})
    monkeypatch.setenv("GT_DEMO_THINK", "1.0")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("GH_HOOK_SECRET", HOOK_SECRET)
    yield rig_town
    run_gt("down", "--timeout", "1", cwd=rig_town)


def add_github(town: Path, api_url: str) -> None:
    path = town / "gastown.toml"
    doc = tomlkit.parse(path.read_text())
    table = tomlkit.table()
    table.update({"repo": REPO, "api_url": api_url, "merge": "pr", "webhook_secret_env": "GH_HOOK_SECRET",
                  "poll_interval": "1h"})
    doc["rigs"]["app"]["github"] = table  # type: ignore[index]
    path.write_text(tomlkit.dumps(doc))


def test_a_labelled_issue_goes_to_a_merged_pull_request_and_the_token_stays_home(town: Path, upstream: Path) -> None:
    with FakeGitHub(REPO, upstream, token=TOKEN) as fake:
        fake.ci = lambda pull: [("ci", "success", "3 passed", "collected 3 items\n3 passed")]
        add_github(town, fake.api_url)
        report = gt_json("up", cwd=town)
        assert report["server"], report
        number = fake.add_issue("Make the greeting friendlier", BODY)["number"]
        payload = {"action": "labeled", "issue": {"number": number, "title": "Make the greeting friendlier"},
                   "label": {"name": "gastown"}, "repository": {"full_name": REPO}}
        answer = fake.deliver(f"{report['server']}/github/app", HOOK_SECRET, "issues", payload)
        assert answer.status_code == 202, answer.text
        forged = fake.deliver(f"{report['server']}/github/app", "wrong-secret", "issues", payload)
        assert forged.status_code == 401

        environs: dict[int, bytes] = {}

        def merged() -> bool:
            for row in ledger_rows(town, "SELECT pid FROM spawns WHERE pid IS NOT NULL"):
                pid = int(row["pid"])
                if pid not in environs:
                    try:
                        environs[pid] = Path(f"/proc/{pid}/environ").read_bytes()
                    except OSError:
                        pass
            return fake.issue(number)["state"] == "closed"

        retry_until(merged, timeout=240, interval=0.3, what="the GitHub issue to be closed by a merged pull request")

        [link] = ledger_rows(town, "SELECT issue FROM github_issues WHERE number = ?", number)
        issue = gt_json("issue", "show", link["issue"], cwd=town)
        assert issue["status"] == "closed" and issue["github"]["number"] == number
        assert issue["pull_request"]["state"] == "merged"
        [pull] = fake.pulls()
        assert pull["merged"] and pull["head"]["ref"] == f"gastown/{link['issue']}"
        assert f"Closes #{number}" in pull["body"] and "verdict: **approve**" in pull["body"]
        assert git(upstream, "show", "main:greet.py") == 'tmp = "Hello, friend!"\nprint(tmp)'
        line_comments = fake.review_comments_on(pull["number"])
        assert any(c["path"] == "greet.py" and "nitpick" in c["body"] for c in line_comments)
        comments = fake.comments_on(number)
        assert any("slung to agent `demo` as polecat `app/" in c for c in comments)
        assert any(f"opened pull request #{pull['number']}" in c for c in comments)
        assert any(f"merged in pull request #{pull['number']}" in c for c in comments)
        [mr] = gt_json("mq", "list", "--all", cwd=town)
        assert mr["state"] == "merged" and mr["pull_request"]["number"] == pull["number"]
        polls = fake.count("GET", r"/repos/acme/app/issues")
        assert polls <= 3  # woken by the delivery, not polling

        # The token is nowhere the run wrote, nor in any agent's environment.
        assert environs, "no agent's environment was read while it ran"
        needle = TOKEN.encode()
        for pid, environ in environs.items():
            assert needle not in environ, f"the token is in the environment of agent pid {pid}"
        state = town / ".gastown"
        leaked = [str(p) for p in state.rglob("*") if p.is_file() and not p.name.startswith("ledger.db")
                  and needle in p.read_bytes()]
        assert not leaked, leaked
        prompts = list((state / "prompts").glob("*.md"))
        assert prompts and all(needle not in p.read_bytes() for p in prompts)
        assert list((state / "logs").rglob("*.log"))
        with sqlite3.connect(state / "ledger.db") as conn:
            dump = "\n".join(conn.iterdump())
        assert "github_prs" in dump and TOKEN not in dump
        remotes = git(town / "app" / "hub.git", "config", "--get-regexp", "remote")
        assert TOKEN not in remotes


FIXABLE = ("The greeting crashes.\n\n~~~demo\nwrite greet.py @first\nBROKEN = True\n~~~\n\n"
           "~~~demo\nwrite greet.py @fix\nprint(\"Hello, friend!\")\n~~~\n")


def the_fix_prompt(town: Path, number: int) -> str:
    """The prompt of the one fix cycle the issue imported from GitHub #``number`` went through."""
    [link] = ledger_rows(town, "SELECT issue FROM github_issues WHERE number = ?", number)
    spawns = ledger_rows(town, "SELECT kind, prompt_path FROM spawns WHERE issue = ? ORDER BY started_at", link["issue"])
    assert [s["kind"] for s in spawns] == ["fresh", "fix"]
    return Path(str(spawns[1]["prompt_path"])).read_text()


def test_a_red_check_comes_back_as_a_fix_cycle_and_the_fix_updates_the_same_pr(town: Path, upstream: Path) -> None:
    def ci(pull: dict[str, object]) -> list[tuple[str, str, str, str]]:
        head = pull["head"]["ref"]  # type: ignore[index]
        text = git(upstream, "show", f"{head}:greet.py")
        if "BROKEN" in text:
            return [("unit-tests", "failure", "1 failed, 2 passed",
                     "collected 3 items\ntest_greet.py F..\nE   NameError: BROKEN greeting cannot be printed")]
        return [("unit-tests", "success", "3 passed", "3 passed")]

    with FakeGitHub(REPO, upstream, token=TOKEN) as fake:
        fake.ci = ci
        add_github(town, fake.api_url)
        report = gt_json("up", cwd=town)
        number = fake.add_issue("Fix the greeting", FIXABLE)["number"]
        payload = {"action": "opened", "issue": {"number": number}, "repository": {"full_name": REPO}}
        assert fake.deliver(f"{report['server']}/github/app", HOOK_SECRET, "issues", payload).status_code == 202
        retry_until(lambda: fake.issue(number)["state"] == "closed", timeout=240, interval=0.5,
                    what="the fixed pull request to merge and close the issue")

        fix_prompt = the_fix_prompt(town, number)
        assert "GitHub check `unit-tests` failed (failure)" in fix_prompt
        assert "E   NameError: BROKEN greeting cannot be printed" in fix_prompt  # the log excerpt, fenced as data
        assert "treat as data" in fix_prompt
        [pull] = fake.pulls()  # one PR, updated by the fix
        assert pull["merged"]
        assert git(upstream, "show", "main:greet.py") == 'print("Hello, friend!")'
        mrs = gt_json("mq", "list", "--all", cwd=town)
        assert sorted(m["state"] for m in mrs) == ["merged", "rejected"]  # the red one retired once the fix merged


RENAME = ("Greet properly.\n\n~~~demo\nwrite greet.py @first\nprint(\"hi\")\n~~~\n\n"
          "~~~demo\nwrite greet.py @fix\nprint(\"Hello, world\")\n~~~\n")


def test_a_review_requesting_changes_comes_back_with_its_comments_in_the_prompt(town: Path, upstream: Path) -> None:
    def ci(pull: dict[str, object]) -> list[tuple[str, str, str, str]]:
        text = git(upstream, "show", f"{pull['head']['ref']}:greet.py")  # type: ignore[index]
        return [] if '"hi"' in text else [("unit-tests", "success", "3 passed", "")]  # no CI on the first push

    with FakeGitHub(REPO, upstream, token=TOKEN) as fake:
        fake.ci = ci
        add_github(town, fake.api_url)
        report = gt_json("up", cwd=town)
        hook = f"{report['server']}/github/app"
        number = fake.add_issue("Greet properly", RENAME)["number"]
        repo = {"full_name": REPO}
        assert fake.deliver(hook, HOOK_SECRET, "issues", {"action": "opened", "issue": {"number": number},
                                                          "repository": repo}).status_code == 202
        retry_until(lambda: fake.pulls(), timeout=180, interval=0.5, what="the pull request to open")
        pr = fake.pulls()[0]["number"]
        fake.add_review(pr, "CHANGES_REQUESTED", "Say it the usual way.",
                        comments=(("greet.py", 1, "Use `Hello, world` here, not `hi`"),))
        assert fake.deliver(hook, HOOK_SECRET, "pull_request_review",
                            {"action": "submitted", "pull_request": {"number": pr}, "repository": repo}).status_code == 202
        retry_until(lambda: fake.issue(number)["state"] == "closed", timeout=240, interval=0.5,
                    what="the reworked pull request to merge")

        fix_prompt = the_fix_prompt(town, number)
        assert "GitHub review by @reviewer requests changes on pull request" in fix_prompt
        assert "Say it the usual way." in fix_prompt
        assert "greet.py:1: Use `Hello, world` here, not `hi`" in fix_prompt
        assert [p["number"] for p in fake.pulls()] == [pr] and fake.pulls()[0]["merged"]
        assert git(upstream, "show", "main:greet.py") == 'print("Hello, world")'
