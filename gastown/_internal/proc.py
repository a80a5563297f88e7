"""The one place gastown starts a short-lived outside command (tmux, gates, tools).

Argv lists only (never a shell with user text), a timeout on every call, a result
object, and failures raised with the command named. Git goes through ``gastown.git``,
which runs it the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gastown._internal.log import logger
from gastown.errors import CommandFailed, ToolMissing

log = logger(__name__)


@dataclass(frozen=True)
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


def run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: str | bytes | None = None,
    timeout: float = 30.0,
    check: bool = False,
    new_session: bool = False,
    what: str | None = None,
) -> Result:
    """Run ``argv`` to completion (or ``timeout``, after which its process group is killed).

    ``check=True`` raises ``CommandFailed`` on a non-zero exit. A missing binary raises
    ``ToolMissing``. Output is decoded as UTF-8 with replacement.
    """
    args = [str(a) for a in argv]
    started = time.monotonic()
    data = input.encode("utf-8") if isinstance(input, str) else input
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=new_session,
        )
    except FileNotFoundError:
        raise ToolMissing(f"{args[0]} is not installed or not on PATH", hint=f"install {args[0]}") from None
    timed_out = False
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill(proc, new_session)
        out, err = proc.communicate()
    result = Result(
        argv=args,
        returncode=proc.returncode,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
        duration=time.monotonic() - started,
        timed_out=timed_out,
    )
    log.debug("ran %s -> %s in %.3fs", args[:3], result.returncode, result.duration)
    if check and not result.ok:
        raise_failed(result, what)
    return result


def raise_failed(result: Result, what: str | None = None) -> None:
    label = what or " ".join(result.argv[:3])
    if result.timed_out:
        raise CommandFailed(f"{label} timed out", argv=result.argv, output=result.output)
    last = result.output.splitlines()[-1] if result.output else f"exit status {result.returncode}"
    raise CommandFailed(
        f"{label} failed: {last}", argv=result.argv, returncode=result.returncode, output=result.output
    )


def _kill(proc: subprocess.Popen[bytes], group: bool) -> None:
    try:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:
        pass


def spawn_detached(argv: Sequence[str], *, log_path: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start ``argv`` in its own session, detached from this process; returns its pid.

    Used for short helpers that must outlive the command that started them (the agent
    starter, the pane ender). Output goes to ``log_path``.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [str(a) for a in argv],
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid
