"""The town's HTTP server as a process: its record, its URL, its health, starting and stopping it.

`gt serve` runs the server (``gastown/server``) in the foreground; `gt up` runs the same
command in a window named ``server`` of the ``mayor`` session when ``[server] enabled``,
the Deacon starts it again if it dies, and `gt down` stops it. A running server holds
``.gastown/run/server.lock`` and describes itself in ``.gastown/run/server.json`` (pid,
host, the port it bound, its URL), so the port may be 0 (any free one) and every reader
finds it. Liveness is read from that pid and ``/proc``, health from ``GET /healthz``.

The window starts through the exec trampoline and a 0600 launch file (as agents do), so
the server gets the exact environment of whoever started it (trigger secrets, the server
token) without a secret ever appearing on a command line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gastown._internal.locks import file_lock
from gastown._internal.processes import alive, send_signal
from gastown.context import Context
from gastown.ledger.ids import random_base36
from gastown.tmux.names import MAYOR_SESSION
from gastown.town import Town

if TYPE_CHECKING:
    from gastown.config.schema import ServerConfig
    from gastown.config.settings import ServerSettings

WINDOW = "server"
PROBE_TIMEOUT = 2.0
START_WAIT = 15.0


def record_path(town: Town) -> Path:
    return town.run_dir / "server.json"


def lock_path(town: Town) -> Path:
    return town.run_dir / "server.lock"


def log_path(town: Town) -> Path:
    return town.logs_dir / "server.log"


@dataclass(frozen=True)
class ServerRecord:
    """What a running server wrote about itself when it bound its socket."""

    pid: int
    host: str
    port: int
    started_at: float

    @property
    def url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "port": self.port, "url": self.url, "started_at": self.started_at}


def url_host(host: str) -> str:
    """How a bound host appears in a URL: an unspecified address as this machine's name.

    >>> url_host("127.0.0.1"), url_host("::1")
    ('127.0.0.1', '[::1]')
    """
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def write_record(town: Town, record: ServerRecord) -> None:
    path = record_path(town)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record.to_json()) + "\n")
    tmp.replace(path)


def remove_record(town: Town, pid: int) -> None:
    """Remove the record if it is still this process's."""
    current = read_record(town)
    if current is not None and current.pid == pid:
        record_path(town).unlink(missing_ok=True)


