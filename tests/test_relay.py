"""The listings answered by the running Mayor (``gastown.cli.relay``): the same bytes and
exit code as the command gives on its own, on a pipe and on a terminal, errors included;
and the command runs itself whenever the Mayor cannot or will not answer."""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from gastown.cli.relay import relay
from tests.helpers import create_issue, retry_until, run_gt
from tests.test_sling import add_agents

HOSTILE = "pwn \x1b]0;owned\x07 \x1b[2J \x9b31m red \u202eevil and a title long enough to be cut on a narrow terminal"

LISTINGS = [
    ["issue", "list"],
    ["issue", "list", "--json"],
    ["issue", "list", "-r", "app", "--status", "open"],
    ["issue", "list", "--rig", "nope"],  # an error: the same sentence and exit code
    ["mq", "list", "--all"],
    ["agents", "--json"],
    ["status", "--json"],
]

# Run in a `gt` process: did the Mayor answer? (then not even the fast path was imported)
PROBE = """
import sys
from gastown._entry import main
code = main(sys.argv[1:])
sys.stderr.write('RELAYED=' + str('gastown.cli.fast' not in sys.modules) + '\\n')
sys.exit(code)
"""


def on_a_terminal(args: list[str], town: Path, columns: int) -> tuple[int, bytes, bool]:
    """Run `gt ARGS` with its stdout on a pty ``columns`` wide: exit code, the bytes it
    printed there, and whether the Mayor answered."""
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    try:
        proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=town, stdout=secondary,
                              stderr=subprocess.PIPE, timeout=60, env={**os.environ, "TERM": "xterm"})
        os.close(secondary)
        secondary = -1
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the pty's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if secondary != -1:
            os.close(secondary)
        os.close(primary)
    relayed = "RELAYED=True" in proc.stderr.decode()
    return proc.returncode, b"".join(chunks), relayed


def timeless(args: list[str], out: bytes) -> object:
    """`gt status --json` says when it looked ("at"), and when each of the Mayor's loops
    last went round; nothing else may differ."""
    if args[0] != "status":
        return out
    document = json.loads(out)
    document.pop("at")
    document["mayor"]["loops"] = sorted(loop["loop"] for loop in document["mayor"]["loops"])
    return document


