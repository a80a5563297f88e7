"""The one module that runs tmux, always on the town's own socket.

Every call is ``tmux -u -L <socket> ...`` with a timeout (a hung server cannot hang a
patrol), targets are pane ids or exact session names, and the server is started with
gastown's own config file so a user's ``~/.tmux.conf`` can never change what the
patrols rely on (remain-on-exit, window size, history).

tmux is driven directly rather than through libtmux: patrols need per-call timeouts,
one batched ``list-panes -a`` with custom formats, and stdin for ``load-buffer``.
"""

from __future__ import annotations

import os
import shlex
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from gastown._internal.proc import Result, run
from gastown.errors import NotRunning, ToolMissing, TmuxError
from gastown.tmux.names import PaneInfo, exact, pane_format, parse_panes

SERVER_CONF = """\
# Written by gastown: the town's tmux server reads only this file.
set -g default-size 200x50
set -g history-limit 20000
set -g exit-empty on
set -g escape-time 10
set -g status-style "bg=colour236,fg=colour250"
set -g status-left "[gastown #S] "
set -g status-left-length 40
set -g status-right "#{?pane_dead,dead ,}%H:%M"
set -wg remain-on-exit on
set -wg window-size latest
set -wg automatic-rename off
set -wg allow-rename off
"""

