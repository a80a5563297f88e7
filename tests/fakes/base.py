"""What every fake model server shares: the script, the turn logic, the request log, the server.

A fake decides each answer from the request alone (no conversation state), the way the
real CLIs' requests make possible:

- a request that offers no tools is a *side call* (titles, commit messages, routing):
  plain text, or JSON filled from the schema when structured output is asked for;
- otherwise the number of tool results already in the conversation says which step of
  the script comes next: step *n* is sent as a tool call, and once every step has a
  result the *final* text answer is sent;
- with ``Script.wait_for`` set, a request that does not hold that marker anywhere gets
  a plain *wait* answer instead (the agent goes idle without finishing): the script
  only starts once a nudge carrying the marker is in the conversation.

The server binds 127.0.0.1 on port 0 (the OS picks a free port; ``port``/``base_url``
report it), serves each request in its own thread, and is a context manager::

    with FakeAnthropic(Script.edit("hello.py", "print('hi')\\n")) as fake:
        env["ANTHROPIC_BASE_URL"] = fake.base_url
        ...
        assert fake.log_of("tool")

Each family subclass turns a request into a ``Turn`` (``parse_turn``) and an ``Action``
into its own wire format (``send_action``).
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

Kind = Literal["tool", "final", "side", "wait"]

# Tool names the CLIs give their shell tool (claude, opencode/copilot, gemini, codex).
SHELL_TOOLS = ("Bash", "bash", "run_shell_command", "exec_command", "shell_command", "shell")
PRIMARY_DIR_RE = re.compile(r"Primary working directory: (\S[^\n]*)")


@dataclass(frozen=True)
class Usage:
    """Token numbers for one response, in the fake's neutral terms.

    ``input`` counts only prompt tokens *not* read from or written to a cache, so the
    whole prompt is ``input + cache_read + cache_write``. Each family encodes this in its
    own fields (OpenAI-style APIs count cached tokens inside their input number).
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
        )

    @property
    def prompt_total(self) -> int:
        return self.input + self.cache_read + self.cache_write


@dataclass(frozen=True)
class WriteFile:
    """Step: create ``path`` (relative to the agent's cwd) holding ``content``."""

    path: str
    content: str


@dataclass(frozen=True)
class Shell:
    """Step: run ``command`` through the agent's shell tool (cwd = its worktree)."""

    command: str


Step = WriteFile | Shell


def default_usage(kind: Kind, index: int) -> Usage:
    """Distinct numbers per kind so a test can tell which responses a CLI recorded."""
    if kind == "side":
        return Usage(input=7, output=3)
    return Usage(input=101 + index, output=23 + index, cache_read=11, cache_write=5)


@dataclass(frozen=True)
class Script:
    """What the fake makes the agent do, and what it reports.

    ``usage(kind, index)`` gives the numbers of the *index*-th response of that kind
    (0-based, counted per server), so tests can assert exact accounting from the log.
    ``delay`` holds every non-side response that long before the first byte (to watch
    busy markers); ``delays(kind, index)``, when given, says it per response instead. A
    stopping server cuts a delay short.

    ``wait_for``: until a request holds this text (anywhere in its body), every
    non-side request gets ``wait_text`` as a plain answer (kind ``"wait"``) and no step
    of the script runs. Used to prove that a nudge reached the agent and its model.
    """

    steps: tuple[Step, ...]
    final_text: str = "Done: the change is in place."
    side_text: str = "Fake title"
    delay: float = 0.0
    usage: Callable[[Kind, int], Usage] = default_usage
    # For CLIs that edit by reply text instead of tools (aider's "whole" edit format).
    aider_whole: bool = False
    wait_for: str | None = None
    wait_text: str = "I have read the task. I will start once you say go."
    delays: Callable[[Kind, int], float] | None = None

    def delay_of(self, kind: Kind, index: int) -> float:
        """How long the *index*-th response of ``kind`` is held before its first byte."""
        if self.delays is not None:
            return self.delays(kind, index)
        return 0.0 if kind == "side" else self.delay

    @classmethod
    def edit(cls, path: str, content: str, **kwargs: Any) -> Script:
        """One tool call that writes ``path``, then the final answer."""
        return cls(steps=(WriteFile(path, content),), **kwargs)

    @classmethod
    def reply(cls, text: str, **kwargs: Any) -> Script:
        """No tool calls: the final answer is ``text`` (a reviewer's findings document)."""
        return cls(steps=(), final_text=text, **kwargs)

    @classmethod
    def edit_then_done(cls, path: str, content: str, message: str = "Add the change", **kwargs: Any) -> Script:
        """Write ``path``, then commit everything and run ``gt done`` through the shell tool."""
        finish = f"git add -A && git commit -q -m {shlex.quote(message)} && gt done"
        return cls(steps=(WriteFile(path, content), Shell(finish)), **kwargs)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    call_id: str


@dataclass(frozen=True)
class Text:
    text: str


Action = ToolCall | Text


