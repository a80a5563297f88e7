"""Mail: durable messages between agents, the Mayor and the human, and the short notice
that tells a live agent it has some.

Addresses are ``mayor``, ``human`` and ``RIG/POLECAT``. A message is a ledger row, so it
survives its recipient's death; an agent restarted later still finds it in
`gt mail inbox`. New mail to a running agent is *announced*: ``announce_pending`` (called
by the Witness every patrol) types one line into the agent's pane, only while the agent
is idle, and marks the message announced so it is typed once. Mail to ``mayor`` and
``human`` is never typed anywhere; `gt mail inbox` and `gt status` show it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING

from gastown._internal.locks import file_lock
from gastown.context import Context
from gastown.errors import Conflict, DeliveryFailed, GastownError, InvalidInput, NotFound
from gastown.ledger import work
from gastown.ledger.events import record_event
from gastown.ledger.mail import (
    Mail,
    find_mail,
    get_mail,
    insert_mail,
    list_mail,
    mark_announced,
    mark_read,
    unannounced,
)

if TYPE_CHECKING:
    from gastown.runtimes.registry import Runtime

log = logging.getLogger(__name__)

PEOPLE = ("mayor", "human")
ANNOUNCE_IDLE_TIMEOUT = 2.0
SUBJECT_IN_NOTICE = 80


def parse_address(text: str) -> str:
    """The canonical form of a mail address, or ``InvalidInput``. Pure.

    A trailing ``/`` is dropped (``mayor/`` is how the original spells it).

    >>> parse_address("mayor/"), parse_address(" app/rivet ")
    ('mayor', 'app/rivet')
    """
    from gastown.config.schema import NAME_RE

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


def check_address(ctx: Context, text: str) -> str:
    """``parse_address`` plus: the rig exists and the polecat is one the rig has had."""
    address = parse_address(text)
    if address in PEOPLE:
        return address
    rig, polecat = address.split("/")
    if rig not in ctx.settings.rigs:
        known = ", ".join(sorted(ctx.settings.rigs)) or "none yet"
        raise NotFound(f"cannot mail {address}: no rig named {rig!r} (rigs: {known})", hint="see `gt rig list`")
    names = work.polecat_names(ctx.ledger.connection(), rig)
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


def send(ctx: Context, to: str, subject: str, body: str, *, sender: str | None = None) -> Mail:
    """Store a message for ``to`` (validated); the sender defaults to ``own_address``.

    Never types anything: a live recipient hears of it from the next ``announce_pending``.
    """
    recipient = check_address(ctx, to)
    sender = sender or own_address(ctx.environ)
    with ctx.ledger.write() as conn:
        now = ctx.now()
        mail = insert_mail(conn, sender=sender, recipient=recipient, subject=subject, body=body, now=now)
        rig, _, polecat = recipient.partition("/")
        record_event(
            conn, "mail", f"{sender} → {recipient}: {_one_line(subject)}", now=now,
            rig=rig if polecat else None, polecat=polecat or None, data={"mail": mail.id},
        )
    return mail


def inbox(ctx: Context, *, to: str | None = None, include_read: bool = False) -> tuple[str, list[Mail]]:
    """``(address, messages newest first)``; the address is ``to`` or this caller's own."""
    address = check_address(ctx, to) if to is not None else own_address(ctx.environ)
    return address, list_mail(ctx.ledger.connection(), recipient=address, unread_only=not include_read)


def read(ctx: Context, mail_id: str) -> Mail:
    """The message, marked read (the first reading's time is kept)."""
    with ctx.ledger.write() as conn:
        get_mail(conn, mail_id)
        return mark_read(conn, mail_id, now=ctx.now())


def announcement(mail: Mail) -> str:
    """The one line typed into an agent about ``mail``. Pure.

    >>> from gastown.ledger.mail import Mail
    >>> announcement(Mail("mail-1", "human", "app/rivet", "hi\\nthere", "", 0.0, None, None))
    'gastown mail from human: "hi there" — read it with: gt mail read mail-1'
    """
    subject = _one_line(mail.subject, SUBJECT_IN_NOTICE)
    return f'gastown mail from {_one_line(mail.sender, 60)}: "{subject}" — read it with: gt mail read {mail.id}'


