"""Reporting back from an SSH host: a polecat there runs `gt done`, `gt escalate`,
`gt mail` and `gt prime` with no town around it, through the unix socket the hub forwards
over the host's SSH master to a real `gt serve` on 127.0.0.1, authenticated by its
spawn's token (a 0600 file on the host; the ledger holds only its hash).

The host is the real sshd of tests/sshd.py, whose root only SSH can reach; the ledger
rows of the remote hook and spawn are made here (sling's part is the lead's), the
worktree through the driver.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx
import pytest

from gastown.context import Context
from gastown.errors import ExitCode
from gastown.git import worktrees as wt
from gastown.hosts.ssh import SshHost
from gastown.hosts.tokens import new_token
from gastown.ledger import work
from gastown.ledger.issues import create_issue, set_issue_status
from gastown.states import IssueStatus, SpawnStatus
from gastown.town import Town
from tests.helpers import ledger_rows, retry_until, set_config
from tests.serve_support import Served, serving
from tests.sshd import SshServer

pytestmark = [pytest.mark.tmux, pytest.mark.slow]

TARGET = "refs/remotes/origin/main"
PROMPT = "[gastown] task\nIssue: {issue}\nTitle: remote report\nCommit, then run gt done.\n"


@dataclass
class Remote:
    """One remote polecat's world: the town, the host driver, the served hub, the run."""

    town: Path
    host: SshServer
    driver: SshHost
    served: Served
    issue: str
    spawn: str
    token: str
    branch: str
    path: PurePosixPath
    socket: PurePosixPath

    def env(self, spawn: str | None = None, token_file: str | None = None, **extra: str) -> list[str]:
        """The contract's environment of the agent on the host (no GT_TOWN; no token)."""
        spawn = spawn or self.spawn
        values = {
            "GT_RIG": "app", "GT_POLECAT": "ace", "GT_ISSUE": self.issue, "GT_SPAWN": spawn,
            "GT_BRANCH": self.branch, "GT_TARGET": "main", "GT_ROLE": "polecat", "GT_AGENT": "demo",
            "GT_ATTEMPT": "1", "GT_PROMPT_FILE": str(self.driver.layout.prompt_path(spawn)),
            "GT_HUB_SOCKET": str(self.socket),
            "GT_TOKEN_FILE": token_file or str(self.driver.layout.secrets_dir(spawn) / "token"), **extra,
        }
        return [f"{key}={value}" for key, value in values.items()]

    def gt(self, *args: str, env: list[str] | None = None, stdin: str | None = None) -> tuple[int, str, str]:
        """`gt ARGS` run on the host, in the polecat's worktree, over SSH."""
        result = self.driver.ssh.script('cd "$1" && shift && exec env "$@"', str(self.path), *(env or self.env()),
                                        "gt", *args, input=stdin, check=False, timeout=180)
        return result.returncode, result.stdout, result.stderr

    def on_host(self, script: str, *args: str) -> str:
        return self.driver.ssh.script(script, str(self.path), *args, what="a test step").stdout

    def commit(self, name: str, text: str) -> str:
        return self.on_host('cd "$1" && printf "%s\\n" "$3" > "$2" && git add -- "$2" && git commit -qm "add $2" '
                            '&& git rev-parse HEAD', name, text).strip()


def add_remote_spawn(ctx: Context, remote_issue: str, spawn: str, polecat: str, prompt: Path, *, hook: bool) -> str:
    """The ledger rows sling writes for a remote run; returns the run's token."""
    token, digest = new_token()
    with ctx.ledger.write() as conn:
        now = ctx.now()
        if hook:
            work.add_polecat(conn, "app", polecat, now)
            work.insert_hook(conn, issue=remote_issue, rig="app", polecat=polecat, branch=wt.branch_name(polecat, remote_issue),
                             agent="demo", kind="fresh", note=None, now=now, host="b1")
            set_issue_status(conn, remote_issue, IssueStatus.HOOKED, now=now)
        work.insert_spawn(conn, spawn_id=spawn, issue=remote_issue, rig="app", polecat=polecat, agent="demo", attempt=1,
                          kind="fresh", log_path=f"/nowhere/{spawn}.log", prompt_path=str(prompt), now=now, host="b1",
                          token_hash=digest)
        work.update_spawn(conn, spawn, status=SpawnStatus.RUNNING)
        if hook:
            work.set_hook_spawn(conn, remote_issue, spawn)
    return token


