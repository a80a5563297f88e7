"""What typer declares for every command: the --town and --json options, and groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

TownOpt = Annotated[
    Path | None,
    typer.Option("--town", help="Town directory (default: GT_TOWN, else the nearest parent with gastown.toml).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (fields in docs/cli.md).")]


def command_group(help: str, **settings: Any) -> typer.Typer:
    """A command group (``gt issue``, ``gt mq``, ...): plain help, no rich, shown when bare."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None, **settings)
