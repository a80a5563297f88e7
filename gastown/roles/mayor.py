"""The Mayor: one process per town hosting the patrol loops as threads.

- one Witness, one Refinery and one review loop per rig, the Deacon, the scheduler, the
  notifier and the trigger desk (schedules due, requests the server recorded);
- single instance (a file lock; a second Mayor refuses and names the running one);
- every loop writes a heartbeat row; the Deacon restarts a loop whose heartbeat goes stale;
- gastown.toml is re-read when it changes: new rigs get loops, removed rigs lose them,
  new thresholds apply on the next patrol, and an invalid edit is reported and ignored.

It runs under a keeper (``gt _keeper``) in the tmux session ``mayor``, which restarts it
if it dies; ``gt up --foreground`` runs it in the current terminal instead.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gastown._internal.locks import try_lock_forever
from gastown._internal.log import logger
from gastown.context import Context
from gastown.errors import ConfigError, Conflict, GastownError
from gastown.ledger.events import record_event
from gastown.ledger.heartbeats import beat
from gastown.town import Town
from gastown.wake import last_wake

if TYPE_CHECKING:
    from gastown.roles.mayor_socket import Answer, MayorSocket

log = logger("gastown.mayor")


WAKE_POLL = 0.25
LOCK_WAIT = 20.0


def lock_path(town: Town) -> Path:
    return town.run_dir / "mayor.lock"


def pid_path(town: Town) -> Path:
    return town.run_dir / "mayor.pid"


def running_pid(town: Town) -> int | None:
    """The pid of the town's live Mayor, or None.

    Read from the pid file the Mayor writes once it holds its lock, and checked against
    the process table; never by trying the lock (that could make a starting Mayor think
    another one runs).
    """
    try:
        pid = int(pid_path(town).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return None
    return pid if b"gastown" in cmdline and (b"_mayor" in cmdline or b"--foreground" in cmdline) else None


class Loop:
    """A named patrol loop on its own thread: step, heartbeat, wait (or be woken), repeat.

    ``restart()`` abandons the current thread (Python cannot kill a hung thread; it is
    told to stop and left alone) and starts a fresh one.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], Any],
        interval: Callable[[], float],
        ctx: Context,
        wake_topic: str | None = None,
    ) -> None:
        self.name = name
        self.step = step
        self.interval = interval
        self.ctx = ctx
        self.wake_topic = wake_topic
        self.generation = 0
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.last_beat = 0.0
        self.cycles = 0

    def start(self) -> None:
        self.generation += 1
        self.thread = threading.Thread(target=self._run, args=(self.generation,), name=self.name, daemon=True)
        self.thread.start()

    def restart(self) -> None:
        self.start()

    def stop(self) -> None:
        self.stopping.set()

    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def _beat(self, detail: str) -> None:
        self.last_beat = self.ctx.now()
        try:
            with self.ctx.ledger.write() as conn:
                beat(conn, self.name, pid=os.getpid(), detail=detail, now=self.last_beat)
        except GastownError as exc:
            log.warning("%s: heartbeat not written: %s", self.name, exc)

    def _run(self, generation: int) -> None:
        seen_wake = last_wake(self.ctx.town, self.wake_topic) if self.wake_topic else 0.0
        while not self.stopping.is_set() and generation == self.generation:
            self._beat("working")
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - a loop must survive any one bad cycle
                log.exception("%s: cycle failed: %s", self.name, exc)
            self.cycles += 1
            self._beat("waiting")
            deadline = time.monotonic() + max(0.05, self.interval())
            while time.monotonic() < deadline and not self.stopping.is_set():
                if self.wake_topic:
                    stamp = last_wake(self.ctx.town, self.wake_topic)
                    if stamp > seen_wake:
                        seen_wake = stamp
                        break
                self.stopping.wait(min(WAKE_POLL, max(0.0, deadline - time.monotonic())))


