"""`gt host add/list/remove/check`: the town's hosts in gastown.toml, and what each lacks.

Adding a host contacts it first (pinning its key into ``.gastown/ssh/known_hosts``) and
only then writes ``[hosts.<name>]``, so a typo in an address never lands in the config.
Removing one refuses while a rig still lists it, stops its master connection and
forgets its pinned key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gastown._internal.locks import file_lock
from gastown._internal.proc import run
from gastown.config.edit import add_table, remove_table, rewrite_config
from gastown.config.load import parse_config
from gastown.errors import Conflict, GastownError, HostError, InvalidInput, NotFound
from gastown.hosts import LOCAL, open_host
from gastown.hosts.base import HostCheck
from gastown.names import NAME_RE

if TYPE_CHECKING:
    from gastown.config.schema import TownConfig
    from gastown.town import Town


@dataclass(frozen=True)
class HostInfo:
    name: str
    ssh: str | None
    port: int | None
    root: str
    max_polecats: int | None
    grace: float | None
    rigs: list[str]

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def list_hosts(config: TownConfig, town: Town) -> list[HostInfo]:
    """``local`` first, then every ``[hosts.*]``, each with the rigs that may use it."""
    rows = [HostInfo(LOCAL, None, None, str(town.root), None, None, config.rigs_using_host(LOCAL))]
    for name, cfg in sorted(config.hosts.items()):
        rows.append(HostInfo(name, cfg.ssh, cfg.port, cfg.root, cfg.max_polecats, cfg.grace, config.rigs_using_host(name)))
    return rows


def agents_for(config: TownConfig, host: str) -> dict[str, str]:
    """The runtimes the rigs using ``host`` run, with their programs (runtime -> program)."""
    from gastown.runtimes.registry import resolve_runtime

    wanted = {}
    for rig in config.rigs_using_host(host):
        name = config.rigs[rig].agent or config.town.default_agent
        try:
            wanted[name] = resolve_runtime(config, name).command[0]
        except GastownError:
            continue  # an unknown runtime is the doctor's config problem, not the host's
    return wanted


def check_hosts(town: Town, names: list[str] | None = None, *, pin: bool) -> list[HostCheck]:
    """Every check of the named hosts (default: all SSH hosts). ``pin`` lets the first
    contact pin a host's key (`gt host check`); `gt doctor` only looks."""
    config = town.config()
    chosen = names if names is not None else sorted(config.hosts)
    checks: list[HostCheck] = []
    for name in chosen:
        if name != LOCAL and name not in config.hosts:
            raise NotFound(f"no host named {name!r} in this town", hint="see `gt host list`")
        driver = open_host(town, name)
        checks += driver.check(agents=agents_for(config, name), pin=pin)
    return checks


def add_host(town: Town, name: str, values: Mapping[str, Any], *, contact: bool = True) -> tuple[HostInfo, list[HostCheck]]:
    """Validate ``[hosts.<name>]``, contact the host (pinning its key), then write it.

    Raises ``HostError``/``HostUnreachable``/``HostKeyRejected`` (nothing written) when
    the host cannot be logged into; a host that lacks tools is added, its problems
    returned. ``contact=False`` writes without connecting (the key is pinned later).
    """
    if not NAME_RE.match(name) or name == LOCAL:
        raise InvalidInput(f"{name!r} is not a valid host name",
                           hint=f"use lowercase letters, digits, '-' and '_' (at most 40), and not {LOCAL!r}")
    with file_lock(town.locks_dir / "config.lock", what="the town config"):
        config = town.config()
        if name in config.hosts:
            raise Conflict(f"the town already has a host named {name!r}", hint=f"`gt host remove {name}` it first")
        text = town.config_path.read_text(encoding="utf-8")
        new_text = add_table(text, "hosts", name, dict(values))
        new_config = parse_config(new_text, source=town.config_path)  # a bad value fails here, by key path
        checks: list[HostCheck] = []
        if contact:
            from gastown.hosts.ssh import SshHost

            driver = SshHost.for_config(name, new_config.hosts[name], town)
            checks = driver.check(agents=agents_for(new_config, name), pin=True)
            reach = checks[0]
            if not reach.ok:
                raise HostError(f"{reach.detail}; host {name} was not added", host=name, hint=reach.fix)
        rewrite_config(town.config_path, new_text)
    info = next(h for h in list_hosts(new_config, town) if h.name == name)
    return info, checks


def remove_host(town: Town, name: str) -> None:
    """Drop ``[hosts.<name>]``; refuses while a rig lists it (its agents would be orphaned)."""
    with file_lock(town.locks_dir / "config.lock", what="the town config"):
        config = town.config()
        if name not in config.hosts:
            raise NotFound(f"no host named {name!r} in this town", hint="see `gt host list`")
        users = config.rigs_using_host(name)
        if users:
            keys = ", ".join(f"rigs.{rig}.hosts" for rig in users)
            raise Conflict(f"host {name!r} is still used by {keys}", hint=f"take {name!r} out of those lists first")
        from gastown.hosts.ssh import SshHost

        driver = SshHost.for_config(name, config.hosts[name], town)
        text = town.config_path.read_text(encoding="utf-8")
        rewrite_config(town.config_path, remove_table(text, "hosts", name))
    driver.close()
    forget_key(driver.ssh.files.known_hosts, config.hosts[name].ssh, config.hosts[name].port)


def forget_key(known_hosts: Any, destination: str, port: int | None) -> None:
    """Remove a host's pinned key (a host re-added under that name is pinned afresh)."""
    host = destination.rpartition("@")[2]
    entry = f"[{host.strip('[]')}]:{port}" if port and port != 22 else host
    if known_hosts.exists():
        run(["ssh-keygen", "-q", "-R", entry, "-f", str(known_hosts)], timeout=10)
        known_hosts.with_name(known_hosts.name + ".old").unlink(missing_ok=True)
