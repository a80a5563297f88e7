"""The one place gastown runs ssh: every call to a host goes through ``Ssh``.

Every call shares ONE connection per host (``ControlMaster=auto``, ``ControlPersist``,
the control socket under ``.gastown/run/ssh/``), never prompts (``BatchMode``), has a
connect timeout and an overall timeout, reads none of the user's ``~/.ssh/config``
(``-F /dev/null`` and explicit options) and checks the host's key against the town's
own ``.gastown/ssh/known_hosts``: pinned at the first contact by `gt host add/check`
(``accept-new``), strictly checked (``yes``) by everything else.

Remote commands are argv lists, quoted with ``shlex.join`` for the remote shell (the
SSH user's login shell must be a POSIX one); anything large or secret travels on
stdin, never on a command line. Errors are mapped here: ssh's own failures (exit 255)
become ``HostUnreachable`` / ``HostKeyRejected`` / ``HostError`` with one sentence and
a fix, never the command line itself (it may hold an issue's text).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from gastown._internal.proc import Result, run
from gastown.errors import HostError, HostKeyRejected, HostUnreachable, ToolMissing

if TYPE_CHECKING:
    from gastown.config.schema import HostConfig
    from gastown.hosts.shell import HostShell
    from gastown.town import Town

CONNECT_TIMEOUT = 10
PERSIST = 600  # seconds an idle master stays up
DEFAULT_TIMEOUT = 60.0
# A unix socket path holds at most 107 bytes, and ssh binds "<path>.<16 random chars>" first.
MAX_CONTROL_PATH = 86


@dataclass(frozen=True)
class SshTarget:
    """How to reach one host: its name in gastown.toml and the ssh destination."""

    host: str
    destination: str
    port: int | None = None
    identity_file: Path | None = None

    @classmethod
    def from_config(cls, name: str, cfg: HostConfig, town_root: Path) -> SshTarget:
        identity = None
        if cfg.identity_file:
            identity = town_root / Path(cfg.identity_file).expanduser()
        return cls(name, cfg.ssh, cfg.port, identity)

    @property
    def fingerprint(self) -> str:
        """Ten hex digits naming this exact destination (a changed config gets a new master).

        >>> SshTarget("b1", "dev@b1").fingerprint == SshTarget("b1", "dev@b1", 22).fingerprint
        False
        """
        key = f"{self.host}\0{self.destination}\0{self.port}\0{self.identity_file}"
        return hashlib.sha256(key.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class SshFiles:
    """The town's own SSH state: pinned host keys and the control sockets' directory."""

    known_hosts: Path
    control_dir: Path

    @classmethod
    def for_town(cls, town: Town) -> SshFiles:
        return cls(town.state_dir / "ssh" / "known_hosts", town.run_dir / "ssh")


def control_path(files: SshFiles, target: SshTarget, *, uid: int | None = None) -> Path:
    """The control socket of ``target``'s master: ``.gastown/run/ssh/<fingerprint>``.

    When the town's path is too long for a unix socket, a short private symlink
    ``/tmp/gt-ssh-<uid>-<hash>`` to that directory stands in for it (created here; one
    that belongs to another user is refused).
    """
    files.control_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    direct = files.control_dir / target.fingerprint
    if len(os.fsencode(str(direct))) <= MAX_CONTROL_PATH:
        return direct
    owner = os.getuid() if uid is None else uid
    digest = hashlib.sha256(os.fsencode(str(files.control_dir))).hexdigest()[:8]
    link = Path("/tmp") / f"gt-ssh-{owner}-{digest}"
    try:
        info = link.lstat()
    except FileNotFoundError:
        link.symlink_to(files.control_dir)
    else:
        if not stat.S_ISLNK(info.st_mode) or info.st_uid != owner:
            raise HostError(
                f"{link} exists and is not this user's link to {files.control_dir}",
                host=target.host, hint=f"remove {link}, or move the town to a shorter path",
            )
        if os.readlink(link) != str(files.control_dir):
            link.unlink()
            link.symlink_to(files.control_dir)
    return link / target.fingerprint


def ssh_options(target: SshTarget, files: SshFiles, control: Path, *, pin: bool) -> list[str]:
    """Every option of every ssh call, explicit (pure).

    >>> opts = ssh_options(SshTarget("b1", "dev@b1", 2222), SshFiles(Path("/t/kh"), Path("/t/c")), Path("/t/c/x"), pin=False)
    >>> opts[:2], "StrictHostKeyChecking=yes" in opts, opts[-2:]
    (['-F', '/dev/null'], True, ['-p', '2222'])
    """
    options = [
        "-F", "/dev/null",
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={CONNECT_TIMEOUT}",
        "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=3",
        "-o", "ControlMaster=auto",
        "-o", f"ControlPath={control}",
        "-o", f"ControlPersist={PERSIST}",
        "-o", f"UserKnownHostsFile={files.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"StrictHostKeyChecking={'accept-new' if pin else 'yes'}",
        "-o", "UpdateHostKeys=no",
        "-o", "LogLevel=ERROR",
    ]
    if target.identity_file is not None:
        options += ["-o", "IdentitiesOnly=yes", "-i", str(target.identity_file)]
    if target.port is not None:
        options += ["-p", str(target.port)]
    return options


class Ssh:
    """One host's SSH connection. Cheap to create; the master starts with the first call.

    ``round_trips`` counts the calls made (benchmarks and tests read it).
    """

    def __init__(
        self,
        target: SshTarget,
        files: SshFiles,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.target = target
        self.files = files
        self.timeout = timeout
        self.round_trips = 0
        self._environ = dict(os.environ if environ is None else environ)
        self._control: Path | None = None
        self._shell: HostShell | None = None

    @property
    def control(self) -> Path:
        if self._control is None:
            self._control = control_path(self.files, self.target)
        return self._control

    def base_argv(self, *, pin: bool = False, tty: bool = False) -> list[str]:
        """``ssh <options> [-t|-T]``: everything before the destination."""
        self.files.known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return ["ssh", *ssh_options(self.target, self.files, self.control, pin=pin), "-t" if tty else "-T"]

    def argv(self, remote: Sequence[str], *, pin: bool = False, tty: bool = False) -> list[str]:
        """The full ssh argv running ``remote`` (an argv, quoted for the remote shell)."""
        return [*self.base_argv(pin=pin, tty=tty), "--", self.target.destination, shlex.join(remote)]

    def run(
        self,
        remote: Sequence[str],
        *,
        input: str | bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
        pin: bool = False,
        what: str | None = None,
    ) -> Result:
        """Run ``remote`` on the host; ssh's own failures always raise, the command's
        only with ``check``. ``what`` names the command in errors (default: its argv[0])."""
        limit = timeout or self.timeout
        self.round_trips += 1
        try:
            result = run(self.argv(remote, pin=pin), input=input, env=self._environ, timeout=limit)
        except ToolMissing:
            raise ToolMissing("ssh is not installed or not on PATH", hint="install the OpenSSH client") from None
        if result.timed_out:
            raise HostUnreachable(
                f"host {self.target.host} did not answer within {limit:.0f}s",
                host=self.target.host, argv=result.argv, hint="check that it is up; `gt host check` says more",
            )
        if result.returncode == 255:
            raise ssh_failure(self.target, result)
        if check and result.returncode != 0:
            lines = result.stderr.strip().splitlines() or result.stdout.strip().splitlines()
            last = lines[-1] if lines else f"exit status {result.returncode}"
            raise HostError(
                f"on host {self.target.host}, {what or remote[0]} failed: {last}",
                host=self.target.host, argv=result.argv, returncode=result.returncode, output=result.output,
            )
        return result

    def script(
        self, script: str, *args: str, input: str | bytes | None = None, timeout: float | None = None,
        check: bool = True, what: str = "a gastown script",
    ) -> Result:
        """Run a POSIX ``sh`` script with ``args`` as ``$1..`` (never spliced into the script)."""
        return self.run(["sh", "-c", script, "sh", *args], input=input, timeout=timeout, check=check, what=what)

    def look(self, script: str, *args: str, timeout: float | None = None) -> tuple[int, str]:
        """Run ``script`` in the host's long-lived shell (``shell.HostShell``): for looks
        repeated every few seconds, at the cost of one write and one read. Returns the
        exit status and output; raises ``HostUnreachable``."""
        from gastown.hosts.shell import HostShell

        if self._shell is None:
            self._shell = HostShell(self.target.host, self.argv(["sh"]), self._environ)
        self.round_trips += 1
        return self._shell.run(script, args, timeout=timeout or self.timeout)

    def put_files(self, files: Mapping[PurePosixPath, bytes], *, mode: int = 0o600) -> None:
        """Write ``files`` on the host in ONE round trip, each created ``mode`` from the
        start (umask 077, parents 0700) and renamed into place; contents travel on stdin."""
        if not files:
            return
        args = [arg for path, data in files.items() for arg in (str(path), str(len(data)))]
        blob = b"".join(files.values())
        self.run([REMOTE_PYTHON, "-c", PUT_FILES, f"{mode:o}", *args], input=blob, what="writing files")

    def git_ssh_command(self) -> str:
        """``GIT_SSH_COMMAND`` for git on the hub: the same options, the same master."""
        return shlex.join(self.base_argv())

    def forward_to_hub(self, remote_socket: PurePosixPath, port: int) -> Result:
        """Ask the running master to forward connections to the unix socket ``remote_socket``
        on the host to ``127.0.0.1:port`` here (``ssh -O forward -R``): a reverse tunnel,
        so the host reaches the hub while every connection still goes hub → host.

        A control request to the master, not a round trip of its own: a forward the master
        already holds is answered at once; a new one costs the master one request to the
        host's sshd, which binds the socket 0600 (sshd's ``StreamLocalBindMask``) and
        refuses if a file is in the way. Fails (exit 255) when no master runs.
        """
        if ":" in str(remote_socket):
            raise HostError(f"the socket path {remote_socket} on host {self.target.host} holds a colon, which ssh -R cannot take",
                            host=self.target.host, hint=f"give hosts.{self.target.host}.root a path without ':'")
        spec = f"{remote_socket}:127.0.0.1:{int(port)}"
        return run([*self.base_argv(), "-O", "forward", "-R", spec, "--", self.target.destination],
                   env=self._environ, timeout=CONNECT_TIMEOUT + 5)

    def master_running(self) -> bool:
        result = run([*self.base_argv(), "-O", "check", "--", self.target.destination], env=self._environ, timeout=10)
        return result.ok

    def close(self) -> None:
        """Stop this host's master connection, if one runs (the next call reconnects)."""
        if self._shell is not None:
            self._shell.close()
            self._shell = None
        if self._control is not None and self._control.exists():
            run([*self.base_argv(), "-O", "exit", "--", self.target.destination], env=self._environ, timeout=10)


