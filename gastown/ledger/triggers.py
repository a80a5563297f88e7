"""Triggers: each one's URL token, pause and schedule state; its requests and their history;
the delivery ids that make a repeated delivery a no-op.

- ``triggers``: one row per trigger name, made the first time the trigger is seen, with a
  token of 128 random bits (the credential in its URL), whether it is paused, and the
  last schedule slot fired (a schedule fires a slot only after it).
- ``trigger_requests``: every request recorded (``captured → in_progress → success |
  failed``, ``states.RequestState``), with its payload stored verbatim (headers without
  credentials), its issue, MR and outcome. The last 100 per trigger are kept; requests in
  flight are never pruned.
- ``trigger_deliveries``: ``X-GitHub-Delivery`` / ``Idempotency-Key`` values per trigger
  and the first answer given, kept 30 days (past GitHub's redelivery window).

Row functions take a connection and run inside the caller's ``Ledger.write()``;
``pause``, ``rotate`` take the ``Ledger`` and record an event.
"""

from __future__ import annotations

import hmac
import json
import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gastown.errors import NotFound
from gastown.ledger.events import record_event
from gastown.ledger.ids import new_id
from gastown.ledger.timefmt import iso
from gastown.states import IN_FLIGHT_REQUEST_STATES, RequestState, check_request_transition

if TYPE_CHECKING:
    from gastown.ledger.db import Ledger

KEEP_REQUESTS = 100  # finished requests kept per trigger
KEEP_DELIVERIES_S = 30 * 86400.0
TOKEN_BYTES = 16  # 128 bits


def new_token() -> str:
    """A fresh URL token: 128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True)
class TriggerState:
    name: str
    token: str
    paused: bool
    paused_at: float | None
    created_at: float
    rotated_at: float | None
    last_slot: float

    def token_matches(self, given: str) -> bool:
        """Whether ``given`` is this trigger's token (constant time)."""
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode("utf-8"))


@dataclass(frozen=True)
class Request:
    id: str
    trigger: str
    state: RequestState
    source: str  # webhook | schedule | fire
    issue: str | None
    mr: str | None
    outcome: str | None
    method: str | None
    path: str | None
    query: str | None
    headers: dict[str, str]
    body: str
    source_ip: str | None
    delivery: str | None
    scheduled_for: float | None
    received_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def in_flight(self) -> bool:
        return self.state in IN_FLIGHT_REQUEST_STATES

    def to_json(self, *, payload: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "trigger": self.trigger, "state": str(self.state), "source": self.source,
            "issue": self.issue, "mr": self.mr, "outcome": self.outcome, "delivery": self.delivery,
            "scheduled_for": iso(self.scheduled_for), "received_at": iso(self.received_at),
            "started_at": iso(self.started_at), "finished_at": iso(self.finished_at),
            "body_bytes": len(self.body.encode("utf-8")),
        }
        if payload:
            out.update(method=self.method, path=self.path, query=self.query, headers=dict(self.headers),
                       source_ip=self.source_ip, body=self.body)
        return out


def _state(row: sqlite3.Row) -> TriggerState:
    return TriggerState(
        name=row["name"], token=row["token"], paused=bool(row["paused"]), paused_at=row["paused_at"],
        created_at=row["created_at"], rotated_at=row["rotated_at"], last_slot=row["last_slot"],
    )


def _request(row: sqlite3.Row) -> Request:
    values = {key: row[key] for key in row.keys()}
    values["state"] = RequestState(values["state"])
    values["headers"] = json.loads(values["headers"]) if values["headers"] else {}
    return Request(**values)


# -- trigger rows -----------------------------------------------------------------------


def ensure_trigger(conn: sqlite3.Connection, name: str, *, now: float) -> TriggerState:
    """The trigger's row, made (with a fresh token, and ``now`` as its last schedule slot)
    if this is the first time it is seen. Idempotent."""
    conn.execute(
        "INSERT OR IGNORE INTO triggers (name, token, created_at, last_slot) VALUES (?, ?, ?, ?)",
        (name, new_token(), now, now),
    )
    found = get_trigger(conn, name)
    assert found is not None
    return found


def get_trigger(conn: sqlite3.Connection, name: str) -> TriggerState | None:
    row = conn.execute("SELECT * FROM triggers WHERE name = ?", (name,)).fetchone()
    return _state(row) if row else None


