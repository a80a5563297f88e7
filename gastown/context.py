"""One ``Context`` per command or Mayor: the town, its config, its ledger, a clock, the env.

Roles take a Context instead of reaching for globals, so tests can hand them a fake
clock or environment.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from gastown.errors import ConfigError
from gastown.town import Town

if TYPE_CHECKING:
    from gastown.config.schema import TownConfig
    from gastown.config.settings import Settings
    from gastown.hosts.base import HostDriver
    from gastown.ledger.db import Ledger
    from gastown.tmux.driver import Tmux


@dataclass
class Context:
    """``last_good``: when gastown.toml does not validate, run on the last one that did
    (``config_error`` then holds why the file on disk was refused). For the commands that
    only read or stop, and the Mayor and its helpers; every other command refuses."""

    town: Town
    clock: Callable[[], float] = time.time
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    last_good: bool = False
    config_error: ConfigError | None = None

    @cached_property
    def config(self) -> TownConfig:
        """The full validated config (imports pydantic on first use)."""
        try:
            return self.town.config()
        except ConfigError as exc:
            good = self.town.last_good_config() if self.last_good else None
            if good is None:
                raise
            self.config_error = exc
            return good

    @cached_property
    def settings(self) -> Settings:
        """The config as plain data for reading (no pydantic when gastown.toml is unchanged
        since it last validated). Follows ``config`` once that is loaded or reloaded."""
        if "config" in self.__dict__:
            from gastown.config.settings import Settings

            return Settings.from_config(self.__dict__["config"])
        try:
            return self.town.settings()
        except ConfigError as exc:
            good = self.town.last_good_settings() if self.last_good else None
            if good is None:
                raise
            self.config_error = exc
            return good

    @cached_property
    def ledger(self) -> Ledger:
        from gastown.ledger.db import Ledger

        return Ledger(self.town.ledger_path, clock=self.clock)

    @cached_property
    def tmux(self) -> Tmux:
        """The town's own tmux server (its socket; never the user's default one)."""
        from gastown.tmux.driver import Tmux

        return Tmux(self.town.tmux_socket, conf_path=self.town.state_dir / "tmux.conf")

    @cached_property
    def _hosts(self) -> dict[str, HostDriver]:
        return {}

    def host(self, name: str) -> HostDriver:
        """The driver of host ``name`` (``local``: this machine, on ``tmux``), one per
        Context, so an SSH host's connection and its prepared state are shared."""
        driver = self._hosts.get(name)
        if driver is None:
            from gastown.hosts import open_host

            driver = self._hosts[name] = open_host(self.town, name, tmux=self.tmux)
        return driver

    def tmux_on(self, host: str) -> Tmux:
        """The tmux server agents on ``host`` run in (``tmux`` for this machine)."""
        from gastown.hosts import LOCAL

        return self.tmux if host == LOCAL else self.host(host).tmux

    def now(self) -> float:
        return self.clock()

    def reload_config(self) -> TownConfig:
        """Re-read gastown.toml (raises ``ConfigError`` and keeps the old one if invalid)."""
        fresh = self.town.config()
        self.__dict__["config"] = fresh
        self.__dict__.pop("settings", None)
        self.config_error = None
        return fresh
