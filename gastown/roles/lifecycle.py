"""`gt up` and `gt down`, and the keeper that restarts a crashed Mayor.

`gt up` is idempotent: preflight, start the Mayor (in tmux session ``mayor`` under the
keeper) unless one runs, and wait for its first patrol, which resumes every hooked issue
whose agent is not running; with ``[server] enabled`` it also starts the town's HTTP
server in the session's ``server`` window (``roles.serving``). `gt down` stops agents
(politely, then by force), the server and the Mayor; hooks, worktrees, branches and logs
stay, so the next `gt up` resumes the work.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from gastown._internal.processes import alive, descendants, send_signal
from gastown.context import Context
from gastown.errors import GastownError, NotRunning, ToolMissing
from gastown.ledger import work
from gastown.ledger.events import count_events, record_event
from gastown.ledger.heartbeats import loops_beating_since
from gastown.ledger.holds import HoldScope, place_hold, release_hold
from gastown.roles.mayor import running_pid
from gastown.states import SpawnStatus
from gastown.tmux.names import MAYOR_SESSION
from gastown.town import Town


def stop_flag(town: Town) -> os.PathLike[str]:
    return town.run_dir / "stopping"


def keeper_pid_path(town: Town) -> os.PathLike[str]:
    return town.run_dir / "keeper.pid"


@dataclass
class UpReport:
    mayor_pid: int | None
    already: bool
    warnings: list[str] = field(default_factory=list)
    hooked: int = 0
    resumed: int = 0
    server: str | None = None  # the HTTP server's URL, when it runs

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def preflight(ctx: Context) -> list[str]:
    """The doctor's checks that must pass to run a town; returns warnings for the rest."""
    from gastown.doctor import check_runtimes, check_tools

    failures = [c for c in check_tools() if not c.ok]
    if failures:
        first = failures[0]
        raise ToolMissing(f"cannot start the town: {first.detail}", hint=first.fix)
    ctx.config  # noqa: B018 - an invalid config fails here, with its key path
    warnings = []
    for rig in ctx.config.rigs:
        if not (ctx.town.hub_path(rig) / "HEAD").is_file():
            warnings.append(f"rig {rig}: its hub {ctx.town.hub_path(rig)} is missing (gt rig remove/add it)")
    warnings += [f"{c.name}: {c.detail}" for c in check_runtimes(ctx) if not c.ok]
    return warnings


def up(ctx: Context, *, wait: float = 30.0) -> UpReport:
    warnings = preflight(ctx)
    town = ctx.town
    town.run_dir.mkdir(parents=True, exist_ok=True)
    town.record_tmux_socket(ctx.tmux.socket)  # later shells find this server whatever they export
    with ctx.ledger.write() as conn:
        release_hold(conn, HoldScope.pause())
    hooked = len(work.list_hooks(ctx.ledger.connection()))
    pid = running_pid(town)
    if pid is not None:
        return UpReport(pid, True, warnings, hooked, server=_up_server(ctx, warnings))
    if os.path.exists(stop_flag(town)):
        os.unlink(stop_flag(town))
    started_at = ctx.now()
    _start_keeper(ctx)
    pid = _wait_for_mayor(ctx, started_at, wait)
    resumed = count_events(ctx.ledger.connection(), kinds=("resume", "restart"), since=started_at)
    return UpReport(pid, False, warnings, hooked, resumed, server=_up_server(ctx, warnings))


def _up_server(ctx: Context, warnings: list[str]) -> str | None:
    """Start the HTTP server if ``[server] enabled`` and none runs; its URL, or None (a
    server that cannot start is a warning: the Mayor runs without it, and the Deacon
    tries again)."""
    from gastown.roles import serving

    if not ctx.config.server.enabled:
        return None
    since = time.time()
    try:
        started = serving.start_server(ctx)
    except GastownError as exc:
        warnings.append(f"server: could not start it: {exc.message}")
        return None
    record = serving.wait_for_server(ctx, since=since if started else 0.0)
    if record is None:
        said = serving.last_words(ctx)
        warnings.append("server: it did not come up" + (f": {said}" if said else "") + " (see .gastown/logs/server.log)")
        return None
    return serving.base_url(ctx)


