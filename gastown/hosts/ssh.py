"""An SSH host: the same driver calls as ``local``, run on another machine over ONE
multiplexed SSH connection (``hosts/sshcmd.py``).

On the host, the town's things live under ``<root>/<town id>/``: a bare mirror of each
rig's hub (the hub pushes the target into it), the polecats' worktrees hanging off that
mirror, the logs, and the town's own tmux server (its socket and config under
``state/``). Every connection goes from the hub to the host; the host needs no
credentials for the hub. Worktree operations run there through the host's own ``gt``
(``gt _host-op``), so they keep exactly ``git.worktrees``' never-lose-work rules.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gastown import errors
from gastown._internal.proc import Result
from gastown.errors import GastownError, GitError, HostError, LaunchFailed, TmuxError
from gastown.git import worktrees as wt
from gastown.git.cmd import Git
from gastown.hosts import remote_scripts as scripts
from gastown.hosts.base import (
    TRAMPOLINE_SOURCE,
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
from gastown.hosts.probe import PROBE_SCRIPT, assess_probe, parse_probe
from gastown.hosts.sshcmd import REMOTE_PYTHON, Ssh, SshFiles, SshTarget
from gastown.screen import tail
from gastown.tmux.driver import SERVER_CONF, Tmux
from gastown.tmux.names import pane_format, parse_panes
from gastown.town import Town, socket_name_for

if TYPE_CHECKING:
    from gastown.config.schema import HostConfig

MAX_LOG_READ = 1 << 20
# Errors a host's `gt _host-op` reports that keep their kind on the hub (the rest: HostError).
ANSWER_ERRORS: dict[str, type[GastownError]] = {
    "Conflict": errors.Conflict, "NotFound": errors.NotFound, "InvalidInput": errors.InvalidInput,
}
TRAMPOLINE = Path(__file__).resolve().parent.parent / TRAMPOLINE_SOURCE


class RemoteTmux(Tmux):
    """The town's tmux server on an SSH host, as a ``Tmux``: each call is one round trip
    on the host's shared connection, so ``tmux.delivery.deliver`` types into a remote
    agent exactly as into a local one. ``socket`` is a label unique to the host (the
    pane locks use it); the real socket is a path under the host's root."""

    def __init__(self, ssh: Ssh, layout: HostLayout) -> None:
        super().__init__(f"ssh-{ssh.target.host}-{ssh.target.fingerprint[:6]}", timeout=ssh.timeout, environ={})
        self.ssh = ssh
        self.layout = layout

    def argv(self, *args: str) -> list[str]:
        return ["tmux", "-u", "-S", str(self.layout.tmux_socket), "-f", str(self.layout.tmux_conf), *args]

    def cmd(self, *args: str, input: str | None = None, check: bool = True, timeout: float | None = None) -> Result:
        result = self.ssh.run(self.argv(*args), input=input, timeout=timeout, check=False)
        if check and not result.ok:
            what = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
            raise TmuxError(f"tmux {args[0]} on host {self.ssh.target.host} failed: {what}",
                            argv=result.argv, returncode=result.returncode, output=result.output)
        return result

    def ensure_conf(self) -> None:
        """The host's config file is shipped by ``SshHost.prepare``."""

    def _remove_socket_file(self) -> None:
        """tmux on the host removes nothing the hub could see; the socket stays there."""


