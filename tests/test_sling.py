"""Slinging issues onto polecats: real tmux (isolated socket), real git, real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import libtmux
import pytest

from tests.helpers import create_issue, git, gt_json, kill_tmux_server, ledger_rows, retry_until, run_gt

AGENTS = Path(__file__).parent / "agents"

pytestmark = pytest.mark.tmux


def add_agents(town: Path) -> None:
    with (town / "gastown.toml").open("a") as handle:
        handle.write(
            f"""
[agents.argbot]
command = [{json.dumps(sys.executable)}, {json.dumps(str(AGENTS / "argbot.py"))}, "{{prompt}}"]
prompt = "arg"
ready_delay = "0.2s"

[agents.pastebot]
command = [{json.dumps(sys.executable)}, {json.dumps(str(AGENTS / "pastebot.py"))}]
prompt = "paste"
ready = '^BOT> $'

[agents.lastword]
command = [{json.dumps(sys.executable)}, {json.dumps(str(AGENTS / "lastword.py"))}, "{{prompt}}"]
prompt = "arg"
ready = '^BOT> $'
busy = 'lastword: thinking'
ready_delay = "0.2s"

[agents.quitter]
command = ["sh", "-c", "echo 'quitter: cannot start, no licence' >&2; exit 42"]
prompt = "paste"

[agents.missing]
command = ["no-such-agent-binary-xyz", "--flag"]
"""
        )


@pytest.fixture
def bot_town(rig_town: Path, tmux_socket: str) -> Path:
    add_agents(rig_town)
    return rig_town


def server(socket: str) -> libtmux.Server:
    """An independent view of the town's tmux server (libtmux, not our driver)."""
    return libtmux.Server(socket_name=socket)


