"""The typer app behind `gt`: the root options and the lazy table of commands.

``COMMANDS`` is the static table of every top-level command: `gt --help` lists it
without importing a single command module, and `gt issue list` imports only
``gastown.cli.issue``. ``tests/test_cli_lazy.py`` keeps the table true to the modules.
Errors become messages in ``gastown.cli._errors``; click's own usage errors here.
"""

from __future__ import annotations

import importlib
import os
from typing import Annotated, Any, NamedTuple

import typer
from typer.core import TyperGroup

from gastown import __version__
from gastown.cli._common import set_root_town
from gastown.cli._errors import guarded
from gastown.cli._options import TownOpt
from gastown.cli._output import SafeStderr, print_error, say
from gastown.errors import ExitCode


class Entry(NamedTuple):
    """One top-level command: its module, and whether the module is a group (``app``)
    or registers plain commands (``register(app)``)."""

    name: str
    module: str
    help: str
    group: bool = False
    hidden: bool = False


COMMANDS: tuple[Entry, ...] = (
    Entry("init", "town", "Create a town: gastown.toml with commented defaults, .gastown/ and the ledger."),
    Entry("doctor", "town", "Check tmux, git, the config, runtimes, each rig's hub and gates; say how to fix each problem."),
    Entry("costs", "costs",
          "Tokens and dollars per rig, day, issue, agent, runtime, convoy or role (read from the CLIs' own usage logs)."),
    Entry("demo", "demo", "Run a complete demo town in a temp dir: six issues, demo agents in tmux, the merge queue, a summary."),
    Entry("rig", "rig", "Add, list and remove rigs (projects).", group=True),
    Entry("issue", "issue", "Create, list, show, edit, close and reopen issues.", group=True),
    Entry("mq", "mq", "The merge queue: list, show, retry and reject merge requests.", group=True),
    Entry("refinery", "refinery", "The refinery: run, inspect and release each rig's merge queue.", group=True),
    Entry("review", "review", "AI code reviews: run one on an MR or a branch, show one, list them.", group=True),
    Entry("sling", "work", "Hook issues onto polecats and start their agents (queued when at capacity)."),
    Entry("done", "work", "Run by an agent in its worktree: submit the work to the merge queue."),
    Entry("prime", "work", "Run by an agent: print its role, issue and instructions again."),
    Entry("up", "town_ops", "Start the Mayor and resume every hooked issue whose agent is not running."),
    Entry("down", "town_ops", "Stop agents and the Mayor. Hooks, worktrees, branches and logs stay; `gt up` resumes."),
    Entry("agents", "agents", "List running agents with their state, issue and last line of output."),
    Entry("peek", "agents", "Print an agent's last lines (from its pane, or its log once the pane is gone)."),
    Entry("attach", "agents", "Attach this terminal to an agent's pane (detach again with the tmux prefix, then d)."),
    Entry("nudge", "agents", "Type a message into an agent, once it is idle (verified)."),
    Entry("stop", "one_agent", "Stop one agent and keep its hook: the issue waits until `gt restart` (or `gt sling`)."),
    Entry("restart", "one_agent", "Start one agent afresh in the same worktree and branch, with a resume prompt."),
    Entry("unsling", "one_agent", "Take an issue off its polecat: stop the agent, archive unmerged work, issue back to open."),
    Entry("diff", "diff", "Show the change a piece of work makes against its target, through your pager."),
    Entry("status", "status", "Rigs, agents, queued slings, merge queues, holds, escalations, issues and the Mayor."),
    Entry("feed", "status", "Watch the town live: agents by rig, the merge queue and the event stream (Ctrl-C exits)."),
    Entry("dashboard", "dashboard", "Print the URL of the town's dashboard (from [server] host and port); --open opens it."),
    Entry("escalate", "escalate",
          'Raise a blocker: gt escalate "MESSAGE" [--severity low|medium|high|critical]; or list / ack them.', group=True),
    Entry("polecat", "polecat", "List and remove polecats (worker slots with their worktrees).", group=True),
    Entry("convoy", "convoy", "Group issues into convoys and watch them land.", group=True),
    Entry("mail", "mail", "Send and read durable mail (addresses: mayor, human, RIG/POLECAT).", group=True),
    Entry("host", "host", "Add, list, remove and check the machines that run polecats over SSH.", group=True),
    Entry("serve", "serve", "Run the town's HTTP server (webhook triggers, the dashboard, /healthz) until Ctrl-C."),
    Entry("github", "github", "GitHub: import labelled issues, follow pull requests, post comments back.", group=True),
    Entry("trigger", "trigger", "Webhook and schedule triggers: their URLs, request history, pause, fire, rotate.", group=True),
    Entry("_start", "internal", "Bring a starting agent to work (dialogs, ready, prompt).", hidden=True),
    Entry("_end", "internal", "End a finished spawn's pane (after `gt done`) once its agent has ended its turn.", hidden=True),
    Entry("_keeper", "internal", "Run the Mayor and restart it when it dies (what the `mayor` tmux window runs).", hidden=True),
    Entry("_mayor", "internal", "The Mayor process itself.", hidden=True),
)
_BY_NAME = {entry.name: entry for entry in COMMANDS}


