"""The Mayor's socket: `gt sling` hands its work to a running Mayor, which has the config,
git and tmux warm, instead of paying for them in a fresh process.

``.gastown/run/mayor.sock`` (a Unix socket, mode 0600, and only the Mayor's own user is
answered) carries one JSON request per connection and one JSON reply. The Mayor runs
exactly the same ``polecat.sling()`` the CLI would, with the CLI's environment (the agent
inherits it, as it would from the CLI), and answers with the same results or the same
error (its class, message, hint and exit code). Nothing is kept on the socket: the hook,
the spawn and the events are in the ledger as always, and every sling is idempotent.

When no Mayor answers (none runs, an old Mayor without the socket, a socket left over by
a killed one), ``ask()`` returns None at once and the CLI does the work itself, as before.
A Mayor that takes the request but dies before answering is also None: the CLI's own
sling then finds the issue hooked and says so (or resumes it), never starting it twice.

Unix socket paths are limited to ~107 bytes; a longer one is reached through
``/proc/self/fd/<dir fd>/mayor.sock``.
"""

from __future__ import annotations

import functools
import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gastown import errors

if TYPE_CHECKING:
    from gastown.context import Context
    from gastown.town import Town

    Answer = Callable[[Context, dict[str, Any]], dict[str, Any]]  # an op the layer above adds (cli/relay.py)

SOCKET_NAME = "mayor.sock"
MAX_REQUEST = 4 * 1024 * 1024  # an environment and a few issue ids; anything bigger is refused
MAX_CONCURRENT = 8
REPLY_TIMEOUT = 900.0  # a sling fetches and makes a worktree; git's own timeouts come first


# Set while the Mayor runs a command for a caller (cli/relay.py): the Mayor's Context.
_answering: ContextVar[Context | None] = ContextVar("gastown_answering", default=None)


def socket_path(town: Town) -> Path:
    return town.run_dir / SOCKET_NAME


# -- the CLI's side ------------------------------------------------------------------------


def sling_issues(ctx: Context, issues: list[str], target: str | None, *, agent: str | None) -> list[dict[str, Any]]:
    """Sling ``issues`` (``polecat.sling`` each, in order) and return their results as JSON
    documents: through the town's running Mayor when one answers, else in this process.
    The first failure is raised, with the same class and exit code either way."""
    request = {"op": "sling", "issues": issues, "target": target, "agent": agent}
    mayor_ctx = _answering.get()
    if mayor_ctx is not None:  # the Mayor runs `gt sling` for its caller (cli/relay.py): no round trip to itself
        reply: dict[str, Any] | None = sling_here(mayor_ctx, request, ctx.environ)
    else:
        reply = ask(ctx.town, {**request, "environ": dict(ctx.environ)})
    if reply is not None:
        raise_error(reply)
        return [dict(r) for r in reply.get("results") or []]
    from gastown.roles.polecat import sling

    return [sling(ctx, issue, target, agent=agent).to_json() for issue in issues]


def ask(town: Town, request: dict[str, Any], *, timeout: float = REPLY_TIMEOUT) -> dict[str, Any] | None:
    """Send ``request`` to the town's Mayor and return its reply; None when no Mayor takes
    it (no socket, nobody listening, the connection dropped before a reply)."""
    path = socket_path(town)
    if not path.exists():
        return None
    try:
        with _unix_address(path) as address, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(2.0)
            conn.connect(address)
            conn.settimeout(timeout)
            conn.sendall(json.dumps(request).encode("utf-8") + b"\n")
            conn.shutdown(socket.SHUT_WR)
            data = _read_all(conn)
    except (OSError, ValueError):
        return None
    if not data:
        return None
    try:
        reply = json.loads(data)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


def raise_error(reply: dict[str, Any]) -> None:
    """Raise the ``GastownError`` a reply carries (same class, message, hint, exit code)."""
    error = reply.get("error")
    if not isinstance(error, dict):
        return
    message, hint = str(error.get("message") or "the Mayor could not do it"), error.get("hint")
    found = getattr(errors, str(error.get("type")), None)
    cls = found if isinstance(found, type) and issubclass(found, errors.GastownError) else errors.GastownError
    exc: errors.GastownError
    if issubclass(cls, errors.ConfigError):
        exc = cls(message, problems=[str(p) for p in error.get("problems") or []], hint=hint)
    elif issubclass(cls, errors.CommandFailed):
        exc = cls(message, argv=list(error.get("argv") or []), returncode=error.get("returncode"), hint=hint)
    else:
        exc = cls(message, hint=hint)
    code = error.get("exit_code")
    if isinstance(code, int) and code != exc.exit_code:  # a class the CLI does not know (e.g. LaunchFailed)
        exc.exit_code = errors.ExitCode(code) if code in set(errors.ExitCode) else errors.ExitCode.FAILURE
    raise exc


# -- the Mayor's side ----------------------------------------------------------------------


