"""`gt host add/list/remove/check`: machines that run polecats over SSH."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from gastown.cli._common import open_context
from gastown.cli._options import JsonOpt, TownOpt
from gastown.cli._output import print_json, print_table, say
from gastown.errors import ExitCode

if TYPE_CHECKING:
    from gastown.hosts.base import HostCheck

app = typer.Typer(help="Add, list, remove and check the machines that run polecats over SSH.", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Host name: lowercase letters, digits, '-' or '_' (not 'local').")],
    ssh: Annotated[str, typer.Argument(help="Where to log in: user@host or host.")],
    port: Annotated[int | None, typer.Option("--port", help="SSH port (default: 22).")] = None,
    identity_file: Annotated[str | None, typer.Option("--identity-file", help="Private key to log in with.")] = None,
    root: Annotated[str | None, typer.Option("--root", help="Directory for mirrors, worktrees and logs there (default: ~/gastown).")] = None,
    max_polecats: Annotated[int | None, typer.Option("--max-polecats", help="Cap on agents working there at once.")] = None,
    grace: Annotated[str | None, typer.Option("--grace", help="How long it may be unreachable before its work moves (default: 10m).")] = None,
    no_check: Annotated[bool, typer.Option("--no-check", help="Add without connecting (the key is pinned by `gt host check`).")] = False,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Log in once (pinning the host's key), then add the host's table to gastown.toml."""
    from gastown.hosts.admin import add_host

    ctx = open_context(town)
    values = {"ssh": ssh, "port": port, "identity_file": identity_file, "root": root,
              "max_polecats": max_polecats, "grace": grace}
    info, checks = add_host(ctx.town, name, values, contact=not no_check)
    if json_out:
        print_json({"host": info.to_json(), "checks": [c.to_json() for c in checks]})
        return
    say(f"added host {info.name}: {info.ssh}" + ("" if no_check else " (key pinned)"))
    _say_problems(checks)


@app.command("list")
def list_(town: TownOpt = None, json_out: JsonOpt = False) -> None:
    """List the hosts (``local`` first) and the rigs that may use each."""
    from gastown.hosts.admin import list_hosts

    ctx = open_context(town)
    hosts = list_hosts(ctx.config, ctx.town)
    if json_out:
        print_json([h.to_json() for h in hosts])
        return
    print_table(
        ["HOST", "SSH", "MAX", "RIGS", "ROOT"],
        [[h.name, (h.ssh or "-") + (f":{h.port}" if h.port else ""), str(h.max_polecats or "-"),
          ",".join(h.rigs) or "-", h.root] for h in hosts],
    )


@app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="The host to remove.")], town: TownOpt = None) -> None:
    """Remove a host from gastown.toml (refused while a rig lists it) and forget its pinned key."""
    from gastown.hosts.admin import remove_host

    remove_host(open_context(town).town, name)
    say(f"removed host {name}")


@app.command("check")
def check(
    name: Annotated[str | None, typer.Argument(help="One host (default: every SSH host).")] = None,
    town: TownOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check each host: ssh, tmux, git, a matching gt and the rigs' agent CLIs there.

    The first contact pins the host's key; a changed key is refused."""
    from gastown.hosts.admin import check_hosts

    ctx = open_context(town)
    checks = check_hosts(ctx.town, [name] if name else None, pin=True)
    if json_out:
        print_json({"ok": all(c.ok for c in checks), "checks": [c.to_json() for c in checks]})
    elif not checks:
        say("no hosts yet: add one with `gt host add NAME USER@HOST`")
    else:
        for item in checks:
            say(f"[{'ok ' if item.ok else 'FAIL'}] {item.name}: {item.detail}")
            if not item.ok and item.fix:
                say(f"       fix: {item.fix}")
    if not all(c.ok for c in checks):
        raise typer.Exit(int(ExitCode.FAILURE))


def _say_problems(checks: list[HostCheck]) -> None:
    for item in checks:
        if not item.ok:
            say(f"  but {item.name}: {item.detail}" + (f"\n       fix: {item.fix}" if item.fix else ""))