def load_command(entry: Entry) -> Any:
    """Import ``entry``'s module and build its click command (a group for ``gt issue``...)."""
    from typer.main import get_group

    module = importlib.import_module(f"gastown.cli.{entry.module}")
    if entry.group:
        command = get_group(module.app)
        command.name = entry.name
        return command
    holder = typer.Typer(rich_markup_mode=None)
    module.register(holder)
    return get_group(holder).commands[entry.name]


class LazyGroup(TyperGroup):
    """The root group: knows its commands from ``COMMANDS`` and imports one only when it
    is invoked (or completed, or asked for its own help)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [entry.name for entry in COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in _BY_NAME:
            self.commands[cmd_name] = load_command(_BY_NAME[cmd_name])
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The command list of `gt --help`, from the static table (nothing imported)."""
        from typer._click.utils import make_default_short_help

        shown = [entry for entry in COMMANDS if not entry.hidden]
        limit = formatter.width - 6 - max(len(entry.name) for entry in shown)
        rows = [(entry.name, make_default_short_help(entry.help, limit)) for entry in shown]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    cls=LazyGroup,
    name="gt",
    help="gastown: run a fleet of AI coding agents in tmux, with patrols and a merge queue.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,  # our own --install-completion/--show-completion [SHELL], in gastown.cli.complete
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        say(f"gt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    town_dir: TownOpt = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
    install_completion: Annotated[bool, typer.Option(
        "--install-completion", expose_value=False, is_eager=True,
        callback=lambda ctx, param, value: _completion("install_option", ctx, param, value),
        help="Install Tab completion for the shell you are in (bash, zsh or fish).",
    )] = False,
    show_completion: Annotated[str | None, typer.Option(
        "--show-completion", metavar="SHELL", expose_value=False, is_eager=True,
        callback=lambda ctx, param, value: _completion("show_option", ctx, param, value),
        help="Print the Tab completion script for SHELL (bash, zsh or fish), to install it yourself.",
    )] = None,
) -> None:
    set_root_town(town_dir)


def _completion(action: str, ctx: Any, param: Any, value: object) -> None:
    if value:
        from gastown.cli import complete

        getattr(complete, action)(ctx, param, value)


def run(args: list[str]) -> int:
    from typer.main import get_command

    if os.environ.get("_GT_COMPLETE"):  # the shell asks for candidates (see gastown.cli.complete)
        from gastown.cli.complete import enable

        enable()
    command = get_command(app)

    def invoke() -> int:
        try:
            code = command.main(args=args, prog_name="gt", standalone_mode=False)
            return code if isinstance(code, int) else 0
        except typer.TyperException as exc:  # click's usage errors: they quote what was typed
            show = getattr(exc, "show", None)
            if show is not None:
                show(file=SafeStderr())
            else:
                print_error(f"gt: {exc.message}")
            return exc.exit_code
        except typer.Abort:
            print_error("gt: interrupted")
            return int(ExitCode.INTERRUPTED)

    return guarded(invoke)
