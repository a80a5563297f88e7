"""The demo agent's terminal: a raw-mode line editor that understands bracketed paste.

Three layers, the first two pure and unit-tested:

- ``InputDecoder`` turns bytes, in chunks of any size and split anywhere (inside a UTF-8
  character or an escape sequence), into key events. Text between ``ESC[200~`` and
  ``ESC[201~`` is one ``Text(pasted=True)`` event, newlines and all (CR and CRLF become
  LF, since terminals and ``tmux paste-buffer`` without ``-r`` send CR for LF).
- ``LineEditor`` applies events to the input line and says what to echo and what was
  submitted. Enter outside a paste submits; a blank line is not a submission.
- ``Terminal`` owns the file descriptors: raw mode and bracketed paste on a tty (both
  undone on exit, however the agent exits), plain line reading when stdin is a pipe.
"""

from __future__ import annotations

import codecs
import enum
import os
import sys
import termios
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, BinaryIO

ESC = "\x1b"
PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"
BRACKETED_PASTE_ON = "\x1b[?2004h"
BRACKETED_PASTE_OFF = "\x1b[?2004l"
CLEAR_LINE = "\r\x1b[2K"
CLEAR_SCREEN = "\x1b[H\x1b[2J"
COMPACT_OVER = 100  # a paste longer than this (or multi-line) is echoed as a summary


class Quit(Exception):
    """The user ended the session (Ctrl-C, Ctrl-D, end of input); ``code`` is the exit status."""

    def __init__(self, code: int) -> None:
        super().__init__(f"quit with exit status {code}")
        self.code = code


class Key(enum.Enum):
    ENTER = "enter"
    BACKSPACE = "backspace"
    KILL_LINE = "kill-line"  # Ctrl-U
    INTERRUPT = "interrupt"  # Ctrl-C
    END = "end"  # Ctrl-D


@dataclass(frozen=True)
class Text:
    text: str
    pasted: bool = False


Event = Key | Text

_CONTROL_KEYS = {
    "\r": Key.ENTER,
    "\n": Key.ENTER,
    "\x7f": Key.BACKSPACE,
    "\x08": Key.BACKSPACE,
    "\x15": Key.KILL_LINE,
    "\x03": Key.INTERRUPT,
    "\x04": Key.END,
}