class Mayor:
    """``answers``: more requests its socket takes, by op, given by the layer above (the
    CLI's listings: ``cli/relay.py``); ``sling`` is the Mayor's own."""

    def __init__(self, ctx: Context, answers: Mapping[str, Answer] | None = None) -> None:
        self.ctx = ctx
        self.answers = dict(answers or {})
        self.loops: dict[str, Loop] = {}
        self.stop_event = threading.Event()
        self.config_mtime = 0.0
        self.recovered: set[str] = set()

    # -- loops --------------------------------------------------------------------------

    def _rig_loops(self, rig: str) -> list[Loop]:
        from gastown.github.desk import GitHubDesk, wake_topic
        from gastown.refinery.review.stage import ReviewStage
        from gastown.roles.witness import Witness

        witness = Witness(self.ctx, rig)
        reviews = ReviewStage(self.ctx, rig)  # starts reviews on threads of their own; never blocks
        github = GitHubDesk(self.ctx, rig)  # builds no client while the rig has no [rigs.X.github]
        return [
            Loop(f"witness:{rig}", witness.patrol, lambda: self.ctx.config.witness.patrol_interval, self.ctx),
            Loop(f"refinery:{rig}", lambda: self._refine(rig), lambda: 5.0, self.ctx, wake_topic=f"refinery-{rig}"),
            Loop(f"review:{rig}", reviews.step, lambda: 2.0, self.ctx, wake_topic=f"refinery-{rig}"),
            Loop(f"github:{rig}", github.step, github.interval, self.ctx, wake_topic=wake_topic(rig)),
        ]

    def _refine(self, rig: str) -> None:
        from gastown.refinery.engine import recover, run_until_empty

        if rig not in self.ctx.config.rigs:
            return
        if rig not in self.recovered:
            recover(self.ctx, rig)  # a round cut short by a crash is settled before anything new
            self.recovered.add(rig)
        run_until_empty(self.ctx, rig)

    def _town_loops(self) -> list[Loop]:
        from gastown.roles.deacon import Deacon
        from gastown.roles.notifier import Notifier
        from gastown.roles.scheduler import dispatch
        from gastown.roles.trigger_desk import TriggerDesk

        deacon = Deacon(self.ctx, stale_loops=self.stale_loops, restart_loop=self.restart_loop)
        desk = TriggerDesk(self.ctx)
        return [
            Loop("scheduler", lambda: dispatch(self.ctx), lambda: 2.0, self.ctx, wake_topic="scheduler"),
            Loop("deacon", deacon.patrol, lambda: 15.0, self.ctx),
            Loop("triggers", desk.step, lambda: 5.0, self.ctx, wake_topic="triggers"),
            Loop("notifier", Notifier(self.ctx).run_once, lambda: 2.0, self.ctx),
        ]

    def add_loops(self, loops: list[Loop]) -> None:
        for loop in loops:
            self.loops[loop.name] = loop
            loop.start()

    def stale_loops(self, now: float) -> list[str]:
        """Loops whose last heartbeat (on the context's clock) is older than several of
        their intervals at ``now``, or whose thread died."""
        stale = []
        for name, loop in self.loops.items():
            limit = max(60.0, 10 * loop.interval())
            if not loop.alive() or (loop.last_beat and now - loop.last_beat > limit):
                stale.append(name)
        return stale

    def restart_loop(self, name: str) -> None:
        loop = self.loops.get(name)
        if loop is not None:
            loop.restart()

    def sync_rigs(self) -> None:
        wanted = set(self.ctx.config.rigs)
        have = {name.split(":", 1)[1] for name in self.loops if name.startswith("witness:")}
        for rig in sorted(wanted - have):
            log.info("rig %s: starting its witness and refinery", rig)
            self.add_loops(self._rig_loops(rig))
        for rig in sorted(have - wanted):
            log.info("rig %s: removed from gastown.toml; stopping its loops", rig)
            for name in (f"witness:{rig}", f"refinery:{rig}", f"review:{rig}", f"github:{rig}"):
                loop = self.loops.pop(name, None)
                if loop is not None:
                    loop.stop()

    def watch_config(self) -> None:
        try:
            mtime = self.ctx.town.config_path.stat().st_mtime
        except OSError:
            return
        if mtime == self.config_mtime:
            return
        self.config_mtime = mtime
        try:
            self.ctx.reload_config()
        except GastownError as exc:
            if isinstance(exc, ConfigError):
                self.ctx.config_error = exc
            log.error("gastown.toml changed but is invalid; keeping the previous config: %s", exc)
            self._event(f"config change rejected, previous config kept: {exc}")
            return
        log.info("gastown.toml reloaded")
        self._event("config reloaded")
        self.sync_rigs()

    def _event(self, message: str) -> None:
        try:
            with self.ctx.ledger.write() as conn:
                record_event(conn, "mayor", message, now=self.ctx.now())
        except GastownError:
            pass

    def _open_socket(self) -> MayorSocket | None:
        """Answer `gt sling` on the town's socket (``roles/mayor_socket.py``); without it the CLI slings itself."""
        from gastown.roles.mayor_socket import MayorSocket, handle_request

        requests = MayorSocket(self.ctx.town, lambda request: handle_request(self.ctx, request, self.answers))
        try:
            requests.start()
        except OSError as exc:
            log.warning("mayor socket not opened (gt sling will do its own work): %s", exc)
            return None
        return requests

    # -- run ----------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT/SIGHUP; returns the exit code (0 on a clean stop)."""
        town = self.ctx.town
        town.run_dir.mkdir(parents=True, exist_ok=True)
        pid = running_pid(town)
        if pid is not None and pid != os.getpid():
            raise Conflict(f"a Mayor is already running for this town (pid {pid})", hint="stop it with `gt down`")
        fd = None
        deadline = time.monotonic() + LOCK_WAIT
        while fd is None:
            fd = try_lock_forever(lock_path(town))
            if fd is None:
                if time.monotonic() > deadline:
                    raise Conflict(
                        "another Mayor of this town still holds its lock", hint="stop it with `gt down`, then `gt up`"
                    )
                time.sleep(0.2)  # a Mayor that is shutting down lets go within seconds
        pid_path(town).write_text(f"{os.getpid()}\n")
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: self.stop_event.set())
        self.config_mtime = town.config_path.stat().st_mtime
        self.ctx.config  # noqa: B018 - validate before starting anything
        self.ctx.ledger.connection()
        log.info("mayor %s up for %s (rigs: %s)", os.getpid(), town.root, ", ".join(sorted(self.ctx.config.rigs)) or "none")
        self._event(f"Mayor started (pid {os.getpid()})")
        if self.ctx.config_error is not None:
            self._event(f"gastown.toml has an error, running on the last good config: {self.ctx.config_error.message}")
        requests = self._open_socket()
        self.add_loops(self._town_loops())
        self.sync_rigs()
        while not self.stop_event.wait(1.0):
            self.watch_config()
            for name in [n for n, loop in self.loops.items() if not loop.alive()]:
                log.warning("%s: thread died; restarting it", name)
                self.loops[name].restart()
        log.info("mayor stopping")
        if requests is not None:
            requests.stop()  # `gt sling` does its own work from now on
        pid_path(town).unlink(missing_ok=True)  # no longer "running": a new `gt up` starts a successor
        for loop in self.loops.values():
            loop.stop()
        deadline = time.monotonic() + 10.0  # a loop stuck in a long gate run is left behind
        for loop in self.loops.values():
            if loop.thread is not None:
                loop.thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._event(f"Mayor stopped (pid {os.getpid()})")
        os.close(fd)
        return 0


def configure_logging(town: Town) -> None:
    """The Mayor logs to stdout (its tmux window) and to .gastown/logs/mayor.log."""
    town.logs_dir.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(threadName)-16s %(message)s", "%H:%M:%S")
    root = logger("gastown")
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(town.logs_dir / "mayor.log")):
        handler.setFormatter(fmt)
        root.addHandler(handler)
