"""Every byte the CLI prints goes through here: the output chokepoint.

Outside text (titles, bodies, mail, agent output, error messages that quote user input)
is shown through ``gastown.safetext``: control, bidirectional and invisible characters
appear as visible escapes and are never interpreted by the terminal. Commands print with
``say`` (text, newlines kept), ``print_table`` (aligned plain columns, one safe line per
cell), ``print_lines`` (a page a pure renderer built, e.g. `gt status`: gastown's own
colour codes kept, any other control escaped), ``print_json`` (values verbatim,
dangerous characters as JSON escapes), ``print_error`` (stderr) or ``console()`` (rich,
for `gt feed`'s live frame: its text is sanitized segment by segment before rich adds
its own codes). ``print_verbatim`` exists for `gt peek` only, which shows a pane exactly
as it is. Nothing else in ``gastown/cli`` writes to stdout or stderr
(``tests/test_safe_text.py`` enforces it).

Where the bytes go is this process's stdout and stderr, except inside ``captured()``: the
Mayor answering a listing for a `gt` process (``gastown.cli.relay``) collects them there,
and judges colour and width by that caller's terminal.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, TYPE_CHECKING, Any

from gastown.safetext import json_text, visible
from gastown.views.table import format_table

if TYPE_CHECKING:
    from rich.console import Console

_SGR = re.compile(r"(\x1b\[[0-9;]*m)")


class Terminal:
    """A caller's terminal, as seen from another process: its output collected in strings,
    whether its stdout is a terminal, how wide, and its environment (``NO_COLOR``, ``COLUMNS``)."""

    def __init__(self, *, isatty: bool, columns: int, environ: Mapping[str, str]) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()
        self.isatty, self.columns, self.environ = isatty, columns, environ


_terminal: ContextVar[Terminal | None] = ContextVar("gastown_terminal", default=None)


@contextmanager
def captured(terminal: Terminal) -> Iterator[Terminal]:
    """Inside this block (this thread only), everything printed goes to ``terminal``."""
    token = _terminal.set(terminal)
    try:
        yield terminal
    finally:
        _terminal.reset(token)


def _stdout() -> IO[str]:
    terminal = _terminal.get()
    return sys.stdout if terminal is None else terminal.out


def _stderr() -> IO[str]:
    terminal = _terminal.get()
    return sys.stderr if terminal is None else terminal.err


def say(text: str) -> None:
    """Print ``text`` and a newline: newlines and tabs kept, every other control shown as an escape."""
    out = _stdout()
    out.write(visible(text, multiline=True) + "\n")
    out.flush()


def print_lines(lines: list[str]) -> None:
    """Lines a pure renderer built (``views.text``, ``views.table``): colour codes (SGR)
    are kept, every other control is shown as an escape, as in ``say``."""
    out = _stdout()
    out.write("".join(_keep_colours(line) + "\n" for line in lines))
    out.flush()


def print_verbatim(text: str) -> None:
    """Print ``text`` exactly (only `gt peek`: the pane as it is, which is the point)."""
    out = _stdout()
    out.write(text + "\n")
    out.flush()


def print_json(document: Any) -> None:
    """One JSON document; string values are verbatim once decoded."""
    out = _stdout()
    out.write(json_text(document) + "\n")
    out.flush()


def print_error(text: str) -> None:
    """A message for stderr (errors, warnings), sanitized like ``say``."""
    err = _stderr()
    err.write(visible(text, multiline=True) + "\n")
    err.flush()


class SafeStderr(io.TextIOBase):
    """A stderr for code that writes by itself (click's usage errors quote what was typed):
    everything written is sanitized like ``print_error``."""

    def write(self, text: str) -> int:
        _stderr().write(visible(text, multiline=True))
        return len(text)

    def flush(self) -> None:
        _stderr().flush()


def print_table(columns: list[str], rows: list[list[str]], *, empty: str = "nothing to show") -> None:
    """Aligned plain columns under a header; every cell one safe line.

    On a terminal the last column (titles, details) is cut with ``…`` to fit its width
    and the header is bold; piped into ``grep`` or a file nothing is cut or coloured.
    No rich: a listing costs no import.
    """
    if not rows:
        say(empty)
        return
    print_lines(format_table(columns, rows, width=terminal_width(), color=use_color()))


def page(text: str) -> None:
    """Show long text through the user's pager (``GT_PAGER``, else ``PAGER``, else ``less
    -FX``) when standard output is a terminal; otherwise print it. Text from outside (a
    diff of an agent's work) is made visible first: controls shown, never obeyed."""
    import shlex
    import shutil
    import subprocess

    shown = visible(text, multiline=True)
    if text.endswith("\n") and not shown.endswith("\n"):
        shown += "\n"
    pager = os.environ.get("GT_PAGER") or os.environ.get("PAGER") or "less -FX"
    argv = shlex.split(pager) if sys.stdout.isatty() and pager.strip() not in ("", "cat") else []
    if argv and shutil.which(argv[0]):
        try:
            subprocess.run(argv, input=shown.encode("utf-8"), check=False)
            return
        except OSError:
            pass
    sys.stdout.write(shown)
    sys.stdout.flush()


def use_color() -> bool:
    """Colour only on a terminal, and never with ``NO_COLOR`` set (no-color.org)."""
    terminal = _terminal.get()
    if terminal is not None:
        return terminal.isatty and not terminal.environ.get("NO_COLOR")
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def terminal_width() -> int | None:
    """The terminal's width to fit tables to; None (cut nothing) when stdout is not a
    terminal or the terminal does not say (a width of 0: some ptys, `script`)."""
    terminal = _terminal.get()
    if terminal is not None:
        isatty, environ = terminal.isatty, terminal.environ
        columns = terminal.columns
    else:
        isatty, environ = sys.stdout.isatty(), os.environ
        columns = terminal_columns() if isatty else 0
    if not isatty:
        return None
    if columns <= 0 and environ.get("COLUMNS", "").isdigit():
        columns = int(environ["COLUMNS"])
    return columns if columns > 0 else None


def terminal_columns() -> int:
    """The width stdout's terminal reports; 0 when it does not say."""
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except OSError:
        return 0


def console(file: IO[str] | None = None) -> Console:
    """The rich console for `gt feed` and `gt demo`'s live views (rich is imported only here)."""
    from gastown.cli._rich import SafeConsole

    # Piped (to less, grep, a file): do not cut lines at 80 columns.
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 200)
    return SafeConsole(highlight=False, soft_wrap=False, width=width, file=file)


def _keep_colours(line: str) -> str:
    parts = _SGR.split(line)  # odd items are the colour codes themselves
    return "".join(part if i % 2 else visible(part, multiline=True) for i, part in enumerate(parts))
