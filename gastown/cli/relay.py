"""Commands answered by the town's running Mayor: the listings (`gt issue list`, `gt mq
list`, `gt agents`, `gt status`) and `gt sling`.

A fresh `gt` process pays ~70 ms of imports (pathlib, dataclasses, sqlite3, gastown's own
modules) before it reads a row; the Mayor has all of that loaded. So when a Mayor runs,
these commands send their words, the caller's environment and working directory, and
what its terminal is like (is it one, how wide) over the Mayor's socket
(``roles/mayor_socket.py``, op ``read``), and print what comes back. The Mayor runs the
very same body (``cli/bodies.py``) with its output captured, for this caller: the same
bytes and the same exit code as running it here (``tests/test_relay.py``).

This side imports only ``os``, ``sys``, ``socket`` and ``json``. Whenever anything is off
(no Mayor, no town found, a socket nobody answers, the Mayor declines: another town, a
relative ``--town``, a command line the fast path would hand to typer), ``relay`` returns
None and the command runs here as it always did. A listing only reads, so asking twice
is harmless; `gt sling` was handed to the Mayor before (``roles/mayor_socket.py``), and a
sling is idempotent: one the Mayor got far with is found hooked.
"""

from __future__ import annotations

import os
import re
import sys

TYPE_CHECKING = False  # not typing's: importing typing costs this side ~4 ms
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

