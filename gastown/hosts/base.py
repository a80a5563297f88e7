"""The host driver interface: everything gastown does to a machine that runs polecats.

Sling, the Witness, delivery, peek, attach and teardown talk to a ``HostDriver``; the
``local`` driver does it with this machine's tmux, git and /proc, the ``ssh`` driver
does the same on another machine over one multiplexed SSH connection. The town's state
(ledger, hub, prompts' source) stays on the hub; a host only holds what runs there::

    roles (sling, witness, delivery, fleet, lifecycle)
        │  HostDriver: worktrees · windows · snapshot · type · capture · stop · fetch · attach
        ├── LocalHost   tmux/driver.py, git/worktrees.py, _internal/processes.py
        └── SshHost     hosts/sshcmd.py (every ssh call) → the host's tmux, git, /proc

Conventions every driver keeps:

- Paths a driver takes and returns are *the host's* paths (``HostLayout``): the local
  driver's are the town's, the SSH driver's live under ``<root>/<town id>/`` there.
- Pane ids (``%12``) are only unique per host: a spawn is known by (host, pane).
- ``snapshot`` is ONE round trip per host however many agents run there, and a host
  that does not answer raises ``HostUnreachable``: unknown, never "no panes".
- Every method that kills re-checks nothing itself; callers re-check (``pane_tag``)
  right before, as today.
"""

from __future__ import annotations

import abc
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from gastown.tmux.names import PaneInfo

if TYPE_CHECKING:
    from pathlib import Path

    from gastown.tmux.driver import Tmux

HostPath = PurePosixPath


@dataclass(frozen=True)
class HostLayout:
    """Where a town's things live on one host (all paths are that host's).

    ``base`` is the town's own directory there: the town root for ``local``, and
    ``<root>/<town id>`` on an SSH host, so several towns can share one host and root.
    """

    base: HostPath
    state: HostPath
    mirror_name: str = "hub.git"

    @classmethod
    def remote(cls, root: HostPath, town_id: str) -> HostLayout:
        """``<root>/<town id>``: rigs under it, gastown's own files under ``state``.

        >>> HostLayout.remote(PurePosixPath("/srv/gt"), "gt-acme-1a2b3c").polecat_path("app", "ace")
        PurePosixPath('/srv/gt/gt-acme-1a2b3c/app/polecats/ace')
        """
        base = root / town_id
        return cls(base=base, state=base / "state", mirror_name="mirror.git")

    @classmethod
    def local(cls, town_root: HostPath) -> HostLayout:
        """The town's own layout (``town.Town``'s paths), so the local driver changes nothing."""
        return cls(base=town_root, state=town_root / ".gastown")

    def mirror_path(self, rig: str) -> HostPath:
        """The host's bare mirror of the rig's hub (locally: the hub itself)."""
        return self.base / rig / self.mirror_name

    def polecat_path(self, rig: str, polecat: str) -> HostPath:
        return self.base / rig / "polecats" / polecat

    def log_path(self, rig: str, polecat: str, spawn: str) -> HostPath:
        return self.state / "logs" / rig / polecat / f"{spawn}.log"

    def prompt_path(self, spawn: str) -> HostPath:
        return self.state / "prompts" / f"{spawn}.md"

    def launch_path(self, spawn: str) -> HostPath:
        return self.state / "run" / "launch" / f"{spawn}.json"

    def secrets_dir(self, spawn: str) -> HostPath:
        """A 0700 directory of 0600 files handed to one spawn (never on a command line)."""
        return self.state / "run" / "secrets" / spawn

    def home_path(self, spawn: str) -> HostPath:
        return self.state / "homes" / spawn

    @property
    def bin_dir(self) -> HostPath:
        return self.state / "bin"

    @property
    def tmux_socket(self) -> HostPath:
        return self.state / "run" / "tmux.sock"

    @property
    def hub_socket(self) -> HostPath:
        """Where agents there reach the hub's `gt serve` (an SSH host: the reverse tunnel's end)."""
        return self.state / "run" / "hub.sock"

    @property
    def tmux_conf(self) -> HostPath:
        return self.state / "tmux.conf"


@dataclass(frozen=True)
class LaunchSpec:
    """What one agent start needs on its host: the exact argv, environment and cwd the
    trampoline execs, plus files placed first (the prompt; secrets as 0600 files)."""

    spawn: str
    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: HostPath
    files: Mapping[HostPath, bytes] = field(default_factory=dict)
    # On a remote host the agent's environment is the host's own (its PATH, HOME, locale:
    # what the tmux server there was started with) minus ``unset``, plus ``env``; a bare
    # program name in ``argv[0]`` is then looked up on that PATH. Locally env is complete.
    inherit_env: bool = False
    unset: Sequence[str] = ()


@dataclass(frozen=True)
class AgentWindow:
    """A started agent: its pane on that host's tmux server and the pane's process."""

    pane: str
    pid: int | None


