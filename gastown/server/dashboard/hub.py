"""One reader of the town for every open page: the hub behind the dashboard's live updates.

A single asyncio task, running only while at least one page is open, does all the
reading, and fans the results out to every subscribed event stream:

- every ``poll_interval`` (0.25 s): the events recorded since the last id (one indexed
  query, ``views.feed.EventCursor``) and the new bytes of each followed agent log (a
  stat, and a read when it grew);
- after new events (at most once per ``settle``, 1 s) and otherwise every
  ``refresh_interval`` (2 s): one ``TownStatus`` snapshot (``collect_status``: ledger
  reads, one ``tmux list-panes``, log stats), published as a new *version*.

Pages render their live parts (*fragments*) from the current version once per view,
whoever asks first, so ten open pages cost the ledger and tmux what one costs.
``close()`` ends every stream (the server calls it before it waits on connections).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gastown._internal.log import logger
from gastown.context import Context
from gastown.errors import GastownError
from gastown.ledger.events import Event, list_events
from gastown.server.dashboard.handle import TownHandle
from gastown.server.dashboard.text import CATCH_UP_BYTES, LogReader
from gastown.views.feed import EventCursor
from gastown.views.status import TownStatus, collect_status

log = logger("gastown.dashboard")
T = TypeVar("T")

QUEUE_SIZE = 512  # messages a slow page may fall behind before it is told to reload
ACTION_THREADS = 8  # actions run at once (a nudge may wait minutes for its agent); more wait their turn
CATCH_UP_EVENTS = 500  # events a reconnecting page is sent at most
KEPT_NOTICES = 50  # recent notices kept for a page that opens just after them


@dataclass(frozen=True)
class Message:
    """What a stream gets: ``events`` (list of Event), ``status`` (a version number),
    ``log`` (list of lines), ``notice`` ((level, text)), ``reload`` or ``bye``."""

    kind: str
    payload: Any = None


@dataclass
class HubStats:
    """Counters for tests and the benchmark: the hub's work, whatever the number of pages."""

    event_polls: int = 0
    snapshots: int = 0
    log_reads: int = 0
    renders: int = 0
    subscribers_peak: int = 0


