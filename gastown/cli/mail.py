"""`gt mail send/inbox/read`: durable messages between agents, the Mayor and the human."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from gastown.cli import complete
from gastown.cli._common import chosen_town, open_context, read_body
from gastown.cli._options import JsonOpt, TownOpt, command_group
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
    if _remote(town):
        from gastown.hosts.hub_client import remote_mail_send

        doc = remote_mail_send(os.environ, to, subject, read_body(body))
    else:
        from gastown.ledger import mail

        ctx = open_context(town)
        doc = mail.send(ctx.ledger, to, subject, read_body(body), sender=mail.own_address(ctx.environ),
                        rigs=ctx.settings.rigs).to_json()
    if json_out:
        print_json(doc)
    else:
        say(doc["id"])


def _remote(town: Path | None) -> bool:
    """An agent on another host: its mail goes through the hub's server."""
    from gastown.hosts.hub_client import is_remote_agent

    return chosen_town(town) is None and is_remote_agent(os.environ)


@app.command("inbox")
def inbox(
    to: Annotated[str | None, typer.Option("--to", help="Whose inbox (default: yours; an agent's own, else human).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include messages already read.")] = False,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List unread messages, newest first."""
    if _remote(town):
        from gastown.errors import InvalidInput
        from gastown.hosts.hub_client import remote_mail_inbox

        if to is not None:
            raise InvalidInput("an agent on another host reads only its own inbox", hint="drop --to")
        address, docs = remote_mail_inbox(os.environ, include_read=all_)
    else:
        from gastown.ledger import mail

        ctx = open_context(town, last_good=True)
        address, messages = mail.inbox(
            ctx.ledger, to=to, caller=mail.own_address(ctx.environ), rigs=ctx.settings.rigs, include_read=all_
        )
        docs = [m.to_json() for m in messages]
    if json_out:
        print_json(docs)
        return
    print_table(
        ["ID", "STATE", "SENT", "FROM", "SUBJECT"],
        [
            [m["id"], "read" if m["read"] else "new", (m["created_at"] or "")[:16].replace("T", " "),
             one_line(m["from"], 30), one_line(m["subject"], 70)]
            for m in docs
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
    if _remote(town):
        from gastown.hosts.hub_client import remote_mail_read

        doc = remote_mail_read(os.environ, mail_id)
    else:
        from gastown.ledger import mail

        doc = mail.read(open_context(town).ledger, mail_id).to_json()
    if json_out:
        print_json(doc)
        return
    say(f"{doc['id']}  from {doc['from']}  to {doc['to']}  at {doc['created_at']}")
    say(f"subject: {doc['subject']}")
    if doc["body"]:
        say("")
        say(doc["body"])