def _start_keeper(ctx: Context) -> None:
    tmux = ctx.tmux
    argv = [sys.executable, "-m", "gastown", "_keeper", "--town", str(ctx.town.root)]
    env = {"GT_TMUX_SOCKET": tmux.socket, "GT_ROLE": "mayor"}
    if tmux.has_session(MAYOR_SESSION):
        # By name, from the pane list: the session also holds the server's window, which must
        # not be respawned (a `-t` naming a window that is gone falls back to another pane).
        pane = next((p.pane_id for p in tmux.list_panes() if p.session == MAYOR_SESSION and p.window == "mayor"), None)
        if pane:
            tmux.respawn(pane, cwd=ctx.town.root, env=env, argv=argv)
        else:
            tmux.new_window(MAYOR_SESSION, "mayor", cwd=ctx.town.root, env=env, argv=argv)
    else:
        tmux.ensure_conf()
        tmux.cmd(
            "new-session", "-d", "-s", MAYOR_SESSION, "-n", "mayor", "-c", str(ctx.town.root),
            *[a for k, v in env.items() for a in ("-e", f"{k}={v}")], "--", *argv,
        )


def _wait_for_mayor(ctx: Context, started_at: float, wait: float) -> int:
    """Until the Mayor holds its lock and every rig's Witness has patrolled once."""
    deadline = time.monotonic() + wait
    loops = {f"witness:{rig}" for rig in ctx.config.rigs}
    while time.monotonic() < deadline:
        pid = running_pid(ctx.town)
        if pid is not None:
            if loops <= loops_beating_since(ctx.ledger.connection(), started_at, detail="waiting"):
                return pid
        time.sleep(0.1)
    tail = _mayor_log_tail(ctx)
    raise NotRunning(
        f"the Mayor did not come up within {int(wait)}s{': ' + tail if tail else ''}",
        hint="look at it with `gt attach` or read .gastown/logs/mayor.log",
    )


def _mayor_log_tail(ctx: Context) -> str:
    from gastown.logtail import last_lines

    lines = last_lines(ctx.town.logs_dir / "mayor.log", 3)
    return " | ".join(lines)


def keep_mayor(town: Town) -> int:
    """Run the Mayor as a child and restart it if it dies, until asked to stop.

    Backs off 1 s, 2 s, 4 s ... (30 s at most) between restarts; a Mayor that stayed up a
    minute resets the back-off. SIGTERM is passed on to the Mayor.
    """
    town.run_dir.mkdir(parents=True, exist_ok=True)
    with open(keeper_pid_path(town), "w") as handle:
        handle.write(f"{os.getpid()}\n")
    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    backoff = 1.0
    while True:
        began = time.monotonic()
        child = subprocess.Popen([sys.executable, "-m", "gastown", "_mayor", "--town", str(town.root)])
        code = child.wait()
        if stopping or code == 0 or os.path.exists(stop_flag(town)):
            return 0
        if time.monotonic() - began > 60:
            backoff = 1.0
        print(f"gastown keeper: the Mayor exited with status {code}; restarting in {backoff:.0f}s", flush=True)
        time.sleep(backoff)
        backoff = min(backoff * 2, 30.0)
        if stopping or os.path.exists(stop_flag(town)):
            return 0


@dataclass
class DownReport:
    mayor_stopped: bool
    agents_stopped: int
    forced: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def down(ctx: Context, *, polecats_only: bool = False, timeout: float | None = None) -> DownReport:
    grace = ctx.config.witness.stop_timeout if timeout is None else timeout
    mayor_stopped = False
    if polecats_only:
        with ctx.ledger.write() as conn:
            place_hold(conn, HoldScope.pause(), reason="gt down --polecats", now=ctx.now())
    else:
        mayor_stopped = stop_mayor(ctx, grace)  # first: its Deacon would start the server again
        from gastown.roles.serving import stop_server

        stop_server(ctx, grace=grace)
    stopped, forced = stop_agents(ctx, grace)
    if not polecats_only:
        ctx.tmux.kill_session(MAYOR_SESSION)
        ctx.tmux.forget_if_gone()
        if not ctx.tmux.is_running():
            ctx.town.forget_tmux_socket()  # the next `gt up` may start the town anywhere
        stop_orphaned_gates(ctx)
    with ctx.ledger.write() as conn:
        what = "agents" if polecats_only else "agents and the Mayor"
        record_event(conn, "mayor", f"gt down: stopped {what} ({stopped} agent(s), {forced} forced)", now=ctx.now())
    return DownReport(mayor_stopped, stopped, forced)


def stop_orphaned_gates(ctx: Context) -> None:
    """Stop the gate runs a Mayor that had to be killed left behind (the round itself is
    redone by the next `gt up`)."""
    from gastown.refinery.engine import Refinery

    for rig in ctx.config.rigs:
        Refinery(ctx, rig).stop_orphaned_gates()