class MayorSocket:
    """Listens on the town's socket in a thread; each connection is answered in its own
    thread (at most ``MAX_CONCURRENT`` at once) by ``handle(request) -> reply``."""

    def __init__(self, town: Town, handle: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.town = town
        self.handle = handle
        import threading  # the Mayor's side only: `gt sling` imports this module too

        self.path = socket_path(town)
        self.server: socket.socket | None = None
        self.slots = threading.BoundedSemaphore(MAX_CONCURRENT)

    def start(self) -> None:
        """Bind (replacing a socket a dead Mayor left) and start answering. Call while
        holding the Mayor's lock, so no live Mayor's socket is ever replaced."""
        self.path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            with _unix_address(self.path) as address:
                server.bind(address)
        finally:
            os.umask(old_umask)
        server.listen(16)
        self.server = server
        self._thread(self._accept, "mayor-socket")

    def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        self.path.unlink(missing_ok=True)

    def _accept(self) -> None:
        while self.server is not None:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return  # closed by stop()
            if not _same_user(conn):
                conn.close()
                continue
            self.slots.acquire()
            self._thread(functools.partial(self._answer, conn), "mayor-request")

    @staticmethod
    def _thread(target: Callable[[], None], name: str) -> None:
        import threading

        threading.Thread(target=target, name=name, daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(10.0)
                data = _read_all(conn, limit=MAX_REQUEST)
                try:
                    request = json.loads(data)
                    if not isinstance(request, dict):
                        raise ValueError("not an object")
                except ValueError:
                    reply: dict[str, Any] = {"error": _error_json(errors.InvalidInput("the request is not a JSON object"))}
                else:
                    reply = self.handle(request)
                conn.sendall(json.dumps(reply).encode("utf-8"))
        except OSError as exc:
            _log().warning("mayor socket: a request was cut short: %s", exc)
        finally:
            self.slots.release()


def handle_request(mayor_ctx: Context, request: dict[str, Any], answers: Mapping[str, Answer] | None = None,
                   ) -> dict[str, Any]:
    """Answer one request. ``sling``: ``{"op": "sling", "issues": [...], "target": ...,
    "agent": ..., "environ": {...}}`` → ``{"results": [...]}``, plus ``"error"`` when one
    sling failed (the ones before it stand, as in the CLI). Any other op goes to its
    function in ``answers`` (the CLI's listings, ``read``: ``cli/relay.py``)."""
    answer = (answers or {}).get(str(request.get("op")))
    if answer is not None:
        try:
            return answer(mayor_ctx, request)
        except Exception:  # noqa: BLE001 - the caller runs the command itself; the Mayor goes on
            _log().exception("mayor socket: a %s request failed unexpectedly", request.get("op"))
            return {}
    if request.get("op") != "sling":
        return {"error": _error_json(errors.InvalidInput(f"the Mayor does not know the request {request.get('op')!r}"))}
    environ = request.get("environ")
    return sling_here(mayor_ctx, request,
                      {str(k): str(v) for k, v in environ.items()} if isinstance(environ, dict) else os.environ)


@contextmanager
def answering_for(mayor_ctx: Context) -> Iterator[None]:
    """Inside this block (this thread), `gt sling`'s body runs its slings here, in the
    Mayor (``mayor_ctx``), instead of asking the Mayor's own socket."""
    token = _answering.set(mayor_ctx)
    try:
        yield
    finally:
        _answering.reset(token)


def sling_here(mayor_ctx: Context, request: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """In the Mayor: sling ``request``'s issues with the caller's ``environ``; the reply."""
    from gastown.context import Context

    ctx = Context(mayor_ctx.town, clock=mayor_ctx.clock, environ=environ)
    ctx.__dict__["ledger"] = mayor_ctx.ledger  # its connections are per thread; this one is closed below
    results: list[dict[str, Any]] = []
    _log().info("sling %s requested over the socket", " ".join(str(i) for i in request.get("issues") or []))
    try:
        from gastown.roles.polecat import sling

        for issue in request.get("issues") or []:
            results.append(sling(ctx, str(issue), request.get("target"), agent=request.get("agent")).to_json())
    except errors.GastownError as exc:
        return {"results": results, "error": _error_json(exc)}
    except Exception as exc:  # noqa: BLE001 - the CLI reports it; the Mayor goes on
        _log().exception("mayor socket: sling failed unexpectedly")
        return {"results": results, "error": _error_json(errors.GastownError(f"the Mayor failed: {type(exc).__name__}: {exc}"))}
    finally:
        mayor_ctx.ledger.close()
    return {"results": results}


def _error_json(exc: errors.GastownError) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint,
                           "exit_code": int(exc.exit_code)}
    if isinstance(exc, errors.ConfigError):
        doc["problems"] = exc.problems
    if isinstance(exc, errors.CommandFailed):
        doc["argv"], doc["returncode"] = exc.argv, exc.returncode
    return doc


# -- plumbing ------------------------------------------------------------------------------


def _log() -> Any:
    """The Mayor's logger (``logging`` is imported on the Mayor's side only: `gt sling` need not pay for it)."""
    from gastown._internal.log import logger

    return logger("gastown.mayor")


@contextmanager
def _unix_address(path: Path) -> Iterator[str]:
    """``path`` as a Unix socket address, through ``/proc/self/fd`` when it is too long."""
    full = str(path)
    if len(os.fsencode(full)) < 100:
        yield full
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _read_all(conn: socket.socket, limit: int = MAX_REQUEST * 4) -> bytes:
    chunks, size = [], 0
    while chunk := conn.recv(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise ValueError("message too large")
    return b"".join(chunks)


def _same_user(conn: socket.socket) -> bool:
    import struct

    try:
        _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    except OSError:
        return False
    return uid == os.getuid()

