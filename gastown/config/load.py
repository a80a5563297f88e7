"""Read gastown.toml into a validated ``TownConfig``, with errors a user can act on.

Syntax errors name the line and column; validation errors name the key path, one line
per problem (``rigs.app.batch: must be ≥ 1``).

Two doors: ``load_config`` validates with pydantic (for commands that act on the whole
config) and refreshes the cache of the last validated config; ``load_settings`` answers
from that cache when the file is byte-for-byte what was validated, so commands that only
read never import pydantic (~130 ms). Both raise the same ``ConfigError`` for a broken file.
pydantic is imported only when a file is actually validated.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gastown.config import cache
from gastown.config.settings import Settings
from gastown.errors import ConfigError

if TYPE_CHECKING:
    import tomllib

    from gastown.config.schema import TownConfig

_LINE_COL = re.compile(r"\(at line (\d+), column (\d+)\)")


def load_config(path: Path, *, cache_path: Path | None = None) -> TownConfig:
    """Parse and validate the town config at ``path``; raises ``ConfigError``.

    With ``cache_path``, a config that validates is remembered there for ``load_settings``.
    """
    return _validated(read_config_bytes(path), path, cache_path)


def load_settings(path: Path, *, cache_path: Path) -> Settings:
    """The settings of the config at ``path``: from the cache when the file is unchanged
    since it last validated, else validated now (and cached). Raises ``ConfigError``."""
    raw = read_config_bytes(path)
    return cache.lookup(cache_path, raw) or Settings.from_config(_validated(raw, path, cache_path))


def load_last_good(cache_path: Path) -> TownConfig | None:
    """The last gastown.toml that validated, validated again; None when there is none
    (a town whose file never validated) or when it no longer validates (gastown was
    upgraded since). For running on while the file on disk is broken."""
    text = cache.last_good_text(cache_path)
    if text is None:
        return None
    try:
        return parse_config(text, source="the last good gastown.toml")
    except ConfigError:
        return None


def _validated(raw: bytes, path: Path, cache_path: Path | None) -> TownConfig:
    config = parse_config(decode_config(raw, path), source=path)
    if cache_path is not None and cache.lookup(cache_path, raw) is None:
        cache.store(cache_path, raw, Settings.from_config(config))
    return config


def read_config_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist", hint="create a town with `gt init`") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def decode_config(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not valid UTF-8 (byte {exc.start})", hint="save it as UTF-8") from None


def parse_config(text: str, *, source: Path | str = "gastown.toml") -> TownConfig:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(describe_toml_error(exc, source, text), hint="fix the TOML syntax at that spot") from None
    return validate_config(data, source=source)


def validate_config(data: dict[str, Any], *, source: Path | str = "gastown.toml") -> TownConfig:
    from pydantic import ValidationError

    from gastown.config.schema import TownConfig

    try:
        return TownConfig.model_validate(data)
    except ValidationError as exc:
        problems = [describe_problem(err) for err in exc.errors()]
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(
            f"{source}: {first}{more}",
            problems=problems,
            hint="see gastown.toml.example for every key and its default",
        ) from None


def describe_toml_error(exc: tomllib.TOMLDecodeError, source: Path | str, text: str) -> str:
    """``gastown.toml: line 3, column 9: invalid TOML (Expected '=' ...)``."""
    msg = str(exc)
    match = _LINE_COL.search(msg)
    if match:
        line, column = match.group(1), match.group(2)
        reason = _LINE_COL.sub("", msg).strip()
    else:
        # tomllib reports "(at end of document)" without a position; the end is the position.
        lines = text.rstrip("\n").split("\n")
        line, column = str(len(lines)), str(len(lines[-1]) + 1)
        reason = msg.replace("(at end of document)", "at end of file").strip()
    return f"{source}: line {line}, column {column}: invalid TOML ({reason})"


_TYPE_WORDS = {
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "missing": "is required but missing",
    "extra_forbidden": "unknown key (check its spelling)",
}


def describe_problem(err: Any) -> str:
    """One pydantic error as ``dotted.key.path: what is wrong``."""
    loc = ".".join(str(part) for part in err["loc"] if not str(part).startswith("function-"))
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _TYPE_WORDS:
        what = _TYPE_WORDS[kind]
    elif kind == "greater_than_equal":
        what = f"must be ≥ {ctx.get('ge')}"
    elif kind == "greater_than":
        what = f"must be > {ctx.get('gt')}"
    elif kind == "less_than_equal":
        what = f"must be ≤ {ctx.get('le')}"
    elif kind == "literal_error":
        what = f"must be one of {ctx.get('expected')}"
    elif kind == "too_short":
        what = "must not be empty"
    elif kind == "value_error":
        what = str(ctx.get("error", err["msg"]))
    else:
        what = err["msg"]
    return f"{loc}: {what}" if loc else what
