"""A town on disk: where it is, and where each of its parts lives.

Layout (see docs/architecture.md)::

    <town>/gastown.toml                                  the config users edit
    <town>/.gastown/ledger.db                            SQLite ledger (WAL)
    <town>/.gastown/logs/<rig>/<polecat>/<spawn>.log     full pane output
    <town>/.gastown/prompts/<spawn>.md                   the prompt each spawn got
    <town>/<rig>/hub.git                                 bare clone of the rig's upstream
    <town>/<rig>/refinery                                the refinery's worktree
    <town>/<rig>/polecats/<name>                         one worktree per polecat
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from gastown.errors import TownNotFound

if TYPE_CHECKING:
    from gastown.config.schema import TownConfig
    from gastown.config.settings import Settings

CONFIG_NAME = "gastown.toml"
STATE_DIR = ".gastown"


@dataclass(frozen=True)
class Town:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.db"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def prompts_dir(self) -> Path:
        return self.state_dir / "prompts"

    @property
    def locks_dir(self) -> Path:
        return self.state_dir / "locks"

    @property
    def bin_dir(self) -> Path:
        return self.state_dir / "bin"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def config_cache_path(self) -> Path:
        """The settings of the last gastown.toml that validated (``gastown.config.cache``)."""
        return self.run_dir / "config.json"

    def rig_dir(self, rig: str) -> Path:
        return self.root / rig

    def hub_path(self, rig: str) -> Path:
        return self.rig_dir(rig) / "hub.git"

    def refinery_path(self, rig: str) -> Path:
        return self.rig_dir(rig) / "refinery"

    def polecats_dir(self, rig: str) -> Path:
        return self.rig_dir(rig) / "polecats"

    def polecat_path(self, rig: str, name: str) -> Path:
        return self.polecats_dir(rig) / name

    def spawn_log_path(self, rig: str, polecat: str, spawn: str) -> Path:
        return self.logs_dir / rig / polecat / f"{spawn}.log"

    def prompt_path(self, spawn: str) -> Path:
        return self.prompts_dir / f"{spawn}.md"

    @property
    def socket_record_path(self) -> Path:
        """The tmux socket `gt up` started the town on; kept until `gt down` ends that server."""
        return self.state_dir / "tmux-socket"

    @cached_property
    def tmux_socket(self) -> str:
        """The town's own tmux socket name: the one `gt up` recorded while its server runs,
        else ``GT_TMUX_SOCKET``, else one derived from the path. A running town keeps its
        socket whatever a later shell exports (``socket_disagreement`` says so)."""
        return self.recorded_tmux_socket() or os.environ.get("GT_TMUX_SOCKET") or socket_name_for(self.root)

    def recorded_tmux_socket(self) -> str | None:
        try:
            name = self.socket_record_path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
        return name if SOCKET_NAME_RE.match(name) else None

    def record_tmux_socket(self, name: str) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.socket_record_path.write_text(name + "\n", encoding="utf-8")
        self.__dict__.pop("tmux_socket", None)

    def forget_tmux_socket(self) -> None:
        self.socket_record_path.unlink(missing_ok=True)
        self.__dict__.pop("tmux_socket", None)

    def socket_disagreement(self, environ: Mapping[str, str] = os.environ) -> str | None:
        """One sentence when ``GT_TMUX_SOCKET`` names another socket than the town's running one."""
        wanted, recorded = environ.get("GT_TMUX_SOCKET"), self.recorded_tmux_socket()
        if not wanted or not recorded or wanted == recorded:
            return None
        return (f"GT_TMUX_SOCKET is {wanted!r}, but this town runs on tmux socket {recorded!r} (since `gt up`); "
                f"using {recorded!r} (unset GT_TMUX_SOCKET, or `gt down` first to move the town)")

    def config(self) -> TownConfig:
        """gastown.toml validated (pydantic); raises ``ConfigError``. Refreshes the settings cache."""
        from gastown.config.load import load_config

        return load_config(self.config_path, cache_path=self.config_cache_path)

    def last_good_config(self) -> TownConfig | None:
        """The last gastown.toml that validated (``config.cache``), or None."""
        from gastown.config.load import load_last_good

        return load_last_good(self.config_cache_path)

    def last_good_settings(self) -> Settings | None:
        """The settings of the last gastown.toml that validated, or None."""
        from gastown.config.cache import last_good

        return last_good(self.config_cache_path)

    def settings(self) -> Settings:
        """What reading commands need of gastown.toml, validated only if the file changed
        since it last validated; raises ``ConfigError`` like ``config()``."""
        from gastown.config.load import load_settings

        return load_settings(self.config_path, cache_path=self.config_cache_path)


SOCKET_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def socket_name_for(root: Path) -> str:
    """``gt-<basename>-<6 hex of the path's sha256>``: stable per town, never the default socket.

    >>> socket_name_for(Path("/home/me/My Town"))[:11]
    'gt-my-town-'
    """
    base = re.sub(r"[^a-z0-9]+", "-", root.name.lower()).strip("-")[:24] or "town"
    digest = sha256_hex(str(root).encode("utf-8", "surrogateescape"))[:6]
    return f"gt-{base}-{digest}"


def sha256_hex(*parts: bytes) -> str:
    """The sha256 of ``parts`` (concatenated), as hex.

    Uses CPython's built-in sha256 when there is one: ``import hashlib`` loads OpenSSL,
    a few milliseconds of every command's start-up.

    >>> sha256_hex(b"gas", b"town") == __import__("hashlib").sha256(b"gastown").hexdigest()
    True
    """
    try:
        from _sha256 import sha256  # CPython <= 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # CPython >= 3.12
        except ImportError:
            from hashlib import sha256
    digest = sha256()
    for part in parts:
        digest.update(part)
    return str(digest.hexdigest())


def find_town(explicit: Path | None, environ: Mapping[str, str], cwd: Path) -> Town:
    """Locate the town: ``--town DIR``, else ``GT_TOWN``, else the nearest parent holding gastown.toml."""
    if explicit is not None:
        return _town_at(explicit, "--town")
    if environ.get("GT_TOWN"):
        return _town_at(Path(environ["GT_TOWN"]), "GT_TOWN")
    here = cwd.resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_NAME).is_file():
            return Town(candidate)
    raise TownNotFound(
        f"no town found: neither {here} nor any parent holds {CONFIG_NAME}",
        hint="run `gt init DIR` to create one, or pass --town DIR / set GT_TOWN",
    )


def _town_at(path: Path, source: str) -> Town:
    root = path.expanduser().resolve()
    if not (root / CONFIG_NAME).is_file():
        raise TownNotFound(
            f"{source} points at {root}, which holds no {CONFIG_NAME}",
            hint=f"create a town there with `gt init {path}` or fix {source}",
        )
    return Town(root)
