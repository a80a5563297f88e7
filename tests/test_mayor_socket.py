"""`gt sling` through a running Mayor: the same sling, the same results and errors, the
caller's environment for the agent; and the CLI doing it itself when no Mayor answers."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from gastown import errors
from gastown.roles import mayor_socket
from gastown.town import Town
from tests.helpers import gt_json, retry_until, run_gt
from tests.test_sling import add_agents, server


def agent_environ(socket_name: str, pane: str) -> dict[str, str]:
    pid = int(server(socket_name).panes.get(pane_id=pane).pane_pid)
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def requests_logged(town: Path) -> int:
    log = town / ".gastown" / "logs" / "mayor.log"
    return log.read_text().count("requested over the socket") if log.exists() else 0


@pytest.fixture
def mayor_town(rig_town: Path, tmux_socket: str):  # type: ignore[no-untyped-def]
    add_agents(rig_town)
    run_gt("up", cwd=rig_town, check=True)
    retry_until(lambda: (rig_town / ".gastown" / "run" / "mayor.sock").exists(), timeout=30, what="the Mayor's socket")
    yield rig_town
    run_gt("down", cwd=rig_town)


@pytest.mark.tmux
@pytest.mark.slow
def test_sling_goes_through_the_mayor_with_the_callers_environment(mayor_town: Path, tmux_socket: str) -> None:
    town = mayor_town
    issue = gt_json("issue", "create", "through the mayor", cwd=town)["id"]
    result = gt_json("sling", issue, "--agent", "argbot", cwd=town, env={"KEEP_ME": "from-the-cli", "CI": "true"})
    assert requests_logged(town) == 1, "the Mayor did the sling"
    assert set(result) == {"status", "issue", "rig", "polecat", "spawn", "pane", "branch", "convoy"}
    assert result["status"] == "started" and result["issue"] == issue
    environ = agent_environ(tmux_socket, result["pane"])
    assert environ["KEEP_ME"] == "from-the-cli" and "CI" not in environ, "the agent gets the caller's environment"
    assert environ["GT_SPAWN"] == result["spawn"]
    again = gt_json("sling", issue, "--agent", "argbot", cwd=town)
    assert again["status"] == "already" and again["spawn"] == result["spawn"]
    two = [gt_json("issue", "create", f"batch {n}", cwd=town)["id"] for n in range(2)]
    batch = gt_json("sling", *two, "--agent", "argbot", cwd=town)
    assert [r["issue"] for r in batch] == two and batch[0]["convoy"] and batch[0]["convoy"] == batch[1]["convoy"]
    assert requests_logged(town) == 3


@pytest.mark.tmux
@pytest.mark.slow
def test_errors_through_the_mayor_are_the_errors_of_the_cli(mayor_town: Path) -> None:
    town = mayor_town
    closed = gt_json("issue", "create", "closed", cwd=town)["id"]
    run_gt("issue", "close", closed, cwd=town, check=True)
    refused = run_gt("sling", closed, cwd=town)
    assert refused.returncode == 6 and "is closed" in refused.stderr and "gt issue reopen" in refused.stderr
    quitter = run_gt("sling", gt_json("issue", "create", "q", cwd=town)["id"], "--agent", "quitter", cwd=town)
    assert quitter.returncode == 1 and "exited at once (status 42)" in quitter.stderr
    missing = run_gt("sling", gt_json("issue", "create", "m", cwd=town)["id"], "--agent", "missing", cwd=town)
    assert missing.returncode == 5 and "no-such-agent-binary-xyz" in missing.stderr
    assert requests_logged(town) == 3
    assert "Traceback" not in refused.stderr + quitter.stderr + missing.stderr


@pytest.mark.tmux
def test_without_a_listening_mayor_the_cli_slings_itself(rig_town: Path, tmux_socket: str) -> None:
    add_agents(rig_town)
    stale = rig_town / ".gastown" / "run" / "mayor.sock"
    stale.parent.mkdir(parents=True, exist_ok=True)
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(stale))
    left.close()  # a socket file nobody listens on, as a killed Mayor leaves it
    issue = gt_json("issue", "create", "no mayor", cwd=rig_town)["id"]
    assert gt_json("sling", issue, "--agent", "argbot", cwd=rig_town)["status"] == "started"


# -- the socket itself ----------------------------------------------------------------------------


@pytest.fixture
def long_town(tmp_path: Path) -> Town:
    """A town whose socket path is longer than a Unix socket address may be."""
    root = tmp_path / ("x" * 60) / ("y" * 60) / "town"
    (root / ".gastown" / "run").mkdir(parents=True)
    assert len(str(mayor_socket.socket_path(Town(root)))) > 108
    return Town(root)


def test_a_request_and_its_reply_even_on_a_long_path(long_town: Town) -> None:
    seen: list[dict[str, Any]] = []

    def handle(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        return {"results": [{"echo": request["issues"]}]}

    listening = mayor_socket.MayorSocket(long_town, handle)
    listening.start()
    try:
        path = mayor_socket.socket_path(long_town)
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        replies = []
        threads = [threading.Thread(target=lambda n=n: replies.append(
            mayor_socket.ask(long_town, {"op": "sling", "issues": [f"app-{n}"]}))) for n in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(r["results"][0]["echo"][0] for r in replies) == [f"app-{n}" for n in range(5)]
        assert len(seen) == 5
    finally:
        listening.stop()
    assert not mayor_socket.socket_path(long_town).exists()
    assert mayor_socket.ask(long_town, {"op": "sling"}) is None, "no Mayor: the caller does the work"


def test_a_request_that_is_not_json_gets_an_error(long_town: Town) -> None:
    listening = mayor_socket.MayorSocket(long_town, lambda request: {"results": []})
    listening.start()
    try:
        with mayor_socket._unix_address(mayor_socket.socket_path(long_town)) as address, socket.socket(socket.AF_UNIX) as conn:
            conn.connect(address)
            conn.sendall(b"[1, 2")
            conn.shutdown(socket.SHUT_WR)
            reply = json.loads(mayor_socket._read_all(conn))
    finally:
        listening.stop()
    assert reply["error"]["type"] == "InvalidInput" and reply["error"]["exit_code"] == 2


@pytest.mark.parametrize(
    ("error", "cls", "code"),
    [
        ({"type": "Conflict", "message": "issue x is closed", "hint": "reopen it", "exit_code": 6}, errors.Conflict, 6),
        ({"type": "NotFound", "message": "no issue", "hint": None, "exit_code": 4}, errors.NotFound, 4),
        ({"type": "ToolMissing", "message": "no binary", "hint": "install it", "exit_code": 5}, errors.ToolMissing, 5),
        ({"type": "ConfigError", "message": "bad", "problems": ["a: b", "c: d"], "exit_code": 3}, errors.ConfigError, 3),
        ({"type": "GitError", "message": "git failed", "argv": ["git", "x"], "returncode": 128, "exit_code": 1},
         errors.GitError, 1),
        ({"type": "NotYetInvented", "message": "exited at once", "exit_code": 1}, errors.GastownError, 1),
        ({"type": "object", "message": "not ours", "exit_code": 7}, errors.GastownError, 7),
    ],
    ids=["conflict", "not-found", "tool-missing", "config", "git", "unknown-to-the-cli", "not-an-error-class"],
)
def test_an_error_reply_is_raised_as_the_same_error(error: dict[str, Any], cls: type, code: int) -> None:
    with pytest.raises(errors.GastownError) as raised:
        mayor_socket.raise_error({"results": [], "error": error})
    assert type(raised.value) is cls and int(raised.value.exit_code) == code
    assert raised.value.message == error["message"] and raised.value.hint == error.get("hint")
    if cls is errors.ConfigError:
        assert raised.value.problems == ["a: b", "c: d"]  # type: ignore[attr-defined]
    mayor_socket.raise_error({"results": []})  # no error: nothing raised