def trigger_states(conn: sqlite3.Connection) -> dict[str, TriggerState]:
    return {row["name"]: _state(row) for row in conn.execute("SELECT * FROM triggers ORDER BY name")}


def set_last_slot(conn: sqlite3.Connection, name: str, slot: float) -> None:
    conn.execute("UPDATE triggers SET last_slot = ? WHERE name = ?", (slot, name))


# -- requests ---------------------------------------------------------------------------


def count_in_flight(conn: sqlite3.Connection, trigger: str) -> int:
    marks = ",".join("?" * len(IN_FLIGHT_REQUEST_STATES))
    row = conn.execute(
        f"SELECT COUNT(*) FROM trigger_requests WHERE trigger = ? AND state IN ({marks})",
        (trigger, *IN_FLIGHT_REQUEST_STATES),
    ).fetchone()
    return int(row[0])


def in_flight_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """``{trigger: requests captured or in progress}`` (triggers with none are absent)."""
    marks = ",".join("?" * len(IN_FLIGHT_REQUEST_STATES))
    rows = conn.execute(
        f"SELECT trigger, COUNT(*) FROM trigger_requests WHERE state IN ({marks}) GROUP BY trigger",
        tuple(IN_FLIGHT_REQUEST_STATES),
    )
    return {row[0]: int(row[1]) for row in rows}


def insert_request(
    conn: sqlite3.Connection,
    *,
    trigger: str,
    source: str,
    now: float,
    issue: str | None,
    method: str | None = None,
    path: str | None = None,
    query: str | None = None,
    headers: Mapping[str, str] | None = None,
    body: str = "",
    source_ip: str | None = None,
    delivery: str | None = None,
    scheduled_for: float | None = None,
) -> Request:
    """Record a captured request (``headers`` must already be free of credentials)."""
    for _ in range(20):
        request_id = new_id("rq", 8)
        try:
            conn.execute(
                "INSERT INTO trigger_requests (id, trigger, state, source, issue, method, path, query, headers, body,"
                " source_ip, delivery, scheduled_for, received_at) VALUES (?, ?, 'captured', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (request_id, trigger, source, issue, method, path, query, json.dumps(dict(headers or {})), body,
                 source_ip, delivery, scheduled_for, now),
            )
        except sqlite3.IntegrityError:
            continue
        return Request(
            id=request_id, trigger=trigger, state=RequestState.CAPTURED, source=source, issue=issue, mr=None,
            outcome=None, method=method, path=path, query=query, headers=dict(headers or {}), body=body,
            source_ip=source_ip, delivery=delivery, scheduled_for=scheduled_for, received_at=now, started_at=None,
            finished_at=None,
        )
    raise RuntimeError("could not find a free request id")  # 20 clashes of 41 random bits: not this universe


def find_request(conn: sqlite3.Connection, request_id: str) -> Request | None:
    row = conn.execute("SELECT * FROM trigger_requests WHERE id = ?", (request_id,)).fetchone()
    return _request(row) if row else None


def get_request(conn: sqlite3.Connection, request_id: str) -> Request:
    found = find_request(conn, request_id)
    if found is None:
        raise NotFound(f"no trigger request {request_id}", hint="see `gt trigger requests NAME`")
    return found


def list_requests(conn: sqlite3.Connection, trigger: str, *, limit: int = KEEP_REQUESTS) -> list[Request]:
    """A trigger's requests, newest first."""
    rows = conn.execute(
        "SELECT * FROM trigger_requests WHERE trigger = ? ORDER BY received_at DESC, rowid DESC LIMIT ?",
        (trigger, limit),
    )
    return [_request(row) for row in rows]


def recent_requests(conn: sqlite3.Connection, *, limit: int = 10) -> list[Request]:
    """The newest requests of every trigger, newest first."""
    rows = conn.execute("SELECT * FROM trigger_requests ORDER BY received_at DESC, rowid DESC LIMIT ?", (limit,))
    return [_request(row) for row in rows]


def requests_in_state(conn: sqlite3.Connection, state: RequestState) -> list[Request]:
    """Requests in ``state``, oldest first."""
    rows = conn.execute(
        "SELECT * FROM trigger_requests WHERE state = ? ORDER BY received_at, rowid", (str(state),)
    )
    return [_request(row) for row in rows]


