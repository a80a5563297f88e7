"""Outside text made safe to show, and an agent's log file read as lines, incrementally.

Everything an agent printed reaches the page through here: terminal escapes dropped,
carriage returns applied (``logtail.plain_lines``), and every character that could
disguise text (C1 controls, bidirectional overrides, zero-width marks) shown as a
visible escape by the same ``literal()`` the terminal views use. HTML escaping is the
templates' job (Jinja's autoescape); this module only makes the text honest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gastown.logtail import plain_lines
from gastown.views.render import literal

LINE_LIMIT = 2000  # characters kept of one log line
CATCH_UP_BYTES = 256 * 1024  # the most a reader sends at once (a burst is sent in parts)
_SPACES = re.compile(r"( +)")


def visible(line: str, limit: int = LINE_LIMIT) -> str:
    """One line of output, its spacing kept (tabs expanded), disguising characters escaped.

    >>> visible("  ok\\u202eevil\\tdone")
    '  ok\\\\u202eevil       done'
    """
    parts = _SPACES.split(line.expandtabs(8))
    shown = "".join(part if part.startswith(" ") else literal(part, limit=limit) for part in parts)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def visible_block(text: str, limit: int = 400) -> list[str]:
    """A multi-line text (an issue body, an MR's detail) as at most ``limit`` visible lines."""
    lines = text.split("\n")
    shown = [visible(line.rstrip("\r")) for line in lines[:limit]]
    if len(lines) > limit:
        shown.append(f"… {len(lines) - limit} more lines")
    return shown


def _decode(data: bytes) -> list[str]:
    return [visible(line) for line in plain_lines(data.decode("utf-8", "replace"))]


@dataclass
class LogReader:
    """Follows one log file from ``offset`` (a byte just after a newline, or 0).

    ``read_new()`` returns the complete lines written since the last call; a line still
    being written (no newline yet, e.g. a spinner redrawn with ``\\r``) waits for its
    end. A file that shrank (replaced) is read again from its start. Never raises for a
    missing file: a log appears when its agent starts.
    """

    path: Path
    offset: int = 0

    def read_new(self, most: int = CATCH_UP_BYTES) -> list[str]:
        try:
            size = self.path.stat().st_size
        except OSError:
            return []
        if size < self.offset:
            self.offset = 0
        if size == self.offset:
            return []
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(min(size - self.offset, most))
        except OSError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            if len(data) < most:
                return []  # a line in the making
            end = len(data) - 1  # one endless line: show it in parts
        self.offset += end + 1
        return _decode(data[: end + 1])


def tail(path: Path, count: int = 200, window: int = CATCH_UP_BYTES) -> tuple[list[str], int]:
    """The last ``count`` lines of a log and the offset just after the last complete one
    (hand that offset to a ``LogReader`` to follow on without a gap or a repeat)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            start = max(0, size - window)
            handle.seek(start)
            data = handle.read(size - start)
    except OSError:
        return [], 0
    end = data.rfind(b"\n")
    if end < 0:
        return [], start
    complete = data[: end + 1]
    if start > 0:
        complete = complete[complete.find(b"\n") + 1 :]  # the first line was cut by the window
    return _decode(complete)[-count:], start + end + 1