RELAYED = ("issue", "mq", "agents", "status", "sling")  # first words worth asking about; the Mayor decides
CONNECT_TIMEOUT = 2.0
# A warm Mayor answers in milliseconds (`gt status`: a second at most, its server probe);
# one that is stopped or swamped must not hold up the command people run when something
# is wrong: past this, the command runs here (a listing only reads: asking twice is harmless).
REPLY_TIMEOUT = 5.0
# A sling fetches and makes a worktree: as long as roles/mayor_socket.py's own wait. Past
# it the command runs here, and its sling finds the issue hooked if the Mayor got that far.
SLING_REPLY_TIMEOUT = 900.0
INTERRUPTED = 130  # ExitCode.INTERRUPTED, without importing gastown.errors here
# What the output chokepoint (cli/_output.py) never lets through: a control character other
# than newline and tab, an escape that is not a colour (SGR), a bidirectional override.
# The Mayor's answer went through that chokepoint; one that holds any of these anyway is
# not printed (the command runs here instead).
_UNSAFE = re.compile("\x1b(?!\\[[0-9;]*m)|[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def relay(args: list[str]) -> int | None:
    """Have the running Mayor answer ``gt ARGS``; its exit code, or None to run it here."""
    environ = os.environ
    if not args or args[0] not in RELAYED or environ.get("GT_DEBUG") == "1" or environ.get("_GT_COMPLETE"):
        return None
    try:
        cwd = os.getcwd()
    except OSError:
        return None
    town = guess_town(args, environ, cwd)
    if town is None:
        return None
    path = os.path.join(town, ".gastown", "run", "mayor.sock")
    if not os.path.exists(path):
        return None
    request: dict[str, Any] = {"op": "read", "args": args, "environ": dict(environ), "cwd": cwd,
               "terminal": {"isatty": sys.stdout.isatty(), "columns": _columns()}}
    try:
        reply = _ask(path, request, SLING_REPLY_TIMEOUT if args[0] == "sling" else REPLY_TIMEOUT)
    except KeyboardInterrupt:
        sys.stderr.write("gt: interrupted\n")
        return INTERRUPTED
    if not isinstance(reply, dict) or reply.get("relayed") is not True:
        return None
    out, err, code = reply.get("out"), reply.get("err"), reply.get("code")
    if not (isinstance(out, str) and isinstance(err, str) and isinstance(code, int)):
        return None
    if _UNSAFE.search(out) or _UNSAFE.search(err):
        return None
    try:
        sys.stderr.write(err)
        sys.stderr.flush()
        sys.stdout.write(out)
        sys.stdout.flush()
    except BrokenPipeError:  # `gt issue list | head`
        return 1
    return code


def guess_town(args: list[str], environ: Mapping[str, str], cwd: str) -> str | None:
    """The town the command line means, as ``town.find_town`` finds it (the last
    ``--town``, else ``GT_TOWN``, else the nearest parent with gastown.toml): only a guess
    for where the socket is; the Mayor checks it is its own town before answering."""
    town = None
    for i, word in enumerate(args):
        if word == "--town" and i + 1 < len(args):
            town = args[i + 1]
        elif word.startswith("--town="):
            town = word[len("--town="):]
    town = town if town is not None else environ.get("GT_TOWN") or None
    if town is not None:
        return os.path.realpath(os.path.join(cwd, os.path.expanduser(town)))
    here = os.path.realpath(cwd)
    while True:
        if os.path.isfile(os.path.join(here, "gastown.toml")):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def _columns() -> int:
    if not sys.stdout.isatty():
        return 0
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except OSError:
        return 0


def _ask(path: str, request: dict[str, Any], timeout: float) -> object:
    import json
    import socket

    fd = None
    address = path
    if len(os.fsencode(path)) >= 100:  # past the ~107-byte limit of a socket address
        fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
        address = f"/proc/self/fd/{fd}/{os.path.basename(path)}"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(CONNECT_TIMEOUT)
            conn.connect(address)
            conn.settimeout(timeout)
            conn.sendall(json.dumps(request).encode("utf-8") + b"\n")
            conn.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return json.loads(b"".join(chunks)) if chunks else None
    except (OSError, ValueError):
        return None
    finally:
        if fd is not None:
            os.close(fd)


# -- the Mayor's side ----------------------------------------------------------------------

ANSWERED = ("issue_list", "mq_list", "agents", "status", "sling")  # the bodies (cli/bodies.py) the Mayor runs for a caller


def answer(mayor_ctx: Any, request: dict[str, Any]) -> dict[str, Any]:
    """In the Mayor: run the listing ``request`` asks for, for its caller, and return
    ``{"relayed": true, "code", "out", "err"}``; ``{"relayed": false}`` declines (the
    caller runs it itself). The caller's environment and directory stand in for the
    Mayor's own; nothing of the caller's is kept."""
    from pathlib import Path

    from gastown.cli import bodies, fast
    from gastown.cli._common import Invocation, invoked_by
    from gastown.cli._errors import guarded
    from gastown.cli._output import Terminal, captured
    from gastown.errors import GastownError
    from gastown.roles.mayor_socket import answering_for
    from gastown.town import find_town

    declined: dict[str, Any] = {"relayed": False}
    args, environ, cwd, terminal = (request.get(k) for k in ("args", "environ", "cwd", "terminal"))
    if not (isinstance(args, list) and all(isinstance(a, str) for a in args) and args and args[0] in RELAYED
            and isinstance(environ, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in environ.items())
            and isinstance(cwd, str) and os.path.isabs(cwd) and isinstance(terminal, dict)
            and isinstance(terminal.get("isatty"), bool) and isinstance(terminal.get("columns"), int)):
        return declined
    parsed = fast.parse(args)
    arguments = fast.body_arguments(parsed) if parsed is not None and parsed.command.body in ANSWERED else None
    if parsed is None or arguments is None:
        return declined  # typer answers it, usage errors included, in the caller
    explicit = parsed.values.get("town") or parsed.root_town
    named = explicit if explicit is not None else (Path(environ["GT_TOWN"]) if environ.get("GT_TOWN") else None)
    if named is not None and not named.is_absolute():
        return declined  # relative to the caller (or its ~): the caller resolves it best
    try:
        town = find_town(explicit, environ, Path(cwd))
    except GastownError:
        return declined
    if town.root != mayor_ctx.town.root:
        return declined
    screen = Terminal(isatty=terminal["isatty"], columns=terminal["columns"], environ=environ)
    body = getattr(bodies, parsed.command.body)

    def run() -> int:
        body(**arguments)
        return 0

    with captured(screen), invoked_by(Invocation(parsed.root_town, environ, Path(cwd))), answering_for(mayor_ctx):
        code = guarded(run)
    return {"relayed": True, "code": code, "out": screen.out.getvalue(), "err": screen.err.getvalue()}