@dataclass(frozen=True)
class HostSnapshot:
    """One look at a host: every pane of the town's tmux server there and the size of
    each log asked for (a log that does not exist is left out)."""

    host: str
    panes: tuple[PaneInfo, ...]
    log_sizes: Mapping[str, int]
    took: float  # seconds the look took (one round trip on an SSH host)


@dataclass(frozen=True)
class HostCheck:
    """One line of `gt host check` (and of `gt doctor`): what was looked at, whether it is
    fine, how to fix it. ``ok=False`` fails the check; ``warn`` marks something that works
    but deserves a look (it does not fail)."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None
    warn: bool = False

    @property
    def level(self) -> str:
        return "fail" if not self.ok else ("warn" if self.warn else "ok")

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "level": self.level, "detail": self.detail, "fix": self.fix}


class HostDriver(abc.ABC):
    """A machine that runs polecats. Cheap to create; connections are made on first use.

    Every method may raise ``HostUnreachable`` (an SSH host that does not answer) or
    ``HostKeyRejected``; the local driver raises neither.
    """

    name: str
    layout: HostLayout

    # -- the host itself ------------------------------------------------------------

    @abc.abstractmethod
    def check(self, *, agents: Mapping[str, str] | None = None, pin: bool = False) -> list[HostCheck]:
        """What the host lacks: reachable, tmux, git, a compatible gt, the agent CLIs in
        ``agents`` (runtime name -> program); each problem with its fix. ``pin`` allows the first contact
        to pin the host's key (`gt host add/check`); patrols never pin. Never raises for
        a problem of the host: it is a failed check."""

    @abc.abstractmethod
    def prepare(self) -> None:
        """Make the layout's directories, the trampoline and the tmux config (idempotent)."""

    # -- git ----------------------------------------------------------------------------

    @abc.abstractmethod
    def sync_rig(self, rig: str, hub: Path, refs: Sequence[str]) -> None:
        """Make ``refs`` of the hub (the fetched target, a branch to resume) present in the
        host's mirror at the hub's commits. Local: nothing to do (the mirror is the hub)."""

    @abc.abstractmethod
    def is_worktree(self, rig: str, polecat: str) -> bool: ...

    @abc.abstractmethod
    def create_worktree(self, rig: str, polecat: str, branch: str, start: str) -> HostPath:
        """A new worktree of the host's mirror on a new ``branch`` from ``start`` (see
        ``git.worktrees.create_worktree``: leftovers are archived, never lost)."""

    @abc.abstractmethod
    def reset_worktree(self, rig: str, polecat: str, branch: str, start: str, *, target: str) -> HostPath:
        """Reuse an idle polecat's worktree (``git.worktrees.reset_worktree``'s rules)."""

    @abc.abstractmethod
    def remove_worktree(self, rig: str, polecat: str, *, target: str, force: bool) -> str | None:
        """Remove a polecat's worktree (refuses unmerged work unless ``force``, which archives)."""

    @abc.abstractmethod
    def fetch_branch(self, rig: str, branch: str, hub: Path) -> str | None:
        """Bring the host's ``branch`` into the hub's ``refs/heads/<branch>``; returns its
        commit, or None if the host has no such branch. Never moves a hub branch
        backwards past commits the host does not have (``--force`` is not used)."""

    def fetch_refs(self, rig: str, hub: Path, refspecs: Sequence[str]) -> None:  # noqa: B027 - local: nothing to do
        """Fetch ``refspecs`` (``+refs/heads/b:refs/gastown/...``) from the host's mirror
        into the hub in one fetch. Local: nothing to fetch (the worktrees share the hub)."""

    @abc.abstractmethod
    def new_work_since(self, rig: str, polecat: str, since: float, ignore: Sequence[str] = ()) -> bool:
        """Whether the worktree has a commit made at or after ``since`` or uncommitted
        changes (the Witness's "did it work?")."""

    # -- agents -------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def tmux(self) -> Tmux:
        """The host's tmux server as a ``Tmux``: ``tmux.delivery.deliver`` (the typing
        protocol), ``capture``, ``display`` and ``send_keys`` work through it unchanged.
        Its ``socket`` names the server uniquely across hosts (pane locks use it)."""

    @abc.abstractmethod
    def stage_launch(self, spec: LaunchSpec) -> HostPath:
        """Place the spec's files and its launch file (0600, not yet released); returns
        the launch file's path. Nothing reaches a command line."""

    @abc.abstractmethod
    def prestart_window(self, session: str, window: str, launch_file: HostPath, ids: Mapping[str, str]) -> str:
        """Open the agent's window now, its trampoline waiting for ``launch_file``."""

    @abc.abstractmethod
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
        """Tag the pane with ``spawn``, pipe it to ``log_path``, release the launch file:
        the agent starts with no byte missing from its log. ``reuse_pane`` respawns
        in place; ``prestarted`` is a window from ``prestart_window``."""

    @abc.abstractmethod
    def check_started(self, pane: str) -> None:
        """Raise ``LaunchFailed`` with the agent's last words if it exited at once."""

    @abc.abstractmethod
    def discard_launch(self, launch_file: HostPath) -> None: ...

    @abc.abstractmethod
    def snapshot(self, logs: Sequence[HostPath], *, again: bool = False) -> HostSnapshot:
        """Every pane of the town's server on this host plus the sizes of ``logs``: ONE
        tmux call locally, ONE round trip over SSH. ``again``: the caller looks every few
        seconds (a patrol); a driver may keep something open for the next look."""

    @abc.abstractmethod
    def read_log(self, path: HostPath, start: int, end: int) -> bytes:
        """Bytes ``start..end`` of a log (at most 1 MiB); empty if it is gone."""

    def pane_tag(self, pane: str) -> str | None:
        """``"<dead>\\t<spawn>"`` of a pane, or None if it is gone (the re-check before acting)."""
        return self.tmux.display(pane, "#{pane_dead}\t#{@gt_spawn}")

    def capture(self, pane: str, lines: int = 60) -> str:
        return self.tmux.capture(pane, lines)

    def kill_window(self, pane: str) -> None:
        self.tmux.kill_window(pane)

    @abc.abstractmethod
    def stop_agent(self, pane: str, *, grace: float = 5.0) -> str | None:
        """Stop the pane's whole process tree (TERM, then KILL after ``grace``) and close
        its window; returns its last lines, or None if the pane was already gone."""

    def stop_agents(self, panes: Sequence[str], *, grace: float) -> int:
        """Stop many agents (`gt down`); returns how many had to be killed. Drivers stop
        them all at once where they can (one grace period, not one per agent)."""
        for pane in panes:
            self.stop_agent(pane, grace=grace)
        return 0

    @abc.abstractmethod
    def sweep(self, marker: str, *, grace: float = 2.0) -> int:
        """Stop every process on the host whose command line or environment mentions
        ``marker`` (a spawn's private home), sparing the tmux server; returns how many."""

    @abc.abstractmethod
    def attach_argv(self, session: str, *, inside_tmux: str = "") -> list[str]:
        """The argv that puts this terminal on ``session`` of the host's tmux server
        (``ssh -t`` for a remote host). ``inside_tmux`` is the caller's ``$TMUX``."""

    def ensure_hub_tunnel(self, port: int) -> HostPath:
        """The path, on this host, of a unix socket that reaches the hub's server on
        ``port`` (agents there report back through it). Only remote hosts have one."""
        raise NotImplementedError(f"host {self.name} needs no tunnel to the hub")

    def close(self) -> None:  # noqa: B027 - a no-op by default: the local host holds no connection
        """Let go of connections (the SSH master); the next call reconnects."""


