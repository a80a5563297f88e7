"""A tmux pane on the test's private socket, and the process sweep for what a CLI leaves behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

_TIMEOUT = 15


class Pane:
    """One session ``w`` (one pane) on ``tmux -L <socket>``; the server takes ``env`` when it starts."""

    def __init__(self, socket: str, name: str = "w") -> None:
        self.socket = socket
        self.target = name

    def tmux(self, *args: str, input: str | None = None, env: Mapping[str, str] | None = None) -> str:
        proc = subprocess.run(["tmux", "-L", self.socket, *args], input=input, capture_output=True, text=True,
                              timeout=_TIMEOUT, env=dict(env) if env is not None else None, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args[:2])} failed: {proc.stderr.strip()}")
        return proc.stdout

    def start(self, cwd: Path, env: Mapping[str, str], argv: Sequence[str], width: int = 200, height: int = 50) -> None:
        """Start ``argv`` in a fresh server whose environment is ``env``; the pane stays after exit."""
        self.tmux("new-session", "-d", "-s", self.target, "-x", str(width), "-y", str(height), "-c", str(cwd),
                  "sleep", "600", env=env)
        self.tmux("set-option", "-t", self.target, "remain-on-exit", "on")
        self.tmux("respawn-pane", "-k", "-t", self.target, "-c", str(cwd), *argv)

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-t", self.target)

    def paste(self, text: str, buffer: str = "gt-prompt") -> None:
        """Bracketed paste of ``text`` (one buffer, deleted after), no Enter."""
        self.tmux("load-buffer", "-b", buffer, "-", input=text)
        self.tmux("paste-buffer", "-p", "-d", "-r", "-b", buffer, "-t", self.target)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.target, *keys)

    def pane_pid(self) -> int:
        return int(self.tmux("display-message", "-p", "-t", self.target, "#{pane_pid}").strip())

    def dead(self) -> bool:
        return self.tmux("display-message", "-p", "-t", self.target, "#{pane_dead}").strip() == "1"


def tail(text: str, lines: int = 15) -> str:
    """The last ``lines`` non-blank lines, NBSP as space.

    Blank lines are skipped, not counted: opencode's home screen centres its prompt box
    (``Ask anything…``) with ~20 empty rows below it on a 50-row pane.
    """
    rows = [row for row in text.split("\n") if row.strip()]
    return "\n".join(rows[-lines:]).replace("\u00a0", " ")


def matches(pattern: str | None, text: str) -> bool:
    return bool(pattern) and re.search(pattern, text, re.MULTILINE) is not None  # type: ignore[arg-type]


def processes_referencing(marker: str) -> dict[int, str]:
    """Live processes whose command line or environment mentions ``marker`` (a spawn home path).

    Every process a CLI starts inherits the spawn home in HOME/CODEX_HOME/..., so this
    finds exactly what one spawn left behind: e.g. codex's ``app-server`` daemon, which
    re-parents to PID 1 after the TUI exits. Returns pid -> command line.
    """
    found: dict[int, str] = {}
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in cmdline or needle in environ:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode("utf-8", "replace").strip()
    return found


def kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
