"""What every command body shares, without typer: the town chosen, the Context, stdin.

The options and groups typer declares are in ``gastown.cli._options``; this module stays
free of typer so the everyday commands can run without it (``gastown.cli.fast``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from gastown.context import Context
from gastown.errors import ConfigError
from gastown.town import find_town


class Invocation:
    """Who runs the command, from where: ``gt --town DIR`` given before the command, the
    caller's environment and working directory. A command runs for the process that
    started it, except when the Mayor answers a listing for a `gt` process
    (``gastown.cli.relay``): then it runs for that caller, in one of the Mayor's threads."""

    __slots__ = ("root_town", "environ", "cwd")

    def __init__(self, root_town: Path | None = None, environ: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.root_town = root_town
        self.environ = os.environ if environ is None else environ
        self.cwd = cwd

    def working_dir(self) -> Path:
        return Path.cwd() if self.cwd is None else self.cwd


_invocation: ContextVar[Invocation] = ContextVar("gastown_invocation", default=Invocation())  # noqa: B039 - never mutated


def set_root_town(town: Path | None) -> None:
    """Called by the root callback when `gt --town DIR <command>` is used."""
    _invocation.set(Invocation(town))


@contextmanager
def invoked_by(invocation: Invocation) -> Iterator[None]:
    """Run the commands inside this block for ``invocation``'s caller (this thread only)."""
    token = _invocation.set(invocation)
    try:
        yield
    finally:
        _invocation.reset(token)


def chosen_town(town: Path | None) -> Path | None:
    """The --town given to the command, else the one given before it (``gt --town DIR ...``)."""
    return town if town is not None else _invocation.get().root_town


def open_context(town: Path | None, *, last_good: bool = False) -> Context:
    """The Context for the town named by --town, GT_TOWN or the cwd, its settings checked.

    The config is validated (pydantic) only when gastown.toml changed since the last
    validation; otherwise the cached settings are used (``gastown.config.cache``). A broken
    file fails the command, loudly and first, unless ``last_good``: the commands that only
    read or stop run on the last config that validated, after one line on stderr saying
    the file has an error and where. Commands that need the full config (runtimes,
    prices) read ``ctx.config``, which validates on first use.
    """
    caller = _invocation.get()
    ctx = Context(find_town(chosen_town(town), caller.environ, caller.working_dir()), environ=caller.environ,
                  last_good=last_good)
    ctx.settings  # noqa: B018 - a broken gastown.toml must fail the command, loudly and first
    disagreement = ctx.town.socket_disagreement(caller.environ)
    if ctx.config_error is not None or disagreement is not None:
        from gastown.cli._output import print_error

        if ctx.config_error is not None:
            print_error(broken_config_line(ctx.config_error))
        if disagreement is not None:
            print_error(f"warning: {disagreement}")
    return ctx


def broken_config_line(error: ConfigError) -> str:
    """The one line a command prints when it runs on the last good config."""
    return f"warning: {error.message}; running on the last good gastown.toml until you fix it"


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