@pytest.fixture
def remote(rig_town: Path, ssh_host: SshServer) -> Iterator[Remote]:
    set_config(rig_town, "hosts.b1", ssh_host.host_table())
    set_config(rig_town, "rigs.app", {"hosts": ["local", "b1"]})
    set_config(rig_town, "server", {"enabled": True})  # agents on other hosts report back through it
    town = Town(rig_town)
    ctx = Context(town)
    with ctx.ledger.write() as conn:
        issue = create_issue(conn, rig="app", prefix="app", title="remote report", body="", priority=2, now=ctx.now()).id
    prompt = rig_town / "prompt-sp-r1.md"
    prompt.write_text(PROMPT.format(issue=issue))
    token = add_remote_spawn(ctx, issue, "sp-r1", "ace", prompt, hook=True)
    driver = SshHost.from_config("b1", town)
    assert all(c.ok for c in driver.check(pin=True)), driver.check()
    driver.prepare()
    branch = wt.branch_name("ace", issue)
    driver.sync_rig("app", town.hub_path("app"), [TARGET])
    path = driver.create_worktree("app", "ace", branch, TARGET)
    driver.ssh.put_files({driver.layout.secrets_dir("sp-r1") / "token": token.encode()})
    try:
        with serving(rig_town) as served:
            hub_socket = driver.ensure_hub_tunnel(int(served.url.rsplit(":", 1)[1]))
            yield Remote(rig_town, ssh_host, driver, served, issue, "sp-r1", token, branch, path, hub_socket)
    finally:
        driver.close()


