"""`gt` without typer, for the everyday commands.

Importing typer costs a `gt` process about 100 ms, more than the rest of a listing. The
commands people and agents run most (see ``FAST``) are parsed here from a small table and
run straight from ``gastown.cli.bodies``. The parser understands only the plain forms
(``--rig app``, ``--rig=app``, ``-r app``, flags, ``--town`` before the command);
anything else — ``--help``, an unknown or repeated option, a bad value, a missing
argument — makes ``parse`` return None, and the command goes to typer
(``gastown.cli.root``), which answers it exactly as it always did, errors included.
``tests/test_cli_fast.py`` keeps this table equal to typer's declarations and both ways
to the same output.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple


class Opt(NamedTuple):
    """One option: its spellings, the body's parameter it fills, and how many values."""

    flags: tuple[str, ...]
    dest: str
    takes: str = "one"  # "flag", "one" or "many" (repeatable)
    convert: Callable[[str], Any] | None = None  # raises ValueError on a bad value


class Fast(NamedTuple):
    """One command the fast path runs: its words, its body, its options and arguments."""

    words: tuple[str, ...]
    body: str  # a function in gastown.cli.bodies
    options: tuple[Opt, ...]
    argument: str | None = None  # the body's parameter for the positional arguments
    many: bool = False  # the argument takes one or more words (else exactly one)
    defaults: tuple[tuple[str, Any], ...] = ()


def _issue_status(value: str) -> Any:
    from gastown.states import IssueStatus

    return IssueStatus(value)


def _mr_state(value: str) -> Any:
    from gastown.states import MRState

    return MRState(value)


TOWN = Opt(("--town",), "town", convert=Path)
JSON = Opt(("--json",), "json_out", "flag")
RIG = Opt(("--rig", "-r"), "rig")

FAST: tuple[Fast, ...] = (
    Fast(("issue", "list"), "issue_list", (RIG, Opt(("--status", "-s"), "status", convert=_issue_status), TOWN, JSON)),
    Fast(("mq", "list"), "mq_list", (RIG, Opt(("--state", "-s"), "states", "many", _mr_state),
                                     Opt(("--all", "-a"), "all_", "flag"), TOWN, JSON)),
    Fast(("agents",), "agents", (RIG, TOWN, JSON)),
    Fast(("status",), "status", (TOWN, JSON)),
    Fast(("sling",), "sling", (Opt(("--agent", "-a"), "agent"), Opt(("--convoy",), "convoy"),
                               Opt(("--no-convoy",), "no_convoy", "flag"), TOWN, JSON), argument="issues", many=True),
    Fast(("done",), "done", (Opt(("--blocked",), "blocked"), TOWN, JSON)),
    Fast(("prime",), "prime", (TOWN,)),
    Fast(("_start",), "start", (TOWN,), argument="spawn"),
    Fast(("_end",), "end", (Opt(("--after",), "after", convert=float), TOWN), argument="spawn", defaults=(("after", 0.0),)),
)


class Parsed(NamedTuple):
    command: Fast
    root_town: Path | None
    values: dict[str, Any]


def parse(args: list[str]) -> Parsed | None:
    """``args`` as one of the ``FAST`` commands and its values, or None when typer must
    answer (not a fast command, or anything this parser does not fully understand)."""
    rest = list(args)
    root_town = None
    while rest and rest[0].startswith("-"):  # `gt --town DIR COMMAND ...`
        value, used = _value(rest, 0, "--town")
        if value is None:
            return None
        root_town, rest = Path(value), rest[used:]
    command = next((fast for fast in FAST if tuple(rest[: len(fast.words)]) == fast.words), None)
    if command is None:
        return None
    values = _options(command, rest[len(command.words):])
    if values is None:
        return None
    return Parsed(command, root_town, values)


def _options(command: Fast, words: list[str]) -> dict[str, Any] | None:
    by_flag = {flag: opt for opt in command.options for flag in opt.flags}
    values: dict[str, Any] = {opt.dest: ([] if opt.takes == "many" else None) for opt in command.options}
    values.update((opt.dest, False) for opt in command.options if opt.takes == "flag")
    values.update(command.defaults)
    given: set[str] = set()
    positional: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-") or word == "-":
            positional.append(word)
            i += 1
            continue
        opt = by_flag.get(word.partition("=")[0] if word.startswith("--") else word)
        if opt is None or (opt.dest in given and opt.takes != "many"):
            return None
        given.add(opt.dest)
        if opt.takes == "flag":
            if "=" in word:
                return None
            values[opt.dest] = True
            i += 1
            continue
        raw, used = _value(words, i, word.partition("=")[0])
        if raw is None:
            return None
        try:
            value = opt.convert(raw) if opt.convert else raw
        except ValueError:
            return None
        if opt.takes == "many":
            values[opt.dest].append(value)
        else:
            values[opt.dest] = value
        i += used
    for opt in command.options:  # a repeatable option never given is None, as typer gives it
        if opt.takes == "many" and not values[opt.dest]:
            values[opt.dest] = None
    if command.argument is None:
        return values if not positional else None
    if not positional or (len(positional) > 1 and not command.many):
        return None
    values[command.argument] = positional if command.many else positional[0]
    return values


def _value(words: list[str], i: int, flag: str) -> tuple[str | None, int]:
    """The value of the option at ``words[i]`` (``--flag=VALUE`` or ``--flag VALUE``) and
    how many words it took; None when it is not ``flag`` or its value looks like an option."""
    word = words[i]
    if word.startswith(flag + "=") and flag.startswith("--"):
        return word[len(flag) + 1:], 1
    if word != flag or i + 1 >= len(words):
        return None, 0
    value = words[i + 1]
    if value.startswith("-") and value != "-":
        return None, 0
    return value, 2


def body_arguments(parsed: Parsed) -> dict[str, Any] | None:
    """The keyword arguments of ``parsed``'s body; None when typer must answer after all
    (`gt sling`'s words are ISSUE... [TARGET]: a target before any issue is typer's error)."""
    if parsed.command.body != "sling":
        return parsed.values
    from gastown.cli.bodies import split_sling_args

    values = dict(parsed.values)
    split = split_sling_args(values.pop("issues"))
    if split is None:
        return None
    values["issues"], values["target"] = split
    return values


def run_fast(args: list[str]) -> int | None:
    """Run ``args`` here when it is a fast command; None when typer must answer it."""
    if os.environ.get("_GT_COMPLETE"):  # the shell asks for candidates: typer's completion
        return None
    parsed = parse(args)
    arguments = body_arguments(parsed) if parsed is not None else None
    if parsed is None or arguments is None:
        return None
    from gastown.cli import bodies
    from gastown.cli._common import set_root_town
    from gastown.cli._errors import guarded

    def invoke() -> int:
        set_root_town(parsed.root_town)
        getattr(bodies, parsed.command.body)(**arguments)
        return 0

    return guarded(invoke)