# -- what every driver shares (pure) -------------------------------------------------------

# The trampoline an agent's pane runs (gastown/_exec.py): shipped to SSH hosts as-is.
TRAMPOLINE_SOURCE = "_exec.py"


def pending_path(launch_file: HostPath) -> HostPath:
    """Where a launch file waits until released (the trampoline waits for the real name).

    >>> pending_path(PurePosixPath("/t/run/launch/sp-1.json"))
    PurePosixPath('/t/run/launch/sp-1.json.pending')
    """
    return launch_file.with_name(launch_file.name + ".pending")


def launch_document(spec: LaunchSpec) -> bytes:
    """The trampoline's instructions: exact argv, environment and cwd (JSON)."""
    document: dict[str, Any] = {"argv": list(spec.argv), "env": dict(spec.env), "cwd": str(spec.cwd)}
    if spec.inherit_env:
        document.update(inherit_env=True, unset=list(spec.unset))
    return json.dumps(document, ensure_ascii=False).encode()


def pipe_command(log_path: HostPath) -> str:
    """tmux's ``pipe-pane`` command appending a pane's output to its log (run by sh there).

    >>> pipe_command(PurePosixPath("/a b/x.log"))
    "exec cat >> '/a b/x.log'"
    """
    return f"exec cat >> {shlex.quote(str(log_path))}"


def env_args(env: Mapping[str, str]) -> list[str]:
    """``-e K=V`` pairs for tmux (only the ``GT_*`` identity goes this way; the rest is in
    the launch file)."""
    return [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]


def trampoline_argv(python: str, trampoline: HostPath, launch_file: HostPath) -> list[str]:
    return [python, "-S", "-E", str(trampoline), str(launch_file)]


def parse_last_words(text: str) -> str:
    """The last five lines an agent printed before dying (tmux's own notice dropped).

    >>> parse_last_words("boom\\n\\nPane is dead (status 1)\\n")
    'boom'
    """
    said = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("Pane is dead")]
    return " | ".join(said[-5:]) or "(no output)"