@dataclass
class Turn:
    """One request, reduced to what the script needs."""

    tools: dict[str, dict[str, Any]]
    tool_results: int
    system: str
    model: str
    stream: bool
    # A JSON schema when the request asks for structured output (gemini side calls).
    json_schema: dict[str, Any] | None = None
    # The text of the last user message (aider's commit-message call is recognised by it).
    last_user: str = ""
    # The whole request body as JSON (filled in only when the script waits for a marker).
    raw: str = ""


@dataclass(frozen=True)
class Record:
    """One request the fake answered."""

    method: str
    path: str
    kind: Kind | None
    model: str
    usage: Usage | None
    tools: tuple[str, ...]
    action: str
    headers: Mapping[str, str]
    body: Any
    at: float


def fill_schema(schema: Mapping[str, Any] | None) -> Any:
    """A minimal value that satisfies ``schema`` (first enum value, empty lists, ...)."""
    if not schema:
        return {}
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        return {name: fill_schema(sub) for name, sub in props.items()}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    return "ok"


def shell_arguments(schema: Mapping[str, Any], command: str) -> dict[str, Any]:
    """Arguments for a shell tool whose parameters follow ``schema``."""
    props = (schema or {}).get("properties") or {}
    if "cmd" in props:
        return {"cmd": command}
    spec = props.get("command") or {}
    if str(spec.get("type", "")).lower() == "array":
        return {"command": ["bash", "-lc", command]}
    args: dict[str, Any] = {"command": command}
    if "description" in props:
        args["description"] = "Run the scripted command"
    return args


def decide(script: Script, turn: Turn, call_id: str) -> tuple[Kind, Action]:
    """The pure core: which kind of response this request gets, and its content."""
    if script.aider_whole:
        return _decide_aider(script, turn)
    if not turn.tools:
        if turn.json_schema is not None:
            return "side", Text(json.dumps(fill_schema(turn.json_schema)))
        return "side", Text(script.side_text)
    if _waiting(script, turn):
        return "wait", Text(script.wait_text)
    if turn.tool_results >= len(script.steps):
        return "final", Text(script.final_text)
    step = script.steps[turn.tool_results]
    return "tool", _tool_call(step, turn, call_id)


def _decide_aider(script: Script, turn: Turn) -> tuple[Kind, Action]:
    # aider sends no tools; its commit-message request says so in its system prompt.
    if "commit message" in turn.system.lower():
        return "side", Text(script.side_text)
    if _waiting(script, turn):
        return "wait", Text(script.wait_text)
    blocks = []
    for step in script.steps:
        if isinstance(step, WriteFile):
            body = step.content if step.content.endswith("\n") else step.content + "\n"
            blocks.append(f"{step.path}\n```\n{body}```\n")
    return "tool", Text("Here is the change.\n\n" + "\n".join(blocks))


def _waiting(script: Script, turn: Turn) -> bool:
    return script.wait_for is not None and script.wait_for not in turn.raw


def _tool_call(step: Step, turn: Turn, call_id: str) -> ToolCall:
    if isinstance(step, WriteFile) and "Write" in turn.tools:
        match = PRIMARY_DIR_RE.search(turn.system)
        if match:  # claude's file tools insist on absolute paths
            root = match.group(1).strip().rstrip("/")
            return ToolCall("Write", {"file_path": f"{root}/{step.path}", "content": step.content}, call_id)
    command = step.command if isinstance(step, Shell) else write_command(step)
    for name in SHELL_TOOLS:
        if name in turn.tools:
            return ToolCall(name, shell_arguments(turn.tools[name], command), call_id)
    raise LookupError(f"no shell tool among {sorted(turn.tools)}")


def write_command(step: WriteFile) -> str:
    """A shell command that writes ``step.content`` to ``step.path`` byte for byte."""
    parent = step.path.rsplit("/", 1)[0] if "/" in step.path else ""
    mkdir = f"mkdir -p {shlex.quote(parent)} && " if parent else ""
    return f"{mkdir}printf %s {shlex.quote(step.content)} > {shlex.quote(step.path)}"


