"""A real SSH host for the tests: Debian's sshd on 127.0.0.1, whose root only SSH can reach.

``SshHost`` starts a namespace holder (``unshare --mount``) that mounts a private tmpfs
over the host's ``root`` (an empty directory on the hub's side), then runs ``sshd`` in
that mount namespace (``nsenter``) on a free port, with its own config, host key and
one authorized key made here. Everything a test does there (git mirrors, worktrees, the
host's own tmux server, agents) lives in that tmpfs: from the hub, ``root`` stays an
empty directory. The rest of the filesystem is shared, so the remote finds this
checkout's Python environment (its ``gt`` and the demo agent) on the PATH the sshd
hands its sessions (``SetEnv``), built as a farm of links so a test can leave a tool out.

``stop()`` kills every process of the host (sshd, its sessions, the host's tmux server
and agents: every process in that mount namespace but the holder), keeping its disk;
``start()`` brings sshd back on the same port with the same key; ``destroy()`` ends it all.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from tests.helpers import retry_until

SSHD = "/usr/sbin/sshd"
BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def sshd_available() -> bool:
    return os.path.exists(SSHD) and shutil.which("ssh") is not None and shutil.which("unshare") is not None and shutil.which("nsenter") is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tool_farm(directory: Path, *, missing: Iterable[str] = (), gt: bool = True) -> Path:
    """A directory of links to every program on the system's PATH except ``missing``
    (``git`` also drops ``git-*``), plus ``gt`` running this checkout (unless ``gt=False``)."""
    directory.mkdir(parents=True, exist_ok=True)
    left_out = tuple(missing)
    for bin_dir in BIN_DIRS:
        if not os.path.isdir(bin_dir):
            continue
        for name in os.listdir(bin_dir):
            if name in left_out or any(name.startswith(f"{m}-") for m in left_out) or (directory / name).exists():
                continue
            os.symlink(os.path.join(bin_dir, name), directory / name)
    if gt:
        shim = directory / "gt"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m gastown "$@"\n')
        shim.chmod(0o755)
    return directory


class SshServer:
    """One SSH host (see the module docstring). Use as a context manager, or call
    ``start()`` and ``destroy()``; a failed start raises with sshd's own log."""

    def __init__(self, workdir: Path, *, missing: Iterable[str] = (), gt: bool = True) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.user = os.environ.get("USER") or "root"
        # Short: the host's tmux socket lives under it and unix socket paths are short.
        self.root = Path(tempfile.mkdtemp(prefix="gth-", dir="/tmp"))
        self.port = free_port()
        self.client_key = self.dir / "client_ed25519"
        self.host_key = self.dir / "host_ed25519"
        self.path_dir = tool_farm(self.dir / "bin", missing=missing, gt=gt)
        self.log = self.dir / "sshd.log"
        self.holder: subprocess.Popen[bytes] | None = None
        self.sshd: subprocess.Popen[bytes] | None = None
        for key in (self.client_key, self.host_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "gastown-test", "-f", str(key)], check=True)
        (self.dir / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        (self.dir / "gitconfig").write_text("[user]\n\tname = Remote Polecat\n\temail = remote@gastown.invalid\n")

    # -- what a town needs to know ------------------------------------------------------

    @property
    def destination(self) -> str:
        return f"{self.user}@127.0.0.1"

    def host_table(self, **extra: object) -> dict[str, object]:
        """The ``[hosts.<name>]`` values that reach this host."""
        return {"ssh": self.destination, "port": self.port, "identity_file": str(self.client_key),
                "root": str(self.root), **extra}

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> SshServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    def start(self) -> None:
        """Start the holder (once) and sshd; returns when sshd answers with its banner."""
        if self.holder is None or self.holder.poll() is not None:
            self._start_holder()
        self._write_config()
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        log = open(self.log, "ab")
        self.sshd = subprocess.Popen(
            ["nsenter", f"--target={self.holder.pid}", "--mount", "--", SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")],  # type: ignore[union-attr]
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
        log.close()
        try:
            retry_until(self._answers, timeout=20, what=f"sshd on port {self.port}")
        except AssertionError:
            raise AssertionError(f"sshd did not come up: {self.log.read_text()[-2000:]}") from None

    def _start_holder(self) -> None:
        ready = self.dir / "holder-ready"
        ready.unlink(missing_ok=True)
        # The host gets its own (empty) ~/.bashrc: the hub's may run slow tools (pyenv init)
        # for every non-interactive ssh command, which is this machine's business, not the host's.
        bashrc = Path(pwd.getpwnam(self.user).pw_dir) / ".bashrc"
        (self.dir / "bashrc").write_text("# the test host's own, empty\n")
        script = (
            'mount -t tmpfs -o mode=0755,size=512m gastown-host "$1" && '
            '{ [ ! -f "$3" ] || mount --bind "$4" "$3"; } && touch "$2" && exec sleep infinity'
        )
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
             str(self.root), str(ready), str(bashrc), str(self.dir / "bashrc")],
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        retry_until(lambda: ready.exists() or self.holder.poll() is not None, timeout=20, what="the host's namespace")  # type: ignore[union-attr]
        if not ready.exists():
            raise AssertionError("could not make the host's private mount namespace (unshare --mount failed)")

    def _write_config(self) -> None:
        (self.dir / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1\nPort {self.port}\nHostKey {self.host_key}\nPidFile none\n"
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}\nStrictModes no\nUsePAM no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\nMaxSessions 100\nMaxStartups 100:30:200\nLogLevel ERROR\n"
            f"SetEnv PATH={self.path_dir} GIT_CONFIG_GLOBAL={self.dir / 'gitconfig'} GIT_CONFIG_NOSYSTEM=1 LANG=C.UTF-8\n"
        )

    def _answers(self) -> bool:
        if self.sshd is not None and self.sshd.poll() is not None:
            raise AssertionError(f"sshd exited: {self.log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                return sock.recv(64).startswith(b"SSH-")
        except OSError:
            return False

    def processes(self) -> list[int]:
        """Every process of this host (its mount namespace) but the holder."""
        if self.holder is None:
            return []
        try:
            ns = os.readlink(f"/proc/{self.holder.pid}/ns/mnt")
        except OSError:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != self.holder.pid:
                try:
                    if os.readlink(entry / "ns" / "mnt") == ns:
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def stop(self) -> None:
        """The host vanishes: sshd, its sessions, its tmux server and agents are killed;
        its disk (the tmpfs) stays for ``start()``."""
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.sshd is not None:
            self.sshd.wait(timeout=10)
            self.sshd = None
        retry_until(lambda: not self.processes(), timeout=10, what="the host's processes to die")

    def destroy(self) -> None:
        self.stop()
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait(timeout=10)
            self.holder = None
        try:
            self.root.rmdir()
        except OSError:
            pass

    # -- looking at the host as the host sees itself (for assertions only) -------------

    def inside(self, *argv: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in the host's namespace (sees its private root), not over SSH."""
        assert self.holder is not None
        return subprocess.run(
            ["nsenter", f"--target={self.holder.pid}", "--mount", "--", *argv],
            capture_output=True, text=True, input=input, timeout=60,
        )


@pytest.fixture
def ssh_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A running SSH host with every tool (tmux, git, gt) on its PATH."""
    if not sshd_available():
        pytest.skip("openssh-server (sshd), unshare or nsenter is not installed")
    with SshServer(tmp_path_factory.mktemp("sshd")) as host:
        yield host

