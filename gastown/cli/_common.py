"""What every command shares: the --town and --json options, the Context, printing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gastown.context import Context
from gastown.town import find_town

if TYPE_CHECKING:
    from rich.console import Console

TownOpt = Annotated[
    Path | None,
    typer.Option("--town", help="Town directory (default: GT_TOWN, else the nearest parent with gastown.toml).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (fields in docs/cli.md).")]

# Set by the root callback when `gt --town DIR <command>` is used.
_root_town: dict[str, Path | None] = {"town": None}


def set_root_town(town: Path | None) -> None:
    _root_town["town"] = town


def open_context(town: Path | None) -> Context:
    """The Context for the town named by --town, GT_TOWN or the cwd, its config validated."""
    chosen = town if town is not None else _root_town["town"]
    ctx = Context(find_town(chosen, os.environ, Path.cwd()))
    ctx.config  # noqa: B018 - a broken gastown.toml must fail every command, loudly and first
    return ctx


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def console() -> Console:
    """The one stdout console (rich is imported only by commands that print tables)."""
    from rich.console import Console

    # Piped (to less, grep, a file): do not cut lines at 80 columns.
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 200)
    return Console(highlight=False, soft_wrap=False, width=width)


def say(text: str) -> None:
    """Print plain text exactly as given (no markup, no highlighting)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def read_body(body: str | None) -> str:
    """``--body -`` reads standard input as UTF-8; otherwise the text itself (or empty)."""
    if body != "-":
        return body or ""
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        from gastown.errors import InvalidInput

        raise InvalidInput(f"the body on standard input is not valid UTF-8 (byte {exc.start})") from None


def print_table(columns: list[str], rows: list[list[str]], *, empty: str = "nothing to show") -> None:
    """A plain rich table; every cell is literal text (titles may contain '[' or markup)."""
    if not rows:
        say(empty)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for index, column in enumerate(columns):
        # Every column but the last keeps room for its header and short values; the last
        # (titles, details) gives way first when the terminal is narrow.
        widest = max([len(column), *(len(row[index]) for row in rows)])
        last = index == len(columns) - 1
        table.add_column(column, overflow="ellipsis", no_wrap=True, min_width=None if last else min(widest, 24))
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console().print(table)


def one_line(text: str, limit: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def visible(text: str) -> str:
    """``text`` with terminal controls shown, never obeyed: every C0/C1 control character
    and bidi override but newline and tab becomes a visible ``\\xNN`` (``\\u202e``)."""
    import re

    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]",
                  lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


def page(text: str) -> None:
    """Show long text through the user's pager (``GT_PAGER``, else ``PAGER``, else ``less
    -FX``) when standard output is a terminal; otherwise print it. Text from outside (a
    diff of an agent's work) is made ``visible`` first."""
    import shlex
    import shutil
    import subprocess

    shown = visible(text)
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
