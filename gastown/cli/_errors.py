"""Where a command's errors become messages and exit codes, for both ways a command runs
(through typer in ``gastown.cli.root``, or directly in ``gastown.cli.fast``).

A ``GastownError`` prints its sentence (and hint) to stderr and exits with its code;
anything unexpected prints one line too, and a traceback only when ``GT_DEBUG=1``. Every
message goes through the output chokepoint, so quoted input is shown safely.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from gastown.cli._output import print_error
from gastown.errors import ConfigError, ExitCode, GastownError


def guarded(command: Callable[[], int]) -> int:
    """Run ``command`` and return its exit code; no exception gets past this as a traceback."""
    try:
        return command()
    except GastownError as exc:
        report(exc)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print_error("gt: interrupted")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.FAILURE)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against a traceback
        _debug_traceback()
        print_error(
            f"gt: internal error: {type(exc).__name__}: {exc}\n"
            "    this is a bug in gastown; rerun with GT_DEBUG=1 for the traceback and report it"
        )
        return int(ExitCode.FAILURE)


def report(exc: GastownError) -> None:
    _debug_traceback()
    lines = [f"gt: {exc.message}"]
    if isinstance(exc, ConfigError) and len(exc.problems) > 1:
        lines += [f"    {problem}" for problem in exc.problems]
    if exc.hint:
        lines.append(f"    {exc.hint}")
    print_error("\n".join(lines))


def _debug_traceback() -> None:
    """With ``GT_DEBUG=1``, the traceback of the exception being handled (raw: it is for a developer)."""
    if os.environ.get("GT_DEBUG") == "1":
        import traceback

        traceback.print_exc()