def windows(socket: str) -> list[str]:
    """``session:window`` for every window, read in one tmux call: the town kills
    sessions while we look, and a per-session walk would race with that."""
    proc = subprocess.run(["tmux", "-L", socket, "list-windows", "-a", "-F", "#{session_name}:#{window_name}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        assert "no server running" in proc.stderr or "error connecting" in proc.stderr, proc.stderr
        return []
    return sorted(proc.stdout.splitlines())


def hostile_issue(town: Path, tmp_path: Path) -> tuple[str, str, str, list[Path]]:
    markers = [tmp_path / f"pwned-{uuid.uuid4().hex}" for _ in range(3)]
    title = f"'; rm -rf ~ # $(touch {markers[0]}) `touch {markers[1]}` \"dq\" 漢字 🚀 ${{HOME}}"
    body = "".join(f"line {n}: $(touch {markers[2]}) `id` 'q' \"dq\" ünïcödé 🚀 {{{{title}}}} \\n\n" for n in range(260))
    assert len(body.encode()) > 20_000
    issue = gt_json("issue", "create", title, "--body", "-", cwd=town, input=body)["id"]
    return issue, title, body, markers


@pytest.mark.parametrize("agent", ["argbot", "pastebot"])
def test_custom_runtime_gets_the_full_prompt_byte_for_byte(bot_town: Path, tmp_path: Path, agent: str) -> None:
    issue, title, body, markers = hostile_issue(bot_town, tmp_path)
    result = gt_json("sling", issue, "--agent", agent, cwd=bot_town)
    assert result["status"] == "started"
    spawn = result["spawn"]
    prompt = (bot_town / ".gastown" / "prompts" / f"{spawn}.md").read_text()
    assert title in prompt and body in prompt
    received_path = bot_town / "received" / (f"{spawn}.txt" if agent == "argbot" else f"{spawn}-1.txt")
    retry_until(received_path.exists, timeout=20, what=f"{agent} to receive its prompt")
    received = received_path.read_bytes().decode("utf-8")
    expected = prompt if agent == "argbot" else prompt.strip("\n")
    assert received == expected
    for marker in markers:
        assert not marker.exists(), "a shell executed text from the issue"


def test_sling_opens_window_worktree_and_branch(bot_town: Path, tmux_socket: str) -> None:
    issue = gt_json("issue", "create", "first", cwd=bot_town)["id"]
    result = gt_json("sling", issue, "app", "--agent", "argbot", cwd=bot_town)
    polecat, branch = result["polecat"], result["branch"]
    assert branch == f"polecat/{polecat}/{issue}"
    assert windows(tmux_socket) == [f"app:{polecat}"]
    worktree = bot_town / "app" / "polecats" / polecat
    assert git(worktree, "rev-parse", "--abbrev-ref", "HEAD") == branch
    assert gt_json("issue", "show", issue, cwd=bot_town)["status"] == "hooked"
    again = gt_json("sling", issue, cwd=bot_town)
    assert again["status"] == "already" and again["spawn"] == result["spawn"]
    assert windows(tmux_socket) == [f"app:{polecat}"]


def test_agent_env_is_set_and_tmux_and_ci_vars_cleared(bot_town: Path, tmux_socket: str) -> None:
    issue = gt_json("issue", "create", "env", cwd=bot_town)["id"]
    # Slung from a CI shell inside Claude Code: none of that may reach the agent (CI=true
    # makes gemini start headless in a terminal).
    caller = {"CI": "true", "GITHUB_ACTIONS": "true", "CLAUDECODE": "1", "KEEP_ME": "yes"}
    result = gt_json("sling", issue, "--agent", "argbot", cwd=bot_town, env=caller)
    pane = server(tmux_socket).panes.get(pane_id=result["pane"])
    pid = int(pane.pane_pid)
    environ = dict(
        item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in item
    )
    assert environ["GT_ISSUE"] == issue and environ["GT_SPAWN"] == result["spawn"] and environ["GT_ROLE"] == "polecat"
    assert environ["GT_RIG"] == "app" and environ["GT_POLECAT"] == result["polecat"]
    assert environ["GT_TOWN"] == str(bot_town)
    assert environ["PATH"].split(":")[0] == str(bot_town / ".gastown" / "bin")
    assert not {"TMUX", "CLAUDECODE", "CI", "GITHUB_ACTIONS"} & environ.keys()
    assert environ["KEEP_ME"] == "yes"
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[1].endswith(b"argbot.py"), "the pane's process must be the agent itself (exec, no shell)"


@pytest.mark.parametrize("agent", ["quitter", "missing"])
def test_failed_sling_leaves_nothing_behind(bot_town: Path, tmux_socket: str, agent: str) -> None:
    issue = gt_json("issue", "create", "doomed", cwd=bot_town)["id"]
    result = run_gt("sling", issue, "--agent", agent, cwd=bot_town)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    if agent == "quitter":
        assert "exited at once (status 42)" in result.stderr and "no licence" in result.stderr
    else:
        assert "no-such-agent-binary-xyz" in result.stderr and result.returncode == 5
    assert gt_json("issue", "show", issue, cwd=bot_town)["status"] == "open"
    assert windows(tmux_socket) == []
    polecats_dir = bot_town / "app" / "polecats"
    assert not polecats_dir.exists() or list(polecats_dir.iterdir()) == []
    assert gt_json("polecat", "list", cwd=bot_town) == []
    hub = bot_town / "app" / "hub.git"
    assert git(hub, "branch", "--list", "polecat/*") == ""
    # and the issue can be slung again once the runtime is fixed
    assert gt_json("sling", issue, "--agent", "argbot", cwd=bot_town)["status"] == "started"


def test_sling_refuses_closed_foreign_and_unknown(bot_town: Path, upstream: Path) -> None:
    issue = gt_json("issue", "create", "c", cwd=bot_town)["id"]
    run_gt("issue", "close", issue, cwd=bot_town, check=True)
    closed = run_gt("sling", issue, cwd=bot_town)
    assert closed.returncode == 6 and "is closed" in closed.stderr
    run_gt("rig", "add", "web", str(upstream), cwd=bot_town, check=True)
    other = gt_json("issue", "create", "w", "--rig", "web", cwd=bot_town)["id"]
    foreign = run_gt("sling", other, "app", cwd=bot_town)
    assert foreign.returncode == 6 and "belongs to rig 'web'" in foreign.stderr
    unknown = run_gt("sling", "app-zzzzz", cwd=bot_town)
    assert unknown.returncode == 4 and "no issue app-zzzzz" in unknown.stderr


def test_peek_shows_a_dead_agents_last_output(bot_town: Path, tmux_socket: str) -> None:
    issue = gt_json("issue", "create", "peek me", cwd=bot_town)["id"]
    result = gt_json("sling", issue, "--agent", "argbot", cwd=bot_town)
    retry_until(lambda: "argbot: got" in run_gt("peek", f"app/{result['polecat']}", cwd=bot_town).stdout, what="output")
    pane = server(tmux_socket).panes.get(pane_id=result["pane"])
    subprocess.run(["kill", "-9", pane.pane_pid], check=True)
    retry_until(lambda: "dead" in run_gt("agents", cwd=bot_town).stdout, what="the agent to show as dead")
    subprocess.run(["tmux", "-L", tmux_socket, "kill-window", "-t", result["pane"]], check=True)
    peeked = run_gt("peek", f"app/{result['polecat']}", cwd=bot_town)
    assert "not on screen" in peeked.stdout and "argbot: got" in peeked.stdout


def mrs(town: Path) -> list[dict[str, str]]:
    import sqlite3

    with sqlite3.connect(town / ".gastown" / "ledger.db") as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute("SELECT * FROM mrs ORDER BY created_at")]


def demo_issue(town: Path, title: str, path: str, extra: str = "") -> str:
    body = f"~~~demo\nwrite {path}\n{title}\n~~~\n{extra}"
    return create_issue(town, title, body)


def test_three_issues_three_agents_three_mrs_then_reuse(bot_town: Path, tmux_socket: str) -> None:
    ids = [demo_issue(bot_town, f"task {n}", f"out/{n}.txt", "~~~demo\nthink 2\n~~~\n") for n in range(3)]
    results = gt_json("sling", *ids, "app", "--agent", "demo", cwd=bot_town)
    assert [r["status"] for r in results] == ["started"] * 3
    polecats = {r["polecat"] for r in results}
    assert len(polecats) == 3
    assert windows(tmux_socket) == sorted(f"app:{p}" for p in polecats)
    branches = {r["branch"] for r in results}
    for r in results:
        worktree = bot_town / "app" / "polecats" / r["polecat"]
        assert git(worktree, "rev-parse", "--abbrev-ref", "HEAD") == r["branch"]

    retry_until(
        lambda: all(gt_json("issue", "show", i, cwd=bot_town)["status"] == "in_review" for i in ids),
        timeout=60, what="all three issues to reach in_review",
    )
    recorded = mrs(bot_town)
    assert sorted(m["issue"] for m in recorded) == sorted(ids)
    assert {m["branch"] for m in recorded} == branches
    hub = bot_town / "app" / "hub.git"
    for m in recorded:
        assert git(hub, "rev-parse", f"refs/heads/{m['branch']}") == m["commit_sha"]
        assert git(hub, "show", f"{m['commit_sha']}:out/{ids.index(m['issue'])}.txt") == f"task {ids.index(m['issue'])}"
    retry_until(lambda: all(p["state"] == "idle" for p in gt_json("polecat", "list", cwd=bot_town)), what="idle polecats")
    retry_until(lambda: windows(tmux_socket) == [], timeout=20, what="finished panes to close")

    fourth = demo_issue(bot_town, "task 4", "out/4.txt")
    again = gt_json("sling", fourth, "--agent", "demo", cwd=bot_town)
    assert again["polecat"] in polecats, "an idle polecat must be reused"
    assert sorted(p.name for p in (bot_town / "app" / "polecats").iterdir()) == sorted(polecats)
    retry_until(lambda: gt_json("issue", "show", fourth, cwd=bot_town)["status"] == "in_review", timeout=30, what="reuse")


def test_twenty_concurrent_nudges_all_arrive_intact(bot_town: Path, tmp_path: Path) -> None:
    record = tmp_path / "received.jsonl"
    env = {"GT_DEMO_RECORD": str(record), "GT_DEMO_NUDGE_THINK": "0.2", "GT_DEMO_THINK": "0.3"}
    issue = gt_json("issue", "create", "stay busy", "--body", "~~~demo\nthink 3\n~~~\n~~~demo\nnodone\n~~~", cwd=bot_town)["id"]
    result = run_gt("sling", issue, "--agent", "demo", "--json", cwd=bot_town, env=env, check=True)
    polecat = json.loads(result.stdout)["polecat"]
    retry_until(record.exists, timeout=20, what="the task to arrive")
    messages = [f"message {n:02d}: {'x' * n} 'quoted' $(not run) 🚀" for n in range(20)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "gastown", "nudge", f"app/{polecat}", message],
            cwd=bot_town, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for message in messages
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    got = [json.loads(line) for line in record.read_text().splitlines()]
    received = [g["text"] for g in got if g["kind"] == "message"]
    assert sorted(received) == sorted(messages), "every nudge must arrive whole, none interleaved or lost"


def agent_env_for(town: Path, slung: dict[str, str]) -> dict[str, str]:
    return {
        "GT_TOWN": str(town), "GT_RIG": slung["rig"], "GT_POLECAT": slung["polecat"],
        "GT_ISSUE": slung["issue"], "GT_SPAWN": slung["spawn"],
    }


def test_gt_done_outside_without_commits_and_twice(bot_town: Path) -> None:
    outside = run_gt("done", cwd=bot_town)
    assert outside.returncode == 2 and "for agents" in outside.stderr and "Traceback" not in outside.stderr

    issue = gt_json("issue", "create", "by hand", cwd=bot_town)["id"]
    slung = gt_json("sling", issue, "--agent", "argbot", cwd=bot_town)
    worktree = bot_town / "app" / "polecats" / slung["polecat"]
    env = agent_env_for(bot_town, slung)
    empty = run_gt("done", cwd=worktree, env=env)
    assert empty.returncode == 6 and "nothing to submit" in empty.stderr
    assert gt_json("issue", "show", issue, cwd=bot_town)["status"] == "hooked"

    (worktree / "feature.txt").write_text("work\n")
    (worktree / "README.md").unlink()  # a deletion the auto-save must never commit
    first = run_gt("done", "--json", cwd=worktree, env=env)
    assert first.returncode == 0, first.stderr
    submitted = json.loads(first.stdout)
    assert submitted["status"] == "submitted" and submitted["commits"] == 1
    assert "README.md" in git(worktree, "ls-tree", "--name-only", "HEAD")
    assert "feature.txt" in git(worktree, "ls-tree", "--name-only", "HEAD")
    assert gt_json("issue", "show", issue, cwd=bot_town)["status"] == "in_review"

    second = run_gt("done", "--json", cwd=worktree, env=env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["status"] == "already" and json.loads(second.stdout)["mr"] == submitted["mr"]
    assert len(mrs(bot_town)) == 1


def test_after_gt_done_the_agent_finishes_its_turn_before_its_pane_closes(bot_town: Path) -> None:
    """A real CLI answers its model after the `gt done` tool call and records that
    answer's usage; closing its pane a second after `gt done` returned lost both."""
    issue = gt_json("issue", "create", "finish the turn", cwd=bot_town)["id"]
    slung = gt_json("sling", issue, "--agent", "lastword", cwd=bot_town)
    spawn = str(slung["spawn"])
    retry_until(lambda: ledger_rows(bot_town, "SELECT 1 FROM spawns WHERE id = ? AND status = 'ended'", spawn),
                timeout=90, what="the spawn to end after gt done")
    assert (bot_town / "lastword" / f"{spawn}.txt").read_text() == "the answer after gt done, recorded\n"
    [row] = ledger_rows(bot_town, "SELECT done_at, ended_at FROM spawns WHERE id = ?", spawn)
    assert 4.0 <= row["ended_at"] - row["done_at"] < 30, row  # not the 45 s timeout: it saw the prompt


def test_done_blocked_escalates_and_keeps_the_work_for_later(bot_town: Path) -> None:
    issue = gt_json("issue", "create", "impossible", cwd=bot_town)["id"]
    slung = gt_json("sling", issue, "--agent", "argbot", cwd=bot_town)
    worktree = bot_town / "app" / "polecats" / slung["polecat"]
    result = run_gt("done", "--blocked", "needs a database password", cwd=worktree, env=agent_env_for(bot_town, slung))
    assert result.returncode == 0, result.stderr
    shown = gt_json("issue", "show", issue, cwd=bot_town)
    assert shown["status"] == "blocked" and "database password" in shown["close_reason"]
    [polecat] = gt_json("polecat", "list", cwd=bot_town)
    assert polecat["state"] == "blocked" and polecat["issue"] == issue
    # reopening (or slinging again) resumes the same polecat on the same branch
    again = gt_json("sling", issue, cwd=bot_town)
    assert again["status"] == "resumed" and again["polecat"] == slung["polecat"]
    assert gt_json("issue", "show", issue, cwd=bot_town)["status"] == "hooked"


def test_polecat_remove_refuses_unmerged_work_unless_forced(bot_town: Path) -> None:
    issue = gt_json("issue", "create", "keep me", cwd=bot_town)["id"]
    slung = gt_json("sling", issue, "--agent", "argbot", cwd=bot_town)
    worktree = bot_town / "app" / "polecats" / slung["polecat"]
    busy = run_gt("polecat", "remove", slung["polecat"], cwd=bot_town)
    assert busy.returncode == 6 and "is working on" in busy.stderr
    (worktree / "submitted.txt").write_text("submitted work\n")
    run_gt("done", cwd=worktree, env=agent_env_for(bot_town, slung), check=True)
    # the agent kept going after `gt done`: a commit nobody submitted, and an uncommitted file
    (worktree / "precious.txt").write_text("hours of work\n")
    git(worktree, "add", "-A")
    git(worktree, "commit", "-q", "-m", "precious")
    sha = git(worktree, "rev-parse", "HEAD")
    (worktree / "uncommitted.txt").write_text("more\n")
    refused = run_gt("polecat", "remove", slung["polecat"], cwd=bot_town)
    assert refused.returncode == 6 and "--force" in refused.stderr
    assert worktree.exists()
    forced = run_gt("polecat", "remove", f"app/{slung['polecat']}", "--force", cwd=bot_town, check=True)
    assert "archived at refs/gastown/archive/" in forced.stdout
    assert not worktree.exists()
    hub = bot_town / "app" / "hub.git"
    tip = git(hub, "for-each-ref", "--format=%(objectname)", "refs/gastown/archive/").split()[0]
    assert git(hub, "merge-base", "--is-ancestor", sha, tip) == ""
    assert git(hub, "show", f"{tip}:uncommitted.txt") == "more"
    assert gt_json("polecat", "list", cwd=bot_town) == []


def test_prime_prints_the_current_instructions(bot_town: Path) -> None:
    issue = gt_json("issue", "create", "prime me", cwd=bot_town)["id"]
    slung = gt_json("sling", issue, "--agent", "argbot", cwd=bot_town)
    worktree = bot_town / "app" / "polecats" / slung["polecat"]
    primed = run_gt("prime", cwd=worktree, env=agent_env_for(bot_town, slung), check=True).stdout
    prompt = (bot_town / ".gastown" / "prompts" / f"{slung['spawn']}.md").read_text()
    assert primed.rstrip("\n") == prompt.rstrip("\n")
    assert "gt done" in primed and issue in primed


def test_a_rig_prompt_template_replaces_the_default(bot_town: Path) -> None:
    (bot_town / "prompts").mkdir()
    (bot_town / "prompts" / "app.md").write_text("Custom! {{issue_id}} {{title}} on {{branch}} {{unknown}}\n")
    from tests.helpers import set_config

    set_config(bot_town, "rigs.app", {"prompt_template": "prompts/app.md"})
    issue = gt_json("issue", "create", "{{branch}} in a title", cwd=bot_town)["id"]
    slung = gt_json("sling", issue, "--agent", "argbot", cwd=bot_town)
    prompt = (bot_town / ".gastown" / "prompts" / f"{slung['spawn']}.md").read_text()
    assert prompt == f"Custom! {issue} {{{{branch}}}} in a title on {slung['branch']} {{{{unknown}}}}\n"


@pytest.mark.parametrize("inside_tmux", [False, True], ids=["outside-tmux", "inside-other-tmux"])
def test_attach_puts_a_terminal_on_the_agents_pane(bot_town: Path, tmux_socket: str, inside_tmux: bool) -> None:
    issue = gt_json("issue", "create", "watch me", cwd=bot_town)["id"]
    slung = gt_json("sling", issue, "--agent", "argbot", cwd=bot_town)
    outer = f"{tmux_socket}-outer"
    try:
        # A terminal for `gt attach`: a pane of a separate tmux server (a user's own tmux, say).
        env_prefix = [] if inside_tmux else ["env", "-u", "TMUX", "-u", "TMUX_PANE"]
        subprocess.run(
            ["tmux", "-L", outer, "-f", "/dev/null", "new-session", "-d", "-x", "120", "-y", "40", "--",
             *env_prefix, sys.executable, "-m", "gastown", "attach", f"app/{slung['polecat']}", "--town", str(bot_town)],
            check=True, env={**os.environ, "GT_TMUX_SOCKET": tmux_socket},
        )

        def clients() -> list[str]:
            out = subprocess.run(["tmux", "-L", tmux_socket, "list-clients", "-F", "#{client_session}"],
                                 capture_output=True, text=True).stdout
            return out.split()

        assert retry_until(clients, timeout=15, what="a client attached to the town's server") == ["app"]
        active = subprocess.run(["tmux", "-L", tmux_socket, "display", "-p", "-t", "=app:", "#{pane_id}"],
                                capture_output=True, text=True).stdout.strip()
        assert active == slung["pane"]
    finally:
        kill_tmux_server(outer)