# Inherited variables that confuse tmux clients or the agents started under the server.
SCRUBBED_ENV = ("TMUX", "TMUX_PANE", "CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "NODE_OPTIONS")


class Tmux:
    """A handle on one tmux server (socket). Cheap; holds no connection."""

    def __init__(
        self,
        socket: str,
        *,
        conf_path: Path | None = None,
        timeout: float = 10.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.socket = socket
        self.conf_path = conf_path
        self.timeout = timeout
        base = dict(os.environ if environ is None else environ)
        for var in SCRUBBED_ENV:
            base.pop(var, None)
        self._env = base

    # -- running commands -------------------------------------------------------------

    def argv(self, *args: str) -> list[str]:
        head = ["tmux", "-u", "-L", self.socket]
        if self.conf_path is not None:
            head += ["-f", str(self.conf_path)]
        return [*head, *args]

    def cmd(self, *args: str, input: str | None = None, check: bool = True, timeout: float | None = None) -> Result:
        try:
            result = run(self.argv(*args), input=input, env=self._env, timeout=timeout or self.timeout)
        except ToolMissing:
            raise ToolMissing("tmux is not installed or not on PATH", hint="install tmux 3.0 or newer") from None
        if check and not result.ok:
            what = "timed out" if result.timed_out else (result.stderr.strip() or f"exit {result.returncode}")
            raise TmuxError(f"tmux {args[0]} failed: {what}", argv=result.argv, returncode=result.returncode, output=result.output)
        return result

    def ensure_conf(self) -> None:
        if self.conf_path is not None and (
            not self.conf_path.exists() or self.conf_path.read_text(encoding="utf-8") != SERVER_CONF
        ):
            self.conf_path.parent.mkdir(parents=True, exist_ok=True)
            self.conf_path.write_text(SERVER_CONF, encoding="utf-8")

    # -- server and sessions ----------------------------------------------------------

    def is_running(self) -> bool:
        return self.cmd("list-sessions", "-F", "#{session_name}", check=False).ok

    def sessions(self) -> list[str]:
        result = self.cmd("list-sessions", "-F", "#{session_name}", check=False)
        return result.stdout.split() if result.ok else []

    def has_session(self, name: str) -> bool:
        return self.cmd("has-session", "-t", f"={name}", check=False).ok

    def kill_session(self, name: str) -> None:
        self.cmd("kill-session", "-t", f"={name}", check=False)

    def kill_server(self) -> None:
        """Stop this town's server and remove its socket file (never any other server)."""
        self.cmd("kill-server", check=False)
        self._remove_socket_file()

    def forget_if_gone(self, wait: float = 1.0) -> None:
        """Once the server has no sessions left it exits; then remove the socket file it
        leaves behind (tmux does not). A server that still has sessions is left alone."""
        deadline = time.monotonic() + wait
        while self.is_running():
            if self.sessions() or time.monotonic() > deadline:
                return
            time.sleep(0.05)
        self._remove_socket_file()

    def _remove_socket_file(self) -> None:
        tmpdir = self._env.get("TMUX_TMPDIR") or "/tmp"
        try:
            (Path(tmpdir) / f"tmux-{os.getuid()}" / self.socket).unlink()
        except OSError:
            pass

    def list_panes(self) -> list[PaneInfo]:
        """Every pane on the server in ONE call; empty when the server is not running."""
        result = self.cmd("list-panes", "-a", "-F", pane_format(), check=False)
        return parse_panes(result.stdout) if result.ok else []

    # -- windows and panes ------------------------------------------------------------

    def new_window(
        self, session: str, name: str, *, cwd: Path, env: Mapping[str, str], argv: Sequence[str]
    ) -> str:
        """Start ``argv`` (executed directly, never through a shell) in a new window of
        ``session`` (created if missing); returns the pane id."""
        self.ensure_conf()
        env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        window_args = ["-d", "-P", "-F", "#{pane_id}", "-n", name, "-c", str(cwd), *env_args, "--", *argv]
        for _ in range(3):
            result = self.cmd("new-window", "-t", exact(session), *window_args, check=False)
            if result.ok:
                return result.stdout.strip()
            result = self.cmd("new-session", "-s", session, *window_args, check=False)
            if result.ok:
                return result.stdout.strip()
            if "duplicate session" not in result.stderr:
                break
        raise TmuxError(f"tmux could not open a window for {name} in session {session}: {result.stderr.strip()}")

    def respawn(self, pane_id: str, *, cwd: Path, env: Mapping[str, str], argv: Sequence[str]) -> None:
        """Replace whatever runs in ``pane_id`` with ``argv`` (pane, log pipe and id are kept)."""
        env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        self.cmd("respawn-pane", "-k", "-t", pane_id, "-c", str(cwd), *env_args, "--", *argv)

    def pipe_to_file(self, pane_id: str, path: Path) -> None:
        """Append everything the pane prints to ``path`` (kept across respawns)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.cmd("pipe-pane", "-o", "-t", pane_id, f"exec cat >> {shlex.quote(str(path))}")

    def set_pane_tag(self, pane_id: str, key: str, value: str) -> None:
        self.cmd("set-option", "-p", "-t", pane_id, f"@{key}", value)

    def pane_exists(self, pane_id: str) -> bool:
        return self.cmd("display-message", "-p", "-t", pane_id, "#{pane_id}", check=False).stdout.strip() == pane_id

    def display(self, pane_id: str, fmt: str) -> str | None:
        result = self.cmd("display-message", "-p", "-t", pane_id, fmt, check=False)
        return result.stdout.rstrip("\n") if result.ok else None

    def capture(self, pane_id: str, lines: int = 60) -> str:
        """The pane's last ``lines`` lines (wrapped lines joined, trailing spaces kept)."""
        result = self.cmd("capture-pane", "-p", "-J", "-t", pane_id, "-S", f"-{max(1, lines)}", check=False)
        if not result.ok:
            raise TmuxError(f"cannot read pane {pane_id}: {result.stderr.strip()}")
        return result.stdout

    def kill_window(self, pane_id: str) -> None:
        self.cmd("kill-window", "-t", pane_id, check=False)

    # -- keys ---------------------------------------------------------------------------

    def send_keys(self, pane_id: str, *keys: str) -> None:
        self.cmd("send-keys", "-t", pane_id, *keys)

    def send_literal(self, pane_id: str, text: str) -> None:
        self.cmd("send-keys", "-t", pane_id, "-l", "--", text)

    def paste(self, pane_id: str, text: str, *, bracketed: bool = True) -> None:
        """Paste ``text`` as one block through a private buffer (no argv size limit).

        The paste happens only if the pane's program is still running, decided inside the
        server in the same command: tmux up to 3.4 crashes (taking every session, the
        Mayor's included, with it) when ``paste-buffer`` targets a dead pane, and a pane
        can die between any check we make and the paste (tmux/tmux#3830). Raises
        ``NotRunning`` when nothing was pasted because the pane is gone or dead.
        """
        buffer = f"gt-{uuid.uuid4().hex[:12]}"
        self.cmd("load-buffer", "-b", buffer, "-", input=text)
        flags = "-d -r -p" if bracketed else "-d -r"
        result = self.cmd(
            "if-shell", "-F", "-t", pane_id, "#{pane_dead}", f"delete-buffer -b {buffer}",
            f"paste-buffer {flags} -b {buffer} -t {pane_id}", ";",
            "display-message", "-p", "-t", pane_id, "#{pane_dead}", check=False,
        )
        if not result.ok or result.stdout.strip() != "0":
            self.cmd("delete-buffer", "-b", buffer, check=False)
            raise NotRunning(f"pane {pane_id} is gone or its program has exited; nothing was pasted",
                             hint="see `gt agents`; the Witness restarts agents that died")

    def leave_copy_mode(self, pane_id: str) -> None:
        if self.display(pane_id, "#{pane_in_mode}") == "1":
            self.cmd("send-keys", "-t", pane_id, "-X", "cancel", check=False)
