"""The one place git runs, through GitPython's command layer.

Every call has a timeout, never prompts on a terminal (``GIT_TERMINAL_PROMPT=0``), and
failures raise ``GitError`` naming the command and git's own last line of complaint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gastown.errors import GitError, ToolMissing

DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class GitResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Git:
    """Runs ``git <args>`` in ``cwd``. Cheap; make one per directory you work in."""

    def __init__(self, cwd: Path, *, env: dict[str, str] | None = None) -> None:
        self.cwd = cwd
        self._env = {"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C", **(env or {})}

    def run(
        self, *args: str, check: bool = True, timeout: float = DEFAULT_TIMEOUT, input: str | None = None
    ) -> GitResult:
        import git  # GitPython; imported here so CLI start-up never pays for it
        from git.exc import GitCommandNotFound

        runner = git.Git(str(self.cwd))
        env = {**os.environ, **self._env}
        # An agent CLI's own git settings (copilot passes safe.bareRepository=explicit to
        # its shell commands) must not reach gastown's git calls on the bare hub.
        for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_COUNT", "GIT_CONFIG_PARAMETERS"):
            env.pop(var, None)
        try:
            status, out, err = runner.execute(
                ["git", *args],
                with_extended_output=True,
                with_exceptions=False,
                kill_after_timeout=timeout,
                env=env,
                istream=_stdin(input),
                strip_newline_in_stdout=False,
            )
        except GitCommandNotFound:
            raise ToolMissing("git is not installed or not on PATH", hint="install git 2.25 or newer") from None
        result = GitResult(tuple(args), int(status or 0), _text(out), _text(err))
        if check and not result.ok:
            raise git_error(result)
        return result

    def out(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """stdout of a successful command, stripped."""
        return self.run(*args, timeout=timeout).stdout.strip()


def git_error(result: GitResult) -> GitError:
    complaint = (result.stderr or result.stdout).strip().splitlines()
    last = complaint[-1] if complaint else f"exit status {result.returncode}"
    return GitError(
        f"git {' '.join(result.args[:2])} failed: {last}",
        argv=["git", *result.args],
        returncode=result.returncode,
        output=(result.stdout + result.stderr),
    )


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value or "")


def _stdin(text: str | None) -> Any:
    if text is None:
        return None
    import tempfile

    handle = tempfile.TemporaryFile()
    handle.write(text.encode("utf-8"))
    handle.seek(0)
    return handle
