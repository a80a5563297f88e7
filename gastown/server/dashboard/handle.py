"""The dashboard's hold on one town: a Context whose config follows ``gastown.toml``."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from gastown.context import Context
from gastown.errors import ConfigError
from gastown.town import Town

RECHECK_S = 1.0  # how often the config file's mtime is looked at


class TownHandle:
    """A long-lived ``Context`` for a server: the config is re-read when the file changes.

    An edit that does not validate keeps the last good config in force (as the Mayor
    does) and is reported in ``config_error`` until the file is fixed. Building a handle
    raises ``ConfigError`` when there is no valid config at all.
    """

    def __init__(
        self, root: Path, *, clock: Callable[[], float] = time.time, environ: Mapping[str, str] = os.environ
    ) -> None:
        self._ctx = Context(Town(Path(root).resolve()), clock=clock, environ=environ)
        self._ctx.config  # noqa: B018 - fail now, not on the first page
        self._mtime = self._config_mtime()
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        self.config_error: str | None = None

    @property
    def ctx(self) -> Context:
        now = time.monotonic()
        if now - self._checked >= RECHECK_S:
            with self._lock:
                self._checked = now
                mtime = self._config_mtime()
                if mtime != self._mtime:
                    self._mtime = mtime
                    try:
                        self._ctx.reload_config()
                        self.config_error = None
                    except ConfigError as exc:
                        self.config_error = exc.message
        return self._ctx

    @property
    def root(self) -> Path:
        return self._ctx.town.root

    def _config_mtime(self) -> float:
        try:
            return self._ctx.town.config_path.stat().st_mtime
        except OSError:
            return 0.0