def refused(url: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


def cmdlines() -> list[bytes]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found.append((entry / "cmdline").read_bytes())
            except OSError:
                continue
    return found


def test_gt_done_on_a_host_records_the_hosts_commit_in_the_hub(remote: Remote) -> None:
    head = remote.commit("feature.txt", "made on the host")
    # An uncommitted change is saved first, as locally.
    remote.on_host('cd "$1" && echo more >> feature.txt')
    seen: list[bytes] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.extend(c for c in cmdlines() if remote.token.encode() in c)
            stop.wait(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        code, out, err = remote.gt("done", "--json")
    finally:
        stop.set()
        watcher.join()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "submitted" and doc["issue"] == remote.issue and doc["commits"] == 2
    assert "saved 1 uncommitted file(s) first" in doc["message"]
    saved_head = doc["commit"]
    assert saved_head != head and remote.on_host('cd "$1" && git rev-parse HEAD').strip() == saved_head

    hub = Town(remote.town).hub_path("app")
    assert wt.ref_sha(hub, f"refs/heads/{remote.branch}") == saved_head
    [mr] = ledger_rows(remote.town, "SELECT * FROM mrs WHERE issue = ?", remote.issue)
    assert mr["commit_sha"] == saved_head and mr["branch"] == remote.branch and mr["id"] == doc["mr"]
    [issue] = ledger_rows(remote.town, "SELECT status FROM issues WHERE id = ?", remote.issue)
    assert issue["status"] == "in_review"
    assert ledger_rows(remote.town, "SELECT status FROM spawns WHERE id = ?", remote.spawn)[0]["status"] == "done"

    # Twice: says so, records nothing more (text output, exit 0, like `gt done` locally).
    code, out, err = remote.gt("done")
    assert code == 0, err
    assert out.startswith(f"already submitted as merge request {mr['id']}")
    assert len(ledger_rows(remote.town, "SELECT id FROM mrs WHERE issue = ?", remote.issue)) == 1

    # The token went by file and header only: never on a command line, never into the ledger.
    assert seen == []
    state = remote.town / ".gastown"
    for db in state.glob("ledger.db*"):
        assert remote.token.encode() not in db.read_bytes(), db
    # A finished run's token opens nothing but the "already" answer of done.
    code, out, err = remote.gt("escalate", "still here")
    # "done", or "ended" once `gt done`'s pane end (a detached helper, a second later) has run.
    assert code != 0 and ("has ended (done)" in err or "has ended (ended)" in err), err


def test_tokens_that_are_not_this_runs_are_refused(remote: Remote) -> None:
    ctx = Context(Town(remote.town))
    with ctx.ledger.write() as conn:
        other_issue = create_issue(conn, rig="app", prefix="app", title="another", body="", priority=2, now=ctx.now()).id
    other_token = add_remote_spawn(ctx, other_issue, "sp-r2", "bolt", remote.town / "none.md", hook=False)
    url = remote.served.url + "/agent/done"
    body = {"head": "0" * 40, "branch": remote.branch, "blocked": None}

    def post(spawn: str, token: str | None) -> httpx.Response:
        headers = {"X-GT-Spawn": spawn} | ({"Authorization": f"Bearer {token}"} if token else {})
        return httpx.post(url, json=body, headers=headers, timeout=30)

    for spawn, token in [(remote.spawn, "not-the-token"), (remote.spawn, other_token), ("sp-nobody", remote.token),
                         (remote.spawn, None)]:
        answer = post(spawn, token)
        assert answer.status_code == 401, (spawn, answer.text)
        assert set(answer.json()) >= {"error"} and answer.json()["error"].endswith(("town", "<spawn>"))
    # The right token with malformed work: 422, one sentence.
    answer = httpx.post(url, json={"head": "HEAD", "branch": remote.branch},
                        headers={"X-GT-Spawn": remote.spawn, "Authorization": f"Bearer {remote.token}"}, timeout=30)
    assert answer.status_code == 422 and "full commit id" in answer.json()["error"]
    answer = httpx.post(url, content=b"[1]", headers={"X-GT-Spawn": remote.spawn, "Authorization": f"Bearer {remote.token}"},
                        timeout=30)
    assert answer.status_code == 400

    # Through gt on the host: a token file holding another run's token is refused.
    wrong = remote.driver.layout.secrets_dir("sp-wrong") / "token"
    remote.driver.ssh.put_files({wrong: other_token.encode()})
    remote.commit("a.txt", "a")
    code, out, err = remote.gt("done", env=remote.env(token_file=str(wrong)))
    assert code == ExitCode.FAILURE and "do not name a run of this town" in err and "Traceback" not in err

    # A run that ended (stopped, replaced) loses its token with it.
    with ctx.ledger.write() as conn:
        work.update_spawn(conn, remote.spawn, status=SpawnStatus.ENDED, ended_at=ctx.now(), end_reason="stopped")
    code, out, err = remote.gt("done")
    assert code == ExitCode.FAILURE and "run sp-r1 has ended (ended)" in err
    assert ledger_rows(remote.town, "SELECT COUNT(*) AS n FROM mrs")[0]["n"] == 0


def test_escalate_mail_and_prime_from_a_host_reach_the_town(remote: Remote) -> None:
    code, out, err = remote.gt("prime")
    assert code == 0, err
    assert out.rstrip("\n") == PROMPT.format(issue=remote.issue).rstrip("\n")

    code, out, err = remote.gt("mail", "send", "mayor", "-s", "a question", "-m", "-", stdin="is $(this) safe?\n")
    assert code == 0, err
    [mail] = ledger_rows(remote.town, "SELECT * FROM mail WHERE id = ?", out.strip())
    assert (mail["sender"], mail["recipient"], mail["subject"], mail["body"]) == ("app/ace", "mayor", "a question", "is $(this) safe?\n")

    ctx = Context(Town(remote.town))
    from gastown.ledger import mail as mails

    reply = mails.send(ctx.ledger, "app/ace", "an answer", "yes", sender="human", rigs=["app"])
    code, out, err = remote.gt("mail", "inbox", "--json")
    assert code == 0, err
    assert [m["id"] for m in json.loads(out)] == [reply.id]
    code, out, err = remote.gt("mail", "read", reply.id)
    assert code == 0 and "subject: an answer" in out and "yes" in out
    code, out, err = remote.gt("mail", "read", mail["id"])  # not its own mail
    assert code == ExitCode.NOT_FOUND and "has no message" in err

    code, out, err = remote.gt("escalate", "the tests need a database", "--severity", "high")
    assert code == 0, err
    assert out.startswith("escalated esc-") and f"about {remote.issue} (now blocked)" in out
    [esc] = ledger_rows(remote.town, "SELECT * FROM escalations")
    assert (esc["issue"], esc["polecat"], esc["spawn"], esc["severity"]) == (remote.issue, "ace", remote.spawn, "high")
    assert ledger_rows(remote.town, "SELECT status FROM issues WHERE id = ?", remote.issue)[0]["status"] == "blocked"


def test_done_blocked_from_a_host_escalates_and_keeps_the_work(remote: Remote) -> None:
    head = remote.commit("half.txt", "half done")
    code, out, err = remote.gt("done", "--blocked", "the API key is missing")
    assert code == 0, err
    assert f"{remote.issue} is blocked" in out
    [esc] = ledger_rows(remote.town, "SELECT * FROM escalations")
    assert "the API key is missing" in esc["message"] and esc["issue"] == remote.issue
    # The work was fetched into the hub as a checkpoint; nothing was submitted.
    assert wt.ref_sha(Town(remote.town).hub_path("app"), f"refs/heads/{remote.branch}") == head
    assert ledger_rows(remote.town, "SELECT COUNT(*) AS n FROM mrs")[0]["n"] == 0


def test_nothing_to_submit_is_refused_on_the_host(remote: Remote) -> None:
    code, out, err = remote.gt("done")
    assert code == ExitCode.CONFLICT and "has no commits ahead of main: there is nothing to submit" in err
    code, out, err = remote.gt("done", env=remote.env(GT_BRANCH="polecat/ace/other"))
    assert code == ExitCode.CONFLICT and "but this issue's work belongs on polecat/ace/other" in err


def test_a_hub_that_does_not_answer_loses_nothing(remote: Remote) -> None:
    head = remote.commit("keep.txt", "precious")
    os.kill(remote.served.pid, 15)
    retry_until(lambda: refused(remote.served.url), timeout=30, what="the server to stop")
    code, out, err = remote.gt("done")
    assert code == ExitCode.NOT_RUNNING, (out, err)
    assert err.splitlines()[0] == ("gt: the town's hub does not answer through the tunnel: your commits are safe in this "
                                   "worktree; run gt done again in a minute")
    assert remote.on_host('cd "$1" && git rev-parse HEAD && git status --porcelain').split() == [head]
    assert ledger_rows(remote.town, "SELECT status FROM issues WHERE id = ?", remote.issue)[0]["status"] == "hooked"


def test_the_tunnel_is_idempotent_and_comes_back_with_the_host(remote: Remote) -> None:
    port = int(remote.served.url.rsplit(":", 1)[1])
    assert remote.host.inside("stat", "-c", "%a %F", str(remote.socket)).stdout.split() == ["600", "socket"]
    assert remote.driver.ensure_hub_tunnel(port) == remote.socket  # a second call on the same master
    assert remote.gt("prime")[0] == 0
    # The host restarts: the master dies, the socket file stays behind, stale.
    remote.host.stop()
    remote.host.start()
    assert remote.host.inside("test", "-S", str(remote.socket)).returncode == 0
    remote.driver.ensure_hub_tunnel(port)
    code, out, err = remote.gt("prime")
    assert code == 0 and "Title: remote report" in out, err


def test_a_branch_rewritten_after_a_checkpoint_is_submitted_and_the_old_tip_archived(remote: Remote) -> None:
    hub = Town(remote.town).hub_path("app")
    first = remote.commit("draft.txt", "first try")
    assert remote.driver.fetch_branch("app", remote.branch, hub) == first  # a periodic checkpoint
    rewritten = remote.on_host('cd "$1" && echo better > draft.txt && git commit -qa --amend -m "second try" '
                               '&& git rev-parse HEAD').strip()
    code, out, err = remote.gt("done", "--json")
    assert code == 0, err
    assert json.loads(out)["commit"] == rewritten
    assert wt.ref_sha(hub, f"refs/heads/{remote.branch}") == rewritten
    archived = wt.Git(hub).out("for-each-ref", "--format=%(objectname)", wt.ARCHIVE_PREFIX)
    assert archived.split() == [first]  # the checkpoint the hub held is kept, never lost
