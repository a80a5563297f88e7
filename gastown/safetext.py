"""Outside text made safe to show on a terminal: the one sanitizer for every screen.

Issue titles and bodies, mail, escalations, agent output and event messages come from
strangers (webhooks, GitHub, agents that read untrusted text). Printed raw, ``ESC ] 0;…
BEL`` renames the terminal, ``ESC [ 2 J`` clears it, ``\\x9b`` is a one-byte CSI on some
terminals and U+202E turns the rest of a line around. Here every such character is shown
*visibly* as an escape (``\\x1b``, ``\\x9b``, ``\\u202e``) and never interpreted:

- C0 controls (U+0000–U+001F), DEL, C1 controls (U+0080–U+009F);
- bidirectional and invisible formatting characters (U+061C, U+200B–U+200F,
  U+2028–U+202E, U+2060–U+206F, U+FEFF);
- lone surrogates (undecodable bytes), which no terminal should receive.

``visible(text)`` makes one line (tabs and line breaks become spaces, for table cells
and headers); ``visible(text, multiline=True)`` keeps ``\\n`` and ``\\t`` (a body is
text) and escapes everything else, a lone ``\\r`` included, since it lets a later part
of a line overwrite an earlier one. ``json_text(document)`` is JSON whose *values* stay
verbatim while the characters above are written as ``\\uXXXX`` escapes, so even
``--json`` on a terminal cannot be turned against it.

Pure; the standard library only (the CLI imports it on every start).
"""

from __future__ import annotations

import json
import re
from typing import Any

_FORMAT_CHARS = "\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ud800-\udfff"
_UNSAFE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_FORMAT_CHARS}]")
_UNSAFE_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_FORMAT_CHARS}]")
_BREAKS = re.compile(r"[\t\n\v\f]+|\r\n|\r(?=\n)")
_UNSAFE_IN_JSON = re.compile(f"[\x7f-\x9f{_FORMAT_CHARS}]")


def visible(text: str | None, *, multiline: bool = False) -> str:
    """``text`` with every control, bidirectional and invisible character shown as an escape.

    >>> visible("fix \\x1b]0;pwned\\x07 now\\x1b[2J")
    'fix \\\\x1b]0;pwned\\\\x07 now\\\\x1b[2J'
    >>> visible("one\\ntwo\\tthree")
    'one two three'
    >>> visible("a\\r\\nb\\rc\\x9b\\u202ed", multiline=True)
    'a\\nb\\\\x0dc\\\\x9b\\\\u202ed'
    >>> visible("plain [bold]text[/] ünïcode 🚀")
    'plain [bold]text[/] ünïcode 🚀'
    """
    if not text:
        return ""
    if multiline:
        return _UNSAFE_TEXT.sub(_escape, text.replace("\r\n", "\n"))
    return _UNSAFE_LINE.sub(_escape, _BREAKS.sub(" ", text))


def one_line(text: str | None, limit: int = 60) -> str:
    """``text`` folded to one safe line (whitespace runs to one space), cut at ``limit``.

    >>> one_line("  a\\n  long\\ttitle\\x1b[31m ", limit=12)
    'a long titl…'
    """
    line = visible(" ".join((text or "").split()))
    return line if len(line) <= limit else line[: limit - 1] + "…"


def json_text(document: Any, *, indent: int | None = 2) -> str:
    """``document`` as JSON: non-ASCII text kept readable, but C1, bidirectional and
    invisible characters written as ``\\uXXXX`` escapes (the decoded values are unchanged).

    >>> json_text({"title": "a\\x1b[2J\\x9b\\u202eb é"}, indent=None)
    '{"title": "a\\\\u001b[2J\\\\u009b\\\\u202eb é"}'
    >>> json.loads(json_text({"t": "\\x9b\\u202e"}))["t"] == "\\x9b\\u202e"
    True
    """
    encoded = json.dumps(document, ensure_ascii=False, indent=indent)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", encoded)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
