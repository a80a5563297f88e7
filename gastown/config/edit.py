"""Edits to gastown.toml that keep the user's comments, order and layout (tomlkit).

Each edit is validated as a whole config before the file is replaced, and the file is
replaced atomically, so a failed edit never leaves a half-written config behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from gastown.config.load import parse_config
from gastown.errors import ConfigError


def add_rig_table(text: str, name: str, values: dict[str, Any]) -> str:
    """Return ``text`` with a ``[rigs.<name>]`` table appended."""
    return add_table(text, "rigs", name, values)


def remove_rig_table(text: str, name: str) -> str:
    return remove_table(text, "rigs", name)


def add_table(text: str, group: str, name: str, values: dict[str, Any]) -> str:
    """Return ``text`` with a ``[<group>.<name>]`` table appended (``None`` values left out)."""
    doc = _parse(text)
    if group not in doc:
        doc.add(group, tomlkit.table(is_super_table=True))
    table = tomlkit.table()
    for key, value in values.items():
        if value is not None:
            table.add(key, value)
    doc[group].add(name, table)
    return tomlkit.dumps(doc)


def remove_table(text: str, group: str, name: str) -> str:
    """Return ``text`` without ``[<group>.<name>]`` (and without ``[<group>]`` once empty)."""
    doc = _parse(text)
    tables = doc.get(group)
    if tables is not None and name in tables:
        del tables[name]
        if not tables:
            del doc[group]
    return tomlkit.dumps(doc)


def rewrite_config(path: Path, new_text: str) -> None:
    """Validate ``new_text`` as a town config, then atomically replace ``path`` with it."""
    parse_config(new_text, source=path)
    fd, tmp = tempfile.mkstemp(prefix=".gastown.toml.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(new_text)
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parse(text: str) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError(f"gastown.toml cannot be edited: {exc}", hint="fix the TOML syntax first") from None


def set_values(text: str, section: str, values: dict[str, Any]) -> str:
    """Return ``text`` with ``values`` set in table ``section`` ("witness", "rigs.app"),
    creating the table if needed and keeping everything else as written."""
    doc = _parse(text)
    table: Any = doc
    for part in section.split("."):
        if part not in table:
            table.add(part, tomlkit.table())
        table = table[part]
    for key, value in values.items():
        table[key] = value
    return tomlkit.dumps(doc)
