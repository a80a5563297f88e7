"""The one exception tree of gastown, and the exit codes the CLI maps it to.

::

    GastownError                      exit 1  (FAILURE)
    ├── ConfigError                   exit 3  gastown.toml unreadable or invalid
    ├── TownNotFound                  exit 3  no town above the cwd, --town or GT_TOWN wrong
    ├── NotFound                      exit 4  unknown issue, rig, polecat, MR, ...
    ├── InvalidInput                  exit 2  a value on the command line is malformed
    ├── ToolMissing                   exit 5  tmux, git or an agent CLI is not installed
    ├── Conflict                      exit 6  the state forbids it (closed issue, unmerged work, ...)
    ├── NotRunning                    exit 7  the Mayor (or a pane) is not running
    ├── CommandFailed                 exit 1  an outside command (git, tmux, a gate) failed
    │   ├── GitError
    │   │   └── GitTimeout            git ran past its timeout and was killed
    │   ├── TmuxError
    │   └── HostError                 a command on an SSH host failed (or ssh itself did)
    │       ├── HostUnreachable               the host did not answer (down, refused, timed out)
    │       └── HostKeyRejected               its key is not the one pinned (or none is pinned yet)
    ├── LaunchFailed                  exit 1  the agent could not be started, or exited at once
    ├── DeliveryFailed                exit 1  keystrokes could not be verified in a pane
    ├── GitHubError                   exit 1  the GitHub API refused or failed a call (status, what to do)
    │   ├── GitHubTimeout                     no answer in time (or the connection failed), after retries
    │   ├── GitHubAuthError                   401/403: the token is missing, wrong or lacks a permission
    │   └── GitHubRateLimited                 the rate limit would be waited out past the caller's patience
    └── LedgerError                   exit 1  the SQLite ledger failed (every sqlite3 error, mapped)
        ├── LedgerBusy                        another process held the write lock too long
        ├── LedgerReadOnly                    the file, its directory or the disk is read-only
        ├── LedgerFull                        the disk is full
        └── LedgerCorrupt                     the file is damaged (the hint names the last backup)

Only ``gastown.cli`` turns these into messages and exit codes. Every error carries
one sentence saying what is wrong (``message``) and, where there is one, what to do
(``hint``).
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Named process exit codes (LSB-style where a meaning fits)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFIG = 3
    NOT_FOUND = 4
    NOT_INSTALLED = 5
    CONFLICT = 6
    NOT_RUNNING = 7
    INTERRUPTED = 130


class GastownError(Exception):
    """Root of every error gastown raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(GastownError):
    """gastown.toml cannot be read or does not validate.

    ``problems`` holds one line per invalid key (``rigs.app.batch: must be ≥ 1``).
    """

    exit_code = ExitCode.CONFIG

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems or []


class TownNotFound(GastownError):
    exit_code = ExitCode.CONFIG


class NotFound(GastownError):
    exit_code = ExitCode.NOT_FOUND


class InvalidInput(GastownError):
    exit_code = ExitCode.USAGE


class ToolMissing(GastownError):
    exit_code = ExitCode.NOT_INSTALLED


class Conflict(GastownError):
    exit_code = ExitCode.CONFLICT


class NotRunning(GastownError):
    exit_code = ExitCode.NOT_RUNNING


class CommandFailed(GastownError):
    """An outside command exited non-zero or timed out; ``argv`` and ``output`` say which and why."""

    def __init__(
        self,
        message: str,
        *,
        argv: list[str] | None = None,
        returncode: int | None = None,
        output: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.argv = argv or []
        self.returncode = returncode
        self.output = output


class GitError(CommandFailed):
    pass


class GitTimeout(GitError):
    """A git command ran past its timeout and was killed (with everything it started)."""


class TmuxError(CommandFailed):
    pass


class HostError(CommandFailed):
    """A command on a host failed; ``host`` names it (``message`` never carries the command line)."""

    def __init__(self, message: str, *, host: str, hint: str | None = None, **facts: object) -> None:
        super().__init__(message, hint=hint, **facts)  # type: ignore[arg-type]
        self.host = host


class HostUnreachable(HostError):
    """The host did not answer: unknown for now, never "gone" (its agents may still run)."""


class HostKeyRejected(HostError):
    """The host's key differs from the pinned one, or no key is pinned yet (patrols never pin)."""


class LaunchFailed(GastownError):
    """The agent could not be started, or exited at once."""


class DeliveryFailed(GastownError):
    pass


class GitHubError(GastownError):
    """A GitHub API call failed; ``status`` is the HTTP status (None: no answer at all).

    ``message`` names the call (method and path, never the token) and GitHub's own reason."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class GitHubTimeout(GitHubError):
    """GitHub did not answer in time, or the connection failed, on every try."""


class GitHubAuthError(GitHubError):
    """The token is missing, wrong, or lacks a permission the call needs (401, or 403 without a rate limit)."""


class GitHubRateLimited(GitHubError):
    """GitHub's rate limit resets later than the client is willing to wait; ``reset_at`` says when."""

    def __init__(self, message: str, *, reset_at: float, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, status=status, hint=hint)
        self.reset_at = reset_at


class LedgerError(GastownError):
    pass


class LedgerBusy(LedgerError):
    pass


class LedgerReadOnly(LedgerError):
    pass


class LedgerFull(LedgerError):
    pass


class LedgerCorrupt(LedgerError):
    pass
