"""Mail: durable messages between agents, the Mayor and the human.

Addresses are ``mayor``, ``human`` and ``RIG/POLECAT``. A message is a row, so it
outlives its recipient: an agent that dies and is restarted still finds it in
`gt mail inbox`. ``read_at`` is set by `gt mail read`; ``announced_at`` once a one-line
notice was typed into the recipient's pane (``gastown.roles.announcer``, run by the
Witness). Mail to ``mayor`` and ``human`` is never typed anywhere. Ids are
``mail-xxxxxx``.

Row functions take a connection (writes inside ``Ledger.write()``); the operations
``send``, ``inbox`` and ``read`` take the ``Ledger``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gastown.errors import InvalidInput, NotFound
from gastown.ledger.events import record_event
from gastown.ledger.ids import new_id
from gastown.ledger.issues import check_text
from gastown.ledger.timefmt import iso
from gastown.ledger.work import polecat_names
from gastown.names import NAME_RE

if TYPE_CHECKING:
    from gastown.ledger.db import Ledger

PEOPLE = ("mayor", "human")
SUBJECT_IN_NOTICE = 80

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


# -- addresses --------------------------------------------------------------------------


def parse_address(text: str) -> str:
    """The canonical form of a mail address, or ``InvalidInput``. Pure.

    A trailing ``/`` is dropped (``mayor/`` is how the original spells it).

    >>> parse_address("mayor/"), parse_address(" app/rivet ")
    ('mayor', 'app/rivet')
    """
    address = text.strip()
    if address.endswith("/"):
        address = address[:-1]
    if address in PEOPLE:
        return address
    rig, slash, polecat = address.partition("/")
    if slash and NAME_RE.match(rig) and NAME_RE.match(polecat):
        return f"{rig}/{polecat}"
    raise InvalidInput(
        f"{text!r} is not a mail address", hint="send to mayor, human, or an agent as RIG/POLECAT (e.g. app/rivet)"
    )


def check_address(conn: sqlite3.Connection, text: str, *, rigs: Collection[str]) -> str:
    """``parse_address`` plus: the rig is one of ``rigs`` and the polecat one it has had."""
    address = parse_address(text)
    if address in PEOPLE:
        return address
    rig, polecat = address.split("/")
    if rig not in rigs:
        known = ", ".join(sorted(rigs)) or "none yet"
        raise NotFound(f"cannot mail {address}: no rig named {rig!r} (rigs: {known})", hint="see `gt rig list`")
    names = polecat_names(conn, rig)
    if polecat not in names:
        known = ", ".join(names) or "none yet"
        raise NotFound(
            f"cannot mail {address}: rig {rig} has no polecat {polecat!r} (polecats: {known})",
            hint="see `gt polecat list`",
        )
    return address


def own_address(environ: Mapping[str, str]) -> str:
    """Who is running this command: the agent named by its GT_* env, else the human."""
    if environ.get("GT_ROLE") == "polecat" and environ.get("GT_RIG") and environ.get("GT_POLECAT"):
        return f"{environ['GT_RIG']}/{environ['GT_POLECAT']}"
    return "human"


# -- operations -------------------------------------------------------------------------


def send(ledger: Ledger, to: str, subject: str, body: str, *, sender: str, rigs: Collection[str]) -> Mail:
    """Store a message for ``to`` (validated against ``rigs`` and their polecats), with an event.

    Never types anything: a live recipient hears of it from the Witness's announcer.
    """
    with ledger.write() as conn:
        recipient = check_address(conn, to, rigs=rigs)
        now = ledger.clock()
        mail = insert_mail(conn, sender=sender, recipient=recipient, subject=subject, body=body, now=now)
        rig, _, polecat = recipient.partition("/")
        record_event(
            conn, "mail", f"{sender} → {recipient}: {one_line(subject)}", now=now,
            rig=rig if polecat else None, polecat=polecat or None, data={"mail": mail.id},
        )
    return mail


def inbox(
    ledger: Ledger, *, to: str | None, caller: str, rigs: Collection[str], include_read: bool = False
) -> tuple[str, list[Mail]]:
    """``(address, messages newest first)``: the inbox of ``to`` (checked), else the caller's."""
    conn = ledger.connection()
    address = check_address(conn, to, rigs=rigs) if to is not None else caller
    return address, list_mail(conn, recipient=address, unread_only=not include_read)


def read(ledger: Ledger, mail_id: str) -> Mail:
    """The message, marked read (the first reading's time is kept)."""
    with ledger.write() as conn:
        get_mail(conn, mail_id)
        return mark_read(conn, mail_id, now=ledger.clock())


def announcement(mail: Mail) -> str:
    """The one line typed into an agent about ``mail``. Pure.

    >>> announcement(Mail("mail-1", "human", "app/rivet", "hi\\nthere", "", 0.0, None, None))
    'gastown mail from human: "hi there" — read it with: gt mail read mail-1'
    """
    subject = one_line(mail.subject, SUBJECT_IN_NOTICE)
    return f'gastown mail from {one_line(mail.sender, 60)}: "{subject}" — read it with: gt mail read {mail.id}'


def one_line(text: str, limit: int = 120) -> str:
    """Whitespace folded to single spaces, cut with an ellipsis at ``limit``. Pure."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