class SshHost(HostDriver):
    """A machine reached over SSH (``[hosts.<name>]``)."""

    def __init__(self, name: str, town: Town, ssh: Ssh, root: str) -> None:
        self.name = name
        self.town = town
        self.ssh = ssh
        self.root = root
        self.town_id = socket_name_for(town.root)
        self._layout: HostLayout | None = None
        self._tmux: RemoteTmux | None = None
        self._mirrors: set[str] = set()
        self._prepared = False

    @classmethod
    def from_config(cls, name: str, town: Town, *, timeout: float = 60.0) -> SshHost:
        return cls.for_config(name, town.config().hosts[name], town, timeout=timeout)

    @classmethod
    def for_config(cls, name: str, cfg: HostConfig, town: Town, *, timeout: float = 60.0) -> SshHost:
        ssh = Ssh(SshTarget.from_config(name, cfg, town.root), SshFiles.for_town(town), timeout=timeout)
        return cls(name, town, ssh, cfg.root)

    # -- where things are -----------------------------------------------------------------

    @property
    def layout(self) -> HostLayout:  # type: ignore[override]
        """The town's directory on the host; a ``~/`` root costs one round trip, once."""
        if self._layout is None:
            root = self.root
            if not root.startswith("/"):
                root = self.ssh.script(scripts.RESOLVE_ROOT, root, what="finding the root").stdout.strip()
            self._layout = HostLayout.remote(HostPath(root), self.town_id)
        return self._layout

    @property
    def tmux(self) -> RemoteTmux:
        if self._tmux is None:
            self._tmux = RemoteTmux(self.ssh, self.layout)
        return self._tmux

    @property
    def trampoline(self) -> HostPath:
        return self.layout.bin_dir / "gt-exec.py"

    # -- the host itself ----------------------------------------------------------------

    def check(self, *, agents: Mapping[str, str] | None = None, pin: bool = False) -> list[HostCheck]:
        wanted = agents or {}
        reach = f"{self.name}: ssh"
        try:
            result = self.ssh.run(
                ["sh", "-c", PROBE_SCRIPT, "sh", self.root, str(HostPath(self.root) / self.town_id / "state" / "bin"),
                 *sorted(set(wanted.values()))],
                pin=pin, what="the host check",
            )
        except HostError as exc:
            return [HostCheck(reach, False, exc.message, exc.hint)]
        checks = [HostCheck(reach, True, f"{self.ssh.target.destination} answers; host key pinned in {self.ssh.files.known_hosts}")]
        return checks + assess_probe(self.name, parse_probe(result.stdout), wanted)

    def prepare(self) -> None:
        """Ship the trampoline and the tmux config (one round trip; once per driver)."""
        if self._prepared:
            return
        self.ssh.put_files(self._own_files())
        self._prepared = True

    def _own_files(self) -> dict[HostPath, bytes]:
        """The trampoline and the tmux config (0600 like everything gastown puts there:
        only the SSH user's own python and tmux read them)."""
        return {self.trampoline: TRAMPOLINE.read_bytes(), self.layout.tmux_conf: SERVER_CONF.encode()}

    # -- git ----------------------------------------------------------------------------

    def _git(self, hub: Path) -> Git:
        self.ssh.round_trips += 1  # git runs one ssh over the shared master
        return Git(hub, env={"GIT_SSH_COMMAND": self.ssh.git_ssh_command()})

    def _url(self, rig: str) -> str:
        return f"ssh://{self.ssh.target.destination}{self.layout.mirror_path(rig)}"

    def sync_rig(self, rig: str, hub: Path, refs: Sequence[str]) -> None:
        """Push ``refs`` (force: the hub is the truth for them) into the host's mirror; a
        ``src:dst`` entry pushes the hub's ``src`` (a ref or a commit) to ``dst``."""
        if rig not in self._mirrors:
            self.ssh.script(scripts.INIT_MIRROR, str(self.layout.mirror_path(rig)), what="making the mirror")
            self._mirrors.add(rig)
        if refs:
            self._git(hub).run("push", "--quiet", "--no-verify", self._url(rig), *[f"+{ref}" if ":" in ref else f"+{ref}:{ref}" for ref in refs],
                               timeout=300)

    def _op(self, op: str, **args: Any) -> Any:
        """Run a ``worktree_ops`` operation on the host through its ``gt``."""
        request = json.dumps({"op": op, "args": args})
        result = self.ssh.run(["gt", "_host-op"], input=request, check=False, what="gt")
        try:
            answer = json.loads(result.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            if result.returncode == 127:
                raise HostError(f"gt is not installed on host {self.name}", host=self.name,
                                hint=f"run `gt host check {self.name}` for what it needs") from None
            said = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
            raise HostError(f"on host {self.name}, gt failed: {said}", host=self.name,
                            hint=f"check that its gt matches this one: `gt host check {self.name}`") from None
        if answer.get("ok"):
            return answer.get("result")
        message, hint = f"on host {self.name}: {answer.get('message')}", answer.get("hint")
        same = ANSWER_ERRORS.get(str(answer.get("kind")))
        if same is not None:
            raise same(message, hint=hint)
        raise HostError(message, host=self.name, hint=hint)

    def is_worktree(self, rig: str, polecat: str) -> bool:
        return bool(self._op("is_worktree", path=str(self.layout.polecat_path(rig, polecat))))

    def create_worktree(self, rig: str, polecat: str, branch: str, start: str) -> HostPath:
        """The way clear (the usual case): one `git worktree add` there. Anything in the
        way (a leftover branch or worktree record): `gt _host-op`, whose rules archive
        leftovers before replacing them."""
        path = self.layout.polecat_path(rig, polecat)
        mirror = str(self.layout.mirror_path(rig))
        if self.ssh.run(["git", "-C", mirror, "worktree", "add", "-q", "-b", branch, str(path), start],
                        check=False, what="git").ok:
            return path
        self._op("create_worktree", mirror=str(self.layout.mirror_path(rig)), path=str(path), branch=branch, start=start)
        return path

    def reset_worktree(self, rig: str, polecat: str, branch: str, start: str, *, target: str) -> HostPath:
        path = self.layout.polecat_path(rig, polecat)
        self._op("reset_worktree", mirror=str(self.layout.mirror_path(rig)), path=str(path), branch=branch,
                 start=start, target=target)
        return path

    def remove_worktree(self, rig: str, polecat: str, *, target: str, force: bool) -> str | None:
        return self._op("remove_worktree", mirror=str(self.layout.mirror_path(rig)),
                        path=str(self.layout.polecat_path(rig, polecat)), target=target, force=force)

    def fetch_branch(self, rig: str, branch: str, hub: Path) -> str | None:
        ref = f"refs/heads/{branch}"
        result = self._git(hub).run("fetch", "--quiet", "--no-tags", self._url(rig), f"{ref}:{ref}", check=False, timeout=300)
        if not result.ok:
            if "couldn't find remote ref" in result.stderr:
                return None
            complaint = (result.stderr.strip().splitlines() or ["git fetch failed"])[-1]
            raise GitError(f"fetching {branch} from host {self.name} failed: {complaint}",
                           hint="the hub's branch has commits the host's lacks; look before forcing anything")
        return wt.ref_sha(hub, ref)

    def fetch_refs(self, rig: str, hub: Path, refspecs: Sequence[str]) -> None:
        if not refspecs:
            return
        result = self._git(hub).run("fetch", "--quiet", "--no-tags", self._url(rig), *refspecs, check=False, timeout=300)
        if not result.ok:
            complaint = (result.stderr.strip().splitlines() or ["git fetch failed"])[-1]
            raise GitError(f"fetching from host {self.name} failed: {complaint}", hint=f"`gt host check {self.name}`")

    def new_work_since(self, rig: str, polecat: str, since: float, ignore: Sequence[str] = ()) -> bool:
        return bool(self._op("new_work_since", path=str(self.layout.polecat_path(rig, polecat)), since=since,
                             ignore=list(ignore)))

    # -- agents -------------------------------------------------------------------------

    def stage_launch(self, spec: LaunchSpec) -> HostPath:
        """The spec's files and the pending launch file, 0600, in ONE round trip (stdin);
        a driver's first also carries what ``prepare`` ships."""
        launch_file = self.layout.launch_path(spec.spawn)
        own = {} if self._prepared else self._own_files()
        self.ssh.put_files({**own, **spec.files, pending_path(launch_file): launch_document(spec)})
        self._prepared = True
        return launch_file

    def discard_launch(self, launch_file: HostPath) -> None:
        self.ssh.run(["rm", "-f", "--", str(launch_file), str(pending_path(launch_file))], check=False)

    def _trampoline(self, launch_file: HostPath) -> list[str]:
        return trampoline_argv(REMOTE_PYTHON, self.trampoline, launch_file)

    def prestart_window(self, session: str, window: str, launch_file: HostPath, ids: Mapping[str, str]) -> str:
        self.prepare()
        return self.tmux.new_window(session, window, cwd=Path(self.layout.base), env=ids, argv=self._trampoline(launch_file))

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
        """Window, tag, log pipe and release in ONE round trip."""
        self.prepare()
        mode = "reuse" if reuse_pane else "prestarted" if prestarted else "new"
        layout = self.layout
        result = self.ssh.script(
            scripts.START, str(layout.tmux_socket), str(layout.tmux_conf), mode, session, reuse_pane or prestarted or "",
            spawn, str(log_path), pipe_command(log_path), str(launch_file), str(cwd), window,
            *env_args(ids), "--", *self._trampoline(launch_file), what="starting the agent",
        )
        pane, _, pid = result.stdout.strip().partition(" ")
        return AgentWindow(pane, int(pid) if pid.isdigit() else None)

    def check_started(self, pane: str) -> None:
        out = self.ssh.script(scripts.CHECK_STARTED, str(self.layout.tmux_socket), pane, what="checking the agent").stdout
        first, _, rest = out.partition("\n")
        if first == "gone":
            raise LaunchFailed("the agent's tmux window vanished right after start")
        if first.startswith("dead"):
            code = first.removeprefix("dead").strip() or "?"
            raise LaunchFailed(f"the agent exited at once (status {code}): {parse_last_words(rest)}",
                               hint="run its command by hand in the worktree on that host to see why")

    def snapshot(self, logs: Sequence[HostPath], *, again: bool = False) -> HostSnapshot:
        """Every pane and every log size in ONE round trip. A host with no tmux server
        has no panes; a host that does not answer raises ``HostUnreachable``. ``again``:
        the caller looks every few seconds (a patrol), so the look goes through the host's
        long-lived shell instead of a new ssh call."""
        started = time.perf_counter()
        args = (str(self.layout.tmux_socket), pane_format(), *map(str, logs))
        if again:
            output = self.ssh.look(scripts.SNAPSHOT, *args)[1]
        else:
            output = self.ssh.script(scripts.SNAPSHOT, *args, what="the snapshot").stdout
        panes_text, _, rest = output.partition("\x1e")
        status_line, _, sizes_text = rest.partition("\n")
        status, _, complaint = status_line.partition("\t")
        if status not in ("0", "") and not _no_server(complaint):
            raise HostError(f"on host {self.name}, tmux list-panes failed: {complaint or 'exit ' + status}", host=self.name,
                            hint=f"`gt host check {self.name}` says what the host lacks")
        return HostSnapshot(self.name, tuple(parse_panes(panes_text)), parse_sizes(sizes_text), time.perf_counter() - started)

    def read_log(self, path: HostPath, start: int, end: int) -> bytes:
        count = max(0, min(end - start, MAX_LOG_READ))
        if count == 0:
            return b""
        out = self.ssh.script(scripts.READ_LOG, str(path), str(max(0, start) + 1), str(count), what="reading a log")
        return out.stdout.encode("utf-8")

    def stop_agent(self, pane: str, *, grace: float = 5.0) -> str | None:
        return self._stop([pane], grace)[1].get(pane)

    def stop_agents(self, panes: Sequence[str], *, grace: float) -> int:
        return self._stop(panes, grace)[0] if panes else 0

    def _stop(self, panes: Sequence[str], grace: float) -> tuple[int, dict[str, str]]:
        """One round trip: last lines of each pane, trees TERMed at once, KILLed after
        ``grace``, windows closed. Returns (trees killed, last lines by pane)."""
        out = self.ssh.script(scripts.STOP, str(self.layout.tmux_socket), str(max(0, round(grace * 10))), *panes,
                              timeout=grace + self.ssh.timeout, what="stopping agents").stdout
        blocks, _, forced = out.rpartition("\x1e")
        last = {}
        for block in blocks.split("\x1d")[1:]:
            pane, _, text = block.partition("\n")
            last[pane] = tail(text, 20)
        return int(forced.strip() or 0), last

    def sweep(self, marker: str, *, grace: float = 2.0) -> int:
        out = self.ssh.script(scripts.SWEEP, marker, str(round(grace * 10)), str(self.layout.tmux_socket),
                              timeout=grace + self.ssh.timeout, what="sweeping processes").stdout
        return int(out.strip() or 0)

    def ensure_hub_tunnel(self, port: int) -> HostPath:
        """Forward the host's ``layout.hub_socket`` to the hub's `gt serve` on
        ``127.0.0.1:port`` over this host's master; returns the socket's path there.

        Idempotent: a forward the master already holds is answered at once (no round
        trip). When none runs yet (a new master: the first call, or sshd or the master
        restarted), the socket's directory is made and a socket file left by an earlier
        connection is removed first (sshd's ``StreamLocalBindUnlink`` defaults to no),
        then the forward is asked again. The forward lives as long as the master: call
        this again after anything that may have replaced it (each sling; each patrol).
        Raises ``HostUnreachable``, or ``HostError`` when the host's sshd refuses it.
        """
        socket_path = self.layout.hub_socket
        if self.ssh.forward_to_hub(socket_path, port).ok:
            return socket_path
        # No master yet (this round trip starts one), or a stale socket file in the way.
        self.ssh.script(scripts.CLEAR_SOCKET, str(socket_path.parent), str(socket_path), what="clearing the hub socket")
        result = self.ssh.forward_to_hub(socket_path, port)
        if not result.ok:
            said = [line for line in result.stderr.strip().splitlines() if line.strip()]
            raise HostError(
                f"host {self.name} refused to forward the hub's socket: {said[0] if said else 'no reason given'}",
                host=self.name, argv=result.argv, returncode=result.returncode, output=result.output,
                hint="allow it in the host's sshd_config (AllowStreamLocalForwarding yes, no DisableForwarding)",
            )
        return socket_path

    def attach_argv(self, session: str, *, inside_tmux: str = "") -> list[str]:
        """``ssh -t`` into the host's tmux session (a nested client when run inside tmux)."""
        return self.ssh.argv(self.tmux.argv("attach-session", "-t", f"={session}"), tty=True)

    def close(self) -> None:
        self.ssh.close()


def _no_server(complaint: str) -> bool:
    """tmux's ways of saying "no server runs on that socket" (an idle host: no panes)."""
    return any(s in complaint for s in ("no server running", "error connecting to", "No such file or directory"))


def parse_sizes(text: str) -> dict[str, int]:
    """``wc -c`` output as {path: size} (its "total" line dropped).

    >>> parse_sizes("  12 /a/x.log\\n 3 /a/y b.log\\n 15 total\\n")
    {'/a/x.log': 12, '/a/y b.log': 3}
    """
    sizes = {}
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[-1].endswith(" total"):
        lines.pop()
    for line in lines:
        size, _, path = line.partition(" ")
        if size.isdigit() and path:
            sizes[path.strip()] = int(size)
    return sizes