def move_request(
    conn: sqlite3.Connection, request_id: str, new: RequestState, *, now: float, outcome: str | None = None,
    mr: str | None = None,
) -> Request:
    """Move a request along ``states.REQUEST_TRANSITIONS`` (any other move raises ``Conflict``);
    stamps when it started (in_progress) or finished (success, failed)."""
    current = get_request(conn, request_id)
    check_request_transition(request_id, current.state, new)
    started = now if new == RequestState.IN_PROGRESS else current.started_at
    finished = now if new in (RequestState.SUCCESS, RequestState.FAILED) else current.finished_at
    conn.execute(
        "UPDATE trigger_requests SET state = ?, started_at = ?, finished_at = ?, outcome = COALESCE(?, outcome),"
        " mr = COALESCE(?, mr) WHERE id = ?",
        (str(new), started, finished, outcome, mr, request_id),
    )
    return get_request(conn, request_id)


def set_request_mr(conn: sqlite3.Connection, request_id: str, mr: str) -> None:
    conn.execute("UPDATE trigger_requests SET mr = ? WHERE id = ?", (mr, request_id))


def prune_requests(conn: sqlite3.Connection, trigger: str, *, keep: int = KEEP_REQUESTS) -> int:
    """Delete a trigger's finished requests beyond its newest ``keep``; returns how many."""
    marks = ",".join("?" * len(IN_FLIGHT_REQUEST_STATES))
    cur = conn.execute(
        f"DELETE FROM trigger_requests WHERE trigger = ? AND state NOT IN ({marks}) AND id NOT IN ("
        " SELECT id FROM trigger_requests WHERE trigger = ? ORDER BY received_at DESC, rowid DESC LIMIT ?)",
        (trigger, *IN_FLIGHT_REQUEST_STATES, trigger, keep),
    )
    return cur.rowcount


# -- delivery ids -----------------------------------------------------------------------


def find_delivery(conn: sqlite3.Connection, trigger: str, delivery: str) -> tuple[str, str | None] | None:
    """``(request, issue)`` first recorded for this delivery id of this trigger, if any."""
    row = conn.execute(
        "SELECT request, issue FROM trigger_deliveries WHERE trigger = ? AND delivery = ?", (trigger, delivery)
    ).fetchone()
    return (row["request"], row["issue"]) if row else None


def record_delivery(
    conn: sqlite3.Connection, trigger: str, delivery: str, *, request: str, issue: str | None, now: float
) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO trigger_deliveries (trigger, delivery, request, issue, at) VALUES (?, ?, ?, ?, ?)",
        (trigger, delivery, request, issue, now),
    )


def prune_deliveries(conn: sqlite3.Connection, *, now: float, keep_s: float = KEEP_DELIVERIES_S) -> int:
    return conn.execute("DELETE FROM trigger_deliveries WHERE at < ?", (now - keep_s,)).rowcount


# -- operations -------------------------------------------------------------------------


def pause(ledger: Ledger, name: str, *, paused: bool) -> TriggerState:
    """Pause (requests answer 409, schedules skip their slots) or resume a trigger;
    idempotent, with an event when it changes."""
    with ledger.write() as conn:
        now = ledger.clock()
        state = ensure_trigger(conn, name, now=now)
        if state.paused == paused:
            return state
        conn.execute("UPDATE triggers SET paused = ?, paused_at = ? WHERE name = ?",
                     (int(paused), now if paused else None, name))
        if not paused:
            # Slots that passed while paused are skipped, not fired on resume.
            conn.execute("UPDATE triggers SET last_slot = MAX(last_slot, ?) WHERE name = ?", (now, name))
        record_event(conn, "trigger", f"{name}: {'paused' if paused else 'resumed'}", now=now,
                     data={"trigger": name})
        found = get_trigger(conn, name)
    assert found is not None
    return found


def rotate(ledger: Ledger, name: str) -> TriggerState:
    """Give a trigger a fresh token: its old URL answers 404 from now on."""
    with ledger.write() as conn:
        now = ledger.clock()
        ensure_trigger(conn, name, now=now)
        conn.execute("UPDATE triggers SET token = ?, rotated_at = ? WHERE name = ?", (new_token(), now, name))
        record_event(conn, "trigger", f"{name}: URL token rotated; the old URL no longer works", now=now,
                     data={"trigger": name})
        found = get_trigger(conn, name)
    assert found is not None
    return found
