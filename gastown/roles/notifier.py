"""The notifier loop: deliver ``[[notify]]`` events from the event log, thinly.

Runs in the Mayor on its own thread, so a slow or hanging notifier never holds up the
patrol that raised the event (patrols only write events). Each cycle, every notifier
gets the events after its cursor (``ledger.notifications``) that it listens for;
notifiers are served side by side, so one that hangs does not delay the others.

- ``command``: run (argv, never a shell) with the event as JSON on stdin; killed with
  its process group after ``timeout``; a non-zero exit is a failure.
- ``url``: a JSON POST through httpx, up to three tries (back-off 0.5 s, 1 s) when there is
  no answer, a 429 or a 5xx; any other answer outside 2xx fails at once.

A failed event is not retried later (the cursor moves on): a notifier that fails is
reported once (an event and an escalation, cause ``notify:<key>``) and, when it delivers
again, once more (the escalation resolves). The cursor moves after each delivery, so a
Mayor killed mid-delivery sends that one event again at worst.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gastown._internal.log import logger
from gastown.config.schema import NotifyConfig
from gastown.context import Context
from gastown.errors import GastownError
from gastown.ledger import notifications
from gastown.ledger.escalations import cause_notifier, record_escalation, resolve_cause
from gastown.ledger.events import Event, last_event_id, list_events, record_event
from gastown.roles import notify_policy as policy

if TYPE_CHECKING:
    import httpx

log = logger(__name__)

BATCH = 100  # events read per notifier per cycle (a long backlog catches up over cycles)
URL_TRIES = 3
URL_BACKOFF = (0.5, 1.0)


class NotifyFailed(GastownError):
    """A notifier could not deliver an event."""


@dataclass
class Notifier:
    """Delivers notifications for one town. ``transport`` and ``sleep`` are for tests
    (an ``httpx`` transport, a clock that does not wait)."""

    ctx: Context
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    delivered: list[tuple[str, int]] = field(default_factory=list)  # (notifier key, event id), for tests

    def run_once(self) -> int:
        """One cycle over every configured notifier; returns how many events were delivered."""
        configs = list(self.ctx.config.notify)
        if not configs:
            return 0
        if len(configs) == 1:
            return self._serve(configs[0])
        with ThreadPoolExecutor(max_workers=min(8, len(configs)), thread_name_prefix="notify") as pool:
            return sum(pool.map(self._serve, configs))

    def _serve(self, config: NotifyConfig) -> int:
        key, label = policy.notifier_key(config), policy.notifier_label(config)
        with self.ctx.ledger.write() as conn:
            cursor = notifications.start_cursor(conn, key, last_event=last_event_id(conn), now=self.ctx.now())
        events = list_events(self.ctx.ledger.connection(), after_id=cursor.last_event, kinds=policy.EVENT_KINDS,
                             limit=BATCH)
        sent = 0
        for event in events:
            kind = policy.notify_kind(event)
            if kind is not None and kind in config.on:
                try:
                    self.deliver(config, event, kind)
                except NotifyFailed as exc:
                    self._failing(key, label, str(exc))
                else:
                    sent += 1
                    self.delivered.append((key, event.id))
                    self._working(key, label)
            with self.ctx.ledger.write() as conn:
                notifications.advance(conn, key, last_event=event.id, now=self.ctx.now())
        return sent

    # -- delivery ---------------------------------------------------------------------------

    def deliver(self, config: NotifyConfig, event: Event, kind: str) -> None:
        """Send one event; raises ``NotifyFailed`` saying why (never naming a URL's path)."""
        town = self.ctx.config.town.name or self.ctx.town.root.name
        document = json.dumps(policy.payload(event, kind, town), ensure_ascii=False)
        if config.command is not None:
            self._run_command(config, document)
        else:
            self._post(config, document)

    def _run_command(self, config: NotifyConfig, document: str) -> None:
        from gastown._internal.proc import run

        assert config.command is not None
        try:
            result = run(config.command, input=document, timeout=config.timeout, new_session=True,
                         env={**self.ctx.environ, "GT_TOWN": str(self.ctx.town.root)})
        except GastownError as exc:  # the program is missing
            raise NotifyFailed(exc.message) from None
        if result.timed_out:
            raise NotifyFailed(f"timed out after {config.timeout:g}s and was stopped")
        if not result.ok:
            last = result.output.splitlines()[-1] if result.output else ""
            raise NotifyFailed(f"exited with status {result.returncode}" + (f": {last[:200]}" if last else ""))

    def _post(self, config: NotifyConfig, document: str) -> None:
        import httpx

        assert config.url is not None
        problem = ""
        with httpx.Client(timeout=config.timeout, transport=self.transport, follow_redirects=False) as client:
            for attempt in range(URL_TRIES):
                status: int | None = None
                try:
                    answer = client.post(config.url, content=document.encode("utf-8"),
                                         headers={"content-type": "application/json", "user-agent": "gastown-notify"})
                    status = answer.status_code
                    if 200 <= status < 300:
                        return
                    problem = f"answered HTTP {status}"
                except httpx.TimeoutException:
                    problem = f"did not answer within {config.timeout:g}s"
                except httpx.HTTPError as exc:
                    problem = f"could not be reached ({type(exc).__name__})"  # the message may hold the URL
                if not policy.should_retry(status) or attempt == URL_TRIES - 1:
                    break
                self.sleep(URL_BACKOFF[min(attempt, len(URL_BACKOFF) - 1)])
        raise NotifyFailed(problem)

    # -- reporting --------------------------------------------------------------------------

    def _failing(self, key: str, label: str, problem: str) -> None:
        log.warning("notifier %s failed: %s", label, problem)
        with self.ctx.ledger.write() as conn:
            now = self.ctx.now()
            if not notifications.set_failing(conn, key, error=problem, now=now):
                return  # already reported
            record_event(conn, "notify", f"notifier {label} failed: {problem}", now=now,
                         data={"notifier": label, "failed": problem})
            record_escalation(conn, f"notifier {label} fails: {problem}; its events are not delivered",
                              now=now, severity="medium", source="notifier", cause=cause_notifier(key))

    def _working(self, key: str, label: str) -> None:
        with self.ctx.ledger.write() as conn:
            now = self.ctx.now()
            if notifications.set_failing(conn, key, error=None, now=now):
                record_event(conn, "notify", f"notifier {label} delivers again", now=now, data={"notifier": label})
                resolve_cause(conn, cause_notifier(key), resolution=f"notifier {label} delivers again", now=now)