def read_record(town: Town) -> ServerRecord | None:
    try:
        data = json.loads(record_path(town).read_text())
        return ServerRecord(int(data["pid"]), str(data["host"]), int(data["port"]), float(data["started_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_server(town: Town) -> ServerRecord | None:
    """The record of this town's live server, or None (no record, or its process is gone)."""
    record = read_record(town)
    if record is None or not _is_server(record.pid):
        return None
    return record


def _is_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # `python -m gastown serve ...`, or the `gt` console script: `python .../bin/gt serve ...`
    return b"serve" in cmdline and any(b"gastown" in part or part.endswith(b"/gt") for part in cmdline[:3])


# -- URLs -------------------------------------------------------------------------------


def base_url(ctx: Context) -> str:
    """Where senders reach the server: ``[server] public_url``, else the running server's
    address, else the configured one."""
    cfg = ctx.settings.server
    if cfg.public_url:
        return cfg.public_url
    record = running_server(ctx.town)
    if record is not None:
        return record.url
    return f"http://{url_host(cfg.host)}:{cfg.port}"


def hook_url(ctx: Context, trigger: str, token: str) -> str:
    return f"{base_url(ctx)}/hooks/{trigger}/{token}"


# -- health -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """The answer to ``GET /healthz``: ``ok`` when it answered 200; ``status`` None when it
    did not answer at all."""

    ok: bool
    status: int | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "status": self.status, "detail": self.detail}


def server_token(cfg: ServerConfig | ServerSettings, environ: Mapping[str, str]) -> str | None:
    """The server token from ``environ``, if ``[server] token_env`` names a set variable."""
    if not cfg.token_env:
        return None
    return environ.get(cfg.token_env) or None


def probe(record: ServerRecord, token: str | None, *, timeout: float = PROBE_TIMEOUT) -> Health:
    """Ask the server for ``/healthz`` (with the token, if one is configured).

    Plain ``http.client``, not httpx: one loopback request needs no SSL context (httpx
    builds one per client: ~25 ms) and no import of httpx (~60 ms in `gt status`), and a
    proxy from the environment must never stand between the town and its own server."""
    import http.client

    host = "127.0.0.1" if record.host in ("0.0.0.0", "") else ("::1" if record.host == "::" else record.host)
    url = f"http://{url_host(host)}:{record.port}/healthz"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn = http.client.HTTPConnection(host, record.port, timeout=timeout)
    try:
        conn.request("GET", "/healthz", headers=headers)
        status = conn.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return Health(False, None, f"no answer from {url}: {type(exc).__name__}")
    finally:
        conn.close()
    if status == 200:
        return Health(True, 200, "healthy")
    if status == 401:
        return Health(False, 401, "it answers, but this shell lacks the server token (set [server] token_env's variable)")
    return Health(False, status, f"/healthz answered {status}")


# -- starting and stopping --------------------------------------------------------------


def server_panes(ctx: Context) -> list[Any]:
    return [p for p in ctx.tmux.list_panes() if p.session == MAYOR_SESSION and p.window == WINDOW]


def start_server(ctx: Context) -> bool:
    """Start the server in the ``mayor`` session's ``server`` window unless one runs;
    returns whether it started one. Idempotent; a dead window is replaced."""
    from gastown.roles import launch
    from gastown.tmux.driver import SCRUBBED_ENV

    town = ctx.town
    with file_lock(town.locks_dir / "server-start.lock", timeout=30, what="starting the server"):
        if running_server(town) is not None:
            return False
        panes = server_panes(ctx)
        if any(not pane.dead for pane in panes):
            return False  # one is starting (it has not bound its socket yet)
        for pane in panes:
            ctx.tmux.kill_window(pane.pane_id)
        env = {k: v for k, v in ctx.environ.items() if k not in SCRUBBED_ENV}
        env.update(GT_TMUX_SOCKET=ctx.tmux.socket, GT_ROLE="server")
        env.pop("GT_TOWN", None)
        argv = [sys.executable, "-m", "gastown", "serve", "--town", str(town.root)]
        launch_id = f"server-{random_base36(6)}"
        launch_file = launch.write_launch_file(town.run_dir, launch_id, argv, env, town.root)
        try:
            ctx.tmux.new_window(
                MAYOR_SESSION, WINDOW, cwd=town.root, env={"GT_TMUX_SOCKET": ctx.tmux.socket, "GT_ROLE": "server"},
                argv=launch.trampoline_argv(launch_file),
            )
        except BaseException:
            launch.discard_launch_file(launch_file)
            raise
        launch.release_launch_file(launch_file)
    return True


def wait_for_server(ctx: Context, *, since: float, timeout: float = START_WAIT) -> ServerRecord | None:
    """The record of a server started at or after ``since``, once it has bound its socket;
    None after ``timeout``, or as soon as its window has been dead for a second."""
    deadline = time.monotonic() + timeout
    dead_since: float | None = None
    while time.monotonic() < deadline:
        record = running_server(ctx.town)
        if record is not None and record.started_at >= since - 1.0:
            return record
        if any(not pane.dead for pane in server_panes(ctx)):
            dead_since = None
        elif dead_since is None:
            dead_since = time.monotonic()
        elif time.monotonic() - dead_since > 1.0:
            return None
        time.sleep(0.05)
    return None


def last_words(ctx: Context) -> str:
    """The server window's last lines (why it died), one line."""
    for pane in server_panes(ctx):
        try:
            lines = [ln.strip() for ln in ctx.tmux.capture(pane.pane_id, 20).splitlines()
                     if ln.strip() and not ln.startswith("Pane is dead")]
        except Exception:  # noqa: BLE001 - only a hint for a message
            return ""
        return " | ".join(lines[-3:])
    return ""


def stop_server(ctx: Context, *, grace: float = 5.0) -> bool:
    """Stop the town's server (SIGTERM, SIGKILL after ``grace``) and close its window;
    returns whether one was running."""
    record = running_server(ctx.town)
    if record is not None:
        send_signal(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and alive(record.pid):
            time.sleep(0.05)
        if alive(record.pid):
            send_signal(record.pid, signal.SIGKILL)
        record_path(ctx.town).unlink(missing_ok=True)
    for pane in server_panes(ctx):
        ctx.tmux.kill_window(pane.pane_id)
    return record is not None
