"""Mail rows: durable messages between agents, the Mayor and the human.

A message is addressed to ``mayor``, ``human`` or ``RIG/POLECAT`` (validated by
``gastown.mail``, not here). It outlives its recipient: an agent that dies and is
restarted still finds it. ``read_at`` is set by `gt mail read`; ``announced_at`` once a
short notice was typed into the recipient's pane. Ids are ``mail-xxxxxx``. Writes belong
inside ``Ledger.write()``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gastown.errors import InvalidInput, NotFound
from gastown.ledger.ids import new_id
from gastown.ledger.issues import check_text
from gastown.ledger.timefmt import iso

MAX_SUBJECT_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Mail:
    id: str
    sender: str
    recipient: str
    subject: str
    body: str
    created_at: float
    read_at: float | None
    announced_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Mail:
        return cls(**{key: row[key] for key in row.keys()})

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.recipient,
            "subject": self.subject,
            "body": self.body,
            "created_at": iso(self.created_at),
            "read": self.read_at is not None,
            "read_at": iso(self.read_at),
            "announced_at": iso(self.announced_at),
        }


def insert_mail(
    conn: sqlite3.Connection, *, sender: str, recipient: str, subject: str, body: str, now: float
) -> Mail:
    """Store one message (unread, unannounced) under a fresh id."""
    check_text("subject", subject, MAX_SUBJECT_BYTES)
    check_text("body", body, MAX_BODY_BYTES)
    if not subject.strip():
        raise InvalidInput("the mail subject is empty", hint='give it one with -s "SUBJECT"')
    for _ in range(50):
        mail_id = new_id("mail")
        try:
            conn.execute(
                "INSERT INTO mail (id, sender, recipient, subject, body, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (mail_id, sender, recipient, subject, body, now),
            )
        except sqlite3.IntegrityError:
            continue
        return get_mail(conn, mail_id)
    raise InvalidInput("could not find a free mail id")


def find_mail(conn: sqlite3.Connection, mail_id: str) -> Mail | None:
    row = conn.execute("SELECT * FROM mail WHERE id = ?", (mail_id,)).fetchone()
    return Mail.from_row(row) if row else None


def get_mail(conn: sqlite3.Connection, mail_id: str) -> Mail:
    mail = find_mail(conn, mail_id)
    if mail is None:
        raise NotFound(f"no mail {mail_id} in this town", hint="list your mail with `gt mail inbox --all`")
    return mail


def list_mail(
    conn: sqlite3.Connection, *, recipient: str | None = None, unread_only: bool = False, limit: int | None = None
) -> list[Mail]:
    """Messages newest first, to one recipient or to anyone."""
    where: list[str] = []
    args: list[Any] = []
    if recipient is not None:
        where.append("recipient = ?")
        args.append(recipient)
    if unread_only:
        where.append("read_at IS NULL")
    sql = "SELECT * FROM mail" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY created_at DESC, rowid DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [Mail.from_row(row) for row in conn.execute(sql, args)]


def count_unread(conn: sqlite3.Connection, recipient: str) -> int:
    row = conn.execute("SELECT COUNT(*) FROM mail WHERE recipient = ? AND read_at IS NULL", (recipient,)).fetchone()
    return int(row[0])


def mark_read(conn: sqlite3.Connection, mail_id: str, *, now: float) -> Mail:
    """Set ``read_at`` the first time; reading again keeps the first time."""
    conn.execute("UPDATE mail SET read_at = ? WHERE id = ? AND read_at IS NULL", (now, mail_id))
    return get_mail(conn, mail_id)


def unannounced(conn: sqlite3.Connection, recipients: Sequence[str]) -> list[Mail]:
    """Unread messages to ``recipients`` not yet announced, oldest first."""
    if not recipients:
        return []
    rows = conn.execute(
        "SELECT * FROM mail WHERE announced_at IS NULL AND read_at IS NULL"
        f" AND recipient IN ({','.join('?' * len(recipients))}) ORDER BY created_at, rowid",
        list(recipients),
    )
    return [Mail.from_row(row) for row in rows]


def mark_announced(conn: sqlite3.Connection, mail_id: str, *, now: float) -> bool:
    """Set ``announced_at`` unless already set; True if this call set it."""
    return conn.execute(
        "UPDATE mail SET announced_at = ? WHERE id = ? AND announced_at IS NULL", (now, mail_id)
    ).rowcount > 0