@pytest.mark.tmux
@pytest.mark.slow
def test_the_mayor_answers_listings_exactly_as_the_command_would(
    rig_town: Path, tmux_socket: str, monkeypatch: pytest.MonkeyPatch, capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    add_agents(rig_town)
    create_issue(rig_town, HOSTILE, rig="app", priority=1)
    create_issue(rig_town, "second", rig="app")
    run_gt("up", cwd=rig_town, check=True)
    try:
        retry_until(lambda: (rig_town / ".gastown" / "run" / "mayor.sock").exists(), timeout=30, what="the Mayor's socket")
        monkeypatch.chdir(rig_town)
        for args in LISTINGS:
            code = relay(list(args))
            relayed = capfdbinary.readouterr()
            assert code is not None, f"the Mayor answered {args}"
            # The same command line, but with a relative --town: the Mayor declines it, so it runs here.
            assert relay([*args, "--town", "."]) is None
            here = run_gt(*args, "--town", ".", cwd=rig_town)
            assert (code, relayed.err.decode()) == (here.returncode, here.stderr), args
            assert timeless(args, relayed.out) == timeless(args, here.stdout.encode()), args
            if args == ["issue", "list", "--json"]:
                assert HOSTILE in [doc["title"] for doc in json.loads(relayed.out)]
            if args == ["issue", "list"]:
                assert b"\x1b" not in relayed.out and b"\x07" not in relayed.out and "\u202e".encode() not in relayed.out

        # On a terminal 60 columns wide: the header in bold, the title cut to fit; the same bytes.
        code, shown, relayed_there = on_a_terminal(["issue", "list"], rig_town, 60)
        local_code, local_shown, relayed_here = on_a_terminal(["issue", "list", "--town", "."], rig_town, 60)
        assert (relayed_there, relayed_here) == (True, False)
        assert (code, shown) == (local_code, local_shown)
        assert b"\x1b[1m" in shown and "…".encode() in shown
        assert all(len(re.sub(r"\x1b\[[0-9;]*m", "", line.decode())) <= 60 for line in shown.splitlines())

        # `gt sling` too: the Mayor slings with the caller's environment and prints what the CLI would.
        issue = create_issue(rig_town, "slung through the relay", rig="app")
        slung = subprocess.run([sys.executable, "-c", PROBE, "sling", issue, "--agent", "argbot"], cwd=rig_town,
                               capture_output=True, text=True, timeout=120, env={**os.environ, "KEEP_ME": "caller"})
        assert slung.returncode == 0 and "RELAYED=True" in slung.stderr, slung.stderr
        assert slung.stdout.startswith(f"{issue}: started on app/") and "watch with gt attach app/" in slung.stdout
        again = subprocess.run([sys.executable, "-c", PROBE, "sling", issue, "--agent", "argbot", "--json"],
                               cwd=rig_town, capture_output=True, text=True, timeout=120)
        assert "RELAYED=True" in again.stderr and json.loads(again.stdout)["status"] == "already"
        pane_pid = subprocess.run(["tmux", "-L", tmux_socket, "display", "-p", "-t", json.loads(again.stdout)["pane"],
                                   "#{pane_pid}"], capture_output=True, text=True, check=True).stdout.strip()
        environ = dict(item.split("=", 1) for item in Path(f"/proc/{pane_pid}/environ").read_text().split("\0") if "=" in item)
        assert environ.get("KEEP_ME") == "caller"
    finally:
        run_gt("down", cwd=rig_town)
    monkeypatch.chdir(rig_town)
    assert relay(["issue", "list"]) is None, "no Mayor: the command runs itself"


def test_a_socket_nobody_listens_on_is_no_answer(rig_town: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = rig_town / ".gastown" / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(run_dir / "mayor.sock"))  # bound, never listening: what a killed Mayor leaves
    try:
        monkeypatch.chdir(rig_town)
        assert relay(["issue", "list"]) is None
        assert run_gt("issue", "list", cwd=rig_town).stdout == "no issues\n"
    finally:
        stale.close()


def test_a_mayor_that_never_answers_only_delays_the_command(rig_town: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gastown.cli import relay as relay_module

    run_dir = rig_town / ".gastown" / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(run_dir / "mayor.sock"))
    silent.listen(4)  # connections are taken (the backlog) and never answered: a stopped Mayor
    try:
        monkeypatch.chdir(rig_town)
        monkeypatch.setattr(relay_module, "REPLY_TIMEOUT", 0.5)
        assert relay(["issue", "list"]) is None
        assert run_gt("issue", "list", cwd=rig_town, timeout=60).stdout == "no issues\n"
    finally:
        silent.close()


def test_an_answer_holding_raw_control_characters_is_not_printed(
    rig_town: Path, monkeypatch: pytest.MonkeyPatch, capfdbinary: pytest.CaptureFixture[bytes],
) -> None:
    """Whatever answers on the socket, no raw escape reaches the terminal through the relay:
    an answer the output chokepoint could not have made is dropped and the command runs here."""
    from gastown.cli import relay as relay_module

    (rig_town / ".gastown" / "run").mkdir(parents=True, exist_ok=True)
    (rig_town / ".gastown" / "run" / "mayor.sock").touch()
    monkeypatch.chdir(rig_town)
    for out in ("\x1b]0;owned\x07title\n", "\x1b[2J\n", "\u202eevil\n", "\x9b31m\n"):
        monkeypatch.setattr(relay_module, "_ask", lambda path, request, timeout, out=out: {"relayed": True, "code": 0, "out": out, "err": ""})
        assert relay(["issue", "list"]) is None
    monkeypatch.setattr(relay_module, "_ask", lambda path, request, timeout: {"relayed": True, "code": 3, "out": "\x1b[1mID\x1b[0m\n", "err": "w\n"})
    assert relay(["issue", "list"]) == 3
    assert capfdbinary.readouterr() == (b"\x1b[1mID\x1b[0m\n", b"w\n")