def stop_mayor(ctx: Context, grace: float) -> bool:
    town = ctx.town
    pid = running_pid(town)
    with open(stop_flag(town), "w") as handle:
        handle.write("down\n")
    keeper = _read_pid(keeper_pid_path(town))
    targets = [p for p in (keeper, pid) if p and p > 0 and alive(p)]
    for target in targets:
        send_signal(target, signal.SIGTERM)
    # Wait for the processes, not the pid file: a stopping Mayor gives that up at once,
    # then joins its loops (one may be in a long gate run).
    deadline = time.monotonic() + max(grace, 5.0)
    while time.monotonic() < deadline and any(alive(t) for t in targets):
        time.sleep(0.1)
    if any(alive(t) for t in targets):
        for target in targets:
            send_signal(target, signal.SIGKILL)
        time.sleep(0.2)
    return pid is not None


def stop_agents(ctx: Context, grace: float) -> tuple[int, int]:
    """Stop every active agent: SIGTERM all process trees at once, SIGKILL what is left
    after ``grace``, close the windows. Spawns end as "stopped"; hooks stay."""
    from gastown._internal.processes import sweep
    from gastown.roles.launch import home_path, pane_pid
    from gastown.screen import tail

    conn = ctx.ledger.connection()
    every = work.spawns_with_status(conn, work.ACTIVE_STATUSES)
    spawns = [s for s in every if s.host == "local"]
    forced = _stop_remote_agents(ctx, [s for s in every if s.host != "local"], grace)
    tmux = ctx.tmux
    trees: dict[str, list[int]] = {}
    last: dict[str, str | None] = {}
    for spawn in spawns:
        if not spawn.pane_id or tmux.display(spawn.pane_id, "#{@gt_spawn}") != spawn.id:
            continue
        try:
            last[spawn.id] = tail(tmux.capture(spawn.pane_id, 40), 20)
        except GastownError:
            last[spawn.id] = None
        pid = pane_pid(tmux, spawn.pane_id)
        if pid and tmux.display(spawn.pane_id, "#{pane_dead}") != "1":
            trees[spawn.id] = [*descendants(pid), pid]
    for pids in trees.values():
        for pid in pids:
            send_signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for pids in trees.values() for p in pids):
        time.sleep(0.05)
    for pids in trees.values():
        survivors = [p for p in pids if alive(p)]
        forced += bool(survivors)
        for pid in survivors:
            send_signal(pid, signal.SIGKILL)
    for spawn in spawns:
        if spawn.pane_id and tmux.display(spawn.pane_id, "#{@gt_spawn}") == spawn.id:
            tmux.kill_window(spawn.pane_id)
    server = tmux.cmd("display-message", "-p", "#{pid}", check=False).stdout.strip()
    for spawn in spawns:
        home = home_path(ctx.town, spawn.id)
        if home.exists():  # leftovers such as codex's app-server daemon
            sweep(str(home), grace=1.0, spare={int(server)} if server.isdigit() else set())
    with ctx.ledger.write() as conn:
        now = ctx.now()
        for spawn in every:
            current = work.get_spawn(conn, spawn.id)
            if current is None or not current.active:
                continue  # ended meanwhile (the Witness, a `gt done`)
            done = current.status == SpawnStatus.DONE
            work.update_spawn(
                conn, spawn.id, status=SpawnStatus.ENDED, ended_at=now,
                end_reason="finished (gt done)" if done else "stopped by gt down",
                last_lines=last.get(spawn.id) or spawn.last_lines,
            )
    return len(every), forced


def _stop_remote_agents(ctx: Context, spawns: list[work.Spawn], grace: float) -> int:
    """Stop the agents on other hosts, all of a host's at once (one grace period there);
    returns how many had to be killed. A host that does not answer is skipped with a
    warning in the Mayor's log: its agents are stopped by the Witness when it is back."""
    from gastown._internal.log import logger

    forced = 0
    for host in sorted({s.host for s in spawns}):
        mine = [s for s in spawns if s.host == host and s.pane_id]
        try:
            driver = ctx.host(host)
            tags = {p.pane_id: p.spawn for p in driver.snapshot([]).panes}
            forced += driver.stop_agents([s.pane_id for s in mine if s.pane_id and tags.get(s.pane_id) == s.id], grace=grace)
        except GastownError as exc:
            logger(__name__).warning("gt down: host %s: %s", host, exc)
    return forced


def _read_pid(path: os.PathLike[str]) -> int | None:
    try:
        return int(open(path).read().strip())
    except (OSError, ValueError):
        return None

