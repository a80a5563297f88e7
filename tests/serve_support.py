"""Shared by the server's tests: a real `gt serve` on 127.0.0.1 (port chosen by binding 0),
always stopped; GitHub-shaped webhook payloads; trigger config snippets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers import ledger_rows, retry_until

TRIGGERS = '''
[triggers.deps]
rig = "app"
kind = "webhook"
title = "Dependency update: {{bodyJson.package}}"
prompt = """Update the dependency this alert names, run the tests, fix what breaks.
{{bodyJson}}"""
secret_env = "DEPS_SECRET"
max_in_flight = 20

[triggers.gh]
rig = "app"
kind = "webhook"
title = "{{bodyJson.issue.title}}"
prompt = """{{bodyJson.issue.body}}

Reported at {{bodyJson.issue.html_url}} by {{bodyJson.sender.login}}."""
auth = "github"
secret_env = "GH_SECRET"
filter = { event = "issues", action = "labeled", label = "ai-implement" }

[triggers.local]
rig = "app"
kind = "webhook"
title = "Local: {{headers.x-kind}}"
prompt = "{{body}}"
auth = "none"

[triggers.nightly]
rig = "app"
kind = "schedule"
schedule = "0 3 * * *"
timezone = "Europe/Berlin"
title = "Nightly sweep {{scheduledTime}}"
prompt = "Sweep (slot {{scheduledTime}})."
'''

SECRETS = {"DEPS_SECRET": "deps-s3cret-value", "GH_SECRET": "gh-s3cret-value"}


def add_triggers(town: Path, text: str = TRIGGERS) -> None:
    with (town / "gastown.toml").open("a") as handle:
        handle.write(text)


@dataclass
class Served:
    town: Path
    url: str
    pid: int
    log: Path

    def hook(self, name: str) -> str:
        """The trigger's full URL, from its token in the ledger (the server made it at start;
        `gt trigger show` prints the same, see test_trigger_cli)."""
        [row] = ledger_rows(self.town, "SELECT token FROM triggers WHERE name = ?", name)
        return f"{self.url}/hooks/{name}/{row['token']}"


@contextmanager
def serving(town: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`gt serve --port 0` for ``town`` in a process of its own; stopped (and reaped) afterwards."""
    log = town.parent / f"serve-{uuid.uuid4().hex[:6]}.out"
    full_env = {**os.environ, **SECRETS, **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gastown", "serve", "--port", "0", *args], cwd=town, env=full_env,
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        record = retry_until(lambda: _record(town, proc), timeout=60, what=f"the server to bind (log: {log})")
        assert record is not None
        yield Served(town, f"http://127.0.0.1:{record['port']}", proc.pid, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _record(town: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    if proc.poll() is not None:
        raise AssertionError(f"gt serve exited with {proc.returncode}")
    try:
        record: dict[str, Any] = json.loads((town / ".gastown" / "run" / "server.json").read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("pid") == proc.pid else None


def github_issue_payload(title: str, body: str, *, label: str = "ai-implement", action: str = "labeled",
                         number: int = 42) -> dict[str, Any]:
    """An ``issues`` event in the shape GitHub sends (docs.github.com, octokit/webhooks
    examples): the issue, the label just added, the repository and the sender."""
    owner = {"login": "octo-org", "id": 6811672, "type": "Organization", "site_admin": False,
             "html_url": "https://github.com/octo-org"}
    user = {"login": "mona", "id": 583231, "node_id": "MDQ6VXNlcjU4MzIzMQ==", "type": "User", "site_admin": False,
            "html_url": "https://github.com/mona", "url": "https://api.github.com/users/mona"}
    label_obj = {"id": 208045946, "node_id": "MDU6TGFiZWwyMDgwNDU5NDY=", "name": label, "color": "0e8a16",
                 "default": False, "description": "Let an agent implement it",
                 "url": f"https://api.github.com/repos/octo-org/app/labels/{label}"}
    repo_url = "https://api.github.com/repos/octo-org/app"
    return {
        "action": action,
        "issue": {
            "url": f"{repo_url}/issues/{number}", "repository_url": repo_url,
            "html_url": f"https://github.com/octo-org/app/issues/{number}", "id": 1_800_000_000 + number,
            "node_id": "I_kwDOAbc123", "number": number, "title": title, "user": user,
            "labels": [{"id": 1, "name": "bug", "color": "d73a4a", "default": True}, label_obj],
            "state": "open", "locked": False, "assignee": None, "assignees": [], "milestone": None,
            "comments": 0, "created_at": "2026-11-29T09:12:44Z", "updated_at": "2026-11-30T08:01:02Z",
            "closed_at": None, "author_association": "MEMBER", "active_lock_reason": None, "body": body,
            "reactions": {"url": f"{repo_url}/issues/{number}/reactions", "total_count": 0, "+1": 0, "-1": 0},
            "state_reason": None,
        },
        "label": label_obj,
        "repository": {
            "id": 1296269, "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5", "name": "app", "full_name": "octo-org/app",
            "private": False, "owner": owner, "html_url": "https://github.com/octo-org/app", "fork": False,
            "url": repo_url, "default_branch": "main", "open_issues_count": 3,
        },
        "sender": user,
    }


def github_headers(body: bytes, secret: str, *, event: str = "issues", delivery: str | None = None) -> dict[str, str]:
    """The headers GitHub sends with a delivery, signed with ``secret``."""
    from gastown.triggers.signatures import github_signature

    return {
        "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/a1b2c3d",
        "X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "292430182", "X-GitHub-Hook-Installation-Target-Type": "repository",
        "X-GitHub-Hook-Installation-Target-ID": "1296269",
        "X-Hub-Signature": "sha1=0000000000000000000000000000000000000000",
        "X-Hub-Signature-256": github_signature(body, secret),
    }
