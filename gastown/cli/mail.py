"""`gt mail send/inbox/read`: durable messages between agents, the Mayor and the human."""

from __future__ import annotations

from typing import Annotated

import typer

from gastown.cli import complete
from gastown.cli._common import JsonOpt, TownOpt, command_group, open_context, read_body
from gastown.cli._output import print_json, print_table, say
from gastown.safetext import one_line

app = command_group("Send and read durable mail (addresses: mayor, human, RIG/POLECAT).")


@app.command("send")
def send(
    to: Annotated[str, typer.Argument(metavar="TO", help="mayor, human, or RIG/POLECAT.", autocompletion=complete.mail_addresses)],
    subject: Annotated[str, typer.Option("--subject", "-s", help="One-line subject.")],
    body: Annotated[
        str | None, typer.Option("--message", "-m", help="The message, or - to read it from standard input.")
    ] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Send a message; a live agent is told of it when next idle."""
    from gastown.ledger import mail

    ctx = open_context(town)
    sent = mail.send(ctx.ledger, to, subject, read_body(body), sender=mail.own_address(ctx.environ), rigs=ctx.settings.rigs)
    if json_out:
        print_json(sent.to_json())
    else:
        say(sent.id)


@app.command("inbox")
def inbox(
    to: Annotated[str | None, typer.Option("--to", help="Whose inbox (default: yours; an agent's own, else human).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include messages already read.")] = False,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List unread messages, newest first."""
    from gastown.ledger import mail
    from gastown.ledger.timefmt import iso

    ctx = open_context(town, last_good=True)
    address, messages = mail.inbox(
        ctx.ledger, to=to, caller=mail.own_address(ctx.environ), rigs=ctx.settings.rigs, include_read=all_
    )
    if json_out:
        print_json([m.to_json() for m in messages])
        return
    print_table(
        ["ID", "STATE", "SENT", "FROM", "SUBJECT"],
        [
            [m.id, "read" if m.read_at else "new", (iso(m.created_at) or "")[:16].replace("T", " "),
             one_line(m.sender, 30), one_line(m.subject, 70)]
            for m in messages
        ],
        empty=f"no {'' if all_ else 'unread '}mail for {address}",
    )


@app.command("read")
def read(
    mail_id: Annotated[str, typer.Argument(metavar="ID", help="Message id, e.g. mail-k3x9q2.")],
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Print a message exactly as sent, and mark it read."""
    from gastown.ledger import mail
    from gastown.ledger.timefmt import iso

    message = mail.read(open_context(town).ledger, mail_id)
    if json_out:
        print_json(message.to_json())
        return
    say(f"{message.id}  from {message.sender}  to {message.recipient}  at {iso(message.created_at)}")
    say(f"subject: {message.subject}")
    if message.body:
        say("")
        say(message.body)