class FakeServer:
    """Base: a threaded HTTP server on 127.0.0.1 that answers one API family.

    Subclasses set ``family`` and implement ``route`` (which paths they answer),
    ``parse_turn`` and ``send_action``. Everything answered is appended to ``log``.
    """

    family: ClassVar[str] = "base"
    model_name: ClassVar[str] = "fake-model"

    def __init__(self, script: Script, *, model: str | None = None) -> None:
        self.script = script
        self.model = model or self.model_name
        self.log: list[Record] = []
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {"tool": 0, "final": 0, "side": 0, "wait": 0}
        self._calls = 0
        self._in_flight = 0
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        self._server, self._thread = serve_on_loopback(_make_handler(self), name=f"fake-{self.family}")
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "fake server is not running"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (no path; families document what they append)."""
        return f"http://127.0.0.1:{self.port}"

    # -- the log -----------------------------------------------------------------------

    def log_of(self, *kinds: Kind) -> list[Record]:
        with self._lock:
            return [r for r in self.log if r.kind in kinds]

    def usage_of(self, *kinds: Kind) -> Usage:
        """Sum of the usage the fake reported in responses of these kinds."""
        total = Usage()
        for record in self.log_of(*kinds):
            if record.usage is not None:
                total = total + record.usage
        return total

    @property
    def in_flight(self) -> int:
        """Model requests received but not yet answered (held by ``Script.delay``)."""
        with self._lock:
            return self._in_flight

    def wait_idle_for(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False if the server is stopping (used for delays)."""
        return not self._stopping.wait(seconds)

    # -- family hooks --------------------------------------------------------------------

    def route(self, method: str, path: str) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def parse_turn(self, path: str, body: dict[str, Any]) -> Turn:  # pragma: no cover - abstract
        raise NotImplementedError

    def send_action(self, out: Responder, turn: Turn, action: Action, usage: Usage, kind: Kind) -> None:  # pragma: no cover
        raise NotImplementedError

    def handle_get(self, out: Responder, path: str) -> bool:
        """Answer a GET; False means 404. Default: ``/`` and ``/v1/models`` (OpenAI shape)."""
        if path in ("", "/"):
            out.send_json({"ok": True})
            return True
        if path.rstrip("/").endswith("/models"):
            out.send_json({"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "fake"}]})
            return True
        return False

    def handle_other_post(self, out: Responder, path: str, body: dict[str, Any]) -> bool:
        """POSTs outside the main route (token counting...); False means 404."""
        return False

    # -- the request path ------------------------------------------------------------------

    def _answer(self, out: Responder, method: str, raw_path: str, headers: Mapping[str, str], body: Any) -> None:
        path = urlsplit(raw_path).path
        if method == "GET":
            if not self.handle_get(out, path):
                out.send_json({"error": {"message": f"no route {path}"}}, status=404)
            self._record(method, raw_path, None, "", None, (), "get", headers, body)
            return
        if not self.route(method, path):
            if not self.handle_other_post(out, path, body if isinstance(body, dict) else {}):
                out.send_json({"error": {"message": f"no route {path}"}}, status=404)
            self._record(method, raw_path, None, "", None, (), "other", headers, body)
            return
        turn = self.parse_turn(raw_path, body if isinstance(body, dict) else {})
        if self.script.wait_for is not None:
            turn = replace(turn, raw=json.dumps(body, ensure_ascii=False))
        with self._lock:
            self._calls += 1
            call_id = f"call_{self._calls:04d}"
        kind, action = decide(self.script, turn, call_id)
        with self._lock:
            index = self._counts[kind]
            self._counts[kind] += 1
        usage = self.script.usage(kind, index)
        with self._lock:
            self._in_flight += 1
        try:
            delay = self.script.delay_of(kind, index)
            if delay > 0 and not self.wait_idle_for(delay):
                out.abort()
                return
            label = f"tool {action.name}" if isinstance(action, ToolCall) else "text"
            self._record(method, raw_path, kind, turn.model, usage, tuple(turn.tools), label, headers, body)
            self.send_action(out, turn, action, usage, kind)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _record(self, method: str, path: str, kind: Kind | None, model: str, usage: Usage | None,
                tools: tuple[str, ...], action: str, headers: Mapping[str, str], body: Any) -> None:
        with self._lock:
            self.log.append(Record(method, path, kind, model, usage, tools, action, dict(headers), body, time.time()))


class Responder:
    """Writes one HTTP response: a JSON document or an SSE stream (then closes)."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self._h = handler

    def abort(self) -> None:
        """Drop the connection without an answer (the server is stopping)."""
        self._h.close_connection = True

    def send_json(self, doc: Any, status: int = 200) -> None:
        data = json.dumps(doc).encode()
        self._h.send_response(status)
        self._h.send_header("Content-Type", "application/json")
        self._h.send_header("Content-Length", str(len(data)))
        self._h.end_headers()
        self._h.wfile.write(data)

    @contextmanager
    def sse(self) -> Iterator[Callable[..., None]]:
        """Open an SSE stream; yields ``emit(data, event=None)``. The connection closes after."""
        self._h.send_response(200)
        self._h.send_header("Content-Type", "text/event-stream")
        self._h.send_header("Cache-Control", "no-cache")
        self._h.send_header("Connection", "close")
        self._h.end_headers()
        self._h.close_connection = True

        def emit(data: Any, event: str | None = None) -> None:
            chunk = f"event: {event}\n" if event else ""
            payload = data if isinstance(data, str) else json.dumps(data)
            chunk += f"data: {payload}\n\n"
            self._h.wfile.write(chunk.encode())
            self._h.wfile.flush()

        yield emit


def _make_handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not raw:
                return {}
            try:
                return json.loads(raw)
            except ValueError:
                return raw.decode("utf-8", "replace")

        def do_GET(self) -> None:
            fake._answer(Responder(self), "GET", self.path, dict(self.headers), None)

        def do_HEAD(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            try:
                fake._answer(Responder(self), "POST", self.path, dict(self.headers), self._body())
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def serve_on_loopback(handler: type[BaseHTTPRequestHandler], *, name: str) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """An HTTP server on 127.0.0.1, a free port, serving ``handler`` on a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True)
    thread.start()
    return server, thread
