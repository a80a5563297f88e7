"""Hosts: the machines that run polecats, behind one driver interface (``base.py``).

``open_host(town, name)`` gives the driver for ``local`` or a ``[hosts.<name>]`` table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gastown.errors import NotFound

if TYPE_CHECKING:
    from gastown.hosts.base import HostDriver
    from gastown.tmux.driver import Tmux
    from gastown.town import Town

LOCAL = "local"


def open_host(town: Town, name: str, *, tmux: Tmux | None = None) -> HostDriver:
    """The driver for host ``name`` (``local`` uses ``tmux``, the town's own server)."""
    if name == LOCAL:
        from gastown.hosts.local import LocalHost
        from gastown.tmux.driver import Tmux

        return LocalHost(town, tmux or Tmux(town.tmux_socket, conf_path=town.state_dir / "tmux.conf"))
    if name not in town.config().hosts:
        raise NotFound(f"no host named {name!r} in this town", hint="see `gt host list`")
    from gastown.hosts.ssh import SshHost

    return SshHost.from_config(name, town)
