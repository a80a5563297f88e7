"""A long-lived `sh` on a host, for the looks a patrol takes every few seconds.

A one-shot ssh call costs a new ssh client process here and a login shell there, which is
most of a patrol's look at a host. ``HostShell`` keeps one `sh` running on the host over
the host's multiplexed master and sends it each script on stdin: ``set --`` with the
arguments (quoted once with ``shlex.join``: they are gastown's own paths and formats,
never outside text), the script in a subshell, then an end line carrying a fresh random
marker and the script's exit status. The answer is read up to that line, within a
timeout. Anything unexpected (the host stopped answering, the shell died, a timeout)
closes the shell and raises ``HostUnreachable``; the next call starts a new one.
"""

from __future__ import annotations

import os
import secrets
import selectors
import shlex
import subprocess
import time
from collections.abc import Sequence

from gastown.errors import HostUnreachable

END = b"\x1f"  # the end line: END, the call's marker, a space, the exit status


class HostShell:
    """One `sh` on a host; ``argv`` is the ssh command that starts it (``Ssh.argv(["sh"])``)."""

    def __init__(self, host: str, argv: Sequence[str], env: dict[str, str]) -> None:
        self.host = host
        self.argv = list(argv)
        self.env = env
        self._proc: subprocess.Popen[bytes] | None = None

    def run(self, script: str, args: Sequence[str], *, timeout: float) -> tuple[int, str]:
        """Run ``script`` with ``args`` as ``$1..``; its exit status and output (stdout and
        stderr together). Raises ``HostUnreachable`` when the host does not answer in time."""
        marker = secrets.token_hex(8).encode()
        request = (
            f"set -- {shlex.join(args)}\n(\n{script}\n) </dev/null 2>&1\n"
            f"printf '\\n\\037%s %s\\n' {marker.decode()} \"$?\"\n"
        ).encode()
        proc = self._start()
        try:
            assert proc.stdin is not None
            proc.stdin.write(request)
            proc.stdin.flush()
            return self._answer(proc, marker, timeout)
        except (OSError, HostUnreachable) as exc:
            self.close()
            if isinstance(exc, HostUnreachable):
                raise
            raise HostUnreachable(f"host {self.host} did not answer: its shell for looks is gone ({exc.strerror})",
                                  host=self.host, hint="check that it is up; `gt host check` says more") from None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env,
                start_new_session=True,
            )
        return self._proc

    def _answer(self, proc: subprocess.Popen[bytes], marker: bytes, timeout: float) -> tuple[int, str]:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        tail = b"\n" + END + marker + b" "
        data = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while tail not in data or not data.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    raise HostUnreachable(f"host {self.host} did not answer within {timeout:.0f}s", host=self.host,
                                          hint="check that it is up; `gt host check` says more")
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise HostUnreachable(f"host {self.host} did not answer: the connection closed", host=self.host,
                                          hint="check that it is up; `gt host check` says more")
                data += chunk
        body, _, status = data.rpartition(tail)
        code = status.strip()
        return (int(code) if code.isdigit() else 255), body.decode("utf-8", "replace")

    def close(self) -> None:
        """End the shell (its stdin closes; the host's `sh` exits with it)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
