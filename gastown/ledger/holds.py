"""Holds: what stops dispatch, restarts or a merge queue, and until when.

A hold is keyed by a typed ``HoldScope``; its stored form is built and parsed here
and nowhere else, so no two scopes can collide (a rig named ``town`` has the budget
scope ``budget:rig:town``, never the town's ``budget:town``):

=====================  =============================================================
``runtime:<name>``     a rate-limited runtime: queued slings for it wait (Witness)
``budget:town``        the town's daily budget is spent: no new agents start
``budget:rig:<rig>``   one rig's daily budget is spent
``refinery:<rig>``     a rig's merge queue is held (a broken base, repeated errors)
``pause:polecats``     `gt down --polecats`: no restarts or resumes until `gt up`
=====================  =============================================================

A hold with ``until`` expires by itself at that time; one without lasts until released.
Row functions take a connection; writes belong inside ``Ledger.write()``.
"""

from __future__ import annotations

import enum
import sqlite3
from dataclasses import dataclass
from typing import Any

from gastown.ledger.timefmt import iso


class HoldKind(enum.StrEnum):
    RUNTIME = "runtime"
    BUDGET = "budget"
    REFINERY = "refinery"
    PAUSE = "pause"


@dataclass(frozen=True)
class HoldScope:
    """What a hold holds. Make one with the constructors; ``str()`` is the stored form.

    >>> str(HoldScope.rig_budget("town")), str(HoldScope.town_budget())
    ('budget:rig:town', 'budget:town')
    >>> HoldScope.parse("budget:rig:town") == HoldScope.rig_budget("town")
    True
    >>> HoldScope.parse("runtime:claude").subject
    'claude'
    """

    kind: HoldKind
    subject: str | None = None  # runtime or rig name; None for the town budget and the pause

    @classmethod
    def runtime(cls, name: str) -> HoldScope:
        return cls(HoldKind.RUNTIME, _named(name))

    @classmethod
    def town_budget(cls) -> HoldScope:
        return cls(HoldKind.BUDGET, None)

    @classmethod
    def rig_budget(cls, rig: str) -> HoldScope:
        return cls(HoldKind.BUDGET, _named(rig))

    @classmethod
    def refinery(cls, rig: str) -> HoldScope:
        return cls(HoldKind.REFINERY, _named(rig))

    @classmethod
    def pause(cls) -> HoldScope:
        return cls(HoldKind.PAUSE, None)

    @classmethod
    def parse(cls, text: str) -> HoldScope:
        """The scope stored as ``text``; ``ValueError`` for a form this module never writes."""
        head, _, rest = text.partition(":")
        if head == HoldKind.RUNTIME and rest:
            return cls.runtime(rest)
        if head == HoldKind.REFINERY and rest:
            return cls.refinery(rest)
        if head == HoldKind.BUDGET:
            if rest == "town":
                return cls.town_budget()
            tag, _, rig = rest.partition(":")
            if tag == "rig" and rig:
                return cls.rig_budget(rig)
        if head == HoldKind.PAUSE and rest == "polecats":
            return cls.pause()
        raise ValueError(f"unknown hold scope {text!r}")

    @property
    def rig(self) -> str | None:
        """The rig this scope is about (refinery and rig budgets), else None."""
        return self.subject if self.kind in (HoldKind.REFINERY, HoldKind.BUDGET) else None

    def __str__(self) -> str:
        if self.kind == HoldKind.BUDGET:
            return "budget:town" if self.subject is None else f"budget:rig:{self.subject}"
        if self.kind == HoldKind.PAUSE:
            return "pause:polecats"
        return f"{self.kind}:{self.subject}"


def _named(name: str) -> str:
    if not name or ":" in name:
        raise ValueError(f"{name!r} cannot name a hold scope")
    return name


@dataclass(frozen=True)
class Hold:
    scope: HoldScope
    reason: str
    created_at: float
    until: float | None

    def active(self, now: float) -> bool:
        return self.until is None or self.until > now

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "since": iso(self.created_at), "until": iso(self.until)}


def _hold(row: sqlite3.Row) -> Hold | None:
    try:
        scope = HoldScope.parse(row["scope"])
    except ValueError:
        return None  # a form no gastown writes: ignore rather than fail a listing
    return Hold(scope=scope, reason=row["reason"], created_at=row["created_at"], until=row["until"])


def get_hold(conn: sqlite3.Connection, scope: HoldScope) -> Hold | None:
    row = conn.execute("SELECT * FROM holds WHERE scope = ?", (str(scope),)).fetchone()
    return _hold(row) if row else None


def is_held(conn: sqlite3.Connection, scope: HoldScope, now: float) -> bool:
    """Whether ``scope`` is held right now (a hold past its ``until`` no longer counts)."""
    hold = get_hold(conn, scope)
    return hold is not None and hold.active(now)


def list_holds(conn: sqlite3.Connection, kind: HoldKind | None = None) -> list[Hold]:
    """Every hold (of one kind), ordered by scope."""
    if kind is None:
        rows = conn.execute("SELECT * FROM holds ORDER BY scope")
    else:
        rows = conn.execute("SELECT * FROM holds WHERE scope LIKE ? ORDER BY scope", (f"{kind}:%",))
    return [h for h in map(_hold, rows) if h is not None]


def place_hold(
    conn: sqlite3.Connection, scope: HoldScope, *, reason: str, now: float, until: float | None = None,
    replace: bool = True,
) -> bool:
    """Hold ``scope``. ``replace=False`` keeps an existing hold as it is (its reason and
    expiry win); returns whether a row was written."""
    if replace:
        conn.execute(
            "INSERT INTO holds (scope, until, reason, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (scope) DO UPDATE SET until = excluded.until, reason = excluded.reason,"
            " created_at = excluded.created_at",
            (str(scope), until, reason, now),
        )
        return True
    cur = conn.execute(
        "INSERT OR IGNORE INTO holds (scope, until, reason, created_at) VALUES (?, ?, ?, ?)",
        (str(scope), until, reason, now),
    )
    return cur.rowcount > 0


def release_hold(conn: sqlite3.Connection, scope: HoldScope, *, expired_by: float | None = None) -> bool:
    """Remove the hold; with ``expired_by``, only if it has an ``until`` at or before that
    time. Returns whether a hold was removed."""
    if expired_by is None:
        return conn.execute("DELETE FROM holds WHERE scope = ?", (str(scope),)).rowcount > 0
    return conn.execute(
        "DELETE FROM holds WHERE scope = ? AND until IS NOT NULL AND until <= ?", (str(scope), expired_by)
    ).rowcount > 0
