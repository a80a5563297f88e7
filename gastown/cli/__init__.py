"""The `gt` command line: wiring only; one module per command group.

``run()`` is the one place errors become messages and exit codes: a ``GastownError``
prints its sentence (and hint) to stderr and exits with its code; anything unexpected
prints one line too, and a traceback only when ``GT_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from gastown import __version__
from gastown.cli import (  # one module per command group
    agents,
    convoy,
    costs,
    demo,
    escalate,
    host,
    internal,
    issue,
    mail,
    mq,
    polecat,
    refinery,
    rig,
    status,
    town,
    town_ops,
    work,
)
from gastown.cli._common import set_root_town
from gastown.errors import ConfigError, ExitCode, GastownError

app = typer.Typer(
    name="gt",
    help="gastown: run a fleet of AI coding agents in tmux, with patrols and a merge queue.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"gt {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    town_dir: Annotated[
        Path | None,
        typer.Option("--town", help="Town directory (default: GT_TOWN, else the nearest parent with gastown.toml).", show_default=False),
    ] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    set_root_town(town_dir)


town.register(app)
costs.register(app)
demo.register(app)
app.add_typer(rig.app, name="rig")
app.add_typer(issue.app, name="issue")
app.add_typer(mq.app, name="mq")
app.add_typer(refinery.app, name="refinery")
work.register(app)
town_ops.register(app)
agents.register(app)
status.register(app)
app.add_typer(escalate.app, name="escalate")
app.add_typer(polecat.app, name="polecat")
app.add_typer(convoy.app, name="convoy")
app.add_typer(mail.app, name="mail")
app.add_typer(host.app, name="host")
internal.register(app)
internal.register_daemons(app)


def run(args: list[str]) -> int:
    from typer.main import get_command

    command = get_command(app)
    try:
        code = command.main(args=args, prog_name="gt", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except GastownError as exc:
        report(exc)
        return int(exc.exit_code)
    except typer.TyperException as exc:
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            sys.stderr.write(f"gt: {exc.message}\n")
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("gt: interrupted\n")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.FAILURE)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against a traceback
        if os.environ.get("GT_DEBUG") == "1":
            traceback.print_exc()
        sys.stderr.write(
            f"gt: internal error: {type(exc).__name__}: {exc}\n"
            "    this is a bug in gastown; rerun with GT_DEBUG=1 for the traceback and report it\n"
        )
        return int(ExitCode.FAILURE)


def report(exc: GastownError) -> None:
    if os.environ.get("GT_DEBUG") == "1":
        traceback.print_exc()
    lines = [f"gt: {exc.message}"]
    if isinstance(exc, ConfigError) and len(exc.problems) > 1:
        lines += [f"    {problem}" for problem in exc.problems]
    if exc.hint:
        lines.append(f"    {exc.hint}")
    sys.stderr.write("\n".join(lines) + "\n")
