"""The one place git runs: ``git`` as a plain subprocess, argv only, never a shell.

Every call has a timeout (after which git and whatever it started, ssh or a remote
helper, are killed as one process group), never prompts on a terminal
(``GIT_TERMINAL_PROMPT=0``), and failures raise ``GitError`` naming the command and
git's own last line of complaint (``GitTimeout`` when the time ran out). An interrupt
(Ctrl-C) stops git too instead of leaving it running behind the user's back.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gastown.errors import GitError, GitTimeout, ToolMissing

DEFAULT_TIMEOUT = 120.0

# An agent CLI's own git settings (copilot passes safe.bareRepository=explicit to its
# shell commands) must not reach gastown's git calls on the bare hub.
_FOREIGN_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_COUNT", "GIT_CONFIG_PARAMETERS")


@dataclass(frozen=True)
class GitResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class Git:
    """Runs ``git <args>`` in ``cwd``. Cheap; make one per directory you work in."""

    def __init__(self, cwd: Path, *, env: dict[str, str] | None = None) -> None:
        self.cwd = cwd
        self._env = {"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C", **(env or {})}

    def run(
        self, *args: str, check: bool = True, timeout: float = DEFAULT_TIMEOUT, input: str | None = None
    ) -> GitResult:
        """Run git to completion. ``check`` raises ``GitError`` (``GitTimeout``) on failure;
        without it a timeout comes back as a result with ``timed_out`` set and ``ok`` false.
        A missing git raises ``ToolMissing``."""
        env = {**os.environ, **self._env}
        for var in _FOREIGN_VARS:
            env.pop(var, None)
        try:
            proc = subprocess.Popen(
                ["git", *args],
                cwd=self.cwd,
                env=env,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            if not Path(self.cwd).is_dir():
                raise GitError(f"git {' '.join(args[:2])} failed: {self.cwd} does not exist", argv=["git", *args]) from None
            raise ToolMissing("git is not installed or not on PATH", hint="install git 2.25 or newer") from None
        timed_out = False
        try:
            out, err = proc.communicate(input.encode("utf-8") if input is not None else None, timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            out, err = proc.communicate()
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        result = GitResult(
            tuple(args), proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), timed_out
        )
        if check and not result.ok:
            raise git_error(result, timeout=timeout)
        return result

    def out(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """stdout of a successful command, stripped."""
        return self.run(*args, timeout=timeout).stdout.strip()


def git_error(result: GitResult, *, timeout: float | None = None) -> GitError:
    """The ``GitError`` for a failed ``result``: the command and git's last line of complaint."""
    command = f"git {' '.join(result.args[:2])}"
    output = result.stdout + result.stderr
    if result.timed_out:
        limit = f" after {timeout:g}s" if timeout is not None else ""
        return GitTimeout(
            f"{command} timed out{limit}", argv=["git", *result.args], returncode=result.returncode, output=output,
            hint="check the network and the remote, then try again",
        )
    complaint = (result.stderr or result.stdout).strip().splitlines()
    last = complaint[-1] if complaint else f"exit status {result.returncode}"
    return GitError(f"{command} failed: {last}", argv=["git", *result.args], returncode=result.returncode, output=output)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
