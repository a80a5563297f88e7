"""`gt feed`: the live full-screen view, and the plain event stream for scripts.

Both read the ledger only, and cheaply: events incrementally by id (one indexed query
per second returning just the new rows), and a ``TownStatus`` snapshot every couple of
seconds (ledger reads plus one ``tmux list-panes``; the agents' last lines are their
logs' tails). Nothing here captures a pane, writes the ledger or takes a lock the Mayor
waits on, so any number of feeds can watch without slowing the Mayor down.

Time, sleeping and output are injected (``clock``, ``sleep``, ``console``/``write``) so
tests drive the loops without a terminal or real waiting.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from gastown.context import Context
from gastown.errors import GastownError
from gastown.ledger.events import Event, last_event_id, list_events
from gastown.safetext import json_text
from gastown.views.status import TownStatus, collect_status

if TYPE_CHECKING:
    import sqlite3

    from rich.console import Console, RenderableType

# Event kinds that mean something needs a person: agents stalled, dead or restarted,
# issues blocked, escalations, and holds (rate limits, a held merge queue).
PROBLEM_KINDS = ("stalled", "dead", "restart", "blocked", "escalation", "hold")
BACKLOG = 20  # events shown from before the start when no --since is given
PAGE = 500  # events read per query; a burst is read in pages
KEPT = 1000  # events the live view remembers (more than any screen shows)


def is_problem(event: Event) -> bool:
    return event.kind in PROBLEM_KINDS


class EventCursor:
    """Reads the event log forward from where it left off (by event id).

    ``start()`` returns the backlog: every event since ``since`` (unix time), or else the
    last ``backlog`` events. ``more()`` returns the events recorded since the last read.
    With ``problems`` only ``PROBLEM_KINDS`` are returned. Each read is one indexed query
    per ``PAGE`` events; nothing is written.
    """

    def __init__(
        self,
        connection: Callable[[], sqlite3.Connection],
        *,
        since: float | None = None,
        backlog: int = BACKLOG,
        problems: bool = False,
    ) -> None:
        self._connection = connection
        self.since = since
        self.backlog = backlog
        self.problems = problems
        self.last_id = 0

    def _keep(self, events: list[Event]) -> list[Event]:
        return [e for e in events if is_problem(e)] if self.problems else events

    def start(self) -> list[Event]:
        conn = self._connection()
        top = last_event_id(conn)
        kinds = PROBLEM_KINDS if self.problems else ()
        if self.since is not None:
            found = list_events(conn, since=self.since, kinds=kinds)
        else:
            found = list_events(conn, kinds=kinds, limit=max(0, self.backlog), newest_first=True)[::-1]
        self.last_id = top
        return [e for e in found if e.id <= top]

    def more(self) -> list[Event]:
        conn = self._connection()
        fresh: list[Event] = []
        while True:
            page = list_events(conn, after_id=self.last_id, limit=PAGE)
            if not page:
                break
            self.last_id = page[-1].id
            fresh += page
            if len(page) < PAGE:
                break
        return self._keep(fresh)


def stream_plain(
    cursor: EventCursor,
    write: Callable[[str], None],
    *,
    as_json: bool = False,
    follow: bool = True,
    interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Write events one line each (``render.event_line`` or ``Event.to_json()``), oldest
    first; with ``follow``, keep polling every ``interval`` until interrupted (Ctrl-C
    raises ``KeyboardInterrupt`` out of here). Returns how many lines were written."""
    from gastown.views.text import event_line

    def emit(events: list[Event]) -> int:
        for event in events:
            write(json_text(event.to_json(), indent=None) if as_json else event_line(event))
        return len(events)

    written = emit(cursor.start())
    while follow:
        sleep(interval)
        written += emit(cursor.more())
    return written


class LiveFeed:
    """The full-screen view: redraws every ``interval`` seconds from the ledger.

    New events are read every frame; the town snapshot is retaken every
    ``snapshot_every`` seconds. ``run()`` returns when ``KeyboardInterrupt`` arrives
    (Ctrl-C) or after ``frames`` frames, and always restores the terminal.
    """

    def __init__(
        self,
        ctx: Context,
        console: Console,
        *,
        problems: bool = False,
        since: float | None = None,
        interval: float = 1.0,
        snapshot_every: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        snapshot: Callable[[Context], TownStatus] = collect_status,
    ) -> None:
        self.ctx = ctx
        self.console = console
        self.problems = problems
        self.interval = interval
        self.snapshot_every = snapshot_every
        self.clock = clock
        self.sleep = sleep
        self.snapshot = snapshot
        self.cursor = EventCursor(ctx.ledger.connection, since=since, backlog=KEPT, problems=problems)
        self.events: deque[Event] = deque(maxlen=KEPT)
        self.status: TownStatus | None = None
        self._started = False
        self._taken_at = float("-inf")

    def poll(self) -> None:
        """Read new events; retake the snapshot if it is older than ``snapshot_every``.

        A snapshot that fails after the first one keeps the previous one on screen.
        """
        self.events.extend(self.cursor.more() if self._started else self.cursor.start())
        self._started = True
        if self.status is None or self.clock() - self._taken_at >= self.snapshot_every:
            self._taken_at = self.clock()
            try:
                self.status = self.snapshot(self.ctx)
            except GastownError:
                if self.status is None:
                    raise
                # A passing hiccup (tmux timed out, ledger busy): keep the last snapshot, retry next time.

    def frame(self) -> RenderableType:
        """The current frame, sized to the console (polling first if nothing was read yet)."""
        from gastown.views.render import render_feed

        if self.status is None:
            self.poll()
        assert self.status is not None
        width, height = self.console.size
        return render_feed(self.status, list(self.events), width=width, height=height, problems=self.problems,
                           now=self.ctx.now())

    def run(self, *, frames: int | None = None) -> int:
        """Show frames until Ctrl-C (or ``frames`` frames); returns the number shown."""
        from rich.live import Live

        shown = 0
        try:
            with Live(console=self.console, screen=True, auto_refresh=False, redirect_stdout=False,
                      redirect_stderr=False) as live:
                while True:
                    self.poll()
                    live.update(self.frame(), refresh=True)
                    shown += 1
                    if frames is not None and shown >= frames:
                        break
                    self.sleep(self.interval)
        except KeyboardInterrupt:
            pass
        return shown
