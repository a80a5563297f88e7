"""The ``local`` host: this machine, driven exactly as gastown always has.

The town's own tmux server (``tmux/driver.py``), the rig's hub and its worktrees
(``git/worktrees.py``), this machine's process table (``_internal/processes.py``). The
layout is the town's, so routing a role through this driver changes nothing on disk.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from gastown._internal.processes import alive, descendants, send_signal, sweep, terminate_tree
from gastown.errors import GastownError, LaunchFailed
from gastown.git import worktrees as wt
from gastown.hosts import LOCAL, worktree_ops
from gastown.hosts.base import (
    AgentWindow,
    HostCheck,
    HostDriver,
    HostLayout,
    HostPath,
    HostSnapshot,
    LaunchSpec,
    env_args,
    launch_document,
    parse_last_words,
    pending_path,
    pipe_command,
    trampoline_argv,
)
from gastown.hosts.probe import assess_probe, local_probe
from gastown.screen import tail
from gastown.tmux.driver import Tmux
from gastown.town import Town

HOLD_ARGV = ("sleep", "3600")
TRAMPOLINE = Path(__file__).resolve().parent.parent / "_exec.py"
MAX_LOG_READ = 1 << 20


class LocalHost(HostDriver):
    """This machine. ``tmux`` is the town's server (``Context.tmux``)."""

    name = LOCAL

    def __init__(self, town: Town, tmux: Tmux) -> None:
        self.town = town
        self._tmux = tmux
        self.layout = HostLayout.local(HostPath(town.root))

    @property
    def tmux(self) -> Tmux:
        return self._tmux

    # -- the host itself ----------------------------------------------------------------

    def check(self, *, agents: Mapping[str, str] | None = None, pin: bool = False) -> list[HostCheck]:
        return assess_probe(LOCAL, local_probe(agents or {}), agents or {})

    def prepare(self) -> None:
        for sub in ("logs", "prompts", "run/launch"):
            (Path(self.layout.state) / sub).mkdir(parents=True, exist_ok=True)
        self._tmux.ensure_conf()

    # -- git ----------------------------------------------------------------------------

    def _hub(self, rig: str) -> str:
        return str(self.town.hub_path(rig))

    def _path(self, rig: str, polecat: str) -> str:
        return str(self.town.polecat_path(rig, polecat))

    def sync_rig(self, rig: str, hub: Path, refs: Sequence[str]) -> None:
        """Nothing to do: this host's worktrees hang off the hub itself."""

    def is_worktree(self, rig: str, polecat: str) -> bool:
        return bool(worktree_ops.apply("is_worktree", {"path": self._path(rig, polecat)}))

    def create_worktree(self, rig: str, polecat: str, branch: str, start: str) -> HostPath:
        worktree_ops.apply("create_worktree", {"mirror": self._hub(rig), "path": self._path(rig, polecat), "branch": branch, "start": start})
        return self.layout.polecat_path(rig, polecat)

    def reset_worktree(self, rig: str, polecat: str, branch: str, start: str, *, target: str) -> HostPath:
        worktree_ops.apply(
            "reset_worktree",
            {"mirror": self._hub(rig), "path": self._path(rig, polecat), "branch": branch, "start": start, "target": target},
        )
        return self.layout.polecat_path(rig, polecat)

    def remove_worktree(self, rig: str, polecat: str, *, target: str, force: bool) -> str | None:
        args = {"mirror": self._hub(rig), "path": self._path(rig, polecat), "target": target, "force": force}
        return worktree_ops.apply("remove_worktree", args)

    def fetch_branch(self, rig: str, branch: str, hub: Path) -> str | None:
        """The branch is already in the hub (local worktrees share its refs)."""
        return wt.ref_sha(hub, f"refs/heads/{branch}")

    def new_work_since(self, rig: str, polecat: str, since: float, ignore: Sequence[str] = ()) -> bool:
        args = {"path": self._path(rig, polecat), "since": since, "ignore": list(ignore)}
        return bool(worktree_ops.apply("new_work_since", args))

    # -- agents -------------------------------------------------------------------------

    def stage_launch(self, spec: LaunchSpec) -> HostPath:
        for path, data in spec.files.items():
            _write_private(Path(path), data)
        launch_file = self.layout.launch_path(spec.spawn)
        _write_private(Path(pending_path(launch_file)), launch_document(spec))
        return launch_file

    def discard_launch(self, launch_file: HostPath) -> None:
        for candidate in (launch_file, pending_path(launch_file)):
            Path(candidate).unlink(missing_ok=True)

    def _trampoline(self, launch_file: HostPath) -> list[str]:
        return trampoline_argv(sys.executable, HostPath(TRAMPOLINE), launch_file)

    def prestart_window(self, session: str, window: str, launch_file: HostPath, ids: Mapping[str, str]) -> str:
        return self._tmux.new_window(session, window, cwd=self.town.root, env=ids, argv=self._trampoline(launch_file))

    def start_agent(
        self,
        launch_file: HostPath,
        *,
        session: str,
        window: str,
        cwd: HostPath,
        ids: Mapping[str, str],
        log_path: HostPath,
        spawn: str,
        reuse_pane: str | None = None,
        prestarted: str | None = None,
    ) -> AgentWindow:
        tmux = self._tmux
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        pipe = pipe_command(log_path)
        release = lambda: os.replace(pending_path(launch_file), launch_file)  # noqa: E731
        if reuse_pane and tmux.pane_exists(reuse_pane):
            pane = reuse_pane
            tmux.cmd("pipe-pane", "-t", pane, check=False)  # close the previous spawn's log
            if tmux.display(pane, "#{pane_dead}") == "1":
                tmux.respawn(pane, cwd=Path(cwd), env=ids, argv=list(HOLD_ARGV))  # a dead pane takes no pipe
            release()
            tmux.cmd(
                "set-option", "-p", "-t", pane, "@gt_spawn", spawn, ";",
                "pipe-pane", "-o", "-t", pane, pipe, ";",
                "respawn-pane", "-k", "-t", pane, "-c", str(cwd), *env_args(ids), "--", *self._trampoline(launch_file),
            )
        else:
            pane = prestarted or tmux.new_window(session, window, cwd=Path(cwd), env=ids, argv=self._trampoline(launch_file))
            tmux.cmd("set-option", "-p", "-t", pane, "@gt_spawn", spawn, ";", "pipe-pane", "-o", "-t", pane, pipe)
            release()
        pid = tmux.display(pane, "#{pane_pid}")
        return AgentWindow(pane, int(pid) if pid and pid.isdigit() else None)

    def check_started(self, pane: str, *, checks: tuple[float, ...] = (0.05, 0.25)) -> None:
        tmux = self._tmux
        for delay in checks:
            time.sleep(delay)
            status = tmux.display(pane, "#{pane_dead}\t#{pane_dead_status}")
            if status is None:
                raise LaunchFailed("the agent's tmux window vanished right after start")
            dead, _, code = status.partition("\t")
            if dead == "1" and not code:
                tmux.cmd("run-shell", "true", check=False)  # makes tmux reap the child
                code = (tmux.display(pane, "#{pane_dead_status}") or "").strip()
            if dead == "1":
                raise LaunchFailed(
                    f"the agent exited at once (status {code or '?'}): {parse_last_words(tmux.capture(pane, 30))}",
                    hint="run its command by hand in the worktree to see why",
                )

    def snapshot(self, logs: Sequence[HostPath], *, again: bool = False) -> HostSnapshot:
        started = time.perf_counter()
        panes = tuple(self._tmux.list_panes())
        sizes = {}
        for log in logs:
            try:
                sizes[str(log)] = os.stat(log).st_size
            except OSError:
                continue
        return HostSnapshot(LOCAL, panes, sizes, time.perf_counter() - started)

    def read_log(self, path: HostPath, start: int, end: int) -> bytes:
        try:
            with open(path, "rb") as handle:
                handle.seek(max(0, start))
                return handle.read(max(0, min(end - start, MAX_LOG_READ)))
        except OSError:
            return b""

    def stop_agent(self, pane: str, *, grace: float = 5.0) -> str | None:
        tmux = self._tmux
        if not tmux.pane_exists(pane):
            return None
        try:
            last = tail(tmux.capture(pane, 40), 20)
        except GastownError:
            last = None
        pid = tmux.display(pane, "#{pane_pid}")
        if pid and pid.isdigit() and tmux.display(pane, "#{pane_dead}") != "1":
            terminate_tree(int(pid), grace=grace)
        tmux.kill_window(pane)
        return last

    def stop_agents(self, panes: Sequence[str], *, grace: float) -> int:
        """Stop many agents at once (`gt down`): TERM every tree, wait ``grace`` once,
        KILL what is left; returns how many had to be killed. Windows are closed."""
        trees = {}
        for pane in panes:
            pid = self._tmux.display(pane, "#{pane_pid}")
            if pid and pid.isdigit() and self._tmux.display(pane, "#{pane_dead}") != "1":
                trees[pane] = [*descendants(int(pid)), int(pid)]
        for victims in trees.values():
            for victim in victims:
                send_signal(victim, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(alive(v) for victims in trees.values() for v in victims):
            time.sleep(0.05)
        forced = 0
        for victims in trees.values():
            survivors = [v for v in victims if alive(v)]
            forced += bool(survivors)
            for victim in survivors:
                send_signal(victim, signal.SIGKILL)
        for pane in panes:
            self._tmux.kill_window(pane)
        return forced

    def sweep(self, marker: str, *, grace: float = 2.0) -> int:
        server = self._tmux.cmd("display-message", "-p", "#{pid}", check=False).stdout.strip()
        return sweep(marker, grace=grace, spare={int(server)} if server.isdigit() else set())

    def attach_argv(self, session: str, *, inside_tmux: str = "") -> list[str]:
        if inside_tmux and Path(inside_tmux.split(",")[0]).name == self._tmux.socket:
            return self._tmux.argv("switch-client", "-t", f"={session}")
        return self._tmux.argv("attach-session", "-t", f"={session}")


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` owner-only (0600) from the first byte, replacing any old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.gt-tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
