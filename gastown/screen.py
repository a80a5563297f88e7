"""Reading an agent's screen: ready, busy, a start-up dialog, a rate-limit notice.

Pure functions over captured pane text and a runtime's patterns. Screen texts change
between CLI versions, so every pattern comes from the runtime (and so from config).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gastown.runtimes.registry import Runtime

TAIL_LINES = 15


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` non-blank lines (a TUI pads its screen with blank rows, above and
    below its input box).

    >>> tail("a\\n\\nb\\nc\\n\\n\\n", 2)
    'b\\nc'
    """
    rows = [row for row in text.split("\n") if row.strip()]
    return "\n".join(rows[-lines:])


@dataclass(frozen=True)
class Screen:
    ready: bool
    busy: bool
    dialog_keys: tuple[str, ...] | None
    dialog: str | None
    rate_limit: str | None

    @property
    def idle(self) -> bool:
        return self.ready and not self.busy and self.dialog_keys is None


def read_screen(text: str, runtime: Runtime) -> Screen:
    """Classify the bottom of a pane. Dialogs are matched first: their option glyphs
    (``›``, ``❯``) look like prompts."""
    bottom = tail(text)
    for pattern, keys in runtime.dialog_res:
        match = pattern.search(bottom)
        if match:
            return Screen(False, False, keys, match.group(0), None)
    limited = None
    for pattern in runtime.rate_limit_res:
        match = pattern.search(bottom)
        if match:
            line_start = bottom.rfind("\n", 0, match.start()) + 1
            line_end = bottom.find("\n", match.end())
            limited = bottom[line_start : line_end if line_end >= 0 else len(bottom)].strip()
            break
    busy = bool(runtime.busy_re and runtime.busy_re.search(bottom))
    ready = bool(runtime.ready_re and runtime.ready_re.search(bottom))
    return Screen(ready, busy, None, None, limited)


_IN = re.compile(
    r"(?:resets?|try again|retry|available)\s+in\s+((?:\d+\s*(?:h|hr|hrs|hours?|m|min|mins|minutes?|s|sec|secs|seconds?)\s*)+)",
    re.IGNORECASE,
)
_PART = re.compile(r"(\d+)\s*(h|hr|hrs|hours?|m|min|mins|minutes?|s|sec|secs|seconds?)", re.IGNORECASE)
_AT_CLOCK = re.compile(r"(?:resets?|reset at|until|at)\s+(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?\s*(am|pm)?", re.IGNORECASE)
_AT_ISO = re.compile(r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)")


def parse_reset(line: str, now: float) -> float | None:
    """When a rate limit lifts, read from the notice itself; None if it names no time.

    Relative (``resets in 8s``, ``try again in 1h 5m``), ISO timestamps, and clock
    times (``resets 3pm``, ``resets at 15:30``, read as local time, the next such moment).

    >>> parse_reset("demo: usage limit reached · resets in 8s", 1000.0)
    1008.0
    >>> parse_reset("Rate limited. Try again in 1h 5m", 0.0)
    3900.0
    >>> parse_reset("no time here", 0.0) is None
    True
    """
    match = _IN.search(line)
    if match:
        seconds = 0.0
        for amount, unit in _PART.findall(match.group(1)):
            u = unit.lower()
            seconds += int(amount) * (3600 if u.startswith("h") else 60 if u.startswith("m") else 1)
        return now + seconds
    match = _AT_ISO.search(line)
    if match:
        try:
            stamp = dt.datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
        except ValueError:
            stamp = None
        if stamp is not None:
            if stamp.tzinfo is None:
                stamp = stamp.astimezone()
            return stamp.timestamp()
    match = _AT_CLOCK.search(line)
    if match and (match.group(2) or match.group(4)):
        hour = int(match.group(1)) % 24
        minute = int(match.group(2) or 0)
        second = int(match.group(3) or 0)
        meridiem = (match.group(4) or "").lower()
        if meridiem == "pm" and hour < 12:
            hour += 12
        if meridiem == "am" and hour == 12:
            hour = 0
        if hour > 23 or minute > 59:
            return None
        local_now = dt.datetime.fromtimestamp(now).astimezone()
        moment = local_now.replace(hour=hour, minute=minute, second=second, microsecond=0)
        if moment.timestamp() <= now:
            moment += dt.timedelta(days=1)
        return moment.timestamp()
    return None


_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def sanitize(text: str) -> str:
    """Text safe to type into a terminal: escape sequences and control characters removed,
    CR/CRLF turned into LF, tabs into spaces; everything else kept exactly.

    >>> sanitize("a\\x1b[31mred\\x1b[0m\\tb\\r\\nc\\x07")
    'ared b\\nc'
    """
    text = _CSI.sub("", text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " "))
    return _CONTROL.sub("", text)
