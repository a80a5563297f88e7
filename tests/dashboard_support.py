"""Shared by the dashboard tests: a real server on 127.0.0.1 (port 0), a reader of its
event stream, and the CSRF token of a page."""

from __future__ import annotations

import json
import queue
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette

from gastown.server.dashboard.app import create_dashboard_app
from gastown.server.dashboard.serving import serve_in_thread

CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@contextmanager
def served(town: Path, **options: Any) -> Iterator[tuple[str, Starlette]]:
    """The town's dashboard on a free port of 127.0.0.1, stopped afterwards. Polls fast,
    so tests wait on milliseconds, not seconds (``options`` override)."""
    settings: dict[str, Any] = {"poll_interval": 0.05, "refresh_interval": 0.5, **options}
    app = create_dashboard_app(town, **settings)
    with serve_in_thread(app) as url:
        yield url, app


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


@dataclass(frozen=True)
class SSE:
    event: str
    data: Any
    id: str | None


class EventStream:
    """Reads ``/stream`` in a thread; ``next(kind)`` waits for the next message of a kind.

    The reader ends when the server ends the stream (``bye``) or the connection drops;
    ``ended`` is set then.
    """

    def __init__(self, client: httpx.Client, path: str, headers: dict[str, str] | None = None) -> None:
        self.client = client
        self.path = path
        self.headers = headers or {}
        self.messages: queue.Queue[SSE] = queue.Queue()
        self.ended = threading.Event()
        self.opened = threading.Event()
        self.status: int | None = None
        self.seen: list[SSE] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self.opened.wait(15), "the stream did not open"

    def _read(self) -> None:
        try:
            with self.client.stream("GET", self.path, headers=self.headers, timeout=httpx.Timeout(60, connect=10)) as response:
                self.status = response.status_code
                self.opened.set()
                event, event_id = "message", None
                data: list[str] = []
                for line in response.iter_lines():
                    if line == "":
                        if data:
                            self.messages.put(SSE(event, json.loads("\n".join(data)), event_id))
                        event, data, event_id = "message", [], None
                    elif line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data.append(line[6:])
                    elif line.startswith("id: "):
                        event_id = line[4:]
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def next(self, kind: str, timeout: float = 10.0, where: Any = None) -> SSE:
        """The next ``kind`` message (for which ``where(data)`` holds, if given)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind!r} message within {timeout}s; saw {[m.event for m in self.seen]}")
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(message)
            if message.event == kind and (where is None or where(message.data)):
                return message
