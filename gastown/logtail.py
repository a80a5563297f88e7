"""Reading the end of an agent's log (raw terminal output) as plain lines. Pure but for the read."""

from __future__ import annotations

import re
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Za-z0-9]|\x1b[@-Z\\-_=>]")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f]")


def plain_lines(raw: str) -> list[str]:
    """Terminal output to the lines a person saw: escapes dropped, carriage returns applied.

    >>> plain_lines("a\\x1b[31mb\\x1b[0m\\r\\nspin 1\\rspin 2\\n\\n")
    ['ab', 'spin 2']
    """
    lines = []
    for line in _ANSI.sub("", raw).split("\n"):
        line = line.rstrip("\r")
        if "\r" in line:
            line = line.rsplit("\r", 1)[1]
        line = _CTRL.sub("", line).rstrip()
        if line:
            lines.append(line)
    return lines


def last_lines(path: Path | str, count: int = 20, *, window: int = 65536) -> list[str]:
    """The last ``count`` non-empty plain lines of a log file (empty if it does not exist)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - window))
            data = handle.read()
    except OSError:
        return []
    return plain_lines(data.decode("utf-8", "replace"))[-count:]