class InputDecoder:
    """Bytes in, events out; keeps whatever is incomplete for the next ``feed``.

    >>> decoder = InputDecoder()
    >>> decoder.feed(b"hi\\x1b[20") + decoder.feed(b"0~a\\nb\\x1b[2") + decoder.feed(b"01~\\r")
    [Text(text='hi', pasted=False), Text(text='a\\nb', pasted=True), <Key.ENTER: 'enter'>]
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._paste: list[str] | None = None

    @property
    def in_paste(self) -> bool:
        return self._paste is not None

    def feed(self, data: bytes) -> list[Event]:
        buf = self._pending + self._utf8.decode(data)
        events: list[Event] = []
        i = 0
        while i < len(buf):
            if self._paste is not None:
                end = buf.find(PASTE_END, i)
                if end < 0:
                    keep = _marker_prefix_at_end(buf, PASTE_END)
                    self._paste.append(buf[i : len(buf) - keep])
                    i = len(buf) - keep
                    break
                self._paste.append(buf[i:end])
                text = "".join(self._paste).replace("\r\n", "\n").replace("\r", "\n")
                self._paste = None
                events.append(Text(text, pasted=True))
                i = end + len(PASTE_END)
                continue
            char = buf[i]
            if char == ESC:
                length = _escape_length(buf, i)
                if length is None:
                    break
                if buf[i : i + length] == PASTE_START:
                    self._paste = []
                i += length  # other sequences (arrows, function keys, Alt+x) are ignored
                continue
            if char in _CONTROL_KEYS:
                events.append(_CONTROL_KEYS[char])
                i += 1
                continue
            if _is_text(char):
                run_end = i + 1
                while run_end < len(buf) and _is_text(buf[run_end]):
                    run_end += 1
                events.append(Text(buf[i:run_end]))
                i = run_end
                continue
            i += 1  # other control characters are dropped
        self._pending = buf[i:]
        return events


def _is_text(char: str) -> bool:
    return char == "\t" or (ord(char) >= 32 and char != "\x7f")


def _escape_length(buf: str, i: int) -> int | None:
    """Length of the escape sequence at ``buf[i]``, or None when it may still be arriving.

    An ESC followed by another ESC or a control key stands alone, so an Escape key just
    before a paste or an Enter never swallows them.
    """
    if i + 1 >= len(buf):
        return None
    follower = buf[i + 1]
    if follower == ESC or ord(follower) < 32 or follower == "\x7f":
        return 1
    if follower == "[":
        j = i + 2
        while j < len(buf) and 0x20 <= ord(buf[j]) <= 0x3F:
            j += 1
        if j >= len(buf):
            return None
        return j - i + 1 if 0x40 <= ord(buf[j]) <= 0x7E else j - i
    if follower == "O":
        return 3 if i + 2 < len(buf) else None
    return 2


def _marker_prefix_at_end(buf: str, marker: str) -> int:
    for size in range(min(len(marker) - 1, len(buf)), 0, -1):
        if buf.endswith(marker[:size]):
            return size
    return 0


@dataclass
class _Segment:
    text: str
    pasted: bool

    @property
    def compact(self) -> bool:
        return self.pasted and ("\n" in self.text or len(self.text) > COMPACT_OVER)

    def shown(self) -> str:
        if self.compact:
            lines = len(self.text.splitlines()) or 1
            return f"[pasted {lines} line{'s' if lines != 1 else ''}, {len(self.text)} chars]"
        return _visible(self.text)


@dataclass(frozen=True)
class Outcome:
    echo: str = ""
    submitted: str | None = None


class LineEditor:
    """The input line: typed text and pastes, echoed tidily (a long or multi-line paste as
    ``[pasted N lines, M chars]``; Backspace removes such a paste whole).

    >>> editor = LineEditor()
    >>> [editor.apply(e) for e in (Text("a\\nb", pasted=True), Text("!"), Key.ENTER)][-1]
    Outcome(echo='\\n', submitted='a\\nb!')
    """

    def __init__(self, prompt: str = "", width: int | None = None) -> None:
        self._prompt = prompt
        self._width = width
        self._segments: list[_Segment] = []

    @property
    def text(self) -> str:
        return "".join(segment.text for segment in self._segments)

    def apply(self, event: Event) -> Outcome:
        """Raises ``Quit`` for Ctrl-C (130) and for Ctrl-D on an empty line (0)."""
        if isinstance(event, Text):
            return self._insert(event)
        if event is Key.ENTER:
            text = self.text
            if not text.strip():
                return Outcome(echo=self._edit(self._segments.clear))
            self._segments = []
            return Outcome(echo="\n", submitted=text)
        if event is Key.BACKSPACE:
            return Outcome(echo=self._edit(self._backspace))
        if event is Key.KILL_LINE:
            return Outcome(echo=self._edit(self._segments.clear))
        if event is Key.INTERRUPT:
            raise Quit(130)
        if event is Key.END and not self._segments:
            raise Quit(0)
        return Outcome()

    def _insert(self, event: Text) -> Outcome:
        last = self._segments[-1] if self._segments else None
        if not event.pasted and last is not None and not last.pasted:
            last.text += event.text
            return Outcome(echo=_visible(event.text))
        segment = _Segment(event.text, event.pasted)
        self._segments.append(segment)
        return Outcome(echo=segment.shown())

    def _shown(self) -> str:
        return "".join(segment.shown() for segment in self._segments)

    def _edit(self, change: Callable[[], None]) -> str:
        """Apply a shortening ``change`` and return the echo that shows it.

        A line that fits the pane is redrawn after clearing it whole: tmux counts cells
        blanked any other way as content, and ``demo>`` plus blanks would not read as
        ready. A wrapped line (or unknown width) is backed over instead.
        """
        before = self._shown()
        change()
        after = self._shown()
        if before == after:
            return ""
        if self._width is not None and display_width(self._prompt + before) < self._width:
            return CLEAR_LINE + self._prompt + after
        common = 0
        while common < len(after) and after[common] == before[common]:
            common += 1
        return _erase(before[common:]) + after[common:]

    def _backspace(self) -> None:
        if not self._segments:
            return
        last = self._segments[-1]
        if last.compact:
            self._segments.pop()
            return
        last.text = last.text[:-1]
        if not last.text:
            self._segments.pop()


def _visible(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)


def display_width(text: str) -> int:
    """Terminal cells ``text`` takes (wide East Asian characters count two).

    >>> display_width("ab"), display_width("日本"), display_width("e\\u0301")
    (2, 4, 1)
    """
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _erase(shown: str) -> str:
    """Back over ``shown`` and clear to the end of the line."""
    cells = display_width(shown)
    return "\b" * cells + "\x1b[K" if cells else ""


class Terminal:
    """stdin/stdout of the agent. Use as a context manager: on a tty it enters raw mode
    (keeping output post-processing, so ``\\n`` still returns the carriage) and turns
    bracketed paste on; leaving restores both, on every exit path."""

    def __init__(self, stdin_fd: int | None = None, stdout: BinaryIO | None = None) -> None:
        self._fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
        self._out = stdout if stdout is not None else sys.stdout.buffer
        self.interactive = os.isatty(self._fd)
        self.out_is_tty = _isatty(self._out)
        self._saved: list[Any] | None = None
        self._decoder = InputDecoder()
        self._events: deque[Event] = deque()

    def __enter__(self) -> Terminal:
        if self.interactive:
            self._saved = termios.tcgetattr(self._fd)
            termios.tcsetattr(self._fd, termios.TCSAFLUSH, _raw_mode(self._saved))
            self.write(BRACKETED_PASTE_ON)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._saved is not None:
            try:
                self.write(BRACKETED_PASTE_OFF)
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            except OSError:
                pass  # the pane is already gone
            self._saved = None

    def write(self, text: str) -> None:
        try:
            self._out.write(text.encode("utf-8", "replace"))
            self._out.flush()
        except BrokenPipeError:
            raise Quit(0) from None

    def clear_screen(self) -> None:
        if self.out_is_tty:
            self.write(CLEAR_SCREEN)

    def read_submission(self, prompt: str) -> str:
        """Show ``prompt`` and return the next non-blank submitted input, verbatim.

        Input that arrived while the agent was busy is taken now, in order. Raises
        ``Quit`` on Ctrl-C, Ctrl-D on an empty line, or end of input.
        """
        self.write(prompt)
        if not self.interactive:
            return self._read_line()
        editor = LineEditor(prompt, self._width())
        while True:
            while self._events:
                outcome = editor.apply(self._events.popleft())
                if outcome.echo:
                    self.write(outcome.echo)
                if outcome.submitted is not None:
                    return outcome.submitted
            self._events.extend(self._decoder.feed(self._read_bytes()))

    def ask_yes_no(self, question: str) -> bool:
        """Ask until the user answers y or n and presses Enter; Ctrl-C or end of input quits."""
        self.write(question + " ")
        if not self.interactive:
            while True:
                answer = self._read_line().strip().lower()
                if answer in ("y", "yes", "n", "no"):
                    return answer.startswith("y")
        choice = ""
        while True:
            while self._events:
                event = self._events.popleft()
                if event is Key.INTERRUPT:
                    raise Quit(130)
                if event is Key.ENTER and choice:
                    self.write("\n")
                    return choice == "y"
                if isinstance(event, Text) and event.text[-1:].lower() in ("y", "n"):
                    self.write(_erase(choice) + event.text[-1].lower())
                    choice = event.text[-1].lower()
                elif event is Key.BACKSPACE and choice:
                    self.write(_erase(choice))
                    choice = ""
            self._events.extend(self._decoder.feed(self._read_bytes()))

    def _width(self) -> int | None:
        try:
            return os.get_terminal_size(self._out.fileno()).columns
        except (AttributeError, OSError, ValueError):
            return None

    def _read_bytes(self) -> bytes:
        try:
            data = os.read(self._fd, 1 << 16)
        except OSError:
            data = b""
        if not data:
            raise Quit(0)
        return data

    def _read_line(self) -> str:
        while True:
            line = sys.stdin.buffer.readline() if self._fd == 0 else _read_fd_line(self._fd)
            if not line:
                raise Quit(0)
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if text.strip():
                self.write(_Segment(text, pasted=True).shown() + "\n")
                return text


class BusyLine:
    """The one status line (``demo: thinking... 1.2s``) shown while the agent works.

    ``say`` prints a line above it; ``clear`` overwrites it with nothing (carriage return
    plus erase-line), so a finished agent leaves no busy marker on screen. On a pipe the
    status is printed once, plainly.
    """

    def __init__(self, terminal: Terminal, label: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._terminal = terminal
        self._label = label
        self._clock = clock
        self._started: float | None = None
        self._frozen = False

    @property
    def active(self) -> bool:
        return self._started is not None

    def start(self) -> None:
        if self._started is None:
            self._started = self._clock()
            self._draw(first=True)

    def tick(self) -> None:
        if self._started is not None and not self._frozen:
            self._draw(first=False)

    def freeze(self, text: str) -> None:
        """Show ``text`` and stop ticking (a hung agent prints nothing more)."""
        self._frozen = True
        self._started = self._started or self._clock()
        self._terminal.write(
            (CLEAR_LINE if self._terminal.out_is_tty else "") + text + ("" if self._terminal.out_is_tty else "\n")
        )

    def say(self, line: str) -> None:
        if self._started is not None and self._terminal.out_is_tty:
            self._terminal.write(CLEAR_LINE + line + "\n")
            self._draw(first=False)
        else:
            self._terminal.write(line + "\n")

    def clear(self) -> None:
        if self._started is not None and self._terminal.out_is_tty:
            self._terminal.write(CLEAR_LINE)
        self._started = None
        self._frozen = False

    def _draw(self, *, first: bool) -> None:
        assert self._started is not None
        if self._terminal.out_is_tty:
            self._terminal.write(f"{CLEAR_LINE}{self._label} {self._clock() - self._started:.1f}s")
        elif first:
            self._terminal.write(self._label + "\n")


def _raw_mode(saved: list[Any]) -> list[Any]:
    """Raw input (no echo, no line buffering, no signals from keys, CR kept as CR),
    output processing left on."""
    mode = list(saved)
    mode[0] &= ~(
        termios.BRKINT | termios.ICRNL | termios.INLCR | termios.IGNCR | termios.INPCK | termios.ISTRIP | termios.IXON
    )
    mode[3] &= ~(termios.ECHO | termios.ICANON | termios.IEXTEN | termios.ISIG)
    cc = list(mode[6])
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    mode[6] = cc
    return mode


def _isatty(stream: BinaryIO) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def _read_fd_line(fd: int) -> bytes:
    chunks = []
    while True:
        byte = os.read(fd, 1)
        chunks.append(byte)
        if not byte or byte == b"\n":
            return b"".join(chunks)