class Subscription:
    """One open stream's mailbox. Use as a context manager; leaving unsubscribes."""

    def __init__(self, hub: Hub, log_path: Path | None) -> None:
        self.hub = hub
        self.log_path = log_path
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.overflowed = False

    def put(self, message: Message) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # Too far behind to catch up message by message: drop the backlog, tell the page to reload.
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(Message("reload"))

    async def get(self, timeout: float) -> Message | None:
        """The next message, or None after ``timeout`` seconds of quiet."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.hub.unsubscribe(self)


@dataclass
class _Follower:
    reader: LogReader
    subscribers: set[Subscription] = field(default_factory=set)


Renderer = Callable[[str, TownStatus], dict[str, str]]


class Hub:
    """The dashboard's single reader of the town; see the module docstring.

    ``render(view, snapshot)`` returns a view's fragments (id → HTML); it runs in
    a worker thread, once per view and version. ``snapshot`` is injectable for tests.
    """

    def __init__(
        self,
        handle: TownHandle,
        render: Renderer,
        *,
        poll_interval: float = 0.25,
        refresh_interval: float = 2.0,
        settle: float = 1.0,
        snapshot: Callable[[Context], TownStatus] = collect_status,
    ) -> None:
        self.handle = handle
        self.render = render
        self.poll_interval = poll_interval
        self.refresh_interval = refresh_interval
        self.settle = settle
        self._take_snapshot = snapshot
        self.stats = HubStats()
        self.closed = False
        self.version = 0
        self.notice_seq = 0
        self._notices: deque[tuple[int, str, str]] = deque(maxlen=KEPT_NOTICES)
        self.latest: TownStatus | None = None
        self.snapshot_error: str | None = None
        self._taken_at = float("-inf")
        self._dirty = False
        self._subscribers: set[Subscription] = set()
        self._followers: dict[Path, _Follower] = {}
        self._cursor: EventCursor | None = None
        self._task: asyncio.Task[None] | None = None
        self._kick: asyncio.Event | None = None
        self._snapshot_lock: asyncio.Lock | None = None
        self._fragments: dict[tuple[str, int], asyncio.Future[dict[str, str]]] = {}
        self._jobs: set[asyncio.Task[None]] = set()
        # Actions get threads of their own: eight nudges waiting on busy agents must not
        # take the threads that read the town for every page.
        self._actions = ThreadPoolExecutor(max_workers=ACTION_THREADS, thread_name_prefix="dashboard-action")

    # -- subscriptions ----------------------------------------------------------------

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self, *, log_path: Path | None = None, log_offset: int = 0) -> tuple[Subscription, list[str]]:
        """A new mailbox (and, following ``log_path`` from ``log_offset``, the lines
        written since then). Starts the reading task if it is not running."""
        sub = Subscription(self, log_path)
        if self.closed:
            sub.put(Message("bye"))
            return sub, []
        self._subscribers.add(sub)
        self.stats.subscribers_peak = max(self.stats.subscribers_peak, len(self._subscribers))
        backlog: list[str] = []
        if log_path is not None:
            follower = self._followers.get(log_path)
            if follower is None:
                follower = self._followers[log_path] = _Follower(LogReader(log_path, log_offset))
                backlog = follower.reader.read_new()
            elif log_offset < follower.reader.offset:
                # Runs on the event loop like the follower's own reads, so nothing slips between.
                catch_up = LogReader(log_path, max(log_offset, follower.reader.offset - CATCH_UP_BYTES))
                while catch_up.offset < follower.reader.offset:
                    before = catch_up.offset
                    backlog += catch_up.read_new(follower.reader.offset - catch_up.offset)
                    if catch_up.offset == before:
                        break
            follower.subscribers.add(sub)
        self._ensure_running()
        return sub, backlog

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)
        if sub.log_path is not None:
            follower = self._followers.get(sub.log_path)
            if follower is not None:
                follower.subscribers.discard(sub)
                if not follower.subscribers:
                    del self._followers[sub.log_path]

    def _ensure_running(self) -> None:
        if self._kick is None:
            self._kick = asyncio.Event()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="dashboard-hub")

    def _publish(self, message: Message, to: set[Subscription] | None = None) -> None:
        for sub in list(self._subscribers if to is None else to):
            sub.put(message)

    # -- the reading loop ---------------------------------------------------------------

    async def _run(self) -> None:
        assert self._kick is not None
        self._cursor = None
        while self._subscribers and not self.closed:
            try:
                await self._tick()
            except GastownError as exc:
                log.warning("dashboard: reading the town failed: %s", exc.message)
            except Exception:
                log.exception("dashboard: unexpected error while reading the town")
            try:
                await asyncio.wait_for(self._kick.wait(), self.poll_interval)
            except TimeoutError:
                pass
            self._kick.clear()

    async def _tick(self) -> None:
        ctx = self.handle.ctx
        if self._cursor is None:
            cursor = EventCursor(ctx.ledger.connection, backlog=0)
            await asyncio.to_thread(cursor.start)
            self._cursor = cursor
        fresh = await asyncio.to_thread(self._cursor.more)
        self.stats.event_polls += 1
        if fresh:
            self._dirty = True
            self._publish(Message("events", fresh))
        for follower in list(self._followers.values()):
            lines = follower.reader.read_new()
            self.stats.log_reads += 1
            if lines:
                self._publish(Message("log", lines), follower.subscribers)
        age = time.monotonic() - self._taken_at
        if (self._dirty and age >= self.settle) or age >= self.refresh_interval:
            await self._refresh()

    async def _refresh(self) -> None:
        if self._snapshot_lock is None:
            self._snapshot_lock = asyncio.Lock()
        async with self._snapshot_lock:
            self._dirty = False
            self._taken_at = time.monotonic()
            try:
                self.latest = await asyncio.to_thread(self._take_snapshot, self.handle.ctx)
                self.snapshot_error = None
            except GastownError as exc:
                # A passing hiccup (tmux slow, ledger busy): keep showing the last snapshot.
                self.snapshot_error = exc.message
                if self.latest is None:
                    raise
                return
            self.stats.snapshots += 1
            self.version += 1
            self._fragments = {k: v for k, v in self._fragments.items() if k[1] == self.version}
        self._publish(Message("status", self.version))

    # -- what pages ask for -------------------------------------------------------------

    async def snapshot(self, max_age: float = 1.0) -> TownStatus:
        """The current snapshot, retaken first if it is older than ``max_age`` seconds.

        Raises the ``GastownError`` of the first snapshot if none could ever be taken."""
        if self.latest is None or time.monotonic() - self._taken_at > max_age:
            if self._snapshot_lock is not None and self._snapshot_lock.locked():
                async with self._snapshot_lock:
                    pass  # someone else is taking it: share theirs
            else:
                await self._refresh()
        if self.latest is None:
            raise GastownError(self.snapshot_error or "the town could not be read",
                               hint="check `gt status`; the dashboard retries on the next request")
        return self.latest

    async def fragments(self, view: str) -> dict[str, str]:
        """``view``'s fragments for the current version, rendered once for every page."""
        snapshot = await self.snapshot(max_age=self.refresh_interval * 2)
        key = (view, self.version)
        future = self._fragments.get(key)
        if future is None:
            future = self._fragments[key] = asyncio.get_running_loop().create_future()
            try:
                result = await asyncio.to_thread(self.render, view, snapshot)
                self.stats.renders += 1
                future.set_result(result)
            except BaseException as exc:
                self._fragments.pop(key, None)
                future.set_exception(exc)
                future.exception()  # retrieved here, so asyncio does not warn about it
                raise
        return await asyncio.shield(future)

    async def events_after(self, after_id: int) -> list[Event]:
        """Events recorded after ``after_id`` (at most ``CATCH_UP_EVENTS``, the newest):
        a reconnecting page's catch-up, one query for that page alone."""
        ctx = self.handle.ctx

        def read() -> list[Event]:
            newest = list_events(ctx.ledger.connection(), after_id=after_id, limit=CATCH_UP_EVENTS, newest_first=True)
            return newest[::-1]

        return await asyncio.to_thread(read)

    # -- notices and background work ----------------------------------------------------

    def wake(self) -> None:
        """Read the town now rather than at the next poll (after an action changed it)."""
        if self._kick is not None:
            self._kick.set()

    def notify(self, level: str, text: str) -> None:
        """Show ``text`` on every open page (``level``: ok or error).

        Recent notices are kept, numbered, so that a page opened just after (the one a
        POST redirected to) gets those it would have missed: ``notices_after``."""
        self.notice_seq += 1
        notice = (self.notice_seq, level, text)
        self._notices.append(notice)
        self._publish(Message("notice", notice))

    def notices_after(self, seen: int) -> list[tuple[int, str, str]]:
        """The kept notices numbered after ``seen``, oldest first."""
        return [notice for notice in self._notices if notice[0] > seen]

    async def act(self, work: Callable[[], T]) -> T:
        """Run a blocking action (a sling, an ack) on the actions' threads and wait for it."""
        return await asyncio.get_running_loop().run_in_executor(self._actions, work)

    def run_job(self, work: Callable[[], str], *, failed: str) -> None:
        """Run ``work`` in a thread; its result (a sentence) becomes a notice on every page.

        A ``GastownError`` becomes an error notice (``failed`` + its message and hint);
        anything else is logged and reported as an internal error. Never raises."""

        async def job() -> None:
            try:
                text = await self.act(work)
                self.notify("ok", text)
            except GastownError as exc:
                self.notify("error", f"{failed}: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
            except Exception as exc:
                log.exception("dashboard: background job failed")
                self.notify("error", f"{failed}: internal error ({type(exc).__name__}); see the server's log")
            self.wake()

        task = asyncio.get_running_loop().create_task(job())
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def close(self) -> None:
        """End every stream (each gets ``bye``) and stop reading. Idempotent."""
        self.closed = True
        self._actions.shutdown(wait=False)
        self._publish(Message("bye"))
        task = self._task
        if self._kick is not None:
            self._kick.set()
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), 5)
            except TimeoutError:
                task.cancel()