def announce_pending(ctx: Context, rig: str, *, idle_timeout: float = ANNOUNCE_IDLE_TIMEOUT) -> int:
    """Announce unread, unannounced mail to the rig's running agents; returns how many.

    An agent that is busy (or whose pane lock is held) is skipped for this call and tried
    again on the next one, so a patrol never waits more than about ``idle_timeout`` per
    agent with pending mail; agents without pending mail cost nothing (no tmux call).
    Safe to call from several processes at once: one holds the rig's announce lock, the
    others return 0. A message read before it could be announced is never announced.
    """
    conn = ctx.ledger.connection()
    running = {
        f"{s.rig}/{s.polecat}": s for s in work.spawns_with_status(conn, ("running",), rig) if s.pane_id
    }
    if not running or not unannounced(conn, list(running)):
        return 0
    with ExitStack() as stack:
        try:
            stack.enter_context(
                file_lock(ctx.town.locks_dir / f"mail-announce-{rig}.lock", timeout=0, what=f"mail announcing in {rig}")
            )
        except Conflict:
            return 0
        return _announce_each(ctx, running, idle_timeout)


def _announce_each(ctx: Context, running: dict[str, work.Spawn], idle_timeout: float) -> int:
    from gastown.runtimes.registry import spawn_runtime
    from gastown.tmux.delivery import deliver

    announced = 0
    skipped: set[str] = set()
    for mail in unannounced(ctx.ledger.connection(), list(running)):
        spawn = running[mail.recipient]
        if spawn.id in skipped:
            continue
        current = find_mail(ctx.ledger.connection(), mail.id)
        if current is None or current.read_at is not None or current.announced_at is not None:
            continue
        pane = spawn.pane_id or ""
        try:
            runtime = spawn_runtime(ctx.config, spawn.rig, spawn.agent)
            if not _looks_idle(ctx, pane, runtime):
                skipped.add(spawn.id)
                continue
            deliver(
                ctx.tmux, pane, announcement(mail), runtime=runtime, locks_dir=ctx.town.locks_dir,
                wait_idle=True, idle_timeout=idle_timeout, lock_timeout=idle_timeout,
                still_wanted=_still_in(ctx, pane, spawn.id),
            )
            note = ""
        except DeliveryFailed as exc:
            if not _typed(exc):
                skipped.add(spawn.id)
                continue
            # The line is on its input line but the Enter was not seen: typing it again would double it.
            note = " (Enter not confirmed)"
        except GastownError as exc:
            log.info("mail: cannot announce %s to %s: %s", mail.id, mail.recipient, exc)
            skipped.add(spawn.id)
            continue
        with ctx.ledger.write() as conn:
            if mark_announced(conn, mail.id, now=ctx.now()):
                announced += 1
                record_event(
                    conn, "mail", f"announced {mail.id} to {mail.recipient}{note}: {_one_line(mail.subject)}",
                    now=ctx.now(), rig=spawn.rig, polecat=spawn.polecat, spawn=spawn.id, issue=spawn.issue,
                    data={"mail": mail.id},
                )
    return announced


def _still_in(ctx: Context, pane: str, spawn_id: str) -> Callable[[], bool]:
    """Re-checked right before typing: the pane still runs this spawn (not a successor)."""
    return lambda: ctx.tmux.display(pane, "#{@gt_spawn}") == spawn_id


def _looks_idle(ctx: Context, pane: str, runtime: Runtime) -> bool:
    """One capture: skip a visibly busy agent at once instead of waiting out the timeout."""
    from gastown.screen import read_screen

    screen = read_screen(ctx.tmux.capture(pane), runtime)
    if runtime.ready_re is not None:
        return screen.idle
    return not screen.busy and screen.dialog_keys is None


def _typed(exc: DeliveryFailed) -> bool:
    # deliver() raises DeliveryFailed both before typing (busy, replaced) and after (Enter not taken).
    return "did not take the input" in exc.message


def _one_line(text: str, limit: int = 120) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
