"""The last validated config, kept as plain JSON so reading commands skip pydantic.

``.gastown/run/config.json`` holds the ``Settings`` of the last ``gastown.toml`` that
validated, keyed by the sha256 of the file's bytes (and of the code that shapes it:
``schema.py`` and ``settings.py``, so an upgrade of gastown never serves stale defaults).
A matching key means the file is exactly what was validated; anything else (edited file,
missing or corrupt cache, other gastown version) means validate again.

Written atomically (temporary file + rename) with mode 0600; a town on a read-only disk
just validates every time. Pure standard library.

A broken config never locks the user out: ``last_good()`` returns the cached settings
whatever the key, and ``last_good_text()`` the file's text as it was when it validated,
so the commands that only read or stop (and the Mayor's own helpers) run on them when
the file no longer validates, and say so (``Context(last_good=True)``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

from gastown.config.settings import Settings
from gastown.town import sha256_hex

FORMAT = 3  # 2: the validated file's text is kept beside its settings; 3: with [agents.*]
_SHAPERS = ("schema.py", "settings.py")


class Cached(NamedTuple):
    key: str
    settings: Settings
    text: str | None  # gastown.toml as it was when it validated


def fingerprint(raw: bytes) -> str:
    """The cache key of a config file's bytes under this version of the code."""
    here = Path(__file__).parent
    parts = [f"gastown-config-cache/{FORMAT}".encode()]
    for name in _SHAPERS:
        try:
            parts.append(sha256_hex((here / name).read_bytes()).encode())
        except OSError:
            parts.append(b"?")  # a frozen install without sources: the key still differs per file
    return sha256_hex(*parts, sha256_hex(raw).encode())


def read(cache_path: Path) -> Cached | None:
    """The cached settings, or None when there are none or they cannot be read."""
    try:
        data = json.loads(cache_path.read_bytes())
        if data.get("format") != FORMAT:
            return None
        text = data.get("toml")
        return Cached(str(data["key"]), Settings.from_json(data["settings"]), text if isinstance(text, str) else None)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def lookup(cache_path: Path, raw: bytes) -> Settings | None:
    """The cached settings if they were validated from exactly ``raw``."""
    cached = read(cache_path)
    return cached.settings if cached is not None and cached.key == fingerprint(raw) else None


def last_good(cache_path: Path) -> Settings | None:
    """The settings of the last config that validated, whatever the file holds now."""
    cached = read(cache_path)
    return cached.settings if cached is not None else None


def last_good_text(cache_path: Path) -> str | None:
    """gastown.toml's text as it was when it last validated, or None."""
    cached = read(cache_path)
    return cached.text if cached is not None else None


def store(cache_path: Path, raw: bytes, settings: Settings) -> None:
    """Remember ``settings`` as validated from ``raw``. Best effort: never raises."""
    import tempfile

    document = json.dumps({"format": FORMAT, "key": fingerprint(raw), "settings": settings.to_json(),
                           "toml": raw.decode("utf-8", "replace")})
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".json", dir=cache_path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(document)
            os.replace(tmp, cache_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass
