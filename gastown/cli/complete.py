"""Shell completion: `gt --install-completion`, `gt --show-completion SHELL`, and
the candidates for rig names, issue ids, ``RIG/POLECAT`` names and merge request ids.

Candidates come from gastown.toml's ``[rigs]`` keys (tomllib, no validation) and the
ledger (read-only sqlite3, ``gastown.ledger.names``); nothing heavy is imported and
nothing is written. Outside a town, or with a broken or locked ledger, a completion
offers nothing and never prints an error: a shell's Tab key is no place for one.
Descriptions (shown by zsh and fish) are issue titles made one safe line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from gastown.errors import GastownError, InvalidInput
from gastown.safetext import one_line
from gastown.town import Town, find_town

SHELLS = ("bash", "zsh", "fish")
PROG = "gt"
COMPLETE_VAR = "_GT_COMPLETE"
OPEN_STATUSES = ("open", "blocked")
Candidates = list[tuple[str, str]]


# -- the candidates ----------------------------------------------------------------------


def _town(ctx: typer.Context) -> Town | None:
    """The town the command line names (--town, before or after the command), else
    GT_TOWN, else the cwd's; None when there is none."""
    explicit = None
    for level in _lineage(ctx):
        given = level.params.get("town") or level.params.get("town_dir")
        if given:
            explicit = Path(given)
            break
    try:
        return find_town(explicit, os.environ, Path.cwd())
    except GastownError:
        return None


def _lineage(ctx: Any) -> list[Any]:
    levels = []
    while ctx is not None:
        levels.append(ctx)
        ctx = ctx.parent
    return levels


def _guarded(find: Callable[[Town, str], Candidates]) -> Callable[[typer.Context, str], Candidates]:
    """``find`` run against the town, with every failure turned into no candidates."""

    def complete(ctx: typer.Context, incomplete: str) -> Candidates:
        town = _town(ctx)
        if town is None:
            return []
        try:
            return [(value, one_line(help, 60)) for value, help in find(town, incomplete)]
        except (GastownError, OSError, ValueError):
            return []

    return complete


def rig_names(town: Town) -> list[str]:
    """The ``[rigs]`` of gastown.toml as written (a file that does not parse has none)."""
    import tomllib

    from gastown.names import NAME_RE

    rigs = tomllib.loads(town.config_path.read_text(encoding="utf-8")).get("rigs", {})
    return [name for name in rigs if NAME_RE.match(name)]


def _rigs(town: Town, incomplete: str) -> Candidates:
    return [(name, "rig") for name in rig_names(town) if name.startswith(incomplete)]


def _issues_in(*statuses: str) -> Callable[[Town, str], Candidates]:
    def find(town: Town, incomplete: str) -> Candidates:
        from gastown.ledger import names

        with names.read_only(town.ledger_path) as conn:
            return [(id_, f"{status}: {title}") for id_, status, title in names.issues(conn, incomplete, statuses)]

    return find


def _polecats(town: Town, incomplete: str) -> Candidates:
    from gastown.ledger import names

    with names.read_only(town.ledger_path) as conn:
        found = names.polecats(conn)
    return [(f"{rig}/{name}", f"on {issue}" if issue else "idle") for rig, name, issue in found
            if f"{rig}/{name}".startswith(incomplete)]


def _merge_requests(town: Town, incomplete: str) -> Candidates:
    from gastown.ledger import names

    with names.read_only(town.ledger_path) as conn:
        return [(id_, f"{state}: {issue}") for id_, state, issue in names.merge_requests(conn, incomplete)]


def _sling_targets(town: Town, incomplete: str) -> Candidates:
    """`gt sling ISSUE... [RIG|RIG/POLECAT]`: open issues, then where to put them."""
    if "/" in incomplete:
        return _polecats(town, incomplete)
    return _issues_in(*OPEN_STATUSES)(town, incomplete) + _rigs(town, incomplete)


def _mail_addresses(town: Town, incomplete: str) -> Candidates:
    fixed = [("mayor", "the Mayor"), ("human", "you")]
    return [c for c in fixed if c[0].startswith(incomplete)] + _polecats(town, incomplete)


rigs = _guarded(_rigs)
any_issue = _guarded(_issues_in())
open_issues = _guarded(_issues_in(*OPEN_STATUSES))
unclosed_issues = _guarded(_issues_in("open", "hooked", "in_review", "blocked"))
reopenable_issues = _guarded(_issues_in("closed", "blocked"))
polecats = _guarded(_polecats)
merge_requests = _guarded(_merge_requests)
sling_targets = _guarded(_sling_targets)
mail_addresses = _guarded(_mail_addresses)


# -- installing it -------------------------------------------------------------------------


def enable() -> None:
    """Register typer's completion classes (bash, zsh, fish, powershell) before a
    completion request is answered; ``run()`` calls this when ``_GT_COMPLETE`` is set.

    typer would pass each description through rich's markup renderer (an import of rich
    on every Tab, and a title's ``[bold]`` read as markup); ours are already one safe
    line of plain text, so they are used as they are.
    """
    from typer import _completion_classes

    _completion_classes._sanitize_help_text = lambda text: text
    _completion_classes.completion_init()


def script(shell: str) -> str:
    """The completion script for ``shell``, which asks `gt` for candidates on every Tab."""
    from typer._completion_shared import get_completion_script

    enable()
    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=_check(shell))


def install(shell: str) -> Path:
    """Install the script where ``shell`` reads it at start (bash: ~/.bash_completions/gt.sh
    sourced from ~/.bashrc; zsh: ~/.zfunc/_gt; fish: ~/.config/fish/completions/gt.fish)."""
    from typer._completion_shared import install as typer_install

    enable()
    _, path = typer_install(shell=_check(shell), prog_name=PROG, complete_var=COMPLETE_VAR)
    return path


def detect_shell() -> str:
    """The shell this command runs in, from the process tree (``$SHELL`` as a fallback)."""
    from typer._completion_shared import _get_shell_name

    name = _get_shell_name() or Path(os.environ.get("SHELL", "")).name
    if name not in SHELLS:
        raise InvalidInput(
            f"cannot install completion for this shell ({name or 'not recognised'}): gt completes bash, zsh and fish",
            hint="print a script with `gt --show-completion bash|zsh|fish` and load it from your shell's start-up file",
        )
    return name


def _check(shell: str) -> str:
    if shell not in SHELLS:
        raise InvalidInput(f"gt completes bash, zsh and fish, not {shell!r}", hint="gt --show-completion bash|zsh|fish")
    return shell


def show_option(ctx: typer.Context, param: Any, value: str) -> None:
    """``--show-completion SHELL``: print the script and exit."""
    if ctx.resilient_parsing:
        return
    from gastown.cli._output import print_verbatim

    print_verbatim(script(value))
    raise typer.Exit()


def install_option(ctx: typer.Context, param: Any, value: bool) -> None:
    """``--install-completion``: install the script for the shell this runs in; exit."""
    if ctx.resilient_parsing:
        return
    from gastown.cli._output import say

    shell = detect_shell()
    path = install(shell)
    say(f"{shell} completion for gt installed in {path}; it works in shells started from now on")
    raise typer.Exit()


def fixed(*values: str) -> Callable[[str], list[str]]:
    """Candidates from a fixed list (``--by`` of `gt costs`)."""

    def complete(incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return complete