# The host's Python (gt needs one there anyway) reads the files from stdin: arguments
# are the mode, then path and size pairs; each file is written whole, then renamed.
REMOTE_PYTHON = "python3"
PUT_FILES = r"""
import os, sys
mode = int(sys.argv[1], 8)
stream = sys.stdin.buffer
os.umask(0o077)
for path, size in zip(sys.argv[2::2], sys.argv[3::2]):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = "%s.gt-tmp.%d" % (path, os.getpid())
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as out:
        out.write(stream.read(int(size)))
    os.chmod(tmp, mode)
    os.replace(tmp, path)
"""


def ssh_failure(target: SshTarget, result: Result) -> HostError:
    """ssh's own failure (exit 255) as one sentence and a fix (pure).

    >>> r = Result(["ssh"], 255, "", "ssh: connect to host 127.0.0.1 port 9: Connection refused\\n", 0.0)
    >>> type(ssh_failure(SshTarget("b1", "dev@127.0.0.1", 9), r)).__name__
    'HostUnreachable'
    """
    said = [line.strip() for line in result.stderr.strip().splitlines() if line.strip() and not line.startswith("@")]
    last = said[-1] if said else "ssh failed with no message"
    host = target.host
    facts = {"argv": result.argv, "returncode": 255, "output": result.stderr}
    text = result.stderr
    if "IDENTIFICATION HAS CHANGED" in text or "has changed and you have requested strict checking" in text:
        return HostKeyRejected(
            f"host {host} presented a different key than the one pinned for it: refused",
            host=host, **facts,
            hint=f"if {host} was reinstalled, delete its line from .gastown/ssh/known_hosts and run "
            f"`gt host check {host}`; otherwise someone may be intercepting the connection",
        )
    if "Host key verification failed" in text or "host key is known" in text:
        return HostKeyRejected(
            f"the key of host {host} is not pinned yet", host=host, **facts,
            hint=f"pin it with `gt host check {host}`",
        )
    if "Permission denied" in text or "Too many authentication failures" in text:
        return HostError(
            f"host {host} refused the login as {target.destination}: {last}", host=host, **facts,
            hint=f"install your public key in the host's ~/.ssh/authorized_keys, or set hosts.{host}.identity_file",
        )
    port = f" -p {target.port}" if target.port else ""
    return HostUnreachable(
        f"cannot reach host {host}: {last}", host=host, **facts,
        hint=f"check that it is up and that `ssh{port} {target.destination}` works from here",
    )
